/*
 * A capture's streams and dependencies, and launches of branched graphs, on
 * the host backend (the model: host.h).
 *
 * Capture. Every stream in a capture has a frontier: the nodes its next
 * captured node depends on. A node appended on a stream depends on its
 * frontier and becomes it; a record copies the frontier into the event;
 * a wait on an event of the same capture adds the event's record point to
 * the frontier, and a wait by a stream outside any capture joins it to the
 * event's capture with the record point as its frontier. These are CUDA's
 * rules for cudaEventRecord and cudaStreamWaitEvent during capture.
 *
 * Launch. A graph whose nodes lie on several branches runs each branch on
 * a thread of its own: the origin's on the launching stream's worker, each
 * other one on a thread started for the launch and joined before the
 * launch completes (a chain never gets here, and pays nothing). A branch
 * counts the nodes it has run (`done`): published with release order after
 * each node, waited for with acquire order (and a futex to sleep on), so a
 * node that depends on the k-th node of another branch waits for that
 * branch's count to reach k. No lock is shared between branches, so
 * ThreadSanitizer sees exactly the graph's edges and reports work that
 * lacks one. Where a branch's thread does not start, its nodes run on the
 * launching worker, merged with the origin's in capture order: every
 * dependency points to an earlier node, so a thread that runs nodes in
 * capture order never waits for one that cannot run.
 */
#define _GNU_SOURCE /* syscall */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#include <sched.h>
#endif

#include "runtime/alloc.h"
#include "runtime/host/host.h"

atomic_int cgr__host_refuse_branch_threads;

/* ---- node sets ------------------------------------------------------- */

static uint32_t *set_nodes(host_node_set *set) {
  return set->capacity > 0 ? set->heap : set->inline_nodes;
}

static const uint32_t *set_nodes_const(const host_node_set *set) {
  return set->capacity > 0 ? set->heap : set->inline_nodes;
}

void cgr__host_set_fini(host_node_set *set) {
  cgr__free(set->heap);
  memset(set, 0, sizeof *set);
}

/* Adds node unless it is there; 0 when growing the set failed. */
static int set_add(host_node_set *set, uint32_t node) {
  uint32_t *nodes = set_nodes(set);
  for (uint32_t i = 0; i < set->count; ++i)
    if (nodes[i] == node)
      return 1;
  uint32_t room = set->capacity > 0 ? set->capacity : HOST_SET_INLINE;
  if (set->count == room) {
    uint32_t *grown = cgr__malloc(2 * (size_t)room * sizeof *grown);
    if (grown == NULL)
      return 0;
    memcpy(grown, nodes, set->count * sizeof *grown);
    cgr__free(set->heap);
    set->heap = grown;
    set->capacity = 2 * room;
    nodes = grown;
  }
  nodes[set->count++] = node;
  return 1;
}

static int set_union(host_node_set *set, const host_node_set *more) {
  const uint32_t *nodes = set_nodes_const(more);
  for (uint32_t i = 0; i < more->count; ++i)
    if (!set_add(set, nodes[i]))
      return 0;
  return 1;
}

/* ---- capture state --------------------------------------------------- */

static void invalidate_locked(host_capture *capture, const char *reason) {
  if (capture->invalidated)
    return;
  capture->invalidated = 1;
  snprintf(capture->reason, sizeof capture->reason, "%s", reason);
}

void cgr__host_capture_invalidate(host_capture *capture, const char *reason) {
  pthread_mutex_lock(&capture->lock);
  invalidate_locked(capture, reason);
  pthread_mutex_unlock(&capture->lock);
}

static cgr_status invalidated_locked(cgr__stream *stream,
                                     const host_capture *capture,
                                     const char *func) {
  return cgr__fail(stream->ctx->err, CGR_E_CAPTURE, func,
                   "stream '%s' is capturing and its capture was invalidated "
                   "earlier: %s",
                   stream->name, capture->reason);
}

cgr_status cgr__host_capture_invalidated(cgr__stream *stream,
                                         host_capture *capture,
                                         const char *func) {
  pthread_mutex_lock(&capture->lock);
  cgr_status status = invalidated_locked(stream, capture, func);
  pthread_mutex_unlock(&capture->lock);
  return status;
}

/* A failed allocation loses part of the graph: the capture cannot end
 * with it (capture->lock held). */
static cgr_status out_of_memory_locked(cgr__stream *stream,
                                       host_capture *capture, const char *what,
                                       const char *func) {
  invalidate_locked(capture, "the host ran out of memory during the capture");
  return cgr__fail(stream->ctx->err, CGR_E_OUT_OF_MEMORY, func,
                   "%s on stream '%s' ran out of host memory; the capture is "
                   "invalidated",
                   what, stream->name);
}

static int grow_nodes(cgr__graph *graph) {
  if (graph->count < graph->capacity)
    return 1;
  if (graph->count >= UINT32_MAX)
    return 0;
  size_t capacity = graph->capacity > 0 ? 2 * graph->capacity : 16;
  host_node *grown = cgr__malloc(capacity * sizeof *grown);
  if (grown == NULL)
    return 0;
  if (graph->count > 0)
    memcpy(grown, graph->nodes, graph->count * sizeof *grown);
  cgr__free(graph->nodes);
  graph->nodes = grown;
  graph->capacity = capacity;
  return 1;
}

static int grow_branches(cgr__graph *graph) {
  if (graph->branch_count < graph->branch_capacity)
    return 1;
  uint32_t capacity = 2 * graph->branch_capacity;
  host_branch *grown = cgr__malloc(capacity * sizeof *grown);
  if (grown == NULL)
    return 0;
  memcpy(grown, graph->branches, graph->branch_count * sizeof *grown);
  cgr__free(graph->branches);
  graph->branches = grown;
  graph->branch_capacity = capacity;
  return 1;
}

/* The node's dependencies become the set's: in place for one. */
static int node_set_deps(host_node *node, const host_node_set *deps) {
  node->dep_count = deps->count;
  node->deps.many = NULL;
  if (deps->count == 1) {
    node->deps.one = set_nodes_const(deps)[0];
  } else if (deps->count > 1) {
    node->deps.many = cgr__malloc(deps->count * sizeof *node->deps.many);
    if (node->deps.many == NULL)
      return 0;
    memcpy(node->deps.many, set_nodes_const(deps),
           deps->count * sizeof *node->deps.many);
  }
  return 1;
}

cgr_status cgr__host_capture_append(cgr__stream *stream, host_op *op,
                                    const char *func) {
  host_capture *capture = stream->capture;
  cgr_status status = CGR_OK;
  pthread_mutex_lock(&capture->lock);
  cgr__graph *graph = capture->graph;
  host_node node = {.op = op, .branch = stream->branch};
  if (capture->invalidated) {
    status = invalidated_locked(stream, capture, func);
  } else if (!grow_nodes(graph) || !node_set_deps(&node, &stream->frontier)) {
    status = out_of_memory_locked(stream, capture, "recording a node", func);
  } else {
    uint32_t index = (uint32_t)graph->count;
    graph->nodes[graph->count++] = node;
    /* The stream's next node depends on this one alone; one node fits a
     * set without growing it. */
    stream->frontier.count = 0;
    (void)set_add(&stream->frontier, index);
  }
  pthread_mutex_unlock(&capture->lock);
  if (status != CGR_OK)
    cgr__host_op_free(op);
  return status;
}

cgr_status cgr__host_capture_record(cgr__stream *stream, cgr__event *event,
                                    const char *func) {
  host_capture *capture = stream->capture;
  cgr_status status = CGR_OK;
  pthread_mutex_lock(&event->lock);
  pthread_mutex_lock(&capture->lock);
  if (capture->invalidated) {
    status = invalidated_locked(stream, capture, func);
  } else {
    /* CUDA: the event now stands for the stream's captured work so far
     * (nothing, before its first node), not for anything that runs. */
    event->capture_id = capture->id;
    event->record_point.count = 0;
    if (!set_union(&event->record_point, &stream->frontier))
      status =
          out_of_memory_locked(stream, capture, "recording an event", func);
  }
  pthread_mutex_unlock(&capture->lock);
  pthread_mutex_unlock(&event->lock);
  return status;
}

/* A capturing stream waits on an event (event->lock held). */
static cgr_status wait_in_capture(cgr__stream *stream, cgr__event *event,
                                  const char *func) {
  host_capture *capture = stream->capture;
  cgr_status status = CGR_OK;
  pthread_mutex_lock(&capture->lock);
  if (capture->invalidated) {
    status = invalidated_locked(stream, capture, func);
  } else if (event->capture_id == capture->id) {
    /* Its next node depends on the record point too: a join when the
     * event was recorded on another stream of the capture. */
    if (!set_union(&stream->frontier, &event->record_point))
      status =
          out_of_memory_locked(stream, capture, "waiting on an event", func);
  } else if (event->capture_id != 0 || event->recorded > 0) {
    /* CUDA: a dependency on work outside the capture would cross the
     * capture's boundary (cudaErrorStreamCaptureIsolation); one on another
     * capture would merge two captures. */
    char reason[sizeof capture->reason];
    snprintf(reason, sizeof reason,
             "stream '%s' waited on an event recorded %s", stream->name,
             event->capture_id != 0 ? "in another capture"
                                    : "outside the capture");
    invalidate_locked(capture, reason);
    status = cgr__fail(stream->ctx->err, CGR_E_CAPTURE, func,
                       "%s (CUDA rejects it: the dependency would cross the "
                       "capture's boundary); the capture is invalidated",
                       reason);
  }
  /* An event never recorded is complete: no dependency, as in CUDA. */
  pthread_mutex_unlock(&capture->lock);
  return status;
}

/* A stream outside any capture waits on an event recorded in `capture`: it
 * joins the capture as a new branch (ctx->lock, stream->lock, event->lock
 * held). CUDA joins it even into an invalidated capture, whose end then
 * fails, so that its work is not run as if nothing were captured. */
static cgr_status join_capture(cgr__stream *stream, host_capture *capture,
                               cgr__event *event, const char *func) {
  pthread_mutex_lock(&capture->lock);
  cgr__graph *graph = capture->graph;
  stream->frontier.count = 0;
  if (!grow_branches(graph) ||
      !set_union(&stream->frontier, &event->record_point)) {
    cgr_status status =
        out_of_memory_locked(stream, capture, "joining a capture", func);
    pthread_mutex_unlock(&capture->lock);
    return status;
  }
  uint32_t branch = graph->branch_count++;
  snprintf(graph->branches[branch].stream,
           sizeof graph->branches[branch].stream, "%s", stream->name);
  int invalidated = capture->invalidated;
  pthread_mutex_unlock(&capture->lock);
  stream->capture = capture;
  stream->branch = branch;
  stream->capture_peer = capture->streams;
  capture->streams = stream;
  if (invalidated)
    return cgr__host_capture_invalidated(stream, capture, func);
  return CGR_OK;
}

cgr_status cgr__host_capture_wait(host_ctx *ctx, cgr__stream *stream,
                                  cgr__event *event, const char *func) {
  if (stream->capture != NULL)
    return wait_in_capture(stream, event, func);
  for (host_capture *capture = ctx->captures; capture != NULL;
       capture = capture->next) {
    if (capture->id == event->capture_id)
      return join_capture(stream, capture, event, func);
  }
  /* The capture ended (or is another runtime's): the event stands for
   * graph nodes, not for work a stream could wait for. */
  return cgr__fail(ctx->err, CGR_E_UNSUPPORTED, func,
                   "stream '%s' waited on an event last recorded during a "
                   "capture that is not under way in this runtime; record it "
                   "again outside capture first",
                   stream->name);
}

void cgr__host_capture_detach(host_ctx *ctx, host_capture *capture,
                              host_node_set *ends) {
  memset(ends, 0, sizeof *ends);
  cgr__stream *next = NULL;
  for (cgr__stream *stream = capture->streams; stream != NULL; stream = next) {
    pthread_mutex_lock(&stream->lock);
    next = stream->capture_peer;
    if (stream == capture->stream) {
      *ends = stream->frontier; /* a set moves by value */
      memset(&stream->frontier, 0, sizeof stream->frontier);
    } else {
      cgr__host_set_fini(&stream->frontier);
    }
    stream->capture = NULL;
    stream->capture_peer = NULL;
    stream->branch = 0;
    pthread_mutex_unlock(&stream->lock);
  }
  capture->streams = NULL;
  for (host_capture **link = &ctx->captures; *link != NULL;
       link = &(*link)->next) {
    if (*link == capture) {
      *link = capture->next;
      break;
    }
  }
}

cgr_status cgr__host_capture_check_joined(host_ctx *ctx,
                                          const host_capture *capture,
                                          const host_node_set *ends,
                                          const char *func) {
  const cgr__graph *graph = capture->graph;
  /* One branch is a chain ending in the origin's frontier. */
  if (graph->branch_count <= 1 || graph->count == 0)
    return CGR_OK;
  unsigned char *reached = cgr__calloc(graph->count, 1);
  if (reached == NULL)
    return cgr__fail(ctx->err, CGR_E_OUT_OF_MEMORY, func,
                     "checking that the %zu nodes of the capture of stream "
                     "'%s' were joined back ran out of host memory",
                     graph->count, graph->branches[0].stream);
  const uint32_t *end_nodes = set_nodes_const(ends);
  for (uint32_t i = 0; i < ends->count; ++i)
    reached[end_nodes[i]] = 1;
  /* Dependencies point to earlier nodes: one backward sweep marks all that
   * the end depends on. */
  for (size_t i = graph->count; i-- > 0;) {
    if (!reached[i])
      continue;
    const host_node *node = &graph->nodes[i];
    const uint32_t *deps = cgr__host_node_deps(node);
    for (uint32_t d = 0; d < node->dep_count; ++d)
      reached[deps[d]] = 1;
  }
  size_t unjoined = graph->count;
  for (size_t i = 0; i < graph->count && unjoined == graph->count; ++i)
    if (!reached[i])
      unjoined = i;
  cgr__free(reached);
  if (unjoined == graph->count)
    return CGR_OK;
  const char *origin = graph->branches[0].stream;
  const char *branch = graph->branches[graph->nodes[unjoined].branch].stream;
  return cgr__fail(ctx->err, CGR_E_CAPTURE, func,
                   "stream '%s' joined the capture of stream '%s' and its "
                   "work (node %zu) was not joined back before the end "
                   "(cudaErrorStreamCaptureUnjoined): '%s' must wait on an "
                   "event recorded on '%s' after that work; the graph is "
                   "discarded",
                   branch, origin, unjoined, origin, branch);
}

/* ---- branched launches ----------------------------------------------- */

struct host_branch_run {
  _Atomic uint32_t done; /* nodes it ran in this launch: the futex word */
  uint32_t nodes;        /* nodes it has */
  int on_caller;         /* this launch runs it on the launching worker */
  pthread_t thread;
  cgr__graph_exec *exec;
  uint32_t branch;
};

/* Sleeps while *word is `seen` (or returns at once if it is not). */
static void futex_wait(_Atomic uint32_t *word, uint32_t seen) {
#if defined(__linux__)
  (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, seen, NULL,
                NULL, 0);
#else
  (void)word;
  (void)seen;
  sched_yield();
#endif
}

static void futex_wake(_Atomic uint32_t *word) {
#if defined(__linux__)
  (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT32_MAX,
                NULL, NULL, 0);
#else
  (void)word;
#endif
}

/* Waits until the branch has run `count` nodes of this launch. */
static void wait_for_branch(host_branch_run *run, uint32_t count) {
  for (;;) {
    uint32_t done = atomic_load_explicit(&run->done, memory_order_acquire);
    if (done >= count)
      return;
    futex_wait(&run->done, done);
  }
}

/* Runs, in capture order, the nodes of one branch (caller 0) or of the
 * branches this launch runs on the launching worker (caller 1). */
static void run_nodes(cgr__graph_exec *exec, uint32_t branch, int caller) {
  for (size_t i = 0; i < exec->count; ++i) {
    const host_node *node = &exec->nodes[i];
    host_branch_run *own = &exec->runs[node->branch];
    if (caller ? !own->on_caller : node->branch != branch)
      continue;
    const uint32_t *deps = cgr__host_node_deps(node);
    for (uint32_t d = 0; d < node->dep_count; ++d) {
      uint32_t dep = deps[d];
      if (exec->nodes[dep].branch != node->branch)
        wait_for_branch(&exec->runs[exec->nodes[dep].branch],
                        exec->positions[dep] + 1);
    }
    cgr__host_op_run(node->op);
    atomic_fetch_add_explicit(&own->done, 1, memory_order_release);
    futex_wake(&own->done);
  }
}

static void *branch_main(void *arg) {
  host_branch_run *run = arg;
  run_nodes(run->exec, run->branch, 0);
  return NULL;
}

static int start_branch(host_branch_run *run) {
  int refuse = atomic_load(&cgr__host_refuse_branch_threads);
  while (refuse > 0)
    if (atomic_compare_exchange_weak(&cgr__host_refuse_branch_threads, &refuse,
                                     refuse - 1))
      return EAGAIN;
  return pthread_create(&run->thread, NULL, branch_main, run);
}

cgr_status cgr__host_exec_plan_branches(host_ctx *ctx, cgr__graph_exec *exec,
                                        const char *func) {
  if (exec->branch_count <= 1)
    return CGR_OK;
  exec->positions = cgr__calloc(exec->count, sizeof *exec->positions);
  exec->runs = cgr__calloc(exec->branch_count, sizeof *exec->runs);
  if (exec->positions == NULL || exec->runs == NULL) {
    cgr__host_exec_free_branches(exec);
    return cgr__fail(ctx->err, CGR_E_OUT_OF_MEMORY, func,
                     "planning the %u branches of a graph ran out of host "
                     "memory",
                     exec->branch_count);
  }
  uint32_t busy = 0;
  for (size_t i = 0; i < exec->count; ++i) {
    host_branch_run *run = &exec->runs[exec->nodes[i].branch];
    busy += run->nodes == 0;
    exec->positions[i] = run->nodes++;
  }
  for (uint32_t b = 0; b < exec->branch_count; ++b) {
    exec->runs[b].exec = exec;
    exec->runs[b].branch = b;
  }
  /* Branches that captured nothing, or all nodes on one: a chain. */
  if (busy <= 1)
    cgr__host_exec_free_branches(exec);
  return CGR_OK;
}

void cgr__host_exec_free_branches(cgr__graph_exec *exec) {
  cgr__free(exec->positions);
  cgr__free(exec->runs);
  exec->positions = NULL;
  exec->runs = NULL;
}

void cgr__host_exec_run_branches(cgr__graph_exec *exec) {
  host_branch_run *runs = exec->runs;
  /* Launches of one exec run one at a time: the previous one's threads
   * were joined before this one began. */
  for (uint32_t b = 0; b < exec->branch_count; ++b) {
    atomic_store_explicit(&runs[b].done, 0, memory_order_relaxed);
    runs[b].on_caller = 1;
  }
  for (uint32_t b = 1; b < exec->branch_count; ++b)
    if (runs[b].nodes > 0)
      runs[b].on_caller = start_branch(&runs[b]) != 0;
  run_nodes(exec, 0, 1);
  for (uint32_t b = 1; b < exec->branch_count; ++b)
    if (!runs[b].on_caller)
      pthread_join(runs[b].thread, NULL);
}
