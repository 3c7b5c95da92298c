/*
 * cgr: run each decode step of an LLM as a CUDA graph.
 *
 * This header, with the three it includes at its end (<cgr/cgr_batcher.h>,
 * <cgr/cgr_lanes.h>, <cgr/cgr_group.h>), is the whole public contract of
 * the library. Every function says what it does, what it returns, which
 * errors it reports, who owns what, and which threads may call it.
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
 * Versioned structs. cgr_config, cgr_batcher_config and cgr_lanes_config
 * start with `size` and `version`, which their *_config_init sets from the
 * header the caller compiled against; fields are only ever appended, one
 * version at a time. Every create that takes one reads it by one rule:
 *   - a `size` larger than the struct this library knows (a caller built
 *     against a newer header, or a size never set) is refused with
 *     CGR_E_VERSION, never read past or silently cut;
 *   - a `version` of 0 or newer than this library's is refused, and so is
 *     a `size` too small for the fields of its `version` (or of version 1);
 *   - otherwise the fields of the caller's version (and of any newer one
 *     its size holds whole) are read, and every other field keeps its
 *     default: a caller built against an older header keeps working.
 * The message names the struct, the field (`config->size`,
 * `config->version`) and both values, the caller's and the library's.
 *
 * A device fault (a kernel's illegal address, a trap) loses the device: the
 * call where it surfaces (a replay or a wait, named with its step) and every
 * later call return CGR_E_DEVICE_LOST at once; cgr_runtime_destroy still
 * works, and is all that is left to do.
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
  X(E_INTERNAL, -15, "internal error (a bug in cgr)")                          \
  X(E_CANCELLED, -16, "cancelled: the batcher stopped first")                  \
  X(E_DEVICE_LOST, -17,                                                        \
    "the device failed (an illegal address, a trap): only destroy is left")

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

/* Bumped when fields are appended to cgr_config. Version 1 ended with
 * `validate`, version 2 added the capture fields (buckets ... log_user),
 * version 3 replay_mode, version 4 the key fields (tokens_per_request ...
 * variant_count). */
#define CGR_CONFIG_VERSION 4

/* How a replay feeds the graph its inputs. All give identical outputs. */
typedef enum cgr_replay_mode {
  /* One async copy per variable slot on the main stream, then the graph:
   * the baseline the others are measured against. */
  CGR_REPLAY_NAIVE = 0,
  /* One fused-copy launch on the main stream, then the graph. */
  CGR_REPLAY_FUSED = 1,
  /* Step n uses buffer set n mod 2: the side stream loads it with one fused
   * copy while the main stream may still run the previous step's graph. */
  CGR_REPLAY_DOUBLE_BUFFERED = 2,
  /* The fused copy is the graph's first node, reading pinned staging: per
   * step the host launches nothing but the graph. Host and pinned sources
   * only (the CPU writes each input's padded rows into staging). */
  CGR_REPLAY_IN_GRAPH = 3,
  /* No graph: each step runs the step function eagerly on buffers of its
   * own size, and waits for it. The reference the others are checked
   * against, and the way to run a prefill of any size. Not counted as a
   * fallback. */
  CGR_REPLAY_EAGER = 4,
  /* Step n's graph also loads step n+1's inputs into the other buffer
   * set, in a branch beside the step's own work: the caller stages step
   * n+1 before step n launches (cgr_replay_stage, cgr_replay_ahead), and
   * the host launches one graph per step. Any source, feedback and
   * gathers; batches that a graph holds (no eager steps). */
  CGR_REPLAY_PIPELINED = 5
} cgr_replay_mode;

/* Where cgr reports a warning (an eager fallback, ...): one line, no
 * newline. Called on the thread that hit it; must not call into cgr. */
typedef void (*cgr_log_fn)(void *user, const char *message);

/*
 * Runtime configuration. Fill it with cgr_config_init(), then change the
 * fields you care about. `size` and `version` let a library accept a config
 * compiled against an older header: it is read by the rule of every
 * versioned struct (top of this header), so fields past the caller's
 * version take their defaults, and a size past this library's cgr_config
 * is refused. Fields are only ever appended.
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

  /* ---- version 2: capture ---- */

  /* Padded batch sizes (buckets) to capture: ascending, unique, each from 1
   * to CGR_MAX_BUCKET. NULL: 1, 2, 4, 8, then every 8 up to 256, as the
   * serving engines use. The runtime copies the list. */
  const uint32_t *buckets;
  size_t bucket_count;
  /* A batch larger than the largest bucket runs the step eagerly (no
   * graph, counted and logged once) when 1; fails with
   * CGR_E_BATCH_TOO_LARGE when 0. Default 1. */
  int allow_eager;
  /* Bytes of the scratch arena every bucket's step shares. 0 (default):
   * sized by one eager run of the largest bucket. */
  uint64_t scratch_bytes;
  /* 1: cgr_capture() captures nothing up front; each bucket is captured on
   * first use (cgr_capture_bucket(), or the replay that needs it). Once a
   * step has been replayed, such a capture runs no warm-up: the buffer
   * sets hold live outputs, and the step already ran when cgr_capture()
   * sized the arena. Default 0: every bucket at cgr_capture(). */
  int lazy_capture;
  /* Warnings. NULL (default): "cgr: warning: ..." on stderr. */
  cgr_log_fn log;
  void *log_user;

  /* ---- version 3: replay ---- */

  /* Default CGR_REPLAY_DOUBLE_BUFFERED; cgr_set_replay_mode() changes it
   * between steps. */
  cgr_replay_mode replay_mode;

  /* ---- version 4: keys (see "Keys" below) ---- */

  /* Tokens per request (q) a step may carry, ascending, unique, each from
   * 1 to CGR_MAX_TOKENS_PER_REQUEST: a plain decode step has q = 1, the
   * verify step of speculative decoding with k draft tokens q = k + 1.
   * NULL (with count 0): {1}. A graph is captured per bucket, per value
   * and per variant. The runtime copies the list. */
  const uint32_t *tokens_per_request;
  size_t tokens_per_request_count;
  /* Names of the step's variants (with or without LoRA, greedy or sampled
   * head, ...): unique, 1 to 63 characters, at most CGR_MAX_VARIANTS.
   * Every variant is captured against the same slots and scratch arena;
   * the step reads its variant with cgr_step_variant(). NULL (with count
   * 0): one variant, "default". The runtime copies the names. */
  const char *const *variants;
  size_t variant_count;
} cgr_config;

/* The largest padded batch size a bucket may have. */
#define CGR_MAX_BUCKET 4096
/* The most tokens per request a key may carry, and the most variants. */
#define CGR_MAX_TOKENS_PER_REQUEST 64
#define CGR_MAX_VARIANTS 16

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
 *   CGR_E_VERSION           config->size or config->version refused by the
 *                           rule of versioned structs (top of this header):
 *                           a size past this library's cgr_config, or too
 *                           small for its version; a version 0 or newer
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

/* ------------------------------------------------------------------------ */
/* Memory on the runtime's device                                            */
/* ------------------------------------------------------------------------ */

/*
 * Device memory of the runtime's device, `bytes` long (cudaMalloc on CUDA;
 * on the host backend, host memory that validation knows as device
 * memory). For weights, caches, CGR_SOURCE_DEVICE inputs and gather
 * tables, on both backends alike. Memory from one runtime is device memory
 * for every runtime of the same device (lanes share it). Free it with
 * cgr_device_free on any runtime of that device, before the last one is
 * destroyed. Errors: CGR_E_INVALID_ARGUMENT (NULL, 0 bytes),
 * CGR_E_DEVICE_OUT_OF_MEMORY, CGR_E_CAPTURE (during a capture, which may
 * not allocate), CGR_E_DEVICE_LOST. *out is NULL on failure. Same thread
 * rules as the runtime.
 */
CGR_API cgr_status cgr_device_alloc(cgr_runtime *rt, size_t bytes, void **out);

/*
 * Frees what cgr_device_alloc returned. Like cudaFree, it waits for the
 * device first. NULL is a no-op. Errors: CGR_E_INVALID_ARGUMENT when ptr
 * is not device memory of the runtime's device (the message says what it
 * is). Works on a lost device.
 */
CGR_API cgr_status cgr_device_free(cgr_runtime *rt, void *ptr);

/*
 * Page-locked host memory the device reads directly (cudaHostAlloc): what
 * a CGR_SOURCE_PINNED input must lie in. Errors as cgr_device_alloc, with
 * CGR_E_OUT_OF_MEMORY when the host runs out.
 */
CGR_API cgr_status cgr_pinned_alloc(cgr_runtime *rt, size_t bytes, void **out);

/* Frees what cgr_pinned_alloc returned; NULL is a no-op. Errors:
 * CGR_E_INVALID_ARGUMENT when ptr is not page-locked memory. */
CGR_API cgr_status cgr_pinned_free(cgr_runtime *rt, void *ptr);

/*
 * Copies `bytes` from src to dst and returns when they are there: host to
 * device, device to host, or device to device (unified addressing tells
 * which). It runs on a stream of its own, so it waits neither for cgr's
 * replays nor for other libraries' work: to read an output, wait for its
 * ticket first. Zero bytes is a no-op. Errors: CGR_E_INVALID_ARGUMENT
 * (NULL), CGR_E_CAPTURE (during a capture), CGR_E_CUDA, CGR_E_DEVICE_LOST.
 * Same thread rules as the runtime.
 */
CGR_API cgr_status cgr_memcpy(cgr_runtime *rt, void *dst, const void *src,
                              size_t bytes);

/* The runtime's two streams. */
typedef enum cgr_stream_role {
  CGR_STREAM_MAIN = 0, /* launches graphs */
  CGR_STREAM_SIDE = 1  /* loads the next step's inputs */
} cgr_stream_role;

/* ------------------------------------------------------------------------ */
/* Kernels a step launches                                                   */
/* ------------------------------------------------------------------------ */

/*
 * A kernel both backends run: the CUDA launcher and its host twin under one
 * definition, so the same step captures on a GPU and on the host backend.
 * The launcher enqueues the kernel on the cudaStream_t it is given (as
 * void *, so this header stays free of CUDA types) and returns the launch's
 * own cudaError_t: launch with cudaLaunchKernelEx (or cudaLaunchKernel) and
 * return what it returns. Not cudaGetLastError() after <<<...>>>: that
 * also returns, and clears, an error the program left behind earlier on
 * the thread, which cgr would then report as the launch's. The host twin
 * runs the whole kernel on one CPU thread. Arguments are passed by value: cgr
 * copies args_size bytes at launch, as CUDA copies kernel parameters, so the
 * caller may reuse its buffer at once. Kernels own their launch geometry.
 * Definitions are usually static const and must outlive every graph that
 * launches them.
 */
typedef struct cgr_kernel {
  const char *name;
  size_t args_size;
  int (*cuda_launch)(void *cuda_stream, const void *args); /* NULL: none */
  void (*host_run)(const void *args);                      /* NULL: none */
} cgr_kernel;

/* ------------------------------------------------------------------------ */
/* Buckets                                                                   */
/* ------------------------------------------------------------------------ */

/* The runtime's padded batch sizes, ascending (config->buckets or the
 * default list). *sizes is owned by rt. CGR_E_INVALID_ARGUMENT on NULL. */
CGR_API cgr_status cgr_buckets(const cgr_runtime *rt, const uint32_t **sizes,
                               size_t *count);

/*
 * The smallest bucket that holds `batch` rows, in O(1). Errors:
 * CGR_E_INVALID_ARGUMENT (batch 0, NULL), CGR_E_BATCH_TOO_LARGE (batch over
 * the largest bucket; *padded_batch is then 0). Any thread.
 */
CGR_API cgr_status cgr_bucket_for_batch(const cgr_runtime *rt, uint32_t batch,
                                        uint32_t *padded_batch);

/* ------------------------------------------------------------------------ */
/* Keys: a graph per (bucket, tokens per request, variant)                   */
/* ------------------------------------------------------------------------ */

/*
 * A graph's identity. A step carries batch_size requests of q tokens each
 * (config->tokens_per_request) and runs one variant of the step
 * (config->variants); it replays the graph of key (the bucket of
 * batch_size, q, variant). Every key shares the runtime's slots and its
 * one scratch arena (graphs of one runtime never run at once), so memory
 * is that of the largest step, never a sum over keys. A runtime that
 * configures neither list has one key per bucket: (bucket, 1, 0). A value
 * type with no size field.
 */
typedef struct cgr_key {
  uint32_t padded_batch;       /* a bucket */
  uint32_t tokens_per_request; /* one of config->tokens_per_request */
  uint32_t variant;            /* an index into config->variants */
} cgr_key;

/* The runtime's tokens-per-request values, ascending ({1} by default).
 * *values is owned by rt. CGR_E_INVALID_ARGUMENT on NULL. */
CGR_API cgr_status cgr_tokens_per_request(const cgr_runtime *rt,
                                          const uint32_t **values,
                                          size_t *count);

/* The number of the runtime's variants (1 by default). 0 for NULL. */
CGR_API uint32_t cgr_variant_count(const cgr_runtime *rt);

/* The name of variant `variant` ("default" for the only one of a runtime
 * without a list), or NULL when there is no such variant. Owned by rt. */
CGR_API const char *cgr_variant_name(const cgr_runtime *rt, uint32_t variant);

/* The index of the variant named `name`. CGR_E_INVALID_ARGUMENT (NULL, or
 * no such variant: the message names it). */
CGR_API cgr_status cgr_variant_find(const cgr_runtime *rt, const char *name,
                                    uint32_t *out);

/* ------------------------------------------------------------------------ */
/* Slots: the step's inputs and outputs                                      */
/* ------------------------------------------------------------------------ */

/* A declared slot: its index in declaration order. */
typedef int32_t cgr_slot;

typedef enum cgr_slot_kind {
  /* padded_batch rows of row_elems elements (input_ids, positions, seq_lens,
   * out_loc; a 2-D page_table is rows too). Padded rows hold pad_value. */
  CGR_SLOT_ROWS = 0,
  /* padded_batch + 1 entries of prefix sums (cu_seqlens_k). The entries of
   * padded rows repeat the last live entry, so padded rows have length 0.
   * At capture every entry is 0. */
  CGR_SLOT_PREFIX = 1,
  /* Depends only on the padded batch size (cu_seqlens_q = 0..bs in
   * decode): padded_batch * row_elems + extra_elems elements, written once
   * per bucket at capture and never copied at replay. */
  CGR_SLOT_CONSTANT = 2,
  /* Written by the step: padded_batch rows of row_elems elements (logits,
   * next token ids). */
  CGR_SLOT_OUTPUT = 3
} cgr_slot_kind;

/* Fills a CONSTANT slot's host image for one bucket: `elems` elements of
 * the slot's elem_size at dst. Runs at capture, on the capturing thread. */
typedef void (*cgr_constant_fill_fn)(void *user, uint32_t padded_batch,
                                     void *dst, uint64_t elems);

/* The same for one key (its variant is 0: constants are shared by the
 * variants of a bucket and tokens-per-request value). */
typedef void (*cgr_constant_key_fill_fn)(void *user, const cgr_key *key,
                                         void *dst, uint64_t elems);

/* What a slot's rows count: requests or tokens. */
typedef enum cgr_slot_scale {
  /* A row per request: padded_batch rows (seq_lens, a page table row). */
  CGR_SCALE_REQUEST = 0,
  /* A row per token: padded_batch * q rows for a key of q tokens per
   * request, request r's token t in row r * q + t (input_ids, positions,
   * out_loc, logits and next tokens of a verify step). ROWS, OUTPUT and
   * CONSTANT slots only. */
  CGR_SCALE_TOKEN = 1
} cgr_slot_scale;

typedef struct cgr_slot_desc {
  const char *name; /* unique, 1 to 63 characters */
  cgr_slot_kind kind;
  uint32_t elem_size; /* 1, 2, 4 or 8 bytes */
  uint64_t row_elems; /* elements per row (PREFIX: must be 1) */
  /* ROWS: the value every element of a padded row holds (its low elem_size
   * bytes): a dummy page, a scratch KV slot, length 0. It must be a value a
   * padded row can use without touching a live request's state. */
  uint64_t pad_value;
  /* CONSTANT: elements beyond padded_batch * row_elems (1 for a prefix
   * 0..bs), and the fill; NULL fill (and fill_key) means arange scaled by
   * the key's tokens per request q: 0, q, 2q, ... (cu_seqlens_q; 0, 1,
   * 2, ... for q = 1) for a slot scaled by request, 0, 1, 2, ... for one
   * scaled by token. */
  uint64_t extra_elems;
  cgr_constant_fill_fn fill;
  void *fill_user;
  /* ROWS and PREFIX: with config->validate, every element of a batch's
   * host or pinned input, and every new row of cgr_batch_feedback(), must
   * lie in [valid_min, valid_max] (page ids below the cache's page count,
   * ...). Checked when valid_max > valid_min; elements are read as signed
   * integers of elem_size, or unsigned ones with elem_unsigned. */
  int64_t valid_min;
  int64_t valid_max;
  /* 0 (the default of cgr_slot_desc_init and of a zeroed desc): the
   * elements are signed. 1: unsigned: validation reads them, and compares
   * them with valid_min and valid_max, as unsigned integers (store a bound
   * past INT64_MAX as (int64_t)bound). Other values are refused. Appended
   * last, so a desc filled by cgr_slot_desc_init() keeps its meaning; a
   * desc has no size field, so code built against an older header must be
   * rebuilt before it runs with this library. */
  int elem_unsigned;
  /* What the rows count (appended as elem_unsigned was): requests (the
   * default of cgr_slot_desc_init and of a zeroed desc) or tokens. */
  cgr_slot_scale scale;
  /* CONSTANT: a fill that sees the whole key; when set it is used instead
   * of `fill` (whose user is fill_user too). */
  cgr_constant_key_fill_fn fill_key;
} cgr_slot_desc;

/* Zeroes *desc and sets the four fields every slot needs. Any thread.
 * CGR_E_INVALID_ARGUMENT when desc is NULL. */
CGR_API cgr_status cgr_slot_desc_init(cgr_slot_desc *desc, const char *name,
                                      cgr_slot_kind kind, uint32_t elem_size,
                                      uint64_t row_elems);

/*
 * Declares a slot and allocates its two buffer sets (one per set for ROWS,
 * PREFIX and OUTPUT, sized for the largest key: the largest bucket, times
 * the largest tokens per request for a slot scaled by token; one buffer
 * per bucket and tokens-per-request value for CONSTANT), at device
 * addresses that never change for the runtime's life. Input buffers start as
 * padding: ROWS hold pad_value, PREFIX 0. Errors: CGR_E_INVALID_ARGUMENT naming
 * the field (NULL, empty or long name, duplicate name, elem_size not 1/2/4/8,
 * row_elems 0, PREFIX with row_elems != 1, elem_unsigned not 0 or 1, scale not
 * a cgr_slot_scale or CGR_SCALE_TOKEN on a PREFIX, size overflow);
 * CGR_E_INVALID_STATE after cgr_capture(); CGR_E_DEVICE_OUT_OF_MEMORY.
 * Nothing is declared on failure.
 */
CGR_API cgr_status cgr_slot_declare(cgr_runtime *rt, const cgr_slot_desc *desc,
                                    cgr_slot *out);

/*
 * Feedback: OUTPUT slot `output` feeds ROWS slot `input` of the next step
 * (the sampled token ids that become the next input_ids). Every captured
 * graph ends by copying the output's rows into the input of the other
 * buffer set, so the loop never waits on the device between steps; a batch
 * says how its rows continue the previous step's with cgr_batch_feedback().
 * Both slots must have the same elem_size, row_elems and scale; an input
 * is fed by one output. Declare before cgr_capture(). Errors:
 * CGR_E_INVALID_ARGUMENT naming the mismatch, CGR_E_INVALID_STATE after
 * capture.
 */
CGR_API cgr_status cgr_slot_feed(cgr_runtime *rt, cgr_slot output,
                                 cgr_slot input);

/* The slot declared under `name`. CGR_E_INVALID_ARGUMENT when none. */
CGR_API cgr_status cgr_slot_find(const cgr_runtime *rt, const char *name,
                                 cgr_slot *out);

/*
 * The device address of a slot in buffer set `set` (0 or 1); for a
 * CONSTANT slot, of the buffer of bucket `padded_batch` and the first
 * tokens-per-request value (ignored for the other kinds; see
 * cgr_slot_address_key). Valid until the runtime is destroyed.
 */
CGR_API cgr_status cgr_slot_address(const cgr_runtime *rt, cgr_slot slot,
                                    int set, uint32_t padded_batch, void **out);

/* The same for a key: a CONSTANT slot's buffer of (key->padded_batch,
 * key->tokens_per_request). CGR_E_INVALID_ARGUMENT for a key that is not
 * one of the runtime's (the message names the field). */
CGR_API cgr_status cgr_slot_address_key(const cgr_runtime *rt, cgr_slot slot,
                                        int set, const cgr_key *key,
                                        void **out);

/* ------------------------------------------------------------------------ */
/* The step and its capture                                                  */
/* ------------------------------------------------------------------------ */

/* What the step function is given: valid only during the call. */
typedef struct cgr_step cgr_step;

/*
 * The user's decode step for one padded batch: enqueue its work on the
 * step's stream (cgr_step_launch, or on CUDA the stream from
 * cgr_cuda_step_stream) reading and writing the slots of its buffer set,
 * and return CGR_OK. It runs eagerly once per bucket and set (warm-up;
 * none for a bucket captured lazily after steps have run), then under
 * stream capture, so it must enqueue the same work every time
 * and must not synchronize, allocate device memory (use cgr_step_scratch)
 * or wait on work outside the step. Return an error to abort the capture.
 * A run in which a cgr call on the step (cgr_step_launch, _memcpy,
 * _memset, _host_func, _scratch, cgr_cuda_step_graph) failed fails with
 * that call's status and message even if the step returns CGR_OK: a graph
 * is never captured without work the step meant it to hold.
 */
typedef cgr_status (*cgr_step_fn)(cgr_step *step, void *user);

/* The padded batch size this run of the step is for. */
CGR_API uint32_t cgr_step_padded_batch(const cgr_step *step);
/* The tokens per request (q) of this run's key: slots scaled by token
 * hold padded_batch * q rows. 1 unless config->tokens_per_request says
 * otherwise. */
CGR_API uint32_t cgr_step_tokens_per_request(const cgr_step *step);
/* The variant of this run's key (an index into config->variants). */
CGR_API uint32_t cgr_step_variant(const cgr_step *step);
/* The buffer set (0 or 1) this run reads and writes. */
CGR_API int cgr_step_buffer_set(const cgr_step *step);
/* 1 while the step is being captured, 0 in a warm-up or eager run. */
CGR_API int cgr_step_is_capturing(const cgr_step *step);
/* The runtime the step runs on. */
CGR_API cgr_runtime *cgr_step_runtime(const cgr_step *step);

/* The slot's device address for this run (NULL for an unknown slot). */
CGR_API void *cgr_step_slot(const cgr_step *step, cgr_slot slot);

/*
 * Device memory for the step's intermediates, from the scratch arena every
 * bucket shares (graphs of one runtime never run at once). The same calls
 * in the same order return the same addresses at warm-up and capture.
 * `align` is a power of two (0 means 256). Errors: CGR_E_INVALID_ARGUMENT;
 * CGR_E_DEVICE_OUT_OF_MEMORY when the arena is exhausted (the message
 * gives the bucket, the request and the arena's size).
 */
CGR_API cgr_status cgr_step_scratch(cgr_step *step, size_t bytes, size_t align,
                                    void **out);

/* Enqueues a kernel on the step's stream. CGR_E_UNSUPPORTED when the
 * kernel has no implementation for this backend. */
CGR_API cgr_status cgr_step_launch(cgr_step *step, const cgr_kernel *kernel,
                                   const void *args);
/* Enqueues a copy (any direction) or a byte fill on the step's stream. */
CGR_API cgr_status cgr_step_memcpy(cgr_step *step, void *dst, const void *src,
                                   size_t bytes);
CGR_API cgr_status cgr_step_memset(cgr_step *step, void *dst, int value,
                                   size_t bytes);
/* Enqueues a host function on the step's stream (a host node in the
 * graph): it runs in stream order on a thread of the backend's choosing
 * and must not call into cgr or CUDA. */
CGR_API cgr_status cgr_step_host_func(cgr_step *step, void (*fn)(void *user),
                                      void *user);

/*
 * Registers the step and captures it: for every key (bucket, largest
 * first, then tokens per request and variant) and each buffer set, one
 * eager warm-up run, then the same step captured on the main stream
 * (thread-local capture mode), instantiated and uploaded. The scratch
 * arena is sized first by one run of the largest bucket for every tokens
 * value and variant: the largest step, which every key shares. With
 * config->lazy_capture, only registers the step and sizes the arena; the
 * keys are captured on first use. Slots must be declared first; a
 * runtime captures once.
 *
 * Errors: CGR_E_INVALID_ARGUMENT (NULL); CGR_E_INVALID_STATE (already
 * captured); CGR_E_CAPTURE when the step fails or does something illegal
 * during a warm-up or a capture (the message names the bucket, the set,
 * and the step's own error or CUDA's); the status of a failed allocation or
 * instantiation. On failure everything this call built is destroyed and the
 * runtime can capture again.
 */
CGR_API cgr_status cgr_capture(cgr_runtime *rt, cgr_step_fn step, void *user);

/* Captures bucket `padded_batch` (both sets, every key of the bucket) now,
 * where not yet; needs a registered step (cgr_capture). Errors as
 * cgr_capture, and CGR_E_INVALID_ARGUMENT for a size that is not a
 * bucket. */
CGR_API cgr_status cgr_capture_bucket(cgr_runtime *rt, uint32_t padded_batch);

/* Captures one key (both sets) now, if it is not yet. Errors as
 * cgr_capture_bucket, and CGR_E_INVALID_ARGUMENT for a key that is not the
 * runtime's (the message names the field). */
CGR_API cgr_status cgr_capture_key(cgr_runtime *rt, const cgr_key *key);

/* What the capture of one bucket cost and holds. */
typedef struct cgr_bucket_stats {
  uint32_t padded_batch;
  int captured;             /* 1 once both sets are captured */
  uint64_t nodes[2];        /* graph nodes, per buffer set */
  double capture_ms[2];     /* warm-up excluded */
  double instantiate_ms[2]; /* instantiate + upload */
  uint64_t scratch_bytes;   /* arena bytes this bucket's step used */
} cgr_bucket_stats;

/* Copies bucket `padded_batch`'s stats into *out (zeroed first): its
 * keys' together (captured once every key is; nodes, times and scratch
 * are those of the key that has the most). CGR_E_INVALID_ARGUMENT on NULL
 * or a size that is not a bucket. Same thread rules as the runtime. */
CGR_API cgr_status cgr_bucket_stats_get(const cgr_runtime *rt,
                                        uint32_t padded_batch,
                                        cgr_bucket_stats *out);

/* What the capture of one key cost and holds. */
typedef struct cgr_key_stats {
  cgr_key key;
  int captured;             /* 1 once both sets are captured */
  uint64_t nodes[2];        /* graph nodes, per buffer set */
  double capture_ms[2];     /* warm-up excluded */
  double instantiate_ms[2]; /* instantiate + upload */
  uint64_t scratch_bytes;   /* arena bytes this key's step used */
} cgr_key_stats;

/* Copies one key's stats into *out (zeroed first). CGR_E_INVALID_ARGUMENT
 * on NULL or a key that is not the runtime's. */
CGR_API cgr_status cgr_key_stats_get(const cgr_runtime *rt, const cgr_key *key,
                                     cgr_key_stats *out);

typedef struct cgr_capture_stats {
  uint64_t buckets;          /* configured */
  uint64_t buckets_captured; /* every key of the bucket captured */
  uint64_t graphs;           /* instantiated graphs (2 per key) */
  uint64_t arena_bytes;      /* the scratch arena's size */
  uint64_t arena_peak;       /* the most any key used: never a sum */
  uint64_t slot_bytes;       /* device bytes of all slots' buffers */
  uint64_t eager_runs;       /* steps run eagerly (batch over the largest) */
  uint64_t keys;             /* buckets * tokens values * variants */
  uint64_t keys_captured;
} cgr_capture_stats;

/* Copies the runtime's capture stats into *out (zeroed first).
 * CGR_E_INVALID_ARGUMENT on NULL. Same thread rules as the runtime. */
CGR_API cgr_status cgr_capture_stats_get(const cgr_runtime *rt,
                                         cgr_capture_stats *out);

/*
 * Writes the captured graph of (bucket, set) as a Graphviz DOT file (of
 * the bucket's first key: its first tokens value, variant 0)
 * (cudaGraphDebugDotPrint on CUDA, cgr's own writer on the host backend).
 * Errors: CGR_E_INVALID_ARGUMENT, CGR_E_INVALID_STATE (not captured),
 * CGR_E_SYSTEM (the file), CGR_E_CUDA.
 */
CGR_API cgr_status cgr_graph_dump(cgr_runtime *rt, uint32_t padded_batch,
                                  int set, const char *path);

/* The same for any key. Errors as cgr_graph_dump, and
 * CGR_E_INVALID_ARGUMENT for a key that is not the runtime's. */
CGR_API cgr_status cgr_graph_dump_key(cgr_runtime *rt, const cgr_key *key,
                                      int set, const char *path);

/* ------------------------------------------------------------------------ */
/* Replay                                                                    */
/* ------------------------------------------------------------------------ */

/* Where a batch's input lies. */
typedef enum cgr_source {
  /* Pageable host memory: cgr stages it into pinned memory with the CPU;
   * it may be reused as soon as cgr_replay() returns. */
  CGR_SOURCE_HOST = 0,
  /* Page-locked host memory the device reads directly: must stay unchanged
   * until the step's ticket completes. */
  CGR_SOURCE_PINNED = 1,
  /* Device memory of the runtime's device: read once the previous step's
   * graph has completed (so it may be that step's output) and before this
   * step's ticket completes. */
  CGR_SOURCE_DEVICE = 2
} cgr_source;

/* The next step's inputs, owned by the runtime: one open batch at a time,
 * consumed by cgr_replay() whether it succeeds or not (a NULL ticket
 * too). */
typedef struct cgr_batch cgr_batch;

/*
 * Opens the batch of the next step: `batch_size` live requests, of the
 * first tokens-per-request value (1 by default) and variant 0
 * (cgr_batch_begin_key chooses). Errors:
 * CGR_E_INVALID_ARGUMENT (0, NULL), CGR_E_INVALID_STATE (no capture yet,
 * or a batch already open), CGR_E_BATCH_TOO_LARGE (over the largest
 * bucket with config->allow_eager 0, in a graph mode, and always in
 * CGR_REPLAY_PIPELINED; CGR_REPLAY_EAGER runs a batch of any size, since
 * no step there falls back from a graph). With a step staged
 * (CGR_REPLAY_PIPELINED) the batch is the step after it: it loads the
 * other buffer set, and its feedback continues the staged step.
 */
CGR_API cgr_status cgr_batch_begin(cgr_runtime *rt, uint32_t batch_size,
                                   cgr_batch **out);

/*
 * Opens the batch of a step of `batch_size` requests that carry
 * `tokens_per_request` tokens each (one of the runtime's values: it is
 * not padded) and runs variant `variant`: it replays the graph of key
 * (bucket of batch_size, tokens_per_request, variant), captured first
 * when capture is lazy. Slots scaled by token take batch_size *
 * tokens_per_request rows. Errors as cgr_batch_begin, and
 * CGR_E_INVALID_ARGUMENT for a value or variant the runtime does not have
 * (the message lists what it has).
 */
CGR_API cgr_status cgr_batch_begin_key(cgr_runtime *rt, uint32_t batch_size,
                                       uint32_t tokens_per_request,
                                       uint32_t variant, cgr_batch **out);

/*
 * The data of one ROWS or PREFIX slot: exactly batch_size rows
 * (batch_size * row_elems * elem_size bytes) for ROWS, batch_size + 1
 * entries for PREFIX; batch_size * tokens_per_request rows for a slot
 * scaled by token. Errors: CGR_E_INVALID_ARGUMENT naming the slot
 * (not an input slot, given twice, NULL data, wrong byte count, a device
 * pointer of another device, values outside [valid_min, valid_max] in
 * validation mode); the batch stays open and unchanged.
 */
CGR_API cgr_status cgr_batch_input(cgr_batch *batch, cgr_slot slot,
                                   cgr_source source, const void *data,
                                   size_t bytes);

/*
 * The slot's data is what the buffer set this batch loads (step mod 2)
 * was last loaded with (same batch size, same values): nothing is copied.
 * (The first such step in CGR_REPLAY_IN_GRAPH after another mode loaded
 * the set copies the set's rows into staging once, for the graph's first
 * node.) Checked at the call: CGR_E_INVALID_ARGUMENT when that set was
 * last loaded with another batch size, holds no load of the slot (none
 * yet, a fed slot the previous graph wrote, a failed step), or the batch
 * runs eagerly (over the largest bucket, or CGR_REPLAY_EAGER); the batch
 * stays open and the slot not given, so its data can still be given.
 */
CGR_API cgr_status cgr_batch_unchanged(cgr_batch *batch, cgr_slot slot);

/* Row j of a ROWS slot <- row row_index[j] of device_src, for j below
 * batch_size: the request set changed and the data is still on the
 * device. Both pointers are device memory; row_index is 4-byte aligned
 * (cgr_replay refuses it otherwise) and its indices name rows of
 * device_src. The batch functions return CGR_E_INVALID_STATE on a batch
 * that is no longer open. */
CGR_API cgr_status cgr_batch_gather(cgr_batch *batch, cgr_slot slot,
                                    const void *device_src,
                                    const int32_t *row_index);

/*
 * A fed slot's rows (cgr_slot_feed) come from the previous step's output:
 * row j continues the previous step's row prev_rows[j], or is a new
 * request when prev_rows[j] is -1, whose value is the next row of
 * new_rows (host memory, one row per -1, in order). When every row j
 * continues row j, nothing is copied: the graph already wrote it. Rows
 * that moved are gathered on the device. prev_rows is host memory of one
 * entry per row of this batch (batch_size, or batch_size *
 * tokens_per_request for a slot scaled by token); both arrays may be
 * reused when cgr_replay returns. Rows count as the slot counts them:
 * for slots scaled by token, prev_rows[j] names a token row of the
 * previous step's output (request r's token t is row r * q + t, q that
 * step's tokens per request), so a verify step's accepted tokens, a
 * different number per request, continue as request r's row
 * r * q + accepted_r - 1, and the draft tokens of the next step are new
 * rows.
 * The previous step must have been a graph replay of this runtime (not an
 * eager step), and the mode not CGR_REPLAY_IN_GRAPH.
 * Errors: CGR_E_INVALID_ARGUMENT (not a fed slot, an index past the
 * previous batch, the wrong new_rows_bytes, new rows outside [valid_min,
 * valid_max] in validation mode, checked as cgr_batch_input checks data),
 * CGR_E_INVALID_STATE (no previous graph step), CGR_E_UNSUPPORTED
 * (in-graph mode); the batch stays open and unchanged.
 */
CGR_API cgr_status cgr_batch_feedback(cgr_batch *batch, cgr_slot slot,
                                      const int32_t *prev_rows,
                                      const void *new_rows,
                                      size_t new_rows_bytes);

/* Closes an open batch without replaying it (the caller found a problem
 * while filling it): nothing changes and the next cgr_batch_begin works.
 * NULL or a closed batch is a no-op. */
CGR_API void cgr_batch_discard(cgr_batch *batch);

/* What a replay returns: which step, bucket and buffer set. A value. */
typedef struct cgr_ticket {
  uint64_t step; /* 0, 1, 2, ... per runtime */
  uint32_t batch_size;
  uint32_t padded_batch; /* the bucket; batch_size for an eager step */
  int set;               /* buffer set; -1 for an eager step */
} cgr_ticket;

/*
 * Runs the batch's step: loads its inputs into buffer set step mod 2 (in
 * the current replay mode) and launches the graph of its bucket, capturing
 * the bucket first when capture is lazy; a batch over the largest bucket
 * runs eagerly (see config->allow_eager), and in CGR_REPLAY_EAGER every
 * batch does, of any size, whatever config->allow_eager says. Returns
 * without waiting for the device (an eager step waits). Every ROWS and
 * PREFIX slot must have been given (input, unchanged, gather or
 * feedback).
 *
 * Errors: CGR_E_INVALID_ARGUMENT (a slot never given, the message names
 * it; a NULL ticket), CGR_E_UNSUPPORTED (a device source in
 * CGR_REPLAY_IN_GRAPH), CGR_E_INVALID_STATE (CGR_REPLAY_PIPELINED, whose
 * steps run through cgr_replay_stage and cgr_replay_ahead), the status of
 * a failed launch. On failure the step count is as it was and the batch
 * is closed; a refusal changes nothing else, and a failure after work was
 * enqueued leaves the set's state conservative (padding rewritten,
 * nothing unchanged, no feedback to continue from), and when the step's
 * graph was launched, the tickets of its set expire. (A previous eager
 * step's outputs end all the same once the batch is complete: see
 * cgr_output.)
 */
CGR_API cgr_status cgr_replay(cgr_runtime *rt, cgr_batch *batch,
                              cgr_ticket *ticket);

/*
 * CGR_REPLAY_PIPELINED: the one-step lookahead. A run of steps is
 *
 *   cgr_replay_stage(rt, batch_0);              step 0 staged
 *   cgr_replay_ahead(rt, batch_1, &ticket_0);   launches step 0, whose
 *                                               graph loads batch_1
 *   cgr_replay_ahead(rt, batch_2, &ticket_1);   ...
 *   cgr_replay_ahead(rt, NULL, &ticket_n);      launches the last step
 *
 * Each call launches the step staged by the call before it (one graph
 * launch, nothing else: its graph loads the next step's inputs into the
 * other buffer set in a branch beside the step) and stages `next`, built
 * before the step it follows has run: a serving loop schedules step n+1
 * before step n's tokens are known. So a request that finishes at step n
 * is still in the already staged step n+1 (the caller masks its row,
 * whose outputs it ignores) and leaves at step n+2. A feedback batch's
 * prev_rows name rows of step n (the staged step it follows); gathers
 * and DEVICE sources are read after step n's work, inside its graph (a
 * DEVICE source may be step n's output); HOST sources are copied at the
 * call and PINNED ones read while step n runs; events the batch waits
 * for (cgr_batch_wait_event) are waited for before step n's graph. A
 * bucket, key or variant may change at any step. The pipelined form of a
 * key's graph (two per key and set: with and without a load after the
 * step) is captured at the first launch that needs it, as the in-graph
 * mode's are, and is not counted in cgr_capture_stats; a run's first step
 * costs one fused-copy launch besides its graph.
 *
 * cgr_replay_stage stages the first step of a run: its inputs load with
 * one fused copy (no graph runs before it to carry them). The batch is
 * consumed whether the call succeeds or not, as cgr_replay consumes it.
 * Errors: CGR_E_INVALID_ARGUMENT (not this runtime's batch, a slot never
 * given), CGR_E_INVALID_STATE (the batch is not open, the mode is not
 * CGR_REPLAY_PIPELINED, a step is already staged: cgr_replay_ahead
 * launches it), CGR_E_BATCH_TOO_LARGE (over the largest bucket: a graph
 * must hold it), the status of a failed launch. On failure nothing is
 * staged; a refusal changes nothing, and a failed launch leaves the set
 * it was loading as a failed cgr_replay does (padding rewritten, nothing
 * unchanged, no feedback to continue from). Like cgr_replay, it ends the
 * previous eager step's outputs once the batch is complete.
 */
CGR_API cgr_status cgr_replay_stage(cgr_runtime *rt, cgr_batch *batch);

/*
 * Launches the staged step and stages `next` (an open batch of this
 * runtime, or NULL to end the run: nothing is staged after it); its
 * ticket is the launched step's, as cgr_replay's. `next` is consumed
 * whether the call succeeds or not. Errors: CGR_E_INVALID_STATE (no step
 * staged, the mode is not CGR_REPLAY_PIPELINED, `next` not open), the
 * errors of cgr_replay_stage for `next`, the status of a failed launch.
 * A refused `next` (a caller's mistake: CGR_E_INVALID_ARGUMENT,
 * CGR_E_BATCH_TOO_LARGE, ...) launches nothing and leaves the staged step
 * staged, so the caller can stage a corrected batch or end the run with
 * NULL. A failed launch leaves nothing staged and assumes the worst of
 * both sets (padding rewritten, nothing unchanged, no feedback to continue
 * from), as a failed cgr_replay does; the failed step's graph may have run
 * on its set, so the tickets of that set expire (cgr_output); and a batch
 * open at the time (built after the staged step, which never ran) is
 * closed: its next use answers CGR_E_INVALID_STATE saying so.
 */
CGR_API cgr_status cgr_replay_ahead(cgr_runtime *rt, cgr_batch *next,
                                    cgr_ticket *ticket);

/* 1 when a step is staged (cgr_replay_stage or cgr_replay_ahead with a
 * batch) and not yet launched, else 0 (also for NULL). */
CGR_API int cgr_replay_staged(const cgr_runtime *rt);

/*
 * Waits until the ticket's step has finished. CGR_E_INVALID_ARGUMENT for a
 * ticket this runtime never issued: a step not run yet, or any field
 * (step, batch_size, padded_batch, set) changed. A ticket whose outputs
 * are readable (cgr_output) is compared field by field with the one
 * issued; of an expired ticket only what could have been issued for its
 * step is known and checked: set -1, or step mod 2 with padded_batch the
 * bucket of batch_size; set -1 with padded_batch == batch_size.
 */
CGR_API cgr_status cgr_ticket_wait(cgr_runtime *rt, const cgr_ticket *ticket);

/* CGR_OK when the ticket's step has finished, CGR_E_NOT_READY if not.
 * Tickets are checked as cgr_ticket_wait checks them. */
CGR_API cgr_status cgr_ticket_query(cgr_runtime *rt, const cgr_ticket *ticket);

/*
 * The device address of an OUTPUT slot as the ticket's step wrote it
 * (read it after the ticket completes). A graph step's outputs (set 0 or
 * 1) stay valid until a replay issues step ticket.step + 2, the one that
 * reuses the set (even when that step runs eagerly), or until a failed
 * step whose graph may have run on the set. An eager step's (set
 * -1) end one replay sooner, at the next cgr_replay of a complete batch
 * (this runtime's open batch, a ticket, every input slot given), which
 * frees the eager step's buffers whether it then succeeds or not: eager
 * buffers are sized per batch (a prefill's can be large), and keeping two
 * of them alive would double that memory. CGR_E_INVALID_STATE once the
 * ticket has expired; CGR_E_INVALID_ARGUMENT for a ticket never issued
 * (as cgr_ticket_wait) or a slot that is not an OUTPUT.
 */
CGR_API cgr_status cgr_output(cgr_runtime *rt, const cgr_ticket *ticket,
                              cgr_slot slot, void **out);

/* The key of the ticket's step: its padded batch (the batch size for an
 * eager step), tokens per request and variant, which a cgr_ticket does
 * not carry. Errors as cgr_output: CGR_E_INVALID_ARGUMENT for a ticket
 * never issued or a NULL out, CGR_E_INVALID_STATE once it has expired. */
CGR_API cgr_status cgr_ticket_key(cgr_runtime *rt, const cgr_ticket *ticket,
                                  cgr_key *out);

/* Switches the replay mode for the next steps. CGR_E_INVALID_ARGUMENT for
 * a value that is not a mode; CGR_E_INVALID_STATE with a batch open or a
 * step staged (CGR_REPLAY_PIPELINED: end the run first). */
CGR_API cgr_status cgr_set_replay_mode(cgr_runtime *rt, cgr_replay_mode mode);

/* Per mode: what replays cost. */
typedef struct cgr_replay_stats {
  uint64_t steps;
  uint64_t eager_steps;
  uint64_t ops_copied;   /* copy-plan operations executed */
  uint64_t bytes_copied; /* destination bytes written by them */
  uint64_t ops_skipped;  /* constant, unchanged and clean-padding work */
  double host_us_total;  /* host time inside cgr_replay */
  double host_us_max;
} cgr_replay_stats;

/* Copies what the replays in `mode` cost so far into *out (zeroed
 * first). CGR_E_INVALID_ARGUMENT on NULL or a value that is not a mode.
 * Same thread rules as the runtime. */
CGR_API cgr_status cgr_replay_stats_get(const cgr_runtime *rt,
                                        cgr_replay_mode mode,
                                        cgr_replay_stats *out);

/* ------------------------------------------------------------------------ */
/* Ordering with the caller's work                                           */
/* ------------------------------------------------------------------------ */

/*
 * An event shared by the caller and cgr, so that the caller's work and
 * cgr's steps are ordered without the host waiting. Device sources and
 * gather tables are usually written on the caller's own stream (a sampler,
 * a scheduler); a batch that reads them waits for an event the caller
 * recorded after writing them (cgr_batch_wait_event). The other way round,
 * the caller's work that reads a step's outputs waits for an event that
 * completes with the step (cgr_ticket_record_event).
 *
 * On CUDA the caller records the event on its own stream
 * (cgr_cuda_event_record) and waits for it there (cgr_cuda_event gives the
 * cudaEvent_t). On the host backend the caller's work is its own host
 * code: cgr_event_record_host marks the event pending, and
 * cgr_event_signal_host completes it once the data is written.
 *
 * An event belongs to the runtime that created it; like a cudaEvent_t, a
 * wait waits for its most recent record at the time of the wait. Same
 * thread rules as the runtime, except cgr_event_signal_host (any thread).
 */
typedef struct cgr_event cgr_event;

/* A new event of rt, complete until first recorded. Errors:
 * CGR_E_INVALID_ARGUMENT, CGR_E_OUT_OF_MEMORY, CGR_E_CUDA. *out is NULL on
 * failure. */
CGR_API cgr_status cgr_event_create(cgr_runtime *rt, cgr_event **out);

/* Frees the event; work still waiting for it is unaffected (as with
 * cudaEventDestroy). NULL is a no-op. */
CGR_API void cgr_event_destroy(cgr_event *event);

/* Host backend: the caller's host work begins: the event is pending until
 * cgr_event_signal_host. CGR_E_UNSUPPORTED on CUDA (record on your stream
 * with cgr_cuda_event_record instead). */
CGR_API cgr_status cgr_event_record_host(cgr_event *event);

/* Host backend: the host work of the latest cgr_event_record_host is done;
 * everything waiting for the event goes on. Any thread. Errors:
 * CGR_E_INVALID_STATE (no pending host record), CGR_E_UNSUPPORTED (CUDA).
 */
CGR_API cgr_status cgr_event_signal_host(cgr_event *event);

/* CGR_OK when the event's latest record has completed, CGR_E_NOT_READY
 * when not. */
CGR_API cgr_status cgr_event_query(cgr_event *event);

/* Waits on the host until the event's latest record has completed. */
CGR_API cgr_status cgr_event_synchronize(cgr_event *event);

/*
 * The batch's step reads none of its inputs (sources, gather tables, fed
 * rows) before the event's latest record, as of this call, has completed;
 * the host does not wait. The wait is enqueued on the runtime's streams
 * at this call (as cudaStreamWaitEvent enqueues it), so the event may be
 * recorded again or destroyed at once, and work cgr enqueues after it
 * (this step, later ones, even if this batch is discarded) waits for that
 * record too. At most CGR_BATCH_MAX_EVENTS events per batch.
 * Errors: CGR_E_INVALID_ARGUMENT (NULL, an event of another runtime, too
 * many events), CGR_E_INVALID_STATE (the batch is closed), the status of
 * a failed stream wait (CGR_E_CUDA, CGR_E_DEVICE_LOST); the batch stays
 * open and its inputs unchanged.
 */
enum { CGR_BATCH_MAX_EVENTS = 8 };
CGR_API cgr_status cgr_batch_wait_event(cgr_batch *batch, cgr_event *event);

/*
 * Records the event so that it completes when the ticket's step has
 * finished (and every step replayed after it: the record follows the
 * latest step on the runtime's main stream). Then wait for it on the
 * caller's side (cgr_cuda_event and cudaStreamWaitEvent, or
 * cgr_event_synchronize) without cgr waiting. Errors:
 * CGR_E_INVALID_ARGUMENT (NULL, a ticket this runtime never issued, an
 * event of another runtime), CGR_E_INVALID_STATE (the ticket expired: its
 * outputs are gone).
 */
CGR_API cgr_status cgr_ticket_record_event(cgr_runtime *rt,
                                           const cgr_ticket *ticket,
                                           cgr_event *event);

/* ------------------------------------------------------------------------ */
/* A whole step in one call                                                  */
/* ------------------------------------------------------------------------ */

/* What one entry of cgr_replay_inputs() gives a slot: the batch call of
 * the same name. */
typedef enum cgr_input_kind {
  CGR_INPUT_DATA = 0,      /* cgr_batch_input(slot, source, data, bytes) */
  CGR_INPUT_UNCHANGED = 1, /* cgr_batch_unchanged(slot) */
  CGR_INPUT_GATHER = 2,    /* cgr_batch_gather(slot, data, rows) */
  CGR_INPUT_FEEDBACK = 3   /* cgr_batch_feedback(slot, rows, data, bytes) */
} cgr_input_kind;

/* One slot's input of a step. Zero it (or use a designated initializer)
 * and set the fields its kind reads; the others are ignored. A value type
 * with no size field: fields are never appended to it. */
typedef struct cgr_input {
  cgr_slot slot;
  cgr_input_kind kind;
  cgr_source source;   /* DATA */
  const void *data;    /* DATA: the rows; GATHER: device_src; FEEDBACK:
                          new_rows (NULL when no row is new) */
  size_t bytes;        /* DATA: data's byte count; FEEDBACK: new_rows' */
  const int32_t *rows; /* GATHER: row_index; FEEDBACK: prev_rows */
} cgr_input;

/*
 * One step in one call, for bindings where each foreign call costs (Python)
 * and for callers that hold a step's inputs as a table: cgr_batch_begin,
 * each entry of `inputs` in order, cgr_batch_wait_event for each of the
 * `wait_count` events, cgr_replay, then, when done_event is not NULL,
 * cgr_ticket_record_event(done_event). Each part checks what it checks
 * alone; a failure before the replay discards the batch, so nothing
 * changes (no batch stays open), and the message names the entry
 * ("inputs[2]") and what that call said. done_event is checked before the
 * replay; should recording it fail after the replay (a CUDA error), the
 * step has run and *ticket is valid. Errors: those of the calls it makes,
 * and CGR_E_INVALID_ARGUMENT for NULL with a nonzero count, a NULL ticket,
 * or an entry whose kind is not a cgr_input_kind.
 */
CGR_API cgr_status cgr_replay_inputs(cgr_runtime *rt, uint32_t batch_size,
                                     const cgr_input *inputs, size_t count,
                                     cgr_event *const *wait_events,
                                     size_t wait_count, cgr_event *done_event,
                                     cgr_ticket *ticket);

/* The same for a step of a key's tokens per request and variant (as
 * cgr_batch_begin_key opens it); cgr_replay_inputs is this with the first
 * tokens value and variant 0. */
CGR_API cgr_status cgr_replay_inputs_key(
    cgr_runtime *rt, uint32_t batch_size, uint32_t tokens_per_request,
    uint32_t variant, const cgr_input *inputs, size_t count,
    cgr_event *const *wait_events, size_t wait_count, cgr_event *done_event,
    cgr_ticket *ticket);

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

/* The serving layers on top of a runtime, in headers of their own. */
#include "cgr/cgr_batcher.h" /* IWYU pragma: export */
#include "cgr/cgr_group.h"   /* IWYU pragma: export */
#include "cgr/cgr_lanes.h"   /* IWYU pragma: export */

#endif /* CGR_CGR_H */
