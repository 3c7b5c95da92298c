/*
 * The host twins of the example model's kernels, and the cgr_kernel
 * definitions that pair them with the CUDA launchers. Straight loops in a
 * fixed order: the plain-C reference (reference.c) computes the same sums
 * in the same order, so on the host backend a replayed step matches it
 * exactly.
 */
#include <math.h>
#include <string.h>

#include "kernels.h"

#ifdef CGR_HAVE_CUDA
#define CUDA_LAUNCHER(fn) fn
#else
#define CUDA_LAUNCHER(fn) NULL
#endif

#define KERNEL(kernel)                                                         \
  const cgr_kernel dec_kernel_##kernel = {                                     \
      .name = "decode_" #kernel,                                               \
      .args_size = sizeof(dec_##kernel##_args),                                \
      .cuda_launch = CUDA_LAUNCHER(dec_cuda_##kernel),                         \
      .host_run = dec_host_##kernel,                                           \
  };
KERNEL(embed)
KERNEL(rmsnorm)
KERNEL(matmul)
KERNEL(matmul_bf16)
KERNEL(rope)
KERNEL(kv_write)
KERNEL(attention)
KERNEL(swiglu)
KERNEL(add)
KERNEL(argmax)
#undef KERNEL

void dec_host_embed(const void *opaque) {
  const dec_embed_args *a = opaque;
  for (int32_t r = 0; r < a->rows; ++r) {
    float *h = a->h + (int64_t)r * a->hidden;
    int32_t id = a->ids[r];
    if (id < 0 || id >= a->vocab)
      memset(h, 0, (size_t)a->hidden * sizeof *h);
    else
      memcpy(h, a->table + (int64_t)id * a->hidden,
             (size_t)a->hidden * sizeof *h);
  }
}

void dec_host_rmsnorm(const void *opaque) {
  const dec_rmsnorm_args *a = opaque;
  for (int32_t r = 0; r < a->rows; ++r) {
    const float *x = a->x + (int64_t)r * a->dim;
    float *y = a->y + (int64_t)r * a->dim;
    float sum = 0.0f;
    for (int32_t i = 0; i < a->dim; ++i)
      sum += x[i] * x[i];
    float inv = 1.0f / sqrtf(sum / (float)a->dim + a->eps);
    for (int32_t i = 0; i < a->dim; ++i)
      y[i] = x[i] * inv * a->w[i];
  }
}

/* k outer, n inner, over tiles of outputs: each y[n] still sums its
 * products in k order within a block (the order the contract names),
 * while w is read along its rows instead of down its columns. The blocks'
 * sums combine pairwise as they complete (a binary counter: two sums that
 * each cover the same number of blocks merge at once), which is the
 * neighbours-first tree of the contract. `bf16` is a constant at each
 * call, so the compiler makes one loop per weight type. */
enum { MATMUL_TILE = 1024 };

static inline void block_sum(const float *x, const void *weights, int bf16,
                             int32_t k0, int32_t k1, int32_t out, int32_t first,
                             int32_t count, float *sum) {
  for (int32_t n = 0; n < count; ++n)
    sum[n] = 0.0f;
  for (int32_t k = k0; k < k1; ++k) {
    int64_t row = (int64_t)k * out + first;
    float xk = x[k];
    if (bf16) {
      const uint16_t *w = (const uint16_t *)weights + row;
      for (int32_t n = 0; n < count; ++n)
        sum[n] += xk * dec_float_from_bf16(w[n]);
    } else {
      const float *w = (const float *)weights + row;
      for (int32_t n = 0; n < count; ++n)
        sum[n] += xk * w[n];
    }
  }
}

static inline void matmul(const float *xs, const void *weights, int bf16,
                          float *ys, int32_t rows, int32_t in, int32_t out,
                          int32_t accumulate, int32_t blocks) {
  /* Pending sums, and how many blocks each covers: at most one per power
   * of two up to DEC_MATMUL_MAX_BLOCKS. */
  float stack[4][MATMUL_TILE];
  int32_t covers[4];
  if (blocks < 1)
    blocks = 1;
  if (blocks > DEC_MATMUL_MAX_BLOCKS)
    blocks = DEC_MATMUL_MAX_BLOCKS;
  for (int32_t r = 0; r < rows; ++r) {
    const float *x = xs + (int64_t)r * in;
    float *y = ys + (int64_t)r * out;
    for (int32_t first = 0; first < out; first += MATMUL_TILE) {
      int32_t count = out - first < MATMUL_TILE ? out - first : MATMUL_TILE;
      int depth = 0;
      for (int32_t b = 0; b < blocks; ++b) {
        int32_t k0 = (int32_t)((int64_t)b * in / blocks);
        int32_t k1 = (int32_t)((int64_t)(b + 1) * in / blocks);
        block_sum(x, weights, bf16, k0, k1, out, first, count, stack[depth]);
        covers[depth++] = 1;
        while (depth >= 2 && covers[depth - 2] == covers[depth - 1]) {
          for (int32_t n = 0; n < count; ++n)
            stack[depth - 2][n] += stack[depth - 1][n];
          covers[depth - 2] *= 2;
          --depth;
        }
      }
      /* Blocks not a power of two leave several sums: the later ones
       * first, as the tree carries an unpaired neighbour up. */
      for (; depth >= 2; --depth)
        for (int32_t n = 0; n < count; ++n)
          stack[depth - 2][n] += stack[depth - 1][n];
      for (int32_t n = 0; n < count; ++n)
        y[first + n] = accumulate ? y[first + n] + stack[0][n] : stack[0][n];
    }
  }
}

void dec_host_matmul(const void *opaque) {
  const dec_matmul_args *a = opaque;
  matmul(a->x, a->w, 0, a->y, a->rows, a->in, a->out, a->accumulate, a->blocks);
}

/* The same products, each weight widened from bf16 as it is read. */
void dec_host_matmul_bf16(const void *opaque) {
  const dec_matmul_bf16_args *a = opaque;
  matmul(a->x, a->w, 1, a->y, a->rows, a->in, a->out, a->accumulate, a->blocks);
}

void dec_host_rope(const void *opaque) {
  const dec_rope_args *a = opaque;
  int32_t width = a->heads * a->head_dim;
  for (int32_t r = 0; r < a->rows; ++r) {
    float *row = a->qkv + (int64_t)r * 3 * width;
    for (int part = 0; part < 2; ++part) /* q, then k */
      for (int32_t h = 0; h < a->heads; ++h)
        for (int32_t i = 0; i < a->head_dim / 2; ++i) {
          float *x = row + part * width + h * a->head_dim + 2 * i;
          float angle = (float)a->positions[r] *
                        powf(a->theta, -2.0f * (float)i / (float)a->head_dim);
          float c = cosf(angle), s = sinf(angle);
          float x0 = x[0], x1 = x[1];
          x[0] = x0 * c - x1 * s;
          x[1] = x0 * s + x1 * c;
        }
  }
}

void dec_host_kv_write(const void *opaque) {
  const dec_kv_write_args *a = opaque;
  int32_t width = a->heads * a->head_dim;
  int64_t slots = (int64_t)a->pages * a->page_size;
  for (int32_t r = 0; r < a->rows; ++r) {
    int64_t slot = a->out_loc[r];
    if (slot < 0 || slot >= slots)
      continue;
    const float *row = a->qkv + (int64_t)r * 3 * width;
    memcpy(a->k_cache + slot * width, row + width,
           (size_t)width * sizeof(float));
    memcpy(a->v_cache + slot * width, row + 2 * width,
           (size_t)width * sizeof(float));
  }
}

/* One query token over its first `len` keys: the loop a decode step of one
 * token per request runs, so a token of a verify step (q > 1) computes
 * the very floats the same token would as a step of its own. */
static void attend(const dec_attention_args *a, const float *q_row,
                   const int32_t *pages, int32_t len, float *scores,
                   float *out) {
  int32_t width = a->heads * a->head_dim;
  for (int32_t h = 0; h < a->heads; ++h) {
    const float *q = q_row + h * a->head_dim;
    float *o = out + h * a->head_dim;
    memset(o, 0, (size_t)a->head_dim * sizeof *o);
    if (len <= 0)
      continue;
    float max = -INFINITY;
    for (int32_t t = 0; t < len; ++t) {
      int64_t slot =
          (int64_t)pages[t / a->page_size] * a->page_size + t % a->page_size;
      const float *k = a->k_cache + slot * width + h * a->head_dim;
      float dot = 0.0f;
      for (int32_t d = 0; d < a->head_dim; ++d)
        dot += q[d] * k[d];
      float score = a->scale * dot;
      scores[(int64_t)t * a->heads + h] = score;
      if (score > max)
        max = score;
    }
    float sum = 0.0f;
    for (int32_t t = 0; t < len; ++t) {
      float p = expf(scores[(int64_t)t * a->heads + h] - max);
      scores[(int64_t)t * a->heads + h] = p;
      sum += p;
    }
    for (int32_t t = 0; t < len; ++t) {
      int64_t slot =
          (int64_t)pages[t / a->page_size] * a->page_size + t % a->page_size;
      const float *v = a->v_cache + slot * width + h * a->head_dim;
      float p = scores[(int64_t)t * a->heads + h] / sum;
      for (int32_t d = 0; d < a->head_dim; ++d)
        o[d] += p * v[d];
    }
  }
}

void dec_host_attention(const void *opaque) {
  const dec_attention_args *a = opaque;
  int32_t width = a->heads * a->head_dim;
  int32_t q = a->tokens_per_request > 1 ? a->tokens_per_request : 1;
  for (int32_t r = 0; r < a->rows; ++r) {
    int32_t seq_len = a->seq_lens[r];
    const int32_t *pages = a->page_table + (int64_t)r * a->pages_per_seq;
    for (int32_t t = 0; t < q; ++t) {
      int64_t row = (int64_t)a->cu_seqlens_q[r] + t;
      /* Padding (seq_len 0) attends to nothing, whatever its token. */
      int32_t len = seq_len > 0 ? seq_len - (q - 1 - t) : 0;
      float *scores =
          a->scores +
          ((int64_t)a->cu_seqlens_k[r] * q + (int64_t)t * seq_len) * a->heads;
      attend(a, a->qkv + row * 3 * width, pages, len, scores,
             a->out + row * width);
    }
  }
}

void dec_host_swiglu(const void *opaque) {
  const dec_swiglu_args *a = opaque;
  for (int32_t r = 0; r < a->rows; ++r) {
    const float *gu = a->gate_up + (int64_t)r * 2 * a->mlp;
    float *out = a->out + (int64_t)r * a->mlp;
    for (int32_t i = 0; i < a->mlp; ++i) {
      float g = gu[i];
      out[i] = g / (1.0f + expf(-g)) * gu[a->mlp + i];
    }
  }
}

void dec_host_add(const void *opaque) {
  const dec_add_args *a = opaque;
  for (int64_t i = 0; i < a->count; ++i)
    a->y[i] = a->y[i] + a->x[i];
}

void dec_host_argmax(const void *opaque) {
  const dec_argmax_args *a = opaque;
  for (int32_t r = 0; r < a->rows; ++r) {
    const float *logits = a->logits + (int64_t)r * a->vocab;
    int32_t best = 0;
    for (int32_t n = 1; n < a->vocab; ++n)
      if (logits[n] > logits[best])
        best = n;
    a->ids[r] = best;
  }
}
