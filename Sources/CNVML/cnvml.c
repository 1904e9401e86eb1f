// Loading NVML at run time: dlopen + dlsym into a table of function pointers. This file and the
// GPU module's NVMLLibrary are the only places that touch the library's raw pointers.

#include "cnvml.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_message(char *message, size_t size, const char *text) {
    if (message == NULL || size == 0) return;
    snprintf(message, size, "%s", text != NULL ? text : "");
}

// Resolves the first of `names` (NULL-terminated, most preferred first) the library exports.
// dlsym returning NULL is taken as absence: no NVML entry point is a NULL-valued symbol.
static void *resolve(void *handle, const char *const *names, const char **bound) {
    for (const char *const *name = names; *name != NULL; name++) {
        void *symbol = dlsym(handle, *name);
        if (symbol != NULL) {
            if (bound != NULL) *bound = *name;
            return symbol;
        }
    }
    return NULL;
}

cnvml_library *cnvml_open(const char *path, cnvml_open_failure *failure, char *message, size_t messageSize) {
    cnvml_open_failure ignored;
    if (failure == NULL) failure = &ignored;
    *failure = CNVML_OPEN_OK;
    set_message(message, messageSize, "");

    // RTLD_NOW: resolve the library's own dependencies now, so a broken install fails here and
    // not in the middle of a sample. RTLD_LOCAL: its symbols must not satisfy anyone else's.
    dlerror();
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *error = dlerror();
        *failure = CNVML_OPEN_NO_LIBRARY;
        set_message(message, messageSize, error != NULL ? error : "dlopen failed");
        return NULL;
    }

    cnvml_library *library = calloc(1, sizeof *library);
    if (library == NULL) {
        dlclose(handle);
        *failure = CNVML_OPEN_NO_MEMORY;
        set_message(message, messageSize, "out of memory");
        return NULL;
    }
    library->handle = handle;

    // Each required entry point: the names to try, most preferred first. The _v2 entry points
    // replaced the originals in NVML 5.319 (init no longer attaches every GPU; count and handle
    // lookups skip GPUs the process may not use); the originals remain for older drivers.
    static const char *const initNames[] = {"nvmlInit_v2", "nvmlInit", NULL};
    static const char *const shutdownNames[] = {"nvmlShutdown", NULL};
    static const char *const errorStringNames[] = {"nvmlErrorString", NULL};
    static const char *const countNames[] = {"nvmlDeviceGetCount_v2", "nvmlDeviceGetCount", NULL};
    static const char *const handleNames[] = {"nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex", NULL};
    static const char *const uuidNames[] = {"nvmlDeviceGetUUID", NULL};
    static const char *const nameNames[] = {"nvmlDeviceGetName", NULL};
    static const char *const utilizationNames[] = {"nvmlDeviceGetUtilizationRates", NULL};
    static const char *const memoryNames[] = {"nvmlDeviceGetMemoryInfo", NULL};

    // Casting dlsym's void * to a function pointer is what POSIX requires to work.
#define REQUIRE(field, names, bound)                                          \
    do {                                                                      \
        *(void **)(&library->field) = resolve(handle, names, bound);          \
        if (library->field == NULL) {                                         \
            *failure = CNVML_OPEN_MISSING_SYMBOL;                             \
            set_message(message, messageSize, names[0]);                      \
            cnvml_close(library);                                             \
            return NULL;                                                      \
        }                                                                     \
    } while (0)

    REQUIRE(init, initNames, &library->initName);
    REQUIRE(shutdown, shutdownNames, NULL);
    REQUIRE(errorString, errorStringNames, NULL);
    REQUIRE(deviceGetCount, countNames, &library->deviceGetCountName);
    REQUIRE(deviceGetHandleByIndex, handleNames, &library->deviceGetHandleByIndexName);
    REQUIRE(deviceGetUUID, uuidNames, NULL);
    REQUIRE(deviceGetName, nameNames, NULL);
    REQUIRE(deviceGetUtilizationRates, utilizationNames, NULL);
    REQUIRE(deviceGetMemoryInfo, memoryNames, NULL);
#undef REQUIRE

    // Optional: older drivers lack energy (before Volta-era NVML) and MIG mode (before R450);
    // a missing one disables that figure only.
    *(void **)(&library->deviceGetSamples) = dlsym(handle, "nvmlDeviceGetSamples");
    *(void **)(&library->deviceGetPowerUsage) = dlsym(handle, "nvmlDeviceGetPowerUsage");
    *(void **)(&library->deviceGetTotalEnergyConsumption) = dlsym(handle, "nvmlDeviceGetTotalEnergyConsumption");
    *(void **)(&library->deviceGetTemperature) = dlsym(handle, "nvmlDeviceGetTemperature");
    *(void **)(&library->deviceGetMigMode) = dlsym(handle, "nvmlDeviceGetMigMode");
    return library;
}

void cnvml_close(cnvml_library *library) {
    if (library == NULL) return;
    if (library->handle != NULL) dlclose(library->handle);
    free(library);
}

int cnvml_has(const cnvml_library *library, cnvml_optional_symbol symbol) {
    switch (symbol) {
    case CNVML_SYMBOL_SAMPLES: return library->deviceGetSamples != NULL;
    case CNVML_SYMBOL_POWER_USAGE: return library->deviceGetPowerUsage != NULL;
    case CNVML_SYMBOL_TOTAL_ENERGY: return library->deviceGetTotalEnergyConsumption != NULL;
    case CNVML_SYMBOL_TEMPERATURE: return library->deviceGetTemperature != NULL;
    case CNVML_SYMBOL_MIG_MODE: return library->deviceGetMigMode != NULL;
    }
    return 0;
}

nvmlReturn_t cnvml_init(const cnvml_library *library) { return library->init(); }

nvmlReturn_t cnvml_shutdown(const cnvml_library *library) { return library->shutdown(); }

const char *cnvml_error_string(const cnvml_library *library, nvmlReturn_t result) {
    return library->errorString(result);
}

nvmlReturn_t cnvml_device_get_count(const cnvml_library *library, unsigned int *count) {
    return library->deviceGetCount(count);
}

nvmlReturn_t cnvml_device_get_handle_by_index(const cnvml_library *library, unsigned int index, nvmlDevice_t *device) {
    return library->deviceGetHandleByIndex(index, device);
}

nvmlReturn_t cnvml_device_get_uuid(const cnvml_library *library, nvmlDevice_t device, char *uuid, unsigned int length) {
    return library->deviceGetUUID(device, uuid, length);
}

nvmlReturn_t cnvml_device_get_name(const cnvml_library *library, nvmlDevice_t device, char *name, unsigned int length) {
    return library->deviceGetName(device, name, length);
}

nvmlReturn_t cnvml_device_get_utilization_rates(const cnvml_library *library, nvmlDevice_t device,
                                                nvmlUtilization_t *utilization) {
    return library->deviceGetUtilizationRates(device, utilization);
}

nvmlReturn_t cnvml_device_get_memory_info(const cnvml_library *library, nvmlDevice_t device, nvmlMemory_t *memory) {
    return library->deviceGetMemoryInfo(device, memory);
}

nvmlReturn_t cnvml_device_get_samples(const cnvml_library *library, nvmlDevice_t device, nvmlSamplingType_t type,
                                      unsigned long long lastSeenTimeStamp, nvmlValueType_t *valueType,
                                      unsigned int *count, nvmlSample_t *samples) {
    if (library->deviceGetSamples == NULL) return NVML_ERROR_FUNCTION_NOT_FOUND;
    return library->deviceGetSamples(device, type, lastSeenTimeStamp, valueType, count, samples);
}

nvmlReturn_t cnvml_device_get_power_usage(const cnvml_library *library, nvmlDevice_t device, unsigned int *milliwatts) {
    if (library->deviceGetPowerUsage == NULL) return NVML_ERROR_FUNCTION_NOT_FOUND;
    return library->deviceGetPowerUsage(device, milliwatts);
}

nvmlReturn_t cnvml_device_get_total_energy_consumption(const cnvml_library *library, nvmlDevice_t device,
                                                       unsigned long long *millijoules) {
    if (library->deviceGetTotalEnergyConsumption == NULL) return NVML_ERROR_FUNCTION_NOT_FOUND;
    return library->deviceGetTotalEnergyConsumption(device, millijoules);
}

nvmlReturn_t cnvml_device_get_temperature(const cnvml_library *library, nvmlDevice_t device,
                                          nvmlTemperatureSensors_t sensor, unsigned int *celsius) {
    if (library->deviceGetTemperature == NULL) return NVML_ERROR_FUNCTION_NOT_FOUND;
    return library->deviceGetTemperature(device, sensor, celsius);
}

nvmlReturn_t cnvml_device_get_mig_mode(const cnvml_library *library, nvmlDevice_t device, unsigned int *current,
                                       unsigned int *pending) {
    if (library->deviceGetMigMode == NULL) return NVML_ERROR_FUNCTION_NOT_FOUND;
    return library->deviceGetMigMode(device, current, pending);
}
