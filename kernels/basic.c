/* The definitions that pair each CUDA launcher with its host twin. */
#include "kernels/basic.h"

#include <stddef.h>

#ifdef CGR_HAVE_CUDA
#define CGR__CUDA_LAUNCHER(fn) fn
#else
#define CGR__CUDA_LAUNCHER(fn) NULL
#endif

const cgr__kernel cgr__kernel_arange_i32 = {
    .name = "arange_i32",
    .args_size = sizeof(cgr__arange_i32_args),
    .cuda_launch = CGR__CUDA_LAUNCHER(cgr__cuda_launch_arange_i32),
    .host_run = cgr__host_arange_i32,
};

const cgr__kernel cgr__kernel_add_i32 = {
    .name = "add_i32",
    .args_size = sizeof(cgr__add_i32_args),
    .cuda_launch = CGR__CUDA_LAUNCHER(cgr__cuda_launch_add_i32),
    .host_run = cgr__host_add_i32,
};
