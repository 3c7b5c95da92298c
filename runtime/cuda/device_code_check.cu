// Asks CUDA whether this build has code for the current device
// (device_code.h). The kernel is empty: compiled in cgr_objects like every
// kernel of cgr, for the same CUDA architectures, so whether CUDA finds an
// image for it is whether it finds one for them.
#include <cuda_runtime.h>

extern "C" {
#include "runtime/cuda/device_code.h"
}

namespace {

__global__ void code_check() {}

} // namespace

extern "C" int cgr__cuda_code_check(void) {
  // Loads the kernel's module (compiling its PTX if that is what fits)
  // without launching anything.
  cudaFuncAttributes attributes;
  return (int)cudaFuncGetAttributes(&attributes, code_check);
}
