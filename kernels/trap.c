/* The definition that pairs the trap kernel's launcher with its twin. */
#include "kernels/trap.h"

#include <stddef.h>

#ifdef CGR_HAVE_CUDA
#define CGR__TRAP_LAUNCHER cgr__cuda_launch_trap
#else
#define CGR__TRAP_LAUNCHER NULL
#endif

const cgr__kernel cgr__kernel_trap = {
    .name = "trap",
    .args_size = sizeof(cgr__trap_args),
    .cuda_launch = CGR__TRAP_LAUNCHER,
    .host_run = cgr__host_trap,
};
