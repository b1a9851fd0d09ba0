/*
 * A fake NVIDIA driver library for tests: libnvidia-ml.so.1 without a GPU.
 *
 * Built by the test suite (tests/fake_nvml/__init__.py) with the system C compiler and soname
 * libnvidia-ml.so.1, then loaded through pynvml's real ctypes bindings (LD_LIBRARY_PATH in a
 * subprocess). It implements the NVML calls gpu-cost-meter makes, with the same structs and
 * return codes, driven by a scenario file named by FAKE_NVML_SCENARIO:
 *
 *   driver_version = 550.54.15          # global keys
 *   cuda_driver_version = 12040
 *   init_error = 0                      # NVML return code of nvmlInit (9: no driver, 18: mismatch)
 *   counter_update_ms = 100             # how often the energy counter advances
 *   [gpu 0]
 *   name = NVIDIA H100 80GB HBM3
 *   uuid = GPU-...
 *   power_mw = 100000,700000            # a trace: each value lasts power_step_ms, then it cycles
 *   power_step_ms = 100
 *   util = 0,100   mem_util = 0,50   sm_clock_mhz = 1980   temperature_c = 50   throttle = 0,4
 *   unsupported = energy,power_instant  # these answer NVML_ERROR_NOT_SUPPORTED
 *   lost_after_calls = 40               # later calls answer NVML_ERROR_GPU_IS_LOST
 *   energy_reset_at_ms = 1500           # the energy counter restarts from 0 (driver reload)
 *   mig = 1                             # MIG mode on: utilization is not supported
 *   sm_activity = 20,90  tensor_activity = 0,60  dram_bw = 10,40   # GPM traces in percent (Hopper+)
 *   xid = 1200:79,1500:13               # XID events: at ms since load, the XID code
 *   ecc_corrected_volatile = 3  ecc_uncorrected_volatile = 0  ecc_corrected_aggregate = 40  ...
 *   remapped_correctable = 2  remapped_uncorrectable = 1  remap_pending = 1  remap_failure = 0
 *   processes = 4242:1073741824,4343:0  # compute processes, pid:used bytes
 *   unsupported = gpm,ecc,row_remap,xid,processes   # and any telemetry field above
 *
 * Time is milliseconds since the scenario was loaded (the first nvmlInit). The energy counter is
 * the exact integral of the power trace, sampled every counter_update_ms, as on real GPUs.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_GPUS 16
#define MAX_TRACE 256
#define MAX_EVENTS 64
#define MAX_PROCS 32

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0, NVML_ERROR_UNINITIALIZED = 1, NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3, NVML_ERROR_INSUFFICIENT_SIZE = 7, NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_NOT_FOUND = 6, NVML_ERROR_TIMEOUT = 10, NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18, NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25, NVML_ERROR_UNKNOWN = 999
};

typedef struct { long n; long v[MAX_TRACE]; } trace_t;

typedef struct {
    char name[96], uuid[96], pci_bus_id[32];
    unsigned arch, mig;
    unsigned long long memory_total, memory_used;
    trace_t power_mw, util, mem_util, sm_clock, mem_clock, temperature, throttle;
    long power_step_ms;
    unsigned max_sm_clock, max_mem_clock, power_limit_mw;
    long lost_after_calls, energy_reset_at_ms;
    unsigned long long energy_offset_mj;
    char unsupported[512];
    long calls;
    trace_t sm_activity, tensor_activity, dram_bw;
    long n_xid, xid_at_ms[MAX_EVENTS], xid_code[MAX_EVENTS];
    unsigned long long ecc[4]; /* corrected volatile, uncorrected volatile, corrected aggregate, uncorrected aggregate */
    unsigned remapped_correctable, remapped_uncorrectable, remap_pending, remap_failure;
    long n_procs;
    unsigned proc_pid[MAX_PROCS];
    unsigned long long proc_bytes[MAX_PROCS];
} gpu_t;

static struct {
    char driver_version[80], nvml_version[80];
    int cuda_driver_version, init_error, count;
    long counter_update_ms;
    gpu_t gpu[MAX_GPUS];
} S;

static int refcount = 0;
static double t0_ms = 0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* ---------- scenario ---------- */

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *strip(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

static void parse_trace(trace_t *t, const char *text) {
    t->n = 0;
    const char *p = text;
    while (*p && t->n < MAX_TRACE) {
        char *end;
        long v = strtol(p, &end, 0);
        if (end == p) break;
        t->v[t->n++] = v;
        p = end;
        while (*p == ',' || isspace((unsigned char)*p)) p++;
    }
}

static void set_trace(trace_t *t, long v) { t->n = 1; t->v[0] = v; }

static void defaults(void) {
    memset(&S, 0, sizeof S);
    strcpy(S.driver_version, "550.54.15");
    strcpy(S.nvml_version, "12.550.54.15");
    S.cuda_driver_version = 12040;
    S.counter_update_ms = 100;
    for (int i = 0; i < MAX_GPUS; i++) {
        gpu_t *g = &S.gpu[i];
        snprintf(g->name, sizeof g->name, "NVIDIA H100 80GB HBM3");
        snprintf(g->uuid, sizeof g->uuid, "GPU-fa4e0000-0000-0000-0000-%012d", i);
        snprintf(g->pci_bus_id, sizeof g->pci_bus_id, "00000000:%02X:00.0", 0x18 + i);
        g->arch = 9;
        g->memory_total = 85899345920ULL;
        g->memory_used = 1073741824ULL;
        set_trace(&g->power_mw, 100000);
        set_trace(&g->util, 0);
        set_trace(&g->mem_util, 0);
        set_trace(&g->sm_clock, 1980);
        set_trace(&g->mem_clock, 2619);
        set_trace(&g->temperature, 40);
        set_trace(&g->throttle, 0);
        g->power_step_ms = 100;
        g->max_sm_clock = 1980;
        g->max_mem_clock = 2619;
        g->power_limit_mw = 700000;
        g->lost_after_calls = -1;
        g->energy_reset_at_ms = -1;
        set_trace(&g->sm_activity, 0);
        set_trace(&g->tensor_activity, 0);
        set_trace(&g->dram_bw, 0);
    }
}

/* "at:value,at:value" pairs, e.g. XID events or processes */
static long parse_pairs(const char *text, long *a, long *b, long max) {
    long n = 0;
    const char *p = text;
    while (*p && n < max) {
        char *end;
        long x = strtol(p, &end, 0);
        if (end == p || *end != ':') break;
        p = end + 1;
        long y = strtol(p, &end, 0);
        if (end == p) break;
        a[n] = x;
        b[n] = y;
        n++;
        p = end;
        while (*p == ',' || isspace((unsigned char)*p)) p++;
    }
    return n;
}

static void parse_procs(gpu_t *g, const char *text) {
    long pids[MAX_PROCS], bytes[MAX_PROCS];
    g->n_procs = parse_pairs(text, pids, bytes, MAX_PROCS);
    for (long i = 0; i < g->n_procs; i++) {
        g->proc_pid[i] = (unsigned)pids[i];
        g->proc_bytes[i] = (unsigned long long)bytes[i];
    }
}

static int load_scenario(void) {
    defaults();
    const char *path = getenv("FAKE_NVML_SCENARIO");
    if (!path) return -1;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[2048];
    gpu_t *g = NULL;
    while (fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = strip(line);
        if (!*s) continue;
        int idx;
        if (sscanf(s, "[gpu %d]", &idx) == 1) {
            g = (idx >= 0 && idx < MAX_GPUS) ? &S.gpu[idx] : NULL;
            if (g && idx + 1 > S.count) S.count = idx + 1;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) continue;
        *eq = 0;
        char *key = strip(s), *val = strip(eq + 1);
        if (!g) {
            if (!strcmp(key, "driver_version")) snprintf(S.driver_version, sizeof S.driver_version, "%s", val);
            else if (!strcmp(key, "nvml_version")) snprintf(S.nvml_version, sizeof S.nvml_version, "%s", val);
            else if (!strcmp(key, "cuda_driver_version")) S.cuda_driver_version = atoi(val);
            else if (!strcmp(key, "init_error")) S.init_error = atoi(val);
            else if (!strcmp(key, "counter_update_ms")) S.counter_update_ms = atol(val);
            continue;
        }
        if (!strcmp(key, "name")) snprintf(g->name, sizeof g->name, "%s", val);
        else if (!strcmp(key, "uuid")) snprintf(g->uuid, sizeof g->uuid, "%s", val);
        else if (!strcmp(key, "pci_bus_id")) snprintf(g->pci_bus_id, sizeof g->pci_bus_id, "%s", val);
        else if (!strcmp(key, "arch")) g->arch = (unsigned)atoi(val);
        else if (!strcmp(key, "mig")) g->mig = (unsigned)atoi(val);
        else if (!strcmp(key, "memory_total")) g->memory_total = strtoull(val, NULL, 0);
        else if (!strcmp(key, "memory_used")) g->memory_used = strtoull(val, NULL, 0);
        else if (!strcmp(key, "power_mw")) parse_trace(&g->power_mw, val);
        else if (!strcmp(key, "power_step_ms")) g->power_step_ms = atol(val);
        else if (!strcmp(key, "util")) parse_trace(&g->util, val);
        else if (!strcmp(key, "mem_util")) parse_trace(&g->mem_util, val);
        else if (!strcmp(key, "sm_clock_mhz")) parse_trace(&g->sm_clock, val);
        else if (!strcmp(key, "mem_clock_mhz")) parse_trace(&g->mem_clock, val);
        else if (!strcmp(key, "temperature_c")) parse_trace(&g->temperature, val);
        else if (!strcmp(key, "throttle")) parse_trace(&g->throttle, val);
        else if (!strcmp(key, "max_sm_clock_mhz")) g->max_sm_clock = (unsigned)atoi(val);
        else if (!strcmp(key, "max_mem_clock_mhz")) g->max_mem_clock = (unsigned)atoi(val);
        else if (!strcmp(key, "power_limit_mw")) g->power_limit_mw = (unsigned)atoi(val);
        else if (!strcmp(key, "lost_after_calls")) g->lost_after_calls = atol(val);
        else if (!strcmp(key, "energy_reset_at_ms")) g->energy_reset_at_ms = atol(val);
        else if (!strcmp(key, "energy_offset_mj")) g->energy_offset_mj = strtoull(val, NULL, 0);
        else if (!strcmp(key, "unsupported")) snprintf(g->unsupported, sizeof g->unsupported, ",%s,", val);
        else if (!strcmp(key, "sm_activity")) parse_trace(&g->sm_activity, val);
        else if (!strcmp(key, "tensor_activity")) parse_trace(&g->tensor_activity, val);
        else if (!strcmp(key, "dram_bw")) parse_trace(&g->dram_bw, val);
        else if (!strcmp(key, "xid")) g->n_xid = parse_pairs(val, g->xid_at_ms, g->xid_code, MAX_EVENTS);
        else if (!strcmp(key, "ecc_corrected_volatile")) g->ecc[0] = strtoull(val, NULL, 0);
        else if (!strcmp(key, "ecc_uncorrected_volatile")) g->ecc[1] = strtoull(val, NULL, 0);
        else if (!strcmp(key, "ecc_corrected_aggregate")) g->ecc[2] = strtoull(val, NULL, 0);
        else if (!strcmp(key, "ecc_uncorrected_aggregate")) g->ecc[3] = strtoull(val, NULL, 0);
        else if (!strcmp(key, "remapped_correctable")) g->remapped_correctable = (unsigned)atoi(val);
        else if (!strcmp(key, "remapped_uncorrectable")) g->remapped_uncorrectable = (unsigned)atoi(val);
        else if (!strcmp(key, "remap_pending")) g->remap_pending = (unsigned)atoi(val);
        else if (!strcmp(key, "remap_failure")) g->remap_failure = (unsigned)atoi(val);
        else if (!strcmp(key, "processes")) parse_procs(g, val);
    }
    fclose(f);
    return 0;
}

/* ---------- time-driven values ---------- */

static double now(void) { return mono_ms() - t0_ms; }

static long trace_at(const trace_t *t, long step_ms, double ms) {
    if (t->n == 0) return 0;
    long i = (long)(ms / (double)step_ms);
    return t->v[i % t->n];
}

/* Energy in mJ of the power trace from 0 to ms (mW x s). */
static double energy_mj(const gpu_t *g, double ms) {
    if (ms <= 0) return 0;
    long step = g->power_step_ms;
    long full = (long)(ms / step);
    double e = 0;
    for (long i = 0; i < full; i++) e += g->power_mw.v[i % g->power_mw.n] * (step / 1000.0);
    e += g->power_mw.v[full % g->power_mw.n] * ((ms - full * (double)step) / 1000.0);
    return e;
}

static int unsupported(const gpu_t *g, const char *field) {
    char key[64];
    snprintf(key, sizeof key, ",%s,", field);
    return strstr(g->unsupported, key) != NULL;
}

/* Every device call: count it, and answer GPU_IS_LOST once the scenario says the GPU is gone. */
static nvmlReturn_t enter(void *device, gpu_t **out) {
    if (refcount == 0) return NVML_ERROR_UNINITIALIZED;
    gpu_t *g = (gpu_t *)device;
    if (g < &S.gpu[0] || g >= &S.gpu[S.count]) return NVML_ERROR_INVALID_ARGUMENT;
    pthread_mutex_lock(&lock);
    g->calls++;
    long calls = g->calls;
    pthread_mutex_unlock(&lock);
    if (g->lost_after_calls >= 0 && calls > g->lost_after_calls) return NVML_ERROR_GPU_IS_LOST;
    *out = g;
    return NVML_SUCCESS;
}

#define ENTER(dev)                             \
    gpu_t *g;                                  \
    nvmlReturn_t rc_ = enter((dev), &g);       \
    if (rc_ != NVML_SUCCESS) return rc_;

static nvmlReturn_t copy_string(char *dst, unsigned size, const char *src) {
    if (!dst) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(src) + 1 > size) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(dst, src);
    return NVML_SUCCESS;
}

/* ---------- library ---------- */

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    pthread_mutex_lock(&lock);
    nvmlReturn_t rc = NVML_SUCCESS;
    if (refcount == 0) {
        if (load_scenario() != 0) {
            fprintf(stderr, "fake NVML: FAKE_NVML_SCENARIO is unset or unreadable\n");
            rc = NVML_ERROR_UNKNOWN;
        } else if (S.init_error) {
            rc = S.init_error;
        } else {
            t0_ms = mono_ms();
        }
    }
    if (rc == NVML_SUCCESS) refcount++;
    pthread_mutex_unlock(&lock);
    return rc;
}

nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void) {
    pthread_mutex_lock(&lock);
    nvmlReturn_t rc = refcount > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
    if (refcount > 0) refcount--;
    pthread_mutex_unlock(&lock);
    return rc;
}

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return "RM has detected an NVML/RM version mismatch.";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned n) {
    return refcount ? copy_string(v, n, S.driver_version) : NVML_ERROR_UNINITIALIZED;
}
nvmlReturn_t nvmlSystemGetNVMLVersion(char *v, unsigned n) {
    return refcount ? copy_string(v, n, S.nvml_version) : NVML_ERROR_UNINITIALIZED;
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    *v = S.cuda_driver_version;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { return nvmlSystemGetCudaDriverVersion(v); }

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    *count = (unsigned)S.count;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCount(unsigned *count) { return nvmlDeviceGetCount_v2(count); }

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned idx, void **device) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    if (idx >= (unsigned)S.count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &S.gpu[idx];
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned idx, void **device) { return nvmlDeviceGetHandleByIndex_v2(idx, device); }

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, void **device) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    for (int i = 0; i < S.count; i++)
        if (!strcmp(S.gpu[i].uuid, uuid)) {
            *device = &S.gpu[i];
            return NVML_SUCCESS;
        }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetIndex(void *dev, unsigned *idx) {
    ENTER(dev);
    *idx = (unsigned)(g - S.gpu);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(void *dev, char *name, unsigned n) { ENTER(dev); return copy_string(name, n, g->name); }
nvmlReturn_t nvmlDeviceGetUUID(void *dev, char *uuid, unsigned n) { ENTER(dev); return copy_string(uuid, n, g->uuid); }

typedef struct {
    char busIdLegacy[16];
    unsigned domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

nvmlReturn_t nvmlDeviceGetPciInfo_v3(void *dev, nvmlPciInfo_t *pci) {
    ENTER(dev);
    memset(pci, 0, sizeof *pci);
    snprintf(pci->busId, sizeof pci->busId, "%s", g->pci_bus_id);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%.15s", g->pci_bus_id + 4);
    pci->pciDeviceId = 0x233010de;
    return NVML_SUCCESS;
}

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;

nvmlReturn_t nvmlDeviceGetMemoryInfo(void *dev, nvmlMemory_t *m) {
    ENTER(dev);
    if (unsupported(g, "memory")) return NVML_ERROR_NOT_SUPPORTED;
    m->total = g->memory_total;
    m->used = g->memory_used;
    m->free = g->memory_total - g->memory_used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(void *dev, nvmlMemory_v2_t *m) {
    ENTER(dev);
    if (unsupported(g, "memory")) return NVML_ERROR_NOT_SUPPORTED;
    m->total = g->memory_total;
    m->reserved = 0;
    m->used = g->memory_used;
    m->free = g->memory_total - g->memory_used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(void *dev, unsigned *current, unsigned *pending) {
    ENTER(dev);
    if (unsupported(g, "mig")) return NVML_ERROR_NOT_SUPPORTED;
    *current = *pending = g->mig;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetArchitecture(void *dev, unsigned *arch) {
    ENTER(dev);
    *arch = g->arch;
    return NVML_SUCCESS;
}

typedef struct { unsigned gpu, memory; } nvmlUtilization_t;

nvmlReturn_t nvmlDeviceGetUtilizationRates(void *dev, nvmlUtilization_t *u) {
    ENTER(dev);
    if (g->mig || unsupported(g, "utilization")) return NVML_ERROR_NOT_SUPPORTED;  /* as on MIG-enabled GPUs */
    double t = now();
    u->gpu = (unsigned)trace_at(&g->util, g->power_step_ms, t);
    u->memory = (unsigned)trace_at(&g->mem_util, g->power_step_ms, t);
    return NVML_SUCCESS;
}

static unsigned average_power_mw(const gpu_t *g, double t) {
    double window = t < 1000 ? t : 1000;
    if (window <= 0) return (unsigned)g->power_mw.v[0];
    return (unsigned)((energy_mj(g, t) - energy_mj(g, t - window)) / (window / 1000.0));
}

nvmlReturn_t nvmlDeviceGetPowerUsage(void *dev, unsigned *mw) {
    ENTER(dev);
    if (unsupported(g, "power_usage")) return NVML_ERROR_NOT_SUPPORTED;
    *mw = average_power_mw(g, now());  /* Ampere and newer: averaged over 1 s */
    return NVML_SUCCESS;
}

typedef union { double d; unsigned ui; unsigned long ul; unsigned long long ull; long long sll; int si; unsigned short us; } nvmlValue_t;
typedef struct {
    unsigned fieldId, scopeId;
    long long timestamp, latencyUsec;
    unsigned valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

nvmlReturn_t nvmlDeviceGetFieldValues(void *dev, int count, nvmlFieldValue_t *values) {
    ENTER(dev);
    double t = now();
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *v = &values[i];
        v->timestamp = (long long)((t0_ms + t) * 1000);
        v->latencyUsec = 0;
        v->valueType = 1; /* unsigned int */
        v->nvmlReturn = NVML_SUCCESS;
        if (v->fieldId == 186 && !unsupported(g, "power_instant")) {
            v->value.ui = (unsigned)trace_at(&g->power_mw, g->power_step_ms, t);
        } else if (v->fieldId == 185 && !unsupported(g, "power_average")) {
            v->value.ui = average_power_mw(g, t);
        } else {
            v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        }
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(void *dev, unsigned long long *mj) {
    ENTER(dev);
    if (unsupported(g, "energy") || g->arch < 5) return NVML_ERROR_NOT_SUPPORTED;  /* Volta and newer only */
    double t = now();
    double tick = (double)S.counter_update_ms;
    double last_update = tick > 0 ? ((long)(t / tick)) * tick : t;
    double e = energy_mj(g, last_update) + (double)g->energy_offset_mj;
    if (g->energy_reset_at_ms >= 0 && t >= g->energy_reset_at_ms)
        e = energy_mj(g, last_update) - energy_mj(g, (double)g->energy_reset_at_ms);
    *mj = e < 0 ? 0 : (unsigned long long)e;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(void *dev, int type, unsigned *mhz) {
    ENTER(dev);
    if (unsupported(g, "clocks")) return NVML_ERROR_NOT_SUPPORTED;
    double t = now();
    if (type == 1) *mhz = (unsigned)trace_at(&g->sm_clock, g->power_step_ms, t);       /* NVML_CLOCK_SM */
    else if (type == 2) *mhz = (unsigned)trace_at(&g->mem_clock, g->power_step_ms, t);  /* NVML_CLOCK_MEM */
    else if (type == 0) *mhz = (unsigned)trace_at(&g->sm_clock, g->power_step_ms, t);  /* graphics */
    else return NVML_ERROR_NOT_SUPPORTED;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxClockInfo(void *dev, int type, unsigned *mhz) {
    ENTER(dev);
    if (unsupported(g, "clocks")) return NVML_ERROR_NOT_SUPPORTED;
    if (type == 0 || type == 1) *mhz = g->max_sm_clock;
    else if (type == 2) *mhz = g->max_mem_clock;
    else return NVML_ERROR_NOT_SUPPORTED;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(void *dev, unsigned long long *reasons) {
    ENTER(dev);
    if (unsupported(g, "throttle")) return NVML_ERROR_NOT_SUPPORTED;
    *reasons = (unsigned long long)trace_at(&g->throttle, g->power_step_ms, now());
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(void *dev, unsigned long long *reasons) {
    return nvmlDeviceGetCurrentClocksEventReasons(dev, reasons);
}

nvmlReturn_t nvmlDeviceGetTemperature(void *dev, int sensor, unsigned *c) {
    ENTER(dev);
    if (sensor != 0 || unsupported(g, "temperature")) return NVML_ERROR_NOT_SUPPORTED;
    *c = (unsigned)trace_at(&g->temperature, g->power_step_ms, now());
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(void *dev, unsigned *mw) {
    ENTER(dev);
    if (unsupported(g, "power_limit")) return NVML_ERROR_NOT_SUPPORTED;
    *mw = g->power_limit_mw;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetPowerManagementLimit(void *dev, unsigned *mw) { return nvmlDeviceGetEnforcedPowerLimit(dev, mw); }


/* ---------- health: ECC, row remapping, XID events ---------- */

nvmlReturn_t nvmlDeviceGetTotalEccErrors(void *dev, int error_type, int counter_type, unsigned long long *count) {
    ENTER(dev);
    if (unsupported(g, "ecc")) return NVML_ERROR_NOT_SUPPORTED;
    if (error_type < 0 || error_type > 1 || counter_type < 0 || counter_type > 1) return NVML_ERROR_INVALID_ARGUMENT;
    *count = g->ecc[counter_type * 2 + error_type]; /* NVML_VOLATILE_ECC 0 / AGGREGATE 1; CORRECTED 0 / UNCORRECTED 1 */
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetRemappedRows(void *dev, unsigned *corr, unsigned *unc, unsigned *pending, unsigned *failure) {
    ENTER(dev);
    if (unsupported(g, "row_remap") || g->arch < 7) return NVML_ERROR_NOT_SUPPORTED; /* Ampere and newer */
    *corr = g->remapped_correctable;
    *unc = g->remapped_uncorrectable;
    *pending = g->remap_pending;
    *failure = g->remap_failure;
    return NVML_SUCCESS;
}

#define XID_CRITICAL_ERROR 0x8ULL

typedef struct { int registered[MAX_GPUS]; long delivered[MAX_GPUS]; } event_set_t;
typedef struct {
    void *device;
    unsigned long long eventType, eventData;
    unsigned gpuInstanceId, computeInstanceId;
} nvmlEventData_t;

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(void *dev, unsigned long long *types) {
    ENTER(dev);
    *types = unsupported(g, "xid") ? 0 : XID_CRITICAL_ERROR;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetCreate(event_set_t **set) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    *set = calloc(1, sizeof **set);
    return *set ? NVML_SUCCESS : NVML_ERROR_UNKNOWN;
}

nvmlReturn_t nvmlDeviceRegisterEvents(void *dev, unsigned long long types, event_set_t *set) {
    ENTER(dev);
    if (!set) return NVML_ERROR_INVALID_ARGUMENT;
    if ((types & XID_CRITICAL_ERROR) && unsupported(g, "xid")) return NVML_ERROR_NOT_SUPPORTED;
    if (types & XID_CRITICAL_ERROR) set->registered[g - S.gpu] = 1;
    return NVML_SUCCESS;
}

/* The next XID whose time has come on a registered GPU, each delivered once; else TIMEOUT. */
nvmlReturn_t nvmlEventSetWait_v2(event_set_t *set, nvmlEventData_t *data, unsigned timeout_ms) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    if (!set || !data) return NVML_ERROR_INVALID_ARGUMENT;
    double deadline = now() + timeout_ms;
    for (;;) {
        double t = now();
        for (int i = 0; i < S.count; i++) {
            gpu_t *g = &S.gpu[i];
            if (!set->registered[i]) continue;
            if (g->lost_after_calls >= 0 && g->calls > g->lost_after_calls) return NVML_ERROR_GPU_IS_LOST;
            long k = set->delivered[i];
            if (k < g->n_xid && g->xid_at_ms[k] <= t) {
                set->delivered[i]++;
                memset(data, 0, sizeof *data);
                data->device = g;
                data->eventType = XID_CRITICAL_ERROR;
                data->eventData = (unsigned long long)g->xid_code[k];
                return NVML_SUCCESS;
            }
        }
        if (now() >= deadline) return NVML_ERROR_TIMEOUT;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}
nvmlReturn_t nvmlEventSetWait(event_set_t *set, nvmlEventData_t *data, unsigned timeout_ms) {
    return nvmlEventSetWait_v2(set, data, timeout_ms);
}

nvmlReturn_t nvmlEventSetFree(event_set_t *set) {
    free(set);
    return NVML_SUCCESS;
}

/* ---------- processes ---------- */

typedef struct { unsigned pid; unsigned long long usedGpuMemory; unsigned gpuInstanceId, computeInstanceId; } nvmlProcessInfo_t;

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(void *dev, unsigned *count, nvmlProcessInfo_t *infos) {
    ENTER(dev);
    if (unsupported(g, "processes")) return NVML_ERROR_NOT_SUPPORTED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    if (!infos || *count < (unsigned)g->n_procs) {
        *count = (unsigned)g->n_procs;
        return g->n_procs == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (long i = 0; i < g->n_procs; i++) {
        memset(&infos[i], 0, sizeof infos[i]);
        infos[i].pid = g->proc_pid[i];
        infos[i].usedGpuMemory = g->proc_bytes[i];
        infos[i].gpuInstanceId = infos[i].computeInstanceId = 0xFFFFFFFFu;
    }
    *count = (unsigned)g->n_procs;
    return NVML_SUCCESS;
}

/* ---------- GPM (Hopper and newer) ---------- */

typedef struct { unsigned version, isSupportedDevice; } nvmlGpmSupport_t;
typedef struct { gpu_t *g; double t_ms; int taken; } gpm_sample_t;
typedef struct { const char *shortName, *longName, *unit; } nvmlGpmMetricInfo_t;
typedef struct { unsigned metricId; nvmlReturn_t nvmlReturn; double value; nvmlGpmMetricInfo_t metricInfo; } nvmlGpmMetric_t;
typedef struct {
    unsigned version, numMetrics;
    gpm_sample_t *sample1, *sample2;
    nvmlGpmMetric_t metrics[];
} nvmlGpmMetricsGet_t;

static int gpm_supported(const gpu_t *g) { return g->arch >= 9 && !g->mig && !unsupported(g, "gpm"); }

nvmlReturn_t nvmlGpmQueryDeviceSupport(void *dev, nvmlGpmSupport_t *support) {
    ENTER(dev);
    if (!support || support->version != 1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    support->isSupportedDevice = (unsigned)gpm_supported(g);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleAlloc(gpm_sample_t **sample) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    *sample = calloc(1, sizeof **sample);
    return *sample ? NVML_SUCCESS : NVML_ERROR_UNKNOWN;
}

nvmlReturn_t nvmlGpmSampleFree(gpm_sample_t *sample) {
    free(sample);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleGet(void *dev, gpm_sample_t *sample) {
    ENTER(dev);
    if (!gpm_supported(g)) return NVML_ERROR_NOT_SUPPORTED;
    if (!sample) return NVML_ERROR_INVALID_ARGUMENT;
    sample->g = g;
    sample->t_ms = now();
    sample->taken = 1;
    return NVML_SUCCESS;
}

/* The time average of a trace over [t1, t2]: what a rate between two samples reports. */
static double trace_mean(const trace_t *t, long step_ms, double t1, double t2) {
    if (t2 <= t1) return (double)trace_at(t, step_ms, t1);
    double sum = 0, a = t1;
    while (a < t2) {
        double edge = ((long)(a / step_ms) + 1) * (double)step_ms;
        double b = edge < t2 ? edge : t2;
        sum += trace_at(t, step_ms, a) * (b - a);
        a = b;
    }
    return sum / (t2 - t1);
}

nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *m) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    if (!m || m->version != 1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    gpm_sample_t *s1 = m->sample1, *s2 = m->sample2;
    if (!s1 || !s2 || !s1->taken || !s2->taken || s1->g != s2->g || s2->t_ms <= s1->t_ms)
        return NVML_ERROR_INVALID_ARGUMENT;
    gpu_t *g = s1->g;
    for (unsigned i = 0; i < m->numMetrics; i++) {
        nvmlGpmMetric_t *metric = &m->metrics[i];
        const trace_t *trace = NULL;
        if (metric->metricId == 2) trace = &g->sm_activity;          /* NVML_GPM_METRIC_SM_UTIL */
        else if (metric->metricId == 5) trace = &g->tensor_activity; /* NVML_GPM_METRIC_ANY_TENSOR_UTIL */
        else if (metric->metricId == 10) trace = &g->dram_bw;        /* NVML_GPM_METRIC_DRAM_BW_UTIL */
        metric->nvmlReturn = trace ? NVML_SUCCESS : NVML_ERROR_NOT_SUPPORTED;
        metric->value = trace ? trace_mean(trace, g->power_step_ms, s1->t_ms, s2->t_ms) : 0;
        memset(&metric->metricInfo, 0, sizeof metric->metricInfo);
    }
    return NVML_SUCCESS;
}
