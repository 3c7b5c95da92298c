/*
 * The example model: a small decoder-only transformer with random weights
 * from a seed, run over a paged KV cache the way a serving engine's decode
 * step is: q tokens per request (1 for plain decoding, K + 1 for a verify
 * step of speculative decoding), one token per row. Everything a user of
 * cgr writes: the weights and cache in device memory it owns, the slots it
 * declares, the step function cgr captures, and a plain-C reference
 * forward (no cgr) to check it against.
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

/*
 * The row-parallel matmuls (wo, w_down) sum their k in this many blocks,
 * combined pairwise (kernels.h's dec_matmul_args.blocks): a rank of N
 * holds 8 / N of them and the group's all-reduce combines the ranks the
 * same way, so on the host backend --tp 1, 2, 4 and 8 compute the same
 * floats, bit for bit.
 */
#define DEC_SUM_BLOCKS 8

/*
 * The model on the runtime's device: weights, the KV cache, and the slots
 * of the decode step. Tensor parallel (Megatron's split), rank `rank` of
 * `ranks` holds the heads [rank * heads / ranks, (rank + 1) * heads /
 * ranks): their columns of wqkv, their rows of wo and their KV cache; and
 * the same share of the MLP: its columns of w_gate_up (gate and up), its
 * rows of w_down. The embedding, the norms and lm_head are whole on every
 * rank. One all-reduce after attention and one after the MLP give every
 * rank the same hidden state, so every rank computes the same logits and
 * tokens. One runtime: rank 0 of 1, group NULL.
 */
typedef struct dec_model {
  dec_config config;
  cgr_runtime *rt;
  int on_cuda;
  int32_t rank, ranks;
  cgr_group *group;               /* NULL for one runtime */
  struct dec_model *group_models; /* this process's ranks'; NULL for one */
  dec_weights host;               /* host copies (the reference reads them) */
  dec_weights device;             /* the step reads these */
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

/* NULL when the model splits over `ranks` ranks (1, 2, 4 or 8 of them,
 * dividing the heads; with more than one, hidden and mlp divisible by
 * DEC_SUM_BLOCKS), else a sentence saying why not. */
const char *dec_tp_problem(const dec_config *config, int32_t ranks);

/*
 * The model split over the group's ranks: models[r] (an array of
 * cgr_group_ranks(group), this process's ranks) is the share of rank
 * cgr_group_rank(group, r) of cgr_group_world_ranks(group), on
 * cgr_group_runtime(group, r),
 * with the same random weights as dec_model_create's, and the slots
 * declared once through the group. Capture with cgr_group_capture(group,
 * dec_step, models). On failure returns a status and, in `why`, a
 * sentence; nothing is left.
 */
cgr_status dec_model_create_group(cgr_group *group, const dec_config *config,
                                  dec_model *models, char *why,
                                  size_t why_size);
/* Destroys every rank's share (after the group's work is done). */
void dec_model_destroy_group(dec_model *models, int32_t ranks);

/* The decode step (cgr_step_fn); user is the dec_model, or for a group
 * the array of every rank's (the step takes cgr_step_rank's). */
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
