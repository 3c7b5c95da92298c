/*
 * The CUDA side of cgr_event (<cgr/cgr_cuda.h>): the caller records one on
 * its own stream, or gets the cudaEvent_t to wait on. cgr's events are the
 * driver's, so the caller's CUDA runtime and cgr's private one share them.
 */
#include "cgr/cgr_cuda.h"

#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/runtime.h"

cgr_status cgr_cuda_event_record(cgr_event *event, cudaStream_t stream) {
  if (event == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'event' is NULL");
  cgr_runtime *rt = event->rt;
  if (rt->kind != CGR_BACKEND_CUDA)
    return cgr__fail(&rt->error, CGR_E_UNSUPPORTED, __func__,
                     "the runtime runs on the host backend, which has no "
                     "CUDA streams: use cgr_event_record_host");
  /* On CUDA a cgr__stream is the cudaStream_t itself. */
  return cgr__be_event_record(&rt->backend, event->event,
                              (cgr__stream *)(void *)stream);
}

cgr_status cgr_cuda_event(const cgr_event *event, cudaEvent_t *out) {
  if (out != NULL)
    *out = NULL;
  if (event == NULL || out == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument '%s' is NULL", event == NULL ? "event" : "out");
  cgr_runtime *rt = event->rt;
  if (rt->kind != CGR_BACKEND_CUDA)
    return cgr__fail(&rt->error, CGR_E_UNSUPPORTED, __func__,
                     "the runtime runs on the host backend, which has no "
                     "CUDA events");
  *out = (cudaEvent_t)(void *)event->event;
  return CGR_OK;
}
