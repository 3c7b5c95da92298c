/*
 * The kernel definition both backends run is the public cgr_kernel: the
 * library's own kernels (kernels/) and a user's step kernels go through the
 * same path. Kept apart from backend.h so the CUDA side (the .cu files,
 * compiled as C++) can include it: nothing here uses C-only features such
 * as _Atomic.
 */
#ifndef CGR_RUNTIME_KERNEL_H
#define CGR_RUNTIME_KERNEL_H

#include "cgr/cgr.h"

typedef cgr_kernel cgr__kernel;

#endif /* CGR_RUNTIME_KERNEL_H */
