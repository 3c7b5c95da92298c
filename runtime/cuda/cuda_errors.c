/* The sticky-error table and the cudaError_t -> cgr_status mapping
 * (cuda_errors.h). */
#include "runtime/cuda/cuda_errors.h"

#include <cuda_runtime_api.h>

const cgr__cuda_sticky_error cgr__cuda_sticky_errors[] = {
#define CGR__CUDA_STICKY_ENTRY_(error) {(int)error, #error},
    CGR__CUDA_STICKY_ERRORS(CGR__CUDA_STICKY_ENTRY_)
#undef CGR__CUDA_STICKY_ENTRY_
};

const size_t cgr__cuda_sticky_error_count =
    sizeof cgr__cuda_sticky_errors / sizeof cgr__cuda_sticky_errors[0];

int cgr__cuda_error_is_sticky(int error) {
  switch (error) {
#define CGR__CUDA_STICKY_CASE_(error) case error:
    CGR__CUDA_STICKY_ERRORS(CGR__CUDA_STICKY_CASE_)
#undef CGR__CUDA_STICKY_CASE_
    return 1;
  default:
    return 0;
  }
}

cgr_status cgr__cuda_status_of(int error, cgr_status fallback) {
  /* The table first: a sticky error is lost whatever call returned it. */
  if (cgr__cuda_error_is_sticky(error))
    return CGR_E_DEVICE_LOST;
  switch ((cudaError_t)error) {
  case cudaSuccess:
    return CGR_OK;
  case cudaErrorMemoryAllocation:
    return CGR_E_DEVICE_OUT_OF_MEMORY;
  case cudaErrorStreamCaptureUnsupported:
  case cudaErrorStreamCaptureInvalidated:
  case cudaErrorStreamCaptureMerge:
  case cudaErrorStreamCaptureUnmatched:
  case cudaErrorStreamCaptureUnjoined:
  case cudaErrorStreamCaptureIsolation:
  case cudaErrorStreamCaptureImplicit:
  case cudaErrorCapturedEvent:
  case cudaErrorStreamCaptureWrongThread:
    return CGR_E_CAPTURE;
  case cudaErrorNotReady:
    return CGR_E_NOT_READY;
  default:
    return fallback;
  }
}
