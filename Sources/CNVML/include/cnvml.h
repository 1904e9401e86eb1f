// Our own minimal declarations of the part of NVIDIA's NVML C ABI that hostmeter uses, written
// from NVIDIA's public API reference (return codes, enum values, struct layouts). This is not
// NVIDIA's nvml.h: only what is declared here is used, and nothing links against NVML. The library
// is opened at run time with dlopen, so a host without NVIDIA drivers runs the same binary.

#ifndef CNVML_H
#define CNVML_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// nvmlReturn_t is a C enum in NVML; C enums with these small values are int-sized on every ABI
// NVML ships for (x86_64 and aarch64 Linux), so an int carries it exactly.
typedef int nvmlReturn_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_LIBRARY_NOT_FOUND 12
#define NVML_ERROR_FUNCTION_NOT_FOUND 13
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_RESET_REQUIRED 16
#define NVML_ERROR_NO_DATA 21
#define NVML_ERROR_GPU_NOT_FOUND 28
#define NVML_ERROR_UNKNOWN 999

// A device handle is an opaque pointer owned by the library.
typedef struct nvmlDevice_st *nvmlDevice_t;

// nvmlSamplingType_t (an int-sized enum): which sample buffer nvmlDeviceGetSamples reads.
typedef int nvmlSamplingType_t;
#define NVML_TOTAL_POWER_SAMPLES 0
#define NVML_GPU_UTILIZATION_SAMPLES 1

// nvmlValueType_t (an int-sized enum): which member of nvmlValue_t a sample holds.
typedef int nvmlValueType_t;
#define NVML_VALUE_TYPE_DOUBLE 0
#define NVML_VALUE_TYPE_UNSIGNED_INT 1
#define NVML_VALUE_TYPE_UNSIGNED_LONG 2
#define NVML_VALUE_TYPE_UNSIGNED_LONG_LONG 3
#define NVML_VALUE_TYPE_SIGNED_LONG_LONG 4
#define NVML_VALUE_TYPE_SIGNED_INT 5
#define NVML_VALUE_TYPE_UNSIGNED_SHORT 6

// nvmlTemperatureSensors_t: the GPU die sensor is the only one defined.
typedef int nvmlTemperatureSensors_t;
#define NVML_TEMPERATURE_GPU 0

// MIG modes returned by nvmlDeviceGetMigMode.
#define NVML_DEVICE_MIG_DISABLE 0
#define NVML_DEVICE_MIG_ENABLE 1

// Buffer sizes NVML documents as large enough for a UUID and a name (the v2 sizes, 96 bytes).
#define CNVML_UUID_BUFFER_SIZE 96
#define CNVML_NAME_BUFFER_SIZE 96

// A sample's value: 8 bytes, the member named by the nvmlValueType_t returned beside it.
typedef union nvmlValue_st {
    double dVal;
    int siVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    unsigned short usVal;
} nvmlValue_t;

// One entry of a device's sample buffer. timeStamp is a CPU timestamp in microseconds.
typedef struct nvmlSample_st {
    unsigned long long timeStamp;
    nvmlValue_t sampleValue;
} nvmlSample_t;

// Percent of the last sample period a kernel ran (gpu) and device memory was read or written (memory).
typedef struct nvmlUtilization_st {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

// Device memory in bytes (the unversioned nvmlMemory_t, as nvmlDeviceGetMemoryInfo fills it).
typedef struct nvmlMemory_st {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

/// The NVML entry points hostmeter calls, resolved with dlsym from one dlopen'ed library. Required
/// ones are never NULL in an opened library; optional ones are NULL when the library lacks them,
/// and calling them through the cnvml_ wrappers then returns NVML_ERROR_FUNCTION_NOT_FOUND.
typedef struct cnvml_library {
    void *handle;
    // The symbol names bound for the entry points that have versions ("nvmlInit_v2" or "nvmlInit").
    const char *initName;
    const char *deviceGetCountName;
    const char *deviceGetHandleByIndexName;
    // Required.
    nvmlReturn_t (*init)(void);
    nvmlReturn_t (*shutdown)(void);
    const char *(*errorString)(nvmlReturn_t);
    nvmlReturn_t (*deviceGetCount)(unsigned int *);
    nvmlReturn_t (*deviceGetHandleByIndex)(unsigned int, nvmlDevice_t *);
    nvmlReturn_t (*deviceGetUUID)(nvmlDevice_t, char *, unsigned int);
    nvmlReturn_t (*deviceGetName)(nvmlDevice_t, char *, unsigned int);
    nvmlReturn_t (*deviceGetUtilizationRates)(nvmlDevice_t, nvmlUtilization_t *);
    nvmlReturn_t (*deviceGetMemoryInfo)(nvmlDevice_t, nvmlMemory_t *);
    // Optional.
    nvmlReturn_t (*deviceGetSamples)(nvmlDevice_t, nvmlSamplingType_t, unsigned long long, nvmlValueType_t *,
                                     unsigned int *, nvmlSample_t *);
    nvmlReturn_t (*deviceGetPowerUsage)(nvmlDevice_t, unsigned int *);
    nvmlReturn_t (*deviceGetTotalEnergyConsumption)(nvmlDevice_t, unsigned long long *);
    nvmlReturn_t (*deviceGetTemperature)(nvmlDevice_t, nvmlTemperatureSensors_t, unsigned int *);
    nvmlReturn_t (*deviceGetMigMode)(nvmlDevice_t, unsigned int *, unsigned int *);
} cnvml_library;

/// Why cnvml_open returned NULL.
typedef enum cnvml_open_failure {
    CNVML_OPEN_OK = 0,
    /// dlopen failed: no such library (or not loadable); the message is dlerror's text.
    CNVML_OPEN_NO_LIBRARY = 1,
    /// A required symbol is missing; the message is the symbol's name.
    CNVML_OPEN_MISSING_SYMBOL = 2,
    /// Allocation failed.
    CNVML_OPEN_NO_MEMORY = 3,
} cnvml_open_failure;

/// Optional entry points, for asking which ones a library has.
typedef enum cnvml_optional_symbol {
    CNVML_SYMBOL_SAMPLES = 0,
    CNVML_SYMBOL_POWER_USAGE = 1,
    CNVML_SYMBOL_TOTAL_ENERGY = 2,
    CNVML_SYMBOL_TEMPERATURE = 3,
    CNVML_SYMBOL_MIG_MODE = 4,
} cnvml_optional_symbol;

/// dlopen's `path` and resolves every entry point, preferring versioned symbols. Returns NULL and
/// sets `*failure` and `message` (NUL-terminated, truncated to `messageSize`) when it cannot.
/// Does not call nvmlInit.
cnvml_library *cnvml_open(const char *path, cnvml_open_failure *failure, char *message, size_t messageSize);

/// dlclose's the library and frees `library`. Call nvmlShutdown first if nvmlInit succeeded.
void cnvml_close(cnvml_library *library);

/// 1 if the library has the optional entry point, else 0.
int cnvml_has(const cnvml_library *library, cnvml_optional_symbol symbol);

// Thin wrappers: each calls the entry point, or returns NVML_ERROR_FUNCTION_NOT_FOUND when an
// optional one is missing, so Swift never calls through a NULL pointer.
nvmlReturn_t cnvml_init(const cnvml_library *library);
nvmlReturn_t cnvml_shutdown(const cnvml_library *library);
/// nvmlErrorString's text, or NULL when the library returns NULL.
const char *cnvml_error_string(const cnvml_library *library, nvmlReturn_t result);
nvmlReturn_t cnvml_device_get_count(const cnvml_library *library, unsigned int *count);
nvmlReturn_t cnvml_device_get_handle_by_index(const cnvml_library *library, unsigned int index, nvmlDevice_t *device);
nvmlReturn_t cnvml_device_get_uuid(const cnvml_library *library, nvmlDevice_t device, char *uuid, unsigned int length);
nvmlReturn_t cnvml_device_get_name(const cnvml_library *library, nvmlDevice_t device, char *name, unsigned int length);
nvmlReturn_t cnvml_device_get_utilization_rates(const cnvml_library *library, nvmlDevice_t device,
                                                nvmlUtilization_t *utilization);
nvmlReturn_t cnvml_device_get_memory_info(const cnvml_library *library, nvmlDevice_t device, nvmlMemory_t *memory);
nvmlReturn_t cnvml_device_get_samples(const cnvml_library *library, nvmlDevice_t device, nvmlSamplingType_t type,
                                      unsigned long long lastSeenTimeStamp, nvmlValueType_t *valueType,
                                      unsigned int *count, nvmlSample_t *samples);
nvmlReturn_t cnvml_device_get_power_usage(const cnvml_library *library, nvmlDevice_t device, unsigned int *milliwatts);
nvmlReturn_t cnvml_device_get_total_energy_consumption(const cnvml_library *library, nvmlDevice_t device,
                                                       unsigned long long *millijoules);
nvmlReturn_t cnvml_device_get_temperature(const cnvml_library *library, nvmlDevice_t device,
                                          nvmlTemperatureSensors_t sensor, unsigned int *celsius);
nvmlReturn_t cnvml_device_get_mig_mode(const cnvml_library *library, nvmlDevice_t device, unsigned int *current,
                                       unsigned int *pending);

#ifdef __cplusplus
}
#endif

#endif
