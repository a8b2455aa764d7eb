/*
 * A stand-in libnvidia-ml.so for hostwarden's tests and benchmark. It exports the NVML entry
 * points hostwarden's GPU collector reaches through nvml-wrapper 0.13, with the exact C
 * signatures and struct layouts of nvml.h, so the real binding and its error mapping run.
 *
 * Devices and values come from a text file named by HOSTWARDEN_NVML_SHIM_STATE, read at
 * nvmlInit_v2 and again in nvmlDeviceGetCount_v2 whenever its mtime changed (once per tick: a
 * stat per call would make the benchmark measure the shim). Format, one `key = value` a line:
 *
 *   init = ok | driver_not_loaded | no_permission
 *   driver = 550.54.15
 *   count = 2
 *   gpu.*.KEY = V        applies to every device (before per-device lines override it)
 *   gpu.N.KEY = V        device N
 *
 * Device keys: uuid, name (default GPU-shim-<N> / "Shim GPU"), and the numeric fields
 *   memory.total memory.reserved memory.free memory.used (bytes), util.gpu util.memory (%),
 *   temp temp.slowdown temp.shutdown (C), power power.limit (mW), energy (mJ),
 *   throttle (bit mask, 0x.. allowed), ecc.corrected ecc.uncorrected, fan (%),
 *   clock.sm clock.mem (MHz), lost_after (ticks), delay_ms (nvmlDeviceGetMemoryInfo_v2 blocks
 *   this long first: a hung driver call).
 * A numeric field may be a comma list `40,45,50`: the value at tick t (the t-th handle lookup of
 * that device) is the t-th entry, the last one sticking. A field never set answers
 * NVML_ERROR_NOT_SUPPORTED, as a real driver does for what a device lacks.
 *   procs = PID:BYTES PID:BYTES ...  running compute processes (empty = none; unset = not
 *   supported).
 * After `lost_after` handle lookups, every call on the device answers NVML_ERROR_GPU_IS_LOST.
 *
 * Build with -DOMIT_<symbol> to leave an entry point out, so dlsym fails for real (an old driver).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

/* nvmlProcessInfo_t as the _v3 entry points fill it (nvmlProcessInfo_v2_st). */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

#define MAX_DEVICES 256
#define MAX_STEPS 16
#define MAX_PROCS 32

/* One numeric field: its per-tick values, or unset (NOT_SUPPORTED). */
typedef struct {
    int n;
    unsigned long long v[MAX_STEPS];
} field_t;

enum {
    F_MEM_TOTAL, F_MEM_RESERVED, F_MEM_FREE, F_MEM_USED, F_UTIL_GPU, F_UTIL_MEM, F_TEMP,
    F_TEMP_SLOWDOWN, F_TEMP_SHUTDOWN, F_POWER, F_POWER_LIMIT, F_ENERGY, F_THROTTLE,
    F_ECC_CORRECTED, F_ECC_UNCORRECTED, F_FAN, F_CLOCK_SM, F_CLOCK_MEM, F_LOST_AFTER, F_DELAY_MS,
    F_COUNT
};
static const char *FIELD_NAMES[F_COUNT] = {
    "memory.total", "memory.reserved", "memory.free", "memory.used", "util.gpu", "util.memory",
    "temp", "temp.slowdown", "temp.shutdown", "power", "power.limit", "energy", "throttle",
    "ecc.corrected", "ecc.uncorrected", "fan", "clock.sm", "clock.mem", "lost_after", "delay_ms",
};

struct nvmlDevice_st {
    unsigned int index;
    char uuid[96];
    char name[96];
    field_t f[F_COUNT];
    int procs_set;
    int nprocs;
    unsigned int proc_pid[MAX_PROCS];
    unsigned long long proc_mem[MAX_PROCS];
    unsigned long long lookups;
};
typedef struct nvmlDevice_st *nvmlDevice_t;

static struct {
    int initialized;
    nvmlReturn_t init_result;
    char driver[80];
    unsigned int count;
    struct timespec mtime;
    struct nvmlDevice_st dev[MAX_DEVICES];
} S;

static void trim(char *s) {
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) *--e = 0;
    char *b = s;
    while (*b == ' ' || *b == '\t') b++;
    if (b != s) memmove(s, b, strlen(b) + 1);
}

static void parse_field(field_t *f, const char *v) {
    f->n = 0;
    const char *p = v;
    while (*p && f->n < MAX_STEPS) {
        char *end;
        f->v[f->n++] = strtoull(p, &end, 0);
        if (end == p) break;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
}

static void parse_procs(struct nvmlDevice_st *d, const char *v) {
    d->procs_set = 1;
    d->nprocs = 0;
    const char *p = v;
    while (*p && d->nprocs < MAX_PROCS) {
        char *end;
        unsigned long pid = strtoul(p, &end, 10);
        if (end == p || *end != ':') break;
        p = end + 1;
        d->proc_pid[d->nprocs] = (unsigned int)pid;
        d->proc_mem[d->nprocs] = strtoull(p, &end, 10);
        d->nprocs++;
        p = end;
        while (*p == ' ') p++;
    }
}

static void set_device_key(struct nvmlDevice_st *d, const char *key, const char *val) {
    if (strcmp(key, "uuid") == 0) {
        snprintf(d->uuid, sizeof d->uuid, "%s", val);
    } else if (strcmp(key, "name") == 0) {
        snprintf(d->name, sizeof d->name, "%s", val);
    } else if (strcmp(key, "procs") == 0) {
        parse_procs(d, val);
    } else {
        for (int i = 0; i < F_COUNT; i++) {
            if (strcmp(key, FIELD_NAMES[i]) == 0) {
                parse_field(&d->f[i], val);
                return;
            }
        }
        fprintf(stderr, "nvml shim: unknown device key %s\n", key);
    }
}

/* Reads the state file; keeps each device's lookup count so lists advance across reloads. */
static void load_state(void) {
    const char *path = getenv("HOSTWARDEN_NVML_SHIM_STATE");
    unsigned long long lookups[MAX_DEVICES];
    for (int i = 0; i < MAX_DEVICES; i++) lookups[i] = S.dev[i].lookups;
    memset(S.dev, 0, sizeof S.dev);
    S.init_result = NVML_SUCCESS;
    S.count = 0;
    snprintf(S.driver, sizeof S.driver, "%s", "550.54.15");
    for (unsigned int i = 0; i < MAX_DEVICES; i++) {
        S.dev[i].index = i;
        S.dev[i].lookups = lookups[i];
        snprintf(S.dev[i].uuid, sizeof S.dev[i].uuid, "GPU-shim-%u", i);
        snprintf(S.dev[i].name, sizeof S.dev[i].name, "%s", "Shim GPU");
    }
    if (!path) return;
    struct stat st;
    if (stat(path, &st) == 0) S.mtime = st.st_mtim;
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "nvml shim: cannot open %s: %s\n", path, strerror(errno));
        return;
    }
    char line[4096];
    while (fgets(line, sizeof line, fp)) {
        trim(line);
        if (!line[0] || line[0] == '#') continue;
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = 0;
        char *key = line, *val = eq + 1;
        trim(key);
        trim(val);
        if (strcmp(key, "init") == 0) {
            S.init_result = strcmp(val, "driver_not_loaded") == 0 ? NVML_ERROR_DRIVER_NOT_LOADED
                            : strcmp(val, "no_permission") == 0   ? NVML_ERROR_NO_PERMISSION
                                                                  : NVML_SUCCESS;
        } else if (strcmp(key, "driver") == 0) {
            snprintf(S.driver, sizeof S.driver, "%s", val);
        } else if (strcmp(key, "count") == 0) {
            S.count = (unsigned int)strtoul(val, NULL, 10);
            if (S.count > MAX_DEVICES) S.count = MAX_DEVICES;
        } else if (strncmp(key, "gpu.*.", 6) == 0) {
            for (int i = 0; i < MAX_DEVICES; i++) set_device_key(&S.dev[i], key + 6, val);
        } else if (strncmp(key, "gpu.", 4) == 0) {
            char *end;
            unsigned long n = strtoul(key + 4, &end, 10);
            if (*end == '.' && n < MAX_DEVICES) set_device_key(&S.dev[n], end + 1, val);
        }
    }
    fclose(fp);
}

static void reload_if_changed(void) {
    const char *path = getenv("HOSTWARDEN_NVML_SHIM_STATE");
    struct stat st;
    if (!path || stat(path, &st) != 0) return;
    if (st.st_mtim.tv_sec != S.mtime.tv_sec || st.st_mtim.tv_nsec != S.mtime.tv_nsec) load_state();
}

static int is_lost(nvmlDevice_t d) {
    const field_t *f = &d->f[F_LOST_AFTER];
    return f->n > 0 && d->lookups > f->v[0];
}

/* The value of a field at the device's current tick, or the NVML error to answer. */
static nvmlReturn_t get(nvmlDevice_t d, int field, unsigned long long *out) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    if (!d || !out) return NVML_ERROR_INVALID_ARGUMENT;
    if (is_lost(d)) return NVML_ERROR_GPU_IS_LOST;
    const field_t *f = &d->f[field];
    if (f->n == 0) return NVML_ERROR_NOT_SUPPORTED;
    unsigned long long t = d->lookups ? d->lookups - 1 : 0;
    *out = f->v[t < (unsigned long long)f->n ? t : (unsigned long long)f->n - 1];
    return NVML_SUCCESS;
}

static nvmlReturn_t get_uint(nvmlDevice_t d, int field, unsigned int *out) {
    unsigned long long v;
    nvmlReturn_t r = get(d, field, &v);
    if (r == NVML_SUCCESS) *out = (unsigned int)v;
    return r;
}

static nvmlReturn_t copy_str(const char *s, char *buf, unsigned int len) {
    if (!buf) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(s) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(buf, s, strlen(s) + 1);
    return NVML_SUCCESS;
}

#define EXPORT __attribute__((visibility("default")))

#ifndef OMIT_nvmlInit_v2
EXPORT nvmlReturn_t nvmlInit_v2(void) {
    load_state();
    if (S.init_result != NVML_SUCCESS) return S.init_result;
    S.initialized = 1;
    return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlShutdown(void) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    S.initialized = 0;
    return NVML_SUCCESS;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

#ifndef OMIT_nvmlSystemGetDriverVersion
EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int len) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    return copy_str(S.driver, version, len);
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    reload_if_changed();
    *count = S.count;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    if (!device || index >= S.count) return NVML_ERROR_INVALID_ARGUMENT;
    S.dev[index].lookups++;
    *device = &S.dev[index];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int len) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    if (!d) return NVML_ERROR_INVALID_ARGUMENT;
    if (is_lost(d)) return NVML_ERROR_GPU_IS_LOST;
    return copy_str(d->uuid, uuid, len);
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    if (!d) return NVML_ERROR_INVALID_ARGUMENT;
    if (is_lost(d)) return NVML_ERROR_GPU_IS_LOST;
    return copy_str(d->name, name, len);
}

#ifndef OMIT_nvmlDeviceGetMemoryInfo_v2
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    if (!m) return NVML_ERROR_INVALID_ARGUMENT;
    /* NVML_STRUCT_VERSION(Memory, 2): catches a caller with another idea of the layout. */
    if (m->version != (unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    unsigned long long total, reserved, free, used, delay_ms;
    if (get(d, F_DELAY_MS, &delay_ms) == NVML_SUCCESS && delay_ms > 0) {
        struct timespec ts = {(time_t)(delay_ms / 1000), (long)(delay_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    }
    nvmlReturn_t r = get(d, F_MEM_TOTAL, &total);
    if (r == NVML_SUCCESS) r = get(d, F_MEM_RESERVED, &reserved);
    if (r == NVML_SUCCESS) r = get(d, F_MEM_FREE, &free);
    if (r == NVML_SUCCESS) r = get(d, F_MEM_USED, &used);
    if (r != NVML_SUCCESS) return r;
    m->total = total;
    m->reserved = reserved;
    m->free = free;
    m->used = used;
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlDeviceGetUtilizationRates
EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    if (!u) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int gpu, mem;
    nvmlReturn_t r = get_uint(d, F_UTIL_GPU, &gpu);
    if (r == NVML_SUCCESS) r = get_uint(d, F_UTIL_MEM, &mem);
    if (r != NVML_SUCCESS) return r;
    u->gpu = gpu;
    u->memory = mem;
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlDeviceGetTemperature
EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *temp) {
    if (sensor != 0) return NVML_ERROR_INVALID_ARGUMENT; /* NVML_TEMPERATURE_GPU */
    return get_uint(d, F_TEMP, temp);
}
#endif

#ifndef OMIT_nvmlDeviceGetTemperatureThreshold
EXPORT nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t d, int type,
                                                       unsigned int *temp) {
    switch (type) {
    case 0: return get_uint(d, F_TEMP_SHUTDOWN, temp); /* NVML_TEMPERATURE_THRESHOLD_SHUTDOWN */
    case 1: return get_uint(d, F_TEMP_SLOWDOWN, temp); /* NVML_TEMPERATURE_THRESHOLD_SLOWDOWN */
    default: return NVML_ERROR_NOT_SUPPORTED;
    }
}
#endif

#ifndef OMIT_nvmlDeviceGetPowerUsage
EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) {
    return get_uint(d, F_POWER, mw);
}
#endif

#ifndef OMIT_nvmlDeviceGetEnforcedPowerLimit
EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int *mw) {
    return get_uint(d, F_POWER_LIMIT, mw);
}
#endif

#ifndef OMIT_nvmlDeviceGetTotalEnergyConsumption
EXPORT nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *mj) {
    return get(d, F_ENERGY, mj);
}
#endif

#ifndef OMIT_nvmlDeviceGetCurrentClocksThrottleReasons
EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d,
                                                               unsigned long long *reasons) {
    return get(d, F_THROTTLE, reasons);
}
#endif

#ifndef OMIT_nvmlDeviceGetTotalEccErrors
EXPORT nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int error_type, int counter_type,
                                                unsigned long long *count) {
    if (counter_type != 0 && counter_type != 1) return NVML_ERROR_INVALID_ARGUMENT;
    switch (error_type) {
    case 0: return get(d, F_ECC_CORRECTED, count);
    case 1: return get(d, F_ECC_UNCORRECTED, count);
    default: return NVML_ERROR_INVALID_ARGUMENT;
    }
}
#endif

#ifndef OMIT_nvmlDeviceGetFanSpeed_v2
EXPORT nvmlReturn_t nvmlDeviceGetFanSpeed_v2(nvmlDevice_t d, unsigned int fan,
                                             unsigned int *speed) {
    if (fan != 0) return NVML_ERROR_INVALID_ARGUMENT;
    return get_uint(d, F_FAN, speed);
}
#endif

#ifndef OMIT_nvmlDeviceGetClockInfo
EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned int *mhz) {
    switch (type) {
    case 1: return get_uint(d, F_CLOCK_SM, mhz);  /* NVML_CLOCK_SM */
    case 2: return get_uint(d, F_CLOCK_MEM, mhz); /* NVML_CLOCK_MEM */
    default: return NVML_ERROR_NOT_SUPPORTED;
    }
}
#endif

#ifndef OMIT_nvmlDeviceGetComputeRunningProcesses_v3
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count,
                                                            nvmlProcessInfo_t *infos) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    if (!d || !count) return NVML_ERROR_INVALID_ARGUMENT;
    if (is_lost(d)) return NVML_ERROR_GPU_IS_LOST;
    if (!d->procs_set) return NVML_ERROR_NOT_SUPPORTED;
    unsigned int need = (unsigned int)d->nprocs;
    if (*count < need || (need > 0 && !infos)) {
        *count = need;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < need; i++) {
        infos[i].pid = d->proc_pid[i];
        infos[i].usedGpuMemory = d->proc_mem[i];
        infos[i].gpuInstanceId = 0xFFFFFFFFu;
        infos[i].computeInstanceId = 0xFFFFFFFFu;
    }
    *count = need;
    return NVML_SUCCESS;
}
#endif
