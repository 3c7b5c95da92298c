/*
 * Eager runs of the step: no graph, slot buffers and scratch of the batch's
 * own size. The fallback for a batch larger than the largest bucket (never
 * silent: counted and logged once per runtime), and the reference a
 * replayed step is checked against.
 */
#include <string.h>

#include "capture/capture.h"
#include "runtime/alloc.h"
#include "runtime/nvtx.h"

cgr_status cgr__eager_begin(cgr_runtime *rt, uint32_t batch, int fallback,
                            cgr__eager *eager) {
  memset(eager, 0, sizeof *eager);
  cgr__capture *cap = NULL;
  CGR__CHECK(cgr__capture_state(rt, &cap));
  if (cap->step == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "no step registered: call cgr_capture() first");
  if (batch == 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'batch' is 0");
  uint32_t largest = cgr__largest_bucket(cap);
  if (fallback && batch > largest) {
    if (!rt->config.allow_eager)
      return cgr__fail(&rt->error, CGR_E_BATCH_TOO_LARGE, __func__,
                       "batch %u is larger than the largest bucket (%u) and "
                       "config->allow_eager is 0",
                       batch, largest);
    cap->eager_runs++;
    if (!cap->eager_logged) {
      cap->eager_logged = 1;
      cgr__warn(rt,
                "batch %u is larger than the largest bucket (%u): running "
                "the step eagerly, without a graph (slow). Add a larger "
                "bucket to config->buckets. Logged once; "
                "cgr_capture_stats_get().eager_runs counts them.",
                batch, largest);
    }
  }
  eager->batch = batch;
  eager->slot_count = cap->slot_count;
  eager->addresses =
      cgr__calloc(cap->slot_count ? cap->slot_count : 1, sizeof(void *));
  if (eager->addresses == NULL)
    return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the slot address table failed");
  cgr_status status = CGR_OK;
  for (size_t i = 0; i < cap->slot_count && status == CGR_OK; ++i) {
    const cgr__slot *slot = &cap->slots[i];
    uint64_t bytes = cgr__slot_bytes_for(slot, batch);
    if (bytes == 0)
      continue;
    status = cgr__be_device_alloc(&rt->backend, bytes, &eager->addresses[i]);
    if (status == CGR_OK && slot->desc.kind == CGR_SLOT_CONSTANT)
      status = cgr__constant_upload(rt, slot, batch, eager->addresses[i]);
  }
  if (status != CGR_OK)
    cgr__eager_end(rt, eager);
  return status;
}

void *cgr__eager_slot(const cgr__eager *eager, cgr_slot slot) {
  if (slot < 0 || (size_t)slot >= eager->slot_count)
    return NULL;
  return eager->addresses[slot];
}

cgr_status cgr__eager_run(cgr_runtime *rt, cgr__eager *eager) {
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  cgr_step step;
  cgr__step_init(&step, rt, eager->batch, 0, eager->addresses,
                 eager->slot_count, CGR__SCRATCH_OWN);
  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_EAGER, eager->batch);
  cgr_status status = cgr__step_run(cap, &step);
  /* The step's own scratch is freed only after its work has finished. */
  cgr_status sync =
      cgr__be_stream_synchronize(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
  CGR__NVTX_POP(rt->config.nvtx);
  cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
  cgr__step_release(&step);
  return status != CGR_OK ? status : sync;
}

void cgr__eager_end(cgr_runtime *rt, cgr__eager *eager) {
  cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
  for (size_t i = 0; i < eager->slot_count; ++i)
    if (eager->addresses != NULL)
      cgr__be_device_free(&rt->backend, eager->addresses[i]);
  cgr__free(eager->addresses);
  memset(eager, 0, sizeof *eager);
}
