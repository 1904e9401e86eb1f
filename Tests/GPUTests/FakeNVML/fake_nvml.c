// A stand-in for libnvidia-ml.so.1, for the GPU tests: it exports the NVML entry points hostmeter
// uses, with the documented ABI, and behaves as a script tells it. It declares its own types on
// purpose (it does not include CNVML's header), as the real library would.
//
// The script is the file "<path of this .so>.script", read again at every call, so a test can
// change what the "driver" says between two samples. Each test copies the .so to its own path:
// dlopen of one path twice would share one copy and one script. Lines (# starts a comment):
//
//   init RC                      nvmlInit returns RC (default 0)
//   count N                      nvmlDeviceGetCount gives N GPUs (default 0)
//   count_rc RC                  nvmlDeviceGetCount returns RC
//   gpu I UUID NAME...           GPU I's UUID and name (default GPU-fake-I, "Fake GPU")
//   memory I TOTAL USED          bytes
//   power I MILLIWATTS
//   energy I MILLIJOULES
//   temperature I CELSIUS
//   mig I CURRENT PENDING
//   rate I PERCENT               nvmlDeviceGetUtilizationRates' gpu figure
//   samples I TS:VALUE ...       GPU I's utilization sample ring, in the order it is returned
//   sample_type I TYPE           nvmlValueType_t of the samples (default 1, unsigned int; 0 reads VALUE as double)
//   ignore_last_seen I           nvmlDeviceGetSamples returns the whole ring, old samples included
//   fail FUNCTION I RC           FUNCTION (handle uuid name rate memory samples power energy temperature mig)
//                                returns RC for GPU I
//   lost I                       every call about GPU I returns NVML_ERROR_GPU_IS_LOST
//
// A figure the script does not give is NVML_ERROR_NOT_SUPPORTED. nvmlShutdown appends a line to
// "<path>.calls". Compile-time: -DFAKE_NO_V2 exports only the unversioned init/count/handle entry
// points (an old driver); otherwise the unversioned ones exist too but fail, so a loader that
// picks them over the _v2 ones is caught. -DFAKE_OMIT_<name> leaves out entry point <name>.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int fake_return;
typedef struct nvmlDevice_st {
    unsigned int index;
} *fake_device;
typedef union {
    double dVal;
    int siVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    unsigned short usVal;
} fake_value;
typedef struct {
    unsigned long long timeStamp;
    fake_value sampleValue;
} fake_sample;
typedef struct {
    unsigned int gpu;
    unsigned int memory;
} fake_utilization;
typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} fake_memory;

enum { OK = 0, UNINITIALIZED = 1, INVALID_ARGUMENT = 2, NOT_SUPPORTED = 3, NOT_FOUND = 6, GPU_IS_LOST = 15, UNKNOWN = 999 };
enum { MAX_GPUS = 8, MAX_SAMPLES = 256 };
enum { F_HANDLE, F_UUID, F_NAME, F_RATE, F_MEMORY, F_SAMPLES, F_POWER, F_ENERGY, F_TEMPERATURE, F_MIG, F_COUNT };
static const char *const functionNames[F_COUNT] = {"handle", "uuid", "name", "rate", "memory", "samples",
                                                   "power", "energy", "temperature", "mig"};

typedef struct {
    char uuid[128];
    char name[128];
    int hasMemory, hasPower, hasEnergy, hasTemperature, hasMig, hasRate, hasSamples;
    unsigned long long memoryTotal, memoryUsed, energy;
    unsigned int power, temperature, migCurrent, migPending, rate;
    int sampleType, ignoreLastSeen, lost;
    int sampleCount;
    unsigned long long timestamps[MAX_SAMPLES];
    double values[MAX_SAMPLES];
    int fail[F_COUNT];
} fake_gpu;

typedef struct {
    int initRC, countRC;
    unsigned int count;
    fake_gpu gpus[MAX_GPUS];
} fake_script;

static struct nvmlDevice_st devices[MAX_GPUS] = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}};
static int initialized;

static const char *own_path(void) {
    Dl_info info;
    if (dladdr((void *)&own_path, &info) == 0 || info.dli_fname == NULL) return NULL;
    return info.dli_fname;
}

static void load_script(fake_script *script) {
    memset(script, 0, sizeof *script);
    for (int i = 0; i < MAX_GPUS; i++) {
        snprintf(script->gpus[i].uuid, sizeof script->gpus[i].uuid, "GPU-fake-%d", i);
        snprintf(script->gpus[i].name, sizeof script->gpus[i].name, "Fake GPU");
        script->gpus[i].sampleType = 1;
    }
    const char *path = own_path();
    if (path == NULL) return;
    char scriptPath[4096];
    snprintf(scriptPath, sizeof scriptPath, "%s.script", path);
    FILE *file = fopen(scriptPath, "r");
    if (file == NULL) return;
    char line[8192];
    while (fgets(line, sizeof line, file) != NULL) {
        line[strcspn(line, "\r\n")] = 0;
        char word[64];
        int index = 0, consumed = 0;
        if (sscanf(line, "%63s%n", word, &consumed) != 1 || word[0] == '#') continue;
        const char *rest = line + consumed;
        if (strcmp(word, "init") == 0) { sscanf(rest, "%d", &script->initRC); continue; }
        if (strcmp(word, "count") == 0) { sscanf(rest, "%u", &script->count); continue; }
        if (strcmp(word, "count_rc") == 0) { sscanf(rest, "%d", &script->countRC); continue; }
        if (strcmp(word, "fail") == 0) {
            char function[64];
            int rc = 0;
            if (sscanf(rest, "%63s %d %d", function, &index, &rc) != 3 || index < 0 || index >= MAX_GPUS) continue;
            for (int f = 0; f < F_COUNT; f++)
                if (strcmp(function, functionNames[f]) == 0) script->gpus[index].fail[f] = rc;
            continue;
        }
        int more = 0;
        if (sscanf(rest, "%d%n", &index, &more) != 1 || index < 0 || index >= MAX_GPUS) continue;
        rest += more;
        fake_gpu *gpu = &script->gpus[index];
        if (strcmp(word, "gpu") == 0) {
            int nameAt = 0;
            if (sscanf(rest, "%127s %n", gpu->uuid, &nameAt) >= 1 && nameAt > 0)
                snprintf(gpu->name, sizeof gpu->name, "%s", rest + nameAt);
        } else if (strcmp(word, "memory") == 0) {
            gpu->hasMemory = sscanf(rest, "%llu %llu", &gpu->memoryTotal, &gpu->memoryUsed) == 2;
        } else if (strcmp(word, "power") == 0) {
            gpu->hasPower = sscanf(rest, "%u", &gpu->power) == 1;
        } else if (strcmp(word, "energy") == 0) {
            gpu->hasEnergy = sscanf(rest, "%llu", &gpu->energy) == 1;
        } else if (strcmp(word, "temperature") == 0) {
            gpu->hasTemperature = sscanf(rest, "%u", &gpu->temperature) == 1;
        } else if (strcmp(word, "mig") == 0) {
            gpu->hasMig = sscanf(rest, "%u %u", &gpu->migCurrent, &gpu->migPending) == 2;
        } else if (strcmp(word, "rate") == 0) {
            gpu->hasRate = sscanf(rest, "%u", &gpu->rate) == 1;
        } else if (strcmp(word, "sample_type") == 0) {
            sscanf(rest, "%d", &gpu->sampleType);
        } else if (strcmp(word, "ignore_last_seen") == 0) {
            gpu->ignoreLastSeen = 1;
        } else if (strcmp(word, "lost") == 0) {
            gpu->lost = 1;
        } else if (strcmp(word, "samples") == 0) {
            gpu->hasSamples = 1;
            gpu->sampleCount = 0;
            unsigned long long timestamp;
            double value;
            int used = 0;
            while (gpu->sampleCount < MAX_SAMPLES && sscanf(rest, " %llu:%lf%n", &timestamp, &value, &used) == 2) {
                gpu->timestamps[gpu->sampleCount] = timestamp;
                gpu->values[gpu->sampleCount] = value;
                gpu->sampleCount++;
                rest += used;
            }
        }
    }
    fclose(file);
}

// Loads the script and finds the GPU a call is about; returns 0 and sets *result when the call
// must fail before it gets to its figure.
static fake_gpu *begin(fake_script *script, fake_device device, int function, fake_return *result) {
    if (!initialized) { *result = UNINITIALIZED; return NULL; }
    if (device == NULL || device->index >= MAX_GPUS) { *result = INVALID_ARGUMENT; return NULL; }
    load_script(script);
    fake_gpu *gpu = &script->gpus[device->index];
    if (device->index >= script->count) { *result = INVALID_ARGUMENT; return NULL; }
    if (gpu->lost) { *result = GPU_IS_LOST; return NULL; }
    if (gpu->fail[function] != 0) { *result = gpu->fail[function]; return NULL; }
    *result = OK;
    return gpu;
}

static fake_return do_init(void) {
    fake_script script;
    load_script(&script);
    if (script.initRC != OK) return script.initRC;
    initialized++;
    return OK;
}

static fake_return do_count(unsigned int *count) {
    if (!initialized) return UNINITIALIZED;
    if (count == NULL) return INVALID_ARGUMENT;
    fake_script script;
    load_script(&script);
    if (script.countRC != OK) return script.countRC;
    *count = script.count;
    return OK;
}

static fake_return do_handle(unsigned int index, fake_device *device) {
    if (!initialized) return UNINITIALIZED;
    if (device == NULL || index >= MAX_GPUS) return INVALID_ARGUMENT;
    fake_script script;
    fake_return result;
    if (begin(&script, &devices[index], F_HANDLE, &result) == NULL) return result;
    *device = &devices[index];
    return OK;
}

#ifdef FAKE_NO_V2
fake_return nvmlInit(void) { return do_init(); }
fake_return nvmlDeviceGetCount(unsigned int *count) { return do_count(count); }
fake_return nvmlDeviceGetHandleByIndex(unsigned int index, fake_device *device) { return do_handle(index, device); }
#else
fake_return nvmlInit_v2(void) { return do_init(); }
fake_return nvmlDeviceGetCount_v2(unsigned int *count) { return do_count(count); }
fake_return nvmlDeviceGetHandleByIndex_v2(unsigned int index, fake_device *device) { return do_handle(index, device); }
// The pre-5.319 entry points: present, as in every real library, but wrong here on purpose.
fake_return nvmlInit(void) { return UNKNOWN; }
fake_return nvmlDeviceGetCount(unsigned int *count) { (void)count; return UNKNOWN; }
fake_return nvmlDeviceGetHandleByIndex(unsigned int index, fake_device *device) {
    (void)index; (void)device;
    return UNKNOWN;
}
#endif

fake_return nvmlShutdown(void) {
    if (initialized > 0) initialized--;
    const char *path = own_path();
    if (path != NULL) {
        char callsPath[4096];
        snprintf(callsPath, sizeof callsPath, "%s.calls", path);
        FILE *file = fopen(callsPath, "a");
        if (file != NULL) {
            fputs("nvmlShutdown\n", file);
            fclose(file);
        }
    }
    return OK;
}

const char *nvmlErrorString(fake_return result) {
    // Texts differ from the real library's on purpose: tests check these reach the user unchanged.
    switch (result) {
    case OK: return "fake: Success";
    case UNINITIALIZED: return "fake: Uninitialized";
    case INVALID_ARGUMENT: return "fake: Invalid Argument";
    case NOT_SUPPORTED: return "fake: Not Supported";
    case 4: return "fake: Insufficient Permissions";
    case NOT_FOUND: return "fake: Not Found";
    case 9: return "fake: Driver Not Loaded";
    case GPU_IS_LOST: return "fake: GPU is lost";
    default: return "fake: Unknown Error";
    }
}

#ifndef FAKE_OMIT_nvmlDeviceGetUUID
fake_return nvmlDeviceGetUUID(fake_device device, char *uuid, unsigned int length) {
    fake_script script;
    fake_return result;
    fake_gpu *gpu = begin(&script, device, F_UUID, &result);
    if (gpu == NULL) return result;
    if (uuid == NULL || strlen(gpu->uuid) + 1 > length) return 7;
    strcpy(uuid, gpu->uuid);
    return OK;
}
#endif

fake_return nvmlDeviceGetName(fake_device device, char *name, unsigned int length) {
    fake_script script;
    fake_return result;
    fake_gpu *gpu = begin(&script, device, F_NAME, &result);
    if (gpu == NULL) return result;
    if (name == NULL || strlen(gpu->name) + 1 > length) return 7;
    strcpy(name, gpu->name);
    return OK;
}

fake_return nvmlDeviceGetUtilizationRates(fake_device device, fake_utilization *utilization) {
    fake_script script;
    fake_return result;
    fake_gpu *gpu = begin(&script, device, F_RATE, &result);
    if (gpu == NULL) return result;
    if (!gpu->hasRate) return NOT_SUPPORTED;
    utilization->gpu = gpu->rate;
    utilization->memory = 0;
    return OK;
}

fake_return nvmlDeviceGetMemoryInfo(fake_device device, fake_memory *memory) {
    fake_script script;
    fake_return result;
    fake_gpu *gpu = begin(&script, device, F_MEMORY, &result);
    if (gpu == NULL) return result;
    if (!gpu->hasMemory) return NOT_SUPPORTED;
    memory->total = gpu->memoryTotal;
    memory->used = gpu->memoryUsed;
    memory->free = gpu->memoryTotal - gpu->memoryUsed;
    return OK;
}

#ifndef FAKE_OMIT_nvmlDeviceGetSamples
fake_return nvmlDeviceGetSamples(fake_device device, int type, unsigned long long lastSeen, int *valueType,
                                 unsigned int *count, fake_sample *samples) {
    fake_script script;
    fake_return result;
    fake_gpu *gpu = begin(&script, device, F_SAMPLES, &result);
    if (gpu == NULL) return result;
    if (type != 1 || !gpu->hasSamples) return NOT_SUPPORTED;
    if (valueType == NULL || count == NULL) return INVALID_ARGUMENT;
    *valueType = gpu->sampleType;
    if (samples == NULL) {
        // As NVML does: with no buffer, how many entries to allocate (the ring's size).
        *count = (unsigned int)gpu->sampleCount;
        return OK;
    }
    unsigned int written = 0;
    for (int i = 0; i < gpu->sampleCount && written < *count; i++) {
        if (!gpu->ignoreLastSeen && gpu->timestamps[i] <= lastSeen) continue;
        samples[written].timeStamp = gpu->timestamps[i];
        if (gpu->sampleType == 0) samples[written].sampleValue.dVal = gpu->values[i];
        else samples[written].sampleValue.uiVal = (unsigned int)gpu->values[i];
        written++;
    }
    if (written == 0) return NOT_FOUND;
    *count = written;
    return OK;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetPowerUsage
fake_return nvmlDeviceGetPowerUsage(fake_device device, unsigned int *milliwatts) {
    fake_script script;
    fake_return result;
    fake_gpu *gpu = begin(&script, device, F_POWER, &result);
    if (gpu == NULL) return result;
    if (!gpu->hasPower) return NOT_SUPPORTED;
    *milliwatts = gpu->power;
    return OK;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetTotalEnergyConsumption
fake_return nvmlDeviceGetTotalEnergyConsumption(fake_device device, unsigned long long *millijoules) {
    fake_script script;
    fake_return result;
    fake_gpu *gpu = begin(&script, device, F_ENERGY, &result);
    if (gpu == NULL) return result;
    if (!gpu->hasEnergy) return NOT_SUPPORTED;
    *millijoules = gpu->energy;
    return OK;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetTemperature
fake_return nvmlDeviceGetTemperature(fake_device device, int sensor, unsigned int *celsius) {
    fake_script script;
    fake_return result;
    fake_gpu *gpu = begin(&script, device, F_TEMPERATURE, &result);
    if (gpu == NULL) return result;
    if (sensor != 0) return INVALID_ARGUMENT;
    if (!gpu->hasTemperature) return NOT_SUPPORTED;
    *celsius = gpu->temperature;
    return OK;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetMigMode
fake_return nvmlDeviceGetMigMode(fake_device device, unsigned int *current, unsigned int *pending) {
    fake_script script;
    fake_return result;
    fake_gpu *gpu = begin(&script, device, F_MIG, &result);
    if (gpu == NULL) return result;
    if (!gpu->hasMig) return NOT_SUPPORTED;
    *current = gpu->migCurrent;
    *pending = gpu->migPending;
    return OK;
}
#endif
