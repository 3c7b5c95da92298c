/*
 * CGR_REPLAY_PIPELINED: the graph of step n also loads step n+1's inputs,
 * which the caller staged before step n launched (cgr.h has the calls and
 * the caller's contract).
 *
 * The protocol, for the call that launches step n (set k = n mod 2) and
 * stages step n+1 (set s = 1 - k):
 *
 *   host    waits until nothing reads set s's staging (staging_reader:
 *           graph n-2, which loaded step n-1 from it; no wait in the
 *           steady state); plans step n+1 against set s as graph n's
 *           feeds leave it; writes staging s, set s's feed indices and
 *           set s's two plan areas (the free part, the late part)
 *   main    launches the pipelined graph of (key of step n, set k): the
 *           step on set k and its feed copies into set s, and beside
 *           them, in a branch, the load of the free part into set s;
 *           after both, when the late part is not empty, its load (the
 *           "full" variant); records graph_done[k]
 *
 * Why nothing races:
 *   - The free part writes set s's unfed inputs, which graph n-1 read: it
 *     runs inside graph n, which the main stream runs after graph n-1. It
 *     reads staging s, the areas and the caller's pinned memory, written
 *     before the launch. It touches nothing of set k, which step n reads,
 *     and no fed input of set s, which step n's feed copies write: every
 *     operation on a fed slot, every gather and every DEVICE source is in
 *     the late part (replay.c, waits_for_previous_graph; the same split as
 *     the double-buffered mode's).
 *   - The late part follows the step inside the graph: its gathers read
 *     step n's outputs once written, its rows of fed inputs land after the
 *     feed copies (write after write), and DEVICE sources are read after
 *     step n's work, as cgr.h promises.
 *   - Graph n+1 reads set s after graph n ends: the main stream orders
 *     them, so after both parts of its load.
 *   - The host rewrites staging s, its feed indices and its areas only
 *     after graph n, which read them, completed: from graph n's launch on,
 *     set s's staging_reader is graph_done[k], and graph_done[k] is next
 *     recorded by graph n+2, after the host waited for it.
 *   - The set state the next batch is checked against (unchanged slots,
 *     padding, feedback) is bookkept at staging: a staged step's load is
 *     committed to its set and its graph's feeds marked in the other set
 *     at once, since the device will run them in that order.
 *
 * The first step of a run has no graph to carry its load: cgr_replay_stage
 * runs it as a fused copy on the main stream. A run ends with a launch
 * that stages nothing (its graph's load runs an empty plan).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
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

/* Checks an open batch to stage, then consumes it; `staged_ok` 0 when a
 * staged step is a caller's mistake (cgr_replay_stage). */
static cgr_status take_batch(cgr_runtime *rt, cgr__replay *replay,
                             cgr_batch *batch, int staged_ok,
                             const char *func) {
  const cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  if (batch == NULL || replay == NULL || batch != &replay->batch)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "the batch is not this runtime's batch");
  if (!batch->open)
    return cgr__batch_not_open(rt, batch, func);
  batch->open = 0; /* consumed, whatever happens */
  if (replay->mode != CGR_REPLAY_PIPELINED)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, func,
                     "the replay mode is not CGR_REPLAY_PIPELINED "
                     "(cgr_set_replay_mode)");
  if (!staged_ok && replay->staged.active)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, func,
                     "a step is already staged: cgr_replay_ahead launches it "
                     "(the batch is consumed)");
  if (batch->size > cgr__largest_bucket(cap))
    return cgr__fail(&rt->error, CGR_E_BATCH_TOO_LARGE, func,
                     "batch %u is larger than the largest bucket (%u): "
                     "CGR_REPLAY_PIPELINED stages only batches a graph holds",
                     batch->size, cgr__largest_bucket(cap));
  return cgr__replay_batch_complete(rt, cap, replay, batch, func);
}

/* A finished plan with no operation (an area that loads nothing), as
 * cgr__copy_plan_finish leaves an empty one: made once, not per step. */
static const cgr__copy_plan empty_plan = {.finished = 1};

/*
 * Plans `batch` into set l->set and writes the set's two plan areas: the
 * free part and the late part (both empty for a NULL batch). *full is 1
 * when the late part is not empty. The host has waited for the set's
 * staging first.
 */
static cgr_status plan_areas(cgr_runtime *rt, cgr__replay *replay,
                             cgr__capture *cap, const cgr_batch *batch,
                             cgr__load *l, int *full) {
  const cgr__copy_plan *parts[2] = {&empty_plan, &empty_plan};
  if (batch != NULL) {
    CGR__CHECK(cgr__replay_plan(rt, replay, cap, batch, l));
    if (l->split) {
      parts[0] = &l->head;
      parts[1] = &l->tail;
    } else {
      parts[l->free_ops < l->plan->count] = l->plan;
    }
  }
  CGR__CHECK(cgr__pipe_areas(rt, cap));
  for (int part = 0; part < 2; ++part)
    CGR__CHECK(cgr__plan_area_write(cap->pipe_areas[l->set][part],
                                    cap->pipe_capacity, parts[part],
                                    &rt->error));
  *full = parts[1]->count > 0;
  return CGR_OK;
}

/* A staged step: its load committed to its set, its graph's feeds marked
 * in the other set, and it is what the next batch continues from. */
static void stage_commit(cgr__capture *cap, cgr__replay *replay,
                         const cgr_batch *batch, const cgr__load *l) {
  cgr__replay_commit(replay, l);
  cap->sets_live = 1;
  cgr__replay_mark_fed(cap, replay, l->set, l->padded, l->tokens);
  replay->fed_step = replay->next_step + (replay->staged.active ? 1 : 0);
  replay->fed_batch = l->batch;
  replay->fed_tokens = l->tokens;
  replay->staged.active = 1;
  replay->staged.batch = l->batch;
  replay->staged.padded = l->padded;
  replay->staged.tokens = l->tokens;
  replay->staged.variant = batch->variant;
  replay->staged.key = l->key;
}

/* After a failure past the point of no return: nothing is staged, both
 * sets may hold anything in any row, and the staged step's graph may have
 * run on its set (its earlier tickets expire). A batch open now was
 * checked against the staged step (its set, its feedback): it is closed.
 * The queued work that may still read staging finishes first, as after a
 * failed cgr_replay. */
static void abandon(cgr_runtime *rt, cgr__capture *cap, cgr__replay *replay) {
  if (replay->batch.open) {
    replay->batch.open = 0;
    replay->batch.dropped = 1;
  }
  replay->outputs_lost[replay->next_step % CGR__SETS] = replay->next_step;
  cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_SIDE]);
  cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
  uint32_t largest = cgr__largest_bucket(cap), most = cgr__largest_tokens(cap);
  for (int k = 0; k < CGR__SETS; ++k) {
    cgr__set *set = &replay->sets[k];
    for (size_t i = 0; i < cap->slot_count; ++i) {
      set->dirty_end[i] =
          (uint32_t)cgr__slot_rows(&cap->slots[i], largest, most);
      set->loaded_size[i] = 0;
      set->image_size[i] = 0;
    }
  }
  replay->fed_step = UINT64_MAX;
  replay->staged.active = 0;
}

cgr_status cgr_replay_stage(cgr_runtime *rt, cgr_batch *batch) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  CGR__CHECK(take_batch(rt, replay, batch, 0, __func__));
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  double started = now_us();
  /* The previous eager step's buffers live until this step. */
  if (replay->eager_live) {
    cgr__eager_end(rt, &replay->eager);
    replay->eager_live = 0;
  }
  cgr__load l;
  cgr__load_init(&l, cap, batch, (int)(replay->next_step % CGR__SETS));
  cgr__set *set = &replay->sets[l.set];
  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_PREPARE, batch->size);
  cgr_status status = cgr__replay_staging_ready(rt, set);
  l.staging_ready = 1;
  if (status == CGR_OK)
    status = cgr__replay_plan(rt, replay, cap, batch, &l);
  CGR__NVTX_POP(rt->config.nvtx);
  if (status != CGR_OK)
    return status; /* nothing enqueued, nothing changed */
  /* No graph runs before the first step to carry its load: a fused copy
   * on the main stream, after the graph before it (which may feed it). */
  cgr__backend *be = &rt->backend;
  cgr__stream *main_stream = rt->streams[CGR_STREAM_MAIN];
  if (l.split) {
    status = cgr__fused_copy_launch(be, main_stream, &l.head);
    if (status == CGR_OK)
      status = cgr__fused_copy_launch(be, main_stream, &l.tail);
  } else {
    status = cgr__fused_copy_launch(be, main_stream, l.plan);
  }
  if (status == CGR_OK)
    status = cgr__be_event_record(be, set->staging_free, main_stream);
  if (status != CGR_OK) {
    cgr__replay_forget(cap, replay, &l);
    cgr__be_stream_drain(be, main_stream);
    return status;
  }
  set->staging_reader = set->staging_free;
  stage_commit(cap, replay, batch, &l);
  cgr_replay_stats *stats = &replay->stats[CGR_REPLAY_PIPELINED];
  stats->ops_copied += l.plan->count;
  stats->bytes_copied += l.plan->total_bytes;
  stats->ops_skipped += l.skipped + replay->constant_slots;
  stats->host_us_total += now_us() - started;
  return CGR_OK;
}

int cgr_replay_staged(const cgr_runtime *rt) {
  const cgr__replay *replay =
      rt != NULL ? rt->layers[CGR__LAYER_REPLAY].state : NULL;
  return replay != NULL && replay->staged.active;
}

/* Launches the staged step's pipelined graph, which loads what the areas
 * of the other set hold; records graph_done of its set. */
static cgr_status launch_staged(cgr_runtime *rt, cgr__replay *replay,
                                const cgr__capture *cap, int full) {
  int k = (int)(replay->next_step % CGR__SETS);
  cgr__graph_exec *exec = NULL;
  cgr_status status = cgr__replay_ensure_captured(rt, cap, replay->staged.key);
  if (status == CGR_OK)
    status = cgr__capture_pipelined(rt, replay->staged.key, k, full, &exec);
  if (status != CGR_OK)
    return status;
  cgr__backend *be = &rt->backend;
  cgr__stream *main_stream = rt->streams[CGR_STREAM_MAIN];
  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_REPLAY,
                 ((uint64_t)replay->staged.padded << 1) | (uint64_t)k);
  status = cgr__be_graph_launch(be, exec, main_stream);
  if (status == CGR_OK)
    status = cgr__be_event_record(be, replay->sets[k].graph_done, main_stream);
  CGR__NVTX_POP(rt->config.nvtx);
  return status;
}

cgr_status cgr_replay_ahead(cgr_runtime *rt, cgr_batch *next,
                            cgr_ticket *ticket) {
  if (ticket != NULL)
    memset(ticket, 0, sizeof *ticket);
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  if (next != NULL)
    CGR__CHECK(take_batch(rt, replay, next, 1, __func__));
  if (ticket == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'ticket' is NULL%s",
                     next != NULL ? " (the batch is consumed)" : "");
  /* With no batch yet there is no replay state: its mode is the
   * config's (cgr_set_replay_mode keeps both). */
  if ((replay != NULL ? replay->mode : rt->config.replay_mode) !=
      CGR_REPLAY_PIPELINED)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "the replay mode is not CGR_REPLAY_PIPELINED "
                     "(cgr_set_replay_mode)");
  if (replay == NULL || !replay->staged.active)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "no step is staged: cgr_replay_stage stages the first "
                     "step of a run%s",
                     next != NULL ? " (the batch is consumed)" : "");
  double started = now_us();
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  int k = (int)(replay->next_step % CGR__SETS);
  cgr__set *other = &replay->sets[1 - k];
  cgr__load l;
  if (next != NULL) {
    cgr__load_init(&l, cap, next, 1 - k);
  } else {
    memset(&l, 0, sizeof l); /* no load: empty areas */
    l.set = 1 - k;
  }
  int full = 0;
  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_PREPARE,
                 next != NULL ? next->size : 0);
  /* Its staging and feed indices, and its areas. */
  cgr_status status = cgr__replay_staging_ready(rt, other);
  l.staging_ready = 1;
  if (status == CGR_OK)
    status = plan_areas(rt, replay, cap, next, &l, &full);
  CGR__NVTX_POP(rt->config.nvtx);
  /* A plan the engine refuses (overlapping destinations, a bad gather
   * index array) launched nothing: the staged step stays staged. */
  if (status != CGR_OK && cgr__replay_refused(status))
    return status;
  if (status == CGR_OK)
    status = launch_staged(rt, replay, cap, full);
  if (status != CGR_OK) {
    abandon(rt, cap, replay);
    return status;
  }
  /* Graph n read set 1 - k's staging and areas. */
  other->staging_reader = replay->sets[k].graph_done;
  ticket->step = replay->next_step;
  ticket->batch_size = replay->staged.batch;
  ticket->padded_batch = replay->staged.padded;
  ticket->set = k;
  cgr__replay_issue(replay, ticket, replay->staged.tokens,
                    replay->staged.variant);
  replay->staged.active = 0;
  replay->next_step++;
  uint64_t ops = next != NULL ? l.plan->count : 0;
  uint64_t bytes = next != NULL ? l.plan->total_bytes : 0;
  if (next != NULL)
    stage_commit(cap, replay, next, &l);
  cgr__replay_account(replay, ops, bytes,
                      next != NULL ? l.skipped + replay->constant_slots : 0,
                      started);
  return CGR_OK;
}
