/*
 * The CUDA entry points of a build without CUDA (CGR_WITH_CUDA=OFF, or no
 * toolkit found). They exist so runtime.c needs no #ifdef: the probe says
 * why CUDA is unavailable and CGR_BACKEND_AUTO falls back to the host
 * backend; asking for CUDA explicitly fails with that reason.
 */
#include "runtime/backend.h"

#include <stdio.h>

#define CGR__NO_CUDA_REASON                                                    \
  "this build of cgr has no CUDA backend (built with CGR_WITH_CUDA=OFF or no " \
  "toolkit)"

cgr_status cgr__cuda_backend_init(cgr__backend *be, cgr__error *err,
                                  int device) {
  (void)device;
  be->ops = NULL;
  return cgr__fail(err, CGR_E_UNSUPPORTED, __func__, "%s", CGR__NO_CUDA_REASON);
}

cgr_status cgr__cuda_probe(int device, char *why, size_t why_size) {
  (void)device;
  if (why != NULL && why_size > 0)
    snprintf(why, why_size, "%s", CGR__NO_CUDA_REASON);
  return CGR_E_UNSUPPORTED;
}
