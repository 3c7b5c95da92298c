/*
 * A kernel for the device-lost tests only (tests link it; libcgr does
 * not): when *armed is nonzero it stores to `bad`, an address no
 * allocation owns, so the GPU raises an illegal-address fault, the sticky
 * kind that loses the CUDA context. Its host twin does nothing: the host
 * backend's stand-in for a GPU fault is the injected DEVICE_FAULT.
 */
#ifndef CGR_KERNELS_TRAP_H
#define CGR_KERNELS_TRAP_H

#include <stdint.h>

#include "runtime/kernel.h"

typedef struct cgr__trap_args {
  const int32_t *armed; /* device memory */
  int32_t *bad;         /* an address that faults */
} cgr__trap_args;

extern const cgr__kernel cgr__kernel_trap;

int cgr__cuda_launch_trap(void *cuda_stream, const void *args);
void cgr__host_trap(const void *args);

#endif /* CGR_KERNELS_TRAP_H */
