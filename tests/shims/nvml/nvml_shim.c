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
 * Device keys: uuid, name (default GPU-shim-<N> / "Shim GPU"), serial (unset = not supported,
 * as on GeForce boards), and the numeric fields
 *   memory.total memory.reserved memory.free memory.used (bytes), util.gpu util.memory (%),
 *   temp temp.slowdown temp.shutdown (C), power power.limit (mW), energy (mJ),
 *   throttle (bit mask, 0x.. allowed), ecc.corrected ecc.uncorrected, fan (%),
 *   clock.sm clock.mem (MHz), lost_after (ticks), delay_ms (nvmlDeviceGetMemoryInfo_v2 blocks
 *   this long first: a hung driver call), pcie.replay, pcie.tx pcie.rx (KB/s), util.encoder
 *   util.decoder (%), ecc.corrected.aggregate ecc.uncorrected.aggregate, remap.corrected
 *   remap.uncorrected remap.pending remap.failure (rows, flags), retired.sbe retired.dbe (page
 *   counts by cause) retired.pending (flag).
 * A numeric field may be a comma list `40,45,50`: the value at tick t (the t-th handle lookup of
 * that device) is the t-th entry, the last one sticking. A field never set answers
 * NVML_ERROR_NOT_SUPPORTED, as a real driver does for what a device lacks.
 *   procs = PID:BYTES PID:BYTES ...  running compute processes (empty = none; unset = not
 *   supported).
 * After `lost_after` handle lookups, every call on the device answers NVML_ERROR_GPU_IS_LOST.
 *
 * Events: `events` is the device's supported event mask (nvmlDeviceGetSupportedEventTypes;
 * unset = NOT_SUPPORTED, as under WSL2). `xid = 13,79` is the device's XID history: each entry
 * beyond those already seen becomes, when the file is (re)read, one nvmlEventTypeXidCriticalError
 * event queued on every event set the device is registered on for XIDs, so rewriting the file
 * mid-run with one more entry delivers exactly one event. Entries present before any set was
 * registered are dropped, as NVML delivers no event from before registration. As in nvml.h, an
 * XID event carries the most recent XID the system saw at nvmlEventSetWait_v2 time.
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
    NVML_ERROR_TIMEOUT = 10,
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

/* nvmlEventData_t */
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType;
    unsigned long long eventData;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlEventData_t;

#define NVML_EVENT_TYPE_XID 0x8ULL /* nvmlEventTypeXidCriticalError */
/* Every event type nvml.h 12.x defines (nvmlEventTypeAll); other bits are invalid arguments. */
#define NVML_EVENT_TYPE_ALL 0x79fULL

#define MAX_DEVICES 256
#define MAX_SETS 16
#define MAX_QUEUED 64
#define MAX_XIDS 64
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
    F_PCIE_REPLAY, F_PCIE_TX, F_PCIE_RX, F_ENC_UTIL, F_DEC_UTIL, F_ECC_CORRECTED_AGG,
    F_ECC_UNCORRECTED_AGG, F_REMAP_CORRECTED, F_REMAP_UNCORRECTED, F_REMAP_PENDING,
    F_REMAP_FAILURE, F_RETIRED_SBE, F_RETIRED_DBE, F_RETIRED_PENDING,
    F_COUNT
};
static const char *FIELD_NAMES[F_COUNT] = {
    "memory.total", "memory.reserved", "memory.free", "memory.used", "util.gpu", "util.memory",
    "temp", "temp.slowdown", "temp.shutdown", "power", "power.limit", "energy", "throttle",
    "ecc.corrected", "ecc.uncorrected", "fan", "clock.sm", "clock.mem", "lost_after", "delay_ms",
    "pcie.replay", "pcie.tx", "pcie.rx", "util.encoder", "util.decoder", "ecc.corrected.aggregate",
    "ecc.uncorrected.aggregate", "remap.corrected", "remap.uncorrected", "remap.pending",
    "remap.failure", "retired.sbe", "retired.dbe", "retired.pending",
};

struct nvmlDevice_st {
    unsigned int index;
    char uuid[96];
    char name[96];
    char serial[32]; /* NVML_DEVICE_SERIAL_BUFFER_SIZE is 30 */
    int serial_set;
    field_t f[F_COUNT];
    int events_set;
    unsigned long long events; /* supported event mask */
    int nxids;
    unsigned long long xids[MAX_XIDS];
    int xids_seen; /* history entries already turned into events (kept across reloads) */
    int procs_set;
    int nprocs;
    unsigned int proc_pid[MAX_PROCS];
    unsigned long long proc_mem[MAX_PROCS];
    unsigned long long lookups;
};

/* An event set: the event types each device is registered for, and the events not yet waited
 * for, oldest first. */
struct nvmlEventSet_st {
    int used;
    unsigned long long types[MAX_DEVICES];
    int head, len;
    unsigned int queued_device[MAX_QUEUED];
};
typedef struct nvmlEventSet_st *nvmlEventSet_t;
static struct nvmlEventSet_st SETS[MAX_SETS];
/* The most recent XID the system saw (what every XID event reports when waited for). */
static unsigned long long LAST_XID;

static struct {
    int initialized;
    nvmlReturn_t init_result;
    char driver[80];
    unsigned int count;
    struct timespec mtime;
    unsigned int slots; /* dev[0..slots) written so far; the rest are untouched zero pages */
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
    } else if (strcmp(key, "serial") == 0) {
        snprintf(d->serial, sizeof d->serial, "%s", val);
        d->serial_set = 1;
    } else if (strcmp(key, "events") == 0) {
        d->events = strtoull(val, NULL, 0);
        d->events_set = 1;
    } else if (strcmp(key, "xid") == 0) {
        field_t f;
        parse_field(&f, val);
        d->nxids = f.n;
        memcpy(d->xids, f.v, sizeof(unsigned long long) * (size_t)f.n);
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

/* Turns each device's new XID history entries into events on the sets registered for them. */
static void deliver_xids(void) {
    for (unsigned int i = 0; i < S.slots; i++) {
        struct nvmlDevice_st *d = &S.dev[i];
        if (d->xids_seen > d->nxids) d->xids_seen = d->nxids; /* a shorter history: reset */
        for (; d->xids_seen < d->nxids; d->xids_seen++) {
            LAST_XID = d->xids[d->xids_seen];
            for (int s = 0; s < MAX_SETS; s++) {
                struct nvmlEventSet_st *set = &SETS[s];
                if (!set->used || !(set->types[i] & NVML_EVENT_TYPE_XID)) continue;
                if (set->len == MAX_QUEUED) continue; /* the driver's queue is bounded too */
                set->queued_device[(set->head + set->len) % MAX_QUEUED] = i;
                set->len++;
            }
        }
    }
}

/* How many device slots the state file addresses: its `count`, or one past its highest
 * `gpu.N.` index. A real libnvidia-ml holds state for the devices present, so the stand-in
 * writes only these slots and the 256-device table's other pages stay untouched (not resident
 * in the process that loaded it). */
static unsigned int slots_addressed(FILE *fp) {
    unsigned int slots = 0;
    char line[4096];
    while (fgets(line, sizeof line, fp)) {
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        unsigned long n = 0;
        char *end = p;
        if (strncmp(p, "count", 5) == 0 && (end = strchr(p, '=')) != NULL) {
            n = strtoul(end + 1, NULL, 10);
        } else if (strncmp(p, "gpu.", 4) == 0 && p[4] >= '0' && p[4] <= '9') {
            n = strtoul(p + 4, &end, 10) + 1;
        }
        if (n > MAX_DEVICES) n = MAX_DEVICES;
        if (n > slots) slots = (unsigned int)n;
    }
    rewind(fp);
    return slots;
}

/* Reads the state file; keeps each device's lookup count so lists advance across reloads. */
static void load_state(void) {
    const char *path = getenv("HOSTWARDEN_NVML_SHIM_STATE");
    unsigned long long lookups[MAX_DEVICES];
    int xids_seen[MAX_DEVICES];
    for (unsigned int i = 0; i < S.slots; i++) {
        lookups[i] = S.dev[i].lookups;
        xids_seen[i] = S.dev[i].xids_seen;
    }
    S.init_result = NVML_SUCCESS;
    S.count = 0;
    snprintf(S.driver, sizeof S.driver, "%s", "550.54.15");
    FILE *fp = NULL;
    if (path) {
        struct stat st;
        if (stat(path, &st) == 0) S.mtime = st.st_mtim;
        fp = fopen(path, "r");
        if (!fp) fprintf(stderr, "nvml shim: cannot open %s: %s\n", path, strerror(errno));
    }
    unsigned int slots = fp ? slots_addressed(fp) : 0;
    /* Clears what the last state wrote too, when it addressed more devices than this one. */
    memset(S.dev, 0, sizeof S.dev[0] * (slots > S.slots ? slots : S.slots));
    for (unsigned int i = 0; i < slots; i++) {
        S.dev[i].index = i;
        S.dev[i].lookups = i < S.slots ? lookups[i] : 0;
        S.dev[i].xids_seen = i < S.slots ? xids_seen[i] : 0;
        snprintf(S.dev[i].uuid, sizeof S.dev[i].uuid, "GPU-shim-%u", i);
        snprintf(S.dev[i].name, sizeof S.dev[i].name, "%s", "Shim GPU");
    }
    S.slots = slots;
    if (!fp) return;
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
            for (unsigned int i = 0; i < slots; i++) set_device_key(&S.dev[i], key + 6, val);
        } else if (strncmp(key, "gpu.", 4) == 0) {
            char *end;
            unsigned long n = strtoul(key + 4, &end, 10);
            if (*end == '.' && n < slots) set_device_key(&S.dev[n], end + 1, val);
        }
    }
    fclose(fp);
    deliver_xids();
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

/* What every call on a device answers first, in NVML's order: not initialised, a null handle
 * or out-pointer (`args_ok` false), then a device that has fallen off the bus. */
static nvmlReturn_t check_device(nvmlDevice_t d, int args_ok) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    if (!d || !args_ok) return NVML_ERROR_INVALID_ARGUMENT;
    if (is_lost(d)) return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}

/* Returns check_device's error from the calling getter. */
#define CHECK_DEVICE(d, args_ok)                                    \
    do {                                                            \
        nvmlReturn_t check_ = check_device((d), (args_ok) != 0);    \
        if (check_ != NVML_SUCCESS) return check_;                  \
    } while (0)

/* The value of a field at the device's current tick, or the NVML error to answer. */
static nvmlReturn_t get(nvmlDevice_t d, int field, unsigned long long *out) {
    CHECK_DEVICE(d, out);
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
    CHECK_DEVICE(d, 1);
    return copy_str(d->uuid, uuid, len);
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len) {
    CHECK_DEVICE(d, 1);
    return copy_str(d->name, name, len);
}

#ifndef OMIT_nvmlDeviceGetSerial
EXPORT nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t d, char *serial, unsigned int len) {
    CHECK_DEVICE(d, 1);
    if (!d->serial_set) return NVML_ERROR_NOT_SUPPORTED;
    return copy_str(d->serial, serial, len);
}
#endif

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
    /* NVML_MEMORY_ERROR_TYPE_CORRECTED/UNCORRECTED x NVML_VOLATILE_ECC (0)/NVML_AGGREGATE_ECC (1) */
    switch (error_type) {
    case 0: return get(d, counter_type ? F_ECC_CORRECTED_AGG : F_ECC_CORRECTED, count);
    case 1: return get(d, counter_type ? F_ECC_UNCORRECTED_AGG : F_ECC_UNCORRECTED, count);
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
    CHECK_DEVICE(d, count);
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

#ifndef OMIT_nvmlEventSetCreate
EXPORT nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    if (!set) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < MAX_SETS; i++) {
        if (!SETS[i].used) {
            memset(&SETS[i], 0, sizeof SETS[i]);
            SETS[i].used = 1;
            *set = &SETS[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_UNKNOWN;
}
#endif

EXPORT nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    if (!set || !set->used) return NVML_ERROR_INVALID_ARGUMENT;
    set->used = 0;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetSupportedEventTypes
EXPORT nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t d, unsigned long long *types) {
    CHECK_DEVICE(d, types);
    if (!d->events_set) return NVML_ERROR_NOT_SUPPORTED;
    *types = d->events;
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlDeviceRegisterEvents
/* nvml.h: NOT_SUPPORTED when the device lacks any of the requested types; the set is then in
 * an undefined state only for UNKNOWN. */
EXPORT nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types,
                                             nvmlEventSet_t set) {
    CHECK_DEVICE(d, set && set->used && !(types & ~NVML_EVENT_TYPE_ALL));
    if (!d->events_set || (types & ~d->events)) return NVML_ERROR_NOT_SUPPORTED;
    set->types[d->index] |= types;
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlEventSetWait_v2
/* Delivers the oldest queued event, or waits up to `timeoutms` for one (the state file is
 * re-read every 10 ms meanwhile); NVML_ERROR_TIMEOUT when none arrived. */
EXPORT nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data,
                                        unsigned int timeoutms) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    if (!set || !set->used || !data) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int waited = 0;
    while (set->len == 0) {
        if (waited >= timeoutms) return NVML_ERROR_TIMEOUT;
        struct timespec ts = {0, 10 * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        waited += 10;
        reload_if_changed();
    }
    unsigned int i = set->queued_device[set->head];
    set->head = (set->head + 1) % MAX_QUEUED;
    set->len--;
    /* Delivered even for a device that has since fallen off the bus: XID 79 is how one learns. */
    data->device = &S.dev[i];
    data->eventType = NVML_EVENT_TYPE_XID;
    data->eventData = LAST_XID;
    data->gpuInstanceId = 0xFFFFFFFFu;
    data->computeInstanceId = 0xFFFFFFFFu;
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlDeviceGetIndex
EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t d, unsigned int *index) {
    if (!S.initialized) return NVML_ERROR_UNINITIALIZED;
    if (!d || !index) return NVML_ERROR_INVALID_ARGUMENT;
    *index = d->index;
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlDeviceGetPcieReplayCounter
EXPORT nvmlReturn_t nvmlDeviceGetPcieReplayCounter(nvmlDevice_t d, unsigned int *value) {
    return get_uint(d, F_PCIE_REPLAY, value);
}
#endif

#ifndef OMIT_nvmlDeviceGetPcieThroughput
EXPORT nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t d, int counter, unsigned int *value) {
    switch (counter) {
    case 0: return get_uint(d, F_PCIE_TX, value); /* NVML_PCIE_UTIL_TX_BYTES */
    case 1: return get_uint(d, F_PCIE_RX, value); /* NVML_PCIE_UTIL_RX_BYTES */
    default: return NVML_ERROR_INVALID_ARGUMENT;
    }
}
#endif

static nvmlReturn_t codec_util(nvmlDevice_t d, int field, unsigned int *util, unsigned int *period) {
    if (!util || !period) return NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t r = get_uint(d, field, util);
    if (r == NVML_SUCCESS) *period = 167000; /* µs, as the driver samples */
    return r;
}

#ifndef OMIT_nvmlDeviceGetEncoderUtilization
EXPORT nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t d, unsigned int *util,
                                                    unsigned int *period_us) {
    return codec_util(d, F_ENC_UTIL, util, period_us);
}
#endif

#ifndef OMIT_nvmlDeviceGetDecoderUtilization
EXPORT nvmlReturn_t nvmlDeviceGetDecoderUtilization(nvmlDevice_t d, unsigned int *util,
                                                    unsigned int *period_us) {
    return codec_util(d, F_DEC_UTIL, util, period_us);
}
#endif

#ifndef OMIT_nvmlDeviceGetRemappedRows
EXPORT nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t d, unsigned int *corr,
                                              unsigned int *unc, unsigned int *pending,
                                              unsigned int *failure) {
    if (!corr || !unc || !pending || !failure) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int c, u, p, f;
    nvmlReturn_t r = get_uint(d, F_REMAP_CORRECTED, &c);
    if (r == NVML_SUCCESS) r = get_uint(d, F_REMAP_UNCORRECTED, &u);
    if (r == NVML_SUCCESS) r = get_uint(d, F_REMAP_PENDING, &p);
    if (r == NVML_SUCCESS) r = get_uint(d, F_REMAP_FAILURE, &f);
    if (r != NVML_SUCCESS) return r;
    *corr = c;
    *unc = u;
    *pending = p;
    *failure = f;
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlDeviceGetRetiredPages
static nvmlReturn_t retired_pages(nvmlDevice_t d, int cause, unsigned int *count,
                                  unsigned long long *addresses, unsigned long long *timestamps);
/* The v1 entry point (no timestamps): nvml-wrapper asks it for the count first. */
EXPORT nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t d, int cause, unsigned int *count,
                                              unsigned long long *addresses) {
    unsigned long long stamps[MAX_STEPS];
    if (count && *count > MAX_STEPS) return NVML_ERROR_INVALID_ARGUMENT;
    return retired_pages(d, cause, count, addresses, stamps);
}
#endif

#ifndef OMIT_nvmlDeviceGetRetiredPages_v2
/* nvml.h: with *count 0 (or too small) answers INSUFFICIENT_SIZE and the count needed; the
 * shim's pages sit at made-up addresses 4 KiB apart, retired at Unix time 1700000000. */
EXPORT nvmlReturn_t nvmlDeviceGetRetiredPages_v2(nvmlDevice_t d, int cause, unsigned int *count,
                                                 unsigned long long *addresses,
                                                 unsigned long long *timestamps) {
    return retired_pages(d, cause, count, addresses, timestamps);
}
#endif

static nvmlReturn_t retired_pages(nvmlDevice_t d, int cause, unsigned int *count,
                                  unsigned long long *addresses, unsigned long long *timestamps) {
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int need;
    /* NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS = 0, _DOUBLE_BIT_ECC_ERROR = 1 */
    nvmlReturn_t r = cause == 0   ? get_uint(d, F_RETIRED_SBE, &need)
                     : cause == 1 ? get_uint(d, F_RETIRED_DBE, &need)
                                  : NVML_ERROR_INVALID_ARGUMENT;
    if (r != NVML_SUCCESS) return r;
    if (*count < need) {
        *count = need;
        return need ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
    }
    if (need && (!addresses || !timestamps)) return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int i = 0; i < need; i++) {
        addresses[i] = 0x1000ULL * (i + 1);
        timestamps[i] = 1700000000ULL;
    }
    *count = need;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetRetiredPagesPendingStatus
EXPORT nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t d, int *pending) {
    unsigned int v;
    if (!pending) return NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t r = get_uint(d, F_RETIRED_PENDING, &v);
    if (r == NVML_SUCCESS) *pending = v ? 1 : 0; /* NVML_FEATURE_ENABLED / DISABLED */
    return r;
}
#endif
