/*
 * Eager runs of the step: no graph, slot buffers and scratch of the batch's
 * own size. The fallback for a batch larger than the largest bucket (never
 * silent: counted and logged once per runtime), and the reference a
 * replayed step is checked against.
 *
 * The buffers come from the runtime's eager cache and stay there: an eager
 * step allocates nothing after the first of its size (cudaFree waits for
 * the whole device, so freeing per step would serialize every lane).
 */
#include <string.h>

#include "capture/capture.h"
#include "runtime/alloc.h"
#include "runtime/nvtx.h"

/* Grows a pointer array and its capacities to `count` entries (new ones
 * NULL and 0). */
static cgr_status grow_arrays(cgr_runtime *rt, void ***buffers,
                              uint64_t **capacity, size_t *count, size_t want) {
  if (want <= *count)
    return CGR_OK;
  void **new_buffers = cgr__calloc(want, sizeof *new_buffers);
  uint64_t *new_capacity = cgr__calloc(want, sizeof *new_capacity);
  if (new_buffers == NULL || new_capacity == NULL) {
    cgr__free(new_buffers);
    cgr__free(new_capacity);
    return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, __func__,
                     "growing the eager cache to %zu entries failed", want);
  }
  if (*count > 0) {
    memcpy(new_buffers, *buffers, *count * sizeof *new_buffers);
    memcpy(new_capacity, *capacity, *count * sizeof *new_capacity);
  }
  cgr__free(*buffers);
  cgr__free(*capacity);
  *buffers = new_buffers;
  *capacity = new_capacity;
  *count = want;
  return CGR_OK;
}

/* buffers[index] holds at least `bytes`: kept when it does, else replaced
 * (the old one freed first, so a failure leaves an empty entry). */
static cgr_status ensure_buffer(cgr_runtime *rt, void **buffers,
                                uint64_t *capacity, size_t index,
                                uint64_t bytes, int *grown) {
  *grown = 0;
  if (capacity[index] >= bytes)
    return CGR_OK;
  cgr__be_device_free(&rt->backend, buffers[index]);
  buffers[index] = NULL;
  capacity[index] = 0;
  CGR__CHECK(cgr__be_device_alloc(&rt->backend, bytes, &buffers[index]));
  capacity[index] = bytes;
  *grown = 1;
  return CGR_OK;
}

cgr_status cgr__eager_scratch(cgr_runtime *rt, cgr__eager_cache *cache,
                              size_t index, uint64_t bytes, void **out) {
  *out = NULL;
  CGR__CHECK(grow_arrays(rt, &cache->scratch, &cache->scratch_capacity,
                         &cache->scratch_count, index + 1));
  int grown = 0;
  CGR__CHECK(ensure_buffer(rt, cache->scratch, cache->scratch_capacity, index,
                           bytes, &grown));
  *out = cache->scratch[index];
  return CGR_OK;
}

void cgr__eager_cache_free(cgr_runtime *rt, cgr__eager_cache *cache) {
  for (size_t i = 0; i < cache->slot_count; ++i)
    cgr__be_device_free(&rt->backend, cache->slot_buffers[i]);
  for (size_t i = 0; i < cache->scratch_count; ++i)
    cgr__be_device_free(&rt->backend, cache->scratch[i]);
  cgr__free(cache->slot_buffers);
  cgr__free(cache->slot_capacity);
  cgr__free(cache->scratch);
  cgr__free(cache->scratch_capacity);
  memset(cache, 0, sizeof *cache);
}

/* Applies the allow_eager policy to a batch over the largest bucket. */
static cgr_status eager_policy(cgr_runtime *rt, cgr__capture *cap,
                               uint32_t batch) {
  uint32_t largest = cgr__largest_bucket(cap);
  if (batch <= largest)
    return CGR_OK;
  if (!rt->config.allow_eager)
    return cgr__fail(&rt->error, CGR_E_BATCH_TOO_LARGE, "cgr__eager_begin",
                     "batch %u is larger than the largest bucket (%u) and "
                     "config->allow_eager is 0",
                     batch, largest);
  cap->eager_runs++;
  if (!cap->eager_logged) {
    cap->eager_logged = 1;
    cgr__warn(rt,
              "batch %u is larger than the largest bucket (%u): running "
              "the step eagerly, without a graph (slow). Add a larger "
              "bucket to config->buckets. Logged once; "
              "cgr_capture_stats_get().eager_runs counts them.",
              batch, largest);
  }
  return CGR_OK;
}

cgr_status cgr__eager_begin(cgr_runtime *rt, uint32_t batch, uint32_t tokens,
                            uint32_t variant, int fallback, cgr__eager *eager) {
  memset(eager, 0, sizeof *eager);
  cgr__capture *cap = NULL;
  CGR__CHECK(cgr__capture_state(rt, &cap));
  if (cap->step == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "no step registered: call cgr_capture() first");
  if (batch == 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'batch' is 0");
  if (fallback)
    CGR__CHECK(eager_policy(rt, cap, batch));
  cgr__eager_cache *cache = &cap->eager_cache;
  /* The previous eager run's outputs may still be read: its work ends
   * before this run reuses the buffers. */
  cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
  CGR__CHECK(grow_arrays(rt, &cache->slot_buffers, &cache->slot_capacity,
                         &cache->slot_count, cap->slot_count));
  for (size_t i = 0; i < cap->slot_count; ++i) {
    const cgr__slot *slot = &cap->slots[i];
    uint64_t bytes = cgr__slot_bytes_for(slot, batch, tokens);
    if (bytes == 0)
      continue;
    int grown = 0;
    CGR__CHECK(ensure_buffer(rt, cache->slot_buffers, cache->slot_capacity, i,
                             bytes, &grown));
    if (grown)
      cache->constants_batch = 0;
  }
  /* Constants depend on the batch and its tokens per request alone: filled
   * again only when they (or a buffer) changed. */
  if (cache->constants_batch != batch || cache->constants_tokens != tokens) {
    cache->constants_batch = 0;
    cgr_key key = {batch, tokens, 0};
    for (size_t i = 0; i < cap->slot_count; ++i)
      if (cap->slots[i].desc.kind == CGR_SLOT_CONSTANT &&
          cgr__slot_bytes_for(&cap->slots[i], batch, tokens) > 0)
        CGR__CHECK(cgr__constant_upload(rt, &cap->slots[i], &key,
                                        cache->slot_buffers[i]));
    cache->constants_batch = batch;
    cache->constants_tokens = tokens;
  }
  eager->batch = batch;
  eager->tokens = tokens;
  eager->variant = variant;
  eager->slot_count = cap->slot_count;
  eager->addresses = cache->slot_buffers;
  return CGR_OK;
}

void *cgr__eager_slot(const cgr__eager *eager, cgr_slot slot) {
  if (slot < 0 || (size_t)slot >= eager->slot_count)
    return NULL;
  return eager->addresses[slot];
}

cgr_status cgr__eager_run(cgr_runtime *rt, cgr__eager *eager) {
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  cgr_step step;
  cgr_key key = {eager->batch, eager->tokens, eager->variant};
  cgr__step_init(&step, rt, &key, 0, eager->addresses, eager->slot_count,
                 CGR__SCRATCH_OWN);
  step.eager_cache = &cap->eager_cache;
  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_EAGER, eager->batch);
  cgr_status status = cgr__step_run(cap, &step);
  /* The caller reads the outputs once this returns. */
  cgr_status sync =
      cgr__be_stream_synchronize(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
  CGR__NVTX_POP(rt->config.nvtx);
  cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
  cgr__step_release(&step);
  return status != CGR_OK ? status : sync;
}

void cgr__eager_end(cgr_runtime *rt, cgr__eager *eager) {
  /* The buffers stay in the cache; only this run's view of them ends. */
  cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
  memset(eager, 0, sizeof *eager);
}
