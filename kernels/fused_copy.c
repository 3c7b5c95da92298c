/* Registration of the fused copy and the plan → launches split. */
#include "kernels/fused_copy.h"

#include <string.h>

#ifdef CGR_HAVE_CUDA
#define CGR__CUDA_LAUNCHER(fn) fn
#else
#define CGR__CUDA_LAUNCHER(fn) NULL
#endif

const cgr__kernel cgr__kernel_fused_copy_small = {
    .name = "fused_copy<8>",
    .args_size = sizeof(cgr__fused_copy_args_small),
    .cuda_launch = CGR__CUDA_LAUNCHER(cgr__cuda_launch_fused_copy_small),
    .host_run = cgr__host_fused_copy,
};

const cgr__kernel cgr__kernel_fused_copy_medium = {
    .name = "fused_copy<64>",
    .args_size = sizeof(cgr__fused_copy_args_medium),
    .cuda_launch = CGR__CUDA_LAUNCHER(cgr__cuda_launch_fused_copy_medium),
    .host_run = cgr__host_fused_copy,
};

const cgr__kernel cgr__kernel_fused_copy_large = {
    .name = "fused_copy<680>",
    .args_size = sizeof(cgr__fused_copy_args_large),
    .cuda_launch = CGR__CUDA_LAUNCHER(cgr__cuda_launch_fused_copy_large),
    .host_run = cgr__host_fused_copy,
};

/* The host executor reads every capacity through one layout. */
_Static_assert(offsetof(cgr__fused_copy_args_small, ops) ==
                       offsetof(cgr__fused_copy_args_large, ops) &&
                   offsetof(cgr__fused_copy_args_medium, ops) ==
                       offsetof(cgr__fused_copy_args_large, ops),
               "fused copy argument layouts differ");
_Static_assert(sizeof(cgr__copy_desc) == 48, "cgr__copy_desc is 48 bytes");
/* CUDA's limit on kernel parameters (all architectures CUDA 13 supports). */
_Static_assert(sizeof(cgr__fused_copy_args_large) <= 32764,
               "fused copy arguments exceed 32,764 bytes");

cgr_status cgr__fused_copy_launch(cgr__backend *be, cgr__stream *stream,
                                  const cgr__copy_plan *plan) {
  if (plan == NULL)
    return cgr__fail(be->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'plan' is NULL");
  if (!plan->finished)
    return cgr__fail(be->error, CGR_E_INVALID_STATE, __func__,
                     "the copy plan was changed after cgr__copy_plan_finish "
                     "(or never finished)");
  /* 32 KB on the stack: large enough for any chunk; the launch copies it. */
  cgr__fused_copy_args_large args;
  for (size_t first = 0; first < plan->count; first += CGR__FUSED_COPY_LARGE) {
    size_t count = plan->count - first;
    if (count > CGR__FUSED_COPY_LARGE)
      count = CGR__FUSED_COPY_LARGE;
    const cgr__copy_desc *last = &plan->ops[first + count - 1];
    uint64_t tiles = last->tile_begin + cgr__copy_tiles_for(last->bytes);
    const cgr__kernel *kernel =
        count <= CGR__FUSED_COPY_SMALL    ? &cgr__kernel_fused_copy_small
        : count <= CGR__FUSED_COPY_MEDIUM ? &cgr__kernel_fused_copy_medium
                                          : &cgr__kernel_fused_copy_large;
    args.op_count = (uint32_t)count;
    args.tile_count = (uint32_t)tiles;
    args.reserved = 0;
    memcpy(args.ops, &plan->ops[first], count * sizeof *args.ops);
    /* The launch copies only kernel->args_size bytes: the header and the
     * first `capacity` descriptors, which hold all `count`. */
    CGR__CHECK(cgr__be_kernel_launch(be, stream, kernel, &args));
  }
  return CGR_OK;
}
