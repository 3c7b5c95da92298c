/*
 * The CUDA backend: cudart streams, events and memory, and the CUDA Graphs
 * API for capture and replay.
 *
 * Native handles are the opaque handles: a cgr__stream * is a cudaStream_t,
 * a cgr__event * a cudaEvent_t, and so on, so no call allocates a wrapper.
 * backend.c has already checked arguments, consulted fault injection and
 * will count the call; the functions here only do the work.
 *
 * Every CUDA call is checked. A failure clears CUDA's non-sticky last error
 * (so a later, unrelated call does not report it again), writes one message
 * that names the CUDA call and its error string, and returns a status.
 * Nothing here aborts.
 */
#include "runtime/backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "runtime/alloc.h"
#include "runtime/cuda/cuda_errors.h"
#include "runtime/cuda/cuda_memory.h"
#include "runtime/cuda/cuda_nccl.h"
#include "runtime/cuda/device_code.h"

typedef struct cuda_ctx {
  int device;
  cgr__error *err;
  /* cudaDeviceGetStreamPriorityRange: `least` is the numerically greatest
   * value (lowest priority, 0 on every device so far), `greatest` the
   * numerically lowest (highest priority, e.g. -5 on an H100). */
  int priority_least;
  int priority_greatest;
} cuda_ctx;

#define AS_STREAM(stream) ((cudaStream_t)(void *)(stream))
#define AS_EVENT(event) ((cudaEvent_t)(void *)(event))
#define AS_GRAPH(graph) ((cudaGraph_t)(void *)(graph))
#define AS_EXEC(exec) ((cudaGraphExec_t)(void *)(exec))

/* The cgr status a CUDA error means (cuda_errors.h: the sticky errors are
 * CGR_E_DEVICE_LOST). `fallback` is what any other failure means for the
 * call at hand (CGR_E_CUDA for most, CGR_E_CAPTURE for capture calls). */
static cgr_status status_of(cudaError_t e, cgr_status fallback) {
  return cgr__cuda_status_of((int)e, fallback);
}

/*
 * Reports a failed CUDA call: clears the non-sticky last error, then records
 * "<what> failed: <cudaErrorName> (<error string>)" with the raw error, and
 * returns status. `what` is a printf format naming the call and, where it
 * helps, its size ("cudaMalloc(4096 bytes)").
 */
static cgr_status cuda_fail(const cuda_ctx *ctx, cudaError_t e,
                            cgr_status status, const char *func,
                            const char *what, ...)
    __attribute__((format(printf, 5, 6)));

static cgr_status cuda_fail(const cuda_ctx *ctx, cudaError_t e,
                            cgr_status status, const char *func,
                            const char *what, ...) {
  (void)cudaGetLastError();
  char call[160];
  va_list args;
  va_start(args, what);
  vsnprintf(call, sizeof call, what, args);
  va_end(args);
  return cgr__fail_cuda(ctx->err, status, (int)e, func, "%s failed: %s (%s)",
                        call, cudaGetErrorName(e), cudaGetErrorString(e));
}

/* The check macro, in the NCCL style: evaluate a cudart call once, and on
 * failure report it and return the mapped status from the enclosing
 * function. Never aborts. */
#define CUDA_CHECK(ctx, expr, call_name)                                       \
  do {                                                                         \
    cudaError_t cuda_check_error_ = (expr);                                    \
    if (cuda_check_error_ != cudaSuccess)                                      \
      return cuda_fail((ctx), cuda_check_error_,                               \
                       status_of(cuda_check_error_, CGR_E_CUDA), __func__,     \
                       "%s", (call_name));                                     \
  } while (0)

/* For calls whose failure cannot be reported (destroy, free): the error is
 * dropped, and cleared so that it does not surface in a later call. */
static void ignore_error(cudaError_t e) {
  if (e != cudaSuccess)
    (void)cudaGetLastError();
}

/*
 * Makes ctx->device current on the calling thread, which may not be the one
 * that created the backend. Calls that create something (streams, events,
 * memory, an exec) or launch a kernel use the current device; stream-ordered
 * calls on an existing stream do not need this. cudaGetDevice is a
 * thread-local read, so the common case costs no cudaSetDevice.
 */
static cgr_status use_device(const cuda_ctx *ctx, const char *func) {
  int current = -1;
  cudaError_t e = cudaGetDevice(&current);
  if (e == cudaSuccess && current == ctx->device)
    return CGR_OK;
  ignore_error(e);
  e = cudaSetDevice(ctx->device);
  if (e != cudaSuccess)
    return cuda_fail(ctx, e, status_of(e, CGR_E_CUDA), func,
                     "cudaSetDevice(%d)", ctx->device);
  return CGR_OK;
}

/* ---- lifetime -------------------------------------------------------- */

static void cuda_destroy(void *opaque) {
  /* The device is not reset: other code in the process may share its
   * primary context. */
  cgr__free(opaque);
}

/* ---- streams --------------------------------------------------------- */

static cgr_status cuda_stream_create(void *opaque, cgr_stream_priority priority,
                                     const char *name, cgr__stream **out) {
  const cuda_ctx *ctx = opaque;
  /* runtime.c names the stream through NVTX; nothing to do with it here. */
  (void)name;
  CGR__CHECK(use_device(ctx, __func__));
  int value = priority == CGR_PRIORITY_HIGH ? ctx->priority_greatest
                                            : ctx->priority_least;
  cudaStream_t stream = NULL;
  /* Non-blocking: cgr's streams must never serialize against the legacy
   * default stream that the application may be using. */
  cudaError_t e =
      cudaStreamCreateWithPriority(&stream, cudaStreamNonBlocking, value);
  if (e != cudaSuccess)
    return cuda_fail(ctx, e, status_of(e, CGR_E_CUDA), __func__,
                     "cudaStreamCreateWithPriority(priority %d)", value);
  *out = (cgr__stream *)(void *)stream;
  return CGR_OK;
}

static void cuda_stream_destroy(void *opaque, cgr__stream *stream) {
  (void)opaque;
  cudaStream_t native = AS_STREAM(stream);
  /* A stream torn down mid-capture (a failed create or capture path) must
   * leave capture mode first: synchronizing it would be illegal, and the
   * partial graph would leak. */
  enum cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  cudaError_t e = cudaStreamIsCapturing(native, &capture);
  ignore_error(e);
  if (e == cudaSuccess && capture != cudaStreamCaptureStatusNone) {
    cudaGraph_t partial = NULL;
    ignore_error(cudaStreamEndCapture(native, &partial));
    if (partial != NULL)
      ignore_error(cudaGraphDestroy(partial));
  }
  /* cudaStreamDestroy returns at once and lets pending work finish; the
   * contract is that the work has finished when destroy returns. */
  ignore_error(cudaStreamSynchronize(native));
  ignore_error(cudaStreamDestroy(native));
}

static void *cuda_stream_native(void *opaque, cgr__stream *stream) {
  (void)opaque;
  return (void *)AS_STREAM(stream);
}

/* ---- events ---------------------------------------------------------- */

static cgr_status cuda_event_create(void *opaque, int timing,
                                    cgr__event **out) {
  const cuda_ctx *ctx = opaque;
  CGR__CHECK(use_device(ctx, __func__));
  /* Timing costs a timestamp at every record; only timing events pay it. */
  unsigned flags = timing ? cudaEventDefault : cudaEventDisableTiming;
  cudaEvent_t event = NULL;
  CUDA_CHECK(ctx, cudaEventCreateWithFlags(&event, flags),
             "cudaEventCreateWithFlags");
  *out = (cgr__event *)(void *)event;
  return CGR_OK;
}

static void cuda_event_destroy(void *opaque, cgr__event *event) {
  (void)opaque;
  ignore_error(cudaEventDestroy(AS_EVENT(event)));
}

static cgr_status cuda_event_record(void *opaque, cgr__event *event,
                                    cgr__stream *stream) {
  const cuda_ctx *ctx = opaque;
  CUDA_CHECK(ctx, cudaEventRecord(AS_EVENT(event), AS_STREAM(stream)),
             "cudaEventRecord");
  return CGR_OK;
}

static cgr_status cuda_stream_wait_event(void *opaque, cgr__stream *stream,
                                         cgr__event *event) {
  const cuda_ctx *ctx = opaque;
  CUDA_CHECK(ctx, cudaStreamWaitEvent(AS_STREAM(stream), AS_EVENT(event), 0),
             "cudaStreamWaitEvent");
  return CGR_OK;
}

static cgr_status cuda_event_query(void *opaque, cgr__event *event) {
  const cuda_ctx *ctx = opaque;
  cudaError_t e = cudaEventQuery(AS_EVENT(event));
  /* "Not ready" is an answer, not a failure: CUDA does not record it as the
   * last error, and a polling loop must not pay for a message each time. */
  if (e == cudaSuccess)
    return CGR_OK;
  if (e == cudaErrorNotReady)
    return CGR_E_NOT_READY;
  return cuda_fail(ctx, e, status_of(e, CGR_E_CUDA), __func__,
                   "cudaEventQuery");
}

static cgr_status cuda_event_synchronize(void *opaque, cgr__event *event) {
  const cuda_ctx *ctx = opaque;
  CUDA_CHECK(ctx, cudaEventSynchronize(AS_EVENT(event)),
             "cudaEventSynchronize");
  return CGR_OK;
}

static cgr_status cuda_event_elapsed_ms(void *opaque, cgr__event *start,
                                        cgr__event *end, float *out_ms) {
  const cuda_ctx *ctx = opaque;
  float ms = 0.0f;
  /* Same signature from CUDA 12.4 through 13.0 (12.8 added a separate
   * cudaEventElapsedTime_v2, which 13.0 no longer declares). An event that
   * has not completed yields CGR_E_NOT_READY. */
  CUDA_CHECK(ctx, cudaEventElapsedTime(&ms, AS_EVENT(start), AS_EVENT(end)),
             "cudaEventElapsedTime");
  *out_ms = ms;
  return CGR_OK;
}

/* ---- memory ---------------------------------------------------------- */

static cgr_status cuda_device_alloc(void *opaque, size_t bytes, void **out) {
  const cuda_ctx *ctx = opaque;
  CGR__CHECK(use_device(ctx, __func__));
  void *ptr = NULL;
  cudaError_t e = cudaMalloc(&ptr, bytes);
  if (e != cudaSuccess)
    return cuda_fail(ctx, e, status_of(e, CGR_E_CUDA), __func__,
                     "cudaMalloc(%zu bytes) on device %d", bytes, ctx->device);
  *out = ptr;
  return CGR_OK;
}

static void cuda_device_free(void *opaque, void *ptr) {
  (void)opaque;
  ignore_error(cudaFree(ptr));
}

static cgr_status cuda_memory_kind(void *opaque, const void *ptr, size_t bytes,
                                   cgr__memory_kind *out) {
  const cuda_ctx *ctx = opaque;
  CUDA_CHECK(ctx,
             (cudaError_t)cgr__cuda_memory_kind(ctx->device, ptr, bytes, out),
             "cudaPointerGetAttributes");
  return CGR_OK;
}

static cgr_status cuda_pinned_alloc(void *opaque, size_t bytes, void **out) {
  const cuda_ctx *ctx = opaque;
  CGR__CHECK(use_device(ctx, __func__));
  void *ptr = NULL;
  cudaError_t e = cudaHostAlloc(&ptr, bytes, cudaHostAllocDefault);
  if (e != cudaSuccess) {
    /* Pinned memory is host memory: running out of it is a host OOM. */
    cgr_status status = e == cudaErrorMemoryAllocation
                            ? CGR_E_OUT_OF_MEMORY
                            : status_of(e, CGR_E_CUDA);
    return cuda_fail(ctx, e, status, __func__, "cudaHostAlloc(%zu bytes)",
                     bytes);
  }
  *out = ptr;
  return CGR_OK;
}

static void cuda_pinned_free(void *opaque, void *ptr) {
  (void)opaque;
  ignore_error(cudaFreeHost(ptr));
}

/* ---- work ------------------------------------------------------------ */

/* Zero-byte copies and fills never get here: backend.c answers them
 * without work, so they add no node to a capture on either backend. */

static cgr_status cuda_memcpy_async(void *opaque, cgr__stream *stream,
                                    void *dst, const void *src, size_t bytes) {
  const cuda_ctx *ctx = opaque;
  cudaError_t e =
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, AS_STREAM(stream));
  if (e != cudaSuccess)
    return cuda_fail(ctx, e, status_of(e, CGR_E_CUDA), __func__,
                     "cudaMemcpyAsync(%zu bytes)", bytes);
  return CGR_OK;
}

static cgr_status cuda_memset_async(void *opaque, cgr__stream *stream,
                                    void *dst, int value, size_t bytes) {
  const cuda_ctx *ctx = opaque;
  cudaError_t e = cudaMemsetAsync(dst, value, bytes, AS_STREAM(stream));
  if (e != cudaSuccess)
    return cuda_fail(ctx, e, status_of(e, CGR_E_CUDA), __func__,
                     "cudaMemsetAsync(%zu bytes)", bytes);
  return CGR_OK;
}

static cgr_status cuda_kernel_launch(void *opaque, cgr__stream *stream,
                                     const cgr__kernel *kernel,
                                     const void *args) {
  const cuda_ctx *ctx = opaque;
  const char *name = kernel->name ? kernel->name : "(unnamed)";
  if (kernel->cuda_launch == NULL)
    return cgr__fail(ctx->err, CGR_E_UNSUPPORTED, __func__,
                     "kernel '%s' has no CUDA launcher in this build", name);
  /* A runtime-API launch goes to the current device, and the stream must
   * belong to it. */
  CGR__CHECK(use_device(ctx, __func__));
  cudaError_t e =
      (cudaError_t)kernel->cuda_launch((void *)AS_STREAM(stream), args);
  if (e != cudaSuccess)
    return cuda_fail(ctx, e, status_of(e, CGR_E_CUDA), __func__,
                     "launching kernel '%s'", name);
  return CGR_OK;
}

static cgr_status cuda_host_func(void *opaque, cgr__stream *stream,
                                 cgr__host_fn fn, void *user) {
  const cuda_ctx *ctx = opaque;
  /* cgr__host_fn and cudaHostFn_t are both void (*)(void *) (CUDART_CB is
   * empty outside Windows). */
  CUDA_CHECK(ctx, cudaLaunchHostFunc(AS_STREAM(stream), fn, user),
             "cudaLaunchHostFunc");
  return CGR_OK;
}

/* A step's collective on NCCL (runtime/cuda/cuda_nccl.c; without NCCL in
 * the build, CGR_E_UNSUPPORTED). NCCL enqueues on the current device. */
static cgr_status cuda_collective(void *opaque, cgr__stream *stream,
                                  void *handle, int rank, int ranks,
                                  const cgr__collective *c) {
  const cuda_ctx *ctx = opaque;
  CGR__CHECK(use_device(ctx, __func__));
  return cgr__nccl_collective(ctx->device, ctx->err, (void *)AS_STREAM(stream),
                              handle, rank, ranks, c);
}

/* ---- capture and graphs ---------------------------------------------- */

static cgr_status cuda_capture_begin(void *opaque, cgr__stream *stream) {
  const cuda_ctx *ctx = opaque;
  /* Thread-local mode: an illegal call (allocation, synchronization) made by
   * this thread during the capture invalidates it, while other threads,
   * which may serve other lanes or the application, are not affected. */
  cudaError_t e = cudaStreamBeginCapture(AS_STREAM(stream),
                                         cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess)
    return cuda_fail(ctx, e, status_of(e, CGR_E_CAPTURE), __func__,
                     "cudaStreamBeginCapture");
  return CGR_OK;
}

static cgr_status cuda_capture_end(void *opaque, cgr__stream *stream,
                                   cgr__graph **out) {
  const cuda_ctx *ctx = opaque;
  cudaGraph_t graph = NULL;
  cudaError_t e = cudaStreamEndCapture(AS_STREAM(stream), &graph);
  if (e != cudaSuccess) {
    /* An invalidated capture returns no graph; destroy one if a driver
     * returns a partial graph anyway, so nothing is left half-built. */
    if (graph != NULL)
      ignore_error(cudaGraphDestroy(graph));
    *out = NULL;
    cgr_status status = e == cudaErrorMemoryAllocation
                            ? CGR_E_DEVICE_OUT_OF_MEMORY
                            : CGR_E_CAPTURE;
    return cuda_fail(ctx, e, status, __func__, "cudaStreamEndCapture");
  }
  *out = (cgr__graph *)(void *)graph;
  return CGR_OK;
}

static int cuda_stream_is_capturing(void *opaque, cgr__stream *stream) {
  (void)opaque;
  enum cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  cudaError_t e = cudaStreamIsCapturing(AS_STREAM(stream), &capture);
  if (e != cudaSuccess) {
    ignore_error(e);
    return 0;
  }
  /* An invalidated capture still has to be ended: it counts as capturing. */
  return capture == cudaStreamCaptureStatusActive ||
         capture == cudaStreamCaptureStatusInvalidated;
}

/*
 * The capture's graph and the nodes the stream's next work would depend
 * on. The edge data must be asked for: without it, a dependency that
 * carries any (a programmatic launch's edge) fails the query with
 * cudaErrorLossyQuery. Named with _v3 from CUDA 12.3; 13.0 gave the plain
 * name this signature and dropped the older one.
 */
static cudaError_t capture_info(cudaStream_t stream,
                                enum cudaStreamCaptureStatus *capture,
                                cudaGraph_t *graph,
                                const cudaGraphNode_t **dependencies,
                                size_t *count) {
  const cudaGraphEdgeData *edges = NULL;
#if CUDART_VERSION >= 13000
  return cudaStreamGetCaptureInfo(stream, capture, NULL, graph, dependencies,
                                  &edges, count);
#else
  return cudaStreamGetCaptureInfo_v3(stream, capture, NULL, graph, dependencies,
                                     &edges, count);
#endif
}

/* The stream's next work depends on `node` alone (default edges). */
static cudaError_t capture_continue_after(cudaStream_t stream,
                                          cudaGraphNode_t *node) {
#if CUDART_VERSION >= 13000
  return cudaStreamUpdateCaptureDependencies(stream, node, NULL, 1,
                                             cudaStreamSetCaptureDependencies);
#else
  return cudaStreamUpdateCaptureDependencies(stream, node, 1,
                                             cudaStreamSetCaptureDependencies);
#endif
}

/*
 * The caller's graph as a child-graph node of the capture: it depends on
 * the stream's current dependencies, and becomes the only one, so the
 * work captured next (the feedback copies) runs after it. The edges into
 * it are plain, whatever edge data the dependencies carry: a programmatic
 * edge may only join two kernel nodes, and waiting for the full
 * completion of the nodes before it is the stronger order anyway.
 * cudaGraphAddChildGraphNode clones the graph.
 */
static cgr_status cuda_capture_child_graph(void *opaque, cgr__stream *stream,
                                           cgr__graph *child) {
  const cuda_ctx *ctx = opaque;
  cudaStream_t native = AS_STREAM(stream);
  enum cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  cudaGraph_t graph = NULL;
  const cudaGraphNode_t *dependencies = NULL;
  size_t count = 0;
  CUDA_CHECK(ctx, capture_info(native, &capture, &graph, &dependencies, &count),
             "cudaStreamGetCaptureInfo");
  if (capture == cudaStreamCaptureStatusInvalidated)
    return cgr__fail(ctx->err, CGR_E_CAPTURE, __func__,
                     "the capture was already invalidated by an earlier "
                     "call on its stream");
  if (capture != cudaStreamCaptureStatusActive)
    return cgr__fail(ctx->err, CGR_E_INVALID_STATE, __func__,
                     "the stream is not capturing");
  /* The driver's dependency array stays valid for calls on the graph; the
   * next call on the stream may reuse it. */
  cudaGraphNode_t node = NULL;
  cudaError_t e = cudaGraphAddChildGraphNode(&node, graph, dependencies, count,
                                             AS_GRAPH(child));
  if (e != cudaSuccess)
    return cuda_fail(ctx, e, status_of(e, CGR_E_CUDA), __func__,
                     "cudaGraphAddChildGraphNode(%zu dependencies)", count);
  CUDA_CHECK(ctx, capture_continue_after(native, &node),
             "cudaStreamUpdateCaptureDependencies");
  return CGR_OK;
}

static cgr_status cuda_graph_node_count(void *opaque, cgr__graph *graph,
                                        size_t *out) {
  const cuda_ctx *ctx = opaque;
  size_t count = 0;
  CUDA_CHECK(ctx, cudaGraphGetNodes(AS_GRAPH(graph), NULL, &count),
             "cudaGraphGetNodes");
  *out = count;
  return CGR_OK;
}

static void cuda_graph_destroy(void *opaque, cgr__graph *graph) {
  (void)opaque;
  ignore_error(cudaGraphDestroy(AS_GRAPH(graph)));
}

static cgr_status cuda_graph_dump(void *opaque, cgr__graph *graph,
                                  const char *path) {
  const cuda_ctx *ctx = opaque;
  CUDA_CHECK(ctx,
             cudaGraphDebugDotPrint(AS_GRAPH(graph), path,
                                    cudaGraphDebugDotFlagsVerbose),
             "cudaGraphDebugDotPrint");
  return CGR_OK;
}

static cgr_status cuda_graph_instantiate(void *opaque, cgr__graph *graph,
                                         cgr__stream *upload_stream,
                                         cgr__graph_exec **out) {
  const cuda_ctx *ctx = opaque;
  CGR__CHECK(use_device(ctx, __func__));
  cudaGraphExec_t exec = NULL;
  /* The three-argument form is the CUDA 12.0+ signature. */
  CUDA_CHECK(ctx, cudaGraphInstantiate(&exec, AS_GRAPH(graph), 0),
             "cudaGraphInstantiate");
  if (upload_stream != NULL) {
    cudaError_t e = cudaGraphUpload(exec, AS_STREAM(upload_stream));
    if (e != cudaSuccess) {
      /* Report first (cuda_fail clears the error), then undo, so the caller
       * never holds an exec that was not uploaded as asked. */
      cgr_status status = cuda_fail(ctx, e, status_of(e, CGR_E_CUDA), __func__,
                                    "cudaGraphUpload");
      ignore_error(cudaGraphExecDestroy(exec));
      return status;
    }
  }
  *out = (cgr__graph_exec *)(void *)exec;
  return CGR_OK;
}

static cgr_status cuda_graph_launch(void *opaque, cgr__graph_exec *exec,
                                    cgr__stream *stream) {
  const cuda_ctx *ctx = opaque;
  CUDA_CHECK(ctx, cudaGraphLaunch(AS_EXEC(exec), AS_STREAM(stream)),
             "cudaGraphLaunch");
  return CGR_OK;
}

static void cuda_graph_exec_destroy(void *opaque, cgr__graph_exec *exec) {
  (void)opaque;
  /* The driver frees an exec that is still in flight once it completes. */
  ignore_error(cudaGraphExecDestroy(AS_EXEC(exec)));
}

/* ---- synchronization ------------------------------------------------- */

static cgr_status cuda_stream_synchronize(void *opaque, cgr__stream *stream) {
  const cuda_ctx *ctx = opaque;
  CUDA_CHECK(ctx, cudaStreamSynchronize(AS_STREAM(stream)),
             "cudaStreamSynchronize");
  return CGR_OK;
}

static cgr_status cuda_device_synchronize(void *opaque) {
  const cuda_ctx *ctx = opaque;
  CGR__CHECK(use_device(ctx, __func__));
  CUDA_CHECK(ctx, cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return CGR_OK;
}

static cgr_status cuda_device_info(void *opaque, cgr_device_info *out) {
  const cuda_ctx *ctx = opaque;
  /* Only fields that exist from CUDA 12.4 through 13.0: 13.0 removed
   * clockRate, memoryClockRate and others from cudaDeviceProp. */
  struct cudaDeviceProp prop;
  memset(&prop, 0, sizeof prop);
  cudaError_t e = cudaGetDeviceProperties(&prop, ctx->device);
  if (e != cudaSuccess)
    return cuda_fail(ctx, e, status_of(e, CGR_E_CUDA), __func__,
                     "cudaGetDeviceProperties(%d)", ctx->device);
  int driver = 0;
  int runtime = 0;
  CUDA_CHECK(ctx, cudaDriverGetVersion(&driver), "cudaDriverGetVersion");
  CUDA_CHECK(ctx, cudaRuntimeGetVersion(&runtime), "cudaRuntimeGetVersion");

  prop.name[sizeof prop.name - 1] = '\0';
  snprintf(out->name, sizeof out->name, "%s", prop.name);
  out->ordinal = ctx->device;
  out->compute_major = prop.major;
  out->compute_minor = prop.minor;
  out->multiprocessors = prop.multiProcessorCount;
  out->global_memory = (uint64_t)prop.totalGlobalMem;
  out->driver_version = driver;
  out->runtime_version = runtime;
  out->stream_priority_low = ctx->priority_least;
  out->stream_priority_high = ctx->priority_greatest;
  return CGR_OK;
}

static const cgr__backend_ops cuda_ops = {
    .name = "cuda",
    .destroy = cuda_destroy,
    .stream_create = cuda_stream_create,
    .stream_destroy = cuda_stream_destroy,
    .stream_native = cuda_stream_native,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .stream_wait_event = cuda_stream_wait_event,
    .event_query = cuda_event_query,
    .event_synchronize = cuda_event_synchronize,
    .event_elapsed_ms = cuda_event_elapsed_ms,
    .device_alloc = cuda_device_alloc,
    .device_free = cuda_device_free,
    .memory_kind = cuda_memory_kind,
    .pinned_alloc = cuda_pinned_alloc,
    .pinned_free = cuda_pinned_free,
    .memcpy_async = cuda_memcpy_async,
    .memset_async = cuda_memset_async,
    .kernel_launch = cuda_kernel_launch,
    .host_func = cuda_host_func,
    .collective = cuda_collective,
    .capture_begin = cuda_capture_begin,
    .capture_end = cuda_capture_end,
    .stream_is_capturing = cuda_stream_is_capturing,
    .capture_child_graph = cuda_capture_child_graph,
    .graph_node_count = cuda_graph_node_count,
    .graph_destroy = cuda_graph_destroy,
    .graph_dump = cuda_graph_dump,
    .graph_instantiate = cuda_graph_instantiate,
    .graph_launch = cuda_graph_launch,
    .graph_exec_destroy = cuda_graph_exec_destroy,
    .stream_synchronize = cuda_stream_synchronize,
    .device_synchronize = cuda_device_synchronize,
    .device_info = cuda_device_info,
};

/* ---- construction ---------------------------------------------------- */

/* Errors of cudaSetDevice that mean "this device cannot be used here" (as
 * opposed to a failure while using it): reported as CGR_E_NO_DEVICE, as the
 * probe would have. */
static int device_unusable(cudaError_t e) {
  switch (e) {
  case cudaErrorInvalidDevice:
  case cudaErrorNoDevice:
  case cudaErrorInsufficientDriver:
  case cudaErrorCallRequiresNewerDriver:
  case cudaErrorStubLibrary:
  case cudaErrorDevicesUnavailable:
  case cudaErrorSystemNotReady:
  case cudaErrorSystemDriverMismatch:
  case cudaErrorCompatNotSupportedOnDevice:
  case cudaErrorInitializationError:
    return 1;
  default:
    return 0;
  }
}

/*
 * The probe refused a device that the build's architecture list has no
 * code for; CUDA has the last word, once the context exists: a list the
 * probe could not read, or PTX newer than the driver can compile. Failures
 * that mean "no code for this device" are CGR_E_NO_DEVICE, naming the
 * device's compute capability and the build's architectures.
 */
static cgr_status require_device_code(const cuda_ctx *ctx) {
  cudaError_t e = (cudaError_t)cgr__cuda_code_check();
  if (e == cudaSuccess)
    return CGR_OK;
  int major = 0;
  int minor = 0;
  ignore_error(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor,
                                      ctx->device));
  ignore_error(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor,
                                      ctx->device));
  cgr_status status;
  switch (e) {
  case cudaErrorNoKernelImageForDevice:
  case cudaErrorInvalidDeviceFunction:
  case cudaErrorInvalidKernelImage:
  case cudaErrorInvalidPtx:
  case cudaErrorUnsupportedPtxVersion:
  case cudaErrorJitCompilerNotFound:
  case cudaErrorJitCompilationDisabled:
    status = CGR_E_NO_DEVICE;
    break;
  default:
    status = status_of(e, CGR_E_CUDA);
    break;
  }
  return cuda_fail(ctx, e, status, "cgr__cuda_backend_init",
                   "looking for code for CUDA device %d (compute capability "
                   "%d.%d; built for CUDA architectures %s)",
                   ctx->device, major, minor, cgr__cuda_architectures());
}

cgr_status cgr__cuda_backend_init(cgr__backend *be, cgr__error *err,
                                  int device) {
  cgr_status status = CGR_OK;
  be->ops = NULL;
  be->device_faulted = NULL;

  cuda_ctx *ctx = cgr__calloc(1, sizeof *ctx);
  if (ctx == NULL)
    return cgr__fail(err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the CUDA backend context (%zu bytes) failed",
                     sizeof *ctx);
  ctx->device = device;
  ctx->err = err;

  /* Since CUDA 12.0 cudaSetDevice also initializes the device's primary
   * context, so a device that cannot be used fails here, not at the first
   * allocation. */
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) {
    status = device_unusable(e) ? CGR_E_NO_DEVICE : status_of(e, CGR_E_CUDA);
    status = cuda_fail(ctx, e, status, __func__, "cudaSetDevice(%d)", device);
    goto fail;
  }
  status = require_device_code(ctx);
  if (status != CGR_OK)
    goto fail;
  e = cudaDeviceGetStreamPriorityRange(&ctx->priority_least,
                                       &ctx->priority_greatest);
  if (e != cudaSuccess) {
    status = cuda_fail(ctx, e, status_of(e, CGR_E_CUDA), __func__,
                       "cudaDeviceGetStreamPriorityRange");
    goto fail;
  }

  be->ops = &cuda_ops;
  be->ctx = ctx;
  be->error = err;
  be->device_faulted = NULL; /* sticky errors come back from the calls */
  return CGR_OK;

fail:
  cgr__free(ctx);
  return status;
}
