// The fused multi-tensor copy: one launch runs a whole copy plan.
//
// The descriptors arrive by value as a __grid_constant__ parameter, so a
// block reads its descriptor straight from parameter space: no staging
// copy, no device-resident table to keep in sync. Each block takes tiles
// (copy_tiles.h) in a grid-stride loop; a tile is at most 16 KiB of one
// operation's destination. Copies whose source and destination agree
// modulo 16 move 16-byte vectors, with scalar head and tail; the others
// fall back to 4-byte or 1-byte elements. Sources may be pinned host
// memory: plain loads reach it through unified addressing.
//
// plan_load is the same per-tile work driven from a plan area in pinned
// memory instead of parameters (copy_tiles.h); its cost is noted at the
// kernel.
#include <cuda_runtime.h>

#include <stdint.h>

#include "kernels/copy_tiles.h"
#include "kernels/launch.cuh"

namespace {

constexpr int kThreads = 256;
// Independent 16-byte loads each thread keeps in flight before storing.
constexpr int kUnroll = 4;
// Grid cap: the loop strides over the rest. 2^31 - 1 is CUDA's x limit.
constexpr uint32_t kMaxBlocks = 1u << 30;

// Every address a plan names is global memory (device memory or pinned
// host memory). The compiler infers that for addresses read from kernel
// parameters, not for those read from shared memory (plan_load): saying so
// keeps plan_load on LDG/STG rather than generic loads and stores.
__device__ __forceinline__ void assume_global(const void *address) {
  __builtin_assume(__isGlobal(address));
}

// Moves `count` elements of type T cooperatively with the block: each
// thread loads kUnroll elements, then stores them, so loads overlap.
template <typename T>
__device__ __forceinline__ void block_copy(T *dst, const T *src,
                                           uint64_t count) {
  const uint64_t step = (uint64_t)kUnroll * blockDim.x;
  for (uint64_t base = threadIdx.x; base < count; base += step) {
    T values[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      uint64_t i = base + (uint64_t)u * blockDim.x;
      if (i < count)
        values[u] = src[i];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      uint64_t i = base + (uint64_t)u * blockDim.x;
      if (i < count)
        dst[i] = values[u];
    }
  }
}

__device__ __forceinline__ void
block_copy_bytes(unsigned char *dst, const unsigned char *src, uint64_t n) {
  assume_global(dst);
  assume_global(src);
  uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;
  unsigned width = ((d ^ s) & 15) == 0 ? 16 : ((d ^ s) & 3) == 0 ? 4 : 1;
  if (width == 1) {
    block_copy(dst, src, n);
    return;
  }
  // Scalar head up to the first `width`-aligned destination byte, the
  // vector body, the scalar tail.
  uint64_t head = (uint64_t)((width - (d & (width - 1))) & (width - 1));
  if (head > n)
    head = n;
  // width is 16 or 4: a shift, not a division by a runtime value.
  unsigned shift = width == 16 ? 4 : 2;
  uint64_t body = (n - head) >> shift;
  uint64_t tail_begin = head + (body << shift);
  for (uint64_t i = threadIdx.x; i < head; i += blockDim.x)
    dst[i] = src[i];
  if (width == 16)
    block_copy((uint4 *)(dst + head), (const uint4 *)(src + head), body);
  else
    block_copy((uint32_t *)(dst + head), (const uint32_t *)(src + head), body);
  for (uint64_t i = tail_begin + threadIdx.x; i < n; i += blockDim.x)
    dst[i] = src[i];
}

// dst[begin, end) of a FILL whose 8-byte pattern starts at offset 0.
__device__ __forceinline__ void block_fill(unsigned char *dst,
                                           uint64_t pattern8, uint64_t begin,
                                           uint64_t end) {
  assume_global(dst);
  uintptr_t first = (uintptr_t)(dst + begin);
  uint64_t n = end - begin;
  uint64_t head = (uint64_t)((16 - (first & 15)) & 15);
  if (head > n)
    head = n;
  uint64_t body = (n - head) / 16;
  for (uint64_t i = threadIdx.x; i < head; i += blockDim.x) {
    uint64_t offset = begin + i;
    dst[offset] = (unsigned char)(pattern8 >> (8 * (offset % 8)));
  }
  uint64_t word = cgr__copy_fill_word_at(pattern8, begin + head);
  uint4 vector = make_uint4((unsigned)word, (unsigned)(word >> 32),
                            (unsigned)word, (unsigned)(word >> 32));
  uint4 *body_dst = (uint4 *)(dst + begin + head);
  for (uint64_t i = threadIdx.x; i < body; i += blockDim.x)
    body_dst[i] = vector;
  for (uint64_t offset = begin + head + body * 16 + threadIdx.x; offset < end;
       offset += blockDim.x)
    dst[offset] = (unsigned char)(pattern8 >> (8 * (offset % 8)));
}

// GATHER over dst[begin, end): element by element, each element the widest
// power of two that divides the row length and both base addresses, so
// every element lies inside one row of the source. A thread finds its first
// element's row with one division, then advances by blockDim.x elements as
// whole rows plus a remainder, so the loop divides nothing.
template <typename T>
__device__ __forceinline__ void block_gather(const cgr__copy_desc &op,
                                             uint64_t begin, uint64_t end) {
  T *dst = (T *)(uintptr_t)op.dst;
  const unsigned char *src = (const unsigned char *)(uintptr_t)op.src;
  const int32_t *index = (const int32_t *)(uintptr_t)op.index;
  assume_global(dst);
  assume_global(src);
  assume_global(index);
  const uint64_t row_elems = op.row_bytes / sizeof(T);
  const uint64_t last = end / sizeof(T);
  uint64_t e = begin / sizeof(T) + threadIdx.x;
  if (e >= last)
    return;
  uint64_t row = e / row_elems;
  uint64_t within = e - row * row_elems;
  const uint64_t rows_per_step = blockDim.x / row_elems;
  const uint64_t within_per_step = blockDim.x - rows_per_step * row_elems;
  for (; e < last; e += blockDim.x) {
    const T *src_row =
        (const T *)(src + (uint64_t)(int64_t)index[row] * op.row_bytes);
    dst[e] = src_row[within];
    row += rows_per_step;
    within += within_per_step;
    if (within >= row_elems) {
      within -= row_elems;
      ++row;
    }
  }
}

__device__ __forceinline__ void gather_range(const cgr__copy_desc &op,
                                             uint64_t begin, uint64_t end) {
  uint64_t bits = op.dst | op.src | op.row_bytes;
  if ((bits & 15) == 0)
    block_gather<uint4>(op, begin, end);
  else if ((bits & 7) == 0)
    block_gather<uint2>(op, begin, end);
  else if ((bits & 3) == 0)
    block_gather<uint32_t>(op, begin, end);
  else
    block_gather<unsigned char>(op, begin, end);
}

// One tile of `op`, by the whole block: the work both kernels share.
__device__ __forceinline__ void run_tile(const cgr__copy_desc &op,
                                         uint32_t tile) {
  uint64_t begin, end;
  cgr__copy_tile_range(&op, tile, &begin, &end);
  switch (op.kind) {
  case CGR__COPY_OP_COPY:
    block_copy_bytes((unsigned char *)(uintptr_t)op.dst + begin,
                     (const unsigned char *)(uintptr_t)op.src + begin,
                     end - begin);
    break;
  case CGR__COPY_OP_FILL:
    block_fill((unsigned char *)(uintptr_t)op.dst, op.src, begin, end);
    break;
  case CGR__COPY_OP_GATHER:
    gather_range(op, begin, end);
    break;
  }
}

template <typename Args>
__global__ void __launch_bounds__(kThreads)
    fused_copy(const __grid_constant__ Args args) {
  for (uint32_t tile = blockIdx.x; tile < args.tile_count; tile += gridDim.x)
    run_tile(args.ops[cgr__copy_tile_op(args.ops, args.op_count, tile)], tile);
}

// The same tiles, from a plan area read when the kernel runs (a graph node
// whose parameters never change executes the plan written before each
// replay). Thread 0 reads the header, and for each tile searches the
// descriptors and copies the one it needs, into shared memory; the other
// threads wait at the barrier and read it there, so the area is read once
// per block and tile rather than by 256 threads.
//
// Cost (not measured: no GPU in the session that wrote this): the area is
// pinned host memory, so a read that no cache serves crosses PCIe, on the
// order of a microsecond per dependent load. A block pays one read for the
// header, then per tile the binary search (about log2(op_count) dependent
// loads: 10 for 1,000 operations) and the 48-byte descriptor (independent
// loads, about one round trip). The by-value kernel reads its descriptors
// from the constant bank instead. Blocks search in parallel, so the grid
// hides part of it, but a block that takes several tiles pays it for each;
// every search starts at the same middle descriptor, and whether L2 keeps
// those lines for the other blocks is one of the things to measure.
__global__ void __launch_bounds__(kThreads)
    plan_load(const cgr__plan_load_args args) {
  __shared__ cgr__fused_copy_header header;
  __shared__ cgr__copy_desc op;
  const cgr__fused_copy_header *area_header =
      (const cgr__fused_copy_header *)(uintptr_t)args.area;
  const cgr__copy_desc *ops = cgr__plan_area_ops(area_header);
  if (threadIdx.x == 0)
    header = *area_header;
  __syncthreads();
  const uint32_t op_count = header.op_count;
  const uint32_t tile_count = header.tile_count;
  // 64-bit, so that tile + gridDim.x cannot wrap for any tile count.
  for (uint64_t tile = blockIdx.x; tile < tile_count; tile += gridDim.x) {
    if (threadIdx.x == 0)
      op = ops[cgr__copy_tile_op(ops, op_count, (uint32_t)tile)];
    __syncthreads();
    run_tile(op, (uint32_t)tile);
    // Every thread is done with `op` before thread 0 overwrites it.
    __syncthreads();
  }
}

template <typename Args> int launch(void *cuda_stream, const void *opaque) {
  const Args *args = (const Args *)opaque;
  if (args->tile_count == 0)
    return (int)cudaSuccess;
  uint32_t blocks =
      args->tile_count < kMaxBlocks ? args->tile_count : kMaxBlocks;
  return cgr__cuda_launch(fused_copy<Args>, blocks, kThreads,
                          (cudaStream_t)cuda_stream, args);
}

} // namespace

extern "C" int cgr__cuda_launch_fused_copy_small(void *cuda_stream,
                                                 const void *args) {
  return launch<cgr__fused_copy_args_small>(cuda_stream, args);
}

extern "C" int cgr__cuda_launch_fused_copy_medium(void *cuda_stream,
                                                  const void *args) {
  return launch<cgr__fused_copy_args_medium>(cuda_stream, args);
}

extern "C" int cgr__cuda_launch_fused_copy_large(void *cuda_stream,
                                                 const void *args) {
  return launch<cgr__fused_copy_args_large>(cuda_stream, args);
}

extern "C" int cgr__cuda_launch_plan_load(void *cuda_stream, const void *args) {
  const cgr__plan_load_args *load = (const cgr__plan_load_args *)args;
  return cgr__cuda_launch(plan_load, load->grid, kThreads,
                          (cudaStream_t)cuda_stream, load);
}
