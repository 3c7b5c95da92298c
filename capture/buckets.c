/* Buckets (padded batch sizes), the batch -> bucket table, and the capture
 * state's birth and death. */
#include <string.h>

#include "capture/capture.h"
#include "runtime/alloc.h"

/* 1, 2, 4, 8, then every 8 up to 256: the sizes SGLang and vLLM capture. */
static size_t default_sizes(uint32_t *out) {
  size_t n = 0;
  for (uint32_t size = 1; size <= 8; size *= 2)
    out[n++] = size;
  for (uint32_t size = 16; size <= 256; size += 8)
    out[n++] = size;
  return n;
}

enum { DEFAULT_BUCKETS = 4 + 31 };

cgr_status cgr__buckets_build(cgr_runtime *rt, cgr__capture *cap) {
  size_t count =
      rt->config.buckets != NULL ? rt->config.bucket_count : DEFAULT_BUCKETS;
  cap->sizes = cgr__calloc(count, sizeof *cap->sizes);
  if (cap->sizes == NULL)
    goto out_of_memory;
  if (rt->config.buckets != NULL)
    memcpy(cap->sizes, rt->config.buckets, count * sizeof *cap->sizes);
  else
    count = default_sizes(cap->sizes);
  cap->bucket_count = count;

  uint32_t largest = cap->sizes[count - 1];
  cap->bucket_of = cgr__calloc((size_t)largest + 1, sizeof *cap->bucket_of);
  cap->buckets = cgr__calloc(count, sizeof *cap->buckets);
  if (cap->bucket_of == NULL || cap->buckets == NULL)
    goto out_of_memory;
  /* A table, not a search: the replay path asks once per step. */
  size_t index = 0;
  for (uint32_t batch = 1; batch <= largest; ++batch) {
    while (cap->sizes[index] < batch)
      ++index;
    cap->bucket_of[batch] = (uint16_t)index;
  }
  for (size_t i = 0; i < count; ++i)
    cap->buckets[i].stats.padded_batch = cap->sizes[i];
  return CGR_OK;

out_of_memory:
  cgr__buckets_free(cap);
  return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, "cgr__buckets_build",
                   "allocating the bucket table failed");
}

void cgr__buckets_free(cgr__capture *cap) {
  cgr__free(cap->sizes);
  cgr__free(cap->bucket_of);
  cgr__free(cap->buckets);
  cap->sizes = NULL;
  cap->bucket_of = NULL;
  cap->buckets = NULL;
  cap->bucket_count = 0;
}

long cgr__bucket_index(const cgr__capture *cap, uint32_t padded_batch) {
  if (padded_batch == 0 || padded_batch > cgr__largest_bucket(cap))
    return -1;
  long index = cap->bucket_of[padded_batch];
  return cap->sizes[index] == padded_batch ? index : -1;
}

/* ---- the state ----------------------------------------------------------- */

static void destroy_buckets(cgr_runtime *rt, cgr__capture *cap) {
  for (size_t i = 0; i < cap->bucket_count; ++i) {
    for (int set = 0; set < CGR__SETS; ++set) {
      cgr__be_graph_exec_destroy(&rt->backend, cap->buckets[i].execs[set]);
      cgr__be_graph_destroy(&rt->backend, cap->buckets[i].graphs[set]);
      cgr__be_graph_exec_destroy(&rt->backend,
                                 cap->buckets[i].in_graph_execs[set]);
      cgr__be_graph_destroy(&rt->backend, cap->buckets[i].in_graphs[set]);
    }
  }
}

static void destroy_state(cgr_runtime *rt, void *state) {
  cgr__capture *cap = state;
  destroy_buckets(rt, cap);
  cgr__eager_cache_free(rt, &cap->eager_cache);
  cgr__be_device_free(&rt->backend, cap->arena);
  cgr__slots_free(rt, cap);
  cgr__buckets_free(cap);
  cgr__free(cap);
}

cgr_status cgr__capture_state(cgr_runtime *rt, cgr__capture **out) {
  cgr_status status = CGR_OK;
  pthread_mutex_lock(&rt->layer_lock);
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  if (cap == NULL) {
    cap = cgr__calloc(1, sizeof *cap);
    if (cap == NULL) {
      status = cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, __func__,
                         "allocating the capture state failed");
    } else if ((status = cgr__buckets_build(rt, cap)) != CGR_OK) {
      cgr__free(cap);
      cap = NULL;
    } else {
      rt->layers[CGR__LAYER_CAPTURE].state = cap;
      rt->layers[CGR__LAYER_CAPTURE].destroy = destroy_state;
    }
  }
  pthread_mutex_unlock(&rt->layer_lock);
  *out = cap;
  return status;
}

/* ---- public -------------------------------------------------------------- */

cgr_status cgr_buckets(const cgr_runtime *rt, const uint32_t **sizes,
                       size_t *count) {
  if (sizes != NULL)
    *sizes = NULL;
  if (count != NULL)
    *count = 0;
  if (rt == NULL || sizes == NULL || count == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__capture *cap = NULL;
  /* The state is made on first use, even from a query. */
  CGR__CHECK(cgr__capture_state((cgr_runtime *)rt, &cap));
  *sizes = cap->sizes;
  *count = cap->bucket_count;
  return CGR_OK;
}

cgr_status cgr_bucket_for_batch(const cgr_runtime *rt, uint32_t batch,
                                uint32_t *padded_batch) {
  if (padded_batch != NULL)
    *padded_batch = 0;
  if (rt == NULL || padded_batch == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr_runtime *mutable_rt = (cgr_runtime *)rt;
  cgr__capture *cap = NULL;
  CGR__CHECK(cgr__capture_state(mutable_rt, &cap));
  if (batch == 0)
    return cgr__fail(&mutable_rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'batch' is 0");
  if (batch > cgr__largest_bucket(cap))
    return cgr__fail(&mutable_rt->error, CGR_E_BATCH_TOO_LARGE, __func__,
                     "batch %u is larger than the largest bucket (%u)", batch,
                     cgr__largest_bucket(cap));
  *padded_batch = cap->sizes[cap->bucket_of[batch]];
  return CGR_OK;
}
