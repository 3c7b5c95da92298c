/*
 * The CUDA entry points of a build without CUDA (CGR_WITH_CUDA=OFF, or no
 * toolkit found). They exist so runtime.c needs no #ifdef: the probe says
 * why CUDA is unavailable and CGR_BACKEND_AUTO falls back to the host
 * backend; asking for CUDA explicitly fails with that reason.
 */
#include "runtime/backend.h"

#include <stdio.h>

#include "runtime/runtime.h"

#define CGR__NO_CUDA_REASON                                                    \
  "this build of cgr has no CUDA backend (built with CGR_WITH_CUDA=OFF or no " \
  "toolkit)"

cgr_status cgr__cuda_backend_init(cgr__backend *be, cgr__error *err,
                                  int device) {
  (void)device;
  be->ops = NULL;
  be->device_faulted = NULL;
  return cgr__fail(err, CGR_E_UNSUPPORTED, __func__, "%s", CGR__NO_CUDA_REASON);
}

cgr_status cgr__cuda_probe(int device, char *why, size_t why_size) {
  (void)device;
  if (why != NULL && why_size > 0)
    snprintf(why, why_size, "%s", CGR__NO_CUDA_REASON);
  return CGR_E_UNSUPPORTED;
}

/*
 * The <cgr/cgr_cuda.h> calls, which a binding without a CUDA API of its
 * own (Python through ctypes) looks up by name: present in every build,
 * they say why they cannot work, since every runtime of this build runs
 * on the host backend. The header needs CUDA's, which this build may
 * lack: the prototypes are repeated here with void * for the CUDA
 * handles, which are pointers (the same ABI). cgr_cuda_step_graph is in
 * capture/step.c for every build.
 */
CGR_API cgr_status cgr_cuda_stream(cgr_runtime *rt, cgr_stream_role role,
                                   void **out);
CGR_API cgr_status cgr_cuda_device(const cgr_runtime *rt, int *out);
CGR_API cgr_status cgr_cuda_step_stream(const cgr_step *step, void **out);
CGR_API cgr_status cgr_cuda_event_record(cgr_event *event, void *stream);
CGR_API cgr_status cgr_cuda_event(const cgr_event *event, void **out);
CGR_API cgr_status cgr_cuda_event_wait(const cgr_event *event, void *stream);

/* CGR_E_UNSUPPORTED on rt's error (when there is one), naming the call. */
static cgr_status absent(const cgr_runtime *rt, const char *func) {
  cgr__error *error = rt != NULL ? &((cgr_runtime *)rt)->error : NULL;
  return cgr__fail(error, CGR_E_UNSUPPORTED, func, "%s", CGR__NO_CUDA_REASON);
}

cgr_status cgr_cuda_stream(cgr_runtime *rt, cgr_stream_role role, void **out) {
  (void)role;
  if (out != NULL)
    *out = NULL;
  return rt == NULL || out == NULL ? CGR_E_INVALID_ARGUMENT
                                   : absent(rt, __func__);
}

cgr_status cgr_cuda_device(const cgr_runtime *rt, int *out) {
  if (out != NULL)
    *out = -1;
  return rt == NULL || out == NULL ? CGR_E_INVALID_ARGUMENT
                                   : absent(rt, __func__);
}

cgr_status cgr_cuda_step_stream(const cgr_step *step, void **out) {
  if (out != NULL)
    *out = NULL;
  return step == NULL || out == NULL ? CGR_E_INVALID_ARGUMENT
                                     : absent(cgr_step_runtime(step), __func__);
}

cgr_status cgr_cuda_event_record(cgr_event *event, void *stream) {
  (void)stream;
  return event == NULL ? CGR_E_INVALID_ARGUMENT : absent(event->rt, __func__);
}

cgr_status cgr_cuda_event(const cgr_event *event, void **out) {
  if (out != NULL)
    *out = NULL;
  return event == NULL || out == NULL ? CGR_E_INVALID_ARGUMENT
                                      : absent(event->rt, __func__);
}

cgr_status cgr_cuda_event_wait(const cgr_event *event, void *stream) {
  (void)stream;
  if (event == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'event' is NULL");
  return absent(event->rt, __func__);
}
