/*
 * CGR_REPLAY_IN_GRAPH: the host writes each input's full padded image into
 * pinned staging k and launches the key's in-graph graph for set k, whose
 * first node copies staging k into set k (replay.h has the other modes).
 */
#include <string.h>

#include "replay/replay.h"
#include "runtime/nvtx.h"

/*
 * Writes one slot's full padded image (live rows, then padding up to the
 * bucket) into staging: the graph's own first node copies it whole.
 */
static void stage_image(const cgr__slot *slot, const cgr__slot_input *input,
                        unsigned char *staged, uint32_t batch,
                        uint32_t padded) {
  uint32_t width = slot->desc.elem_size;
  uint64_t live = cgr__input_bytes(slot, batch, 1);
  memcpy(staged, input->data, live);
  int prefix = slot->desc.kind == CGR_SLOT_PREFIX;
  uint64_t pad =
      prefix ? cgr__element(input->data, batch, width) : slot->desc.pad_value;
  uint64_t elems = prefix ? (uint64_t)(padded - batch)
                          : (uint64_t)(padded - batch) * slot->desc.row_elems;
  for (uint64_t e = 0; e < elems; ++e)
    memcpy(staged + live + e * width, &pad, width);
}

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
 * graph, whose first node copies staging k into set k. */
cgr_status cgr__replay_in_graph(cgr_runtime *rt, cgr__replay *replay,
                                cgr__capture *cap, cgr_batch *batch,
                                cgr_ticket *ticket, double started) {
  cgr__backend *be = &rt->backend;
  int k = (int)(replay->next_step % CGR__SETS);
  cgr__set *set = &replay->sets[k];
  uint32_t b = batch->size, q = batch->tokens;
  uint32_t padded = cap->sizes[cap->bucket_of[b]];
  size_t key = cgr__replay_batch_key(cap, batch);
  for (uint32_t n = 0; n < replay->input_count; ++n) {
    uint32_t i = replay->inputs[n];
    cgr__given given = (cgr__given)batch->given[i];
    if (given == CGR__GIVEN_GATHER || given == CGR__GIVEN_FEEDBACK ||
        (given == CGR__GIVEN_INPUT &&
         batch->inputs[i].source == CGR_SOURCE_DEVICE))
      return cgr__fail(&rt->error, CGR_E_UNSUPPORTED, "cgr_replay",
                       "slot '%s': CGR_REPLAY_IN_GRAPH reads host staging "
                       "only; a device source or gather needs another mode",
                       cap->slots[i].name);
  }
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
  uint64_t ops = 0, bytes = 0, skipped = 0;
  cgr__stream *main_stream = rt->streams[CGR_STREAM_MAIN];
  for (uint32_t n = 0; n < replay->input_count && status == CGR_OK; ++n) {
    uint32_t i = replay->inputs[n];
    const cgr__slot *slot = &cap->slots[i];
    ops++;
    bytes += cgr__input_bytes(slot, padded, q);
    /* The slot's rows: a row per token for a slot scaled by token. */
    uint32_t live = (uint32_t)cgr__slot_rows(slot, b, q);
    uint32_t padded_rows = (uint32_t)cgr__slot_rows(slot, padded, q);
    unsigned char *staged = set->staging + replay->staging_offset[i];
    if (batch->given[i] != CGR__GIVEN_UNCHANGED) {
      stage_image(slot, &batch->inputs[i], staged, live, padded_rows);
    } else if (set->image_size[i] == live &&
               set->image_padded[i] == padded_rows) {
      skipped++;
      continue;
    } else {
      /* The set holds the slot's padded rows (cgr_batch_unchanged
       * checked its batch size), but another mode loaded them: staging
       * holds no image for the graph's first node to copy back. Copy the
       * set's rows into staging, on the main stream before the graph:
       * once per slot and set after a switch to this mode. */
      status = cgr__be_memcpy_async(be, main_stream, staged, slot->buffers[k],
                                    cgr__input_bytes(slot, padded, q));
      if (status != CGR_OK)
        break;
    }
    set->image_size[i] = live;
    set->image_padded[i] = padded_rows;
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
  /* The graph wrote the key's padded rows of every input: rows past them
   * that held live data still do. */
  for (uint32_t n = 0; n < replay->input_count; ++n) {
    uint32_t i = replay->inputs[n];
    uint32_t live = (uint32_t)cgr__slot_rows(&cap->slots[i], b, q);
    if (set->dirty_end[i] <= cgr__slot_rows(&cap->slots[i], padded, q))
      set->dirty_end[i] = live;
    set->loaded_size[i] = live;
  }
  cap->sets_live = 1;
  cgr__replay_mark_fed(cap, replay, k, padded, q);
  replay->fed_step = replay->next_step;
  replay->fed_batch = b;
  replay->fed_tokens = q;
  cgr__replay_account(replay, ops, bytes, skipped, started);
  ticket->step = replay->next_step++;
  ticket->batch_size = b;
  ticket->padded_batch = padded;
  ticket->set = k;
  return CGR_OK;
}
