/*
 * The example model: a small decoder-only transformer with random weights
 * from a seed, run one token per row over a paged KV cache, the way a
 * serving engine's decode step is. Everything a user of cgr writes: the
 * weights and cache in device memory it owns, the slots it declares, the
 * step function cgr captures, and a plain-C reference forward (no cgr) to
 * check it against.
 */
#ifndef CGR_EXAMPLE_DECODE_MODEL_H
#define CGR_EXAMPLE_DECODE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <cgr/cgr.h>

/* How the matmul weights (wqkv, wo, w_gate_up, w_down, lm_head) are stored
 * on the device. The embedding, norms, activations, KV cache and logits are
 * fp32 either way, and every sum accumulates in fp32. */
typedef enum dec_dtype { DEC_FP32, DEC_BF16 } dec_dtype;

/* "fp32" or "bf16". */
const char *dec_dtype_name(dec_dtype dtype);

typedef struct dec_config {
  int32_t layers, hidden, heads, head_dim, mlp, vocab;
  dec_dtype dtype;       /* of the matmul weights (fp32) */
  int32_t page_size;     /* tokens per KV page (16) */
  int32_t pages;         /* KV pages in the cache, the dummy page included */
  int32_t pages_per_seq; /* page_table width: the longest sequence / 16 */
  float eps, theta;
  uint64_t seed;
} dec_config;

/* Defaults: 4 layers, hidden 512, 8 heads of 64, MLP 1,408, vocab 8,192,
 * fp32 weights, pages of 16 tokens. */
void dec_config_default(dec_config *config);

/* NULL when the config is usable, else what is wrong with it. */
const char *dec_config_problem(const dec_config *config);

/*
 * One layer's weights: [in][out] row-major. The host copy is always fp32;
 * with bf16 weights its matmul weights hold bf16 values (fp32s rounded to
 * bf16 precision), exactly what the device's bf16 arrays widen to. On the
 * device a matmul weight is either its float field (fp32) or its _bf16
 * field (bf16), the other NULL.
 */
typedef struct dec_layer {
  float *attn_norm; /* [hidden] */
  float *wqkv;      /* [hidden][3 * hidden] */
  float *wo;        /* [hidden][hidden] */
  float *mlp_norm;  /* [hidden] */
  float *w_gate_up; /* [hidden][2 * mlp] */
  float *w_down;    /* [mlp][hidden] */
  uint16_t *wqkv_bf16, *wo_bf16, *w_gate_up_bf16, *w_down_bf16;
} dec_layer;

typedef struct dec_weights {
  float *embedding;  /* [vocab][hidden] */
  float *final_norm; /* [hidden] */
  float *lm_head;    /* [hidden][vocab] */
  uint16_t *lm_head_bf16;
  dec_layer *layers;
} dec_weights;

/* The model on the runtime's device: weights, the KV cache, and the slots
 * of the decode step. */
typedef struct dec_model {
  dec_config config;
  cgr_runtime *rt;
  int on_cuda;
  dec_weights host;         /* host copies (the reference reads them) */
  dec_weights device;       /* the step reads these */
  float *k_cache, *v_cache; /* device: [layers][pages][page_size][width] */
  size_t weight_bytes, cache_bytes;
  struct {
    cgr_slot input_ids, positions, seq_lens, cu_seqlens_k, cu_seqlens_q,
        out_loc, page_table, logits, next_ids;
  } slot;
} dec_model;

/* The dummy page, whose slots padded rows write: the last page. */
static inline int32_t dec_dummy_page(const dec_config *config) {
  return config->pages - 1;
}

/*
 * Makes random weights from config->seed (the matmul weights rounded to
 * bf16 when config->dtype is DEC_BF16), copies them (as bf16 arrays then)
 * and a zeroed KV cache to rt's device, declares the slots (next_ids feeds
 * input_ids). On failure returns a status and, in `why`, a sentence.
 */
cgr_status dec_model_create(cgr_runtime *rt, const dec_config *config,
                            dec_model *model, char *why, size_t why_size);
void dec_model_destroy(dec_model *model);

/* The decode step (cgr_step_fn); user is the dec_model. */
cgr_status dec_step(cgr_step *step, void *user);

/* Copies `bytes` between the host and the model's device memory (an
 * output to read, weights to write), synchronously. */
cgr_status dec_copy(const dec_model *model, void *dst, const void *src,
                    size_t bytes);

/* xorshift64*: the example's one source of seeded randomness (weights and
 * traces). */
uint64_t dec_random(uint64_t *state);

/*
 * The plain-C reference: one request's forward over its own contiguous KV
 * cache, token by token, in the same float operations and order as the host
 * kernels. A dec_reference holds one request's cache.
 */
typedef struct dec_reference {
  const dec_config *config;
  const dec_weights *weights;
  float *k, *v; /* [layers][capacity][width] */
  int32_t length, capacity;
} dec_reference;

int dec_reference_init(dec_reference *ref, const dec_config *config,
                       const dec_weights *weights, int32_t capacity);
void dec_reference_free(dec_reference *ref);
/* Appends `token` at the next position; returns the argmax of its logits
 * (and the logits in `logits`, vocab floats, when not NULL). */
int32_t dec_reference_step(dec_reference *ref, int32_t token, float *logits);

#endif /* CGR_EXAMPLE_DECODE_MODEL_H */
