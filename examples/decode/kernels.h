/*
 * The example model's kernels: a small decoder-only transformer's decode
 * step over a paged KV cache, in fp32 with fp32 accumulation. Each kernel
 * is a cgr_kernel (the public definition): a CUDA launcher
 * (examples/decode/kernels.cu) and a host twin (examples/decode/
 * host_kernels.c) with the same arguments and the same result up to float
 * rounding. Matrices are row-major; "rows" are the step's token rows (the
 * padded batch size times the tokens per request q: one token each),
 * except for attention, whose `rows` are requests of q tokens.
 *
 * KV cache layout, per layer: [pages][page_size][heads][head_dim] floats;
 * token slot s lives at page s / page_size, offset s % page_size.
 *
 * The matmul weights may also be bf16 (dec_kernel_matmul_bf16): the upper
 * 16 bits of an fp32, stored as uint16_t, converted to fp32 on load and
 * accumulated in fp32. Everything else stays fp32.
 */
#ifndef CGR_EXAMPLE_DECODE_KERNELS_H
#define CGR_EXAMPLE_DECODE_KERNELS_H

#include <stdint.h>
#include <string.h>

#include <cgr/cgr.h>

#ifdef __cplusplus
extern "C" {
#endif

/* h[r][:] = table[ids[r]][:] (ids outside [0, vocab) give zeros). */
typedef struct dec_embed_args {
  const int32_t *ids;
  const float *table; /* [vocab][hidden] */
  float *h;           /* [rows][hidden] */
  int32_t rows, hidden, vocab;
} dec_embed_args;

/* y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w. */
typedef struct dec_rmsnorm_args {
  const float *x;
  const float *w;
  float *y;
  int32_t rows, dim;
  float eps;
} dec_rmsnorm_args;

/*
 * y[r][n] = (accumulate ? y[r][n] : 0) + sum_k x[r][k] * w[k][n]. On the
 * host the sum runs in `blocks` contiguous ranges of k (0 or 1: one range;
 * at most DEC_MATMUL_MAX_BLOCKS), block b being k in [b * in / blocks,
 * (b + 1) * in / blocks), each summed k = first, first + 1, ... in order,
 * the blocks' sums then combined pairwise, neighbours first, as the host
 * communicator combines ranks (runtime/host/host_comm.c): so a sum in 8
 * blocks equals, bit for bit, the all-reduce over N = 1, 2, 4 or 8 ranks
 * of sums in 8 / N blocks over each rank's share of k, which is how the
 * tensor-parallel model stays exact on the host backend (model.c). The
 * GPU sums in any order and ignores `blocks`. x and y must not overlap.
 */
enum { DEC_MATMUL_MAX_BLOCKS = 8 };

typedef struct dec_matmul_args {
  const float *x; /* [rows][in] */
  const float *w; /* [in][out] */
  float *y;       /* [rows][out] */
  int32_t rows, in, out;
  int32_t accumulate;
  int32_t blocks;
} dec_matmul_args;

/* dec_matmul_args with bf16 weights: each w[k][n] is widened to fp32 and
 * the sum is the same fp32 sum in the same order on the host, so it equals
 * dec_matmul over the widened weights bit for bit there. */
typedef struct dec_matmul_bf16_args {
  const float *x;    /* [rows][in] */
  const uint16_t *w; /* [in][out], bf16 */
  float *y;          /* [rows][out] */
  int32_t rows, in, out;
  int32_t accumulate;
  int32_t blocks;
} dec_matmul_bf16_args;

/* fp32 -> bf16, rounding to nearest even; a NaN stays a NaN (quiet), an
 * fp32 past the largest bf16 becomes an infinity. */
static inline uint16_t dec_bf16_from_float(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t)((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

/* bf16 -> fp32, exactly. */
static inline float dec_float_from_bf16(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* Rotary embedding on the q and k parts of qkv[r] = [q | k | v] (each
 * heads * head_dim), pairs (2i, 2i+1) of each head rotated by
 * angle = position[r] * theta^(-2i / head_dim). */
typedef struct dec_rope_args {
  float *qkv; /* [rows][3 * heads * head_dim] */
  const int32_t *positions;
  int32_t rows, heads, head_dim;
  float theta;
} dec_rope_args;

/* k and v of row r (from qkv) into the cache at token slot out_loc[r]. */
typedef struct dec_kv_write_args {
  const float *qkv;
  const int32_t *out_loc;
  float *k_cache; /* this layer's [pages][page_size][heads][head_dim] */
  float *v_cache;
  int32_t rows, heads, head_dim, page_size, pages;
} dec_kv_write_args;

/*
 * Paged attention over `rows` requests of q = tokens_per_request query
 * tokens each (0 counts as 1: a decode step, or a prefill whose every
 * prompt token is a request of its own). Request r's token t (t < q) is
 * row cu_seqlens_q[r] + t of qkv and of out; every request carries q
 * tokens, so cu_seqlens_q is 0, q, 2q, .... Its keys are the first
 * seq_lens[r] - (q - 1 - t) tokens of the request's sequence (seq_lens[r]
 * counts the step's q new tokens, whose KV the step writes first: token t
 * sees the cache and the new tokens up to itself, causally), token i at
 * slot page_table[r][i / page_size] * page_size + i % page_size. So a
 * query computes exactly what a step of q = 1 at its position computes,
 * in the same order. `scores` is scratch: request r's token t uses the
 * entries from (cu_seqlens_k[r] * q + t * seq_lens[r]) * heads on (the
 * prefix sums of seq_lens) and leaves unnormalized exp(score - max) there.
 * Then out = sum_i p_i v_i / sum_i p_i per head. A token with no keys
 * (padding: seq_len 0) gets zeros. Trusted, not checked: page_table
 * entries name pages of the cache, seq_lens[r] <= pages_per_seq *
 * page_size, and cu_seqlens_k holds the prefix sums of seq_lens (the
 * slots' declared pad values and validation mode keep padded rows within
 * these).
 */
typedef struct dec_attention_args {
  const float *qkv;
  const int32_t *page_table; /* [rows][pages_per_seq] */
  const int32_t *seq_lens;
  const int32_t *cu_seqlens_k; /* [rows + 1] */
  const int32_t *cu_seqlens_q; /* [rows + 1] */
  const float *k_cache;
  const float *v_cache;
  float *scores; /* [rows * q * the longest seq_len][heads] */
  float *out;    /* [rows * q][heads * head_dim] */
  int32_t rows, heads, head_dim, page_size, pages_per_seq;
  float scale;
  int32_t tokens_per_request; /* q; 0 means 1 */
} dec_attention_args;

/* out[r][i] = silu(gate_up[r][i]) * gate_up[r][mlp + i]. */
typedef struct dec_swiglu_args {
  const float *gate_up; /* [rows][2 * mlp] */
  float *out;           /* [rows][mlp] */
  int32_t rows, mlp;
} dec_swiglu_args;

/* y[i] = y[i] + x[i], i < count: a residual add (of an all-reduced
 * partial sum, in the tensor-parallel model). */
typedef struct dec_add_args {
  const float *x;
  float *y;
  int64_t count;
} dec_add_args;

/* ids[r] = the first n with the largest logits[r][n]. */
typedef struct dec_argmax_args {
  const float *logits; /* [rows][vocab] */
  int32_t *ids;
  int32_t rows, vocab;
} dec_argmax_args;

extern const cgr_kernel dec_kernel_embed;
extern const cgr_kernel dec_kernel_rmsnorm;
extern const cgr_kernel dec_kernel_matmul;
extern const cgr_kernel dec_kernel_matmul_bf16;
extern const cgr_kernel dec_kernel_rope;
extern const cgr_kernel dec_kernel_kv_write;
extern const cgr_kernel dec_kernel_attention;
extern const cgr_kernel dec_kernel_swiglu;
extern const cgr_kernel dec_kernel_add;
extern const cgr_kernel dec_kernel_argmax;

/* CUDA launchers (kernels.cu), each returns a cudaError_t. */
int dec_cuda_embed(void *stream, const void *args);
int dec_cuda_rmsnorm(void *stream, const void *args);
int dec_cuda_matmul(void *stream, const void *args);
int dec_cuda_matmul_bf16(void *stream, const void *args);
int dec_cuda_rope(void *stream, const void *args);
int dec_cuda_kv_write(void *stream, const void *args);
int dec_cuda_attention(void *stream, const void *args);
int dec_cuda_swiglu(void *stream, const void *args);
int dec_cuda_add(void *stream, const void *args);
int dec_cuda_argmax(void *stream, const void *args);

/* Host twins (host_kernels.c). */
void dec_host_embed(const void *args);
void dec_host_rmsnorm(const void *args);
void dec_host_matmul(const void *args);
void dec_host_matmul_bf16(const void *args);
void dec_host_rope(const void *args);
void dec_host_kv_write(const void *args);
void dec_host_attention(const void *args);
void dec_host_swiglu(const void *args);
void dec_host_add(const void *args);
void dec_host_argmax(const void *args);

#ifdef __cplusplus
}
#endif

#endif /* CGR_EXAMPLE_DECODE_KERNELS_H */
