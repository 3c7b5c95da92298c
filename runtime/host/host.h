/*
 * The host backend's insides, shared by host_backend.c (streams, events,
 * memory, the worker loop) and host_graph.c (capture, graphs, launches).
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

/* One unit of stream work, or one node of a captured graph. Kernel
 * arguments are copied into `args` at launch, as CUDA copies parameters.
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

typedef struct host_ctx host_ctx;

/* An active capture of one stream. */
typedef struct host_capture {
  struct host_capture *next; /* in ctx->captures */
  cgr__stream *stream;
  pthread_t thread; /* thread-local mode: the thread that began it */
  uint64_t id;
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
  uint64_t submitted;    /* ops enqueued */
  uint64_t completed;    /* ops finished */
  host_capture *capture; /* non-NULL while capturing (guarded by lock) */
  cgr_stream_priority priority;
  char name[32];
};

struct cgr__event {
  pthread_mutex_t lock;
  pthread_cond_t done;
  uint64_t recorded;     /* sequence of the latest record issued */
  uint64_t completed;    /* highest sequence a worker has reached */
  uint64_t capture_id;   /* non-zero: last recorded during that capture */
  uint64_t host_pending; /* a host record's sequence, until signalled */
  int timing;
  struct timespec completed_at;
  atomic_int refs; /* the owner plus each pending op */
};

struct cgr__graph {
  host_op *head;
  host_op *tail;
  size_t count;
};

struct cgr__graph_exec {
  host_op **ops;
  size_t count;
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
