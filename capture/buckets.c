/* Buckets (padded batch sizes), the batch -> bucket table, keys, and the
 * capture state's birth and death. */
#include <stdio.h>
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

  cap->tokens = rt->config.tokens_per_request;
  cap->token_count = rt->config.tokens_per_request_count;
  cap->variant_count = rt->variant_count;
  memset(cap->token_of, -1, sizeof cap->token_of);
  for (size_t t = 0; t < cap->token_count; ++t)
    cap->token_of[cap->tokens[t]] = (int8_t)t;
  cap->key_count = count * cap->token_count * cap->variant_count;

  uint32_t largest = cap->sizes[count - 1];
  cap->bucket_of = cgr__calloc((size_t)largest + 1, sizeof *cap->bucket_of);
  cap->keys = cgr__calloc(cap->key_count, sizeof *cap->keys);
  if (cap->bucket_of == NULL || cap->keys == NULL)
    goto out_of_memory;
  /* A table, not a search: the replay path asks once per step. */
  size_t index = 0;
  for (uint32_t batch = 1; batch <= largest; ++batch) {
    while (cap->sizes[index] < batch)
      ++index;
    cap->bucket_of[batch] = (uint16_t)index;
  }
  for (size_t i = 0; i < cap->key_count; ++i)
    cap->keys[i].stats.key = cgr__key_at(cap, i);
  return CGR_OK;

out_of_memory:
  cgr__buckets_free(cap);
  return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, "cgr__buckets_build",
                   "allocating the bucket table failed");
}

void cgr__buckets_free(cgr__capture *cap) {
  cgr__free(cap->sizes);
  cgr__free(cap->bucket_of);
  cgr__free(cap->keys);
  cap->sizes = NULL;
  cap->bucket_of = NULL;
  cap->keys = NULL;
  cap->bucket_count = 0;
  cap->key_count = 0;
}

long cgr__bucket_index(const cgr__capture *cap, uint32_t padded_batch) {
  if (padded_batch == 0 || padded_batch > cgr__largest_bucket(cap))
    return -1;
  long index = cap->bucket_of[padded_batch];
  return cap->sizes[index] == padded_batch ? index : -1;
}

cgr_status cgr__key_find(cgr_runtime *rt, const cgr__capture *cap,
                         const cgr_key *key, const char *func, size_t *index) {
  if (key == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'key' is NULL");
  long bucket = cgr__bucket_index(cap, key->padded_batch);
  long token = cgr__token_index(cap, key->tokens_per_request);
  if (bucket < 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "key->padded_batch %u is not a bucket", key->padded_batch);
  if (token < 0) {
    char have[160];
    cgr__tokens_list(cap, have, sizeof have);
    return cgr__fail(
        &rt->error, CGR_E_INVALID_ARGUMENT, func,
        "key->tokens_per_request %u is not one of the runtime's (%s)",
        key->tokens_per_request, have);
  }
  if (key->variant >= cap->variant_count)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "key->variant %u is not a variant (the runtime has %u)",
                     key->variant, cap->variant_count);
  *index = cgr__key_index(cap, (size_t)bucket, (size_t)token, key->variant);
  return CGR_OK;
}

void cgr__tokens_list(const cgr__capture *cap, char *out, size_t size) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t t = 0; t < cap->token_count && used + 1 < size; ++t) {
    int n = snprintf(out + used, size - used, "%s%u", t ? ", " : "",
                     cap->tokens[t]);
    if (n < 0)
      break;
    used += (size_t)n;
  }
}

/* ---- the state ----------------------------------------------------------- */

static void destroy_keys(cgr_runtime *rt, cgr__capture *cap) {
  for (size_t i = 0; i < cap->key_count; ++i) {
    for (int set = 0; set < CGR__SETS; ++set) {
      cgr__be_graph_exec_destroy(&rt->backend, cap->keys[i].execs[set]);
      cgr__be_graph_destroy(&rt->backend, cap->keys[i].graphs[set]);
      cgr__be_graph_exec_destroy(&rt->backend,
                                 cap->keys[i].in_graph_execs[set]);
      cgr__be_graph_destroy(&rt->backend, cap->keys[i].in_graphs[set]);
      for (int full = 0; full < 2; ++full) {
        cgr__be_graph_exec_destroy(&rt->backend,
                                   cap->keys[i].pipe_execs[set][full]);
        cgr__be_graph_destroy(&rt->backend,
                              cap->keys[i].pipe_graphs[set][full]);
      }
    }
  }
  /* No graph reads the areas any more. */
  for (int set = 0; set < CGR__SETS; ++set)
    for (int part = 0; part < 2; ++part)
      cgr__be_pinned_free(&rt->backend, cap->pipe_areas[set][part]);
  cgr__be_event_destroy(&rt->backend, cap->pipe_fork);
  cgr__be_event_destroy(&rt->backend, cap->pipe_join);
}

static void destroy_state(cgr_runtime *rt, void *state) {
  cgr__capture *cap = state;
  destroy_keys(rt, cap);
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

/* ---- keys ---------------------------------------------------------------- */

cgr_status cgr_tokens_per_request(const cgr_runtime *rt,
                                  const uint32_t **values, size_t *count) {
  if (values != NULL)
    *values = NULL;
  if (count != NULL)
    *count = 0;
  if (rt == NULL || values == NULL || count == NULL)
    return CGR_E_INVALID_ARGUMENT;
  *values = rt->config.tokens_per_request;
  *count = rt->config.tokens_per_request_count;
  return CGR_OK;
}

uint32_t cgr_variant_count(const cgr_runtime *rt) {
  return rt == NULL ? 0 : rt->variant_count;
}

const char *cgr_variant_name(const cgr_runtime *rt, uint32_t variant) {
  if (rt == NULL || variant >= rt->variant_count)
    return NULL;
  return rt->variant_names[variant];
}

cgr_status cgr_variant_find(const cgr_runtime *rt, const char *name,
                            uint32_t *out) {
  if (out != NULL)
    *out = 0;
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr_runtime *mutable_rt = (cgr_runtime *)rt;
  if (name == NULL || out == NULL)
    return cgr__fail(&mutable_rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument '%s' is NULL", name == NULL ? "name" : "out");
  for (uint32_t v = 0; v < rt->variant_count; ++v) {
    if (strcmp(rt->variant_names[v], name) == 0) {
      *out = v;
      return CGR_OK;
    }
  }
  return cgr__fail(&mutable_rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                   "no variant is named '%s'", name);
}
