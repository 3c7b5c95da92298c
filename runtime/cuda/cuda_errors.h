/*
 * What a CUDA error means to cgr: the one table of the errors that lose
 * the device, and the mapping of every cudaError_t to a cgr_status. Pure
 * data: nothing here calls CUDA, so the table is tested without a GPU
 * (tests/cuda_rules.c).
 */
#ifndef CGR_RUNTIME_CUDA_CUDA_ERRORS_H
#define CGR_RUNTIME_CUDA_CUDA_ERRORS_H

#include <stddef.h>

#include "cgr/cgr.h"

/*
 * The errors that lose the device. First, exactly those whose
 * documentation in the CUDA 13 headers (driver_types.h, and cuda.h for the
 * driver's twins) says that the process is left in an inconsistent state,
 * or that the device cannot be used again, and that the process must be
 * terminated and relaunched to use CUDA again. Every later call returns
 * the same error, so cgr reports CGR_E_DEVICE_LOST and refuses all further
 * work.
 */
#define CGR__CUDA_DOCUMENTED_STICKY_ERRORS(X)                                  \
  X(cudaErrorContained)                                                        \
  X(cudaErrorIllegalAddress)                                                   \
  X(cudaErrorLaunchTimeout)                                                    \
  X(cudaErrorAssert)                                                           \
  X(cudaErrorHardwareStackError)                                               \
  X(cudaErrorIllegalInstruction)                                               \
  X(cudaErrorMisalignedAddress)                                                \
  X(cudaErrorInvalidAddressSpace)                                              \
  X(cudaErrorInvalidPc)                                                        \
  X(cudaErrorLaunchFailure)                                                    \
  X(cudaErrorTensorMemoryLeak)                                                 \
  X(cudaErrorMpsClientTerminated)                                              \
  X(cudaErrorExternalDevice)

/*
 * Then the ones cgr treats as lost although the headers do not say so
 * (issue 17): uncorrectable memory and NVLink errors (the hardware has
 * corrupted what the context holds), an unknown internal error (the state
 * is not known to be usable), and devices that became unavailable. Calling
 * a usable device lost fails loudly; calling a lost one usable could go on
 * computing on corrupted state, so the doubtful cases fall on this side.
 * cudaErrorMemoryAllocation is never sticky.
 */
#define CGR__CUDA_CONSERVATIVE_STICKY_ERRORS(X)                                \
  X(cudaErrorECCUncorrectable)                                                 \
  X(cudaErrorNvlinkUncorrectable)                                              \
  X(cudaErrorUnknown)                                                          \
  X(cudaErrorDevicesUnavailable)

#define CGR__CUDA_STICKY_ERRORS(X)                                             \
  CGR__CUDA_DOCUMENTED_STICKY_ERRORS(X)                                        \
  CGR__CUDA_CONSERVATIVE_STICKY_ERRORS(X)

/* One entry of the table: the error's value and its enumerator's name. */
typedef struct cgr__cuda_sticky_error {
  int error; /* a cudaError_t */
  const char *name;
} cgr__cuda_sticky_error;

/* The table, in CGR__CUDA_STICKY_ERRORS order. */
extern const cgr__cuda_sticky_error cgr__cuda_sticky_errors[];
extern const size_t cgr__cuda_sticky_error_count;

/* 1 when `error` (a cudaError_t) is in the table. */
int cgr__cuda_error_is_sticky(int error);

/*
 * The cgr status a CUDA error means: CGR_OK for cudaSuccess,
 * CGR_E_DEVICE_LOST for a sticky error, CGR_E_DEVICE_OUT_OF_MEMORY,
 * CGR_E_CAPTURE for a capture violation, CGR_E_NOT_READY; `fallback` for
 * any other failure (CGR_E_CUDA for most calls, CGR_E_CAPTURE for capture
 * calls).
 */
cgr_status cgr__cuda_status_of(int error, cgr_status fallback);

#endif /* CGR_RUNTIME_CUDA_CUDA_ERRORS_H */
