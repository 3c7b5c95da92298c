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

static cgr_status device_alloc(dec_model *m, size_t bytes, void **out,
                               char *why, size_t why_size) {
  *out = NULL;
#ifdef CGR_HAVE_CUDA
  if (m->on_cuda) {
    cudaError_t e = cudaMalloc(out, bytes);
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
    if (ptr != NULL)
      (void)cudaFree(ptr);
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
    return finish_on(stream, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault,
                                             stream));
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
  size_t sizes[LAYER_TENSORS];
  layer_sizes(c, sizes);
  for (int32_t l = 0; l < c->layers; ++l)
    for (int i = 0; i < LAYER_TENSORS; ++i) {
      float **dst = layer_tensor(&d->layers[l], i);
      uint16_t **dst_bf16 = layer_bf16_tensor(&d->layers[l], i);
      const float *src = *layer_tensor(&m->host.layers[l], i);
      if (dst_bf16 != NULL)
        CHECK(upload_matrix(m, dst, dst_bf16, src, sizes[i], why, why_size));
      else
        CHECK(upload(m, dst, src, sizes[i], why, why_size));
    }
  return CGR_OK;
}

/* ---- slots ----------------------------------------------------------------
 */

static cgr_status declare(cgr_runtime *rt, const char *name, cgr_slot_kind kind,
                          uint32_t elem_size, uint64_t row_elems, uint64_t pad,
                          int64_t valid_max, cgr_slot *out) {
  cgr_slot_desc desc;
  cgr_slot_desc_init(&desc, name, kind, elem_size, row_elems);
  desc.pad_value = pad;
  if (kind == CGR_SLOT_CONSTANT)
    desc.extra_elems = 1; /* cu_seqlens_q = 0..bs */
  if (valid_max > 0) {
    desc.valid_min = 0;
    desc.valid_max = valid_max;
  }
  return cgr_slot_declare(rt, &desc, out);
}

/* The metadata a serving engine's decode step takes, with the values its
 * padded rows hold: token 0, position 0, length 0 (attention over nothing),
 * and the dummy page, so a padded row writes only the dummy page's KV. */
static cgr_status declare_slots(dec_model *m) {
  const dec_config *c = &m->config;
  cgr_runtime *rt = m->rt;
  uint32_t dummy_page = (uint32_t)dec_dummy_page(c);
  uint32_t dummy_slot = dummy_page * (uint32_t)c->page_size;
  CHECK(declare(rt, "input_ids", CGR_SLOT_ROWS, 4, 1, 0, c->vocab - 1,
                &m->slot.input_ids));
  CHECK(declare(rt, "positions", CGR_SLOT_ROWS, 4, 1, 0,
                (int64_t)c->pages_per_seq * c->page_size - 1,
                &m->slot.positions));
  CHECK(declare(rt, "seq_lens", CGR_SLOT_ROWS, 4, 1, 0,
                (int64_t)c->pages_per_seq * c->page_size, &m->slot.seq_lens));
  CHECK(declare(rt, "cu_seqlens_k", CGR_SLOT_PREFIX, 4, 1, 0, 0,
                &m->slot.cu_seqlens_k));
  CHECK(declare(rt, "cu_seqlens_q", CGR_SLOT_CONSTANT, 4, 1, 0, 0,
                &m->slot.cu_seqlens_q));
  CHECK(declare(rt, "out_loc", CGR_SLOT_ROWS, 4, 1, dummy_slot,
                (int64_t)c->pages * c->page_size - 1, &m->slot.out_loc));
  CHECK(declare(rt, "page_table", CGR_SLOT_ROWS, 4, (uint64_t)c->pages_per_seq,
                dummy_page, c->pages - 1, &m->slot.page_table));
  CHECK(declare(rt, "logits", CGR_SLOT_OUTPUT, 4, (uint64_t)c->vocab, 0, 0,
                &m->slot.logits));
  CHECK(
      declare(rt, "next_ids", CGR_SLOT_OUTPUT, 4, 1, 0, 0, &m->slot.next_ids));
  /* The sampled tokens become the next step's input_ids on the device. */
  return cgr_slot_feed(rt, m->slot.next_ids, m->slot.input_ids);
}

cgr_status dec_model_create(cgr_runtime *rt, const dec_config *config,
                            dec_model *m, char *why, size_t why_size) {
  memset(m, 0, sizeof *m);
  why[0] = '\0';
  const char *problem = dec_config_problem(config);
  if (problem != NULL) {
    snprintf(why, why_size, "%s", problem);
    return CGR_E_INVALID_ARGUMENT;
  }
  m->config = *config;
  m->rt = rt;
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
                   config->hidden * sizeof(float);
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
      cudaError_t e = cudaMemsetAsync(m->k_cache, 0, m->cache_bytes, stream);
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
  status = declare_slots(m);
  if (status != CGR_OK) {
    snprintf(why, why_size, "%s", cgr_last_error(rt));
    goto fail;
  }
  return CGR_OK;

fail:
  dec_model_destroy(m);
  return status;
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
static cgr_status matmul(cgr_step *step, const float *x, const float *w,
                         const uint16_t *w_bf16, float *y, int32_t rows,
                         int32_t in, int32_t out, int32_t accumulate) {
  if (w_bf16 != NULL) {
    dec_matmul_bf16_args args = {x, w_bf16, y, rows, in, out, accumulate};
    return launch(step, &dec_kernel_matmul_bf16, &args);
  }
  dec_matmul_args args = {x, w, y, rows, in, out, accumulate};
  return launch(step, &dec_kernel_matmul, &args);
}

static cgr_status rmsnorm(cgr_step *step, const dec_config *c, const float *x,
                          const float *w, float *y, int32_t rows) {
  dec_rmsnorm_args args = {x, w, y, rows, c->hidden, c->eps};
  return launch(step, &dec_kernel_rmsnorm, &args);
}

cgr_status dec_step(cgr_step *step, void *user) {
  dec_model *m = user;
  const dec_config *c = &m->config;
  int32_t rows = (int32_t)cgr_step_padded_batch(step);
  int32_t h = c->hidden, width = c->heads * c->head_dim;
  size_t max_tokens = (size_t)rows * c->pages_per_seq * c->page_size;
  float *hidden = NULL, *x = NULL, *qkv = NULL, *attn = NULL, *gate_up = NULL,
        *act = NULL, *scores = NULL;
  CHECK(cgr_step_scratch(step, (size_t)rows * h * 4, 0, (void **)&hidden));
  CHECK(cgr_step_scratch(step, (size_t)rows * h * 4, 0, (void **)&x));
  CHECK(cgr_step_scratch(step, (size_t)rows * 3 * h * 4, 0, (void **)&qkv));
  CHECK(cgr_step_scratch(step, (size_t)rows * h * 4, 0, (void **)&attn));
  CHECK(cgr_step_scratch(step, (size_t)rows * 2 * c->mlp * 4, 0,
                         (void **)&gate_up));
  CHECK(cgr_step_scratch(step, (size_t)rows * c->mlp * 4, 0, (void **)&act));
  CHECK(cgr_step_scratch(step, max_tokens * c->heads * 4, 0, (void **)&scores));
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
    CHECK(matmul(step, x, w->wqkv, w->wqkv_bf16, qkv, rows, h, 3 * h, 0));
    dec_rope_args rope = {qkv,      positions,   rows,
                          c->heads, c->head_dim, c->theta};
    CHECK(launch(step, &dec_kernel_rope, &rope));
    dec_kv_write_args kv = {qkv,      out_loc,     k_cache,      v_cache, rows,
                            c->heads, c->head_dim, c->page_size, c->pages};
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
                                    rows,
                                    c->heads,
                                    c->head_dim,
                                    c->page_size,
                                    c->pages_per_seq,
                                    1.0f / sqrtf((float)c->head_dim)};
    CHECK(launch(step, &dec_kernel_attention, &attention));
    CHECK(matmul(step, attn, w->wo, w->wo_bf16, hidden, rows, h, h, 1));
    CHECK(rmsnorm(step, c, hidden, w->mlp_norm, x, rows));
    CHECK(matmul(step, x, w->w_gate_up, w->w_gate_up_bf16, gate_up, rows, h,
                 2 * c->mlp, 0));
    dec_swiglu_args swiglu = {gate_up, act, rows, c->mlp};
    CHECK(launch(step, &dec_kernel_swiglu, &swiglu));
    CHECK(matmul(step, act, w->w_down, w->w_down_bf16, hidden, rows, c->mlp, h,
                 1));
  }
  CHECK(rmsnorm(step, c, hidden, m->device.final_norm, x, rows));
  CHECK(matmul(step, x, m->device.lm_head, m->device.lm_head_bf16, logits, rows,
               h, c->vocab, 0));
  dec_argmax_args argmax = {logits, next_ids, rows, c->vocab};
  return launch(step, &dec_kernel_argmax, &argmax);
}

/* ---- the reference
 * ------------------------------------------------------------ */

int dec_reference_init(dec_reference *ref, const dec_config *config,
                       const dec_weights *weights, int32_t capacity) {
  memset(ref, 0, sizeof *ref);
  ref->config = config;
  ref->weights = weights;
  ref->capacity = capacity;
  size_t floats = (size_t)config->layers * capacity * config->hidden;
  ref->k = calloc(floats, sizeof(float));
  ref->v = calloc(floats, sizeof(float));
  return ref->k != NULL && ref->v != NULL;
}

void dec_reference_free(dec_reference *ref) {
  free(ref->k);
  free(ref->v);
  ref->k = ref->v = NULL;
}

/*
 * One token of one request, without cgr: the same host functions the host
 * backend runs as kernels, called directly on one row, with the request's
 * own contiguous cache (page i of the sequence is page i of the cache).
 */
int32_t dec_reference_step(dec_reference *ref, int32_t token, float *logits) {
  const dec_config *c = ref->config;
  const dec_weights *w = ref->weights;
  int32_t h = c->hidden, position = ref->length;
  int32_t pages = (ref->capacity + c->page_size - 1) / c->page_size;
  float *hidden = malloc((size_t)h * 4), *x = malloc((size_t)h * 4),
        *qkv = malloc((size_t)3 * h * 4), *attn = malloc((size_t)h * 4),
        *gate_up = malloc((size_t)2 * c->mlp * 4),
        *act = malloc((size_t)c->mlp * 4),
        *scores = malloc((size_t)ref->capacity * c->heads * 4),
        *own_logits = malloc((size_t)c->vocab * 4);
  int32_t *table = malloc((size_t)pages * sizeof(int32_t));
  int32_t next = -1;
  if (!hidden || !x || !qkv || !attn || !gate_up || !act || !scores ||
      !own_logits || !table || position >= ref->capacity)
    goto done;
  for (int32_t p = 0; p < pages; ++p)
    table[p] = p;
  int32_t seq_len = position + 1, cu_k[2] = {0, position + 1}, cu_q[2] = {0, 1},
          out_loc = position;
  dec_embed_args embed = {&token, w->embedding, hidden, 1, h, c->vocab};
  dec_host_embed(&embed);
  for (int32_t l = 0; l < c->layers; ++l) {
    const dec_layer *lw = &w->layers[l];
    float *k = ref->k + (size_t)l * ref->capacity * h;
    float *v = ref->v + (size_t)l * ref->capacity * h;
    dec_rmsnorm_args n1 = {hidden, lw->attn_norm, x, 1, h, c->eps};
    dec_host_rmsnorm(&n1);
    dec_matmul_args m1 = {x, lw->wqkv, qkv, 1, h, 3 * h, 0};
    dec_host_matmul(&m1);
    dec_rope_args rope = {qkv, &position, 1, c->heads, c->head_dim, c->theta};
    dec_host_rope(&rope);
    dec_kv_write_args kv = {qkv,         &out_loc,     k,    v, 1, c->heads,
                            c->head_dim, c->page_size, pages};
    dec_host_kv_write(&kv);
    dec_attention_args a = {qkv,
                            table,
                            &seq_len,
                            cu_k,
                            cu_q,
                            k,
                            v,
                            scores,
                            attn,
                            1,
                            c->heads,
                            c->head_dim,
                            c->page_size,
                            pages,
                            1.0f / sqrtf((float)c->head_dim)};
    dec_host_attention(&a);
    dec_matmul_args m2 = {attn, lw->wo, hidden, 1, h, h, 1};
    dec_host_matmul(&m2);
    dec_rmsnorm_args n2 = {hidden, lw->mlp_norm, x, 1, h, c->eps};
    dec_host_rmsnorm(&n2);
    dec_matmul_args m3 = {x, lw->w_gate_up, gate_up, 1, h, 2 * c->mlp, 0};
    dec_host_matmul(&m3);
    dec_swiglu_args sw = {gate_up, act, 1, c->mlp};
    dec_host_swiglu(&sw);
    dec_matmul_args m4 = {act, lw->w_down, hidden, 1, c->mlp, h, 1};
    dec_host_matmul(&m4);
  }
  dec_rmsnorm_args nf = {hidden, w->final_norm, x, 1, h, c->eps};
  dec_host_rmsnorm(&nf);
  dec_matmul_args head = {x, w->lm_head, own_logits, 1, h, c->vocab, 0};
  dec_host_matmul(&head);
  dec_argmax_args argmax = {own_logits, &next, 1, c->vocab};
  dec_host_argmax(&argmax);
  if (logits != NULL)
    memcpy(logits, own_logits, (size_t)c->vocab * 4);
  ref->length++;
done:
  free(hidden);
  free(x);
  free(qkv);
  free(attn);
  free(gate_up);
  free(act);
  free(scores);
  free(own_logits);
  free(table);
  return next;
}
