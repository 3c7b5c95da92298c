/* The replay state: made on the first batch after a capture (the sets,
 * their staging and lanes, the batch's per-slot tables, the plan memo),
 * destroyed with the runtime. */
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "replay/replay.h"
#include "runtime/alloc.h"

static void destroy_state(cgr_runtime *rt, void *state) {
  cgr__replay *replay = state;
  cgr__backend *be = &rt->backend;
  if (replay->eager_live)
    cgr__eager_end(rt, &replay->eager);
  for (int k = 0; k < CGR__SETS; ++k) {
    cgr__set *set = &replay->sets[k];
    cgr__be_event_destroy(be, set->loaded);
    cgr__be_event_destroy(be, set->graph_done);
    cgr__be_event_destroy(be, set->staging_free);
    cgr__be_pinned_free(be, set->staging);
    cgr__be_pinned_free(be, set->feed_index);
    cgr__free(set->dirty_end);
    cgr__free(set->loaded_size);
    cgr__free(set->next_dirty);
    cgr__free(set->next_loaded);
    cgr__free(set->image_size);
    cgr__free(set->image_padded);
    cgr__free(set->lanes);
  }
  cgr__plan_memo_destroy(replay);
  cgr__be_device_free(be, replay->zero_index);
  cgr__be_pinned_free(be, replay->eager_feed);
  cgr__copy_plan_release(&replay->plan);
  cgr__free(replay->staging_offset);
  cgr__free(replay->inputs);
  cgr__free(replay->fed_inputs);
  cgr__free(replay->free_lanes);
  cgr__free(replay->late_lanes);
  cgr__free(replay->moving_lanes);
  cgr__free(replay->batch.inputs);
  cgr__free(replay->batch.given);
  cgr__free(replay->batch.shape);
  cgr__free(replay->batch.slot_traits);
  cgr__free(replay->batch.slot_unit);
  cgr__free(replay);
}

/* Input slot i's lane in set k (replay.h). */
static void set_lane(cgr__lane *lane, const cgr__capture *cap,
                     const cgr__replay *replay, int k, uint32_t i) {
  const cgr__slot *slot = &cap->slots[i];
  int prefix = slot->desc.kind == CGR_SLOT_PREFIX;
  lane->buffer = slot->buffers[k];
  lane->staged = replay->sets[k].staging + replay->staging_offset[i];
  lane->unit = prefix ? slot->desc.elem_size : slot->row_bytes;
  lane->pad_word =
      cgr__copy_fill_word((uint64_t)slot->desc.pad_value, slot->desc.elem_size);
  lane->slot = i;
  lane->row_elems = slot->desc.row_elems;
  lane->width = (uint8_t)slot->desc.elem_size;
  lane->traits = replay->batch.slot_traits[i];
}

/* Input slot i's traits (replay.h, CGR__INPUT_*); 0 for other slots. */
static unsigned char input_traits(const cgr__slot *slot) {
  if (!cgr__is_input(slot))
    return 0;
  return (unsigned char)(CGR__INPUT_ANY |
                         (slot->desc.scale == CGR_SCALE_TOKEN
                              ? CGR__INPUT_PER_TOKEN
                              : 0) |
                         (slot->desc.kind == CGR_SLOT_PREFIX ? CGR__INPUT_PREFIX
                                                             : 0) |
                         (slot->fed_by >= 0 ? CGR__INPUT_FED : 0));
}

static cgr_status build_state(cgr_runtime *rt, const cgr__capture *cap,
                              cgr__replay *replay) {
  cgr__backend *be = &rt->backend;
  size_t slots = cap->slot_count ? cap->slot_count : 1;
  replay->mode = rt->config.replay_mode;
  replay->batch.rt = rt;
  replay->batch.slot_count = (uint32_t)cap->slot_count;
  replay->batch.inputs = cgr__calloc(slots, sizeof *replay->batch.inputs);
  /* At least 16 bytes, which opening a batch clears in one store. */
  replay->batch.given = cgr__calloc(slots < 16 ? 16 : slots, 1);
  replay->batch.shape =
      cgr__calloc(slots < CGR__MEMO_SLOTS ? CGR__MEMO_SLOTS : slots, 1);
  replay->batch.slot_traits = cgr__calloc(slots, 1);
  replay->batch.slot_unit = cgr__calloc(slots, sizeof(uint64_t));
  replay->staging_offset = cgr__calloc(slots, sizeof(uint64_t));
  replay->inputs = cgr__calloc(slots, sizeof *replay->inputs);
  replay->fed_inputs = cgr__calloc(slots, sizeof *replay->fed_inputs);
  replay->free_lanes = cgr__calloc(slots, sizeof *replay->free_lanes);
  replay->late_lanes = cgr__calloc(slots, sizeof *replay->late_lanes);
  replay->moving_lanes = cgr__calloc(slots, sizeof *replay->moving_lanes);
  if (replay->batch.inputs == NULL || replay->batch.given == NULL ||
      replay->batch.shape == NULL || replay->batch.slot_traits == NULL ||
      replay->batch.slot_unit == NULL || replay->staging_offset == NULL ||
      replay->inputs == NULL || replay->fed_inputs == NULL ||
      replay->free_lanes == NULL || replay->late_lanes == NULL ||
      replay->moving_lanes == NULL)
    goto out_of_memory;
  /* Out of validation mode the replay's plans are owned: cgr builds
   * every destination, and only reads of caller memory are checked. */
  replay->plan.owned = !rt->config.validate;
  /* Each input slot owns a fixed region of each set's staging, large
   * enough for the largest key (live rows and padding). */
  uint32_t largest = cgr__largest_bucket(cap);
  uint32_t most_tokens = cgr__largest_tokens(cap);
  replay->fed_step = UINT64_MAX;
  replay->issued[0].step = replay->issued[1].step = UINT64_MAX;
  replay->issued_eager.step = UINT64_MAX;
  for (size_t i = 0; i < cap->slot_count; ++i) {
    const cgr__slot *slot = &cap->slots[i];
    if (cgr__is_input(slot)) {
      /* Its lane, among the fed (late) or the free ones. */
      uint32_t lane = replay->input_count++;
      replay->inputs[lane] = (uint32_t)i;
      if (slot->fed_by >= 0)
        replay->late_lanes[replay->late_count++] = lane;
      else
        replay->free_lanes[replay->free_count++] = lane;
    }
    replay->batch.slot_traits[i] = input_traits(slot);
    replay->batch.slot_unit[i] = slot->desc.kind == CGR_SLOT_PREFIX
                                     ? slot->desc.elem_size
                                     : slot->row_bytes;
    if (cap->slots[i].fed_by >= 0)
      replay->fed_inputs[replay->fed_count++] = (uint32_t)i;
    replay->has_feeds |= cap->slots[i].fed_by >= 0;
    replay->constant_slots += cap->slots[i].desc.kind == CGR_SLOT_CONSTANT;
  }
  for (size_t i = 0; i < cap->slot_count; ++i) {
    replay->staging_offset[i] = replay->staging_bytes;
    if (cgr__is_input(&cap->slots[i]))
      replay->staging_bytes +=
          (cgr__slot_bytes_for(&cap->slots[i], largest, most_tokens) + 15) /
          16 * 16;
  }
  for (int k = 0; k < CGR__SETS; ++k) {
    cgr__set *set = &replay->sets[k];
    /* At least CGR__MEMO_SLOTS, which the plan memo reads whole. */
    size_t state = slots < CGR__MEMO_SLOTS ? CGR__MEMO_SLOTS : slots;
    set->dirty_end = cgr__calloc(state, sizeof *set->dirty_end);
    set->loaded_size = cgr__calloc(state, sizeof *set->loaded_size);
    set->next_dirty = cgr__calloc(state, sizeof *set->next_dirty);
    set->next_loaded = cgr__calloc(state, sizeof *set->next_loaded);
    set->image_size = cgr__calloc(slots, sizeof *set->image_size);
    set->image_padded = cgr__calloc(slots, sizeof *set->image_padded);
    set->lanes = cgr__calloc(slots, sizeof *set->lanes);
    if (set->dirty_end == NULL || set->loaded_size == NULL ||
        set->next_dirty == NULL || set->next_loaded == NULL ||
        set->image_size == NULL || set->image_padded == NULL ||
        set->lanes == NULL)
      goto out_of_memory;
    CGR__CHECK(cgr__be_event_create(be, 0, &set->loaded));
    CGR__CHECK(cgr__be_event_create(be, 0, &set->graph_done));
    CGR__CHECK(cgr__be_event_create(be, 0, &set->staging_free));
    set->staging_reader = set->staging_free;
    set->dst_low = UINT64_MAX;
    for (uint32_t n = 0; n < replay->input_count; ++n) {
      const cgr__slot *slot = &cap->slots[replay->inputs[n]];
      uint64_t begin = (uint64_t)(uintptr_t)slot->buffers[k];
      uint64_t end = begin + cgr__slot_bytes_for(slot, largest, most_tokens);
      set->dst_low = begin < set->dst_low ? begin : set->dst_low;
      set->dst_high = end > set->dst_high ? end : set->dst_high;
    }
    if (replay->staging_bytes > 0)
      CGR__CHECK(cgr__be_pinned_alloc(be, replay->staging_bytes,
                                      (void **)&set->staging));
    for (uint32_t n = 0; n < replay->input_count; ++n)
      set_lane(&set->lanes[n], cap, replay, k, replay->inputs[n]);
    if (replay->has_feeds)
      CGR__CHECK(cgr__be_pinned_alloc(be,
                                      (size_t)largest * most_tokens *
                                          sizeof(int32_t) * slots,
                                      (void **)&set->feed_index));
  }
  if (!rt->config.validate && cap->slot_count <= CGR__MEMO_SLOTS &&
      cgr__plan_memo_create(replay) != CGR_OK)
    goto out_of_memory;
  size_t zeros = ((size_t)largest + 1) * sizeof(int32_t);
  CGR__CHECK(cgr__be_device_alloc(be, zeros, (void **)&replay->zero_index));
  CGR__CHECK(cgr__be_memset_async(be, rt->streams[CGR_STREAM_MAIN],
                                  replay->zero_index, 0, zeros));
  return cgr__be_stream_synchronize(be, rt->streams[CGR_STREAM_MAIN]);

out_of_memory:
  return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, "cgr_batch_begin",
                   "allocating the replay state failed");
}

cgr_status cgr__replay_state(cgr_runtime *rt, cgr__replay **out) {
  /* Made after a capture succeeded, which cannot be undone: the step's
   * path takes no lock (issue 23). */
  *out = rt->layers[CGR__LAYER_REPLAY].state;
  if (*out != NULL)
    return CGR_OK;
  cgr__capture *cap = NULL;
  CGR__CHECK(cgr__capture_state(rt, &cap));
  if (cap->step == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, "cgr_batch_begin",
                     "nothing to replay: call cgr_capture() first");
  cgr__replay *replay = cgr__calloc(1, sizeof *replay);
  if (replay == NULL)
    return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, "cgr_batch_begin",
                     "allocating the replay state failed");
  cgr__copy_plan_init(&replay->plan);
  cgr_status status = build_state(rt, cap, replay);
  if (status != CGR_OK) {
    cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
    destroy_state(rt, replay);
    return status;
  }
  pthread_mutex_lock(&rt->layer_lock);
  rt->layers[CGR__LAYER_REPLAY].state = replay;
  rt->layers[CGR__LAYER_REPLAY].destroy = destroy_state;
  pthread_mutex_unlock(&rt->layer_lock);
  *out = replay;
  return CGR_OK;
}
