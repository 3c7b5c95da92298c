/*
 * Capture: size the shared scratch arena, then for every key (bucket
 * largest first, then tokens per request and variant) and buffer set, one
 * eager warm-up run of the step, the same step under stream capture,
 * instantiation and upload.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "capture/capture.h"
#include "kernels/fused_copy.h"
#include "runtime/alloc.h"
#include "runtime/nvtx.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The slot addresses a run of (key, set) sees. */
static void **slot_addresses(cgr_runtime *rt, const cgr__capture *cap,
                             size_t key, int set) {
  void **addresses =
      cgr__calloc(cap->slot_count ? cap->slot_count : 1, sizeof *addresses);
  if (addresses == NULL) {
    cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, "cgr_capture",
              "allocating the slot address table failed");
    return NULL;
  }
  for (size_t i = 0; i < cap->slot_count; ++i) {
    const cgr__slot *slot = &cap->slots[i];
    addresses[i] = slot->desc.kind == CGR_SLOT_CONSTANT
                       ? slot->constant_buffers[cgr__constant_index(cap, key)]
                       : slot->buffers[set];
  }
  return addresses;
}

/* "bucket 8", or "bucket 8, 4 tokens per request, variant 'lora'" where
 * a bucket has several keys. */
static void key_name(const cgr_runtime *rt, const cgr__capture *cap,
                     const cgr_key *key, char *out, size_t size) {
  if (cap->token_count * cap->variant_count == 1)
    snprintf(out, size, "bucket %u", key->padded_batch);
  else
    snprintf(out, size, "bucket %u, %u tokens per request, variant '%s'",
             key->padded_batch, key->tokens_per_request,
             cgr_variant_name(rt, key->variant));
}

/* Rewrites a failure inside the step as CGR_E_CAPTURE, keeping the step's
 * own message (which a later call would otherwise overwrite). */
static cgr_status step_failed(cgr_runtime *rt, const cgr__capture *cap,
                              cgr_status status, const char *message,
                              const char *phase, const cgr_key *key, int set) {
  char name[160];
  key_name(rt, cap, key, name, sizeof name);
  /* A lost device is not a capture problem: say so as it is. */
  return cgr__fail(&rt->error,
                   status == CGR_E_DEVICE_LOST ? status : CGR_E_CAPTURE,
                   "cgr_capture",
                   "%s, set %d: the step failed during %s (%s): %s", name, set,
                   phase, cgr_status_name(status), message);
}

/* The captured graph of one (key, set) and what recording it cost. */
typedef struct recording {
  cgr__graph *graph;
  cgr__graph_exec *exec;
  size_t nodes;
  double capture_ms;
  double instantiate_ms;
  uint64_t scratch_used;
  uint64_t collective_sig;
  uint32_t collectives;
} recording;

/* What a recording adds around the step: the in-graph mode's input copy
 * before it, or the pipelined mode's loads of the other set beside and
 * after it (cgr__capture_pipelined). */
typedef struct around {
  const cgr__copy_plan *prologue;
  int pipelined;
  int full; /* pipelined: the late load after the step */
} around;

/* The pipelined fork: the side stream joins the capture, and its load of
 * the other set's free part runs beside the step. The late part, when
 * the test switch drops its order, goes there too. */
static cgr_status pipe_fork(cgr_runtime *rt, cgr__capture *cap, int set,
                            const around *extra) {
  cgr__backend *be = &rt->backend;
  cgr__stream *main_stream = rt->streams[CGR_STREAM_MAIN];
  cgr__stream *side = rt->streams[CGR_STREAM_SIDE];
  const int other = (set + 1) % CGR__SETS;
  CGR__CHECK(cgr__be_event_record(be, cap->pipe_fork, main_stream));
  CGR__CHECK(cgr__be_stream_wait_event(be, side, cap->pipe_fork));
  cgr_status status = cgr__plan_load_launch(be, side, cap->pipe_areas[other][0],
                                            cap->pipe_grid);
  if (status == CGR_OK && extra->full && cap->test_pipe_unordered)
    status = cgr__plan_load_launch(be, side, cap->pipe_areas[other][1],
                                   cap->pipe_grid);
  /* Recorded whatever the load did: the join lets the capture end. */
  cgr_status joined = cgr__be_event_record(be, cap->pipe_join, side);
  return status != CGR_OK ? status : joined;
}

/* The pipelined join: the step's stream waits for the branch, then runs
 * the late part of the load, which follows the step and its feeds. */
static cgr_status pipe_join(cgr_runtime *rt, cgr__capture *cap, int set,
                            const around *extra) {
  cgr__backend *be = &rt->backend;
  cgr__stream *main_stream = rt->streams[CGR_STREAM_MAIN];
  CGR__CHECK(cgr__be_stream_wait_event(be, main_stream, cap->pipe_join));
  if (!extra->full || cap->test_pipe_unordered)
    return CGR_OK;
  return cgr__plan_load_launch(be, main_stream,
                               cap->pipe_areas[(set + 1) % CGR__SETS][1],
                               cap->pipe_grid);
}

/*
 * Captures the step of (key, set) on the main stream, with what `extra`
 * adds around it (NULL: nothing), and instantiates it.
 */
static cgr_status record(cgr_runtime *rt, cgr__capture *cap, size_t index,
                         int set, void *const *addresses, const around *extra,
                         recording *out) {
  cgr__backend *be = &rt->backend;
  cgr__stream *stream = rt->streams[CGR_STREAM_MAIN];
  cgr_key key = cgr__key_at(cap, index);
  uint32_t padded_batch = key.padded_batch;
  char message[CGR__ERROR_MESSAGE_SIZE];
  cgr_step step;
  memset(out, 0, sizeof *out);

  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_CAPTURE, padded_batch);
  double start = now_ms();
  cgr__step_init(&step, rt, &key, set, addresses, cap->slot_count,
                 CGR__SCRATCH_ARENA);
  step.capturing = 1;
  cgr_status status = cgr__be_capture_begin(be, stream);
  if (status != CGR_OK) {
    CGR__NVTX_POP(rt->config.nvtx);
    return status;
  }
  cgr_status step_status = CGR_OK;
  int forked = 0;
  if (extra != NULL && extra->prologue != NULL)
    step_status = cgr__fused_copy_launch(be, stream, extra->prologue);
  if (extra != NULL && extra->pipelined) {
    step_status = pipe_fork(rt, cap, set, extra);
    forked = 1;
  }
  if (step_status == CGR_OK)
    step_status = cgr__step_run(cap, &step);
  /* Feedback: the graph ends by writing each fed output into the input of
   * the other buffer set, which the next step uses. */
  for (size_t i = 0; i < cap->slot_count && step_status == CGR_OK; ++i) {
    const cgr__slot *input = &cap->slots[i];
    if (input->fed_by < 0)
      continue;
    step_status =
        cgr__be_memcpy_async(be, stream, input->buffers[(set + 1) % CGR__SETS],
                             cap->slots[input->fed_by].buffers[set],
                             cgr__slot_rows(input, padded_batch,
                                            key.tokens_per_request) *
                                 input->row_bytes);
  }
  if (forked) {
    /* Joined even after a failure, so the side stream leaves the
     * capture with it. */
    cgr_status joined = pipe_join(rt, cap, set, extra);
    if (step_status == CGR_OK)
      step_status = joined;
  }
  snprintf(message, sizeof message, "%s", rt->error.message);
  /* End the capture whatever the step did: the stream must leave capture
   * mode for the runtime to stay usable. */
  cgr__graph *graph = NULL;
  cgr_status end_status = cgr__be_capture_end(be, stream, &graph);
  double captured = now_ms();
  CGR__NVTX_POP(rt->config.nvtx);
  if (step_status != CGR_OK) {
    cgr__be_graph_destroy(be, graph);
    return step_failed(rt, cap, step_status, message, "capture", &key, set);
  }
  if (end_status != CGR_OK) {
    char name[160];
    key_name(rt, cap, &key, name, sizeof name);
    snprintf(message, sizeof message, "%s", rt->error.message);
    /* A device lost while the capture was open (earlier work faulted) is
     * the loss, not a fault of the step or of its capture. */
    if (end_status == CGR_E_DEVICE_LOST)
      return cgr__fail(&rt->error, end_status, "cgr_capture",
                       "%s, set %d: the device was lost during the "
                       "capture: %s",
                       name, set, message);
    return cgr__fail(&rt->error, CGR_E_CAPTURE, "cgr_capture",
                     "%s, set %d: the capture failed (did the step "
                     "synchronize, allocate or wait on outside work?): %s",
                     name, set, message);
  }

  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_INSTANTIATE, padded_batch);
  status = cgr__be_graph_node_count(be, graph, &out->nodes);
  if (status == CGR_OK)
    status = cgr__be_graph_instantiate(be, graph, stream, &out->exec);
  CGR__NVTX_POP(rt->config.nvtx);
  if (status != CGR_OK) {
    cgr__be_graph_destroy(be, graph);
    return status;
  }
  out->graph = graph;
  out->capture_ms = captured - start;
  out->instantiate_ms = now_ms() - captured;
  out->scratch_used = step.scratch_used;
  out->collective_sig = step.collective_sig;
  out->collectives = step.collectives;
  return CGR_OK;
}

/* One warm-up and one capture of (key, set), then instantiate. */
static cgr_status capture_set(cgr_runtime *rt, cgr__capture *cap, size_t index,
                              int set, void *const *addresses) {
  cgr__keyed *bucket = &cap->keys[index];
  cgr_key key = bucket->stats.key;
  cgr_step step;

  /* Warm-up: the step runs for real once, so lazy initialization in user
   * code (cuBLAS handles, first-touch allocations) happens outside the
   * capture; not once the sets are live (capture.h, sets_live). */
  cgr__step_init(&step, rt, &key, set, addresses, cap->slot_count,
                 CGR__SCRATCH_ARENA);
  cgr_status status = CGR_OK;
  if (!cap->sets_live) {
    status = cgr__step_run(cap, &step);
    if (status == CGR_OK)
      status = cgr__be_stream_synchronize(&rt->backend,
                                          rt->streams[CGR_STREAM_MAIN]);
  }
  if (status != CGR_OK) {
    char message[CGR__ERROR_MESSAGE_SIZE];
    snprintf(message, sizeof message, "%s", rt->error.message);
    return step_failed(rt, cap, status, message, "its warm-up run", &key, set);
  }
  recording r;
  CGR__CHECK(record(rt, cap, index, set, addresses, NULL, &r));
  uint64_t used =
      step.scratch_used > r.scratch_used ? step.scratch_used : r.scratch_used;
  if (used > bucket->stats.scratch_bytes)
    bucket->stats.scratch_bytes = used;
  bucket->graphs[set] = r.graph;
  bucket->execs[set] = r.exec;
  bucket->stats.nodes[set] = r.nodes;
  bucket->stats.capture_ms[set] = r.capture_ms;
  bucket->stats.instantiate_ms[set] = r.instantiate_ms;
  bucket->collective_sig[set] = r.collective_sig;
  bucket->collectives[set] = r.collectives;
  return CGR_OK;
}

cgr_status cgr__capture_in_graph(cgr_runtime *rt, size_t index, int set,
                                 const cgr__copy_plan *prologue,
                                 cgr__graph_exec **out) {
  *out = NULL;
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  if (index >= cap->key_count || !cap->keys[index].stats.captured)
    return cgr__fail(&rt->error, CGR_E_INTERNAL, __func__,
                     "key %zu is not captured", index);
  cgr__keyed *bucket = &cap->keys[index];
  if (bucket->in_graph_execs[set] != NULL) {
    *out = bucket->in_graph_execs[set];
    return CGR_OK;
  }
  void **addresses = slot_addresses(rt, cap, index, set);
  if (addresses == NULL)
    return CGR_E_OUT_OF_MEMORY;
  around extra = {.prologue = prologue};
  recording r;
  cgr_status status = record(rt, cap, index, set, addresses, &extra, &r);
  cgr__free(addresses);
  CGR__CHECK(status);
  bucket->in_graphs[set] = r.graph;
  bucket->in_graph_execs[set] = r.exec;
  *out = r.exec;
  return CGR_OK;
}

cgr_status cgr__pipe_areas(cgr_runtime *rt, cgr__capture *cap) {
  if (cap->pipe_join != NULL)
    return CGR_OK;
  cgr__backend *be = &rt->backend;
  /* The largest plan: per input slot, a run of rows per operation (a
   * feedback that moves every other row) and a padding fill; its tiles,
   * every destination byte once plus a partial tile per operation. */
  uint32_t largest = cgr__largest_bucket(cap), most = cgr__largest_tokens(cap);
  size_t capacity = 0;
  uint64_t tiles = 0;
  for (size_t i = 0; i < cap->slot_count; ++i) {
    const cgr__slot *slot = &cap->slots[i];
    if (slot->desc.kind != CGR_SLOT_ROWS && slot->desc.kind != CGR_SLOT_PREFIX)
      continue;
    uint64_t ops = cgr__slot_rows(slot, largest, most) + 2;
    capacity += (size_t)ops;
    tiles +=
        cgr__slot_bytes_for(slot, largest, most) / CGR__COPY_TILE_BYTES + ops;
  }
  if (capacity == 0)
    capacity = 1;
  cgr_status status = CGR_OK;
  for (int set = 0; set < CGR__SETS && status == CGR_OK; ++set)
    for (int part = 0; part < 2 && status == CGR_OK; ++part) {
      status = cgr__be_pinned_alloc(be, (size_t)cgr__plan_area_bytes(capacity),
                                    &cap->pipe_areas[set][part]);
      /* Empty until a step writes it. */
      if (status == CGR_OK)
        memset(cap->pipe_areas[set][part], 0, sizeof(cgr__fused_copy_header));
    }
  if (status == CGR_OK)
    status = cgr__be_event_create(be, 0, &cap->pipe_fork);
  if (status == CGR_OK)
    status = cgr__be_event_create(be, 0, &cap->pipe_join);
  if (status != CGR_OK) {
    for (int set = 0; set < CGR__SETS; ++set)
      for (int part = 0; part < 2; ++part) {
        cgr__be_pinned_free(be, cap->pipe_areas[set][part]);
        cap->pipe_areas[set][part] = NULL;
      }
    cgr__be_event_destroy(be, cap->pipe_fork);
    cap->pipe_fork = NULL;
    return status;
  }
  cap->pipe_capacity = capacity;
  cap->pipe_grid = cgr__plan_load_grid(tiles);
  return CGR_OK;
}

cgr_status cgr__capture_pipelined(cgr_runtime *rt, size_t index, int set,
                                  int full, cgr__graph_exec **out) {
  *out = NULL;
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  if (index >= cap->key_count || !cap->keys[index].stats.captured)
    return cgr__fail(&rt->error, CGR_E_INTERNAL, __func__,
                     "key %zu is not captured", index);
  cgr__keyed *bucket = &cap->keys[index];
  full = full != 0;
  if (bucket->pipe_execs[set][full] != NULL) {
    *out = bucket->pipe_execs[set][full];
    return CGR_OK;
  }
  CGR__CHECK(cgr__pipe_areas(rt, cap));
  void **addresses = slot_addresses(rt, cap, index, set);
  if (addresses == NULL)
    return CGR_E_OUT_OF_MEMORY;
  around extra = {.pipelined = 1, .full = full};
  recording r;
  cgr_status status = record(rt, cap, index, set, addresses, &extra, &r);
  cgr__free(addresses);
  CGR__CHECK(status);
  bucket->pipe_graphs[set][full] = r.graph;
  bucket->pipe_execs[set][full] = r.exec;
  *out = r.exec;
  return CGR_OK;
}

static void forget_key(cgr_runtime *rt, cgr__keyed *bucket) {
  for (int set = 0; set < CGR__SETS; ++set) {
    cgr__be_graph_exec_destroy(&rt->backend, bucket->execs[set]);
    cgr__be_graph_destroy(&rt->backend, bucket->graphs[set]);
    cgr__be_graph_exec_destroy(&rt->backend, bucket->in_graph_execs[set]);
    cgr__be_graph_destroy(&rt->backend, bucket->in_graphs[set]);
    bucket->execs[set] = NULL;
    bucket->graphs[set] = NULL;
    bucket->in_graph_execs[set] = NULL;
    bucket->in_graphs[set] = NULL;
    for (int full = 0; full < 2; ++full) {
      cgr__be_graph_exec_destroy(&rt->backend, bucket->pipe_execs[set][full]);
      cgr__be_graph_destroy(&rt->backend, bucket->pipe_graphs[set][full]);
      bucket->pipe_execs[set][full] = NULL;
      bucket->pipe_graphs[set][full] = NULL;
    }
    bucket->collective_sig[set] = 0;
    bucket->collectives[set] = 0;
  }
  cgr_key key = bucket->stats.key;
  memset(&bucket->stats, 0, sizeof bucket->stats);
  bucket->stats.key = key;
}

/* Writes the constants of key `index` (those of its bucket and tokens
 * value, which every variant shares). */
static cgr_status upload_constants(cgr_runtime *rt, const cgr__capture *cap,
                                   size_t index) {
  cgr_key key = cgr__key_at(cap, index);
  size_t constant = cgr__constant_index(cap, index);
  for (size_t i = 0; i < cap->slot_count; ++i)
    if (cap->slots[i].desc.kind == CGR_SLOT_CONSTANT &&
        cap->slots[i].constant_buffers[constant] != NULL)
      CGR__CHECK(
          cgr__constant_upload(rt, &cap->slots[i], &key,
                               cap->slots[i].constant_buffers[constant]));
  return CGR_OK;
}

/* Captures both sets of one key; on failure leaves it as it was. */
static cgr_status capture_one(cgr_runtime *rt, cgr__capture *cap,
                              size_t index) {
  cgr__keyed *bucket = &cap->keys[index];
  if (bucket->stats.captured)
    return CGR_OK;
  cgr_status status = upload_constants(rt, cap, index);
  for (int set = 0; set < CGR__SETS && status == CGR_OK; ++set) {
    void **addresses = slot_addresses(rt, cap, index, set);
    if (addresses == NULL)
      status = CGR_E_OUT_OF_MEMORY;
    else
      status = capture_set(rt, cap, index, set, addresses);
    cgr__free(addresses);
  }
  if (status != CGR_OK) {
    forget_key(rt, bucket);
    return status;
  }
  bucket->stats.captured = 1;
  if (bucket->stats.scratch_bytes > cap->arena_peak)
    cap->arena_peak = bucket->stats.scratch_bytes;
  return CGR_OK;
}

/* One eager run of (largest bucket, tokens value, variant) with its own
 * allocations: the scratch that key's step uses, in *used. */
static cgr_status sizing_run(cgr_runtime *rt, cgr__capture *cap, size_t index,
                             uint64_t *used) {
  cgr_key key = cgr__key_at(cap, index);
  void **addresses = slot_addresses(rt, cap, index, 0);
  if (addresses == NULL)
    return CGR_E_OUT_OF_MEMORY;
  cgr_step step;
  cgr__step_init(&step, rt, &key, 0, addresses, cap->slot_count,
                 CGR__SCRATCH_OWN);
  cgr_status status = upload_constants(rt, cap, index);
  char message[CGR__ERROR_MESSAGE_SIZE];
  if (status == CGR_OK) {
    status = cgr__step_run(cap, &step);
    snprintf(message, sizeof message, "%s", rt->error.message);
    cgr_status sync =
        cgr__be_stream_synchronize(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
    if (status == CGR_OK && sync != CGR_OK) {
      status = sync;
      snprintf(message, sizeof message, "%s", rt->error.message);
    }
    if (status != CGR_OK)
      status = step_failed(rt, cap, status, message, "the arena sizing run",
                           &key, 0);
  }
  /* The step's own scratch is freed only once no work can use it. */
  cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
  cgr__step_release(&step);
  cgr__free(addresses);
  *used = step.scratch_used;
  return status;
}

/* The arena every key shares, sized by the largest step: one run of the
 * largest bucket for every tokens value and variant (a key's step may
 * need more scratch with more tokens, or in another variant: the arena is
 * the most any of them used, never a sum). */
static cgr_status size_arena(cgr_runtime *rt, cgr__capture *cap) {
  uint64_t usable = rt->config.scratch_bytes;
  if (usable == 0) {
    size_t per_bucket = cap->token_count * cap->variant_count;
    size_t first = cap->key_count - per_bucket;
    for (size_t index = first; index < cap->key_count; ++index) {
      uint64_t used = 0;
      CGR__CHECK(sizing_run(rt, cap, index, &used));
      if (used > usable)
        usable = used;
    }
  }
  cap->arena_bytes = usable;
  if (usable == 0)
    return CGR_OK;
  CGR__CHECK(cgr__be_device_alloc(&rt->backend, cgr__arena_bytes_for(usable),
                                  &cap->arena));
  cap->arena_base = cgr__arena_base(cap->arena);
  return CGR_OK;
}

static void forget_capture(cgr_runtime *rt, cgr__capture *cap) {
  /* A failed warm-up may have left work queued that uses the arena. */
  cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
  for (size_t i = 0; i < cap->key_count; ++i)
    forget_key(rt, &cap->keys[i]);
  cgr__be_device_free(&rt->backend, cap->arena);
  cap->arena = cap->arena_base = NULL;
  cap->arena_bytes = cap->arena_peak = 0;
  cap->step = NULL;
  cap->user = NULL;
}

cgr_status cgr_capture(cgr_runtime *rt, cgr_step_fn step, void *user) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  if (step == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'step' is NULL");
  cgr__capture *cap = NULL;
  CGR__CHECK(cgr__capture_state(rt, &cap));
  if (cap->step != NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "this runtime has already captured its step");
  cap->step = step;
  cap->user = user;
  cgr_status status = size_arena(rt, cap);
  if (!rt->config.lazy_capture) {
    /* Largest first: the arena was sized for it, and a smaller bucket that
     * needs more fails early with a clear message. */
    for (size_t i = cap->key_count; i-- > 0 && status == CGR_OK;)
      status = capture_one(rt, cap, i);
  }
  if (status != CGR_OK)
    forget_capture(rt, cap);
  return status;
}

/* The capture state and the index of bucket `padded_batch`, or a message
 * saying it is not a bucket. */
static cgr_status find_bucket(cgr_runtime *rt, uint32_t padded_batch,
                              const char *func, cgr__capture **cap,
                              long *index) {
  CGR__CHECK(cgr__capture_state(rt, cap));
  *index = cgr__bucket_index(*cap, padded_batch);
  if (*index < 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "%u is not a bucket", padded_batch);
  return CGR_OK;
}

/* The capture state and the index of `key`, or a message naming the
 * field that is not the runtime's. */
static cgr_status find_key(cgr_runtime *rt, const cgr_key *key,
                           const char *func, cgr__capture **cap,
                           size_t *index) {
  CGR__CHECK(cgr__capture_state(rt, cap));
  return cgr__key_find(rt, *cap, key, func, index);
}

/* The keys of bucket `index`: [*first, *first + per bucket). */
static size_t first_key(const cgr__capture *cap, long bucket) {
  return (size_t)bucket * cap->token_count * cap->variant_count;
}

static cgr_status need_step(cgr_runtime *rt, const cgr__capture *cap,
                            const char *func) {
  if (cap->step == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, func,
                     "no step registered: call cgr_capture() first");
  return CGR_OK;
}

cgr_status cgr_capture_bucket(cgr_runtime *rt, uint32_t padded_batch) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__capture *cap = NULL;
  long index = -1;
  CGR__CHECK(find_bucket(rt, padded_batch, __func__, &cap, &index));
  CGR__CHECK(need_step(rt, cap, __func__));
  size_t first = first_key(cap, index);
  for (size_t k = first; k < first + cap->token_count * cap->variant_count; ++k)
    CGR__CHECK(capture_one(rt, cap, k));
  return CGR_OK;
}

cgr_status cgr_capture_key(cgr_runtime *rt, const cgr_key *key) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__capture *cap = NULL;
  size_t index = 0;
  CGR__CHECK(find_key(rt, key, __func__, &cap, &index));
  CGR__CHECK(need_step(rt, cap, __func__));
  return capture_one(rt, cap, index);
}

cgr_status cgr__capture_key_index(cgr_runtime *rt, size_t index) {
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  CGR__CHECK(need_step(rt, cap, "cgr_replay"));
  return capture_one(rt, cap, index);
}

cgr_status cgr__capture_collectives(cgr_runtime *rt, size_t index, int set,
                                    uint64_t *sig, uint32_t *count) {
  if (sig == NULL || count == NULL || (set != 0 && set != 1))
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument '%s' is %s",
                     sig == NULL     ? "sig"
                     : count == NULL ? "count"
                                     : "set",
                     sig == NULL || count == NULL ? "NULL" : "not 0 or 1");
  *sig = 0;
  *count = 0;
  cgr__capture *cap = NULL;
  CGR__CHECK(cgr__capture_state(rt, &cap));
  if (index >= cap->key_count)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "key %zu is not a key (the runtime has %zu)", index,
                     cap->key_count);
  const cgr__keyed *keyed = &cap->keys[index];
  if (!keyed->stats.captured)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "key %zu (bucket %u) is not captured", index,
                     keyed->stats.key.padded_batch);
  *sig = keyed->collective_sig[set];
  *count = keyed->collectives[set];
  return CGR_OK;
}

/* ---- stats and dumps ----------------------------------------------------- */

cgr_status cgr_bucket_stats_get(const cgr_runtime *rt, uint32_t padded_batch,
                                cgr_bucket_stats *out) {
  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (rt == NULL || out == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__capture *cap = NULL;
  long index = -1;
  CGR__CHECK(
      find_bucket((cgr_runtime *)rt, padded_batch, __func__, &cap, &index));
  size_t first = first_key(cap, index),
         count = cap->token_count * cap->variant_count;
  out->padded_batch = padded_batch;
  out->captured = 1;
  for (size_t k = first; k < first + count; ++k) {
    const cgr_key_stats *stats = &cap->keys[k].stats;
    out->captured &= stats->captured;
    for (int set = 0; set < CGR__SETS; ++set) {
      if (stats->nodes[set] > out->nodes[set])
        out->nodes[set] = stats->nodes[set];
      if (stats->capture_ms[set] > out->capture_ms[set])
        out->capture_ms[set] = stats->capture_ms[set];
      if (stats->instantiate_ms[set] > out->instantiate_ms[set])
        out->instantiate_ms[set] = stats->instantiate_ms[set];
    }
    if (stats->scratch_bytes > out->scratch_bytes)
      out->scratch_bytes = stats->scratch_bytes;
  }
  return CGR_OK;
}

cgr_status cgr_key_stats_get(const cgr_runtime *rt, const cgr_key *key,
                             cgr_key_stats *out) {
  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr_runtime *mutable_rt = (cgr_runtime *)rt;
  if (out == NULL)
    return cgr__fail(&mutable_rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'out' is NULL");
  cgr__capture *cap = NULL;
  size_t index = 0;
  CGR__CHECK(find_key(mutable_rt, key, __func__, &cap, &index));
  *out = cap->keys[index].stats;
  return CGR_OK;
}

cgr_status cgr_capture_stats_get(const cgr_runtime *rt,
                                 cgr_capture_stats *out) {
  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (rt == NULL || out == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__capture *cap = NULL;
  CGR__CHECK(cgr__capture_state((cgr_runtime *)rt, &cap));
  size_t per_bucket = cap->token_count * cap->variant_count;
  out->buckets = cap->bucket_count;
  out->keys = cap->key_count;
  for (size_t b = 0; b < cap->bucket_count; ++b) {
    size_t captured = 0;
    for (size_t k = b * per_bucket; k < (b + 1) * per_bucket; ++k)
      captured += cap->keys[k].stats.captured != 0;
    out->keys_captured += captured;
    out->buckets_captured += captured == per_bucket;
  }
  out->graphs = out->keys_captured * CGR__SETS;
  out->arena_bytes = cap->arena_bytes;
  out->arena_peak = cap->arena_peak;
  out->slot_bytes = cap->slot_bytes;
  out->eager_runs = cap->eager_runs;
  return CGR_OK;
}

/* Both dumps: the arguments, then key `index`'s graph of `set`. */
static cgr_status dump(cgr_runtime *rt, const cgr__capture *cap, size_t index,
                       int set, const char *path, const char *func) {
  if (path == NULL || (set != 0 && set != 1))
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     path == NULL ? "argument 'path' is NULL"
                                  : "argument 'set' is not 0 or 1");
  const cgr__keyed *keyed = &cap->keys[index];
  if (!keyed->stats.captured) {
    char name[160];
    key_name(rt, cap, &keyed->stats.key, name, sizeof name);
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, func,
                     "%s is not captured", name);
  }
  return cgr__be_graph_dump(&rt->backend, keyed->graphs[set], path);
}

cgr_status cgr_graph_dump_key(cgr_runtime *rt, const cgr_key *key, int set,
                              const char *path) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__capture *cap = NULL;
  size_t index = 0;
  CGR__CHECK(find_key(rt, key, __func__, &cap, &index));
  return dump(rt, cap, index, set, path, __func__);
}

cgr_status cgr_graph_dump(cgr_runtime *rt, uint32_t padded_batch, int set,
                          const char *path) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__capture *cap = NULL;
  long bucket = -1;
  CGR__CHECK(find_bucket(rt, padded_batch, __func__, &cap, &bucket));
  return dump(rt, cap, first_key(cap, bucket), set, path, __func__);
}
