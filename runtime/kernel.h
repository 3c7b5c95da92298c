/*
 * The kernel definition both backends run. Kept apart from backend.h so the
 * CUDA side (the .cu files, compiled as C++) can include it: nothing here
 * uses C-only features such as _Atomic.
 */
#ifndef CGR_RUNTIME_KERNEL_H
#define CGR_RUNTIME_KERNEL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A kernel both backends can run, "registered under the same id": the same
 * definition carries the CUDA launcher and its host twin. Kernels own their
 * launch geometry: the launcher derives grid and block from the arguments.
 *
 * args points to args_size bytes passed by value: the backend copies them
 * at launch (CUDA copies kernel parameters at launch too), so the caller may
 * reuse its buffer as soon as the launch returns.
 */
typedef struct cgr__kernel {
  const char *name;
  size_t args_size;
  /* Enqueues the kernel on a cudaStream_t (passed as void *) and returns the
   * launch's cudaError_t as int. NULL in a build without CUDA. */
  int (*cuda_launch)(void *cuda_stream, const void *args);
  /* Runs the whole kernel on the calling CPU thread. */
  void (*host_run)(const void *args);
} cgr__kernel;

#ifdef __cplusplus
}
#endif

#endif /* CGR_RUNTIME_KERNEL_H */
