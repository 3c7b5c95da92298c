/* What a step function sees: its bucket, its slots, scratch memory, and the
 * stream it enqueues on (always the runtime's main stream). */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "capture/capture.h"
#include "runtime/alloc.h"
#include "runtime/collective.h"

/* Scratch requests are aligned to at most this; the arena is allocated
 * with this much slack so an aligned base can be chosen. */
enum { MAX_SCRATCH_ALIGN = 4096, DEFAULT_SCRATCH_ALIGN = 256 };

/* Keeps the run's first failure (cgr_step.failed). */
static cgr_status noted(cgr_step *step, cgr_status status) {
  if (status != CGR_OK && step->failed == CGR_OK) {
    step->failed = status;
    snprintf(step->failed_message, sizeof step->failed_message, "%s",
             step->rt->error.message);
  }
  return status;
}

void cgr__step_init(cgr_step *step, cgr_runtime *rt, const cgr_key *key,
                    int set, void *const *slot_addresses, size_t slot_count,
                    cgr__scratch_mode mode) {
  memset(step, 0, sizeof *step);
  step->rt = rt;
  step->padded_batch = key->padded_batch;
  step->tokens = key->tokens_per_request;
  step->variant = key->variant;
  step->set = set;
  step->slot_addresses = slot_addresses;
  step->slot_count = slot_count;
  step->scratch_mode = mode;
}

void cgr__step_release(cgr_step *step) {
  /* An eager run's scratch stays in the cache for the next run. */
  for (size_t i = 0; i < step->own_count && step->eager_cache == NULL; ++i)
    cgr__be_device_free(&step->rt->backend, step->own[i]);
  cgr__free(step->own);
  step->own = NULL;
  step->own_count = step->own_capacity = 0;
}

cgr_status cgr__step_run(cgr__capture *cap, cgr_step *step) {
  cgr__error_clear(&step->rt->error);
  cgr_status status = cap->step(step, cap->user);
  if (status == CGR_OK && step->failed != CGR_OK)
    return cgr__fail(&step->rt->error, step->failed, "step",
                     "the step function returned CGR_OK after a cgr call "
                     "in it failed: %s",
                     step->failed_message);
  if (status != CGR_OK && step->rt->error.message[0] == '\0')
    cgr__fail(&step->rt->error, status, "step",
              "the step function returned %s without a cgr message",
              cgr_status_name(status));
  return status;
}

uint32_t cgr_step_padded_batch(const cgr_step *step) {
  return step ? step->padded_batch : 0;
}

uint32_t cgr_step_tokens_per_request(const cgr_step *step) {
  return step ? step->tokens : 0;
}

uint32_t cgr_step_variant(const cgr_step *step) {
  return step ? step->variant : 0;
}

int cgr_step_buffer_set(const cgr_step *step) { return step ? step->set : 0; }

int cgr_step_is_capturing(const cgr_step *step) {
  return step ? step->capturing : 0;
}

cgr_runtime *cgr_step_runtime(const cgr_step *step) {
  return step ? step->rt : NULL;
}

void *cgr_step_slot(const cgr_step *step, cgr_slot slot) {
  if (step == NULL || slot < 0 || (size_t)slot >= step->slot_count)
    return NULL;
  return step->slot_addresses[slot];
}

static uint64_t align_up(uint64_t value, uint64_t align) {
  return (value + align - 1) & ~(align - 1);
}

static cgr_status scratch(cgr_step *step, size_t bytes, size_t align,
                          void **out) {
  if (out != NULL)
    *out = NULL;
  if (step == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr_runtime *rt = step->rt;
  if (out == NULL || bytes == 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_step_scratch",
                     "argument '%s' is %s", out == NULL ? "out" : "bytes",
                     out == NULL ? "NULL" : "0");
  if (align == 0)
    align = DEFAULT_SCRATCH_ALIGN;
  if ((align & (align - 1)) != 0 || align > MAX_SCRATCH_ALIGN)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_step_scratch",
                     "argument 'align' is %zu: a power of two up to %d", align,
                     MAX_SCRATCH_ALIGN);
  uint64_t offset = align_up(step->scratch_used, align);
  if (step->scratch_mode == CGR__SCRATCH_ARENA) {
    cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
    if (offset + bytes > cap->arena_bytes)
      return cgr__fail(&rt->error, CGR_E_DEVICE_OUT_OF_MEMORY,
                       "cgr_step_scratch",
                       "bucket %u needs more scratch than the arena holds: "
                       "%zu bytes at offset %llu of %llu (was the arena "
                       "sized by config->scratch_bytes, or does a smaller "
                       "bucket need more than the largest?)",
                       step->padded_batch, bytes, (unsigned long long)offset,
                       (unsigned long long)cap->arena_bytes);
    step->scratch_used = offset + bytes;
    *out = (unsigned char *)cap->arena_base + offset;
    return CGR_OK;
  }
  /* Own allocations: counted as if carved from an arena, so the sizing run
   * measures exactly what an arena must hold for the same requests. */
  if (step->eager_cache != NULL) {
    void *memory = NULL;
    CGR__CHECK(cgr__eager_scratch(rt, step->eager_cache, step->own_count,
                                  bytes + align, &memory));
    step->own_count++;
    step->scratch_used = offset + bytes;
    *out = (void *)(uintptr_t)align_up((uint64_t)(uintptr_t)memory, align);
    return CGR_OK;
  }
  if (step->own_count == step->own_capacity) {
    size_t capacity = step->own_capacity ? step->own_capacity * 2 : 16;
    void **own = cgr__calloc(capacity, sizeof *own);
    if (own == NULL)
      return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, "cgr_step_scratch",
                       "growing the scratch list failed");
    if (step->own_count > 0)
      memcpy(own, step->own, step->own_count * sizeof *own);
    cgr__free(step->own);
    step->own = own;
    step->own_capacity = capacity;
  }
  void *memory = NULL;
  CGR__CHECK(cgr__be_device_alloc(&rt->backend, bytes + align, &memory));
  step->own[step->own_count++] = memory;
  step->scratch_used = offset + bytes;
  *out = (void *)(uintptr_t)align_up((uint64_t)(uintptr_t)memory, align);
  return CGR_OK;
}

cgr_status cgr_step_scratch(cgr_step *step, size_t bytes, size_t align,
                            void **out) {
  cgr_status status = scratch(step, bytes, align, out);
  return step != NULL ? noted(step, status) : status;
}

/* The slack lets requests aligned to up to MAX_SCRATCH_ALIGN find the same
 * offsets from an aligned base as they did in the sizing run. */
uint64_t cgr__arena_bytes_for(uint64_t used) {
  return used == 0 ? 0 : used + MAX_SCRATCH_ALIGN;
}

void *cgr__arena_base(void *allocation) {
  return (void *)(uintptr_t)align_up((uint64_t)(uintptr_t)allocation,
                                     MAX_SCRATCH_ALIGN);
}

cgr_status cgr_step_launch(cgr_step *step, const cgr_kernel *kernel,
                           const void *args) {
  if (step == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return noted(step, cgr__be_kernel_launch(&step->rt->backend,
                                           step->rt->streams[CGR_STREAM_MAIN],
                                           kernel, args));
}

cgr_status cgr_step_memcpy(cgr_step *step, void *dst, const void *src,
                           size_t bytes) {
  if (step == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return noted(step, cgr__be_memcpy_async(&step->rt->backend,
                                          step->rt->streams[CGR_STREAM_MAIN],
                                          dst, src, bytes));
}

cgr_status cgr_step_memset(cgr_step *step, void *dst, int value, size_t bytes) {
  if (step == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return noted(step, cgr__be_memset_async(&step->rt->backend,
                                          step->rt->streams[CGR_STREAM_MAIN],
                                          dst, value, bytes));
}

cgr_status cgr_step_host_func(cgr_step *step, void (*fn)(void *user),
                              void *user) {
  if (step == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return noted(step,
               cgr__be_host_func(&step->rt->backend,
                                 step->rt->streams[CGR_STREAM_MAIN], fn, user));
}

/* ---- collectives ---------------------------------------------------------
 */

int cgr_step_rank(const cgr_step *step) {
  return step != NULL && step->rt->comm != NULL ? step->rt->rank : 0;
}

int cgr_step_ranks(const cgr_step *step) {
  return step != NULL && step->rt->comm != NULL ? step->rt->comm->ranks : 1;
}

static const char *collective_func(cgr__coll_kind kind) {
  return kind == CGR__COLL_ALL_REDUCE   ? "cgr_step_all_reduce"
         : kind == CGR__COLL_ALL_GATHER ? "cgr_step_all_gather"
                                        : "cgr_step_broadcast";
}

/* FNV-1a over the call's kind, count, dtype, op and root, chained from the
 * run's signature so far: equal only for the same calls in the same order
 * (up to a hash collision). */
static uint64_t signature_add(uint64_t sig, const cgr__collective *c) {
  uint64_t fields[5] = {(uint64_t)c->kind, (uint64_t)c->count,
                        (uint64_t)c->dtype,
                        c->kind == CGR__COLL_ALL_REDUCE ? (uint64_t)c->op : 0,
                        c->kind == CGR__COLL_BROADCAST ? (uint64_t)c->root : 0};
  uint64_t hash = sig != 0 ? sig : 14695981039346656037ull;
  for (size_t f = 0; f < sizeof fields / sizeof fields[0]; ++f)
    for (int byte = 0; byte < 8; ++byte) {
      hash ^= (fields[f] >> (8 * byte)) & 0xff;
      hash *= 1099511628211ull;
    }
  return hash;
}

/* Where a buffer argument is not device memory of the runtime, why. */
static cgr_status check_device(cgr_runtime *rt, const char *func,
                               const char *name, const void *ptr,
                               size_t bytes) {
  cgr__memory_kind kind = CGR__MEMORY_OTHER;
  CGR__CHECK(cgr__be_memory_kind(&rt->backend, ptr, bytes, &kind));
  if (kind == CGR__MEMORY_DEVICE)
    return CGR_OK;
  return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                   "argument '%s' (%p, %zu bytes) is %s, not device memory "
                   "of this runtime (a slot, scratch, or cgr's device "
                   "allocation)",
                   name, ptr, bytes, cgr__memory_kind_name(kind));
}

/* The checks every collective makes, naming the argument at fault. */
static cgr_status check_collective(cgr_runtime *rt, const cgr__collective *c,
                                   int rank, int ranks) {
  const char *func = collective_func(c->kind);
  size_t elem = cgr__dtype_size(c->dtype);
  if (c->send == NULL || c->recv == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "argument '%s' is NULL", c->send ? "recv" : "send");
  if (c->count == 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'count' is 0");
  if (elem == 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'dtype' is %d: not a cgr_dtype", (int)c->dtype);
  if (c->kind == CGR__COLL_ALL_REDUCE && (unsigned)c->op > CGR_REDUCE_MIN)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'op' is %d: not a cgr_reduce_op", (int)c->op);
  if (c->kind == CGR__COLL_BROADCAST && (c->root < 0 || c->root >= ranks))
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'root' is %d: a rank of the group, 0 to %d",
                     c->root, ranks - 1);
  size_t gathered = c->kind == CGR__COLL_ALL_GATHER ? (size_t)ranks : 1;
  if (c->count > SIZE_MAX / elem / gathered)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'count' is %zu: the buffers would pass the "
                     "end of the address space",
                     c->count);
  size_t send_bytes = c->count * elem;
  size_t recv_bytes = send_bytes * gathered;
  const unsigned char *send = c->send;
  const unsigned char *recv = c->recv;
  const unsigned char *in_place =
      recv + (c->kind == CGR__COLL_ALL_GATHER ? (size_t)rank * send_bytes : 0);
  if (send != in_place && send < recv + recv_bytes && recv < send + send_bytes)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'send' overlaps 'recv' without being in "
                     "place: in place, send is recv%s",
                     c->kind == CGR__COLL_ALL_GATHER
                         ? " + rank * count elements"
                         : "");
  CGR__CHECK(check_device(rt, func, "send", c->send, send_bytes));
  return check_device(rt, func, "recv", c->recv, recv_bytes);
}

static cgr_status collective(cgr_step *step, const cgr__collective *c) {
  const char *func = collective_func(c->kind);
  cgr_runtime *rt = step->rt;
  cgr__comm *comm = rt->comm;
  int rank = cgr_step_rank(step);
  int ranks = cgr_step_ranks(step);
  CGR__CHECK(check_collective(rt, c, rank, ranks));
  step->collective_sig = signature_add(step->collective_sig, c);
  step->collectives++;
  cgr__stream *stream = rt->streams[CGR_STREAM_MAIN];
  /* An aborted NCCL communicator is freed: a rank still running its step
   * after another rank's failure aborted the group must not hand NCCL the
   * handle (the host communicator refuses by itself). */
  if (comm != NULL && comm->kind == CGR_BACKEND_CUDA &&
      atomic_load_explicit(&comm->aborted, memory_order_acquire))
    return cgr__fail(&rt->error, CGR_E_TIMEOUT, func,
                     "the group's communicator was aborted (another rank "
                     "failed): no collective is enqueued");
  if (comm != NULL)
    return cgr__be_collective(&rt->backend, stream, comm->handles[rank], rank,
                              ranks, c);
  /* One rank: each collective is a copy of send into recv, and nothing in
   * place. */
  if (c->send == c->recv)
    return CGR_OK;
  return cgr__be_memcpy_async(&rt->backend, stream, c->recv, c->send,
                              c->count * cgr__dtype_size(c->dtype));
}

cgr_status cgr_step_all_reduce(cgr_step *step, const void *send, void *recv,
                               size_t count, cgr_dtype dtype,
                               cgr_reduce_op op) {
  if (step == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__collective c = {.kind = CGR__COLL_ALL_REDUCE,
                       .send = send,
                       .recv = recv,
                       .count = count,
                       .dtype = dtype,
                       .op = op};
  return noted(step, collective(step, &c));
}

cgr_status cgr_step_all_gather(cgr_step *step, const void *send, void *recv,
                               size_t count, cgr_dtype dtype) {
  if (step == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__collective c = {.kind = CGR__COLL_ALL_GATHER,
                       .send = send,
                       .recv = recv,
                       .count = count,
                       .dtype = dtype};
  return noted(step, collective(step, &c));
}

cgr_status cgr_step_broadcast(cgr_step *step, const void *send, void *recv,
                              size_t count, cgr_dtype dtype, int root) {
  if (step == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__collective c = {.kind = CGR__COLL_BROADCAST,
                       .send = send,
                       .recv = recv,
                       .count = count,
                       .dtype = dtype,
                       .root = root};
  return noted(step, collective(step, &c));
}

/*
 * <cgr/cgr_cuda.h>'s cgr_cuda_step_graph, here with the step it adds to,
 * in every build (a binding looks it up by name; the host backend and a
 * build without CUDA say why it cannot work). The header needs CUDA's,
 * which this layer does not include: the prototype is repeated with
 * void * for the cudaGraph_t, a pointer (the same ABI).
 */
CGR_API cgr_status cgr_cuda_step_graph(cgr_step *step, void *graph);

cgr_status cgr_cuda_step_graph(cgr_step *step, void *graph) {
  if (step == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr_runtime *rt = step->rt;
  if (graph == NULL)
    return noted(step, cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                                 "argument 'graph' is NULL"));
  if (rt->kind != CGR_BACKEND_CUDA)
    return noted(step,
                 cgr__fail(&rt->error, CGR_E_UNSUPPORTED, __func__,
                           "the runtime runs on the %s backend, which has no "
                           "CUDA graphs: enqueue the step's work with "
                           "cgr_step_launch",
                           cgr_backend_name(rt)));
  if (!step->capturing)
    return noted(step,
                 cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                           "bucket %u, set %d: this run of the step is not "
                           "captured (a warm-up or eager run), so there is no "
                           "graph to add to: when cgr_step_is_capturing() is "
                           "0, enqueue the same work on cgr_cuda_step_stream()",
                           step->padded_batch, step->set));
  /* The step is captured on the main stream (capture.c); on CUDA a
   * cgr__graph is the cudaGraph_t itself. */
  return noted(step, cgr__be_capture_child_graph(&rt->backend,
                                                 rt->streams[CGR_STREAM_MAIN],
                                                 graph));
}
