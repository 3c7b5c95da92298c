/*
 * The plan memo: a decode loop's steps mostly repeat their shape (the
 * same batch size, each slot given the same way, from the same kind of
 * memory), and a step's plan depends on its shape and on what the set's
 * rows held before it, not on the data, but where a step's data goes:
 * into staging (a host source), as an operation's source (a pinned one),
 * as a PREFIX slot's padding word. So each set remembers the plans of its
 * last CGR__MEMO_ENTRIES steps with what they were made for, and a step
 * of a shape it remembers copies the finished plan and writes only where
 * its data goes, instead of planning every lane (issue 23).
 *
 * What a plan is made for, compared whole: the batch's rows, tokens and
 * padded rows; the replay mode; each slot's cgr_batch.shape (how it was
 * given, the source, feedback in place); the set's dirty_end (which rows
 * past the live ones need a FILL). The rest a plan reads is fixed with
 * the replay state (the set's lanes, buffers and staging). A plan is
 * remembered only when every lane took plan_lanes's usual path (no
 * gather, device source or unchanged PREFIX slot, which plan_lane_any
 * plans from the state it changes) and no caller memory needed checking
 * against the destinations (a pinned source inside the set's span: such a
 * step plans again). Fed rows that move are the exception: planned after
 * every other lane, they are left out of the plan remembered, and each
 * step of that shape plans them on top of it and finishes.
 *
 * The state a plan changes besides the set's next state: image_size,
 * zeroed for the lanes given data or feedback. A remembered plan found
 * them zero (its own plan zeroed them) and only an in-graph step makes
 * them non-zero again: that step forgets the set's plans
 * (cgr__plan_memo_forget), as does a failed step.
 *
 * Off in validation mode, whose plans are checked whole every step, and
 * for runtimes of more than CGR__MEMO_SLOTS slots.
 */
#include <string.h>

#include "replay/replay.h"
#include "runtime/alloc.h"

cgr_status cgr__plan_memo_create(cgr__replay *replay) {
  uint32_t lanes = replay->input_count ? replay->input_count : 1;
  for (int k = 0; k < CGR__SETS; ++k) {
    cgr__set *set = &replay->sets[k];
    set->memo = cgr__calloc(CGR__MEMO_ENTRIES, sizeof *set->memo);
    if (set->memo == NULL)
      return CGR_E_OUT_OF_MEMORY;
    set->memo_last = -1;
    for (int e = 0; e < CGR__MEMO_ENTRIES; ++e) {
      cgr__plan_memo *m = &set->memo[e];
      m->follow[0] = m->follow[1] = -1;
      /* plan_lanes adds at most two operations per lane; a plan's own
       * memory, so that it launches in place (copy_plan.h). */
      cgr__copy_plan_init(&m->plan);
      while (m->plan.capacity < 2 * (size_t)lanes)
        if (cgr__copy_plan_grow(&m->plan, NULL, __func__) != CGR_OK)
          return CGR_E_OUT_OF_MEMORY;
      m->staged = cgr__calloc(lanes, sizeof *m->staged);
      m->patches = cgr__calloc(lanes, sizeof *m->patches);
      m->moving = cgr__calloc(lanes, sizeof *m->moving);
      if (m->staged == NULL || m->patches == NULL || m->moving == NULL)
        return CGR_E_OUT_OF_MEMORY;
    }
  }
  return CGR_OK;
}

void cgr__plan_memo_destroy(cgr__replay *replay) {
  for (int k = 0; k < CGR__SETS; ++k) {
    cgr__set *set = &replay->sets[k];
    if (set->memo == NULL)
      continue;
    for (int e = 0; e < CGR__MEMO_ENTRIES; ++e) {
      cgr__copy_plan_release(&set->memo[e].plan);
      cgr__free(set->memo[e].staged);
      cgr__free(set->memo[e].moving);
      cgr__free(set->memo[e].patches);
    }
    cgr__free(set->memo);
    set->memo = NULL;
  }
}

/* Whether m was made for this step's shape. */
static inline int made_for(const cgr__plan_memo *m, const cgr__replay *replay,
                           const cgr__load *l, const uint64_t *shape,
                           const uint64_t *dirty) {
  if (!m->valid || m->batch != l->batch || m->tokens != l->tokens ||
      m->padded != l->padded || m->mode != replay->mode)
    return 0;
  uint64_t had[2], was[CGR__MEMO_SLOTS / 2];
  memcpy(had, m->shape, sizeof had);
  memcpy(was, m->dirty, sizeof was);
  uint64_t differ = (had[0] ^ shape[0]) | (had[1] ^ shape[1]);
  for (int w = 0; w < CGR__MEMO_SLOTS / 2; ++w)
    differ |= was[w] ^ dirty[w];
  return differ == 0;
}

/* The remembered plan made for this step's shape, or -1: first the two
 * that last followed the set's last plan (a decode loop's shapes repeat
 * in the same order, a shape now and then followed by one of two), then
 * the others. */
static int find(const cgr__replay *replay, const cgr__set *set,
                const cgr_batch *batch, const cgr__load *l) {
  uint64_t shape[2], dirty[CGR__MEMO_SLOTS / 2];
  memcpy(shape, batch->shape, sizeof shape);
  memcpy(dirty, set->dirty_end, sizeof dirty);
  int first = -1, second = -1;
  if (set->memo_last >= 0) {
    first = set->memo[set->memo_last].follow[0];
    second = set->memo[set->memo_last].follow[1];
  }
  if (first >= 0 && made_for(&set->memo[first], replay, l, shape, dirty))
    return first;
  if (second >= 0 && made_for(&set->memo[second], replay, l, shape, dirty))
    return second;
  for (int e = 0; e < CGR__MEMO_ENTRIES; ++e)
    if (e != first && e != second &&
        made_for(&set->memo[e], replay, l, shape, dirty))
      return e;
  return -1;
}

/* Entry e is the set's plan of this step: it follows the last one. */
static inline void link(cgr__set *set, int e) {
  if (set->memo_last >= 0) {
    int *follow = set->memo[set->memo_last].follow;
    if (follow[0] != e) {
      follow[1] = follow[0];
      follow[0] = e;
    }
  }
  set->memo_last = e;
}

int cgr__plan_memo_use(cgr_runtime *rt, cgr__replay *replay,
                       const cgr_batch *batch, cgr__load *l,
                       cgr_status *status) {
  cgr__set *set = &replay->sets[l->set];
  int e = find(replay, set, batch, l);
  if (e < 0)
    return 0;
  cgr__plan_memo *m = &set->memo[e];
  if (m->staging && !l->staging_ready) {
    *status = cgr__replay_staging_ready(rt, set);
    if (*status != CGR_OK)
      return 1;
    l->staging_ready = 1;
  }
  /* A plan with moving lanes grows in replay->plan; any other launches
   * from the memo's own memory. */
  cgr__copy_plan *plan = &m->plan;
  if (m->moving_count > 0) {
    plan = &replay->plan;
    memcpy(plan->ops, m->plan.ops, m->plan.count * sizeof *plan->ops);
    plan->count = m->plan.count;
    plan->total_bytes = m->plan.total_bytes;
    plan->tile_count = m->plan.tile_count;
    plan->cut_tiles = m->plan.cut_tiles;
    plan->cut_bytes = m->plan.cut_bytes;
    plan->numbered_from = m->plan.numbered_from;
    plan->foreign_count = 0;
    plan->finished = 0;
  }
  /* Where this step's data goes. */
  const cgr__slot_input *inputs = batch->inputs;
  for (uint32_t p = 0; p < m->staged_count; ++p) {
    const cgr__slot_input *input = &inputs[m->staged[p].slot];
    cgr__stage_copy(m->staged[p].staged, input->data, input->bytes);
  }
  const cgr__lane *lanes = set->lanes;
  const uint64_t low = set->dst_low, high = set->dst_high;
  const uint32_t rows = l->batch, token_rows = l->batch * l->tokens;
  for (uint32_t p = 0; p < m->patch_count; ++p) {
    const cgr__memo_patch *patch = &m->patches[p];
    const cgr__lane *lane = &lanes[patch->lane];
    const cgr__slot_input *input = &inputs[lane->slot];
    const void *data = input->data;
    uint64_t size = input->bytes;
    uint32_t live = (lane->traits & CGR__INPUT_PER_TOKEN) ? token_rows : rows;
    if (patch->flags & CGR__PATCH_SRC) {
      uint64_t src = (uint64_t)(uintptr_t)data;
      if (src < high && src + size > low)
        return 0; /* caller memory inside the set's span: planned */
      plan->ops[patch->copy_op].src = src;
    }
    if (patch->flags & CGR__PATCH_WORD)
      plan->ops[patch->fill_op].src = cgr__prefix_word(data, live, lane->width);
    if (patch->flags & CGR__PATCH_STAGE) {
      cgr__stage_copy(lane->staged, data, size);
      if (patch->fill > 0)
        cgr__stage_fill(lane->staged + size,
                        (lane->traits & CGR__INPUT_PREFIX)
                            ? cgr__prefix_word(data, live, lane->width)
                            : lane->pad_word,
                        lane->width, patch->fill);
    }
  }
  memcpy(set->next_dirty, m->next_dirty, sizeof m->next_dirty);
  memcpy(set->next_loaded, m->next_loaded, sizeof m->next_loaded);
  l->skipped += m->skipped;
  l->free_ops = m->free_ops;
  link(set, e);
  l->plan = plan;
  if (m->moving_count > 0) {
    /* Unfinished: the caller plans the moving lanes, then finishes. */
    l->moving = m->moving;
    l->moving_count = m->moving_count;
    *status = CGR_OK;
    return 2;
  }
  l->split = m->split;
  if (m->split) {
    l->head = m->head;
    l->tail = m->tail;
  }
  *status = CGR_OK;
  return 1;
}

/* The index of the operation of the plan that writes `dst` first, or
 * SIZE_MAX. */
static size_t op_at(const cgr__copy_plan *plan, const unsigned char *dst) {
  for (size_t o = 0; o < plan->count; ++o)
    if (plan->ops[o].dst == (uint64_t)(uintptr_t)dst)
      return o;
  return SIZE_MAX;
}

/* Where lane n's data goes in the plan, as a patch; 0 when its op is not
 * where plan_lanes puts it (then nothing is remembered). */
static int patch_of(const cgr__replay *replay, const cgr__set *set,
                    const cgr_batch *batch, const cgr__load *l, uint32_t n,
                    cgr__memo_patch *patch) {
  const cgr__copy_plan *plan = &replay->plan;
  const cgr__lane *lane = &set->lanes[n];
  const cgr__slot_input *input = &batch->inputs[lane->slot];
  size_t copy = op_at(plan, lane->buffer);
  if (copy == SIZE_MAX || plan->ops[copy].kind != CGR__COPY_OP_COPY)
    return 0;
  memset(patch, 0, sizeof *patch);
  patch->lane = n;
  patch->copy_op = (uint32_t)copy;
  if (input->source == CGR_SOURCE_HOST) {
    patch->flags |= CGR__PATCH_STAGE;
    if (replay->mode == CGR_REPLAY_NAIVE) {
      /* Its padding staged after its rows (plan_lanes). */
      patch->fill = plan->ops[copy].bytes - input->bytes;
      return 1;
    }
  } else {
    patch->flags |= CGR__PATCH_SRC;
  }
  uint32_t live =
      (lane->traits & CGR__INPUT_PER_TOKEN) ? l->batch * l->tokens : l->batch;
  if ((lane->traits & CGR__INPUT_PREFIX) && l->padded > live) {
    size_t fill = op_at(plan, lane->buffer + input->bytes);
    if (fill == SIZE_MAX || plan->ops[fill].kind != CGR__COPY_OP_FILL)
      return 0;
    patch->flags |= CGR__PATCH_WORD;
    patch->fill_op = (uint32_t)fill;
  }
  return 1;
}

int cgr__plan_memo_keep(cgr__replay *replay, const cgr_batch *batch,
                        const cgr__load *l, uint64_t skipped_before,
                        const cgr__plan_mark *mark) {
  cgr__set *set = &replay->sets[l->set];
  const cgr__copy_plan *plan = &replay->plan;
  /* With moving lanes, what is kept is the plan before them, which
   * finish must have left as it was (no tiles renumbered). */
  size_t count = l->moving_count > 0 ? mark->count : plan->count;
  if (plan->foreign_count != 0 || count > 2 * (size_t)replay->input_count ||
      (l->moving_count > 0 && plan->numbered_from == SIZE_MAX))
    return 0;
  int e = (int)set->memo_next;
  cgr__plan_memo *m = &set->memo[e];
  set->memo_next = (set->memo_next + 1) % CGR__MEMO_ENTRIES;
  m->valid = 0;
  m->follow[0] = m->follow[1] = -1;
  m->staged_count = 0;
  m->patch_count = 0;
  m->staging = 0;
  for (uint32_t n = 0; n < replay->input_count; ++n) {
    const cgr__lane *lane = &set->lanes[n];
    if (batch->given[lane->slot] != CGR__GIVEN_INPUT)
      continue; /* unchanged, fed in place: nothing of the step's */
    cgr__memo_patch *patch = &m->patches[m->patch_count];
    if (!patch_of(replay, set, batch, l, n, patch))
      return 0;
    m->staging |= (patch->flags & CGR__PATCH_STAGE) != 0;
    if (patch->flags == CGR__PATCH_STAGE && patch->fill == 0)
      m->staged[m->staged_count++] =
          (cgr__memo_stage){.staged = lane->staged, .slot = lane->slot};
    else
      m->patch_count++;
  }
  m->mode = replay->mode;
  m->batch = l->batch;
  m->tokens = l->tokens;
  m->padded = l->padded;
  memcpy(m->shape, batch->shape, sizeof m->shape);
  memcpy(m->dirty, set->dirty_end, sizeof m->dirty);
  cgr__copy_plan *kept = &m->plan;
  memcpy(kept->ops, plan->ops, count * sizeof *kept->ops);
  kept->count = count;
  kept->numbered_from = plan->numbered_from;
  kept->cut_tiles = plan->cut_tiles;
  kept->cut_bytes = plan->cut_bytes;
  kept->foreign_count = 0;
  m->free_ops = l->free_ops;
  m->moving_count = l->moving_count;
  if (l->moving_count > 0) {
    memcpy(m->moving, l->moving, l->moving_count * sizeof *m->moving);
    kept->total_bytes = mark->total_bytes;
    kept->tile_count = mark->tile_count;
    kept->finished = 0;
    m->skipped = mark->skipped - skipped_before;
  } else {
    kept->total_bytes = plan->total_bytes;
    kept->tile_count = plan->tile_count;
    kept->finished = 1;
    m->skipped = l->skipped - skipped_before;
  }
  m->split = l->split;
  if (l->split) {
    /* The two views, over the memo's own memory. */
    m->head = l->head;
    m->head.ops = kept->ops;
    m->head.capacity = kept->capacity;
    m->tail = l->tail;
    m->tail.ops = kept->ops + l->free_ops;
  }
  memcpy(m->next_dirty, set->next_dirty, sizeof m->next_dirty);
  memcpy(m->next_loaded, set->next_loaded, sizeof m->next_loaded);
  m->valid = 1;
  link(set, e);
  return 1;
}
