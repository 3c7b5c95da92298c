/*
 * Capture, graphs and graph launches on the host backend (the model:
 * host.h; a capture's streams and dependencies: host_branches.c).
 *
 * A capture turns the work its streams receive into graph nodes, in
 * capture order, each with the nodes it depends on: the previous node of
 * its stream and those of the events it waited on. A capture of one
 * stream is a chain. Instantiation copies the nodes and their
 * dependencies, so the graph may be destroyed afterwards, as in CUDA. A
 * launch enqueues one op that runs every node on the stream's worker, or,
 * for a graph of several branches, each branch on its own thread;
 * launches of one exec are ordered behind each other through tickets, as
 * CUDA orders them.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "runtime/alloc.h"
#include "runtime/host/host.h"

/* ---- capture rules ---------------------------------------------------------
 */

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
    cgr__host_capture_invalidate(capture, what);
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
  /* Any stream of the capture: a joined one invalidates it all. */
  host_capture *capture = stream->capture;
  if (capture != NULL)
    cgr__host_capture_invalidate(capture, what);
  pthread_mutex_unlock(&stream->lock);
  if (capture == NULL)
    return CGR_OK;
  return cgr__fail(ctx->err, CGR_E_CAPTURE, func,
                   "%s: stream '%s' is capturing; the capture is invalidated",
                   what, stream->name);
}

/* ---- graphs ----------------------------------------------------------------
 */

static void node_free(host_node *node) {
  cgr__host_op_free(node->op);
  if (node->dep_count > 1)
    cgr__free(node->deps.many);
}

void cgr__host_graph_destroy(void *ctx, cgr__graph *graph) {
  (void)ctx;
  if (graph == NULL)
    return;
  for (size_t i = 0; i < graph->count; ++i)
    node_free(&graph->nodes[i]);
  cgr__free(graph->nodes);
  cgr__free(graph->branches);
  cgr__free(graph);
}

/* One line per node, in capture order. */
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

/* A box around each branch's nodes, named by its stream. */
static void dot_branches(FILE *file, const cgr__graph *graph) {
  for (uint32_t b = 0; b < graph->branch_count; ++b) {
    fprintf(file, "  subgraph cluster_%u {\n    label=\"stream '%s'\";\n", b,
            graph->branches[b].stream);
    for (size_t n = 0; n < graph->count; ++n)
      if (graph->nodes[n].branch == b)
        fprintf(file, "    n%zu;\n", n);
    fprintf(file, "  }\n");
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
  if (graph->branch_count > 1)
    fprintf(file, "  label=\"host backend graph, %zu nodes, %u branches\";\n",
            graph->count, graph->branch_count);
  else
    fprintf(file, "  label=\"host backend graph, %zu nodes\";\n", graph->count);
  /* Each node, then an edge from each node it depends on: a chain's edges
   * are n0 -> n1 -> n2 ... */
  for (size_t n = 0; n < graph->count; ++n) {
    const host_node *node = &graph->nodes[n];
    dot_node(file, n, node->op);
    const uint32_t *deps = cgr__host_node_deps(node);
    for (uint32_t d = 0; d < node->dep_count; ++d)
      fprintf(file, "  n%u -> n%zu;\n", deps[d], n);
  }
  if (graph->branch_count > 1)
    dot_branches(file, graph);
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

static void capture_free(host_ctx *ctx, host_capture *capture) {
  cgr__host_graph_destroy(ctx, capture->graph);
  pthread_mutex_destroy(&capture->lock);
  cgr__free(capture);
}

/* A capture of `stream`, its graph holding the origin's branch. */
static host_capture *capture_new(host_ctx *ctx, cgr__stream *stream) {
  host_capture *capture = cgr__calloc(1, sizeof *capture);
  cgr__graph *graph = cgr__calloc(1, sizeof *graph);
  host_branch *branches = cgr__calloc(2, sizeof *branches);
  if (capture == NULL || graph == NULL || branches == NULL ||
      pthread_mutex_init(&capture->lock, NULL) != 0) {
    cgr__free(capture);
    cgr__free(graph);
    cgr__free(branches);
    return NULL;
  }
  snprintf(branches[0].stream, sizeof branches[0].stream, "%s", stream->name);
  graph->branches = branches;
  graph->branch_count = 1;
  graph->branch_capacity = 2;
  capture->stream = stream;
  capture->streams = stream;
  capture->thread = pthread_self();
  capture->id = atomic_fetch_add(&ctx->next_capture_id, 1);
  capture->graph = graph;
  return capture;
}

cgr_status cgr__host_capture_begin(void *vctx, cgr__stream *stream) {
  host_ctx *ctx = vctx;
  host_capture *capture = capture_new(ctx, stream);
  if (capture == NULL)
    return cgr__fail(ctx->err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the capture of stream '%s' failed",
                     stream->name);

  pthread_mutex_lock(&ctx->lock);
  pthread_mutex_lock(&stream->lock);
  int busy = stream->capture != NULL;
  if (busy) {
    /* CUDA refuses the second begin; whether that invalidates the first
     * capture it does not say, so the stricter reading holds here: an
     * invalid operation during capture invalidates it. The first may be
     * one the stream joined. */
    cgr__host_capture_invalidate(stream->capture,
                                 "a second capture began on the stream");
  } else {
    stream->capture = capture;
    stream->capture_peer = NULL;
    stream->branch = 0;
    stream->frontier.count = 0;
    capture->next = ctx->captures;
    ctx->captures = capture;
  }
  pthread_mutex_unlock(&stream->lock);
  pthread_mutex_unlock(&ctx->lock);
  if (busy) {
    capture_free(ctx, capture);
    return cgr__fail(ctx->err, CGR_E_CAPTURE, __func__,
                     "stream '%s' is already capturing; the capture is "
                     "invalidated",
                     stream->name);
  }
  return CGR_OK;
}

/* CGR_OK when the stream may end its capture, else why not (ctx->lock and
 * stream->lock held). */
static cgr_status refuse_end(host_ctx *ctx, cgr__stream *stream,
                             host_capture *capture) {
  if (capture == NULL)
    return cgr__fail(ctx->err, CGR_E_CAPTURE, "cgr__host_capture_end",
                     "stream '%s' is not capturing", stream->name);
  if (capture->stream != stream) {
    cgr__host_capture_invalidate(capture,
                                 "a stream that joined it tried to end it");
    return cgr__fail(ctx->err, CGR_E_CAPTURE, "cgr__host_capture_end",
                     "stream '%s' joined the capture of stream '%s' and "
                     "cannot end it: a capture ends on the stream that began "
                     "it (cudaErrorStreamCaptureUnmatched); the capture is "
                     "invalidated",
                     stream->name, capture->stream->name);
  }
  if (!pthread_equal(capture->thread, pthread_self()))
    return cgr__fail(ctx->err, CGR_E_CAPTURE, "cgr__host_capture_end",
                     "the capture of stream '%s' must end on the thread that "
                     "began it (cudaErrorStreamCaptureWrongThread)",
                     stream->name);
  return CGR_OK;
}

cgr_status cgr__host_capture_end(void *vctx, cgr__stream *stream,
                                 cgr__graph **out) {
  host_ctx *ctx = vctx;
  *out = NULL;
  pthread_mutex_lock(&ctx->lock);
  pthread_mutex_lock(&stream->lock);
  host_capture *capture = stream->capture;
  cgr_status status = refuse_end(ctx, stream, capture);
  pthread_mutex_unlock(&stream->lock);
  if (status != CGR_OK) {
    pthread_mutex_unlock(&ctx->lock);
    return status;
  }
  /* Every stream leaves capture mode, whatever the outcome. */
  host_node_set ends;
  cgr__host_capture_detach(ctx, capture, &ends);
  pthread_mutex_unlock(&ctx->lock);

  /* No other thread can reach the capture any more. */
  if (capture->invalidated)
    status = cgr__fail(ctx->err, CGR_E_CAPTURE, __func__,
                       "the capture of stream '%s' was invalidated: %s",
                       stream->name, capture->reason);
  else
    status = cgr__host_capture_check_joined(ctx, capture, &ends, __func__);
  if (status == CGR_OK) {
    *out = capture->graph;
    capture->graph = NULL;
  }
  cgr__host_set_fini(&ends);
  capture_free(ctx, capture);
  return status;
}

void cgr__host_capture_abandon(host_ctx *ctx, cgr__stream *stream) {
  pthread_mutex_lock(&ctx->lock);
  pthread_mutex_lock(&stream->lock);
  host_capture *capture = stream->capture;
  if (capture != NULL && capture->stream != stream) {
    /* A joined stream leaves alone; the capture cannot be whole any more. */
    char reason[sizeof capture->reason];
    snprintf(reason, sizeof reason,
             "stream '%s', which joined it, was destroyed", stream->name);
    cgr__host_capture_invalidate(capture, reason);
    for (cgr__stream **link = &capture->streams; *link != NULL;
         link = &(*link)->capture_peer) {
      if (*link == stream) {
        *link = stream->capture_peer;
        break;
      }
    }
    stream->capture = NULL;
    stream->capture_peer = NULL;
    cgr__host_set_fini(&stream->frontier);
    capture = NULL;
  }
  pthread_mutex_unlock(&stream->lock);
  host_node_set ends;
  if (capture != NULL)
    cgr__host_capture_detach(ctx, capture, &ends);
  pthread_mutex_unlock(&ctx->lock);
  if (capture != NULL) {
    cgr__host_set_fini(&ends);
    capture_free(ctx, capture);
  }
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
    node_free(&exec->nodes[i]);
  cgr__free(exec->nodes);
  cgr__host_exec_free_branches(exec);
  pthread_cond_destroy(&exec->done);
  pthread_mutex_destroy(&exec->lock);
  cgr__free(exec);
}

void cgr__host_graph_exec_release(cgr__graph_exec *exec) {
  if (atomic_fetch_sub(&exec->refs, 1) == 1)
    exec_free(exec);
}

/* A copy of the node, arguments and dependencies included; 0 when out of
 * memory. */
static int node_copy(host_node *copy, const host_node *node) {
  *copy = *node;
  copy->op = cgr__malloc(sizeof *node->op + node->op->args_size);
  if (node->dep_count > 1)
    copy->deps.many = cgr__malloc(node->dep_count * sizeof *copy->deps.many);
  if (copy->op == NULL || (node->dep_count > 1 && copy->deps.many == NULL)) {
    cgr__free(copy->op);
    if (node->dep_count > 1)
      cgr__free(copy->deps.many);
    return 0;
  }
  memcpy(copy->op, node->op, sizeof *node->op + node->op->args_size);
  copy->op->next = NULL;
  if (node->dep_count > 1)
    memcpy(copy->deps.many, node->deps.many,
           node->dep_count * sizeof *copy->deps.many);
  return 1;
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
  exec->branch_count = graph->branch_count;
  if (graph->count > 0) {
    exec->nodes = cgr__calloc(graph->count, sizeof *exec->nodes);
    if (exec->nodes == NULL) {
      exec_free(exec);
      goto out_of_memory;
    }
  }
  /* Copy every node, arguments and dependencies included: the exec owns
   * its snapshot. */
  for (size_t i = 0; i < graph->count; ++i) {
    if (!node_copy(&exec->nodes[i], &graph->nodes[i])) {
      exec_free(exec);
      goto out_of_memory;
    }
    exec->count++;
  }
  cgr_status status = cgr__host_exec_plan_branches(ctx, exec, __func__);
  if (status != CGR_OK) {
    exec_free(exec);
    return status;
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
    cgr__host_capture_invalidate(capture,
                                 "launching a graph into a capturing stream");
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
  /* A chain runs here, in order; a graph of several branches runs each on
   * its own thread (host_branches.c). */
  if (exec->runs != NULL) {
    cgr__host_exec_run_branches(exec);
  } else {
    for (size_t i = 0; i < exec->count; ++i)
      cgr__host_op_run(exec->nodes[i].op);
  }
  pthread_mutex_lock(&exec->lock);
  exec->finished = ticket;
  pthread_cond_broadcast(&exec->done);
  pthread_mutex_unlock(&exec->lock);
}

void cgr__host_graph_exec_destroy(void *ctx, cgr__graph_exec *exec) {
  (void)ctx;
  cgr__host_graph_exec_release(exec);
}
