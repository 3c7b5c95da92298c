/*
 * Events the caller's own host work completes: the host backend's stand-in
 * for an event recorded on a caller's CUDA stream (cgr_event_record_host,
 * cgr_event_signal_host). A host record is pending from the call until the
 * caller signals it; waits issued meanwhile, by cgr's streams or the host,
 * wait for the signal, as CUDA waits wait for a record on another stream.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <time.h>

#include "runtime/host/host.h"

cgr_status cgr__host_event_record_host(void *vctx, cgr__event *event) {
  (void)vctx;
  pthread_mutex_lock(&event->lock);
  event->host_pending = ++event->recorded;
  event->capture_id = 0;
  pthread_mutex_unlock(&event->lock);
  return CGR_OK;
}

cgr_status cgr__host_event_signal_host(void *vctx, cgr__event *event) {
  host_ctx *ctx = vctx;
  pthread_mutex_lock(&event->lock);
  uint64_t sequence = event->host_pending;
  if (sequence == 0) {
    pthread_mutex_unlock(&event->lock);
    return cgr__fail(ctx->err, CGR_E_INVALID_STATE, __func__,
                     "the event has no host record to signal (call "
                     "cgr_event_record_host first)");
  }
  event->host_pending = 0;
  if (sequence > event->completed) {
    event->completed = sequence;
    clock_gettime(CLOCK_MONOTONIC, &event->completed_at);
  }
  pthread_cond_broadcast(&event->done);
  pthread_mutex_unlock(&event->lock);
  return CGR_OK;
}
