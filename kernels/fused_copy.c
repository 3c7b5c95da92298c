/* Registration of the fused copy, the plan → launches split, and the
 * plan area that plan_load reads. */
#include "kernels/fused_copy.h"

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
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

const cgr__kernel cgr__kernel_plan_load = {
    .name = "plan_load",
    .args_size = sizeof(cgr__plan_load_args),
    .cuda_launch = CGR__CUDA_LAUNCHER(cgr__cuda_launch_plan_load),
    .host_run = cgr__host_plan_load,
};

/* The host executor reads every capacity, and the plan area, through one
 * layout. */
_Static_assert(offsetof(cgr__fused_copy_args_small, ops) ==
                       offsetof(cgr__fused_copy_args_large, ops) &&
                   offsetof(cgr__fused_copy_args_medium, ops) ==
                       offsetof(cgr__fused_copy_args_large, ops),
               "fused copy argument layouts differ");
_Static_assert(offsetof(cgr__fused_copy_args_small, ops) ==
                   CGR__PLAN_AREA_OPS_OFFSET,
               "the plan area's layout differs from the arguments'");
_Static_assert(sizeof(cgr__copy_desc) == 48, "cgr__copy_desc is 48 bytes");
_Static_assert(CGR__PLAN_AREA_OPS_OFFSET % CGR__PLAN_AREA_ALIGN == 0 &&
                   sizeof(cgr__copy_desc) % CGR__PLAN_AREA_ALIGN == 0,
               "plan area descriptors are not 16-byte aligned");
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
  size_t count = plan->count;
  if (plan->headed && count > 0 && count <= CGR__FUSED_COPY_MEDIUM &&
      plan->capacity >= (count <= CGR__FUSED_COPY_SMALL
                             ? CGR__FUSED_COPY_SMALL
                             : CGR__FUSED_COPY_MEDIUM)) {
    /* The step's case: the arguments in place, the header written into
     * the plan's memory just before ops[0] (copy_plan.h), and the
     * capacity's descriptors after it all the plan's. The launch copies
     * them. */
    cgr__fused_copy_args_small *args =
        (cgr__fused_copy_args_small
             *)(void *)((unsigned char *)plan->ops -
                        offsetof(cgr__fused_copy_args_small, ops));
    const cgr__copy_desc *last = &plan->ops[count - 1];
    args->op_count = (uint32_t)count;
    args->tile_count =
        (uint32_t)(last->tile_begin + cgr__copy_tiles_for(last->bytes));
    args->reserved = 0;
    return cgr__be_kernel_launch(be, stream,
                                 count <= CGR__FUSED_COPY_SMALL
                                     ? &cgr__kernel_fused_copy_small
                                     : &cgr__kernel_fused_copy_medium,
                                 args);
  }
  /* 32 KB on the stack: large enough for any chunk; the launch copies it. */
  cgr__fused_copy_args_large args;
  for (size_t first = 0; first < plan->count; first += CGR__FUSED_COPY_LARGE) {
    count = plan->count - first;
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

static cgr_status check_area(cgr__error *err, const char *func,
                             const void *area) {
  if (area == NULL)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'area' is NULL");
  if ((uintptr_t)area % CGR__PLAN_AREA_ALIGN != 0)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, func,
                     "plan area %p is not %d-byte aligned", area,
                     CGR__PLAN_AREA_ALIGN);
  return CGR_OK;
}

cgr_status cgr__plan_area_write(void *area, size_t capacity,
                                const cgr__copy_plan *plan, cgr__error *err) {
  CGR__CHECK(check_area(err, __func__, area));
  if (plan == NULL)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'plan' is NULL");
  if (!plan->finished)
    return cgr__fail(err, CGR_E_INVALID_STATE, __func__,
                     "the copy plan was changed after cgr__copy_plan_finish "
                     "(or never finished)");
  if (plan->count > capacity)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "the plan's %zu operations do not fit the plan area's "
                     "capacity of %zu",
                     plan->count, capacity);
  if (plan->tile_count > UINT32_MAX)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "the plan's %llu tiles exceed one launch's limit of %lu",
                     (unsigned long long)plan->tile_count,
                     (unsigned long)UINT32_MAX);
  /* The plan numbers tiles per chunk of CGR__FUSED_COPY_LARGE operations
   * (one by-value launch each); the area is one launch, so the numbering
   * runs on through it. A plan of one chunk (the step's) is numbered so
   * already: its operations go as they are. */
  cgr__copy_desc *ops =
      (cgr__copy_desc *)((unsigned char *)area + CGR__PLAN_AREA_OPS_OFFSET);
  uint64_t next_tile = plan->tile_count;
  if (plan->count <= CGR__FUSED_COPY_LARGE) {
    if (plan->count > 0)
      memcpy(ops, plan->ops, plan->count * sizeof *ops);
  } else {
    next_tile = 0;
    for (size_t i = 0; i < plan->count; ++i) {
      cgr__copy_desc op = plan->ops[i];
      op.tile_begin = (uint32_t)next_tile;
      next_tile += cgr__copy_tiles_for(op.bytes);
      ops[i] = op;
    }
    assert(next_tile == plan->tile_count);
  }
  /* Counts last, so that a reader that sees them sees the descriptors too
   * (callers order the write with the device anyway; this costs nothing). */
  atomic_thread_fence(memory_order_release);
  cgr__fused_copy_header *header = area;
  header->reserved = 0;
  header->op_count = (uint32_t)plan->count;
  header->tile_count = (uint32_t)next_tile;
  return CGR_OK;
}

cgr_status cgr__plan_load_launch(cgr__backend *be, cgr__stream *stream,
                                 const void *area, uint32_t grid) {
  CGR__CHECK(check_area(be->error, __func__, area));
  /* 2^31 - 1 is CUDA's limit on gridDim.x; the host backend keeps it too,
   * so a grid one backend refuses the other refuses. */
  if (grid == 0 || grid > INT32_MAX)
    return cgr__fail(be->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "grid %lu is not in [1, 2^31 - 1]", (unsigned long)grid);
  cgr__plan_load_args args = {.area = (uint64_t)(uintptr_t)area,
                              .grid = grid,
                              .reserved = 0};
  return cgr__be_kernel_launch(be, stream, &cgr__kernel_plan_load, &args);
}

uint32_t cgr__plan_load_grid(uint64_t tile_bound) {
  if (tile_bound < 1)
    return 1;
  return tile_bound > CGR__PLAN_LOAD_MAX_GRID ? CGR__PLAN_LOAD_MAX_GRID
                                              : (uint32_t)tile_bound;
}
