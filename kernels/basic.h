/*
 * Small elementwise kernels both backends run: arange (the constant slots'
 * built-in fill, e.g. cu_seqlens_q = 0..bs) and add (a step-shaped kernel for
 * tests). Each is a cgr__kernel: a CUDA launcher and its host twin under one
 * definition.
 */
#ifndef CGR_KERNELS_BASIC_H
#define CGR_KERNELS_BASIC_H

#include <stdint.h>

#include "runtime/kernel.h"

/* dst[i] = start + i * step for i in [0, count). */
typedef struct cgr__arange_i32_args {
  int32_t *dst;
  int64_t count;
  int32_t start;
  int32_t step;
} cgr__arange_i32_args;

/* dst[i] = a[i] + b[i] for i in [0, count); dst may alias a or b. */
typedef struct cgr__add_i32_args {
  int32_t *dst;
  const int32_t *a;
  const int32_t *b;
  int64_t count;
} cgr__add_i32_args;

extern const cgr__kernel cgr__kernel_arange_i32;
extern const cgr__kernel cgr__kernel_add_i32;

/* The CUDA launchers (kernels/basic.cu); each returns a cudaError_t. */
int cgr__cuda_launch_arange_i32(void *cuda_stream, const void *args);
int cgr__cuda_launch_add_i32(void *cuda_stream, const void *args);

/* The host twins (kernels/host/basic.c). */
void cgr__host_arange_i32(const void *args);
void cgr__host_add_i32(const void *args);

#endif /* CGR_KERNELS_BASIC_H */
