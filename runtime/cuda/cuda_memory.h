/*
 * The CUDA backend's memory queries (cuda_memory.c).
 */
#ifndef CGR_RUNTIME_CUDA_CUDA_MEMORY_H
#define CGR_RUNTIME_CUDA_CUDA_MEMORY_H

#include <stddef.h>

#include "runtime/backend.h"

/* What memory the whole range [ptr, ptr + bytes) lies in, for the device
 * with ordinal `device`. Returns the cudaError_t of a failed query (then
 * *out is CGR__MEMORY_OTHER), else cudaSuccess. */
int cgr__cuda_memory_kind(int device, const void *ptr, size_t bytes,
                          cgr__memory_kind *out);

#endif /* CGR_RUNTIME_CUDA_CUDA_MEMORY_H */
