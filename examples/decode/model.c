/* The example model: weights, device memory, slots, the step, the
 * reference. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#ifdef CGR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <cgr/cgr_cuda.h>
#endif

/* Propagates a failed status (the example's own check macro). */
#define CHECK(call)                                                            \
  do {                                                                         \
    cgr_status check_status_ = (call);                                         \
    if (check_status_ != CGR_OK)                                               \
      return check_status_;                                                    \
  } while (0)

const char *dec_dtype_name(dec_dtype dtype) {
  return dtype == DEC_BF16 ? "bf16" : "fp32";
}

void dec_config_default(dec_config *config) {
  memset(config, 0, sizeof *config);
  config->layers = 4;
  config->hidden = 512;
  config->heads = 8;
  config->head_dim = 64;
  config->mlp = 1408;
  config->vocab = 8192;
  config->dtype = DEC_FP32;
  config->page_size = 16;
  config->pages = 1024;
  config->pages_per_seq = 32; /* sequences up to 512 tokens */
  config->eps = 1e-5f;
  config->theta = 10000.0f;
  config->seed = 1;
}

const char *dec_config_problem(const dec_config *c) {
  if (c->layers < 1)
    return "--layers must be at least 1";
  if (c->heads < 1 || c->head_dim < 2 || c->head_dim % 2 != 0 ||
      c->head_dim > 256)
    return "--heads must be at least 1 and --head-dim even, 2 to 256";
  if (c->hidden != c->heads * c->head_dim)
    return "--hidden must equal --heads x --head-dim";
  if (c->mlp < 1 || c->vocab < 2)
    return "--mlp must be at least 1 and --vocab at least 2";
  if (c->dtype != DEC_FP32 && c->dtype != DEC_BF16)
    return "--dtype must be fp32 or bf16";
  if (c->page_size < 1 || c->pages < 2 || c->pages_per_seq < 1)
    return "the KV cache needs a page size, at least 2 pages (one is the "
           "dummy page) and at least 1 page per sequence";
  if ((int64_t)c->pages * c->page_size > INT32_MAX)
    return "the KV cache has more token slots than an int32 can address";
  return NULL;
}

/* ---- weights --------------------------------------------------------------
 */

uint64_t dec_random(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * UINT64_C(2685821657736338717);
}

/* Uniform in [-scale, scale): weights that keep activations near 1. */
static int random_matrix(float **out, size_t count, float scale,
                         uint64_t *seed) {
  float *m = malloc(count * sizeof *m);
  if (m == NULL)
    return 0;
  for (size_t i = 0; i < count; ++i)
    m[i] = scale *
           ((float)(dec_random(seed) >> 40) / (float)(1 << 24) * 2.0f - 1.0f);
  *out = m;
  return 1;
}

static int ones(float **out, size_t count) {
  float *m = malloc(count * sizeof *m);
  if (m == NULL)
    return 0;
  for (size_t i = 0; i < count; ++i)
    m[i] = 1.0f;
  *out = m;
  return 1;
}

/* The sizes of every weight tensor, in the order they are allocated. */
enum { LAYER_TENSORS = 6 };

static void layer_sizes(const dec_config *c, size_t sizes[LAYER_TENSORS]) {
  size_t h = (size_t)c->hidden, m = (size_t)c->mlp;
  sizes[0] = h;
  sizes[1] = h * 3 * h;
  sizes[2] = h * h;
  sizes[3] = h;
  sizes[4] = h * 2 * m;
  sizes[5] = m * h;
}

static float **layer_tensor(dec_layer *layer, int i) {
  float **tensors[LAYER_TENSORS] = {&layer->attn_norm, &layer->wqkv,
                                    &layer->wo,        &layer->mlp_norm,
                                    &layer->w_gate_up, &layer->w_down};
  return tensors[i];
}

/* The bf16 field of tensor i, NULL for the norms (always fp32). */
static uint16_t **layer_bf16_tensor(dec_layer *layer, int i) {
  uint16_t **tensors[LAYER_TENSORS] = {
      NULL, &layer->wqkv_bf16,      &layer->wo_bf16,
      NULL, &layer->w_gate_up_bf16, &layer->w_down_bf16};
  return tensors[i];
}

/* Rounds every value to bf16 precision, in place: the host copy then holds
 * exactly what the device's bf16 weights widen to. */
static void round_to_bf16(float *m, size_t count) {
  for (size_t i = 0; i < count; ++i)
    m[i] = dec_float_from_bf16(dec_bf16_from_float(m[i]));
}

static void free_host_weights(const dec_config *c, dec_weights *w) {
  free(w->embedding);
  free(w->final_norm);
  free(w->lm_head);
  if (w->layers != NULL)
    for (int32_t l = 0; l < c->layers; ++l)
      for (int i = 0; i < LAYER_TENSORS; ++i)
        free(*layer_tensor(&w->layers[l], i));
  free(w->layers);
  memset(w, 0, sizeof *w);
}

static int make_host_weights(const dec_config *c, dec_weights *w) {
  uint64_t seed = c->seed * 0x9E3779B97F4A7C15u + 1;
  memset(w, 0, sizeof *w);
  w->layers = calloc((size_t)c->layers, sizeof *w->layers);
  if (w->layers == NULL)
    return 0;
  float h_scale = 1.0f / sqrtf((float)c->hidden);
  float m_scale = 1.0f / sqrtf((float)c->mlp);
  if (!random_matrix(&w->embedding, (size_t)c->vocab * c->hidden, 1.0f,
                     &seed) ||
      !ones(&w->final_norm, (size_t)c->hidden) ||
      !random_matrix(&w->lm_head, (size_t)c->hidden * c->vocab, h_scale, &seed))
    return 0;
  size_t sizes[LAYER_TENSORS];
  layer_sizes(c, sizes);
  for (int32_t l = 0; l < c->layers; ++l) {
    dec_layer *layer = &w->layers[l];
    if (!ones(&layer->attn_norm, sizes[0]) ||
        !random_matrix(&layer->wqkv, sizes[1], h_scale, &seed) ||
        !random_matrix(&layer->wo, sizes[2], h_scale, &seed) ||
        !ones(&layer->mlp_norm, sizes[3]) ||
        !random_matrix(&layer->w_gate_up, sizes[4], h_scale, &seed) ||
        !random_matrix(&layer->w_down, sizes[5], m_scale, &seed))
      return 0;
  }
  if (c->dtype == DEC_BF16) {
    round_to_bf16(w->lm_head, (size_t)c->hidden * c->vocab);
    for (int32_t l = 0; l < c->layers; ++l)
      for (int i = 0; i < LAYER_TENSORS; ++i)
        if (layer_bf16_tensor(&w->layers[l], i) != NULL)
          round_to_bf16(*layer_tensor(&w->layers[l], i), sizes[i]);
  }
  return 1;
}

/* ---- device memory: the user's own, not cgr's ------------------------------
 */

#ifdef CGR_HAVE_CUDA
/* Makes the runtime's device current: a group's ranks are on several, and
 * cudaMalloc allocates on the current one. */
static cudaError_t use_device(const dec_model *m) {
  int device = 0;
  if (cgr_cuda_device(m->rt, &device) != CGR_OK)
    return cudaErrorInvalidDevice;
  return cudaSetDevice(device);
}
#endif

static cgr_status device_alloc(dec_model *m, size_t bytes, void **out,
                               char *why, size_t why_size) {
  *out = NULL;
#ifdef CGR_HAVE_CUDA
  if (m->on_cuda) {
    cudaError_t e = use_device(m);
    if (e == cudaSuccess)
      e = cudaMalloc(out, bytes);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      snprintf(why, why_size, "cudaMalloc(%zu bytes): %s", bytes,
               cudaGetErrorString(e));
      *out = NULL;
      return CGR_E_DEVICE_OUT_OF_MEMORY;
    }
    return CGR_OK;
  }
#endif
  (void)m;
  *out = calloc(1, bytes);
  if (*out == NULL) {
    snprintf(why, why_size, "allocating %zu bytes failed", bytes);
    return CGR_E_OUT_OF_MEMORY;
  }
  return CGR_OK;
}

static void device_free(const dec_model *m, void *ptr) {
#ifdef CGR_HAVE_CUDA
  if (m->on_cuda) {
    if (ptr != NULL && use_device(m) == cudaSuccess)
      (void)cudaFree(ptr);
    (void)cudaGetLastError();
    return;
  }
#endif
  (void)m;
  free(ptr);
}

#ifdef CGR_HAVE_CUDA
/* The model's own copies and fills run on the runtime's side stream, then
 * wait for it: never on the legacy default stream, which does not order
 * against cgr's streams (they are non-blocking), so a KV-cache clear there
 * could still be running when the first step reads the cache. The side
 * stream only loads inputs: when a step's outputs are read, it holds at
 * most the next step's input copy, which a wait here also finishes. */
static cgr_status side_stream(const dec_model *m, cudaStream_t *out) {
  return cgr_cuda_stream(m->rt, CGR_STREAM_SIDE, out);
}

/* Waits for `stream` once `e` (the status of what was just enqueued on it)
 * is known, and clears a failure from this program's last CUDA error. */
static cgr_status finish_on(cudaStream_t stream, cudaError_t e) {
  if (e == cudaSuccess)
    e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return CGR_E_CUDA;
  }
  return CGR_OK;
}
#endif

/* Copies between the host and the model's device memory, either way
 * (unified addressing tells CUDA which); synchronous. */
cgr_status dec_copy(const dec_model *m, void *dst, const void *src,
                    size_t bytes) {
#ifdef CGR_HAVE_CUDA
  if (m->on_cuda) {
    cudaStream_t stream = NULL;
    CHECK(side_stream(m, &stream));
    cudaError_t e = use_device(m);
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream);
    return finish_on(stream, e);
  }
#endif
  (void)m;
  memcpy(dst, src, bytes);
  return CGR_OK;
}

static cgr_status upload(dec_model *m, float **dst, const float *src,
                         size_t count, char *why, size_t why_size) {
  size_t bytes = count * sizeof(float);
  cgr_status status = device_alloc(m, bytes, (void **)dst, why, why_size);
  if (status == CGR_OK)
    status = dec_copy(m, *dst, src, bytes);
  if (status == CGR_OK)
    m->weight_bytes += bytes;
  else if (why[0] == '\0')
    snprintf(why, why_size, "copying %zu bytes of weights failed", bytes);
  return status;
}

/* The host's fp32 values as bf16 (already bf16 values: the conversion is
 * exact), half the bytes of upload(). */
static cgr_status upload_bf16(dec_model *m, uint16_t **dst, const float *src,
                              size_t count, char *why, size_t why_size) {
  size_t bytes = count * sizeof(uint16_t);
  uint16_t *staging = malloc(bytes);
  if (staging == NULL) {
    snprintf(why, why_size, "allocating %zu bytes failed", bytes);
    return CGR_E_OUT_OF_MEMORY;
  }
  for (size_t i = 0; i < count; ++i)
    staging[i] = dec_bf16_from_float(src[i]);
  cgr_status status = device_alloc(m, bytes, (void **)dst, why, why_size);
  if (status == CGR_OK)
    status = dec_copy(m, *dst, staging, bytes);
  free(staging);
  if (status == CGR_OK)
    m->weight_bytes += bytes;
  else if (why[0] == '\0')
    snprintf(why, why_size, "copying %zu bytes of weights failed", bytes);
  return status;
}

/* A matmul weight: fp32 into *dst, or bf16 into *dst_bf16. */
static cgr_status upload_matrix(dec_model *m, float **dst, uint16_t **dst_bf16,
                                const float *src, size_t count, char *why,
                                size_t why_size) {
  if (m->config.dtype == DEC_BF16)
    return upload_bf16(m, dst_bf16, src, count, why, why_size);
  return upload(m, dst, src, count, why, why_size);
}

static void free_device_weights(dec_model *m) {
  dec_weights *w = &m->device;
  device_free(m, w->embedding);
  device_free(m, w->final_norm);
  device_free(m, w->lm_head);
  device_free(m, w->lm_head_bf16);
  if (w->layers != NULL)
    for (int32_t l = 0; l < m->config.layers; ++l)
      for (int i = 0; i < LAYER_TENSORS; ++i) {
        device_free(m, *layer_tensor(&w->layers[l], i));
        uint16_t **bf16 = layer_bf16_tensor(&w->layers[l], i);
        if (bf16 != NULL)
          device_free(m, *bf16);
      }
  free(w->layers);
  memset(w, 0, sizeof *w);
}

/*
 * Rank m->rank's share of layer tensor i (host fp32, model.h's split): the
 * whole tensor for the norms and for one rank; a view of its rows for wo
 * and w_down; a copy of its columns for wqkv (its heads' q, k and v) and
 * w_gate_up (its share of gate and of up), in *owned for the caller to
 * free. *count is the share's length; NULL when the copy cannot be made.
 */
static const float *layer_share(const dec_model *m, int i, const float *src,
                                size_t *count, float **owned) {
  const dec_config *c = &m->config;
  size_t sizes[LAYER_TENSORS];
  layer_sizes(c, sizes);
  size_t n = (size_t)m->ranks, rank = (size_t)m->rank;
  size_t h = (size_t)c->hidden, mlp = (size_t)c->mlp;
  size_t width = h / n, mlp_share = mlp / n;
  *owned = NULL;
  *count = sizes[i];
  if (n == 1 || i == 0 || i == 3)
    return src;
  if (i == 2 || i == 5) { /* rows: wo [hidden][hidden], w_down [mlp][hidden] */
    size_t rows = i == 2 ? width : mlp_share;
    *count = rows * h;
    return src + rank * rows * h;
  }
  /* columns: wqkv's 3 parts of hidden, w_gate_up's 2 parts of mlp */
  size_t parts = i == 1 ? 3 : 2, part = i == 1 ? h : mlp;
  size_t mine = i == 1 ? width : mlp_share;
  float *dst = malloc(h * parts * mine * sizeof *dst);
  if (dst == NULL)
    return NULL;
  for (size_t k = 0; k < h; ++k)
    for (size_t p = 0; p < parts; ++p)
      memcpy(dst + (k * parts + p) * mine,
             src + k * parts * part + p * part + rank * mine,
             mine * sizeof *dst);
  *owned = dst;
  *count = h * parts * mine;
  return dst;
}

static cgr_status upload_weights(dec_model *m, char *why, size_t why_size) {
  const dec_config *c = &m->config;
  dec_weights *d = &m->device;
  d->layers = calloc((size_t)c->layers, sizeof *d->layers);
  if (d->layers == NULL)
    return CGR_E_OUT_OF_MEMORY;
  CHECK(upload(m, &d->embedding, m->host.embedding,
               (size_t)c->vocab * c->hidden, why, why_size));
  CHECK(upload(m, &d->final_norm, m->host.final_norm, (size_t)c->hidden, why,
               why_size));
  CHECK(upload_matrix(m, &d->lm_head, &d->lm_head_bf16, m->host.lm_head,
                      (size_t)c->hidden * c->vocab, why, why_size));
  for (int32_t l = 0; l < c->layers; ++l)
    for (int i = 0; i < LAYER_TENSORS; ++i) {
      float **dst = layer_tensor(&d->layers[l], i);
      uint16_t **dst_bf16 = layer_bf16_tensor(&d->layers[l], i);
      const float *src = *layer_tensor(&m->host.layers[l], i);
      size_t count = 0;
      float *owned = NULL;
      const float *share = layer_share(m, i, src, &count, &owned);
      if (share == NULL) {
        snprintf(why, why_size, "allocating a weight shard failed");
        return CGR_E_OUT_OF_MEMORY;
      }
      cgr_status status =
          dst_bf16 != NULL
              ? upload_matrix(m, dst, dst_bf16, share, count, why, why_size)
              : upload(m, dst, share, count, why, why_size);
      free(owned);
      CHECK(status);
    }
  return CGR_OK;
}

/* ---- slots ----------------------------------------------------------------
 */

/* Where slots are declared: one runtime, or every rank of a group. */
typedef struct slot_target {
  cgr_runtime *rt;
  cgr_group *group;
} slot_target;

static cgr_status declare(slot_target rt, const char *name, cgr_slot_kind kind,
                          cgr_slot_scale scale, uint32_t elem_size,
                          uint64_t row_elems, uint64_t pad, int64_t valid_max,
                          cgr_slot *out) {
  cgr_slot_desc desc;
  CHECK(cgr_slot_desc_init(&desc, name, kind, elem_size, row_elems));
  desc.scale = scale;
  desc.pad_value = pad;
  if (kind == CGR_SLOT_CONSTANT)
    desc.extra_elems = 1; /* cu_seqlens_q = 0..bs */
  if (valid_max > 0) {
    desc.valid_min = 0;
    desc.valid_max = valid_max;
  }
  return rt.group != NULL ? cgr_group_slot_declare(rt.group, &desc, out)
                          : cgr_slot_declare(rt.rt, &desc, out);
}

/* The metadata a serving engine's decode step takes, with the values its
 * padded rows hold: token 0, position 0, length 0 (attention over nothing),
 * and the dummy page, so a padded row writes only the dummy page's KV.
 * What a token carries (its id, position, KV slot, logits and next token)
 * has a row per token, request r's token t in row r * q + t for a step of
 * q tokens per request (a verify step of speculative decoding); what a
 * request carries (its length, page table row) a row per request. With
 * q = 1, the plain decode step, the two are the same rows. */
static cgr_status declare_slots(dec_model *m, cgr_group *group) {
  const dec_config *c = &m->config;
  slot_target rt = {m->rt, group};
  uint32_t dummy_page = (uint32_t)dec_dummy_page(c);
  uint32_t dummy_slot = dummy_page * (uint32_t)c->page_size;
  const cgr_slot_scale token = CGR_SCALE_TOKEN, request = CGR_SCALE_REQUEST;
  CHECK(declare(rt, "input_ids", CGR_SLOT_ROWS, token, 4, 1, 0, c->vocab - 1,
                &m->slot.input_ids));
  CHECK(declare(rt, "positions", CGR_SLOT_ROWS, token, 4, 1, 0,
                (int64_t)c->pages_per_seq * c->page_size - 1,
                &m->slot.positions));
  CHECK(declare(rt, "seq_lens", CGR_SLOT_ROWS, request, 4, 1, 0,
                (int64_t)c->pages_per_seq * c->page_size, &m->slot.seq_lens));
  CHECK(declare(rt, "cu_seqlens_k", CGR_SLOT_PREFIX, request, 4, 1, 0, 0,
                &m->slot.cu_seqlens_k));
  /* 0, q, 2q, ...: where each request's tokens start. */
  CHECK(declare(rt, "cu_seqlens_q", CGR_SLOT_CONSTANT, request, 4, 1, 0, 0,
                &m->slot.cu_seqlens_q));
  CHECK(declare(rt, "out_loc", CGR_SLOT_ROWS, token, 4, 1, dummy_slot,
                (int64_t)c->pages * c->page_size - 1, &m->slot.out_loc));
  CHECK(declare(rt, "page_table", CGR_SLOT_ROWS, request, 4,
                (uint64_t)c->pages_per_seq, dummy_page, c->pages - 1,
                &m->slot.page_table));
  CHECK(declare(rt, "logits", CGR_SLOT_OUTPUT, token, 4, (uint64_t)c->vocab, 0,
                0, &m->slot.logits));
  CHECK(declare(rt, "next_ids", CGR_SLOT_OUTPUT, token, 4, 1, 0, 0,
                &m->slot.next_ids));
  /* The sampled tokens become the next step's input_ids on the device. */
  return group != NULL
             ? cgr_group_slot_feed(group, m->slot.next_ids, m->slot.input_ids)
             : cgr_slot_feed(m->rt, m->slot.next_ids, m->slot.input_ids);
}

/* Rank `rank` of `ranks`'s weights and KV cache on rt, without slots. */
static cgr_status create_share(cgr_runtime *rt, const dec_config *config,
                               int32_t rank, int32_t ranks, dec_model *m,
                               char *why, size_t why_size) {
  memset(m, 0, sizeof *m);
  why[0] = '\0';
  const char *problem = dec_config_problem(config);
  if (problem == NULL)
    problem = dec_tp_problem(config, ranks);
  if (problem != NULL) {
    snprintf(why, why_size, "%s", problem);
    return CGR_E_INVALID_ARGUMENT;
  }
  m->config = *config;
  m->rt = rt;
  m->rank = rank;
  m->ranks = ranks;
  m->on_cuda = cgr_backend(rt) == CGR_BACKEND_CUDA;
  cgr_status status = CGR_OK;
  if (!make_host_weights(config, &m->host)) {
    snprintf(why, why_size, "allocating the host weights failed");
    status = CGR_E_OUT_OF_MEMORY;
    goto fail;
  }
  status = upload_weights(m, why, why_size);
  if (status != CGR_OK)
    goto fail;
  m->cache_bytes = (size_t)config->layers * config->pages * config->page_size *
                   (config->hidden / ranks) * sizeof(float);
  status = device_alloc(m, m->cache_bytes, (void **)&m->k_cache, why, why_size);
  if (status == CGR_OK)
    status =
        device_alloc(m, m->cache_bytes, (void **)&m->v_cache, why, why_size);
#ifdef CGR_HAVE_CUDA
  if (status == CGR_OK && m->on_cuda) {
    /* Finished before the first step can read the cache (finish_on). */
    cudaStream_t stream = NULL;
    status = side_stream(m, &stream);
    if (status == CGR_OK) {
      cudaError_t e = use_device(m);
      if (e == cudaSuccess)
        e = cudaMemsetAsync(m->k_cache, 0, m->cache_bytes, stream);
      if (e == cudaSuccess)
        e = cudaMemsetAsync(m->v_cache, 0, m->cache_bytes, stream);
      status = finish_on(stream, e);
    }
    if (status != CGR_OK)
      snprintf(why, why_size, "clearing the KV cache failed");
  }
#endif
  if (status != CGR_OK)
    goto fail;
  return CGR_OK;

fail:
  dec_model_destroy(m);
  return status;
}

cgr_status dec_model_create(cgr_runtime *rt, const dec_config *config,
                            dec_model *m, char *why, size_t why_size) {
  CHECK(create_share(rt, config, 0, 1, m, why, why_size));
  cgr_status status = declare_slots(m, NULL);
  if (status != CGR_OK) {
    snprintf(why, why_size, "%s", cgr_last_error(rt));
    dec_model_destroy(m);
  }
  return status;
}

const char *dec_tp_problem(const dec_config *c, int32_t ranks) {
  if (ranks != 1 && ranks != 2 && ranks != 4 && ranks != 8)
    return "--tp must be 1, 2, 4 or 8 (the row-parallel sums are split in 8 "
           "blocks)";
  if (ranks == 1)
    return NULL;
  if (c->heads % ranks != 0)
    return "--tp must divide --heads (each rank holds whole heads)";
  if (c->hidden % DEC_SUM_BLOCKS != 0 || c->mlp % DEC_SUM_BLOCKS != 0)
    return "with --tp over 1, --hidden and --mlp must be multiples of 8 (each "
           "rank holds whole blocks of the row-parallel sums)";
  return NULL;
}

cgr_status dec_model_create_group(cgr_group *group, const dec_config *config,
                                  dec_model *models, char *why,
                                  size_t why_size) {
  /* This process's ranks (all of them, or one of a group across
   * processes), each splitting the model by its rank in the group. */
  int32_t ranks = cgr_group_ranks(group);
  int32_t world = cgr_group_world_ranks(group);
  if (ranks < 1) {
    snprintf(why, why_size, "no group");
    return CGR_E_INVALID_ARGUMENT;
  }
  memset(models, 0, (size_t)ranks * sizeof *models);
  cgr_status status = CGR_OK;
  int32_t made = 0;
  for (; made < ranks && status == CGR_OK; ++made) {
    status = create_share(cgr_group_runtime(group, made), config,
                          cgr_group_rank(group, made), world, &models[made],
                          why, why_size);
    if (status != CGR_OK)
      break;
  }
  if (status == CGR_OK) {
    status = declare_slots(&models[0], group);
    if (status != CGR_OK)
      snprintf(why, why_size, "%s", cgr_group_last_error(group));
  }
  if (status != CGR_OK) {
    dec_model_destroy_group(models, made);
    return status;
  }
  for (int32_t r = 0; r < ranks; ++r) {
    models[r].slot = models[0].slot;
    models[r].group = group;
    models[r].group_models = models;
  }
  return CGR_OK;
}

void dec_model_destroy_group(dec_model *models, int32_t ranks) {
  for (int32_t r = 0; r < ranks; ++r)
    dec_model_destroy(&models[r]);
}

void dec_model_destroy(dec_model *m) {
  if (m->rt == NULL)
    return;
  free_device_weights(m);
  device_free(m, m->k_cache);
  device_free(m, m->v_cache);
  free_host_weights(&m->config, &m->host);
  m->k_cache = m->v_cache = NULL;
  m->rt = NULL;
}

/* ---- the step ---------------------------------------------------------------
 */

static cgr_status launch(cgr_step *step, const cgr_kernel *kernel,
                         const void *args) {
  return cgr_step_launch(step, kernel, args);
}

/* y = x w (+ y): w is the weight's bf16 array when it has one (dtype
 * bf16), else its fp32 one. */
static cgr_status matmul_blocks(cgr_step *step, const float *x, const float *w,
                                const uint16_t *w_bf16, float *y, int32_t rows,
                                int32_t in, int32_t out, int32_t accumulate,
                                int32_t blocks) {
  if (w_bf16 != NULL) {
    dec_matmul_bf16_args args = {x,  w_bf16, y,          rows,
                                 in, out,    accumulate, blocks};
    return launch(step, &dec_kernel_matmul_bf16, &args);
  }
  dec_matmul_args args = {x, w, y, rows, in, out, accumulate, blocks};
  return launch(step, &dec_kernel_matmul, &args);
}

static cgr_status matmul(cgr_step *step, const float *x, const float *w,
                         const uint16_t *w_bf16, float *y, int32_t rows,
                         int32_t in, int32_t out, int32_t accumulate) {
  return matmul_blocks(step, x, w, w_bf16, y, rows, in, out, accumulate, 1);
}

/*
 * hidden += x w for a row-parallel weight (wo, w_down), this rank holding
 * `in` of its rows: one rank adds its product in place; a rank of a group
 * sums its share into `part`, the group all-reduces the parts, and every
 * rank adds the total. The same floats either way on the host backend
 * (DEC_SUM_BLOCKS).
 */
static cgr_status row_parallel(cgr_step *step, const dec_model *m,
                               const float *x, const float *w,
                               const uint16_t *w_bf16, float *hidden,
                               float *part, int32_t rows, int32_t in) {
  int32_t h = m->config.hidden;
  if (m->ranks == 1)
    return matmul_blocks(step, x, w, w_bf16, hidden, rows, in, h, 1,
                         DEC_SUM_BLOCKS);
  CHECK(matmul_blocks(step, x, w, w_bf16, part, rows, in, h, 0,
                      DEC_SUM_BLOCKS / m->ranks));
  CHECK(cgr_step_all_reduce(step, part, part, (size_t)rows * h,
                            CGR_DTYPE_FLOAT32, CGR_REDUCE_SUM));
  dec_add_args add = {part, hidden, (int64_t)rows * h};
  return launch(step, &dec_kernel_add, &add);
}

static cgr_status rmsnorm(cgr_step *step, const dec_config *c, const float *x,
                          const float *w, float *y, int32_t rows) {
  dec_rmsnorm_args args = {x, w, y, rows, c->hidden, c->eps};
  return launch(step, &dec_kernel_rmsnorm, &args);
}

cgr_status dec_step(cgr_step *step, void *user) {
  /* A group's step gets this process's ranks' models and runs its own
   * rank's (the first model is the process's first rank). */
  dec_model *m =
      (dec_model *)user + (cgr_step_rank(step) - ((dec_model *)user)->rank);
  const dec_config *c = &m->config;
  /* `requests` requests of q tokens each: `rows` token rows, on which
   * every kernel but attention runs row by row. */
  int32_t requests = (int32_t)cgr_step_padded_batch(step);
  int32_t q = (int32_t)cgr_step_tokens_per_request(step);
  int32_t rows = requests * q;
  /* This rank's share: its heads, its MLP columns (all of them for one). */
  int32_t h = c->hidden, heads = c->heads / m->ranks;
  int32_t width = heads * c->head_dim, mlp = c->mlp / m->ranks;
  size_t max_tokens = (size_t)rows * c->pages_per_seq * c->page_size;
  float *hidden = NULL, *x = NULL, *qkv = NULL, *attn = NULL, *gate_up = NULL,
        *act = NULL, *scores = NULL, *part = NULL;
  CHECK(cgr_step_scratch(step, (size_t)rows * h * 4, 0, (void **)&hidden));
  CHECK(cgr_step_scratch(step, (size_t)rows * h * 4, 0, (void **)&x));
  CHECK(cgr_step_scratch(step, (size_t)rows * 3 * width * 4, 0, (void **)&qkv));
  CHECK(cgr_step_scratch(step, (size_t)rows * width * 4, 0, (void **)&attn));
  CHECK(
      cgr_step_scratch(step, (size_t)rows * 2 * mlp * 4, 0, (void **)&gate_up));
  CHECK(cgr_step_scratch(step, (size_t)rows * mlp * 4, 0, (void **)&act));
  CHECK(cgr_step_scratch(step, max_tokens * heads * 4, 0, (void **)&scores));
  if (m->ranks > 1)
    CHECK(cgr_step_scratch(step, (size_t)rows * h * 4, 0, (void **)&part));
  const int32_t *ids = cgr_step_slot(step, m->slot.input_ids);
  const int32_t *positions = cgr_step_slot(step, m->slot.positions);
  const int32_t *seq_lens = cgr_step_slot(step, m->slot.seq_lens);
  const int32_t *cu_k = cgr_step_slot(step, m->slot.cu_seqlens_k);
  const int32_t *cu_q = cgr_step_slot(step, m->slot.cu_seqlens_q);
  const int32_t *out_loc = cgr_step_slot(step, m->slot.out_loc);
  const int32_t *page_table = cgr_step_slot(step, m->slot.page_table);
  float *logits = cgr_step_slot(step, m->slot.logits);
  int32_t *next_ids = cgr_step_slot(step, m->slot.next_ids);

  dec_embed_args embed = {ids, m->device.embedding, hidden, rows, h, c->vocab};
  CHECK(launch(step, &dec_kernel_embed, &embed));
  size_t layer_cache = (size_t)c->pages * c->page_size * width;
  for (int32_t l = 0; l < c->layers; ++l) {
    const dec_layer *w = &m->device.layers[l];
    float *k_cache = m->k_cache + l * layer_cache;
    float *v_cache = m->v_cache + l * layer_cache;
    CHECK(rmsnorm(step, c, hidden, w->attn_norm, x, rows));
    CHECK(matmul(step, x, w->wqkv, w->wqkv_bf16, qkv, rows, h, 3 * width, 0));
    dec_rope_args rope = {qkv, positions, rows, heads, c->head_dim, c->theta};
    CHECK(launch(step, &dec_kernel_rope, &rope));
    dec_kv_write_args kv = {qkv,   out_loc,     k_cache,      v_cache, rows,
                            heads, c->head_dim, c->page_size, c->pages};
    CHECK(launch(step, &dec_kernel_kv_write, &kv));
    dec_attention_args attention = {qkv,
                                    page_table,
                                    seq_lens,
                                    cu_k,
                                    cu_q,
                                    k_cache,
                                    v_cache,
                                    scores,
                                    attn,
                                    requests,
                                    heads,
                                    c->head_dim,
                                    c->page_size,
                                    c->pages_per_seq,
                                    1.0f / sqrtf((float)c->head_dim),
                                    q};
    CHECK(launch(step, &dec_kernel_attention, &attention));
    CHECK(row_parallel(step, m, attn, w->wo, w->wo_bf16, hidden, part, rows,
                       width));
    CHECK(rmsnorm(step, c, hidden, w->mlp_norm, x, rows));
    CHECK(matmul(step, x, w->w_gate_up, w->w_gate_up_bf16, gate_up, rows, h,
                 2 * mlp, 0));
    dec_swiglu_args swiglu = {gate_up, act, rows, mlp};
    CHECK(launch(step, &dec_kernel_swiglu, &swiglu));
    CHECK(row_parallel(step, m, act, w->w_down, w->w_down_bf16, hidden, part,
                       rows, mlp));
  }
  CHECK(rmsnorm(step, c, hidden, m->device.final_norm, x, rows));
  CHECK(matmul(step, x, m->device.lm_head, m->device.lm_head_bf16, logits, rows,
               h, c->vocab, 0));
  dec_argmax_args argmax = {logits, next_ids, rows, c->vocab};
  return launch(step, &dec_kernel_argmax, &argmax);
}
