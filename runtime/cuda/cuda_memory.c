/*
 * What memory a range lies in, on CUDA: the validation behind
 * CGR_SOURCE_PINNED and CGR_SOURCE_DEVICE. A pageable pointer passed as
 * pinned makes the copy kernel fault, which loses the context of every
 * runtime and library in the process; a device range that runs past its
 * allocation reads what lies there. So the whole range is checked, not its
 * first byte: both ends must be memory of the same kind, and device memory
 * must lie in one allocation (cuMemGetAddressRange, reached through the
 * runtime's driver entry points so that libcgr needs no libcuda at link
 * time).
 */
#include "runtime/cuda/cuda_memory.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <cuda.h>
#include <cuda_runtime_api.h>

typedef CUresult (*address_range_fn)(CUdeviceptr *base, size_t *size,
                                     CUdeviceptr ptr);

static address_range_fn address_range;
static pthread_once_t address_range_once = PTHREAD_ONCE_INIT;

static void find_address_range(void) {
  void *fn = NULL;
  enum cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSuccess;
  if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &fn, 12000,
                                       cudaEnableDefault,
                                       &found) != cudaSuccess ||
      found != cudaDriverEntryPointSuccess) {
    (void)cudaGetLastError();
    fn = NULL;
  }
  address_range = (address_range_fn)fn;
}

/* The kind of memory at one address, or OTHER. */
static cudaError_t kind_at(int device, const void *ptr, cgr__memory_kind *out) {
  struct cudaPointerAttributes attributes;
  memset(&attributes, 0, sizeof attributes);
  cudaError_t e = cudaPointerGetAttributes(&attributes, ptr);
  *out = CGR__MEMORY_OTHER;
  if (e != cudaSuccess)
    return e;
  switch (attributes.type) {
  case cudaMemoryTypeDevice:
  case cudaMemoryTypeManaged: /* the device reads it where it is */
    if (attributes.device == device)
      *out = CGR__MEMORY_DEVICE;
    break;
  case cudaMemoryTypeHost: /* cudaHostAlloc'd or cudaHostRegister'ed */
    *out = CGR__MEMORY_PINNED;
    break;
  default:
    break;
  }
  return cudaSuccess;
}

int cgr__cuda_memory_kind(int device, const void *ptr, size_t bytes,
                          cgr__memory_kind *out) {
  *out = CGR__MEMORY_OTHER;
  const char *last = (const char *)ptr + (bytes > 0 ? bytes - 1 : 0);
  cgr__memory_kind first_kind, last_kind;
  cudaError_t e = kind_at(device, ptr, &first_kind);
  if (e != cudaSuccess)
    return (int)e;
  e = kind_at(device, last, &last_kind);
  if (e != cudaSuccess)
    return (int)e;
  if (first_kind != last_kind)
    return (int)cudaSuccess;
  if (first_kind == CGR__MEMORY_DEVICE) {
    pthread_once(&address_range_once, find_address_range);
    if (address_range != NULL) {
      CUdeviceptr base = 0;
      size_t size = 0;
      if (address_range(&base, &size, (CUdeviceptr)(uintptr_t)ptr) !=
          CUDA_SUCCESS)
        return (int)cudaSuccess; /* not an allocation the driver knows */
      if ((uintptr_t)last >= (uintptr_t)base + size)
        return (int)cudaSuccess; /* runs past its allocation */
    }
  }
  *out = first_kind;
  return (int)cudaSuccess;
}
