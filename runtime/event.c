/*
 * Events the caller and cgr share, so that work on the caller's side and
 * cgr's steps are ordered without the host waiting: a batch can wait for
 * an event the caller's work completes (cgr_batch_wait_event), and an event
 * can complete when a ticket's step does (cgr_ticket_record_event). On CUDA
 * the caller records and waits on its own streams (<cgr/cgr_cuda.h>); on
 * the host backend the caller's "work" is its own host code, which records
 * and signals the event itself.
 */
#include "cgr/cgr.h"

#include "runtime/alloc.h"
#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/runtime.h"

cgr_status cgr_event_create(cgr_runtime *rt, cgr_event **out) {
  if (out != NULL)
    *out = NULL;
  if (rt == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'rt' is NULL");
  if (out == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'out' is NULL");
  cgr_event *event = cgr__calloc(1, sizeof *event);
  if (event == NULL)
    return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the event failed");
  event->rt = rt;
  cgr_status status = cgr__be_event_create(&rt->backend, 0, &event->event);
  if (status != CGR_OK) {
    cgr__free(event);
    return status;
  }
  *out = event;
  return CGR_OK;
}

void cgr_event_destroy(cgr_event *event) {
  if (event == NULL)
    return;
  cgr__be_event_destroy(&event->rt->backend, event->event);
  cgr__free(event);
}

cgr_status cgr_event_record_host(cgr_event *event) {
  if (event == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return cgr__be_event_record_host(&event->rt->backend, event->event);
}

cgr_status cgr_event_signal_host(cgr_event *event) {
  if (event == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return cgr__be_event_signal_host(&event->rt->backend, event->event);
}

cgr_status cgr_event_query(cgr_event *event) {
  if (event == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return cgr__be_event_query(&event->rt->backend, event->event);
}

cgr_status cgr_event_synchronize(cgr_event *event) {
  if (event == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return cgr__be_event_synchronize(&event->rt->backend, event->event);
}
