// CUDA side of kernels/sched_update.h. The kernels take their arguments by
// value, derive their own grid and know nothing of streams or graphs.
#include <cuda_runtime.h>

#include <stdint.h>

extern "C" {
#include "kernels/sched_update.h"
}

#include "kernels/launch.cuh"

namespace {

constexpr int kThreads = 256;
// Enough blocks along an item to fill an H100 several times over; the
// loops stride over the rest.
constexpr int64_t kMaxBlocks = 1024;
// CUDA's limit on gridDim.y; the batched kernel strides over more items.
constexpr int64_t kMaxItemBlocks = 65535;

unsigned blocks_for(int64_t count, int64_t limit) {
  int64_t blocks = (count + kThreads - 1) / kThreads;
  if (blocks < 1)
    blocks = 1;
  return (unsigned)(blocks < limit ? blocks : limit);
}

__global__ void sched_update(cgr__sched_update_args u) {
  int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < u.count;
       j += stride)
    u.x[j] = u.a * u.x[j] + u.b * u.eps[j];
}

// One row of blocks per item (y), the item's elements along x: each thread
// reads its item's coefficients once per item instead of dividing a flat
// index by the item size.
__global__ void sched_update_batched(cgr__sched_update_batched_args u) {
  int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = blockIdx.y; i < u.items; i += gridDim.y) {
    float a = u.a[i], b = u.b[i];
    float *x = u.x + i * u.item_elems;
    const float *eps = u.eps + i * u.item_elems;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
         j < u.item_elems; j += stride)
      x[j] = a * x[j] + b * eps[j];
  }
}

} // namespace

extern "C" int cgr__cuda_launch_sched_update(void *cuda_stream,
                                             const void *args) {
  const cgr__sched_update_args *u = (const cgr__sched_update_args *)args;
  if (u->count <= 0)
    return (int)cudaSuccess;
  return cgr__cuda_launch(sched_update, blocks_for(u->count, kMaxBlocks),
                          kThreads, (cudaStream_t)cuda_stream, u);
}

extern "C" int cgr__cuda_launch_sched_update_batched(void *cuda_stream,
                                                     const void *args) {
  const cgr__sched_update_batched_args *u =
      (const cgr__sched_update_batched_args *)args;
  if (u->items <= 0 || u->item_elems <= 0)
    return (int)cudaSuccess;
  dim3 grid(blocks_for(u->item_elems, kMaxBlocks),
            (unsigned)(u->items < kMaxItemBlocks ? u->items : kMaxItemBlocks));
  return cgr__cuda_launch(sched_update_batched, grid, kThreads,
                          (cudaStream_t)cuda_stream, u);
}
