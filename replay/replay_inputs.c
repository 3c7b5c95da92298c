/*
 * A whole step in one call (cgr_replay_inputs): the batch calls a binding
 * would otherwise make one foreign call each, made here in the header's
 * order. Nothing is copied or allocated on the way: each entry goes
 * straight to the batch call its kind names, which checks it as it would
 * alone. A failure before the replay discards the batch and says which
 * entry failed and what its call said.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cgr/cgr.h"
#include "runtime/error.h"
#include "runtime/runtime.h"

/* Fails with "cgr_replay_inputs: <where>: <what the failed call said>".
 * The call's message is copied first: it is rewritten in place. Only
 * failures pay for the formatting. */
static cgr_status fail_at(cgr_runtime *rt, cgr_status status,
                          const char *where_format, ...)
    __attribute__((format(printf, 3, 4)));

static cgr_status fail_at(cgr_runtime *rt, cgr_status status,
                          const char *where_format, ...) {
  char where[64];
  va_list args;
  va_start(args, where_format);
  vsnprintf(where, sizeof where, where_format, args);
  va_end(args);
  char why[CGR__ERROR_MESSAGE_SIZE];
  snprintf(why, sizeof why, "%s", rt->error.message);
  return cgr__fail(&rt->error, status, "cgr_replay_inputs", "%s: %s", where,
                   why);
}

/* What can be refused before a batch is opened: so that a caller's plain
 * mistake never opens, then discards, one. */
static cgr_status check_arguments(cgr_runtime *rt, const cgr_input *inputs,
                                  size_t count, cgr_event *const *wait_events,
                                  size_t wait_count,
                                  const cgr_event *done_event,
                                  const cgr_ticket *ticket) {
  if (ticket == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_replay_inputs",
                     "argument 'ticket' is NULL");
  if (inputs == NULL && count > 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_replay_inputs",
                     "argument 'inputs' is NULL, but count is %zu", count);
  if (wait_events == NULL && wait_count > 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_replay_inputs",
                     "argument 'wait_events' is NULL, but wait_count is %zu",
                     wait_count);
  /* The event is recorded after the replay, when a refusal could no
   * longer leave everything unchanged: check it now, as
   * cgr_ticket_record_event will. */
  if (done_event != NULL && done_event->rt != rt)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_replay_inputs",
                     "argument 'done_event' is an event of another runtime");
  return CGR_OK;
}

/* Gives inputs[index] to the batch through the call its kind names. */
static cgr_status give_input(cgr_runtime *rt, cgr_batch *batch,
                             const cgr_input *input, size_t index) {
  cgr_status status;
  switch (input->kind) {
  case CGR_INPUT_DATA:
    status = cgr_batch_input(batch, input->slot, input->source, input->data,
                             input->bytes);
    break;
  case CGR_INPUT_UNCHANGED:
    status = cgr_batch_unchanged(batch, input->slot);
    break;
  case CGR_INPUT_GATHER:
    status = cgr_batch_gather(batch, input->slot, input->data, input->rows);
    break;
  case CGR_INPUT_FEEDBACK:
    status = cgr_batch_feedback(batch, input->slot, input->rows, input->data,
                                input->bytes);
    break;
  default:
    /* The field may hold any int a foreign caller wrote there. */
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_replay_inputs",
                     "inputs[%zu]: kind %d is not a cgr_input_kind (slot %d)",
                     index, (int)input->kind, (int)input->slot);
  }
  if (status != CGR_OK)
    return fail_at(rt, status, "inputs[%zu]", index);
  return CGR_OK;
}

/* Opens the batch and fills it; on failure no batch is left open. */
static cgr_status fill_batch(cgr_runtime *rt, uint32_t batch_size,
                             const uint32_t *key, const cgr_input *inputs,
                             size_t count, cgr_event *const *wait_events,
                             size_t wait_count, cgr_batch **out) {
  cgr_batch *batch = NULL;
  /* The begin the caller's call stands for, so that its message names it. */
  cgr_status status =
      key != NULL ? cgr_batch_begin_key(rt, batch_size, key[0], key[1], &batch)
                  : cgr_batch_begin(rt, batch_size, &batch);
  if (status != CGR_OK)
    return fail_at(rt, status, "batch of %u", batch_size);
  for (size_t i = 0; i < count && status == CGR_OK; ++i)
    status = give_input(rt, batch, &inputs[i], i);
  for (size_t i = 0; i < wait_count && status == CGR_OK; ++i) {
    status = cgr_batch_wait_event(batch, wait_events[i]);
    if (status != CGR_OK)
      status = fail_at(rt, status, "wait_events[%zu]", i);
  }
  if (status != CGR_OK) {
    cgr_batch_discard(batch);
    return status;
  }
  *out = batch;
  return CGR_OK;
}

/* Both calls: key is {tokens_per_request, variant}, or NULL for the
 * default key of cgr_replay_inputs. */
static cgr_status replay_inputs(cgr_runtime *rt, uint32_t batch_size,
                                const uint32_t *key, const cgr_input *inputs,
                                size_t count, cgr_event *const *wait_events,
                                size_t wait_count, cgr_event *done_event,
                                cgr_ticket *ticket) {
  /* Zeroed on every failure, as cgr_replay does. */
  if (ticket != NULL)
    memset(ticket, 0, sizeof *ticket);
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  CGR__CHECK(check_arguments(rt, inputs, count, wait_events, wait_count,
                             done_event, ticket));
  cgr_batch *batch = NULL;
  CGR__CHECK(fill_batch(rt, batch_size, key, inputs, count, wait_events,
                        wait_count, &batch));
  /* cgr_replay consumes the batch whether it succeeds or not. */
  cgr_status status = cgr_replay(rt, batch, ticket);
  if (status != CGR_OK)
    return fail_at(rt, status, "batch of %u", batch_size);
  if (done_event == NULL)
    return CGR_OK;
  /* The step has run: *ticket stays valid even should the record fail. */
  status = cgr_ticket_record_event(rt, ticket, done_event);
  if (status != CGR_OK)
    return fail_at(rt, status, "done_event");
  return CGR_OK;
}

cgr_status cgr_replay_inputs(cgr_runtime *rt, uint32_t batch_size,
                             const cgr_input *inputs, size_t count,
                             cgr_event *const *wait_events, size_t wait_count,
                             cgr_event *done_event, cgr_ticket *ticket) {
  return replay_inputs(rt, batch_size, NULL, inputs, count, wait_events,
                       wait_count, done_event, ticket);
}

cgr_status cgr_replay_inputs_key(cgr_runtime *rt, uint32_t batch_size,
                                 uint32_t tokens_per_request, uint32_t variant,
                                 const cgr_input *inputs, size_t count,
                                 cgr_event *const *wait_events,
                                 size_t wait_count, cgr_event *done_event,
                                 cgr_ticket *ticket) {
  const uint32_t key[2] = {tokens_per_request, variant};
  return replay_inputs(rt, batch_size, key, inputs, count, wait_events,
                       wait_count, done_event, ticket);
}
