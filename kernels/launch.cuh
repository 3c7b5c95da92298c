// How cgr's CUDA launchers launch: cudaLaunchKernelExC, whose return value
// is the status of this launch and nothing else. cudaGetLastError() after
// <<<...>>> returns the last error of any earlier call on the thread, and
// clears it: an error left behind before the launch would be reported as
// the launch's, and taken from whoever left it.
//
// The arguments are passed by address: the kernels take one struct by
// value, CUDA copies it from where `args` points at launch, and the host
// makes no copy of its own (the fused copy's largest is 32 KB).
#ifndef CGR_KERNELS_LAUNCH_CUH
#define CGR_KERNELS_LAUNCH_CUH

#include <cuda_runtime.h>

// Launches kernel(*args) with `grid` x `block` threads and no dynamic
// shared memory on `stream`; returns the launch's cudaError_t as an int.
template <typename Args>
static inline int cgr__cuda_launch(void (*kernel)(Args), dim3 grid, dim3 block,
                                   cudaStream_t stream, const Args *args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = 0;
  config.stream = stream;
  config.attrs = nullptr;
  config.numAttrs = 0;
  void *params[] = {const_cast<Args *>(args)};
  return (int)cudaLaunchKernelExC(&config, (const void *)kernel, params);
}

#endif // CGR_KERNELS_LAUNCH_CUH
