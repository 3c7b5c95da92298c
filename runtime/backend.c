/*
 * The one dispatch point of the backend table: arguments checked once for
 * both backends, fault injection consulted, successful calls counted.
 */
#include "runtime/backend.h"

#include <stdio.h>
#include <string.h>

#include "runtime/fault.h"

const char *cgr__call_name(cgr__call call) {
  switch (call) {
#define CGR__CALL_NAME_(name, fault_status)                                    \
  case CGR__CALL_##name:                                                       \
    return #name;
    CGR__CALL_LIST(CGR__CALL_NAME_)
#undef CGR__CALL_NAME_
  default:
    return "UNKNOWN";
  }
}

/* The failure an injected fault produces: the status a real failure of this
 * kind returns, and a message that says it was injected, and where. */
static cgr_status injected(cgr__backend *be, const cgr__fault_at *at,
                           const char *func) {
  char where[CGR__ERROR_MESSAGE_SIZE / 2];
  cgr__fault_describe(at, where, sizeof where);
  return cgr__fail(be->error, cgr__fault_status(at->call), func,
                   "injected fault in %s", where);
}

/* An error an earlier call left behind (a DEFERRED fault), reported once
 * by this call as CUDA reports a non-sticky asynchronous error. */
static cgr_status left_behind(cgr__backend *be, const cgr__fault_at *at,
                              const char *func) {
  char where[CGR__ERROR_MESSAGE_SIZE / 2];
  cgr__fault_describe(at, where, sizeof where);
  return cgr__fail(be->error, CGR_E_CUDA, func,
                   "an earlier call left an error behind, reported here "
                   "once (not sticky: the device works): injected deferred "
                   "fault in %s",
                   where);
}

_Atomic int cgr__be_trouble_;

/* Records that the device is lost, with why (the first reason wins). */
static CGR__COLD void mark_lost(cgr__backend *be, const char *reason) {
  cgr__be_trouble_raise(CGR__TROUBLE_LOST);
  int expected = 0;
  if (atomic_compare_exchange_strong(&be->lost, &expected, 1)) {
    snprintf(be->lost_reason, sizeof be->lost_reason, "%s", reason);
    atomic_store_explicit(&be->lost_reason_ready, 1, memory_order_release);
  }
}

CGR__COLD int cgr__be_lost_slow(cgr__backend *be) {
  if (atomic_load_explicit(&be->lost, memory_order_acquire))
    return 1;
  char reason[CGR__ERROR_MESSAGE_SIZE];
  if (be->ops != NULL && be->ops->device_fault != NULL &&
      be->ops->device_fault(be->ctx, reason, sizeof reason)) {
    mark_lost(be, reason);
    return 1;
  }
  return 0;
}

/* The failure of every call once the device is lost. */
cgr_status cgr__be_lost_status(cgr__backend *be, const char *func) {
  const char *reason =
      atomic_load_explicit(&be->lost_reason_ready, memory_order_acquire)
          ? be->lost_reason
          : "(being recorded)";
  return cgr__fail(be->error, CGR_E_DEVICE_LOST, func,
                   "the device was lost: %s. Nothing more runs on it; "
                   "destroy the runtime",
                   reason);
}

/* Fails the call at once when the device is already lost. */
#define LOST_GUARD(be)                                                         \
  do {                                                                         \
    if (cgr__be_lost(be))                                                      \
      return cgr__be_lost_status((be), __func__);                              \
  } while (0)

/* A plan that lets its call succeed and fail later (ASYNC, DEFERRED). */
typedef struct later_fault {
  int armed;
  cgr__fault_at at;
} later_fault;

/* Calls that report an error an earlier call left behind: those that
 * launch work or wait for it, as CUDA's launches and synchronizations
 * return an earlier launch's asynchronous error. */
static int reports_left(cgr__call call) {
  return cgr__fault_mode_fits(call, CGR__FAULT_DEFERRED) ||
         call == CGR__CALL_SYNCHRONIZE;
}

/*
 * Fault injection before the backend runs a call of kind `call` from
 * `site`: an error left behind for this backend fails the call (where the
 * kind reports one), and so does a NOW fault. Otherwise CGR_OK, with
 * *later armed when the call must succeed and fail afterwards; then
 * inject_after must follow the backend call.
 */
static CGR__COLD cgr_status inject_before(cgr__backend *be, cgr__call call,
                                          cgr__site site, const char *func,
                                          later_fault *later) {
  later->armed = 0;
  cgr__fault_at at;
  if (reports_left(call) && cgr__fault_take_left(be, &at))
    return left_behind(be, &at, func);
  if (!cgr__fault_check(call, site, &at))
    return CGR_OK;
  if (at.mode == CGR__FAULT_NOW)
    return injected(be, &at, func);
  later->armed = 1;
  later->at = at;
  if (at.mode == CGR__FAULT_ASYNC)
    cgr__fault_carry_begin(&at);
  return CGR_OK;
}

/* After the backend ran a call a plan let through: a DEFERRED fault leaves
 * its error behind; ASYNC work the backend could not carry (CUDA, which
 * cannot be made to fault on demand) loses this runtime's device here,
 * and the next call reports it. */
static CGR__COLD cgr_status inject_after(cgr__backend *be,
                                         const later_fault *later,
                                         cgr_status status) {
  if (!later->armed)
    return status;
  if (later->at.mode == CGR__FAULT_ASYNC) {
    if (cgr__fault_carry_end() && status == CGR_OK) {
      char reason[CGR__ERROR_MESSAGE_SIZE];
      cgr__fault_raise(&later->at, "the call's work", reason, sizeof reason);
      mark_lost(be, reason);
    }
  } else if (status == CGR_OK) {
    cgr__fault_leave(be, &later->at);
  }
  return status;
}

cgr_status cgr__be_count_failed(cgr__backend *be, cgr_status status) {
  if (status == CGR_E_DEVICE_LOST) /* a sticky CUDA error, named there */
    mark_lost(be, be->error->message);
  return status;
}

/* A wait that returned: the device may have failed while it waited (the
 * host backend's worker reports it beside the call, CUDA through it). */
static cgr_status waited(cgr__backend *be, cgr__call call, const char *func,
                         cgr_status status) {
  status = cgr__be_count(be, call, status);
  if (status == CGR_OK && cgr__be_lost(be))
    return cgr__be_lost_status(be, func);
  return status;
}

/*
 * The body of a dispatch that runs `op_call`, a call of kind `kind` from
 * `site`: at once while no fault is armed or left behind (one load: every
 * run but the fault tests'), else between the injection points. The
 * result is counted; a wait's (DISPATCH_WAITED) also reports a device
 * lost while it waited.
 */
#define DISPATCH_AS(be, kind, site, op_call, account)                          \
  do {                                                                         \
    if (cgr__fault_idle())                                                     \
      return account((be), (kind), (op_call));                                 \
    later_fault later_;                                                        \
    CGR__CHECK(inject_before((be), (kind), (site), __func__, &later_));        \
    cgr_status status_ = (op_call);                                            \
    return inject_after((be), &later_, account((be), (kind), status_));        \
  } while (0)
#define WAITED(be, kind, status) waited((be), (kind), __func__, (status))
#define DISPATCH(be, kind, site, op_call)                                      \
  DISPATCH_AS(be, kind, site, op_call, cgr__be_count)
#define DISPATCH_WAITED(be, kind, site, op_call)                               \
  DISPATCH_AS(be, kind, site, op_call, WAITED)

static cgr_status null_arg(cgr__backend *be, const char *func,
                           const char *name) {
  return cgr__fail(be->error, CGR_E_INVALID_ARGUMENT, func,
                   "argument '%s' is NULL", name);
}

void cgr__backend_destroy(cgr__backend *be) {
  if (be == NULL || be->ops == NULL)
    return;
  cgr__fault_forget(be); /* errors left behind go with it */
  be->ops->destroy(be->ctx);
  be->ops = NULL;
  be->ctx = NULL;
  be->device_faulted = NULL;
}

uint64_t cgr__be_calls(const cgr__backend *be, cgr__call call) {
  return atomic_load_explicit(&((cgr__backend *)be)->calls[call],
                              memory_order_relaxed);
}

void cgr__be_reset_calls(cgr__backend *be) {
  for (int i = 0; i < CGR__CALL_COUNT; ++i)
    atomic_store_explicit(&be->calls[i], 0, memory_order_relaxed);
}

/* ---- streams --------------------------------------------------------- */

cgr_status cgr__be_stream_create_at(cgr__site site, cgr__backend *be,
                                    cgr_stream_priority prio, const char *name,
                                    cgr__stream **out) {
  if (out == NULL)
    return null_arg(be, __func__, "out");
  *out = NULL;
  if (prio != CGR_PRIORITY_NORMAL && prio != CGR_PRIORITY_HIGH)
    return cgr__fail(be->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'priority' is %d, not a cgr_stream_priority",
                     (int)prio);
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_STREAM_CREATE, site,
           be->ops->stream_create(be->ctx, prio, name ? name : "cgr", out));
}

void cgr__be_stream_destroy(cgr__backend *be, cgr__stream *stream) {
  if (stream != NULL)
    be->ops->stream_destroy(be->ctx, stream);
}

void *cgr__be_stream_native(cgr__backend *be, cgr__stream *stream) {
  return stream ? be->ops->stream_native(be->ctx, stream) : NULL;
}

/* ---- events ---------------------------------------------------------- */

cgr_status cgr__be_event_create_at(cgr__site site, cgr__backend *be, int timing,
                                   cgr__event **out) {
  if (out == NULL)
    return null_arg(be, __func__, "out");
  *out = NULL;
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_EVENT_CREATE, site,
           be->ops->event_create(be->ctx, timing != 0, out));
}

void cgr__be_event_destroy(cgr__backend *be, cgr__event *event) {
  if (event != NULL)
    be->ops->event_destroy(be->ctx, event);
}

cgr_status cgr__be_event_record_at(cgr__site site, cgr__backend *be,
                                   cgr__event *event, cgr__stream *stream) {
  if (event == NULL)
    return null_arg(be, __func__, "event");
  if (stream == NULL)
    return null_arg(be, __func__, "stream");
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_EVENT_RECORD, site,
           be->ops->event_record(be->ctx, event, stream));
}

cgr_status cgr__be_stream_wait_event_at(cgr__site site, cgr__backend *be,
                                        cgr__stream *stream,
                                        cgr__event *event) {
  if (stream == NULL)
    return null_arg(be, __func__, "stream");
  if (event == NULL)
    return null_arg(be, __func__, "event");
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_EVENT_WAIT, site,
           be->ops->stream_wait_event(be->ctx, stream, event));
}

cgr_status cgr__be_event_query_at(cgr__backend *be, cgr__event *event) {
  if (event == NULL)
    return null_arg(be, "cgr__be_event_query", "event");
  if (cgr__be_lost(be))
    return cgr__be_lost_status(be, "cgr__be_event_query");
  cgr__fault_at at;
  if (cgr__fault_take_left(be, &at))
    return left_behind(be, &at, "cgr__be_event_query");
  return cgr__be_event_query_done(be, be->ops->event_query(be->ctx, event));
}

cgr_status cgr__be_event_query_done(cgr__backend *be, cgr_status status) {
  if (status == CGR_E_DEVICE_LOST)
    mark_lost(be, be->error->message);
  else if (status == CGR_OK && cgr__be_lost(be))
    return cgr__be_lost_status(be, "cgr__be_event_query");
  return status;
}

static cgr_status event_host_call(cgr__backend *be, cgr__event *event,
                                  cgr_status (*op)(void *, cgr__event *),
                                  const char *func) {
  if (event == NULL)
    return null_arg(be, func, "event");
  LOST_GUARD(be);
  if (op == NULL)
    return cgr__fail(be->error, CGR_E_UNSUPPORTED, func,
                     "the %s backend has no host-completed events (on CUDA, "
                     "record the event on your stream: cgr_cuda_event_record)",
                     be->ops->name);
  return op(be->ctx, event);
}

cgr_status cgr__be_event_record_host(cgr__backend *be, cgr__event *event) {
  return event_host_call(be, event, be->ops->event_record_host, __func__);
}

cgr_status cgr__be_event_signal_host(cgr__backend *be, cgr__event *event) {
  return event_host_call(be, event, be->ops->event_signal_host, __func__);
}

cgr_status cgr__be_event_synchronize_at(cgr__site site, cgr__backend *be,
                                        cgr__event *event) {
  if (event == NULL)
    return null_arg(be, __func__, "event");
  LOST_GUARD(be);
  DISPATCH_WAITED(be, CGR__CALL_SYNCHRONIZE, site,
                  be->ops->event_synchronize(be->ctx, event));
}

cgr_status cgr__be_event_elapsed_ms(cgr__backend *be, cgr__event *start,
                                    cgr__event *end, float *out_ms) {
  if (start == NULL)
    return null_arg(be, __func__, "start");
  if (end == NULL)
    return null_arg(be, __func__, "end");
  if (out_ms == NULL)
    return null_arg(be, __func__, "out_ms");
  *out_ms = 0.0f;
  return be->ops->event_elapsed_ms(be->ctx, start, end, out_ms);
}

/* ---- memory ---------------------------------------------------------- */

cgr_status cgr__be_device_alloc_at(cgr__site site, cgr__backend *be,
                                   size_t bytes, void **out) {
  if (out == NULL)
    return null_arg(be, __func__, "out");
  *out = NULL;
  if (bytes == 0)
    return cgr__fail(be->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'bytes' is 0");
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_DEVICE_ALLOC, site,
           be->ops->device_alloc(be->ctx, bytes, out));
}

void cgr__be_device_free(cgr__backend *be, void *ptr) {
  if (ptr != NULL)
    be->ops->device_free(be->ctx, ptr);
}

const char *cgr__memory_kind_name(cgr__memory_kind kind) {
  switch (kind) {
  case CGR__MEMORY_DEVICE:
    return "device memory";
  case CGR__MEMORY_PINNED:
    return "page-locked host memory";
  case CGR__MEMORY_OTHER:
    break;
  }
  return "neither device nor page-locked memory";
}

cgr_status cgr__be_memory_kind(cgr__backend *be, const void *ptr, size_t bytes,
                               cgr__memory_kind *out) {
  if (out == NULL)
    return null_arg(be, __func__, "out");
  *out = CGR__MEMORY_OTHER;
  if (ptr == NULL)
    return CGR_OK;
  if ((uintptr_t)ptr + (bytes > 0 ? bytes - 1 : 0) < (uintptr_t)ptr)
    return CGR_OK; /* wraps around: no allocation holds it */
  return be->ops->memory_kind(be->ctx, ptr, bytes, out);
}

cgr_status cgr__be_pinned_alloc_at(cgr__site site, cgr__backend *be,
                                   size_t bytes, void **out) {
  if (out == NULL)
    return null_arg(be, __func__, "out");
  *out = NULL;
  if (bytes == 0)
    return cgr__fail(be->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'bytes' is 0");
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_PINNED_ALLOC, site,
           be->ops->pinned_alloc(be->ctx, bytes, out));
}

void cgr__be_pinned_free(cgr__backend *be, void *ptr) {
  if (ptr != NULL)
    be->ops->pinned_free(be->ctx, ptr);
}

/* ---- work ------------------------------------------------------------ */

cgr_status cgr__be_memcpy_async_at(cgr__site site, cgr__backend *be,
                                   cgr__stream *stream, void *dst,
                                   const void *src, size_t bytes) {
  if (stream == NULL)
    return null_arg(be, __func__, "stream");
  if (bytes > 0 && dst == NULL)
    return null_arg(be, __func__, "dst");
  if (bytes > 0 && src == NULL)
    return null_arg(be, __func__, "src");
  if (bytes == 0)
    return CGR_OK; /* no work, and no graph node during capture */
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_COPY, site,
           be->ops->memcpy_async(be->ctx, stream, dst, src, bytes));
}

cgr_status cgr__be_memset_async_at(cgr__site site, cgr__backend *be,
                                   cgr__stream *stream, void *dst, int value,
                                   size_t bytes) {
  if (stream == NULL)
    return null_arg(be, __func__, "stream");
  if (bytes > 0 && dst == NULL)
    return null_arg(be, __func__, "dst");
  if (bytes == 0)
    return CGR_OK;
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_MEMSET, site,
           be->ops->memset_async(be->ctx, stream, dst, value, bytes));
}

cgr_status cgr__be_kernel_launch_at(cgr__site site, cgr__backend *be,
                                    cgr__stream *stream,
                                    const cgr__kernel *kernel,
                                    const void *args) {
  if (stream == NULL)
    return null_arg(be, __func__, "stream");
  if (kernel == NULL)
    return null_arg(be, __func__, "kernel");
  if (args == NULL && kernel->args_size > 0)
    return null_arg(be, __func__, "args");
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_KERNEL_LAUNCH, site,
           be->ops->kernel_launch(be->ctx, stream, kernel, args));
}

cgr_status cgr__be_host_func_at(cgr__site site, cgr__backend *be,
                                cgr__stream *stream, cgr__host_fn fn,
                                void *user) {
  if (stream == NULL)
    return null_arg(be, __func__, "stream");
  if (fn == NULL)
    return null_arg(be, __func__, "fn");
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_HOST_FUNC, site,
           be->ops->host_func(be->ctx, stream, fn, user));
}

cgr_status cgr__be_collective_at(cgr__site site, cgr__backend *be,
                                 cgr__stream *stream, void *handle, int rank,
                                 int ranks, const cgr__collective *c) {
  if (stream == NULL)
    return null_arg(be, __func__, "stream");
  if (handle == NULL)
    return null_arg(be, __func__, "handle");
  if (c == NULL)
    return null_arg(be, __func__, "c");
  if (rank < 0 || rank >= ranks)
    return cgr__fail(be->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "rank %d of %d ranks", rank, ranks);
  LOST_GUARD(be);
  if (be->ops->collective == NULL)
    return cgr__fail(be->error, CGR_E_UNSUPPORTED, __func__,
                     "the %s backend has no collectives", be->ops->name);
  DISPATCH(be, CGR__CALL_KERNEL_LAUNCH, site,
           be->ops->collective(be->ctx, stream, handle, rank, ranks, c));
}

/* ---- capture and graphs ---------------------------------------------- */

cgr_status cgr__be_capture_begin_at(cgr__site site, cgr__backend *be,
                                    cgr__stream *stream) {
  if (stream == NULL)
    return null_arg(be, __func__, "stream");
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_CAPTURE_BEGIN, site,
           be->ops->capture_begin(be->ctx, stream));
}

cgr_status cgr__be_capture_end_at(cgr__site site, cgr__backend *be,
                                  cgr__stream *stream, cgr__graph **out) {
  if (out == NULL)
    return null_arg(be, __func__, "out");
  *out = NULL;
  if (stream == NULL)
    return null_arg(be, __func__, "stream");
  cgr_status status = be->ops->capture_end(be->ctx, stream, out);
  if (status != CGR_OK)
    return cgr__be_count(be, CGR__CALL_CAPTURE_END, status);
  /* An injected failure must still end the capture, as a real one does, so
   * the stream is usable afterwards: end it, then throw the graph away. */
  if (cgr__be_lost(be)) {
    be->ops->graph_destroy(be->ctx, *out);
    *out = NULL;
    return cgr__be_lost_status(be, __func__);
  }
  cgr__fault_at at;
  if (cgr__fault_check(CGR__CALL_CAPTURE_END, site, &at)) {
    be->ops->graph_destroy(be->ctx, *out);
    *out = NULL;
    return injected(be, &at, __func__);
  }
  return cgr__be_count(be, CGR__CALL_CAPTURE_END, status);
}

int cgr__be_stream_is_capturing(cgr__backend *be, cgr__stream *stream) {
  return stream ? be->ops->stream_is_capturing(be->ctx, stream) : 0;
}

cgr_status cgr__be_capture_child_graph(cgr__backend *be, cgr__stream *stream,
                                       cgr__graph *graph) {
  if (stream == NULL)
    return null_arg(be, __func__, "stream");
  if (graph == NULL)
    return null_arg(be, __func__, "graph");
  LOST_GUARD(be);
  if (be->ops->capture_child_graph == NULL)
    return cgr__fail(be->error, CGR_E_UNSUPPORTED, __func__,
                     "the %s backend cannot add a caller's graph to a "
                     "capture",
                     be->ops->name);
  cgr_status status = be->ops->capture_child_graph(be->ctx, stream, graph);
  if (status == CGR_E_DEVICE_LOST) /* a sticky CUDA error, named there */
    mark_lost(be, be->error->message);
  return status;
}

cgr_status cgr__be_graph_node_count(cgr__backend *be, cgr__graph *graph,
                                    size_t *out) {
  if (out == NULL)
    return null_arg(be, __func__, "out");
  *out = 0;
  if (graph == NULL)
    return null_arg(be, __func__, "graph");
  return be->ops->graph_node_count(be->ctx, graph, out);
}

void cgr__be_graph_destroy(cgr__backend *be, cgr__graph *graph) {
  if (graph != NULL)
    be->ops->graph_destroy(be->ctx, graph);
}

cgr_status cgr__be_graph_dump(cgr__backend *be, cgr__graph *graph,
                              const char *path) {
  if (graph == NULL)
    return null_arg(be, __func__, "graph");
  if (path == NULL)
    return null_arg(be, __func__, "path");
  return be->ops->graph_dump(be->ctx, graph, path);
}

cgr_status cgr__be_graph_instantiate_at(cgr__site site, cgr__backend *be,
                                        cgr__graph *graph,
                                        cgr__stream *upload_stream,
                                        cgr__graph_exec **out) {
  if (out == NULL)
    return null_arg(be, __func__, "out");
  *out = NULL;
  if (graph == NULL)
    return null_arg(be, __func__, "graph");
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_GRAPH_INSTANTIATE, site,
           be->ops->graph_instantiate(be->ctx, graph, upload_stream, out));
}

cgr_status cgr__be_graph_launch_at(cgr__site site, cgr__backend *be,
                                   cgr__graph_exec *exec, cgr__stream *stream) {
  if (exec == NULL)
    return null_arg(be, __func__, "exec");
  if (stream == NULL)
    return null_arg(be, __func__, "stream");
  LOST_GUARD(be);
  DISPATCH(be, CGR__CALL_GRAPH_LAUNCH, site,
           be->ops->graph_launch(be->ctx, exec, stream));
}

void cgr__be_graph_exec_destroy(cgr__backend *be, cgr__graph_exec *exec) {
  if (exec != NULL)
    be->ops->graph_exec_destroy(be->ctx, exec);
}

/* ---- synchronization ------------------------------------------------- */

cgr_status cgr__be_stream_synchronize_at(cgr__site site, cgr__backend *be,
                                         cgr__stream *stream) {
  if (stream == NULL)
    return null_arg(be, __func__, "stream");
  LOST_GUARD(be);
  DISPATCH_WAITED(be, CGR__CALL_SYNCHRONIZE, site,
                  be->ops->stream_synchronize(be->ctx, stream));
}

void cgr__be_stream_drain(cgr__backend *be, cgr__stream *stream) {
  if (stream != NULL && !be->ops->stream_is_capturing(be->ctx, stream))
    (void)be->ops->stream_synchronize(be->ctx, stream);
}

cgr_status cgr__be_device_synchronize_at(cgr__site site, cgr__backend *be) {
  LOST_GUARD(be);
  DISPATCH_WAITED(be, CGR__CALL_SYNCHRONIZE, site,
                  be->ops->device_synchronize(be->ctx));
}

cgr_status cgr__be_device_info(cgr__backend *be, cgr_device_info *out) {
  if (out == NULL)
    return null_arg(be, __func__, "out");
  memset(out, 0, sizeof *out);
  return be->ops->device_info(be->ctx, out);
}
