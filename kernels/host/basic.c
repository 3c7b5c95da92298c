/* Host twins of kernels/basic.cu: the reference the GPU is tested against. */
#include "kernels/basic.h"

void cgr__host_arange_i32(const void *args) {
  const cgr__arange_i32_args *a = args;
  for (int64_t i = 0; i < a->count; ++i)
    a->dst[i] = (int32_t)(a->start + (int64_t)i * a->step);
}

void cgr__host_add_i32(const void *args) {
  const cgr__add_i32_args *a = args;
  for (int64_t i = 0; i < a->count; ++i)
    a->dst[i] = (int32_t)((uint32_t)a->a[i] + (uint32_t)a->b[i]);
}
