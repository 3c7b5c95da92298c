/*
 * The CUDA side of cgr_event (<cgr/cgr_cuda.h>): the caller records one on
 * its own stream, makes its stream wait for one, or gets the cudaEvent_t.
 * cgr's events are the driver's, so the caller's CUDA runtime and cgr's
 * private one share them.
 */
#include "cgr/cgr_cuda.h"

#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/runtime.h"

/*
 * The caller's stream as a backend stream: on CUDA a cgr__stream is the
 * cudaStream_t itself. A stream of 0 is the legacy default stream, as in a
 * caller built without per-thread default streams (PyTorch's default
 * stream is 0; a caller built with them passes cudaStreamPerThread). It is
 * given by its explicit handle, since the backend table refuses a NULL
 * stream.
 */
static cgr__stream *callers_stream(cudaStream_t stream) {
  return (cgr__stream *)(void *)(stream != NULL ? stream : cudaStreamLegacy);
}

cgr_status cgr_cuda_event_record(cgr_event *event, cudaStream_t stream) {
  if (event == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'event' is NULL");
  cgr_runtime *rt = event->rt;
  if (rt->kind != CGR_BACKEND_CUDA)
    return cgr__fail(&rt->error, CGR_E_UNSUPPORTED, __func__,
                     "the runtime runs on the host backend, which has no "
                     "CUDA streams: use cgr_event_record_host");
  return cgr__be_event_record(&rt->backend, event->event,
                              callers_stream(stream));
}

cgr_status cgr_cuda_event_wait(const cgr_event *event, cudaStream_t stream) {
  if (event == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'event' is NULL");
  cgr_runtime *rt = event->rt;
  if (rt->kind != CGR_BACKEND_CUDA)
    return cgr__fail(&rt->error, CGR_E_UNSUPPORTED, __func__,
                     "the runtime runs on the host backend, which has no "
                     "CUDA streams: use cgr_event_synchronize");
  /* Counted as an event wait, as cgr's own waits are. */
  return cgr__be_stream_wait_event(&rt->backend, callers_stream(stream),
                                   event->event);
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
