// CUDA side of kernels/basic.h. Kernels know nothing of graphs or slots:
// they take their arguments by value and derive their own grid.
#include <cuda_runtime.h>

#include <stdint.h>

extern "C" {
#include "kernels/basic.h"
}

#include "kernels/launch.cuh"

namespace {

constexpr int kThreads = 256;
// Enough blocks to fill an H100 several times over; the loops stride.
constexpr int64_t kMaxBlocks = 1024;

unsigned grid_for(int64_t count) {
  int64_t blocks = (count + kThreads - 1) / kThreads;
  if (blocks < 1)
    blocks = 1;
  return (unsigned)(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

__global__ void arange_i32(cgr__arange_i32_args a) {
  int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.count;
       i += stride)
    a.dst[i] = (int32_t)(a.start + i * a.step);
}

__global__ void add_i32(cgr__add_i32_args a) {
  int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.count;
       i += stride)
    a.dst[i] = (int32_t)((uint32_t)a.a[i] + (uint32_t)a.b[i]);
}

} // namespace

extern "C" int cgr__cuda_launch_arange_i32(void *cuda_stream,
                                           const void *args) {
  const cgr__arange_i32_args *a = (const cgr__arange_i32_args *)args;
  if (a->count <= 0)
    return (int)cudaSuccess;
  return cgr__cuda_launch(arange_i32, grid_for(a->count), kThreads,
                          (cudaStream_t)cuda_stream, a);
}

extern "C" int cgr__cuda_launch_add_i32(void *cuda_stream, const void *args) {
  const cgr__add_i32_args *a = (const cgr__add_i32_args *)args;
  if (a->count <= 0)
    return (int)cudaSuccess;
  return cgr__cuda_launch(add_i32, grid_for(a->count), kThreads,
                          (cudaStream_t)cuda_stream, a);
}
