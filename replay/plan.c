/*
 * A step's copy plan (cgr__replay_plan): each input lane's rows, padding
 * and feedback into the set the step loads, planned in one pass over the
 * set's lanes (plan_lanes) or taken from the set's plan memo
 * (plan_memo.c); replay.c launches it.
 */
#include <assert.h>
#include <string.h>

#include "replay/replay.h"

/*
 * A fed slot's rows for this step (cgr_batch_feedback): rows that continue
 * the same row are already in place (the previous graph wrote them) when
 * `in_place`; moved rows are gathered from the previous step's output, new
 * requests' rows copied from staging. One operation per run of rows.
 * `indices` and `fresh` (pinned) hold `batch` indices and rows: the
 * slot's rows (per token for a slot scaled by token).
 */
cgr_status cgr__plan_feedback(cgr_runtime *rt, cgr__replay *replay,
                              const cgr__capture *cap, size_t index,
                              const cgr__slot_input *input, unsigned char *dst,
                              int32_t *indices, unsigned char *fresh,
                              uint32_t batch, int in_place) {
  const cgr__slot *slot = &cap->slots[index];
  const int32_t *prev = input->prev_rows;
  const unsigned char *fed =
      cap->slots[slot->fed_by].buffers[replay->fed_step % CGR__SETS];
  const unsigned char *new_rows = input->new_rows;
  uint64_t row = slot->row_bytes, fresh_used = 0;
  for (uint32_t j = 0, end; j < batch; j = end) {
    end = j + 1;
    if (prev[j] == -1) {
      while (end < batch && prev[end] == -1)
        end++;
      uint64_t bytes = (uint64_t)(end - j) * row;
      cgr__stage_copy(fresh + fresh_used * row, new_rows + fresh_used * row,
                      bytes);
      CGR__CHECK(cgr__copy_plan_copy_own(&replay->plan, dst + j * row,
                                         fresh + fresh_used * row, bytes,
                                         &rt->error));
      fresh_used += end - j;
    } else if (in_place && prev[j] == (int32_t)j) {
      while (end < batch && prev[end] == (int32_t)end)
        end++;
    } else {
      while (end < batch && prev[end] != -1 &&
             !(in_place && prev[end] == (int32_t)end))
        end++;
      cgr__stage_copy((unsigned char *)(indices + j), prev + j,
                      (end - j) * sizeof(int32_t));
      CGR__CHECK(cgr__copy_plan_gather_own(&replay->plan, dst + j * row, fed,
                                           indices + j, end - j, row,
                                           &rt->error));
    }
  }
  return CGR_OK;
}

/* A fed slot's `rows` of this step into a buffer of set l->set (`set`):
 * its feedback indices and new rows go through the set's own regions, so
 * the host waits for the set's staging first. */
static cgr_status plan_set_feedback(cgr_runtime *rt, cgr__replay *replay,
                                    cgr__set *set, size_t index,
                                    const cgr__slot_input *input,
                                    unsigned char *buffer, uint32_t rows,
                                    cgr__load *l) {
  CGR__CHECK(cgr__replay_staging_write(rt, set, l));
  const cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  return cgr__plan_feedback(rt, replay, cap, index, input, buffer,
                            set->feed_index +
                                index * (size_t)cgr__largest_bucket(cap) *
                                    cgr__largest_tokens(cap),
                            set->staging + replay->staging_offset[index], rows,
                            1);
}

/*
 * The slots plan_slot leaves to this: data from the device (ROWS or
 * PREFIX), a gather, a PREFIX slot given unchanged or feedback. Their live
 * rows (unless unchanged) and the padding rows that held live data last
 * time.
 */
static CGR__COLD cgr_status plan_slot_any(cgr_runtime *rt, cgr__replay *replay,
                                          const cgr__slot *slot, size_t index,
                                          cgr__given given,
                                          const cgr__slot_input *input,
                                          cgr__load *l) {
  cgr__copy_plan *plan = &replay->plan;
  cgr__set *set = &replay->sets[l->set];
  unsigned char *buffer = slot->buffers[l->set];
  uint32_t width = slot->desc.elem_size;
  int prefix = slot->desc.kind == CGR_SLOT_PREFIX;
  /* The slot's rows: requests, or tokens for a slot scaled by token. */
  uint32_t live = (uint32_t)cgr__slot_rows(slot, l->batch, l->tokens);
  uint32_t padded = (uint32_t)cgr__slot_rows(slot, l->padded, l->tokens);
  /* Rows past the batch must hold padding; those at or past dirty_end
   * already do. Every row that held live data is refilled, even past this
   * bucket (the graph does not read those, but a later, larger bucket
   * would), so afterwards dirty_end is exactly the batch. PREFIX padding
   * repeats the last live entry, which changes with the data, so it is
   * written whenever the data is. */
  uint32_t dirty = set->dirty_end[index];
  uint32_t fill_end = prefix ? padded : dirty;
  uint64_t fill_rows = fill_end > live ? fill_end - live : 0;

  if (given == CGR__GIVEN_INPUT) {
    /* From the device (plan_slot takes host and pinned data): the
     * caller's memory, read as it is. */
    assert(input->source == CGR_SOURCE_DEVICE);
    set->image_size[index] = 0;
    size_t before = plan->count;
    CGR__CHECK(cgr__copy_plan_copy(plan, buffer, input->data, input->bytes,
                                   &rt->error));
    cgr__copy_plan_mark_foreign(plan, before);
    if (prefix && fill_rows > 0) {
      /* The value lies on the device: gather entry `batch` once per
       * padded entry, through an index of zeros. */
      return cgr__copy_plan_gather(plan, buffer + input->bytes,
                                   (const unsigned char *)input->data +
                                       live * width,
                                   replay->zero_index, fill_rows, width,
                                   &rt->error);
    }
  } else if (given == CGR__GIVEN_UNCHANGED) {
    /* cgr_batch_unchanged checked it, and nothing loads a set while a
     * batch is open. Its rows stay; rows past them that held live data
     * are filled below as after any load: the same rows can be another
     * key's, of a larger bucket (2 x 3 tokens, then 6 x 1), after an
     * in-graph load that wrote only its own key's rows. A PREFIX slot's
     * rows are its batch's, whose padding its last load wrote. */
    assert(set->loaded_size[index] == live);
    l->skipped++; /* its live rows */
    if (prefix) {
      l->skipped++; /* its padding */
      return CGR_OK;
    }
  } else {
    set->image_size[index] = 0;
    if (given == CGR__GIVEN_FEEDBACK) {
      CGR__CHECK(
          plan_set_feedback(rt, replay, set, index, input, buffer, live, l));
    } else { /* CGR__GIVEN_GATHER */
      size_t before = plan->count;
      CGR__CHECK(cgr__copy_plan_gather(plan, buffer, input->gather_src,
                                       input->gather_index, live,
                                       slot->row_bytes, &rt->error));
      cgr__copy_plan_mark_foreign(plan, before); /* the caller's index */
    }
  }
  if (fill_rows > 0)
    return cgr__copy_plan_fill_own(
        plan, buffer + (uint64_t)live * slot->row_bytes,
        cgr__copy_fill_word(slot->desc.pad_value, width), width,
        fill_rows * slot->row_bytes, &rt->error);
  if (!prefix)
    l->skipped++; /* clean padding */
  return CGR_OK;
}

/* Appends at *op a COPY or FILL that cgr builds between its own buffers,
 * or from a checked input into them: neither range is NULL, wraps or is
 * empty (cgr__copy_plan_copy_own's rule), and the caller made room. Its
 * tiles are numbered from *tiles, counted from the launch's first. */
static inline void put_op(cgr__copy_desc **op, uint64_t *tiles, uint64_t *bytes,
                          const void *dst, uint64_t src, uint64_t size,
                          uint8_t kind, uint8_t pattern) {
  cgr__copy_desc *at = (*op)++;
  at->dst = (uint64_t)(uintptr_t)dst;
  at->src = src;
  at->index = 0;
  at->bytes = size;
  at->row_bytes = 0;
  at->tile_begin = (uint32_t)*tiles;
  at->kind = kind;
  at->pattern_size = pattern;
  at->reserved = 0;
  *tiles += cgr__copy_tiles_for(size);
  *bytes += size;
}

/*
 * A lane plan_lanes leaves to this, on the plan and the load as they are
 * in memory: a fed ROWS slot's feedback, and plan_slot_any's cases (device
 * data, a gather, a PREFIX slot unchanged or fed). Writes what the set will
 * hold after the step, as plan_lanes does (cgr__set.next_dirty).
 */
static CGR__NOINLINE cgr_status
plan_lane_any(cgr_runtime *rt, cgr__replay *replay, const cgr__capture *cap,
              const cgr_batch *batch, const cgr__lane *lane, cgr__load *l) {
  cgr__set *set = &replay->sets[l->set];
  uint32_t i = lane->slot;
  cgr__given given = (cgr__given)batch->given[i];
  const cgr__slot_input *input = &batch->inputs[i];
  unsigned traits = lane->traits;
  int prefix = (traits & CGR__INPUT_PREFIX) != 0;
  uint32_t live =
      (traits & CGR__INPUT_PER_TOKEN) ? l->batch * l->tokens : l->batch;
  /* An unchanged PREFIX slot's state stays as it was. */
  int keep = prefix && given == CGR__GIVEN_UNCHANGED;
  set->next_dirty[i] = keep ? set->dirty_end[i] : live;
  set->next_loaded[i] = keep ? set->loaded_size[i] : live;
  if (given == CGR__GIVEN_FEEDBACK && !prefix) {
    /* A fed ROWS slot's rows, then the rows that held live data. */
    set->image_size[i] = 0;
    CGR__CHECK(
        plan_set_feedback(rt, replay, set, i, input, lane->buffer, live, l));
    uint32_t dirty = set->dirty_end[i];
    if (dirty <= live) {
      l->skipped++; /* clean padding */
      return CGR_OK;
    }
    return cgr__copy_plan_fill_own(&replay->plan,
                                   lane->buffer + (uint64_t)live * lane->unit,
                                   lane->pad_word, lane->width,
                                   (uint64_t)(dirty - live) * lane->unit,
                                   &rt->error);
  }
  return plan_slot_any(rt, replay, &cap->slots[i], i, given, input, l);
}

/*
 * 1 when a slot's load touches what the previous step's graph writes, so
 * that in the double-buffered mode it runs after that graph (replay.h has
 * the hazards): a fed slot, whose rows in this set that graph's feed copy
 * writes, whatever this batch gives it (feedback, data, padding); a gather
 * or a device source, which may be that graph's output (cgr.h promises a
 * DEVICE source is read after the previous step's graph). Host and pinned
 * sources, staged rows and padding of the other slots touch only this
 * set and cgr's staging, which that graph never touches.
 */
static inline int waits_for_previous_graph(unsigned traits, unsigned given,
                                           const cgr__slot_input *input) {
  return (traits & CGR__INPUT_FED) || given == CGR__GIVEN_GATHER ||
         (given == CGR__GIVEN_INPUT && input->source == CGR_SOURCE_DEVICE);
}

/* A ROWS lane's rows from `live` to `dirty` (which held live data) as a
 * FILL of its pad value; none to fill counts as clean padding skipped. */
static inline void refill_rows(cgr__copy_desc **op, uint64_t *tiles,
                               uint64_t *bytes, uint64_t *skipped,
                               const cgr__lane *lane, uint32_t live,
                               uint32_t dirty) {
  if (dirty > live)
    put_op(op, tiles, bytes, lane->buffer + (uint64_t)live * lane->unit,
           lane->pad_word, (uint64_t)(dirty - live) * lane->unit,
           CGR__COPY_OP_FILL, lane->width);
  else
    (*skipped)++;
}

/* Before a step's first write to the set's staging: the host waits for
 * what still reads it, once (*ready). */
static inline cgr_status staging_once(cgr_runtime *rt, cgr__set *set,
                                      int *ready) {
  if (*ready)
    return CGR_OK;
  *ready = 1;
  return cgr__replay_staging_ready(rt, set);
}

/*
 * The step's lanes order[0, count) (the lanes in order when `order` is
 * NULL) into the plan. The usual lanes are planned here, in a few
 * instructions each, with the plan's end and the load's counters in
 * locals: a ROWS or PREFIX slot given data from pinned memory or from the
 * host (in the naive mode with its padding staged after it), a ROWS slot
 * given unchanged. Each of
 * them: what the set will hold after the step (cgr__set.next_dirty), its
 * rows' COPY (a host source's from staging, a pinned source's from the
 * caller's memory, checked at finish unless it lies outside the set's
 * input buffers, where every destination does: copy_plan.h, dst_low),
 * its padding's FILL (a PREFIX slot's padded entries repeat its last live
 * one; a ROWS slot's rows that held live data are refilled), and last a
 * host source's rows into staging, after the host waited for it once
 * (cgr__replay_staging_write). Any other lane is plan_lane_any's.
 */
static cgr_status plan_lanes(cgr_runtime *rt, cgr__replay *replay,
                             const cgr__capture *cap, const cgr_batch *batch,
                             cgr__load *l, const uint32_t *order,
                             uint32_t count, uint32_t *defer,
                             uint32_t *deferred) {
  cgr__copy_plan *plan = &replay->plan;
  cgr__set *set = &replay->sets[l->set];
  const cgr__lane *lanes = set->lanes;
  const unsigned char *given_of = batch->given;
  const cgr__slot_input *inputs = batch->inputs;
  uint32_t *dirty_end = set->dirty_end, *image_size = set->image_size;
  uint32_t *next_dirty = set->next_dirty, *next_loaded = set->next_loaded;
  const uint32_t rows = l->batch, token_rows = l->batch * l->tokens;
  const uint32_t padded = l->padded; /* a PREFIX slot's entries, less one */
  const uint64_t low = set->dst_low, high = set->dst_high;
  const int naive = replay->mode == CGR_REPLAY_NAIVE;
  uint32_t n = 0;
  while (n < count) {
    /* Room for two operations per lane left, then the plan's end. */
    while (plan->capacity - plan->count < 2 * (size_t)(count - n))
      CGR__CHECK(cgr__copy_plan_grow(plan, &rt->error, "cgr__replay_plan"));
    cgr__copy_desc *op = plan->ops + plan->count;
    uint64_t tiles = plan->tile_count - plan->cut_tiles;
    uint64_t bytes = plan->total_bytes, skipped = l->skipped;
    int ready = l->staging_ready;
    cgr_status status = CGR_OK;
    for (; n < count; ++n) {
      const cgr__lane *lane = &lanes[order != NULL ? order[n] : n];
      uint32_t i = lane->slot;
      unsigned given = given_of[i], traits = lane->traits;
      uint32_t live = (traits & CGR__INPUT_PER_TOKEN) ? token_rows : rows;
      const cgr__slot_input *input = &inputs[i];
      cgr_source source = input->source;
      if (given == CGR__GIVEN_INPUT && naive && source == CGR_SOURCE_HOST) {
        /* The naive mode's host data: its padding (a ROWS slot's rows
         * that held live data, a PREFIX slot's padded entries) is staged
         * after its rows, so that the slot costs one COPY; a ROWS slot's
         * padding counts as skipped, as no operation of its own writes
         * it. */
        const void *data = input->data;
        uint64_t size = input->bytes, fill = 0, word = lane->pad_word;
        if (traits & CGR__INPUT_PREFIX) {
          fill = (uint64_t)(padded - live) * lane->width;
          word = cgr__prefix_word(data, live, lane->width);
        } else {
          if (dirty_end[i] > live)
            fill = (uint64_t)(dirty_end[i] - live) * lane->unit;
          skipped++;
        }
        put_op(&op, &tiles, &bytes, lane->buffer,
               (uint64_t)(uintptr_t)lane->staged, size + fill,
               CGR__COPY_OP_COPY, 0);
        image_size[i] = 0;
        next_dirty[i] = live;
        next_loaded[i] = live;
        status = staging_once(rt, set, &ready);
        if (status != CGR_OK)
          break;
        cgr__stage_copy(lane->staged, data, size);
        cgr__stage_fill(lane->staged + size, word, lane->width, fill);
      } else if (given == CGR__GIVEN_INPUT) {
        if (source == CGR_SOURCE_DEVICE)
          break;
        const void *data = input->data;
        uint64_t size = input->bytes;
        uint64_t src = source == CGR_SOURCE_HOST
                           ? (uint64_t)(uintptr_t)lane->staged
                           : (uint64_t)(uintptr_t)data;
        if (source == CGR_SOURCE_PINNED && src < high && src + size > low)
          cgr__copy_plan_mark_one_foreign(plan, (size_t)(op - plan->ops));
        put_op(&op, &tiles, &bytes, lane->buffer, src, size, CGR__COPY_OP_COPY,
               0);
        image_size[i] = 0; /* staging's in-graph image is gone */
        next_dirty[i] = live;
        next_loaded[i] = live;
        if (traits & CGR__INPUT_PREFIX) {
          if (padded > live)
            put_op(&op, &tiles, &bytes, lane->buffer + size,
                   cgr__prefix_word(data, live, lane->width),
                   (uint64_t)(padded - live) * lane->width, CGR__COPY_OP_FILL,
                   lane->width);
        } else {
          refill_rows(&op, &tiles, &bytes, &skipped, lane, live, dirty_end[i]);
        }
        if (source == CGR_SOURCE_HOST) {
          status = staging_once(rt, set, &ready);
          if (status != CGR_OK)
            break;
          cgr__stage_copy(lane->staged, data, size);
        }
      } else if (given == CGR__GIVEN_FEEDBACK && input->in_place &&
                 !(traits & CGR__INPUT_PREFIX)) {
        /* A fed ROWS slot whose rows all continue the same row: the
         * previous graph wrote them; the rows past them are refilled. */
        image_size[i] = 0;
        next_dirty[i] = live;
        next_loaded[i] = live;
        refill_rows(&op, &tiles, &bytes, &skipped, lane, live, dirty_end[i]);
      } else if (given == CGR__GIVEN_UNCHANGED &&
                 !(traits & CGR__INPUT_PREFIX)) {
        /* cgr_batch_unchanged checked it: its rows stay, and so does any
         * in-graph image of them; the rows past them are refilled. */
        assert(set->loaded_size[i] == live);
        next_dirty[i] = live;
        next_loaded[i] = live;
        skipped++; /* its live rows */
        refill_rows(&op, &tiles, &bytes, &skipped, lane, live, dirty_end[i]);
      } else {
        break;
      }
    }
    plan->count = (size_t)(op - plan->ops);
    plan->tile_count = tiles + plan->cut_tiles;
    plan->total_bytes = bytes;
    plan->finished = 0;
    l->skipped = skipped;
    l->staging_ready = ready;
    CGR__CHECK(status);
    if (n < count) {
      uint32_t index = order != NULL ? order[n] : n;
      uint32_t i = lanes[index].slot;
      if (defer != NULL && waits_for_previous_graph(lanes[index].traits,
                                                    given_of[i], &inputs[i])) {
        defer[(*deferred)++] = index; /* to the late part */
      } else if (given_of[i] == CGR__GIVEN_FEEDBACK &&
                 !(lanes[index].traits & CGR__INPUT_PREFIX)) {
        /* Rows that move: planned last (cgr__replay_plan). */
        replay->moving_lanes[l->moving_count++] = index;
      } else {
        l->memo_ok = 0; /* planned from the state it changes */
        CGR__CHECK(plan_lane_any(rt, replay, cap, batch, &lanes[index], l));
      }
      ++n;
    }
  }
  return CGR_OK;
}

/* The plan of one step: in the double-buffered and pipelined modes, the
 * lanes that need not wait for the previous graph first (l->free_ops
 * operations), then those that must (the fed ones, and any other this
 * batch gives a gather or a device source, which the first part defers),
 * finished as two parts when both are there; in the one-launch modes,
 * every lane in order. */
cgr_status cgr__replay_plan(cgr_runtime *rt, cgr__replay *replay,
                            const cgr__capture *cap, const cgr_batch *batch,
                            cgr__load *l) {
  cgr__copy_plan *plan = &replay->plan;
  cgr__set *set = &replay->sets[l->set];
  int two_parts = replay->mode == CGR_REPLAY_DOUBLE_BUFFERED ||
                  replay->mode == CGR_REPLAY_PIPELINED;
  cgr_status status = CGR_OK;
  int memo =
      set->memo != NULL ? cgr__plan_memo_use(rt, replay, batch, l, &status) : 0;
  if (memo == 1)
    return status;
  l->plan = plan;
  uint64_t skipped_before = l->skipped;
  if (memo == 0) {
    cgr__copy_plan_clear(plan);
    l->memo_ok = 1;
    l->moving = replay->moving_lanes;
    l->moving_count = 0;
    if (!two_parts) {
      CGR__CHECK(plan_lanes(rt, replay, cap, batch, l, NULL,
                            replay->input_count, NULL, NULL));
    } else {
      uint32_t late = replay->late_count;
      CGR__CHECK(plan_lanes(rt, replay, cap, batch, l, replay->free_lanes,
                            replay->free_count, replay->late_lanes, &late));
      l->free_ops = plan->count;
      /* Where the two launches of a split part: their tiles are numbered
       * apart from here. */
      cgr__copy_plan_cut(plan);
      if (late > 0)
        CGR__CHECK(plan_lanes(rt, replay, cap, batch, l, replay->late_lanes,
                              late, NULL, NULL));
    }
  }
  /* The lanes whose rows move, last: fed slots, in the late part. */
  const cgr__plan_mark mark = {plan->count, plan->tile_count, plan->total_bytes,
                               l->skipped};
  for (uint32_t m = 0; m < l->moving_count; ++m)
    CGR__CHECK(
        plan_lane_any(rt, replay, cap, batch, &set->lanes[l->moving[m]], l));
  if (!two_parts)
    l->free_ops = plan->count;
  l->split = two_parts && l->free_ops > 0 && l->free_ops < plan->count;
  /* Every destination is in the set's input buffers: a caller's source
   * outside them is checked without a walk (copy_plan.h). */
  plan->dst_low = set->dst_low;
  plan->dst_high = set->dst_high;
  status = l->split ? cgr__copy_plan_finish_split(plan, l->free_ops, &l->head,
                                                  &l->tail, &rt->error)
                    : cgr__copy_plan_finish(plan, &rt->error);
  plan->dst_high = 0; /* the bound is this step's only */
  if (memo == 0 && set->memo != NULL &&
      !(status == CGR_OK && l->memo_ok &&
        cgr__plan_memo_keep(replay, batch, l, skipped_before, &mark)))
    set->memo_last = -1; /* a step the memo does not know */
  return status;
}
