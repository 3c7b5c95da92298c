// CUDA side of kernels/trap.h: one thread, one store to a bad address when
// armed. Tests only.
#include <cuda_runtime.h>

#include <stdint.h>

extern "C" {
#include "kernels/trap.h"
}

#include "kernels/launch.cuh"

namespace {

__global__ void trap(cgr__trap_args a) {
  if (*a.armed != 0)
    *(volatile int32_t *)a.bad = 1;
}

} // namespace

extern "C" int cgr__cuda_launch_trap(void *cuda_stream, const void *args) {
  return cgr__cuda_launch(trap, 1, 1, (cudaStream_t)cuda_stream,
                          (const cgr__trap_args *)args);
}
