/*
 * The backend table: the only way capture/ and replay/ reach a device.
 *
 * A backend is a table of function pointers (cgr__backend_ops) plus a
 * context. Nothing calls the table directly: the cgr__be_* wrappers below are
 * the one dispatch point. They check arguments, consult fault injection,
 * count successful calls, and then call the backend. A backend function only
 * does the work and, on failure, writes a message through cgr__error.
 *
 * Two implementations: runtime/cuda/ (cudart and the CUDA Graphs API) and
 * runtime/host/ (worker threads that keep CUDA's ordering rules).
 *
 * Semantics follow CUDA everywhere; where a backend cannot, it says so with
 * CGR_E_UNSUPPORTED, never by doing something else.
 */
#ifndef CGR_RUNTIME_BACKEND_H
#define CGR_RUNTIME_BACKEND_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cgr/cgr.h"
#include "runtime/collective.h"
#include "runtime/error.h"
#include "runtime/kernel.h"
#include "runtime/site.h"

/* Opaque per-backend handles. The CUDA backend casts its native handles to
 * these; the host backend defines the structs. */
typedef struct cgr__stream cgr__stream;
typedef struct cgr__event cgr__event;
typedef struct cgr__graph cgr__graph;           /* a captured graph */
typedef struct cgr__graph_exec cgr__graph_exec; /* an instantiated graph */

/*
 * The kinds of backend call, for counters and fault injection.
 * X(NAME, counter field in cgr_counters or none, status an injected fault
 * returns). HOST_ALLOC and THREAD_CREATE are not backend calls but are
 * injectable so tests reach every failure path of create. DEVICE_FAULT is
 * the host backend's stand-in for a kernel that faults on a GPU (an
 * illegal address): counted when a kernel runs on a worker (its site is
 * the kernel's name), it skips the kernel and loses the device, as a
 * sticky CUDA error does. How else a call can fail (asynchronously, or
 * leaving an error behind) is a mode of the plan: runtime/fault.h.
 */
#define CGR__CALL_LIST(X)                                                      \
  X(HOST_ALLOC, CGR_E_OUT_OF_MEMORY)                                           \
  X(THREAD_CREATE, CGR_E_SYSTEM)                                               \
  X(STREAM_CREATE, CGR_E_CUDA)                                                 \
  X(EVENT_CREATE, CGR_E_CUDA)                                                  \
  X(EVENT_RECORD, CGR_E_CUDA)                                                  \
  X(EVENT_WAIT, CGR_E_CUDA)                                                    \
  X(DEVICE_ALLOC, CGR_E_DEVICE_OUT_OF_MEMORY)                                  \
  X(PINNED_ALLOC, CGR_E_OUT_OF_MEMORY)                                         \
  X(COPY, CGR_E_CUDA)                                                          \
  X(MEMSET, CGR_E_CUDA)                                                        \
  X(KERNEL_LAUNCH, CGR_E_CUDA)                                                 \
  X(HOST_FUNC, CGR_E_CUDA)                                                     \
  X(CAPTURE_BEGIN, CGR_E_CAPTURE)                                              \
  X(CAPTURE_END, CGR_E_CAPTURE)                                                \
  X(GRAPH_INSTANTIATE, CGR_E_CUDA)                                             \
  X(GRAPH_LAUNCH, CGR_E_CUDA)                                                  \
  X(SYNCHRONIZE, CGR_E_CUDA)                                                   \
  X(DEVICE_FAULT, CGR_E_DEVICE_LOST)

/* The X-macro expansion confuses clang-format's indentation here. */
/* clang-format off */
typedef enum cgr__call {
#define CGR__CALL_ENUM_(name, fault_status) CGR__CALL_##name,
  CGR__CALL_LIST(CGR__CALL_ENUM_)
#undef CGR__CALL_ENUM_
  CGR__CALL_COUNT
} cgr__call;
/* clang-format on */

/* "HOST_ALLOC", ... */
const char *cgr__call_name(cgr__call call);

/* What memory a range lies in (cgr__be_memory_kind). */
typedef enum cgr__memory_kind {
  CGR__MEMORY_OTHER = 0, /* pageable, another device's, or past the end */
  CGR__MEMORY_DEVICE,    /* device memory of the runtime's device */
  CGR__MEMORY_PINNED     /* page-locked host memory the device can read */
} cgr__memory_kind;

/* "device memory", "page-locked host memory", "neither device nor
 * page-locked memory": for messages. */
const char *cgr__memory_kind_name(cgr__memory_kind kind);

/* A function run on a stream, in stream order, on a thread of the backend's
 * choosing. It must not call into cgr (CUDA forbids CUDA calls there). */
typedef void (*cgr__host_fn)(void *user);

typedef struct cgr__backend_ops {
  const char *name; /* "cuda", "host" */

  void (*destroy)(void *ctx);

  cgr_status (*stream_create)(void *ctx, cgr_stream_priority priority,
                              const char *name, cgr__stream **out);
  /* Waits for the stream's pending work, then frees it. */
  void (*stream_destroy)(void *ctx, cgr__stream *stream);
  /* The native handle: cudaStream_t on CUDA, NULL on host. */
  void *(*stream_native)(void *ctx, cgr__stream *stream);

  cgr_status (*event_create)(void *ctx, int timing, cgr__event **out);
  void (*event_destroy)(void *ctx, cgr__event *event);
  cgr_status (*event_record)(void *ctx, cgr__event *event, cgr__stream *stream);
  /* Later work on stream waits for the event's most recent record as of this
   * call; an event never recorded is already complete. */
  cgr_status (*stream_wait_event)(void *ctx, cgr__stream *stream,
                                  cgr__event *event);
  /* CGR_OK when complete, CGR_E_NOT_READY when not. */
  cgr_status (*event_query)(void *ctx, cgr__event *event);
  cgr_status (*event_synchronize)(void *ctx, cgr__event *event);
  /* Milliseconds between two completed timing events. */
  cgr_status (*event_elapsed_ms)(void *ctx, cgr__event *start, cgr__event *end,
                                 float *out_ms);
  /* (optional) A record the caller's host work completes: the event is
   * pending from event_record_host until event_signal_host. The host
   * backend's stand-in for a record on a caller's CUDA stream; NULL on
   * CUDA (the wrapper says CGR_E_UNSUPPORTED). */
  cgr_status (*event_record_host)(void *ctx, cgr__event *event);
  cgr_status (*event_signal_host)(void *ctx, cgr__event *event);

  cgr_status (*device_alloc)(void *ctx, size_t bytes, void **out);
  void (*device_free)(void *ctx, void *ptr);
  /* What memory the whole range [ptr, ptr + bytes) lies in: device memory
   * of this backend's device, page-locked host memory, or neither (pageable
   * memory, another device's, or a range that runs past its allocation). */
  cgr_status (*memory_kind)(void *ctx, const void *ptr, size_t bytes,
                            cgr__memory_kind *out);
  /* Page-locked host memory the device can read directly. */
  cgr_status (*pinned_alloc)(void *ctx, size_t bytes, void **out);
  void (*pinned_free)(void *ctx, void *ptr);

  /* Any direction (unified addressing). Zero bytes is a no-op that adds
   * no graph node during capture (both backends). */
  cgr_status (*memcpy_async)(void *ctx, cgr__stream *stream, void *dst,
                             const void *src, size_t bytes);
  cgr_status (*memset_async)(void *ctx, cgr__stream *stream, void *dst,
                             int value, size_t bytes);
  cgr_status (*kernel_launch)(void *ctx, cgr__stream *stream,
                              const cgr__kernel *kernel, const void *args);
  cgr_status (*host_func)(void *ctx, cgr__stream *stream, cgr__host_fn fn,
                          void *user);
  /* (optional) Rank `rank`'s part of collective c (runtime/collective.h)
   * in a communicator of `ranks` ranks, enqueued on stream in stream order
   * and captured like a kernel. handle is the rank's (cgr__comm.handles):
   * the host communicator, or an ncclComm_t. The call returns once the
   * work is enqueued; it waits for its peers on the stream. NULL where the
   * backend has none (the wrapper says CGR_E_UNSUPPORTED). */
  cgr_status (*collective)(void *ctx, cgr__stream *stream, void *handle,
                           int rank, int ranks, const cgr__collective *c);

  /* Thread-local capture mode: while this thread captures, it may not
   * allocate or synchronize. */
  cgr_status (*capture_begin)(void *ctx, cgr__stream *stream);
  /* Ends the capture. If anything illegal happened during it, the capture is
   * invalidated: the partial graph is destroyed, *out is NULL and the
   * status is CGR_E_CAPTURE with the reason. */
  cgr_status (*capture_end)(void *ctx, cgr__stream *stream, cgr__graph **out);
  /* 1 while the stream is capturing. */
  int (*stream_is_capturing)(void *ctx, cgr__stream *stream);
  /* (optional) Adds `graph`, a graph the caller built in the backend's
   * native form (a cudaGraph_t on CUDA), as one node of the capture under
   * way on `stream`: after the work captured on the stream so far, before
   * the work captured after it. The node holds a copy: the caller keeps
   * its graph. NULL on the host backend, whose graphs are only ever its
   * own (the wrapper says CGR_E_UNSUPPORTED). */
  cgr_status (*capture_child_graph)(void *ctx, cgr__stream *stream,
                                    cgr__graph *graph);
  /* Number of nodes in a captured graph. */
  cgr_status (*graph_node_count)(void *ctx, cgr__graph *graph, size_t *out);
  void (*graph_destroy)(void *ctx, cgr__graph *graph);
  /* Writes the graph as a Graphviz DOT file. */
  cgr_status (*graph_dump)(void *ctx, cgr__graph *graph, const char *path);
  /* Instantiates and, when upload_stream is not NULL, uploads on it so the
   * first launch pays no upload. The graph may be destroyed afterwards. */
  cgr_status (*graph_instantiate)(void *ctx, cgr__graph *graph,
                                  cgr__stream *upload_stream,
                                  cgr__graph_exec **out);
  /* Launches of one exec are ordered behind each other, as in CUDA. */
  cgr_status (*graph_launch)(void *ctx, cgr__graph_exec *exec,
                             cgr__stream *stream);
  /* Safe while a launch is pending: freed once it finished. */
  void (*graph_exec_destroy)(void *ctx, cgr__graph_exec *exec);

  cgr_status (*stream_synchronize)(void *ctx, cgr__stream *stream);
  cgr_status (*device_synchronize)(void *ctx);

  /* Fills what the backend knows. */
  cgr_status (*device_info)(void *ctx, cgr_device_info *out);
  /* Optional: 1 when the device failed asynchronously (the host
   * backend's injected device fault), with why in `reason`. CUDA reports
   * its sticky errors through the calls themselves. */
  int (*device_fault)(void *ctx, char *reason, size_t size);
} cgr__backend_ops;

/* A backend instance: its table, its context, its counters. */
typedef struct cgr__backend {
  const cgr__backend_ops *ops;
  void *ctx;
  cgr__error *error; /* where failures are reported; owned by the runtime */
  _Atomic uint64_t calls[CGR__CALL_COUNT];
  /* Once the device is lost (CGR_E_DEVICE_LOST from a call, or the
   * backend's device_fault), every call fails at once with the reason,
   * and only destroy, free and drain still run. */
  _Atomic int lost;
  _Atomic int lost_reason_ready;
  char lost_reason[CGR__ERROR_MESSAGE_SIZE];
  /* Raised by the backend when its device faults outside any call (the
   * host backend's workers), so that the check before every call is a
   * load, not a call; NULL when the calls' statuses report it (CUDA). */
  const _Atomic int *device_faulted;
} cgr__backend;

/* 1 once the device is lost: two loads in the steady state. */
int cgr__be_lost_slow(cgr__backend *be);
static inline int cgr__be_lost(cgr__backend *be) {
  if (atomic_load_explicit(&be->lost, memory_order_acquire))
    return 1;
  if (be->device_faulted == NULL ||
      !atomic_load_explicit(be->device_faulted, memory_order_acquire))
    return 0;
  return cgr__be_lost_slow(be);
}
/* Records "the device was lost: <reason>" for `func` in the runtime's
 * error and returns CGR_E_DEVICE_LOST: what every call says afterwards. */
cgr_status cgr__be_lost_status(cgr__backend *be, const char *func);

/* Fault injection (runtime/fault.h): 1 while no plan is armed and no error
 * is left behind, every run but the fault tests'. The dispatch point and
 * the per-step sites then skip injection with one relaxed load (issue
 * 23's budget). */
extern _Atomic int cgr__fault_engaged_;
static inline int cgr__fault_idle(void) {
  return !atomic_load_explicit(&cgr__fault_engaged_, memory_order_relaxed);
}

/* Zero while nothing in the process can make a call fail before it
 * reaches its backend: CGR__TROUBLE_FAULT while fault injection is
 * engaged (cgr__fault_engaged_), CGR__TROUBLE_LOST from the first device
 * lost or faulted on (a backend's lost flag, the host backend's device
 * fault) for good. The step's calls then skip the lost and fault checks
 * with one load; a process that lost a device takes them from then on. */
extern _Atomic int cgr__be_trouble_;
enum { CGR__TROUBLE_FAULT = 1, CGR__TROUBLE_LOST = 2 };
static inline void cgr__be_trouble_raise(int what) {
  atomic_fetch_or_explicit(&cgr__be_trouble_, what, memory_order_release);
}

/*
 * The step's calls (a launch, an event record or wait, a copy) inline
 * while the device is not lost and no fault is armed: the arguments'
 * checks, the backend's call, and its count, as the dispatch's own fast
 * path does them, without a call into it. Anything else (a NULL argument,
 * a lost device, an armed fault) takes the dispatch function, `site` and
 * all, which says why.
 */
static inline int cgr__be_fast(cgr__backend *be) {
  if (atomic_load_explicit(&cgr__be_trouble_, memory_order_acquire) == 0)
    return 1;
  return !cgr__be_lost(be) && cgr__fault_idle();
}
/* A failed call's status counted: a lost device is marked so. */
cgr_status cgr__be_count_failed(cgr__backend *be, cgr_status status);
static inline cgr_status cgr__be_count(cgr__backend *be, cgr__call call,
                                       cgr_status status) {
  if (status != CGR_OK)
    return cgr__be_count_failed(be, status);
  atomic_fetch_add_explicit(&be->calls[call], 1, memory_order_relaxed);
  return CGR_OK;
}

/*
 * Backend constructors. On success *be is ready to use; on failure it is
 * untouched but for ops == NULL and the message is in err.
 *   host: always available (unless fault injection says otherwise).
 *   cuda: CGR_E_NO_DEVICE with a reason when unusable, CGR_E_UNSUPPORTED in
 *         a build without CUDA.
 */
cgr_status cgr__host_backend_init(cgr__backend *be, cgr__error *err,
                                  int device);
cgr_status cgr__cuda_backend_init(cgr__backend *be, cgr__error *err,
                                  int device);

/*
 * Probe CUDA without creating anything: CGR_OK when a driver and device
 * `device` are usable; otherwise CGR_E_NO_DEVICE (or CGR_E_UNSUPPORTED in a
 * build without CUDA) and a reason in why ("no CUDA driver", "driver too
 * old: supports CUDA 12.2, runtime needs 13.0", "no CUDA device", ...).
 */
cgr_status cgr__cuda_probe(int device, char *why, size_t why_size);

/* Frees the backend's context; be->ops becomes NULL. NULL-safe. */
void cgr__backend_destroy(cgr__backend *be);

/* ---- the dispatch point ---------------------------------------------- */

/*
 * A wrapper that fault injection can fail is a macro of its own name that
 * passes the caller's site (runtime/site.h) to the function of that name
 * with `_at`, so callers write cgr__be_memcpy_async(be, ...) and fault
 * injection counts the calls of each calling function apart.
 */

cgr_status cgr__be_stream_create_at(cgr__site site, cgr__backend *be,
                                    cgr_stream_priority prio, const char *name,
                                    cgr__stream **out);
#define cgr__be_stream_create(...)                                             \
  cgr__be_stream_create_at(CGR__SITE, __VA_ARGS__)
void cgr__be_stream_destroy(cgr__backend *be, cgr__stream *stream);
void *cgr__be_stream_native(cgr__backend *be, cgr__stream *stream);

cgr_status cgr__be_event_create_at(cgr__site site, cgr__backend *be, int timing,
                                   cgr__event **out);
#define cgr__be_event_create(...)                                              \
  cgr__be_event_create_at(CGR__SITE, __VA_ARGS__)
void cgr__be_event_destroy(cgr__backend *be, cgr__event *event);
cgr_status cgr__be_event_record_at(cgr__site site, cgr__backend *be,
                                   cgr__event *event, cgr__stream *stream);
static inline cgr_status cgr__be_event_record_in(cgr__site site,
                                                 cgr__backend *be,
                                                 cgr__event *event,
                                                 cgr__stream *stream) {
  if (event != NULL && stream != NULL && cgr__be_fast(be))
    return cgr__be_count(be, CGR__CALL_EVENT_RECORD,
                         be->ops->event_record(be->ctx, event, stream));
  return cgr__be_event_record_at(site, be, event, stream);
}
#define cgr__be_event_record(...)                                              \
  cgr__be_event_record_in(CGR__SITE, __VA_ARGS__)
cgr_status cgr__be_stream_wait_event_at(cgr__site site, cgr__backend *be,
                                        cgr__stream *stream, cgr__event *event);
static inline cgr_status cgr__be_stream_wait_event_in(cgr__site site,
                                                      cgr__backend *be,
                                                      cgr__stream *stream,
                                                      cgr__event *event) {
  if (stream != NULL && event != NULL && cgr__be_fast(be))
    return cgr__be_count(be, CGR__CALL_EVENT_WAIT,
                         be->ops->stream_wait_event(be->ctx, stream, event));
  return cgr__be_stream_wait_event_at(site, be, stream, event);
}
#define cgr__be_stream_wait_event(...)                                         \
  cgr__be_stream_wait_event_in(CGR__SITE, __VA_ARGS__)
cgr_status cgr__be_event_query_at(cgr__backend *be, cgr__event *event);
/* The backend's answer, but OK and NOT_READY, as cgr__be_event_query_at
 * ends with it. */
cgr_status cgr__be_event_query_done(cgr__backend *be, cgr_status status);
/* CGR_OK when the event's work is done, CGR_E_NOT_READY while it runs. */
static inline cgr_status cgr__be_event_query(cgr__backend *be,
                                             cgr__event *event) {
  if (event == NULL || !cgr__be_fast(be))
    return cgr__be_event_query_at(be, event);
  cgr_status status = be->ops->event_query(be->ctx, event);
  if (status == CGR_E_NOT_READY || (status == CGR_OK && !cgr__be_lost(be)))
    return status;
  return cgr__be_event_query_done(be, status);
}
cgr_status cgr__be_event_synchronize_at(cgr__site site, cgr__backend *be,
                                        cgr__event *event);
#define cgr__be_event_synchronize(...)                                         \
  cgr__be_event_synchronize_at(CGR__SITE, __VA_ARGS__)
cgr_status cgr__be_event_elapsed_ms(cgr__backend *be, cgr__event *start,
                                    cgr__event *end, float *out_ms);
/* Optional slots: CGR_E_UNSUPPORTED where the backend has none. */
cgr_status cgr__be_event_record_host(cgr__backend *be, cgr__event *event);
cgr_status cgr__be_event_signal_host(cgr__backend *be, cgr__event *event);

cgr_status cgr__be_device_alloc_at(cgr__site site, cgr__backend *be,
                                   size_t bytes, void **out);
#define cgr__be_device_alloc(...)                                              \
  cgr__be_device_alloc_at(CGR__SITE, __VA_ARGS__)
void cgr__be_device_free(cgr__backend *be, void *ptr);
cgr_status cgr__be_memory_kind(cgr__backend *be, const void *ptr, size_t bytes,
                               cgr__memory_kind *out);
cgr_status cgr__be_pinned_alloc_at(cgr__site site, cgr__backend *be,
                                   size_t bytes, void **out);
#define cgr__be_pinned_alloc(...)                                              \
  cgr__be_pinned_alloc_at(CGR__SITE, __VA_ARGS__)
void cgr__be_pinned_free(cgr__backend *be, void *ptr);

cgr_status cgr__be_memcpy_async_at(cgr__site site, cgr__backend *be,
                                   cgr__stream *stream, void *dst,
                                   const void *src, size_t bytes);
static inline cgr_status
cgr__be_memcpy_async_in(cgr__site site, cgr__backend *be, cgr__stream *stream,
                        void *dst, const void *src, size_t bytes) {
  if (stream != NULL && dst != NULL && src != NULL && bytes > 0 &&
      cgr__be_fast(be))
    return cgr__be_count(be, CGR__CALL_COPY,
                         be->ops->memcpy_async(be->ctx, stream, dst, src,
                                               bytes));
  return cgr__be_memcpy_async_at(site, be, stream, dst, src, bytes);
}
#define cgr__be_memcpy_async(...)                                              \
  cgr__be_memcpy_async_in(CGR__SITE, __VA_ARGS__)
cgr_status cgr__be_memset_async_at(cgr__site site, cgr__backend *be,
                                   cgr__stream *stream, void *dst, int value,
                                   size_t bytes);
static inline cgr_status cgr__be_memset_async_in(cgr__site site,
                                                 cgr__backend *be,
                                                 cgr__stream *stream, void *dst,
                                                 int value, size_t bytes) {
  if (stream != NULL && dst != NULL && bytes > 0 && cgr__be_fast(be))
    return cgr__be_count(be, CGR__CALL_MEMSET,
                         be->ops->memset_async(be->ctx, stream, dst, value,
                                               bytes));
  return cgr__be_memset_async_at(site, be, stream, dst, value, bytes);
}
#define cgr__be_memset_async(...)                                              \
  cgr__be_memset_async_in(CGR__SITE, __VA_ARGS__)
cgr_status cgr__be_kernel_launch_at(cgr__site site, cgr__backend *be,
                                    cgr__stream *stream,
                                    const cgr__kernel *kernel,
                                    const void *args);
static inline cgr_status
cgr__be_kernel_launch_in(cgr__site site, cgr__backend *be, cgr__stream *stream,
                         const cgr__kernel *kernel, const void *args) {
  if (stream != NULL && kernel != NULL && args != NULL && cgr__be_fast(be))
    return cgr__be_count(be, CGR__CALL_KERNEL_LAUNCH,
                         be->ops->kernel_launch(be->ctx, stream, kernel, args));
  return cgr__be_kernel_launch_at(site, be, stream, kernel, args);
}
#define cgr__be_kernel_launch(...)                                             \
  cgr__be_kernel_launch_in(CGR__SITE, __VA_ARGS__)
cgr_status cgr__be_host_func_at(cgr__site site, cgr__backend *be,
                                cgr__stream *stream, cgr__host_fn fn,
                                void *user);
#define cgr__be_host_func(...) cgr__be_host_func_at(CGR__SITE, __VA_ARGS__)
/* Optional slot: CGR_E_UNSUPPORTED where the backend has none. Counted,
 * and injectable, as a kernel launch: that is what it is on both
 * backends (NCCL's kernel, the host communicator's host kernel). */
cgr_status cgr__be_collective_at(cgr__site site, cgr__backend *be,
                                 cgr__stream *stream, void *handle, int rank,
                                 int ranks, const cgr__collective *c);
#define cgr__be_collective(...) cgr__be_collective_at(CGR__SITE, __VA_ARGS__)

cgr_status cgr__be_capture_begin_at(cgr__site site, cgr__backend *be,
                                    cgr__stream *stream);
#define cgr__be_capture_begin(...)                                             \
  cgr__be_capture_begin_at(CGR__SITE, __VA_ARGS__)
cgr_status cgr__be_capture_end_at(cgr__site site, cgr__backend *be,
                                  cgr__stream *stream, cgr__graph **out);
#define cgr__be_capture_end(...) cgr__be_capture_end_at(CGR__SITE, __VA_ARGS__)
int cgr__be_stream_is_capturing(cgr__backend *be, cgr__stream *stream);
/* Optional slot: CGR_E_UNSUPPORTED where the backend has none. Neither
 * counted (no counter is a node added to a capture) nor injectable: it
 * has no call kind of its own. */
cgr_status cgr__be_capture_child_graph(cgr__backend *be, cgr__stream *stream,
                                       cgr__graph *graph);
cgr_status cgr__be_graph_node_count(cgr__backend *be, cgr__graph *graph,
                                    size_t *out);
void cgr__be_graph_destroy(cgr__backend *be, cgr__graph *graph);
cgr_status cgr__be_graph_dump(cgr__backend *be, cgr__graph *graph,
                              const char *path);
cgr_status cgr__be_graph_instantiate_at(cgr__site site, cgr__backend *be,
                                        cgr__graph *graph,
                                        cgr__stream *upload_stream,
                                        cgr__graph_exec **out);
#define cgr__be_graph_instantiate(...)                                         \
  cgr__be_graph_instantiate_at(CGR__SITE, __VA_ARGS__)
cgr_status cgr__be_graph_launch_at(cgr__site site, cgr__backend *be,
                                   cgr__graph_exec *exec, cgr__stream *stream);
static inline cgr_status cgr__be_graph_launch_in(cgr__site site,
                                                 cgr__backend *be,
                                                 cgr__graph_exec *exec,
                                                 cgr__stream *stream) {
  if (exec != NULL && stream != NULL && cgr__be_fast(be))
    return cgr__be_count(be, CGR__CALL_GRAPH_LAUNCH,
                         be->ops->graph_launch(be->ctx, exec, stream));
  return cgr__be_graph_launch_at(site, be, exec, stream);
}
#define cgr__be_graph_launch(...)                                              \
  cgr__be_graph_launch_in(CGR__SITE, __VA_ARGS__)
void cgr__be_graph_exec_destroy(cgr__backend *be, cgr__graph_exec *exec);

cgr_status cgr__be_stream_synchronize_at(cgr__site site, cgr__backend *be,
                                         cgr__stream *stream);
#define cgr__be_stream_synchronize(...)                                        \
  cgr__be_stream_synchronize_at(CGR__SITE, __VA_ARGS__)
/* Waits for the stream's queued work before cleanup frees memory it may
 * use: neither counted nor subject to fault injection (a cleanup path must
 * not fail artificially), and its error, if the device has one, is left to
 * the next counted call to report. */
void cgr__be_stream_drain(cgr__backend *be, cgr__stream *stream);
cgr_status cgr__be_device_synchronize_at(cgr__site site, cgr__backend *be);
#define cgr__be_device_synchronize(be)                                         \
  cgr__be_device_synchronize_at(CGR__SITE, be)
cgr_status cgr__be_device_info(cgr__backend *be, cgr_device_info *out);

/* Counter of one call kind (relaxed read). */
uint64_t cgr__be_calls(const cgr__backend *be, cgr__call call);
void cgr__be_reset_calls(cgr__backend *be);

#endif /* CGR_RUNTIME_BACKEND_H */
