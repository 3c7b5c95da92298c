/*
 * The host backend: streams as worker threads, events as sequence counters,
 * "device" memory as ordinary aligned memory. See host.h for the model.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/alloc.h"
#include "runtime/fault.h"
#include "runtime/host/host.h"
#include "runtime/host/host_comm.h"
#include "runtime/nvtx.h"

/* ---- ops ----------------------------------------------------------------- */

host_op *cgr__host_op_new(host_ctx *ctx, host_op_kind kind, size_t args_size,
                          const char *func) {
  /* Counted as the backend function's allocation (host_memcpy_async, ...),
   * the site fault injection names. */
  host_op *op = cgr__malloc_at((cgr__site){func, __FILE__, __LINE__},
                               sizeof *op + args_size);
  if (op == NULL) {
    cgr__fail(ctx->err, CGR_E_OUT_OF_MEMORY, func,
              "allocating a host stream operation (%zu bytes) failed",
              sizeof *op + args_size);
    return NULL;
  }
  memset(op, 0, sizeof *op);
  op->kind = kind;
  op->device = ctx->device;
  op->args_size = args_size;
  /* The op of a call an ASYNC fault struck: it faults when it runs. */
  op->faulty = cgr__fault_carry_take(&op->fault);
  return op;
}

void cgr__host_event_release(cgr__event *event) {
  if (atomic_fetch_sub(&event->refs, 1) != 1)
    return;
  cgr__host_set_fini(&event->record_point);
  pthread_cond_destroy(&event->done);
  pthread_mutex_destroy(&event->lock);
  cgr__free(event);
}

void cgr__host_op_free(host_op *op) {
  if (op == NULL)
    return;
  if (op->kind == HOST_OP_EVENT_RECORD || op->kind == HOST_OP_EVENT_WAIT)
    cgr__host_event_release(op->u.event.event);
  else if (op->kind == HOST_OP_GRAPH)
    cgr__host_graph_exec_release(op->u.graph.exec);
  cgr__free(op);
}

static void run_event_record(cgr__event *event, uint64_t sequence) {
  pthread_mutex_lock(&event->lock);
  if (sequence > event->completed) {
    event->completed = sequence;
    clock_gettime(CLOCK_MONOTONIC, &event->completed_at);
  }
  pthread_cond_broadcast(&event->done);
  pthread_mutex_unlock(&event->lock);
}

static void run_event_wait(cgr__event *event, uint64_t sequence) {
  pthread_mutex_lock(&event->lock);
  while (event->completed < sequence)
    pthread_cond_wait(&event->done, &event->lock);
  pthread_mutex_unlock(&event->lock);
}

/* A kernel on a worker: the host backend's stand-in for a GPU fault is
 * an injected DEVICE_FAULT (counted per kernel name), which skips the
 * kernel and loses the device, as an illegal address does on CUDA. A lost
 * device runs no kernel. */
static void run_kernel(host_op *op) {
  const cgr__kernel *kernel = op->u.kernel.kernel;
  const char *name = kernel->name ? kernel->name : "?";
  if (cgr__host_device_faulted(op->device))
    return;
  cgr__fault_at at;
  if (cgr__fault_check(CGR__CALL_DEVICE_FAULT,
                       (cgr__site){name, __FILE__, __LINE__}, &at)) {
    char reason[CGR__HOST_FAULT_REASON];
    snprintf(reason, sizeof reason,
             "kernel '%s' raised a device fault (injected DEVICE_FAULT #%llu, "
             "the host backend's illegal address)",
             name, (unsigned long long)at.hit);
    cgr__host_device_fault(op->device, reason);
    return;
  }
  kernel->host_run(op->args);
}

/* Work an ASYNC fault struck: loses the device in place of its work. */
static void raise_fault(const host_op *op) {
  char what[96];
  switch (op->kind) {
  case HOST_OP_KERNEL:
    snprintf(what, sizeof what, "kernel '%s'",
             op->u.kernel.kernel->name ? op->u.kernel.kernel->name : "?");
    break;
  case HOST_OP_COPY:
    snprintf(what, sizeof what, "a copy of %zu bytes", op->u.copy.bytes);
    break;
  case HOST_OP_MEMSET:
    snprintf(what, sizeof what, "a memset of %zu bytes", op->u.memset.bytes);
    break;
  default:
    snprintf(what, sizeof what, "a graph launch");
    break;
  }
  char reason[CGR__HOST_FAULT_REASON];
  cgr__fault_raise(&op->fault, what, reason, sizeof reason);
  cgr__host_device_fault(op->device, reason);
}

void cgr__host_op_run(host_op *op) {
  if (op->faulty) {
    raise_fault(op);
    /* A graph's launch still runs (nothing of it computes on a lost
     * device), so that its ticket completes and later launches and waits
     * go on; any other faulty work is skipped. */
    if (op->kind != HOST_OP_GRAPH)
      return;
  }
  switch (op->kind) {
  case HOST_OP_KERNEL:
    run_kernel(op);
    break;
  case HOST_OP_COPY:
    if (op->u.copy.bytes > 0)
      memcpy(op->u.copy.dst, op->u.copy.src, op->u.copy.bytes);
    break;
  case HOST_OP_MEMSET:
    if (op->u.memset.bytes > 0)
      memset(op->u.memset.dst, op->u.memset.value, op->u.memset.bytes);
    break;
  case HOST_OP_HOST_FUNC:
    op->u.host_func.fn(op->u.host_func.user);
    break;
  case HOST_OP_EVENT_RECORD:
    run_event_record(op->u.event.event, op->u.event.sequence);
    break;
  case HOST_OP_EVENT_WAIT:
    run_event_wait(op->u.event.event, op->u.event.sequence);
    break;
  case HOST_OP_GRAPH:
    cgr__host_graph_exec_run(op->u.graph.exec, op->u.graph.ticket);
    break;
  case HOST_OP_STOP:
    break;
  }
}

/* ---- streams ------------------------------------------------------------- */

void cgr__host_enqueue_locked(cgr__stream *stream, host_op *op) {
  op->next = NULL;
  if (stream->tail != NULL)
    stream->tail->next = op;
  else
    stream->head = op;
  stream->tail = op;
  stream->submitted++;
  pthread_cond_signal(&stream->work_ready);
}

cgr_status cgr__host_submit(host_ctx *ctx, cgr__stream *stream, host_op *op,
                            const char *func) {
  (void)ctx;
  cgr_status status = CGR_OK;
  pthread_mutex_lock(&stream->lock);
  if (stream->capture == NULL)
    cgr__host_enqueue_locked(stream, op);
  else
    status = cgr__host_capture_append(stream, op, func);
  pthread_mutex_unlock(&stream->lock);
  return status;
}

static void *worker_main(void *arg) {
  cgr__stream *stream = arg;
  cgr__nvtx_name_thread(stream->name);
  for (;;) {
    pthread_mutex_lock(&stream->lock);
    while (stream->head == NULL)
      pthread_cond_wait(&stream->work_ready, &stream->lock);
    host_op *op = stream->head;
    stream->head = op->next;
    if (stream->head == NULL)
      stream->tail = NULL;
    pthread_mutex_unlock(&stream->lock);

    int stop = op->kind == HOST_OP_STOP;
    cgr__host_op_run(op);
    cgr__host_op_free(op);

    pthread_mutex_lock(&stream->lock);
    stream->completed++;
    pthread_cond_broadcast(&stream->work_done);
    pthread_mutex_unlock(&stream->lock);
    if (stop)
      return NULL;
  }
}

static cgr_status host_stream_create(void *vctx, cgr_stream_priority priority,
                                     const char *name, cgr__stream **out) {
  host_ctx *ctx = vctx;
  cgr_status status = CGR_OK;
  int have_lock = 0, have_ready = 0, have_done = 0;
  cgr__stream *stream = cgr__calloc(1, sizeof *stream);
  if (stream == NULL)
    return cgr__fail(ctx->err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating stream '%s' failed", name);
  stream->ctx = ctx;
  stream->priority = priority;
  snprintf(stream->name, sizeof stream->name, "%s", name);
  stream->stop_op = cgr__host_op_new(ctx, HOST_OP_STOP, 0, __func__);
  if (stream->stop_op == NULL) {
    status = CGR_E_OUT_OF_MEMORY;
    goto fail;
  }
  have_lock = pthread_mutex_init(&stream->lock, NULL) == 0;
  have_ready = have_lock && pthread_cond_init(&stream->work_ready, NULL) == 0;
  have_done = have_ready && pthread_cond_init(&stream->work_done, NULL) == 0;
  if (!have_done) {
    status = cgr__fail(ctx->err, CGR_E_SYSTEM, __func__,
                       "initializing the locks of stream '%s' failed", name);
    goto fail;
  }
  cgr__fault_at at;
  if (cgr__fault_check(CGR__CALL_THREAD_CREATE, CGR__SITE, &at)) {
    char where[160];
    cgr__fault_describe(&at, where, sizeof where);
    status = cgr__fail(ctx->err, CGR_E_SYSTEM, __func__,
                       "injected fault in %s (stream '%s')", where, name);
    goto fail;
  }
  int error = pthread_create(&stream->thread, NULL, worker_main, stream);
  if (error != 0) {
    status = cgr__fail(ctx->err, CGR_E_SYSTEM, __func__,
                       "pthread_create for stream '%s' failed: %s", name,
                       strerror(error));
    goto fail;
  }
  /* Linux limits thread names to 15 characters; the name is cosmetic. */
  char short_name[16];
  snprintf(short_name, sizeof short_name, "%s", name);
  pthread_setname_np(stream->thread, short_name);

  pthread_mutex_lock(&ctx->lock);
  stream->next = ctx->streams;
  ctx->streams = stream;
  pthread_mutex_unlock(&ctx->lock);
  *out = stream;
  return CGR_OK;

fail:
  if (have_done)
    pthread_cond_destroy(&stream->work_done);
  if (have_ready)
    pthread_cond_destroy(&stream->work_ready);
  if (have_lock)
    pthread_mutex_destroy(&stream->lock);
  cgr__host_op_free(stream->stop_op);
  cgr__free(stream);
  return status;
}

static void host_stream_destroy(void *vctx, cgr__stream *stream) {
  host_ctx *ctx = vctx;
  /* A capture still open on the stream dies with it. */
  cgr__host_capture_abandon(ctx, stream);
  pthread_mutex_lock(&ctx->lock);
  for (cgr__stream **link = &ctx->streams; *link != NULL;
       link = &(*link)->next) {
    if (*link == stream) {
      *link = stream->next;
      break;
    }
  }
  pthread_mutex_unlock(&ctx->lock);

  /* The stop op runs after everything enqueued before it: destroy waits for
   * pending work, like cudaStreamDestroy's work completing. */
  pthread_mutex_lock(&stream->lock);
  cgr__host_enqueue_locked(stream, stream->stop_op);
  pthread_mutex_unlock(&stream->lock);
  pthread_join(stream->thread, NULL);

  cgr__host_set_fini(&stream->frontier);
  pthread_cond_destroy(&stream->work_done);
  pthread_cond_destroy(&stream->work_ready);
  pthread_mutex_destroy(&stream->lock);
  cgr__free(stream);
}

static void *host_stream_native(void *ctx, cgr__stream *stream) {
  (void)ctx;
  (void)stream;
  return NULL;
}

static cgr_status host_stream_synchronize(void *vctx, cgr__stream *stream) {
  host_ctx *ctx = vctx;
  CGR__CHECK(cgr__host_check_stream_not_capturing(
      ctx, stream, "synchronizing the capturing stream", __func__));
  pthread_mutex_lock(&stream->lock);
  uint64_t target = stream->submitted;
  while (stream->completed < target)
    pthread_cond_wait(&stream->work_done, &stream->lock);
  pthread_mutex_unlock(&stream->lock);
  return CGR_OK;
}

static cgr_status host_device_synchronize(void *vctx) {
  host_ctx *ctx = vctx;
  CGR__CHECK(cgr__host_check_thread_not_capturing(ctx,
                                                  "synchronizing the device",
                                                  __func__));
  /* Snapshot the targets under the context lock, then wait without it. */
  pthread_mutex_lock(&ctx->lock);
  for (cgr__stream *stream = ctx->streams; stream != NULL;
       stream = stream->next) {
    if (stream->capture != NULL) {
      pthread_mutex_unlock(&ctx->lock);
      return cgr__fail(ctx->err, CGR_E_CAPTURE, __func__,
                       "stream '%s' is capturing: the device cannot be "
                       "synchronized during a capture",
                       stream->name);
    }
  }
  for (cgr__stream *stream = ctx->streams; stream != NULL;
       stream = stream->next) {
    pthread_mutex_lock(&stream->lock);
    uint64_t target = stream->submitted;
    while (stream->completed < target)
      pthread_cond_wait(&stream->work_done, &stream->lock);
    pthread_mutex_unlock(&stream->lock);
  }
  pthread_mutex_unlock(&ctx->lock);
  return CGR_OK;
}

/* ---- events -------------------------------------------------------------- */

static cgr_status host_event_create(void *vctx, int timing, cgr__event **out) {
  host_ctx *ctx = vctx;
  cgr__event *event = cgr__calloc(1, sizeof *event);
  if (event == NULL)
    return cgr__fail(ctx->err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating an event failed");
  if (pthread_mutex_init(&event->lock, NULL) != 0) {
    cgr__free(event);
    return cgr__fail(ctx->err, CGR_E_SYSTEM, __func__,
                     "pthread_mutex_init failed");
  }
  if (pthread_cond_init(&event->done, NULL) != 0) {
    pthread_mutex_destroy(&event->lock);
    cgr__free(event);
    return cgr__fail(ctx->err, CGR_E_SYSTEM, __func__,
                     "pthread_cond_init failed");
  }
  event->timing = timing;
  atomic_init(&event->refs, 1);
  *out = event;
  return CGR_OK;
}

static void host_event_destroy(void *ctx, cgr__event *event) {
  (void)ctx;
  /* Pending records and waits hold references: CUDA lets an event be
   * destroyed while work that uses it is still queued. */
  cgr__host_event_release(event);
}

static cgr_status host_event_record(void *vctx, cgr__event *event,
                                    cgr__stream *stream) {
  host_ctx *ctx = vctx;
  host_op *op = cgr__host_op_new(ctx, HOST_OP_EVENT_RECORD, 0, __func__);
  if (op == NULL)
    return CGR_E_OUT_OF_MEMORY;
  pthread_mutex_lock(&stream->lock);
  if (stream->capture != NULL) {
    /* Inside a capture a record only marks a point in the graph for other
     * captured work to depend on; it runs nothing at replay. */
    cgr_status status = cgr__host_capture_record(stream, event, __func__);
    pthread_mutex_unlock(&stream->lock);
    cgr__free(op);
    return status;
  }
  pthread_mutex_lock(&event->lock);
  op->u.event.sequence = ++event->recorded;
  event->capture_id = 0;
  pthread_mutex_unlock(&event->lock);
  atomic_fetch_add(&event->refs, 1);
  op->u.event.event = event;
  cgr__host_enqueue_locked(stream, op);
  pthread_mutex_unlock(&stream->lock);
  return CGR_OK;
}

static cgr_status host_stream_wait_event(void *vctx, cgr__stream *stream,
                                         cgr__event *event) {
  host_ctx *ctx = vctx;
  host_op *op = cgr__host_op_new(ctx, HOST_OP_EVENT_WAIT, 0, __func__);
  if (op == NULL)
    return CGR_E_OUT_OF_MEMORY;
  /* A wait that a capture is part of (the stream captures, or the event
   * was recorded in a capture) needs ctx->lock, taken first: look without
   * it, and look again with it. */
  int with_ctx = 0;
  for (;;) {
    if (with_ctx)
      pthread_mutex_lock(&ctx->lock);
    pthread_mutex_lock(&stream->lock);
    pthread_mutex_lock(&event->lock);
    if (stream->capture == NULL && event->capture_id == 0)
      break; /* holding stream->lock and event->lock */
    if (with_ctx) {
      cgr_status status = cgr__host_capture_wait(ctx, stream, event, __func__);
      pthread_mutex_unlock(&event->lock);
      pthread_mutex_unlock(&stream->lock);
      pthread_mutex_unlock(&ctx->lock);
      cgr__free(op);
      return status;
    }
    pthread_mutex_unlock(&event->lock);
    pthread_mutex_unlock(&stream->lock);
    with_ctx = 1;
  }
  uint64_t target = event->recorded;
  pthread_mutex_unlock(&event->lock);
  if (target == 0) {
    /* Never recorded: complete by definition, as in CUDA. */
    cgr__free(op);
  } else {
    atomic_fetch_add(&event->refs, 1);
    op->u.event.event = event;
    op->u.event.sequence = target;
    cgr__host_enqueue_locked(stream, op);
  }
  pthread_mutex_unlock(&stream->lock);
  if (with_ctx)
    pthread_mutex_unlock(&ctx->lock);
  return CGR_OK;
}

/* CUDA calls querying or synchronizing a captured event invalid, and an
 * invalid operation invalidates the capture the event belongs to (the
 * programming guide's "Invalidation"): it then ends with an error and no
 * graph. The call fails either way. */
static cgr_status captured_event(host_ctx *ctx, uint64_t capture_id,
                                 const char *func) {
  int invalidated = 0;
  pthread_mutex_lock(&ctx->lock);
  for (host_capture *capture = ctx->captures; capture != NULL;
       capture = capture->next) {
    if (capture->id != capture_id)
      continue;
    cgr__host_capture_invalidate(
        capture, "the host queried or synchronized an event recorded in it");
    invalidated = 1;
    break;
  }
  pthread_mutex_unlock(&ctx->lock);
  return cgr__fail(ctx->err, CGR_E_CAPTURE, func,
                   "the event was last recorded during a capture; CUDA "
                   "forbids querying or waiting on it from the host "
                   "(cudaErrorCapturedEvent)%s",
                   invalidated ? "; the capture is invalidated" : "");
}

static cgr_status host_event_query(void *vctx, cgr__event *event) {
  host_ctx *ctx = vctx;
  pthread_mutex_lock(&event->lock);
  uint64_t capture_id = event->capture_id;
  int done = event->completed >= event->recorded;
  pthread_mutex_unlock(&event->lock);
  if (capture_id != 0)
    return captured_event(ctx, capture_id, __func__);
  return done ? CGR_OK : CGR_E_NOT_READY;
}

static cgr_status host_event_synchronize(void *vctx, cgr__event *event) {
  host_ctx *ctx = vctx;
  pthread_mutex_lock(&event->lock);
  uint64_t capture_id = event->capture_id;
  if (capture_id != 0) {
    pthread_mutex_unlock(&event->lock);
    return captured_event(ctx, capture_id, __func__);
  }
  uint64_t target = event->recorded;
  while (event->completed < target)
    pthread_cond_wait(&event->done, &event->lock);
  pthread_mutex_unlock(&event->lock);
  return CGR_OK;
}

static cgr_status host_event_elapsed_ms(void *vctx, cgr__event *start,
                                        cgr__event *end, float *out_ms) {
  host_ctx *ctx = vctx;
  cgr__event *events[2] = {start, end};
  struct timespec at[2];
  for (int i = 0; i < 2; ++i) {
    pthread_mutex_lock(&events[i]->lock);
    int timing = events[i]->timing;
    int recorded = events[i]->recorded > 0;
    int done = events[i]->completed >= events[i]->recorded;
    at[i] = events[i]->completed_at;
    pthread_mutex_unlock(&events[i]->lock);
    if (!timing)
      return cgr__fail(ctx->err, CGR_E_INVALID_ARGUMENT, __func__,
                       "event '%s' was created without timing",
                       i == 0 ? "start" : "end");
    if (!recorded)
      return cgr__fail(ctx->err, CGR_E_INVALID_STATE, __func__,
                       "event '%s' was never recorded",
                       i == 0 ? "start" : "end");
    if (!done)
      return CGR_E_NOT_READY;
  }
  double ms = (double)(at[1].tv_sec - at[0].tv_sec) * 1e3 +
              (double)(at[1].tv_nsec - at[0].tv_nsec) / 1e6;
  *out_ms = (float)ms;
  return CGR_OK;
}

/* ---- work ---------------------------------------------------------------- */

static cgr_status host_memcpy_async(void *vctx, cgr__stream *stream, void *dst,
                                    const void *src, size_t bytes) {
  host_ctx *ctx = vctx;
  host_op *op = cgr__host_op_new(ctx, HOST_OP_COPY, 0, __func__);
  if (op == NULL)
    return CGR_E_OUT_OF_MEMORY;
  op->u.copy.dst = dst;
  op->u.copy.src = src;
  op->u.copy.bytes = bytes;
  return cgr__host_submit(ctx, stream, op, __func__);
}

static cgr_status host_memset_async(void *vctx, cgr__stream *stream, void *dst,
                                    int value, size_t bytes) {
  host_ctx *ctx = vctx;
  host_op *op = cgr__host_op_new(ctx, HOST_OP_MEMSET, 0, __func__);
  if (op == NULL)
    return CGR_E_OUT_OF_MEMORY;
  op->u.memset.dst = dst;
  op->u.memset.value = value;
  op->u.memset.bytes = bytes;
  return cgr__host_submit(ctx, stream, op, __func__);
}

static cgr_status host_kernel_launch(void *vctx, cgr__stream *stream,
                                     const cgr__kernel *kernel,
                                     const void *args) {
  host_ctx *ctx = vctx;
  if (kernel->host_run == NULL)
    return cgr__fail(ctx->err, CGR_E_UNSUPPORTED, __func__,
                     "kernel '%s' has no host implementation", kernel->name);
  host_op *op =
      cgr__host_op_new(ctx, HOST_OP_KERNEL, kernel->args_size, __func__);
  if (op == NULL)
    return CGR_E_OUT_OF_MEMORY;
  op->u.kernel.kernel = kernel;
  if (kernel->args_size > 0)
    memcpy(op->args, args, kernel->args_size);
  return cgr__host_submit(ctx, stream, op, __func__);
}

static cgr_status host_host_func(void *vctx, cgr__stream *stream,
                                 cgr__host_fn fn, void *user) {
  host_ctx *ctx = vctx;
  host_op *op = cgr__host_op_new(ctx, HOST_OP_HOST_FUNC, 0, __func__);
  if (op == NULL)
    return CGR_E_OUT_OF_MEMORY;
  op->u.host_func.fn = fn;
  op->u.host_func.user = user;
  return cgr__host_submit(ctx, stream, op, __func__);
}

/* A collective is the host communicator's host kernel, launched like any
 * other: captured as a kernel node, run in stream order by the worker. */
static cgr_status host_collective(void *vctx, cgr__stream *stream, void *handle,
                                  int rank, int ranks,
                                  const cgr__collective *c) {
  (void)ranks; /* the communicator knows its ranks */
  cgr__host_comm_args args;
  memset(&args, 0, sizeof args);
  args.comm = handle;
  args.rank = rank;
  args.collective = *c;
  return host_kernel_launch(vctx, stream, &cgr__host_comm_kernel, &args);
}

/* ---- the table ----------------------------------------------------------- */

static int host_device_fault(void *vctx, char *reason, size_t size) {
  host_ctx *ctx = vctx;
  return cgr__host_device_fault_reason(ctx->device, reason, size);
}

static cgr_status host_device_info(void *ctx, cgr_device_info *out) {
  (void)ctx;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1)
    cpus = 1;
  snprintf(out->name, sizeof out->name, "host (%ld CPUs)", cpus);
  out->ordinal = -1;
  out->multiprocessors = (int)cpus;
  return CGR_OK;
}

static void host_destroy(void *vctx) {
  host_ctx *ctx = vctx;
  cgr__host_device_release(ctx->device, ctx);
  pthread_mutex_destroy(&ctx->lock);
  cgr__free(ctx);
}

static const cgr__backend_ops host_ops = {
    .name = "host",
    .destroy = host_destroy,
    .stream_create = host_stream_create,
    .stream_destroy = host_stream_destroy,
    .stream_native = host_stream_native,
    .event_create = host_event_create,
    .event_destroy = host_event_destroy,
    .event_record = host_event_record,
    .stream_wait_event = host_stream_wait_event,
    .event_query = host_event_query,
    .event_synchronize = host_event_synchronize,
    .event_elapsed_ms = host_event_elapsed_ms,
    .device_alloc = cgr__host_device_alloc,
    .device_free = cgr__host_device_free,
    .memory_kind = cgr__host_memory_kind,
    .event_record_host = cgr__host_event_record_host,
    .event_signal_host = cgr__host_event_signal_host,
    .pinned_alloc = cgr__host_pinned_alloc,
    .pinned_free = cgr__host_pinned_free,
    .memcpy_async = host_memcpy_async,
    .memset_async = host_memset_async,
    .kernel_launch = host_kernel_launch,
    .host_func = host_host_func,
    .collective = host_collective,
    .capture_begin = cgr__host_capture_begin,
    .capture_end = cgr__host_capture_end,
    .stream_is_capturing = cgr__host_stream_is_capturing,
    .graph_node_count = cgr__host_graph_node_count,
    .graph_destroy = cgr__host_graph_destroy,
    .graph_dump = cgr__host_graph_dump,
    .graph_instantiate = cgr__host_graph_instantiate,
    .graph_launch = cgr__host_graph_launch,
    .graph_exec_destroy = cgr__host_graph_exec_destroy,
    .stream_synchronize = host_stream_synchronize,
    .device_synchronize = host_device_synchronize,
    .device_info = host_device_info,
    .device_fault = host_device_fault,
};

cgr_status cgr__host_backend_init(cgr__backend *be, cgr__error *err,
                                  int device) {
  be->ops = NULL;
  be->device_faulted = NULL;
  host_ctx *ctx = cgr__calloc(1, sizeof *ctx);
  if (ctx == NULL)
    return cgr__fail(err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the host backend failed");
  if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
    cgr__free(ctx);
    return cgr__fail(err, CGR_E_SYSTEM, __func__, "pthread_mutex_init failed");
  }
  cgr_status status = cgr__host_device_acquire(ctx, err, device, &ctx->device);
  if (status != CGR_OK) {
    pthread_mutex_destroy(&ctx->lock);
    cgr__free(ctx);
    return status;
  }
  ctx->err = err;
  atomic_init(&ctx->next_capture_id, 1);
  be->ops = &host_ops;
  be->ctx = ctx;
  be->error = err;
  be->device_faulted = cgr__host_device_fault_flag(ctx->device);
  return CGR_OK;
}
