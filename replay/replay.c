/*
 * cgr_replay: load a batch into buffer set step mod 2 and launch its
 * bucket's graph, in one of the replay modes (replay.h has the protocol).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kernels/fused_copy.h"
#include "replay/replay.h"
#include "runtime/nvtx.h"

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* The naive mode runs the plan one operation at a time, as hand-written
 * loops do: a copy per operation, a memset where the pattern allows. */
static cgr_status run_naive(cgr_runtime *rt, cgr__stream *stream,
                            const cgr__copy_plan *plan) {
  cgr__backend *be = &rt->backend;
  for (size_t i = 0; i < plan->count; ++i) {
    const cgr__copy_desc *op = &plan->ops[i];
    void *dst = (void *)(uintptr_t)op->dst;
    if (op->kind == CGR__COPY_OP_COPY) {
      CGR__CHECK(cgr__be_memcpy_async(be, stream, dst,
                                      (const void *)(uintptr_t)op->src,
                                      op->bytes));
      continue;
    }
    uint64_t byte = op->src & 0xFF;
    if (op->kind == CGR__COPY_OP_FILL &&
        op->src == byte * UINT64_C(0x0101010101010101)) {
      CGR__CHECK(cgr__be_memset_async(be, stream, dst, (int)byte, op->bytes));
      continue;
    }
    /* A wide fill or a gather has no cudart call: one fused launch for it. */
    cgr__copy_plan single;
    cgr__copy_plan_init(&single);
    cgr__copy_desc copy = *op;
    single.ops = &copy;
    single.count = single.capacity = 1;
    copy.tile_begin = 0;
    single.tile_count = cgr__copy_tiles_for(op->bytes);
    single.finished = 1;
    CGR__CHECK(cgr__fused_copy_launch(be, stream, &single));
  }
  return CGR_OK;
}

/* Lazy capture: a key's first replay captures it. The flag is read
 * first so the steady state takes no lock. */
cgr_status cgr__replay_ensure_captured(cgr_runtime *rt, const cgr__capture *cap,
                                       size_t key) {
  if (cap->keys[key].stats.captured)
    return CGR_OK;
  return cgr__capture_key_index(rt, key);
}

/* Waits, on the host, until the copy or graph that last read staging k
 * is done: without a wait when it already is (the steady state). */
cgr_status cgr__replay_staging_ready(cgr_runtime *rt, cgr__set *set) {
  cgr_status status = cgr__be_event_query(&rt->backend, set->staging_reader);
  if (status == CGR_E_NOT_READY)
    status = cgr__be_event_synchronize(&rt->backend, set->staging_reader);
  return status;
}

/*
 * After a graph of set k ran (or may have run): its feed copies wrote rows
 * [0, padded rows of its key) of each fed input in the other set, which
 * therefore holds neither padding there nor anything a batch can call
 * unchanged.
 */
void cgr__replay_mark_fed(const cgr__capture *cap, cgr__replay *replay, int k,
                          uint32_t padded, uint32_t tokens) {
  cgr__set *other = &replay->sets[1 - k];
  for (uint32_t n = 0; n < replay->fed_count; ++n) {
    uint32_t i = replay->fed_inputs[n];
    uint32_t rows = (uint32_t)cgr__slot_rows(&cap->slots[i], padded, tokens);
    if (other->dirty_end[i] < rows)
      other->dirty_end[i] = rows;
    other->loaded_size[i] = 0;
    other->image_size[i] = 0;
  }
}

/* Enqueues the copy and the graph of one step in the current mode. */
static cgr_status launch(cgr_runtime *rt, cgr__replay *replay,
                         cgr__graph_exec *exec, const cgr__load *l) {
  cgr__backend *be = &rt->backend;
  cgr__stream *main_stream = rt->streams[CGR_STREAM_MAIN];
  cgr__stream *side = rt->streams[CGR_STREAM_SIDE];
  cgr__set *set = &replay->sets[l->set];
  cgr__set *other = &replay->sets[1 - l->set];
  if (replay->mode == CGR_REPLAY_DOUBLE_BUFFERED) {
    /* The graph that last read this set (step n-2) before anything is
     * written into it; the previous step's graph (other->graph_done)
     * before only the part that touches what it writes (replay.h). */
    if (!replay->test_drop_set_wait)
      CGR__CHECK(cgr__be_stream_wait_event(be, side, set->graph_done));
    if (l->split) {
      CGR__CHECK(cgr__fused_copy_launch(be, side, &l->head));
      CGR__CHECK(cgr__be_stream_wait_event(be, side, other->graph_done));
      CGR__CHECK(cgr__fused_copy_launch(be, side, &l->tail));
    } else {
      if (l->free_ops < l->plan->count)
        CGR__CHECK(cgr__be_stream_wait_event(be, side, other->graph_done));
      CGR__CHECK(cgr__fused_copy_launch(be, side, l->plan));
    }
    CGR__CHECK(cgr__be_event_record(be, set->loaded, side));
    CGR__CHECK(cgr__be_event_record(be, set->staging_free, side));
    set->staging_reader = set->staging_free;
    CGR__CHECK(cgr__be_stream_wait_event(be, main_stream, set->loaded));
  } else {
    if (replay->mode == CGR_REPLAY_NAIVE)
      CGR__CHECK(run_naive(rt, main_stream, l->plan));
    else
      CGR__CHECK(cgr__fused_copy_launch(be, main_stream, l->plan));
    CGR__CHECK(cgr__be_event_record(be, set->staging_free, main_stream));
    set->staging_reader = set->staging_free;
  }
  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_REPLAY,
                 ((uint64_t)l->padded << 1) | (uint64_t)l->set);
  cgr_status status = cgr__be_graph_launch(be, exec, main_stream);
  if (status == CGR_OK) {
    status = cgr__be_event_record(be, set->graph_done, main_stream);
    /* The graph runs on the set, but no ticket says so. */
    if (status != CGR_OK)
      replay->outputs_lost[l->set] = replay->next_step;
  }
  CGR__NVTX_POP(rt->config.nvtx);
  return status;
}

/* After a successful launch: what the set now holds, which the step's
 * plan wrote beside its state (cgr__set.next_dirty): every slot's rows
 * past the batch hold padding, an unchanged one's too (the plan filled
 * them as it fills a loaded one's), but for an unchanged PREFIX slot,
 * whose state stays as it was. */
void cgr__replay_commit(cgr__replay *replay, const cgr__load *l) {
  cgr__set_commit(&replay->sets[l->set]);
}

/* After a failure that may have loaded part of the set: assume the worst,
 * so padding is rewritten and no slot can be claimed unchanged. */
void cgr__replay_forget(const cgr__capture *cap, cgr__replay *replay,
                        const cgr__load *l) {
  cgr__replay_mark_fed(cap, replay, l->set, l->padded, l->tokens);
  replay->fed_step = UINT64_MAX;
  cgr__set *set = &replay->sets[l->set];
  cgr__plan_memo_forget(set);
  for (size_t i = 0; i < cap->slot_count; ++i) {
    /* Up to the key's padded rows: the in-graph prologue writes them. */
    uint32_t rows =
        (uint32_t)cgr__slot_rows(&cap->slots[i], l->padded, l->tokens);
    if (set->dirty_end[i] < rows)
      set->dirty_end[i] = rows;
    set->loaded_size[i] = 0;
  }
}

void cgr__replay_account(cgr__replay *replay, uint64_t ops, uint64_t bytes,
                         uint64_t skipped, double started) {
  cgr_replay_stats *stats = &replay->stats[replay->mode];
  stats->steps++;
  stats->ops_copied += ops;
  stats->bytes_copied += bytes;
  stats->ops_skipped += skipped;
  double spent = now_us() - started;
  stats->host_us_total += spent;
  if (spent > stats->host_us_max)
    stats->host_us_max = spent;
}

void cgr__replay_issue(cgr__replay *replay, const cgr_ticket *ticket,
                       uint32_t tokens, uint32_t variant) {
  cgr_key key = {ticket->padded_batch, tokens, variant};
  if (ticket->set < 0) {
    replay->issued_eager = *ticket;
    replay->issued_eager_key = key;
  } else {
    replay->issued[ticket->set] = *ticket;
    replay->issued_key[ticket->set] = key;
  }
}

cgr_status cgr__replay_batch_complete(cgr_runtime *rt, const cgr__capture *cap,
                                      const cgr__replay *replay,
                                      const cgr_batch *batch,
                                      const char *func) {
  if (batch->given_count == replay->input_count)
    return CGR_OK; /* each slot is given at most once */
  for (uint32_t n = 0; n < replay->input_count; ++n) {
    uint32_t i = replay->inputs[n];
    if (batch->given[i] == CGR__GIVEN_NONE)
      return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                       "slot '%s' was not given in this batch (input, "
                       "unchanged, gather or feedback)",
                       cap->slots[i].name);
  }
  return CGR_OK;
}

static cgr_status replay_batch(cgr_runtime *rt, cgr_batch *batch,
                               cgr_ticket *ticket);

cgr_status cgr_replay(cgr_runtime *rt, cgr_batch *batch, cgr_ticket *ticket) {
  const cgr__replay *replay =
      rt != NULL ? rt->layers[CGR__LAYER_REPLAY].state : NULL;
  uint64_t step = replay != NULL ? replay->next_step : 0;
  uint32_t size = batch != NULL ? batch->size : 0;
  cgr_status status = replay_batch(rt, batch, ticket);
  if (status == CGR_OK)
    cgr__replay_issue(rt->layers[CGR__LAYER_REPLAY].state, ticket,
                      batch->tokens, batch->variant);
  /* A refused batch (a caller's mistake) enqueued nothing; a step that
   * failed halfway may have queued copies that still read its staging,
   * which the next replay of the same set rewrites on the host: let them
   * finish first. (The fault sweep found this under ThreadSanitizer.) */
  if (status != CGR_OK && !cgr__replay_refused(status) && replay != NULL) {
    cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_SIDE]);
    cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
  }
  if (status == CGR_E_DEVICE_LOST) {
    /* Name the step: a device fault surfaces where the host next looks. */
    char why[CGR__ERROR_MESSAGE_SIZE];
    snprintf(why, sizeof why, "%s", rt->error.message);
    cgr__fail(&rt->error, status, __func__, "step %llu (batch %u): %s",
              (unsigned long long)step, size, why);
  }
  return status;
}

static cgr_status replay_batch(cgr_runtime *rt, cgr_batch *batch,
                               cgr_ticket *ticket) {
  if (ticket != NULL)
    memset(ticket, 0, sizeof *ticket);
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  if (batch == NULL || replay == NULL || batch != &replay->batch)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_replay",
                     "argument 'batch' is not this runtime's batch");
  if (!batch->open)
    return cgr__batch_not_open(rt, batch, "cgr_replay");
  double started = now_us();
  batch->open = 0; /* consumed, whatever happens */
  if (ticket == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_replay",
                     "argument 'ticket' is NULL (the batch is consumed)");
  if (replay->mode == CGR_REPLAY_PIPELINED)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, "cgr_replay",
                     "CGR_REPLAY_PIPELINED runs its steps through "
                     "cgr_replay_stage and cgr_replay_ahead (the batch is "
                     "consumed)");
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  CGR__CHECK(cgr__replay_batch_complete(rt, cap, replay, batch, "cgr_replay"));

  /* The previous eager step's buffers live until this replay. */
  if (replay->eager_live) {
    cgr__eager_end(rt, &replay->eager);
    replay->eager_live = 0;
  }
  if (batch->size > cgr__largest_bucket(cap) ||
      replay->mode == CGR_REPLAY_EAGER)
    return cgr__replay_eager(rt, replay, cap, batch, ticket, started);
  if (replay->mode == CGR_REPLAY_IN_GRAPH)
    return cgr__replay_in_graph(rt, replay, cap, batch, ticket, started);

  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_PREPARE, batch->size);
  cgr__load l;
  cgr__load_init(&l, cap, batch, (int)(replay->next_step % CGR__SETS));
  cgr_status status = cgr__replay_ensure_captured(rt, cap, l.key);
  if (status == CGR_OK)
    status = cgr__replay_plan(rt, replay, cap, batch, &l);
  CGR__NVTX_POP(rt->config.nvtx);
  if (status != CGR_OK)
    return status;

  status = launch(rt, replay, cap->keys[l.key].execs[l.set], &l);
  if (status != CGR_OK) {
    cgr__replay_forget(cap, replay, &l);
    return status;
  }
  cgr__replay_commit(replay, &l);
  cap->sets_live = 1;
  cgr__replay_mark_fed(cap, replay, l.set, l.padded, l.tokens);
  replay->fed_step = replay->next_step;
  replay->fed_batch = l.batch;
  replay->fed_tokens = l.tokens;

  cgr__replay_account(replay, l.plan->count, l.plan->total_bytes,
                      l.skipped + replay->constant_slots, started);
  ticket->step = replay->next_step++;
  ticket->batch_size = l.batch;
  ticket->padded_batch = l.padded;
  ticket->set = l.set;
  return CGR_OK;
}

cgr_status cgr_set_replay_mode(cgr_runtime *rt, cgr_replay_mode mode) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  if ((unsigned)mode > CGR_REPLAY_PIPELINED)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "mode %d is not a cgr_replay_mode", (int)mode);
  cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  if (replay != NULL && replay->batch.open)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "a batch is open: switch modes between steps");
  if (replay != NULL && replay->staged.active)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "a step is staged (CGR_REPLAY_PIPELINED): end the run "
                     "with cgr_replay_ahead(rt, NULL, ...) first");
  rt->config.replay_mode = mode;
  if (replay != NULL)
    replay->mode = mode;
  return CGR_OK;
}

cgr_status cgr_replay_stats_get(const cgr_runtime *rt, cgr_replay_mode mode,
                                cgr_replay_stats *out) {
  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (rt == NULL || out == NULL || (unsigned)mode > CGR_REPLAY_PIPELINED)
    return CGR_E_INVALID_ARGUMENT;
  const cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  if (replay != NULL)
    *out = replay->stats[mode];
  return CGR_OK;
}
