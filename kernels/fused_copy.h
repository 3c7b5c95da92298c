/*
 * The fused multi-tensor copy: one kernel launch executes a whole copy plan
 * (COPY, FILL, GATHER; see copy_plan.h). Registered as three cgr__kernel
 * definitions, one per argument capacity (8, 64 and 680 operations), each
 * with a CUDA launcher and the same host executor.
 */
#ifndef CGR_KERNELS_FUSED_COPY_H
#define CGR_KERNELS_FUSED_COPY_H

#include "kernels/copy_plan.h"
#include "runtime/backend.h"

/*
 * Enqueues a finished plan on stream: one launch for up to
 * CGR__FUSED_COPY_LARGE operations, one more per further 680. An empty plan
 * launches nothing. CGR_E_INVALID_STATE when the plan is not finished;
 * otherwise the status of the launch. Kernel arguments are copied at launch,
 * so the plan may be changed as soon as this returns.
 */
cgr_status cgr__fused_copy_launch(cgr__backend *be, cgr__stream *stream,
                                  const cgr__copy_plan *plan);

extern const cgr__kernel cgr__kernel_fused_copy_small;
extern const cgr__kernel cgr__kernel_fused_copy_medium;
extern const cgr__kernel cgr__kernel_fused_copy_large;

/* CUDA launchers (kernels/fused_copy.cu); each returns a cudaError_t. */
int cgr__cuda_launch_fused_copy_small(void *cuda_stream, const void *args);
int cgr__cuda_launch_fused_copy_medium(void *cuda_stream, const void *args);
int cgr__cuda_launch_fused_copy_large(void *cuda_stream, const void *args);

/* The host executor (kernels/host/fused_copy.c): runs every tile of any of
 * the three argument structs, in tile order. */
void cgr__host_fused_copy(const void *args);

#endif /* CGR_KERNELS_FUSED_COPY_H */
