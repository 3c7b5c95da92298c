/*
 * Does this build have code a device can run? cgr's kernels are compiled
 * for the CUDA architectures CMake was given (CMAKE_CUDA_ARCHITECTURES,
 * passed in as CGR_CUDA_ARCHITECTURES). A device that matches none of
 * them would fail every launch with cudaErrorNoKernelImageForDevice, so
 * the probe refuses it at create (device_code.c, from the list, without a
 * context) and the backend confirms with CUDA once its context exists
 * (device_code_check.cu).
 *
 * The list is CMake's syntax, entries separated by ';' or ',':
 *   "90"          sm_90 machine code and compute_90 PTX
 *   "90-real"     sm_90 machine code only
 *   "90-virtual"  compute_90 PTX only
 *   "90a-real"    arch-specific code (a: only 9.0; f: the 9.x family)
 * sm_XY runs on a device of compute capability X.Z with Z >= Y; PTX
 * compute_XY is compiled by the driver for any device of X.Y or newer.
 */
#ifndef CGR_RUNTIME_CUDA_DEVICE_CODE_H
#define CGR_RUNTIME_CUDA_DEVICE_CODE_H

/* The list this build's kernels were compiled for ("90", "80-real,90"),
 * or the one set by cgr__cuda_set_architectures_for_test. */
const char *cgr__cuda_architectures(void);

/* Tests only: makes cgr__cuda_architectures() (and so the probe) answer
 * `architectures` instead of the build's list; NULL restores it. Not
 * thread-safe: call while no runtime is being created. */
void cgr__cuda_set_architectures_for_test(const char *architectures);

/*
 * Whether code built for `architectures` runs on a device of compute
 * capability major.minor: 1 when some entry runs there, 0 when none does,
 * -1 when none does but an entry could not be read (a CMake keyword such
 * as "native" left unresolved): then only CUDA can tell.
 */
int cgr__cuda_code_fits(const char *architectures, int major, int minor);

/* cudaFuncGetAttributes on a kernel compiled exactly as cgr's kernels are,
 * on the current device: cudaSuccess when the build has code it runs,
 * cudaErrorNoKernelImageForDevice (or another error) when not. Returns a
 * cudaError_t; needs a current context. */
int cgr__cuda_code_check(void);

#endif /* CGR_RUNTIME_CUDA_DEVICE_CODE_H */
