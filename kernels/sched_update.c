/* The definitions that pair each scheduler-update launcher with its twin. */
#include "kernels/sched_update.h"

#include <stddef.h>

#ifdef CGR_HAVE_CUDA
#define CGR__CUDA_LAUNCHER(fn) fn
#else
#define CGR__CUDA_LAUNCHER(fn) NULL
#endif

const cgr__kernel cgr__kernel_sched_update = {
    .name = "sched_update",
    .args_size = sizeof(cgr__sched_update_args),
    .cuda_launch = CGR__CUDA_LAUNCHER(cgr__cuda_launch_sched_update),
    .host_run = cgr__host_sched_update,
};

const cgr__kernel cgr__kernel_sched_update_batched = {
    .name = "sched_update_batched",
    .args_size = sizeof(cgr__sched_update_batched_args),
    .cuda_launch = CGR__CUDA_LAUNCHER(cgr__cuda_launch_sched_update_batched),
    .host_run = cgr__host_sched_update_batched,
};
