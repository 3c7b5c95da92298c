/*
 * CGR_REPLAY_IN_GRAPH: the host writes each input's full padded image into
 * pinned staging k and launches the key's in-graph graph for set k, whose
 * first node copies staging k into set k (replay.h has the other modes).
 */
#include <string.h>

#include "replay/replay.h"
#include "runtime/nvtx.h"

/* The graph's first node: every input slot's padded rows, staging -> set. */
static cgr_status in_graph_prologue(cgr_runtime *rt, cgr__replay *replay,
                                    const cgr__capture *cap, int k,
                                    uint32_t padded, uint32_t tokens) {
  cgr__copy_plan *plan = &replay->plan;
  cgr__copy_plan_clear(plan);
  for (size_t i = 0; i < cap->slot_count; ++i) {
    const cgr__slot *slot = &cap->slots[i];
    if (!cgr__is_input(slot))
      continue;
    CGR__CHECK(
        cgr__copy_plan_copy(plan, slot->buffers[k],
                            replay->sets[k].staging + replay->staging_offset[i],
                            cgr__input_bytes(slot, padded, tokens),
                            &rt->error));
  }
  return cgr__copy_plan_finish(plan, &rt->error);
}

/* The in-graph mode: the host writes pinned staging k and launches the
 * graph, whose first node copies staging k into set k. Each input slot's
 * full padded image goes into staging: its live rows, then its padding up
 * to the key's rows (a PREFIX slot's padded entries repeat its last live
 * one), so that the graph's first node copies it whole. */
cgr_status cgr__replay_in_graph(cgr_runtime *rt, cgr__replay *replay,
                                cgr__capture *cap, cgr_batch *batch,
                                cgr_ticket *ticket, double started) {
  cgr__backend *be = &rt->backend;
  int k = (int)(replay->next_step % CGR__SETS);
  cgr__set *set = &replay->sets[k];
  const cgr__lane *lanes = set->lanes;
  const unsigned char *given_of = batch->given;
  const cgr__slot_input *inputs = batch->inputs;
  uint32_t count = replay->input_count;
  uint32_t b = batch->size, q = batch->tokens;
  uint32_t padded = cap->sizes[cap->bucket_of[b]];
  size_t key = cgr__replay_batch_key(cap, batch);
  for (uint32_t n = 0; n < count; ++n) {
    uint32_t i = lanes[n].slot;
    unsigned given = given_of[i];
    if (given == CGR__GIVEN_GATHER || given == CGR__GIVEN_FEEDBACK ||
        (given == CGR__GIVEN_INPUT && inputs[i].source == CGR_SOURCE_DEVICE))
      return cgr__fail(&rt->error, CGR_E_UNSUPPORTED, "cgr_replay",
                       "slot '%s': CGR_REPLAY_IN_GRAPH reads host staging "
                       "only; a device source or gather needs another mode",
                       cap->slots[i].name);
  }
  /* Staging will hold images the set's remembered plans do not clear. */
  cgr__plan_memo_forget(set);
  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_PREPARE, b);
  cgr_status status = cgr__replay_ensure_captured(rt, cap, key);
  if (status == CGR_OK)
    status = cgr__replay_staging_ready(rt, set);
  cgr__graph_exec *exec = cap->keys[key].in_graph_execs[k];
  if (status == CGR_OK && exec == NULL) {
    status = in_graph_prologue(rt, replay, cap, k, padded, q);
    if (status == CGR_OK)
      status = cgr__capture_in_graph(rt, key, k, &replay->plan, &exec);
  }
  uint64_t bytes = 0, skipped = 0;
  uint32_t *image_size = set->image_size, *image_padded = set->image_padded;
  const uint32_t *dirty_end = set->dirty_end;
  uint32_t *next_dirty = set->next_dirty, *next_loaded = set->next_loaded;
  cgr__stream *main_stream = rt->streams[CGR_STREAM_MAIN];
  for (uint32_t n = 0; n < count && status == CGR_OK; ++n) {
    const cgr__lane *lane = &lanes[n];
    uint32_t i = lane->slot;
    unsigned traits = lane->traits;
    /* The slot's rows: a row per token for a slot scaled by token; a
     * PREFIX slot has one entry more. */
    uint32_t live = (traits & CGR__INPUT_PER_TOKEN) ? b * q : b;
    uint32_t padded_rows =
        (traits & CGR__INPUT_PER_TOKEN) ? padded * q : padded;
    uint64_t extra = (traits & CGR__INPUT_PREFIX) ? 1 : 0;
    uint64_t image = (padded_rows + extra) * lane->unit;
    bytes += image;
    /* What the set holds after the graph (cgr__replay_commit swaps it
     * in): the key's padded rows of every input written, rows past them
     * that held live data still holding it. */
    next_dirty[i] = dirty_end[i] <= padded_rows ? live : dirty_end[i];
    next_loaded[i] = live;
    if (given_of[i] != CGR__GIVEN_UNCHANGED) {
      const cgr__slot_input *input = &inputs[i];
      uint64_t size = input->bytes;
      uint64_t word = extra ? cgr__prefix_word(input->data, live, lane->width)
                            : lane->pad_word;
      cgr__stage_copy(lane->staged, input->data, size);
      cgr__stage_fill(lane->staged + size, word, lane->width, image - size);
    } else if (image_size[i] == live && image_padded[i] == padded_rows) {
      skipped++;
      continue;
    } else {
      /* The set holds the slot's padded rows (cgr_batch_unchanged
       * checked its batch size), but another mode loaded them: staging
       * holds no image for the graph's first node to copy back. Copy the
       * set's rows into staging, on the main stream before the graph:
       * once per slot and set after a switch to this mode. */
      status = cgr__be_memcpy_async(be, main_stream, lane->staged, lane->buffer,
                                    image);
      if (status != CGR_OK)
        break;
    }
    image_size[i] = live;
    image_padded[i] = padded_rows;
  }
  if (status != CGR_OK) {
    /* Staging may hold this step's images, which the set never got: the
     * next unchanged slot must copy them from the set again. */
    for (size_t i = 0; i < cap->slot_count; ++i)
      set->image_size[i] = 0;
  }
  CGR__NVTX_POP(rt->config.nvtx);
  CGR__CHECK(status);

  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_REPLAY,
                 ((uint64_t)padded << 1) | (uint64_t)k);
  status = cgr__be_graph_launch(be, exec, main_stream);
  if (status == CGR_OK) {
    status = cgr__be_event_record(be, set->graph_done, main_stream);
    if (status == CGR_OK)
      status = cgr__be_event_record(be, set->staging_free, main_stream);
    /* The graph runs on the set, but no ticket says so. */
    if (status != CGR_OK)
      replay->outputs_lost[k] = replay->next_step;
  }
  if (status == CGR_OK)
    set->staging_reader = set->staging_free;
  CGR__NVTX_POP(rt->config.nvtx);
  if (status != CGR_OK) {
    cgr__load l;
    cgr__load_init(&l, cap, batch, k);
    cgr__replay_forget(cap, replay, &l);
    return status;
  }
  cgr__set_commit(set);
  cap->sets_live = 1;
  cgr__replay_mark_fed(cap, replay, k, padded, q);
  replay->fed_step = replay->next_step;
  replay->fed_batch = b;
  replay->fed_tokens = q;
  cgr__replay_account(replay, count, bytes, skipped, started);
  ticket->step = replay->next_step++;
  ticket->batch_size = b;
  ticket->padded_batch = padded;
  ticket->set = k;
  return CGR_OK;
}
