/*
 * Capture, graphs and graph launches on the host backend.
 *
 * A capture turns a stream's incoming work into graph nodes. The captured
 * graph is a list of ops in stream order; instantiation copies it, so the
 * graph may be destroyed afterwards, as in CUDA. A launch enqueues one op
 * that runs every node on the stream's worker; launches of one exec are
 * ordered behind each other through tickets, as CUDA orders them.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "runtime/alloc.h"
#include "runtime/host/host.h"

/* ---- capture rules ---------------------------------------------------------
 */

static void invalidate(host_capture *capture, const char *reason) {
  if (capture->invalidated)
    return;
  capture->invalidated = 1;
  snprintf(capture->reason, sizeof capture->reason, "%s", reason);
}

cgr_status cgr__host_check_thread_not_capturing(host_ctx *ctx, const char *what,
                                                const char *func) {
  pthread_t self = pthread_self();
  int offending = 0;
  char stream_name[32] = "";
  pthread_mutex_lock(&ctx->lock);
  for (host_capture *capture = ctx->captures; capture != NULL;
       capture = capture->next) {
    if (!pthread_equal(capture->thread, self))
      continue;
    pthread_mutex_lock(&capture->stream->lock);
    invalidate(capture, what);
    pthread_mutex_unlock(&capture->stream->lock);
    if (!offending)
      snprintf(stream_name, sizeof stream_name, "%s", capture->stream->name);
    offending = 1;
  }
  pthread_mutex_unlock(&ctx->lock);
  if (!offending)
    return CGR_OK;
  return cgr__fail(ctx->err, CGR_E_CAPTURE, func,
                   "%s while this thread captures stream '%s' is illegal in "
                   "thread-local capture mode; the capture is invalidated",
                   what, stream_name);
}

cgr_status cgr__host_check_stream_not_capturing(host_ctx *ctx,
                                                cgr__stream *stream,
                                                const char *what,
                                                const char *func) {
  pthread_mutex_lock(&stream->lock);
  host_capture *capture = stream->capture;
  if (capture != NULL)
    invalidate(capture, what);
  pthread_mutex_unlock(&stream->lock);
  if (capture == NULL)
    return CGR_OK;
  return cgr__fail(ctx->err, CGR_E_CAPTURE, func,
                   "%s: stream '%s' is capturing; the capture is invalidated",
                   what, stream->name);
}

/* ---- graphs ----------------------------------------------------------------
 */

void cgr__host_graph_destroy(void *ctx, cgr__graph *graph) {
  (void)ctx;
  if (graph == NULL)
    return;
  host_op *op = graph->head;
  while (op != NULL) {
    host_op *next = op->next;
    cgr__host_op_free(op);
    op = next;
  }
  cgr__free(graph);
}

/* One line per node, in stream order: a captured host graph is a chain. */
static void dot_node(FILE *file, size_t n, const host_op *op) {
  switch (op->kind) {
  case HOST_OP_KERNEL:
    fprintf(file,
            "  n%zu [shape=box, label=\"%zu: kernel %s\\nargs %zu B\"];\n", n,
            n, op->u.kernel.kernel->name ? op->u.kernel.kernel->name : "?",
            op->args_size);
    break;
  case HOST_OP_COPY:
    fprintf(file, "  n%zu [shape=box, label=\"%zu: memcpy %zu B\"];\n", n, n,
            op->u.copy.bytes);
    break;
  case HOST_OP_MEMSET:
    fprintf(file, "  n%zu [shape=box, label=\"%zu: memset %zu B = 0x%02x\"];\n",
            n, n, op->u.memset.bytes, op->u.memset.value & 0xFF);
    break;
  case HOST_OP_HOST_FUNC:
    fprintf(file, "  n%zu [shape=box, label=\"%zu: host function\"];\n", n, n);
    break;
  default:
    fprintf(file, "  n%zu [shape=box, label=\"%zu: op %d\"];\n", n, n,
            (int)op->kind);
    break;
  }
}

cgr_status cgr__host_graph_dump(void *vctx, cgr__graph *graph,
                                const char *path) {
  host_ctx *ctx = vctx;
  FILE *file = fopen(path, "w");
  if (file == NULL)
    return cgr__fail(ctx->err, CGR_E_SYSTEM, __func__, "fopen(\"%s\"): %s",
                     path, strerror(errno));
  fprintf(file, "digraph cgr_host_graph {\n  rankdir=TB;\n");
  fprintf(file, "  label=\"host backend graph, %zu nodes\";\n", graph->count);
  size_t n = 0;
  for (const host_op *op = graph->head; op != NULL; op = op->next, ++n) {
    dot_node(file, n, op);
    if (n > 0)
      fprintf(file, "  n%zu -> n%zu;\n", n - 1, n);
  }
  fprintf(file, "}\n");
  if (fclose(file) != 0)
    return cgr__fail(ctx->err, CGR_E_SYSTEM, __func__,
                     "writing \"%s\" failed: %s", path, strerror(errno));
  return CGR_OK;
}

cgr_status cgr__host_graph_node_count(void *ctx, cgr__graph *graph,
                                      size_t *out) {
  (void)ctx;
  *out = graph->count;
  return CGR_OK;
}

/* ---- capture
 * ----------------------------------------------------------------- */

cgr_status cgr__host_capture_begin(void *vctx, cgr__stream *stream) {
  host_ctx *ctx = vctx;
  host_capture *capture = cgr__calloc(1, sizeof *capture);
  cgr__graph *graph = cgr__calloc(1, sizeof *graph);
  if (capture == NULL || graph == NULL) {
    cgr__free(capture);
    cgr__free(graph);
    return cgr__fail(ctx->err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the capture of stream '%s' failed",
                     stream->name);
  }
  capture->stream = stream;
  capture->thread = pthread_self();
  capture->id = atomic_fetch_add(&ctx->next_capture_id, 1);
  capture->graph = graph;

  pthread_mutex_lock(&ctx->lock);
  pthread_mutex_lock(&stream->lock);
  int busy = stream->capture != NULL;
  if (busy) {
    /* CUDA refuses the second begin; whether that invalidates the first
     * capture it does not say, so the stricter reading holds here: an
     * invalid operation during capture invalidates it. */
    invalidate(stream->capture, "a second capture began on the stream");
  } else {
    stream->capture = capture;
    capture->next = ctx->captures;
    ctx->captures = capture;
  }
  pthread_mutex_unlock(&stream->lock);
  pthread_mutex_unlock(&ctx->lock);
  if (busy) {
    cgr__free(capture);
    cgr__free(graph);
    return cgr__fail(ctx->err, CGR_E_CAPTURE, __func__,
                     "stream '%s' is already capturing; the capture is "
                     "invalidated",
                     stream->name);
  }
  return CGR_OK;
}

cgr_status cgr__host_capture_end(void *vctx, cgr__stream *stream,
                                 cgr__graph **out) {
  host_ctx *ctx = vctx;
  *out = NULL;
  pthread_mutex_lock(&ctx->lock);
  pthread_mutex_lock(&stream->lock);
  host_capture *capture = stream->capture;
  if (capture == NULL) {
    pthread_mutex_unlock(&stream->lock);
    pthread_mutex_unlock(&ctx->lock);
    return cgr__fail(ctx->err, CGR_E_CAPTURE, __func__,
                     "stream '%s' is not capturing", stream->name);
  }
  if (!pthread_equal(capture->thread, pthread_self())) {
    pthread_mutex_unlock(&stream->lock);
    pthread_mutex_unlock(&ctx->lock);
    return cgr__fail(ctx->err, CGR_E_CAPTURE, __func__,
                     "the capture of stream '%s' must end on the thread that "
                     "began it (cudaErrorStreamCaptureWrongThread)",
                     stream->name);
  }
  stream->capture = NULL;
  for (host_capture **link = &ctx->captures; *link != NULL;
       link = &(*link)->next) {
    if (*link == capture) {
      *link = capture->next;
      break;
    }
  }
  pthread_mutex_unlock(&stream->lock);
  pthread_mutex_unlock(&ctx->lock);

  cgr_status status = CGR_OK;
  if (capture->invalidated) {
    status = cgr__fail(ctx->err, CGR_E_CAPTURE, __func__,
                       "the capture of stream '%s' was invalidated: %s",
                       stream->name, capture->reason);
    cgr__host_graph_destroy(ctx, capture->graph);
  } else {
    *out = capture->graph;
  }
  cgr__free(capture);
  return status;
}

int cgr__host_stream_is_capturing(void *ctx, cgr__stream *stream) {
  (void)ctx;
  pthread_mutex_lock(&stream->lock);
  int capturing = stream->capture != NULL;
  pthread_mutex_unlock(&stream->lock);
  return capturing;
}

/* ---- executable graphs
 * -------------------------------------------------------- */

static void exec_free(cgr__graph_exec *exec) {
  for (size_t i = 0; i < exec->count; ++i)
    cgr__host_op_free(exec->ops[i]);
  cgr__free(exec->ops);
  pthread_cond_destroy(&exec->done);
  pthread_mutex_destroy(&exec->lock);
  cgr__free(exec);
}

void cgr__host_graph_exec_release(cgr__graph_exec *exec) {
  if (atomic_fetch_sub(&exec->refs, 1) == 1)
    exec_free(exec);
}

cgr_status cgr__host_graph_instantiate(void *vctx, cgr__graph *graph,
                                       cgr__stream *upload_stream,
                                       cgr__graph_exec **out) {
  host_ctx *ctx = vctx;
  /* Nothing to upload: host memory is already where the "device" is. */
  (void)upload_stream;
  cgr__graph_exec *exec = cgr__calloc(1, sizeof *exec);
  if (exec == NULL)
    goto out_of_memory;
  if (pthread_mutex_init(&exec->lock, NULL) != 0) {
    cgr__free(exec);
    return cgr__fail(ctx->err, CGR_E_SYSTEM, __func__,
                     "pthread_mutex_init failed");
  }
  if (pthread_cond_init(&exec->done, NULL) != 0) {
    pthread_mutex_destroy(&exec->lock);
    cgr__free(exec);
    return cgr__fail(ctx->err, CGR_E_SYSTEM, __func__,
                     "pthread_cond_init failed");
  }
  atomic_init(&exec->refs, 1);
  if (graph->count > 0) {
    exec->ops = cgr__calloc(graph->count, sizeof *exec->ops);
    if (exec->ops == NULL) {
      exec_free(exec);
      goto out_of_memory;
    }
  }
  /* Copy every node, arguments included: the exec owns its snapshot. */
  for (host_op *node = graph->head; node != NULL; node = node->next) {
    host_op *copy = cgr__malloc(sizeof *copy + node->args_size);
    if (copy == NULL) {
      exec_free(exec);
      goto out_of_memory;
    }
    memcpy(copy, node, sizeof *copy + node->args_size);
    copy->next = NULL;
    exec->ops[exec->count++] = copy;
  }
  *out = exec;
  return CGR_OK;

out_of_memory:
  return cgr__fail(ctx->err, CGR_E_OUT_OF_MEMORY, __func__,
                   "instantiating a graph of %zu nodes ran out of host memory",
                   graph->count);
}

cgr_status cgr__host_graph_launch(void *vctx, cgr__graph_exec *exec,
                                  cgr__stream *stream) {
  host_ctx *ctx = vctx;
  host_op *op = cgr__host_op_new(ctx, HOST_OP_GRAPH, 0, __func__);
  if (op == NULL)
    return CGR_E_OUT_OF_MEMORY;
  /* The ticket is taken under the stream's lock together with the enqueue,
   * so a ticket is never handed out for a launch that did not happen (later
   * launches would wait for it forever). */
  pthread_mutex_lock(&stream->lock);
  host_capture *capture = stream->capture;
  if (capture != NULL) {
    invalidate(capture, "launching a graph into a capturing stream");
    pthread_mutex_unlock(&stream->lock);
    cgr__free(op);
    return cgr__fail(ctx->err, CGR_E_CAPTURE, __func__,
                     "launching a graph into stream '%s' while it captures "
                     "is illegal; the capture is invalidated",
                     stream->name);
  }
  atomic_fetch_add(&exec->refs, 1);
  op->u.graph.exec = exec;
  pthread_mutex_lock(&exec->lock);
  op->u.graph.ticket = ++exec->launched;
  pthread_mutex_unlock(&exec->lock);
  cgr__host_enqueue_locked(stream, op);
  pthread_mutex_unlock(&stream->lock);
  return CGR_OK;
}

void cgr__host_graph_exec_run(cgr__graph_exec *exec, uint64_t ticket) {
  /* CUDA orders each launch of an exec behind the previous one, even across
   * streams. */
  pthread_mutex_lock(&exec->lock);
  while (exec->finished + 1 < ticket)
    pthread_cond_wait(&exec->done, &exec->lock);
  pthread_mutex_unlock(&exec->lock);
  for (size_t i = 0; i < exec->count; ++i)
    cgr__host_op_run(exec->ops[i]);
  pthread_mutex_lock(&exec->lock);
  exec->finished = ticket;
  pthread_cond_broadcast(&exec->done);
  pthread_mutex_unlock(&exec->lock);
}

void cgr__host_graph_exec_destroy(void *ctx, cgr__graph_exec *exec) {
  (void)ctx;
  cgr__host_graph_exec_release(exec);
}
