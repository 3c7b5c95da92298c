// CUDA launchers of examples/decode/kernels.h: the example model's decode
// step in fp32 with fp32 accumulation (the matmul weights fp32 or bf16). Each
// kernel takes its argument struct by value and derives its own grid; none
// allocates, synchronizes with the host or knows that it may be captured into a
// graph. The host twins in host_kernels.c define the results; these kernels
// match them up to float rounding (summation order differs).
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>

#include "kernels.h"

namespace {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Element-wise kernels use 256 threads and at most this many blocks: enough
// to keep every SM of an H100 busy several times over, the loops stride.
constexpr int kFlatThreads = 256;
constexpr int64_t kFlatMaxBlocks = 4096;

unsigned flat_grid(int64_t count) {
  int64_t blocks = (count + kFlatThreads - 1) / kFlatThreads;
  if (blocks < 1)
    blocks = 1;
  return (unsigned)(blocks < kFlatMaxBlocks ? blocks : kFlatMaxBlocks);
}

// Every launcher takes its status from the launch itself: cudaLaunchKernelExC
// returns what went wrong with this launch and nothing else, where
// cudaGetLastError() after <<<...>>> would also return, and clear, an error
// this program left behind earlier on the thread (a failed cudaMalloc, say),
// so cgr would report the launch as failed and the program would lose its
// error. The arguments are passed by address: CUDA copies the struct from
// where it points at launch. A failed launch's own error is cleared after
// it is returned (the program's runtime records it as its last error, and
// cgr, which carries a CUDA runtime of its own, cannot clear it here).
template <typename Args>
cudaError_t launch(void (*kernel)(Args), dim3 grid, dim3 block,
                   cudaStream_t stream, const Args *args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = 0;
  config.stream = stream;
  config.attrs = nullptr;
  config.numAttrs = 0;
  void *params[] = {const_cast<Args *>(args)};
  const cudaError_t err =
      cudaLaunchKernelExC(&config, (const void *)kernel, params);
  if (err != cudaSuccess)
    (void)cudaGetLastError();
  return err;
}

// The largest grid.y a launch may use.
constexpr int64_t kMaxGridY = 65535;
// The largest grid.x a launch may use.
constexpr int64_t kMaxGridX = 2147483647;

__device__ __forceinline__ float warp_sum(float v) {
  // A butterfly leaves the same bits in every lane because each step adds
  // the same two values, only commuted.
#pragma unroll
  for (int o = kWarpSize / 2; o > 0; o >>= 1)
    v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = kWarpSize / 2; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// Block reductions over kThreads threads (a multiple of 32). `scratch` holds
// kThreads / 32 + 1 floats; the result lands in its last slot so that a
// second reduction through the same scratch cannot overwrite it before every
// thread has read it (its first write comes after a barrier all readers
// must pass first).
template <int kThreads>
__device__ __forceinline__ float block_sum(float v, float *scratch) {
  constexpr int kWarps = kThreads / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  v = warp_sum(v);
  if (lane == 0)
    scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < kWarps ? scratch[lane] : 0.0f;
    w = warp_sum(w);
    if (lane == 0)
      scratch[kWarps] = w;
  }
  __syncthreads();
  return scratch[kWarps];
}

template <int kThreads>
__device__ __forceinline__ float block_max(float v, float *scratch) {
  constexpr int kWarps = kThreads / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  v = warp_max(v);
  if (lane == 0)
    scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < kWarps ? scratch[lane] : -INFINITY;
    w = warp_max(w);
    if (lane == 0)
      scratch[kWarps] = w;
  }
  __syncthreads();
  return scratch[kWarps];
}

// ---------------------------------------------------------------------------
// embed
// ---------------------------------------------------------------------------

__global__ void __launch_bounds__(kFlatThreads)
    embed_kernel(const dec_embed_args a) {
  const int32_t *__restrict__ ids = a.ids;
  const float *__restrict__ table = a.table;
  float *__restrict__ h = a.h;
  const int64_t total = (int64_t)a.rows * a.hidden;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t r = i / a.hidden;
    const int64_t c = i - r * a.hidden;
    const int32_t id = __ldg(ids + r);
    // Out-of-range ids (padding rows) read nothing and give zeros.
    h[i] = (id >= 0 && id < a.vocab) ? __ldg(table + (int64_t)id * a.hidden + c)
                                     : 0.0f;
  }
}

// ---------------------------------------------------------------------------
// rmsnorm
// ---------------------------------------------------------------------------

constexpr int kNormThreads = 256;

__global__ void __launch_bounds__(kNormThreads)
    rmsnorm_kernel(const dec_rmsnorm_args a) {
  __shared__ float scratch[kNormThreads / kWarpSize + 1];
  const float *__restrict__ x = a.x + (int64_t)blockIdx.x * a.dim;
  const float *__restrict__ w = a.w;
  float *__restrict__ y = a.y + (int64_t)blockIdx.x * a.dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < a.dim; i += kNormThreads) {
    const float v = __ldg(x + i);
    ss = fmaf(v, v, ss);
  }
  ss = block_sum<kNormThreads>(ss, scratch);
  // Division by a correctly rounded sqrt, as the host twin does, rather than
  // rsqrtf's couple of ulps: it runs once per row.
  const float inv = 1.0f / sqrtf(ss / (float)a.dim + a.eps);
  for (int i = threadIdx.x; i < a.dim; i += kNormThreads)
    y[i] = __ldg(x + i) * inv * __ldg(w + i);
}

// ---------------------------------------------------------------------------
// matmul
// ---------------------------------------------------------------------------

// A block owns 32 output columns (one per lane, so every load of a row of w
// is one coalesced 128-byte line) and kTileRows rows of x. Its 8 warps split
// k: each chunk of 256 k values stages x[rows][chunk] in shared memory and
// gives each warp 32 consecutive k, whose 32 loads of w are all issued
// before their FMAs so that many lines are in flight per warp (decode is
// bound by the bandwidth of reading w). The warps' partial sums meet in
// shared memory at the end. Reading w once per row tile is what the row
// tile buys; launching at the smallest tile that holds the batch avoids
// wasted FMAs and shared-memory traffic when rows is 1. The same kernel
// reads bf16 weights (dec_matmul_bf16_args): a warp's row of w is then a
// coalesced 64 bytes, half the bytes for the same FMAs, each weight widened
// to fp32 as it is loaded.
constexpr int kMmThreads = 256;
constexpr int kMmWarps = kMmThreads / kWarpSize;
constexpr int kMmTileN = kWarpSize;
constexpr int kMmChunkK = 256;
constexpr int kMmKPerWarp = kMmChunkK / kMmWarps;
static_assert(kMmKPerWarp % 8 == 0, "x is read from shared memory as float4");
// The partial sums [warps][rows][32] reuse the staging buffer [rows][chunk].
static_assert(kMmWarps * kMmTileN <= kMmChunkK, "reduction must fit staging");

// A weight as fp32: fp32 as it is, bf16 widened (its bits are the upper half
// of the fp32's, so the widening is exact).
__device__ __forceinline__ float load_weight(const float *w) {
  return __ldg(w);
}

__device__ __forceinline__ float load_weight(const uint16_t *w) {
  return __uint_as_float((uint32_t)__ldg(w) << 16);
}

// Args: dec_matmul_args or dec_matmul_bf16_args, which differ only in the
// type of w.
template <int kTileRows, typename Args>
__global__ void __launch_bounds__(kMmThreads) matmul_kernel(const Args a) {
  __shared__ __align__(16) float s_buf[kTileRows * kMmChunkK];
  const float *__restrict__ x = a.x;
  decltype(a.w) __restrict__ w = a.w;
  float *__restrict__ y = a.y;
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int n0 = blockIdx.x * kMmTileN;
  const int n = n0 + lane;
  const bool n_ok = n < a.out;
  const int kw = warp * kMmKPerWarp;

  // Row tiles stride over grid.y so that any rows count fits its limit.
  for (int r0 = blockIdx.y * kTileRows; r0 < a.rows;
       r0 += gridDim.y * kTileRows) {
    float acc[kTileRows];
#pragma unroll
    for (int j = 0; j < kTileRows; ++j)
      acc[j] = 0.0f;

    for (int k0 = 0; k0 < a.in; k0 += kMmChunkK) {
      // Rows and k past the ends stage zeros, so the FMAs below need no
      // bounds of their own on x.
      for (int i = threadIdx.x; i < kTileRows * kMmChunkK; i += kMmThreads) {
        const int j = i / kMmChunkK;
        const int kk = i % kMmChunkK;
        const int r = r0 + j;
        const int k = k0 + kk;
        s_buf[i] =
            (r < a.rows && k < a.in) ? __ldg(x + (int64_t)r * a.in + k) : 0.0f;
      }
      __syncthreads();

      float wv[kMmKPerWarp];
#pragma unroll
      for (int u = 0; u < kMmKPerWarp; ++u) {
        const int k = k0 + kw + u;
        wv[u] =
            (n_ok && k < a.in) ? load_weight(w + (int64_t)k * a.out + n) : 0.0f;
      }
#pragma unroll
      for (int j = 0; j < kTileRows; ++j) {
        const float4 *xs =
            reinterpret_cast<const float4 *>(s_buf + j * kMmChunkK + kw);
#pragma unroll
        for (int u = 0; u < kMmKPerWarp / 4; ++u) {
          const float4 xv = xs[u];
          acc[j] = fmaf(xv.x, wv[4 * u + 0], acc[j]);
          acc[j] = fmaf(xv.y, wv[4 * u + 1], acc[j]);
          acc[j] = fmaf(xv.z, wv[4 * u + 2], acc[j]);
          acc[j] = fmaf(xv.w, wv[4 * u + 3], acc[j]);
        }
      }
      // The next chunk overwrites what other warps may still be reading.
      __syncthreads();
    }

    // Every warp has left the chunk loop through its final barrier (or never
    // touched s_buf), so the staging buffer is free for the partial sums.
#pragma unroll
    for (int j = 0; j < kTileRows; ++j)
      s_buf[(warp * kTileRows + j) * kMmTileN + lane] = acc[j];
    __syncthreads();
    for (int i = threadIdx.x; i < kTileRows * kMmTileN; i += kMmThreads) {
      const int j = i / kMmTileN;
      const int c = i % kMmTileN;
      const int r = r0 + j;
      const int nn = n0 + c;
      if (r < a.rows && nn < a.out) {
        float s = 0.0f;
#pragma unroll
        for (int ww = 0; ww < kMmWarps; ++ww)
          s += s_buf[(ww * kTileRows + j) * kMmTileN + c];
        float *dst = y + (int64_t)r * a.out + nn;
        // The residual add reads y in the same thread that writes it.
        *dst = (a.accumulate ? *dst : 0.0f) + s;
      }
    }
    // The next row tile stages into the buffer this one just read.
    __syncthreads();
  }
}

template <int kTileRows, typename Args>
cudaError_t launch_matmul(cudaStream_t stream, const Args &a) {
  const int64_t tiles_n = ((int64_t)a.out + kMmTileN - 1) / kMmTileN;
  int64_t tiles_r = ((int64_t)a.rows + kTileRows - 1) / kTileRows;
  if (tiles_r > kMaxGridY)
    tiles_r = kMaxGridY;
  const dim3 grid((unsigned)tiles_n, (unsigned)tiles_r);
  return launch(matmul_kernel<kTileRows, Args>, grid, kMmThreads, stream, &a);
}

// The smallest row tile that holds the batch (16 past 8 rows).
template <typename Args> int launch_matmul_any(void *stream, const Args *a) {
  // in == 0 still has work: y becomes (accumulate ? y : 0) + an empty sum.
  if (a->rows <= 0 || a->out <= 0)
    return (int)cudaSuccess;
  if (a->in < 0)
    return (int)cudaErrorInvalidValue;
  const cudaStream_t s = (cudaStream_t)stream;
  cudaError_t err;
  if (a->rows <= 1)
    err = launch_matmul<1>(s, *a);
  else if (a->rows <= 2)
    err = launch_matmul<2>(s, *a);
  else if (a->rows <= 4)
    err = launch_matmul<4>(s, *a);
  else if (a->rows <= 8)
    err = launch_matmul<8>(s, *a);
  else
    err = launch_matmul<16>(s, *a);
  return (int)err;
}

// ---------------------------------------------------------------------------
// rope
// ---------------------------------------------------------------------------

// 1 / pi rounded to double.
constexpr double kInvPi = 0.318309886183790671537767526745028724;

__global__ void __launch_bounds__(kFlatThreads)
    rope_kernel(const dec_rope_args a) {
  float *__restrict__ qkv = a.qkv;
  const int32_t *__restrict__ positions = a.positions;
  const int half = a.head_dim / 2;
  const int64_t width = (int64_t)a.heads * a.head_dim;
  const int64_t total = (int64_t)a.rows * a.heads * half;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
       idx < total; idx += stride) {
    const int i = (int)(idx % half);
    const int64_t rh = idx / half;
    const int h = (int)(rh % a.heads);
    const int64_t r = rh / a.heads;
    // The host twin's expression, operand for operand, in float: the same
    // float angle keeps the two sides within rounding of sinf/cosf.
    const float inv_freq = powf(a.theta, -2.0f * (float)i / (float)a.head_dim);
    const float angle = (float)__ldg(positions + r) * inv_freq;
    // sin and cos of that float angle, evaluated as sincospi(angle / pi) in
    // double: the double quotient is exact to far below a float ulp of the
    // result, and sincospi reduces its argument exactly, whereas sincosf
    // carries a Payne-Hanek slow path with a local-memory stack frame for
    // large angles (positions in the thousands reach it).
    double sd, cd;
    sincospi((double)angle * kInvPi, &sd, &cd);
    const float s = (float)sd;
    const float c = (float)cd;
    // q and k of the same (row, head, pair) share the angle.
    float *q = qkv + r * 3 * width + (int64_t)h * a.head_dim + 2 * i;
    float *k = q + width;
    const float q0 = q[0], q1 = q[1];
    q[0] = q0 * c - q1 * s;
    q[1] = q0 * s + q1 * c;
    const float k0 = k[0], k1 = k[1];
    k[0] = k0 * c - k1 * s;
    k[1] = k0 * s + k1 * c;
  }
}

// ---------------------------------------------------------------------------
// kv_write
// ---------------------------------------------------------------------------

__global__ void __launch_bounds__(kFlatThreads)
    kv_write_kernel(const dec_kv_write_args a) {
  const float *__restrict__ qkv = a.qkv;
  const int32_t *__restrict__ out_loc = a.out_loc;
  float *__restrict__ k_cache = a.k_cache;
  float *__restrict__ v_cache = a.v_cache;
  const int64_t width = (int64_t)a.heads * a.head_dim;
  const int64_t slots = (int64_t)a.pages * a.page_size;
  const int64_t total = (int64_t)a.rows * width;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t r = i / width;
    const int64_t e = i - r * width;
    const int64_t slot = __ldg(out_loc + r);
    // Padding rows carry a slot outside the cache and write nothing.
    if (slot < 0 || slot >= slots)
      continue;
    // With the [pages][page_size] layout, page * page_size + offset is the
    // slot itself; spelled out for the reader of the layout.
    const int64_t page = slot / a.page_size;
    const int64_t off = slot % a.page_size;
    const int64_t dst = (page * a.page_size + off) * width + e;
    const float *src = qkv + r * 3 * width + width + e;
    k_cache[dst] = __ldg(src);
    v_cache[dst] = __ldg(src + width);
  }
}

// ---------------------------------------------------------------------------
// attention
// ---------------------------------------------------------------------------

// One block per (query token, head): request r's token t (of q per request)
// is row cu_seqlens_q[r] + t and sees the first seq_lens[r] - (q - 1 - t)
// keys, so each query runs the loop a step of one token per request runs
// for it. Phase 1: threads over tokens compute the
// scores (each thread reads its token's whole key, as float4 when the
// layout allows), write them to `scores` and reduce the max. Phase 2: the
// same threads revisit the same tokens, replace each score by
// p = exp(score - max) (what the host twin leaves in `scores`) and reduce
// the sum; the p of the first kAttnProbCache tokens also stay in shared
// memory. Phase 3: threads over head_dim (several groups of them when head_dim
// is small, each group over a stride of tokens) accumulate p_t * v_t with
// coalesced loads of v, and the groups meet in shared memory.
constexpr int kAttnThreads = 256;
constexpr int kAttnMaxHeadDim = 256;
constexpr int kAttnProbCache = 4096;
static_assert(kAttnMaxHeadDim <= kAttnThreads,
              "phase 3 gives each dimension at least one thread");

template <bool kVec4>
__global__ void __launch_bounds__(kAttnThreads)
    attention_kernel(const dec_attention_args a) {
  __shared__ __align__(16) float s_q[kAttnMaxHeadDim];
  __shared__ float s_p[kAttnProbCache];
  __shared__ float s_part[kAttnThreads];
  __shared__ float s_red[kAttnThreads / kWarpSize + 1];

  const int tid = threadIdx.x;
  const int hd = a.head_dim;
  const int heads = a.heads;
  const int q_per = a.tokens_per_request > 1 ? a.tokens_per_request : 1;
  const int64_t query = blockIdx.x / heads;
  const int r = (int)(query / q_per);
  const int tok = (int)(query % q_per);
  const int h = blockIdx.x % heads;
  const int64_t width = (int64_t)heads * hd;
  const int64_t head_off = (int64_t)h * hd;
  const int64_t row = (int64_t)__ldg(a.cu_seqlens_q + r) + tok;
  float *__restrict__ out = a.out + row * width + head_off;

  const int seq_len = __ldg(a.seq_lens + r);
  const int len = seq_len > 0 ? seq_len - (q_per - 1 - tok) : 0;
  if (len <= 0) {
    // Padding rows: the whole block leaves here together, before any
    // barrier.
    for (int d = tid; d < hd; d += kAttnThreads)
      out[d] = 0.0f;
    return;
  }

  const float *__restrict__ q = a.qkv + row * 3 * width + head_off;
  for (int d = tid; d < hd; d += kAttnThreads)
    s_q[d] = __ldg(q + d);
  __syncthreads();

  const int32_t *__restrict__ pages =
      a.page_table + (int64_t)r * a.pages_per_seq;
  const int ps = a.page_size;
  const float *__restrict__ k_cache = a.k_cache;
  const float *__restrict__ v_cache = a.v_cache;
  // Scores of key t are at scores[(cu_seqlens_k[r] * q + tok * seq_len + t)
  // * heads + h]. They are written and read back within this block, so plain
  // (coherent) loads read them, never the read-only path.
  float *__restrict__ scores =
      a.scores +
      ((int64_t)__ldg(a.cu_seqlens_k + r) * q_per + (int64_t)tok * seq_len) *
          heads +
      h;

  float local_max = -INFINITY;
  for (int t = tid; t < len; t += kAttnThreads) {
    const int64_t slot = (int64_t)__ldg(pages + t / ps) * ps + t % ps;
    const float *k = k_cache + slot * width + head_off;
    float dot = 0.0f;
    if constexpr (kVec4) {
      const float4 *k4 = reinterpret_cast<const float4 *>(k);
      const float4 *q4 = reinterpret_cast<const float4 *>(s_q);
      for (int i = 0; i < hd / 4; ++i) {
        const float4 kv = __ldg(k4 + i);
        const float4 qv = q4[i];
        dot = fmaf(qv.x, kv.x, dot);
        dot = fmaf(qv.y, kv.y, dot);
        dot = fmaf(qv.z, kv.z, dot);
        dot = fmaf(qv.w, kv.w, dot);
      }
    } else {
      for (int d = 0; d < hd; ++d)
        dot = fmaf(s_q[d], __ldg(k + d), dot);
    }
    const float s = dot * a.scale;
    scores[(int64_t)t * heads] = s;
    local_max = fmaxf(local_max, s);
  }
  const float m = block_max<kAttnThreads>(local_max, s_red);

  // Each thread rereads and overwrites only the scores it wrote itself.
  float local_sum = 0.0f;
  for (int t = tid; t < len; t += kAttnThreads) {
    float *score = scores + (int64_t)t * heads;
    const float p = expf(*score - m);
    *score = p;
    if (t < kAttnProbCache)
      s_p[t] = p;
    local_sum += p;
  }
  // The reduction's barriers also publish s_p and the p in `scores` to the
  // whole block.
  const float l = block_sum<kAttnThreads>(local_sum, s_red);

  const int groups = kAttnThreads / hd;
  const int g = tid / hd;
  const int d = tid - g * hd;
  float acc = 0.0f;
  if (g < groups) {
    const float *v = v_cache + head_off + d;
#pragma unroll 4
    for (int t = g; t < len; t += groups) {
      const int64_t slot = (int64_t)__ldg(pages + t / ps) * ps + t % ps;
      const float p = t < kAttnProbCache ? s_p[t] : scores[(int64_t)t * heads];
      acc = fmaf(p, __ldg(v + slot * width), acc);
    }
  }
  s_part[tid] = acc;
  __syncthreads();
  if (tid < hd) {
    float sum = 0.0f;
    for (int gg = 0; gg < groups; ++gg)
      sum += s_part[gg * hd + tid];
    out[tid] = sum / l;
  }
}

// ---------------------------------------------------------------------------
// swiglu
// ---------------------------------------------------------------------------

__global__ void __launch_bounds__(kFlatThreads)
    swiglu_kernel(const dec_swiglu_args a) {
  const float *__restrict__ gate_up = a.gate_up;
  float *__restrict__ out = a.out;
  const int64_t total = (int64_t)a.rows * a.mlp;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t r = i / a.mlp;
    const int64_t c = i - r * a.mlp;
    const float *row = gate_up + r * 2 * a.mlp;
    const float g = __ldg(row + c);
    const float u = __ldg(row + a.mlp + c);
    // For very negative g, expf overflows to inf and silu(g) becomes -0,
    // which is its limit.
    out[i] = g / (1.0f + expf(-g)) * u;
  }
}

// ---------------------------------------------------------------------------
// add
// ---------------------------------------------------------------------------

__global__ void __launch_bounds__(kFlatThreads)
    add_kernel(const dec_add_args a) {
  const float *__restrict__ x = a.x;
  float *__restrict__ y = a.y;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.count;
       i += stride)
    y[i] = y[i] + __ldg(x + i);
}

// ---------------------------------------------------------------------------
// argmax
// ---------------------------------------------------------------------------

constexpr int kArgmaxThreads = 512;
// No candidate yet. A real index always wins a tie against it.
constexpr int kNoIndex = 0x7fffffff;

// (v, i) beats (bv, bi) when it is larger, or equal and earlier: a total
// order on non-NaN values, so any reduction order finds the same winner.
// NaN never wins here; the kernel handles a NaN at index 0 on its own.
__device__ __forceinline__ void take_better(float &bv, int &bi, float v,
                                            int i) {
  if (v > bv || (v == bv && i < bi)) {
    bv = v;
    bi = i;
  }
}

__global__ void __launch_bounds__(kArgmaxThreads)
    argmax_kernel(const dec_argmax_args a) {
  constexpr int kWarps = kArgmaxThreads / kWarpSize;
  __shared__ float s_v[kWarps];
  __shared__ int s_i[kWarps];
  const float *__restrict__ logits = a.logits + (int64_t)blockIdx.x * a.vocab;
  float bv = -INFINITY;
  int bi = kNoIndex;
  for (int n = threadIdx.x; n < a.vocab; n += kArgmaxThreads)
    take_better(bv, bi, __ldg(logits + n), n);
#pragma unroll
  for (int o = kWarpSize / 2; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(kFullMask, bv, o);
    const int oi = __shfl_xor_sync(kFullMask, bi, o);
    take_better(bv, bi, ov, oi);
  }
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  if (lane == 0) {
    s_v[warp] = bv;
    s_i[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    bv = lane < kWarps ? s_v[lane] : -INFINITY;
    bi = lane < kWarps ? s_i[lane] : kNoIndex;
#pragma unroll
    for (int o = kWarpSize / 2; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(kFullMask, bv, o);
      const int oi = __shfl_xor_sync(kFullMask, bi, o);
      take_better(bv, bi, ov, oi);
    }
    // The host twin starts from index 0 and moves only to a strictly larger
    // value: a NaN at 0 is never beaten, NaNs elsewhere are never taken, and
    // an empty or all-NaN row answers 0.
    if (lane == 0) {
      const bool first_nan = a.vocab > 0 && isnan(__ldg(logits));
      a.ids[blockIdx.x] = (first_nan || bi == kNoIndex) ? 0 : bi;
    }
  }
}

} // namespace

// ---------------------------------------------------------------------------
// Launchers
// ---------------------------------------------------------------------------

extern "C" int dec_cuda_embed(void *stream, const void *args) {
  const dec_embed_args *a = (const dec_embed_args *)args;
  if (a->rows <= 0 || a->hidden <= 0)
    return (int)cudaSuccess;
  const int64_t total = (int64_t)a->rows * a->hidden;
  return (int)launch(embed_kernel, flat_grid(total), kFlatThreads,
                     (cudaStream_t)stream, a);
}

extern "C" int dec_cuda_rmsnorm(void *stream, const void *args) {
  const dec_rmsnorm_args *a = (const dec_rmsnorm_args *)args;
  if (a->rows <= 0 || a->dim <= 0)
    return (int)cudaSuccess;
  return (int)launch(rmsnorm_kernel, (unsigned)a->rows, kNormThreads,
                     (cudaStream_t)stream, a);
}

extern "C" int dec_cuda_matmul(void *stream, const void *args) {
  return launch_matmul_any(stream, (const dec_matmul_args *)args);
}

extern "C" int dec_cuda_matmul_bf16(void *stream, const void *args) {
  return launch_matmul_any(stream, (const dec_matmul_bf16_args *)args);
}

extern "C" int dec_cuda_rope(void *stream, const void *args) {
  const dec_rope_args *a = (const dec_rope_args *)args;
  if (a->rows <= 0 || a->heads <= 0 || a->head_dim < 2)
    return (int)cudaSuccess;
  const int64_t total = (int64_t)a->rows * a->heads * (a->head_dim / 2);
  return (int)launch(rope_kernel, flat_grid(total), kFlatThreads,
                     (cudaStream_t)stream, a);
}

extern "C" int dec_cuda_kv_write(void *stream, const void *args) {
  const dec_kv_write_args *a = (const dec_kv_write_args *)args;
  // A cache with no slots takes no row: every slot is out of range.
  if (a->rows <= 0 || a->heads <= 0 || a->head_dim <= 0 || a->pages <= 0 ||
      a->page_size <= 0)
    return (int)cudaSuccess;
  const int64_t total = (int64_t)a->rows * a->heads * a->head_dim;
  return (int)launch(kv_write_kernel, flat_grid(total), kFlatThreads,
                     (cudaStream_t)stream, a);
}

extern "C" int dec_cuda_attention(void *stream, const void *args) {
  const dec_attention_args *a = (const dec_attention_args *)args;
  if (a->rows <= 0 || a->heads <= 0 || a->head_dim <= 0)
    return (int)cudaSuccess;
  const int64_t q = a->tokens_per_request > 1 ? a->tokens_per_request : 1;
  const int64_t blocks = (int64_t)a->rows * q * a->heads;
  if (a->head_dim > kAttnMaxHeadDim || a->page_size <= 0 || blocks > kMaxGridX)
    return (int)cudaErrorInvalidValue;
  // float4 keys need head_dim % 4 == 0 and a 16-byte aligned cache base;
  // then every token's head starts 16-byte aligned too.
  const bool vec4 =
      a->head_dim % 4 == 0 && ((uintptr_t)a->k_cache & (uintptr_t)15) == 0;
  return (int)launch(vec4 ? attention_kernel<true> : attention_kernel<false>,
                     (unsigned)blocks, kAttnThreads, (cudaStream_t)stream, a);
}

extern "C" int dec_cuda_swiglu(void *stream, const void *args) {
  const dec_swiglu_args *a = (const dec_swiglu_args *)args;
  if (a->rows <= 0 || a->mlp <= 0)
    return (int)cudaSuccess;
  const int64_t total = (int64_t)a->rows * a->mlp;
  return (int)launch(swiglu_kernel, flat_grid(total), kFlatThreads,
                     (cudaStream_t)stream, a);
}

extern "C" int dec_cuda_add(void *stream, const void *args) {
  const dec_add_args *a = (const dec_add_args *)args;
  if (a->count <= 0)
    return (int)cudaSuccess;
  return (int)launch(add_kernel, flat_grid(a->count), kFlatThreads,
                     (cudaStream_t)stream, a);
}

extern "C" int dec_cuda_argmax(void *stream, const void *args) {
  const dec_argmax_args *a = (const dec_argmax_args *)args;
  // vocab <= 0 still launches: each row's id is defined (0).
  if (a->rows <= 0)
    return (int)cudaSuccess;
  return (int)launch(argmax_kernel, (unsigned)a->rows, kArgmaxThreads,
                     (cudaStream_t)stream, a);
}
