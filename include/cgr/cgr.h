/*
 * cgr: run each decode step of an LLM as a CUDA graph.
 *
 * This header is the whole public contract of the library. Every function
 * says what it does, what it returns, which errors it reports, who owns what,
 * and which threads may call it.
 *
 * Threading. A runtime is used by one thread at a time unless a function says
 * otherwise: calls on the same runtime from several threads must be
 * serialized by the caller. Different runtimes are independent and may be
 * used from different threads at once. Functions without a runtime argument
 * (version, status names, config init) may be called from any thread.
 *
 * Errors. Every function that can fail returns a cgr_status; CGR_OK is zero
 * and every error is negative. After a failure the runtime keeps a message
 * that names the function, the bad argument or the failing CUDA call and its
 * error string: read it with cgr_last_error(). Out-parameters are set to NULL
 * (or zeroed) on failure. Misuse is reported as a status, never by aborting.
 *
 * No CUDA type appears here; CUDA interop lives in <cgr/cgr_cuda.h>.
 */
#ifndef CGR_CGR_H
#define CGR_CGR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(CGR_SHARED_BUILD)
#define CGR_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define CGR_API __attribute__((visibility("default")))
#else
#define CGR_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

#define CGR_VERSION_MAJOR 0
#define CGR_VERSION_MINOR 1
#define CGR_VERSION_PATCH 0
#define CGR_VERSION_STRING "0.1.0"
/* One integer that orders versions: major * 10000 + minor * 100 + patch. */
#define CGR_VERSION_NUMBER                                                     \
  (CGR_VERSION_MAJOR * 10000 + CGR_VERSION_MINOR * 100 + CGR_VERSION_PATCH)

/* The version of the library actually linked, as "major.minor.patch".
 * Compare with CGR_VERSION_STRING to detect a header/library mismatch.
 * Never fails; the string is static. Any thread. */
CGR_API const char *cgr_version_string(void);

/* The linked library's CGR_VERSION_NUMBER. Any thread. */
CGR_API unsigned cgr_version_number(void);

/* ------------------------------------------------------------------------ */
/* Statuses                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * One list generates the enum, the names and the messages, so they cannot
 * drift apart. The numeric values are part of the ABI: they never change,
 * and new statuses take new numbers.
 *
 * X(NAME, value, message)
 */
#define CGR_STATUS_LIST(X)                                                     \
  X(OK, 0, "success")                                                          \
  X(E_INVALID_ARGUMENT, -1, "invalid argument")                                \
  X(E_INVALID_STATE, -2, "operation not allowed in the current state")         \
  X(E_OUT_OF_MEMORY, -3, "out of host memory")                                 \
  X(E_DEVICE_OUT_OF_MEMORY, -4, "out of device memory")                        \
  X(E_NO_DEVICE, -5, "no usable CUDA device")                                  \
  X(E_CUDA, -6, "a CUDA call failed")                                          \
  X(E_CAPTURE, -7,                                                             \
    "stream capture failed or an operation is illegal during "                 \
    "capture")                                                                 \
  X(E_UNSUPPORTED, -8, "not supported by this build or backend")               \
  X(E_VERSION, -9, "unsupported structure size or version")                    \
  X(E_SYSTEM, -10, "an operating-system call failed")                          \
  X(E_BATCH_TOO_LARGE, -11, "batch larger than the largest bucket")            \
  X(E_BUSY, -12, "queue full")                                                 \
  X(E_TIMEOUT, -13, "deadline passed")                                         \
  X(E_NOT_READY, -14, "work still pending")                                    \
  X(E_INTERNAL, -15, "internal error (a bug in cgr)")

typedef enum cgr_status {
#define CGR_STATUS_ENUM_(name, value, message) CGR_##name = value,
  CGR_STATUS_LIST(CGR_STATUS_ENUM_)
#undef CGR_STATUS_ENUM_
} cgr_status;

/* The enumerator's name ("CGR_E_INVALID_ARGUMENT"), or "CGR_E_UNKNOWN" for a
 * value that is not a status. Static string; any thread. */
CGR_API const char *cgr_status_name(cgr_status status);

/* A short message ("invalid argument"), or "unknown status". Static string;
 * any thread. */
CGR_API const char *cgr_status_str(cgr_status status);

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

typedef enum cgr_backend_kind {
  /* CUDA when a driver and a device are usable, otherwise the host backend.
   * cgr_backend_reason() says which and why. */
  CGR_BACKEND_AUTO = 0,
  /* CUDA or fail with CGR_E_NO_DEVICE and a message that says why. */
  CGR_BACKEND_CUDA = 1,
  /* The host backend: the same engine on CPU threads, CUDA's ordering rules
   * kept. Used to test everything on machines without a GPU. */
  CGR_BACKEND_HOST = 2
} cgr_backend_kind;

typedef enum cgr_stream_priority {
  CGR_PRIORITY_NORMAL = 0,
  CGR_PRIORITY_HIGH = 1
} cgr_stream_priority;

/* Bumped when fields are appended to cgr_config. */
#define CGR_CONFIG_VERSION 1

/*
 * Runtime configuration. Fill it with cgr_config_init(), then change the
 * fields you care about. `size` and `version` let a library accept a config
 * compiled against an older header: fields past the caller's `size` take
 * their defaults. Fields are only ever appended.
 */
typedef struct cgr_config {
  size_t size;      /* sizeof(cgr_config) as the caller compiled it */
  uint32_t version; /* CGR_CONFIG_VERSION as the caller compiled it */

  /* Which backend. Default AUTO. Overridden by CGR_BACKEND=auto|cuda|host. */
  cgr_backend_kind backend;
  /* CUDA device ordinal. Default 0. Overridden by CGR_DEVICE=N. */
  int device;
  /* Priority of the stream that launches graphs and of the side stream that
   * loads the next inputs. Defaults: main HIGH, side NORMAL. */
  cgr_stream_priority main_stream_priority;
  cgr_stream_priority side_stream_priority;
  /* Emit NVTX ranges (when compiled in). Default 1. Overridden by
   * CGR_NVTX=0|1. */
  int nvtx;
  /* Extra checks of inputs on every call (tests turn this on). Default 0. */
  int validate;
} cgr_config;

/* Fills *config with defaults and sets size and version.
 * Returns CGR_E_INVALID_ARGUMENT when config is NULL. Any thread. */
CGR_API cgr_status cgr_config_init(cgr_config *config);

/* ------------------------------------------------------------------------ */
/* Runtime                                                                   */
/* ------------------------------------------------------------------------ */

/* Owns one device, a main stream, a side stream and (later) the slots,
 * buckets and graphs. Opaque. */
typedef struct cgr_runtime cgr_runtime;

/*
 * Creates a runtime. A NULL config means defaults. Environment overrides
 * (CGR_BACKEND, CGR_DEVICE, CGR_NVTX) are read once per process, at the
 * first call, and win over the config.
 *
 * On success *out owns the runtime; free it with cgr_runtime_destroy().
 * On failure *out is NULL and cgr_last_error(NULL) returns, on this thread,
 * why. Errors:
 *   CGR_E_INVALID_ARGUMENT  out is NULL, or a config field is out of range
 *   CGR_E_VERSION           config->size too small or config->version newer
 *                           than this library
 *   CGR_E_NO_DEVICE         CUDA asked for and unusable (no driver, no
 *                           device, driver older than the runtime, bad
 *                           ordinal): the message says which
 *   CGR_E_UNSUPPORTED       CUDA asked for from a build without the CUDA
 *                           backend (CGR_WITH_CUDA=OFF or no toolkit)
 *   CGR_E_OUT_OF_MEMORY, CGR_E_DEVICE_OUT_OF_MEMORY, CGR_E_CUDA,
 *   CGR_E_SYSTEM            creating streams or threads failed
 * Any thread.
 */
CGR_API cgr_status cgr_runtime_create(const cgr_config *config,
                                      cgr_runtime **out);

/* Waits for the runtime's streams, then frees everything it owns.
 * NULL is a no-op. No other call on rt may be in progress or follow. */
CGR_API void cgr_runtime_destroy(cgr_runtime *rt);

/* The backend the runtime runs on: CGR_BACKEND_CUDA or CGR_BACKEND_HOST;
 * AUTO only for a NULL rt. */
CGR_API cgr_backend_kind cgr_backend(const cgr_runtime *rt);

/* "cuda" or "host" ("none" for NULL). Static string. */
CGR_API const char *cgr_backend_name(const cgr_runtime *rt);

/* One sentence saying why this backend was chosen ("CGR_BACKEND=host",
 * "AUTO: no CUDA driver found, using the host backend", ...). Owned by rt. */
CGR_API const char *cgr_backend_reason(const cgr_runtime *rt);

/*
 * The message of the last failed call on rt ("" when none failed yet).
 * With rt NULL: the message of this thread's last failed
 * cgr_runtime_create(). The string is owned by cgr and valid until the next
 * call on the same runtime (or the next create on this thread).
 */
CGR_API const char *cgr_last_error(const cgr_runtime *rt);

/* The raw cudaError_t value of the last failed CUDA call on rt (0 when the
 * last failure was not a CUDA error). With rt NULL, as cgr_last_error. */
CGR_API int cgr_last_cuda_error(const cgr_runtime *rt);

/* What the runtime runs on. Strings are NUL-terminated. */
typedef struct cgr_device_info {
  char name[256];          /* "NVIDIA H100 80GB HBM3", or "host (N CPUs)" */
  int ordinal;             /* CUDA device ordinal; -1 on host */
  int compute_major;       /* 0 on host */
  int compute_minor;       /* 0 on host */
  int multiprocessors;     /* SMs; CPU count on host */
  uint64_t global_memory;  /* bytes; 0 on host */
  int driver_version;      /* cudaDriverGetVersion(); 0 on host */
  int runtime_version;     /* cudaRuntimeGetVersion(); 0 on host */
  int stream_priority_low; /* the device's range; 0 and 0 on host */
  int stream_priority_high;
} cgr_device_info;

/* Fills *out (zeroed first when out is not NULL). CGR_E_INVALID_ARGUMENT
 * when rt or out is NULL; CGR_E_CUDA when a device query fails. */
CGR_API cgr_status cgr_device_info_get(cgr_runtime *rt, cgr_device_info *out);

/* Waits until all work submitted to the runtime's streams has finished.
 * Errors: CGR_E_INVALID_ARGUMENT, CGR_E_CAPTURE (called during a capture),
 * CGR_E_CUDA (an earlier asynchronous failure surfaced). */
CGR_API cgr_status cgr_synchronize(cgr_runtime *rt);

/* The runtime's two streams. */
typedef enum cgr_stream_role {
  CGR_STREAM_MAIN = 0, /* launches graphs */
  CGR_STREAM_SIDE = 1  /* loads the next step's inputs */
} cgr_stream_role;

/* ------------------------------------------------------------------------ */
/* Counters                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * How many backend calls of each kind the runtime made (successful calls,
 * since creation or the last reset). Tests and benchmarks read these to
 * prove, e.g., that one step is exactly one graph launch. Kept with relaxed
 * atomics: any thread may read them while another works.
 */
typedef struct cgr_counters {
  uint64_t stream_creates;
  uint64_t event_creates;
  uint64_t event_records;
  uint64_t event_waits; /* stream waits on an event */
  uint64_t device_allocs;
  uint64_t pinned_allocs;
  uint64_t copies;  /* asynchronous memcpy */
  uint64_t memsets; /* asynchronous memset */
  uint64_t kernel_launches;
  uint64_t host_funcs; /* host functions enqueued on a stream */
  uint64_t captures;   /* stream captures begun */
  uint64_t graph_instantiates;
  uint64_t graph_launches;
  uint64_t synchronizations; /* host waits: stream, event or device */
} cgr_counters;

/* Copies the counters into *out. CGR_E_INVALID_ARGUMENT on NULL. Any thread. */
CGR_API cgr_status cgr_counters_get(const cgr_runtime *rt, cgr_counters *out);

/* Sets every counter to zero. CGR_E_INVALID_ARGUMENT on NULL. Any thread. */
CGR_API cgr_status cgr_counters_reset(cgr_runtime *rt);

#ifdef __cplusplus
}
#endif

#endif /* CGR_CGR_H */
