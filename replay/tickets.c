/*
 * Tickets: what a replay returns, checked field by field against what the
 * runtime issued; waiting on them, reading their outputs, and events that
 * order the caller's work with a step (cgr_ticket_record_event,
 * cgr_batch_wait_event).
 */
#include <stdio.h>
#include <string.h>

#include "replay/replay.h"
#include "runtime/nvtx.h"
#include "runtime/runtime.h"

static int same_ticket(const cgr_ticket *a, const cgr_ticket *b) {
  return a->step == b->step && a->batch_size == b->batch_size &&
         a->padded_batch == b->padded_batch && a->set == b->set;
}

/*
 * 1 when the runtime issued the ticket. The last ticket of each set and
 * the last eager one are kept, and every ticket whose outputs are still
 * readable is one of them: those are compared field by field. An older
 * ticket has expired; of it, only what the runtime could have issued for
 * its step is known (its set, its bucket).
 */
static int was_issued(const cgr__replay *replay, const cgr__capture *cap,
                      const cgr_ticket *ticket) {
  if (ticket->step >= replay->next_step || ticket->set < -1 || ticket->set > 1)
    return 0;
  const cgr_ticket *kept[3] = {&replay->issued[0], &replay->issued[1],
                               &replay->issued_eager};
  for (int i = 0; i < 3; ++i)
    if (kept[i]->step == ticket->step)
      return same_ticket(kept[i], ticket);
  uint32_t b = ticket->batch_size;
  if (ticket->set < 0)
    return b > 0 && ticket->padded_batch == b;
  return (uint64_t)ticket->set == ticket->step % CGR__SETS && b > 0 &&
         b <= cgr__largest_bucket(cap) &&
         ticket->padded_batch == cap->sizes[cap->bucket_of[b]];
}

/* A ticket this runtime issued; 1 when its buffer set was since reused. */
static cgr_status check_ticket(cgr_runtime *rt, const cgr__replay *replay,
                               const cgr_ticket *ticket, const char *func,
                               int *expired) {
  if (ticket == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'ticket' is NULL");
  const cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  if (replay == NULL || !was_issued(replay, cap, ticket))
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "the ticket (step %llu, batch %u, bucket %u, set %d) "
                     "was not issued by this runtime",
                     (unsigned long long)ticket->step, ticket->batch_size,
                     ticket->padded_batch, ticket->set);
  uint64_t last = replay->next_step - 1;
  /* A graph set's outputs last until step + 2 replays, or until a failed
   * step's graph may have run on the set (outputs_lost). */
  *expired = ticket->set < 0
                 ? ticket->step != replay->eager_step || !replay->eager_live
                 : ticket->step + 2 <= last ||
                       ticket->step < replay->outputs_lost[ticket->set];
  return CGR_OK;
}

cgr_status cgr_ticket_wait(cgr_runtime *rt, const cgr_ticket *ticket) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  int expired = 0;
  CGR__CHECK(check_ticket(rt, replay, ticket, __func__, &expired));
  if (ticket->set < 0)
    return CGR_OK; /* eager steps finish inside cgr_replay */
  /* graph_done[set] was recorded by this step or a later one on the same
   * set, which the stream ordered after it: either way, waiting on it
   * covers the ticket. */
  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_WAIT, ticket->step);
  cgr_status status =
      cgr__be_event_synchronize(&rt->backend,
                                replay->sets[ticket->set].graph_done);
  CGR__NVTX_POP(rt->config.nvtx);
  if (status != CGR_OK) {
    /* Name the step: a device fault surfaces here, steps after its cause. */
    char why[CGR__ERROR_MESSAGE_SIZE];
    snprintf(why, sizeof why, "%s", rt->error.message);
    return cgr__fail(&rt->error, status, __func__,
                     "step %llu (batch %u, bucket %u, set %d): %s",
                     (unsigned long long)ticket->step, ticket->batch_size,
                     ticket->padded_batch, ticket->set, why);
  }
  return CGR_OK;
}

cgr_status cgr_ticket_query(cgr_runtime *rt, const cgr_ticket *ticket) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  int expired = 0;
  CGR__CHECK(check_ticket(rt, replay, ticket, __func__, &expired));
  if (ticket->set < 0)
    return CGR_OK;
  return cgr__be_event_query(&rt->backend,
                             replay->sets[ticket->set].graph_done);
}

cgr_status cgr_output(cgr_runtime *rt, const cgr_ticket *ticket, cgr_slot slot,
                      void **out) {
  if (out != NULL)
    *out = NULL;
  if (rt == NULL || out == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  int expired = 0;
  CGR__CHECK(check_ticket(rt, replay, ticket, __func__, &expired));
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  if (slot < 0 || (size_t)slot >= cap->slot_count ||
      cap->slots[slot].desc.kind != CGR_SLOT_OUTPUT)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "slot %d is not an OUTPUT slot", (int)slot);
  if (expired)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "ticket of step %llu has expired: its buffer set was "
                     "reused by a later step",
                     (unsigned long long)ticket->step);
  *out = ticket->set < 0 ? cgr__eager_slot(&replay->eager, slot)
                         : cap->slots[slot].buffers[ticket->set];
  return CGR_OK;
}

cgr_status cgr_ticket_key(cgr_runtime *rt, const cgr_ticket *ticket,
                          cgr_key *out) {
  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  if (out == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'out' is NULL");
  cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  int expired = 0;
  CGR__CHECK(check_ticket(rt, replay, ticket, __func__, &expired));
  if (expired)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "ticket of step %llu has expired: its key is no longer "
                     "kept",
                     (unsigned long long)ticket->step);
  *out = ticket->set < 0 ? replay->issued_eager_key
                         : replay->issued_key[ticket->set];
  return CGR_OK;
}

/* ---- ordering with the caller's work ---------------------------------------
 */

cgr_status cgr_ticket_record_event(cgr_runtime *rt, const cgr_ticket *ticket,
                                   cgr_event *event) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  int expired = 0;
  CGR__CHECK(check_ticket(rt, replay, ticket, __func__, &expired));
  if (event == NULL || event->rt != rt)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'event' is %s",
                     event == NULL ? "NULL" : "an event of another runtime");
  if (expired)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "ticket of step %llu has expired: its outputs are gone",
                     (unsigned long long)ticket->step);
  /* Every step's graph (and eager run) is on the main stream: a record
   * there follows the ticket's step and any step replayed after it. */
  return cgr__be_event_record(&rt->backend, event->event,
                              rt->streams[CGR_STREAM_MAIN]);
}
