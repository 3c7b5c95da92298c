/*
 * Eager steps of cgr_replay (replay.c): a batch over the largest bucket,
 * or every batch in CGR_REPLAY_EAGER. The step runs without a graph on
 * buffers of its own size (capture/eager.c), synchronously, and its
 * outputs live until the next replay; fed rows are gathered from the
 * previous graph step's outputs into pinned memory of the replay state's
 * own.
 */
#include <assert.h>

#include "kernels/fused_copy.h"
#include "replay/replay.h"

/* An eager step's feedback region for one fed slot: a gather index then
 * a new row per row of the slot, rounded to 16 bytes. */
static uint64_t eager_feed_bytes(const cgr__slot *slot, uint64_t rows) {
  return (rows * (sizeof(int32_t) + slot->row_bytes) + 15) / 16 * 16;
}

/*
 * The sets' feedback regions hold the largest bucket's rows, and an eager
 * batch may have more: its new rows and indices go to pinned memory of
 * the replay state's own, grown only when a step needs more (found by
 * fuzz/batch.c), so an eager step allocates nothing after the first of its
 * size, as the eager cache does (capture.h). Nothing reads the old region
 * when it is replaced: an eager step waits for its copies, or drains them
 * when it fails.
 */
static cgr_status eager_feed_room(cgr_runtime *rt, cgr__replay *replay,
                                  const cgr__capture *cap,
                                  const cgr_batch *batch) {
  uint64_t bytes = 0;
  for (size_t i = 0; i < cap->slot_count; ++i)
    if (batch->given[i] == CGR__GIVEN_FEEDBACK)
      bytes += eager_feed_bytes(&cap->slots[i],
                                cgr__slot_rows(&cap->slots[i], batch->size,
                                               batch->tokens));
  if (bytes <= replay->eager_feed_capacity)
    return CGR_OK;
  cgr__be_pinned_free(&rt->backend, replay->eager_feed);
  replay->eager_feed = NULL;
  replay->eager_feed_capacity = 0;
  CGR__CHECK(
      cgr__be_pinned_alloc(&rt->backend, bytes, (void **)&replay->eager_feed));
  replay->eager_feed_capacity = bytes;
  return CGR_OK;
}

cgr_status cgr__replay_eager(cgr_runtime *rt, cgr__replay *replay,
                             const cgr__capture *cap, cgr_batch *batch,
                             cgr_ticket *ticket, double started) {
  cgr__backend *be = &rt->backend;
  cgr__stream *stream = rt->streams[CGR_STREAM_MAIN];
  CGR__CHECK(cgr__eager_begin(rt, batch->size, batch->tokens, batch->variant,
                              replay->mode != CGR_REPLAY_EAGER,
                              &replay->eager));
  uint64_t feed_used = 0;
  cgr_status status = eager_feed_room(rt, replay, cap, batch);
  unsigned char *feed = replay->eager_feed;
  for (size_t i = 0; i < cap->slot_count && status == CGR_OK; ++i) {
    const cgr__slot_input *input = &batch->inputs[i];
    void *dst = cgr__eager_slot(&replay->eager, (cgr_slot)i);
    if (!cgr__is_input(&cap->slots[i]))
      continue;
    /* cgr_batch_unchanged refuses a slot of an eager batch. */
    assert(batch->given[i] != CGR__GIVEN_UNCHANGED);
    uint32_t rows =
        (uint32_t)cgr__slot_rows(&cap->slots[i], batch->size, batch->tokens);
    if (batch->given[i] == CGR__GIVEN_FEEDBACK) {
      /* The previous graph's outputs, gathered (none is in place here). */
      int32_t *indices = (int32_t *)(void *)(feed + feed_used);
      unsigned char *fresh = feed + feed_used + sizeof(int32_t) * rows;
      feed_used += eager_feed_bytes(&cap->slots[i], rows);
      cgr__copy_plan_clear(&replay->plan);
      status = cgr__plan_feedback(rt, replay, cap, i, input, dst, indices,
                                  fresh, rows, 0);
      if (status == CGR_OK)
        status = cgr__copy_plan_finish(&replay->plan, &rt->error);
      if (status == CGR_OK)
        status = cgr__fused_copy_launch(be, stream, &replay->plan);
    } else if (batch->given[i] == CGR__GIVEN_GATHER) {
      cgr__copy_plan_clear(&replay->plan);
      status = cgr__copy_plan_gather(&replay->plan, dst, input->gather_src,
                                     input->gather_index, rows,
                                     cap->slots[i].row_bytes, &rt->error);
      cgr__copy_plan_mark_foreign(&replay->plan, 0); /* the caller's index */
      if (status == CGR_OK)
        status = cgr__copy_plan_finish(&replay->plan, &rt->error);
      if (status == CGR_OK)
        status = cgr__fused_copy_launch(be, stream, &replay->plan);
    } else {
      status = cgr__be_memcpy_async(be, stream, dst, input->data, input->bytes);
    }
  }
  /* The device must see the previous step's outputs before reading device
   * sources: the main stream orders it. */
  if (status == CGR_OK)
    status = cgr__eager_run(rt, &replay->eager);
  if (status != CGR_OK) {
    /* A copy queued before the failure may still read `feed`, which the
     * next eager step rewrites on the host. */
    cgr__be_stream_drain(be, stream);
    cgr__eager_end(rt, &replay->eager);
    return status;
  }
  replay->eager_live = 1;
  replay->eager_step = replay->next_step;
  replay->fed_step = UINT64_MAX; /* nothing feeds the step after */
  replay->stats[replay->mode].eager_steps++;
  cgr__replay_account(replay, 0, 0, 0, started);
  ticket->step = replay->next_step++;
  ticket->batch_size = batch->size;
  ticket->padded_batch = batch->size;
  ticket->set = -1;
  return CGR_OK;
}
