/*
 * The host backend's insides, shared by host_backend.c (streams, events,
 * memory, the worker loop), host_graph.c (capture begin and end, graphs,
 * launches) and host_branches.c (a capture's streams and dependencies,
 * branched launches).
 *
 * Model. Each stream is a worker thread draining a FIFO of operations, so
 * work on one stream runs in order and work on two streams runs at once.
 * Events are sequence counters: a record takes the next number when it is
 * issued and marks it complete when the worker reaches it; a wait issued at
 * time t waits for the number the event had at t. Nothing else orders two
 * streams, so a missing wait is a real race (ThreadSanitizer sees it).
 *
 * Capture. While a stream captures, the work it receives is appended to a
 * graph instead of its FIFO. What CUDA rejects during capture is rejected
 * here with CGR_E_CAPTURE and invalidates the capture, as CUDA does.
 *
 * A capture spans streams as CUDA's does. It begins on its origin stream;
 * a stream that is not capturing and waits on an event last recorded in a
 * live capture joins it (a fork). Each stream in a capture has a frontier:
 * the nodes its next captured node depends on. A node captured on it
 * depends on the frontier, which becomes that node alone; a record
 * copies the frontier into the event (its record point); a wait on an
 * event of the same capture adds the record point to the frontier (a
 * join, when the event was recorded on another stream). The nodes
 * captured on one stream form a branch. The capture ends on the origin
 * stream only (cudaErrorStreamCaptureUnmatched elsewhere), and only when
 * every node is something the origin's frontier depends on, transitively
 * (cudaErrorStreamCaptureUnjoined otherwise); either way every stream in
 * it leaves capture mode. Whatever invalidates a capture does so on any
 * of its streams.
 *
 * Replay. A launch of a graph of one branch runs its nodes in order on the
 * launching stream's worker, as it always did. A graph of several branches
 * runs its origin branch there and each other branch on a thread started
 * for the launch, every node waiting only for the nodes it depends on: what
 * CUDA may run at once runs at once, and a missing dependency is a race.
 */
#ifndef CGR_RUNTIME_HOST_HOST_H
#define CGR_RUNTIME_HOST_HOST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "runtime/backend.h"
#include "runtime/fault.h"

typedef enum host_op_kind {
  HOST_OP_KERNEL,
  HOST_OP_COPY,
  HOST_OP_MEMSET,
  HOST_OP_HOST_FUNC,
  HOST_OP_EVENT_RECORD,
  HOST_OP_EVENT_WAIT,
  HOST_OP_GRAPH,
  HOST_OP_STOP
} host_op_kind;

/* The device every host-backend runtime shares (host_device.c). */
typedef struct host_device host_device;

/* Why the device was lost fits in this many bytes. */
enum { CGR__HOST_FAULT_REASON = 320 };
/* Device ordinals the host backend simulates (cgr_config.device). */
enum { CGR__HOST_MAX_DEVICES = 64 };

/* One unit of stream work, or the work of one node of a captured graph.
 * Kernel arguments are copied into `args` at launch, as CUDA copies
 * parameters.
 * Work an injected ASYNC fault struck carries it (`faulty`): when the op
 * runs, it loses the device instead of doing its work, in every launch of
 * a graph it was captured into. */
typedef struct host_op {
  struct host_op *next;
  host_op_kind kind;
  host_device *device; /* what a device fault loses */
  int faulty;
  cgr__fault_at fault;
  union {
    struct {
      const cgr__kernel *kernel;
    } kernel;
    struct {
      void *dst;
      const void *src;
      size_t bytes;
    } copy;
    struct {
      void *dst;
      int value;
      size_t bytes;
    } memset;
    struct {
      cgr__host_fn fn;
      void *user;
    } host_func;
    struct {
      cgr__event *event;
      uint64_t sequence;
    } event;
    struct {
      cgr__graph_exec *exec;
      uint64_t ticket;
    } graph;
  } u;
  size_t args_size;
  _Alignas(16) unsigned char args[];
} host_op;

/* A set of nodes of one capture, as indices into its graph: a stream's
 * frontier, or an event's record point. Up to HOST_SET_INLINE nodes, the
 * usual case, need no allocation. */
enum { HOST_SET_INLINE = 4 };
typedef struct host_node_set {
  uint32_t count;
  uint32_t capacity; /* of `heap`; 0 while the nodes are inline */
  uint32_t *heap;
  uint32_t inline_nodes[HOST_SET_INLINE];
} host_node_set;

/* One node of a captured graph: its work, the branch (the stream that
 * captured it; 0 is the origin's), and the nodes it depends on, as indices
 * of earlier nodes. The one dependency of a chain is stored in place. */
typedef struct host_node {
  host_op *op;
  uint32_t branch;
  uint32_t dep_count;
  union {
    uint32_t one;   /* dep_count == 1 */
    uint32_t *many; /* dep_count > 1 */
  } deps;
} host_node;

/* The node's dependencies (dep_count of them). */
static inline const uint32_t *cgr__host_node_deps(const host_node *node) {
  return node->dep_count == 1 ? &node->deps.one : node->deps.many;
}

/* The name of a branch's stream, for messages and the DOT dump. */
typedef struct host_branch {
  char stream[32];
} host_branch;

typedef struct host_ctx host_ctx;

/* An active capture: its origin stream and the streams that joined it.
 * It lives while a stream is in it: whoever holds ctx->lock, or the lock
 * of one of its streams, may use it. */
typedef struct host_capture {
  struct host_capture *next; /* in ctx->captures */
  cgr__stream *stream;       /* the origin: it began there and ends there */
  cgr__stream *streams;      /* all of them, through capture_peer (ctx->lock) */
  pthread_t thread;          /* thread-local mode: the thread that began it */
  uint64_t id;
  pthread_mutex_t lock; /* guards what follows */
  int invalidated;
  char reason[192];
  cgr__graph *graph;
} host_capture;

struct cgr__stream {
  host_ctx *ctx;
  struct cgr__stream *next; /* in ctx->streams */
  pthread_t thread;
  host_op *stop_op; /* allocated at create so destroy cannot fail */
  pthread_mutex_t lock;
  pthread_cond_t work_ready; /* the worker waits here for work */
  pthread_cond_t work_done;  /* synchronize waits here */
  host_op *head;
  host_op *tail;
  uint64_t submitted; /* ops enqueued */
  uint64_t completed; /* ops finished */
  /* Capture state, guarded by lock (capture_peer by ctx->lock): the
   * capture the stream is in, its own or one it joined; its branch there;
   * what its next captured node depends on. */
  host_capture *capture;
  struct cgr__stream *capture_peer;
  uint32_t branch;
  host_node_set frontier;
  cgr_stream_priority priority;
  char name[32];
};

struct cgr__event {
  pthread_mutex_t lock;
  pthread_cond_t done;
  uint64_t recorded;          /* sequence of the latest record issued */
  uint64_t completed;         /* highest sequence a worker has reached */
  uint64_t capture_id;        /* non-zero: last recorded during that capture */
  host_node_set record_point; /* then: the nodes a wait depends on */
  uint64_t host_pending;      /* a host record's sequence, until signalled */
  int timing;
  struct timespec completed_at;
  atomic_int refs; /* the owner plus each pending op */
};

/* Nodes in capture order: every dependency points to an earlier node. */
struct cgr__graph {
  host_node *nodes;
  size_t count;
  size_t capacity;
  host_branch *branches;
  uint32_t branch_count;
  uint32_t branch_capacity;
};

/* A branch of an exec while a launch runs it (host_branches.c). */
typedef struct host_branch_run host_branch_run;

struct cgr__graph_exec {
  host_node *nodes; /* copies: each owns its op and dependencies */
  size_t count;
  uint32_t branch_count;
  /* With several branches: each node's place in its branch, and each
   * branch's state in the launch that runs it (one at a time). */
  uint32_t *positions;
  host_branch_run *runs;
  pthread_mutex_t lock;
  pthread_cond_t done;
  uint64_t launched; /* tickets handed out */
  uint64_t finished; /* tickets run to completion */
  atomic_int refs;   /* the owner plus each pending launch */
};

struct host_ctx {
  cgr__error *err;
  host_device *device;
  pthread_mutex_t lock; /* guards captures and streams */
  host_capture *captures;
  cgr__stream *streams;
  atomic_uint_fast64_t next_capture_id;
};

/* host_device.c: the process's one host device, shared like a CUDA
 * context. */
/* Attaches ctx to the device (made on first use); *out NULL on failure. */
cgr_status cgr__host_device_acquire(host_ctx *ctx, cgr__error *err, int ordinal,
                                    host_device **out);
/* Detaches ctx; the last runtime's release frees the device. NULL-safe. */
void cgr__host_device_release(host_device *device, host_ctx *ctx);
/* Waits until every stream of every runtime on the device has run what
 * was submitted to it so far: what cudaFree waits for. */
void cgr__host_device_wait_idle(host_device *device);
/* Remembers [ptr, ptr + bytes) as memory of `kind`. */
cgr_status cgr__host_device_remember(host_device *device, cgr__error *err,
                                     const void *ptr, size_t bytes,
                                     cgr__memory_kind kind);
/* Forgets the allocation at ptr of `kind`; 0 when there was none. */
int cgr__host_device_forget(host_device *device, const void *ptr,
                            cgr__memory_kind kind);
/* The kind of memory the whole range lies in (one allocation). */
cgr__memory_kind cgr__host_device_kind_of(host_device *device, const void *ptr,
                                          size_t bytes);
/* Loses the device for every runtime (the first reason stays). */
void cgr__host_device_fault(host_device *device, const char *reason);
/* 1 once the device is lost. */
int cgr__host_device_faulted(host_device *device);
/* The flag cgr__host_device_fault raises, for cgr__backend.device_faulted. */
const _Atomic int *cgr__host_device_fault_flag(host_device *device);
/* 1 and the reason once the device is lost, else 0. */
int cgr__host_device_fault_reason(host_device *device, char *reason,
                                  size_t size);

/* host_backend.c */
host_op *cgr__host_op_new(host_ctx *ctx, host_op_kind kind, size_t args_size,
                          const char *func);
void cgr__host_op_free(host_op *op);
/* Runs one op on the calling thread (the worker, or a graph launch). */
void cgr__host_op_run(host_op *op);
/* Appends op to the stream's FIFO; the caller holds stream->lock. */
void cgr__host_enqueue_locked(cgr__stream *stream, host_op *op);
/* Appends op to the stream's FIFO, or to its capture's graph. */
cgr_status cgr__host_submit(host_ctx *ctx, cgr__stream *stream, host_op *op,
                            const char *func);
void cgr__host_event_release(cgr__event *event);

/* host_device.c: the backend table's memory entries. */
cgr_status cgr__host_device_alloc(void *ctx, size_t bytes, void **out);
void cgr__host_device_free(void *ctx, void *ptr);
cgr_status cgr__host_memory_kind(void *ctx, const void *ptr, size_t bytes,
                                 cgr__memory_kind *out);
cgr_status cgr__host_pinned_alloc(void *ctx, size_t bytes, void **out);
void cgr__host_pinned_free(void *ctx, void *ptr);

/* host_events.c: records the caller's host work completes. */
cgr_status cgr__host_event_record_host(void *ctx, cgr__event *event);
cgr_status cgr__host_event_signal_host(void *ctx, cgr__event *event);

/* host_graph.c: capture state and graph ops (the backend table's entries). */
cgr_status cgr__host_capture_begin(void *ctx, cgr__stream *stream);
cgr_status cgr__host_capture_end(void *ctx, cgr__stream *stream,
                                 cgr__graph **out);
int cgr__host_stream_is_capturing(void *ctx, cgr__stream *stream);
cgr_status cgr__host_graph_node_count(void *ctx, cgr__graph *graph,
                                      size_t *out);
void cgr__host_graph_destroy(void *ctx, cgr__graph *graph);
cgr_status cgr__host_graph_dump(void *ctx, cgr__graph *graph, const char *path);
cgr_status cgr__host_graph_instantiate(void *ctx, cgr__graph *graph,
                                       cgr__stream *upload_stream,
                                       cgr__graph_exec **out);
cgr_status cgr__host_graph_launch(void *ctx, cgr__graph_exec *exec,
                                  cgr__stream *stream);
void cgr__host_graph_exec_destroy(void *ctx, cgr__graph_exec *exec);
void cgr__host_graph_exec_run(cgr__graph_exec *exec, uint64_t ticket);
void cgr__host_graph_exec_release(cgr__graph_exec *exec);
/* Ends the capture the stream is in because the stream is going away: its
 * own capture is discarded, one it joined is invalidated. */
void cgr__host_capture_abandon(host_ctx *ctx, cgr__stream *stream);

/*
 * host_branches.c: a capture's streams and dependencies, and branched
 * launches. Locks are taken in this order: ctx->lock, stream->lock,
 * event->lock, capture->lock.
 */
/* Frees a set's storage; the set is empty afterwards. */
void cgr__host_set_fini(host_node_set *set);
/* Marks the capture invalid; the first reason stays. The caller keeps it
 * alive (holds ctx->lock or the lock of one of its streams) and does not
 * hold capture->lock. */
void cgr__host_capture_invalidate(host_capture *capture, const char *reason);
/* CGR_E_CAPTURE: `stream` is in `capture`, invalidated earlier. */
cgr_status cgr__host_capture_invalidated(cgr__stream *stream,
                                         host_capture *capture,
                                         const char *func);
/* Appends op as a node of the capture the stream is in (stream->lock
 * held). Takes op: frees it when it fails. */
cgr_status cgr__host_capture_append(cgr__stream *stream, host_op *op,
                                    const char *func);
/* A record on a capturing stream marks its frontier as the event's record
 * point; it runs nothing at replay (stream->lock held). */
cgr_status cgr__host_capture_record(cgr__stream *stream, cgr__event *event,
                                    const char *func);
/* A wait that involves a capture: the stream is in one, or the event was
 * last recorded in one (ctx->lock, stream->lock and event->lock held).
 * Joins the stream into the event's capture, adds the record point to its
 * frontier, or invalidates (isolation), as CUDA does. */
cgr_status cgr__host_capture_wait(host_ctx *ctx, cgr__stream *stream,
                                  cgr__event *event, const char *func);
/* Takes every stream out of the capture and it out of ctx->captures
 * (ctx->lock held, no stream lock); the origin's frontier moves to *ends. */
void cgr__host_capture_detach(host_ctx *ctx, host_capture *capture,
                              host_node_set *ends);
/* At the end: CGR_OK when every node of the ended capture is something
 * `ends` depends on; otherwise CGR_E_CAPTURE naming a stream whose work
 * was not joined back (cudaErrorStreamCaptureUnjoined). */
cgr_status cgr__host_capture_check_joined(host_ctx *ctx,
                                          const host_capture *capture,
                                          const host_node_set *ends,
                                          const char *func);
/* At instantiate: what a branched launch needs (nothing for one branch). */
cgr_status cgr__host_exec_plan_branches(host_ctx *ctx, cgr__graph_exec *exec,
                                        const char *func);
void cgr__host_exec_free_branches(cgr__graph_exec *exec);
/* Runs a graph of several branches: the origin's on the calling thread,
 * each other branch on a thread of its own, or on the calling thread in
 * capture order where its thread would not start. */
void cgr__host_exec_run_branches(cgr__graph_exec *exec);
/* For tests: while positive, starting a branch's thread fails (as
 * pthread_create can) and takes one off. */
extern atomic_int cgr__host_refuse_branch_threads;

/*
 * Capture rules, shared by both files. Each returns CGR_OK when the call may
 * go ahead, or CGR_E_CAPTURE after invalidating the offending capture(s).
 */
/* The calling thread may not allocate or synchronize the device while it
 * captures (thread-local capture mode). */
cgr_status cgr__host_check_thread_not_capturing(host_ctx *ctx, const char *what,
                                                const char *func);
/* The stream may not be synchronized, or receive a graph launch, while it
 * captures. */
cgr_status cgr__host_check_stream_not_capturing(host_ctx *ctx,
                                                cgr__stream *stream,
                                                const char *what,
                                                const char *func);

#endif /* CGR_RUNTIME_HOST_HOST_H */
