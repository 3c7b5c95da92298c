/* Batches: what the next step's inputs are and where they lie, checked at
 * the boundary (the replay state they live in: replay_state.c). */
#include <stddef.h>
#include <string.h>

#include "replay/replay.h"
#include "runtime/alloc.h"

/* ---- batches ------------------------------------------------------------- */

/* The replay state a batch lives in (the batch is its first field). */
static inline cgr__replay *batch_replay(cgr_batch *batch) {
  return (cgr__replay *)(void *)((char *)batch - offsetof(cgr__replay, batch));
}

/* Opens the runtime's batch for a checked key. */
static inline cgr_batch *open_batch(const cgr_runtime *rt, cgr__replay *replay,
                                    uint32_t batch_size, uint32_t tokens,
                                    uint32_t variant) {
  cgr_batch *batch = &replay->batch;
  /* Each input field is set with its slot's given byte. */
  if (batch->slot_count <= 16)
    memset(batch->given, CGR__GIVEN_NONE, 16);
  else
    memset(batch->given, CGR__GIVEN_NONE, batch->slot_count);
  batch->given_count = 0;
  batch->size = batch_size;
  batch->tokens = tokens;
  batch->variant = variant;
  batch->rows[0] = batch_size;
  batch->rows[1] = batch_size * tokens;
  batch->event_count = 0;
  batch->dropped = 0;
  batch->open =
      rt->config.validate ? CGR__BATCH_OPEN_VALIDATED : CGR__BATCH_OPEN;
  return batch;
}

/* Both begins: the key's checks, then the batch opens. */
static CGR__COLD cgr_status begin(cgr_runtime *rt, uint32_t batch_size,
                                  uint32_t tokens, uint32_t variant,
                                  const char *func, cgr_batch **out);

cgr_status cgr_batch_begin(cgr_runtime *rt, uint32_t batch_size,
                           cgr_batch **out) {
  /* The step's path: a batch a graph holds (1 to the largest bucket), of
   * the first tokens value and variant 0, which every runtime has, on a
   * runtime whose replay state exists and whose device is not lost. */
  cgr__replay *replay = rt != NULL ? rt->layers[CGR__LAYER_REPLAY].state : NULL;
  if (replay != NULL && out != NULL && !replay->batch.open &&
      batch_size - 1u <
          cgr__largest_bucket(rt->layers[CGR__LAYER_CAPTURE].state) &&
      !cgr__be_lost(&rt->backend)) {
    *out =
        open_batch(rt, replay, batch_size, rt->config.tokens_per_request[0], 0);
    return CGR_OK;
  }
  if (rt == NULL) {
    if (out != NULL)
      *out = NULL;
    return CGR_E_INVALID_ARGUMENT;
  }
  return begin(rt, batch_size, rt->config.tokens_per_request[0], 0, __func__,
               out);
}

cgr_status cgr_batch_begin_key(cgr_runtime *rt, uint32_t batch_size,
                               uint32_t tokens_per_request, uint32_t variant,
                               cgr_batch **out) {
  if (out != NULL)
    *out = NULL;
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return begin(rt, batch_size, tokens_per_request, variant, __func__, out);
}

static CGR__COLD cgr_status begin(cgr_runtime *rt, uint32_t batch_size,
                                  uint32_t tokens, uint32_t variant,
                                  const char *func, cgr_batch **out) {
  if (out != NULL)
    *out = NULL;
  if (out == NULL || batch_size == 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "argument '%s' is %s", out == NULL ? "out" : "batch_size",
                     out == NULL ? "NULL" : "0");
  if (cgr__be_lost(&rt->backend))
    return cgr__be_lost_status(&rt->backend, func);
  cgr__replay *replay = NULL;
  CGR__CHECK(cgr__replay_state(rt, &replay));
  if (replay->batch.open)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, func,
                     "a batch is already open: replay it first");
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  if (cgr__token_index(cap, tokens) < 0) {
    char have[160];
    cgr__tokens_list(cap, have, sizeof have);
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "tokens_per_request %u is not one of the runtime's (%s: "
                     "config->tokens_per_request)",
                     tokens, have);
  }
  if (batch_size > UINT32_MAX / tokens)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "batch_size %u x tokens_per_request %u token rows do "
                     "not fit in 32 bits",
                     batch_size, tokens);
  if (variant >= cap->variant_count)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "variant %u is not a variant (the runtime has %u: "
                     "config->variants)",
                     variant, cap->variant_count);
  if (batch_size > cgr__largest_bucket(cap) &&
      replay->mode == CGR_REPLAY_PIPELINED)
    return cgr__fail(&rt->error, CGR_E_BATCH_TOO_LARGE, func,
                     "batch %u is larger than the largest bucket (%u): "
                     "CGR_REPLAY_PIPELINED stages only batches a graph "
                     "holds (run it eagerly in another mode)",
                     batch_size, cgr__largest_bucket(cap));
  if (batch_size > cgr__largest_bucket(cap) && !rt->config.allow_eager &&
      replay->mode != CGR_REPLAY_EAGER)
    return cgr__fail(&rt->error, CGR_E_BATCH_TOO_LARGE, func,
                     "batch %u is larger than the largest bucket (%u) and "
                     "config->allow_eager is 0",
                     batch_size, cgr__largest_bucket(cap));
  *out = open_batch(rt, replay, batch_size, tokens, variant);
  return CGR_OK;
}

/* The slot an input call names, checked: an input slot, not yet given. */
static cgr_status input_slot(cgr_batch *batch, cgr_slot slot, const char *func,
                             const cgr__slot **out) {
  cgr_runtime *rt = batch->rt;
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  if (!batch->open)
    return cgr__batch_not_open(rt, batch, func);
  if (slot < 0 || (size_t)slot >= cap->slot_count)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "slot %d is not declared", (int)slot);
  const cgr__slot *s = &cap->slots[slot];
  if (!cgr__is_input(s))
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "slot '%s' is %s: only ROWS and PREFIX slots take a "
                     "batch's data",
                     s->name,
                     s->desc.kind == CGR_SLOT_OUTPUT ? "an OUTPUT"
                                                     : "a CONSTANT");
  if (batch->given[slot] != CGR__GIVEN_NONE)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "slot '%s' is given twice in one batch", s->name);
  *out = s;
  return CGR_OK;
}

/* Element `index` of host-visible data, zero- or sign-extended. */
static uint64_t element_bits(const unsigned char *data, uint64_t index,
                             uint32_t width, int is_unsigned) {
  uint64_t bits = 0;
  memcpy(&bits, data + index * width, width); /* little-endian */
  if (is_unsigned || width == 8)
    return bits;
  uint64_t sign = UINT64_C(1) << (8 * width - 1);
  return (bits ^ sign) - sign;
}

/* Validation mode: every element of host-visible data (an input, or
 * feedback's new rows, `what` in the message) within the slot's declared
 * range, compared as signed or unsigned integers (desc.elem_unsigned). */
static cgr_status check_values(cgr_runtime *rt, const cgr__slot *slot,
                               const void *data, uint64_t bytes,
                               const char *func, const char *what) {
  int is_unsigned = slot->desc.elem_unsigned;
  uint64_t min = (uint64_t)slot->desc.valid_min;
  uint64_t max = (uint64_t)slot->desc.valid_max;
  if (is_unsigned ? max <= min : slot->desc.valid_max <= slot->desc.valid_min)
    return CGR_OK;
  uint32_t width = slot->desc.elem_size;
  for (uint64_t i = 0; i < bytes / width; ++i) {
    uint64_t bits = element_bits(data, i, width, is_unsigned);
    int outside = is_unsigned ? bits < min || bits > max
                              : (int64_t)bits < slot->desc.valid_min ||
                                    (int64_t)bits > slot->desc.valid_max;
    if (!outside)
      continue;
    if (is_unsigned)
      return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                       "slot '%s': %s %llu is %llu, outside [%llu, %llu]",
                       slot->name, what, (unsigned long long)i,
                       (unsigned long long)bits, (unsigned long long)min,
                       (unsigned long long)max);
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "slot '%s': %s %llu is %lld, outside [%lld, %lld]",
                     slot->name, what, (unsigned long long)i,
                     (long long)(int64_t)bits, (long long)slot->desc.valid_min,
                     (long long)slot->desc.valid_max);
  }
  return CGR_OK;
}

/* A PINNED source must lie wholly in page-locked memory (the device reads
 * it; pageable memory makes the copy fault and lose the device), a DEVICE
 * source wholly in one allocation of the runtime's device (past its end
 * the copy reads what lies there). HOST sources may be any host memory. */
static cgr_status check_source_memory(cgr_runtime *rt, const cgr__slot *s,
                                      cgr_source source, const void *data,
                                      size_t bytes) {
  if (source == CGR_SOURCE_HOST)
    return CGR_OK;
  cgr__memory_kind want =
      source == CGR_SOURCE_DEVICE ? CGR__MEMORY_DEVICE : CGR__MEMORY_PINNED;
  cgr__memory_kind kind = CGR__MEMORY_OTHER;
  CGR__CHECK(cgr__be_memory_kind(&rt->backend, data, bytes, &kind));
  if (kind == want)
    return CGR_OK;
  return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_batch_input",
                   "slot '%s': a %s source must lie wholly in %s%s, but "
                   "[%p, +%zu bytes) is %s",
                   s->name,
                   source == CGR_SOURCE_DEVICE ? "CGR_SOURCE_DEVICE"
                                               : "CGR_SOURCE_PINNED",
                   cgr__memory_kind_name(want),
                   source == CGR_SOURCE_DEVICE ? " of this runtime's device"
                                               : "",
                   data, bytes, cgr__memory_kind_name(kind));
}

/* Records a checked input of the batch. */
static inline void give_input(cgr_batch *batch, cgr_slot slot,
                              cgr_source source, const void *data,
                              size_t bytes) {
  cgr__slot_input *input = &batch->inputs[slot];
  batch->given[slot] = CGR__GIVEN_INPUT;
  batch->shape[slot] =
      (unsigned char)(CGR__GIVEN_INPUT + CGR__SHAPE_SOURCE * (unsigned)source);
  input->source = source;
  input->data = data;
  input->bytes = bytes;
  batch->given_count++;
}

/* cgr_batch_input with every check and message: the path of a refusal
 * and of validation mode. */
static CGR__COLD cgr_status input_checked(cgr_batch *batch, cgr_slot slot,
                                          cgr_source source, const void *data,
                                          size_t bytes) {
  cgr_runtime *rt = batch->rt;
  const cgr__slot *s = NULL;
  CGR__CHECK(input_slot(batch, slot, "cgr_batch_input", &s));
  if (source != CGR_SOURCE_HOST && source != CGR_SOURCE_PINNED &&
      source != CGR_SOURCE_DEVICE)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_batch_input",
                     "slot '%s': source %d is not a cgr_source", s->name,
                     (int)source);
  if (data == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_batch_input",
                     "slot '%s': data is NULL", s->name);
  uint64_t want = cgr__input_bytes(s, batch->size, batch->tokens);
  if (bytes != want)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_batch_input",
                     "slot '%s': %zu bytes given, a batch of %u needs %llu "
                     "(%s)",
                     s->name, bytes, batch->size, (unsigned long long)want,
                     s->desc.kind == CGR_SLOT_PREFIX ? "batch + 1 entries"
                     : s->desc.scale == CGR_SCALE_TOKEN
                         ? "batch * tokens_per_request rows"
                         : "batch rows");
  if (rt->config.validate) {
    CGR__CHECK(check_source_memory(rt, s, source, data, bytes));
    if (source != CGR_SOURCE_DEVICE)
      CGR__CHECK(
          check_values(rt, s, data, bytes, "cgr_batch_input", "element"));
  }
  give_input(batch, slot, source, data, bytes);
  return CGR_OK;
}

cgr_status cgr_batch_input(cgr_batch *batch, cgr_slot slot, cgr_source source,
                           const void *data, size_t bytes) {
  /* The step's path: a good input out of validation mode, checked with
   * no call against the batch's tables (an input slot, not given yet,
   * the bytes of its rows, a PREFIX slot's one more entry); anything
   * else takes the checked path, which says why. */
  if (batch != NULL && batch->open == CGR__BATCH_OPEN &&
      (uint32_t)slot < batch->slot_count && data != NULL &&
      (unsigned)source <= CGR_SOURCE_DEVICE &&
      batch->given[slot] == CGR__GIVEN_NONE) {
    unsigned traits = batch->slot_traits[slot];
    uint64_t rows = batch->rows[traits & CGR__INPUT_PER_TOKEN] +
                    ((traits & CGR__INPUT_PREFIX) ? 1 : 0);
    if (traits != 0 && bytes == rows * batch->slot_unit[slot]) {
      give_input(batch, slot, source, data, bytes);
      return CGR_OK;
    }
  }
  if (batch == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return input_checked(batch, slot, source, data, bytes);
}

/* Whether the buffer set this batch will load still holds the slot as
 * loaded with this batch size. Known at the call: the step (and so the
 * set) and the mode cannot change while a batch is open. Refused here,
 * not at replay, so that the caller can still give the data. */
static cgr_status check_unchanged(cgr_runtime *rt, const cgr_batch *batch,
                                  cgr_slot slot, const cgr__slot *s) {
  const cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  const cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  int over = batch->size > cgr__largest_bucket(cap);
  if (over || replay->mode == CGR_REPLAY_EAGER)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_batch_unchanged",
                     "slot '%s' is marked unchanged, but batch %u runs "
                     "eagerly (%s), on buffers of its own that hold no "
                     "earlier load: give its data",
                     s->name, batch->size,
                     over ? "it is over the largest bucket"
                          : "CGR_REPLAY_EAGER");
  int k = (int)(cgr__replay_batch_step(replay) % CGR__SETS);
  uint32_t loaded = replay->sets[k].loaded_size[slot];
  uint64_t rows = cgr__slot_rows(s, batch->size, batch->tokens);
  if (loaded == 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_batch_unchanged",
                     "slot '%s' is marked unchanged, but buffer set %d holds "
                     "no load of it (none yet, or a feed or a failed step "
                     "overwrote it): give its data",
                     s->name, k);
  if (loaded != rows)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_batch_unchanged",
                     "slot '%s' is marked unchanged, but buffer set %d was "
                     "last loaded with %u rows, not %llu: give its data",
                     s->name, k, loaded, (unsigned long long)rows);
  /* The in-graph mode's first node copies the key's padded rows whole,
   * from staging or from the set: rows past the live ones that still hold
   * an older step's data (an in-graph load of another key with as many
   * rows, of a smaller bucket) would be copied as padding. The other
   * modes fill them (replay.c, plan_slot). */
  const cgr__set *set = &replay->sets[k];
  uint64_t padded =
      cgr__slot_rows(s, cap->sizes[cap->bucket_of[batch->size]], batch->tokens);
  int image =
      set->image_size[slot] == rows && set->image_padded[slot] == padded;
  if (replay->mode == CGR_REPLAY_IN_GRAPH && s->desc.kind != CGR_SLOT_PREFIX &&
      set->dirty_end[slot] > rows && padded > rows && !image)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_batch_unchanged",
                     "slot '%s' is marked unchanged, but buffer set %d holds "
                     "an older step's rows past its %llu rows, which this "
                     "key's graph (%llu rows) would copy as padding in "
                     "CGR_REPLAY_IN_GRAPH: give its data",
                     s->name, k, (unsigned long long)rows,
                     (unsigned long long)padded);
  return CGR_OK;
}

cgr_status cgr_batch_unchanged(cgr_batch *batch, cgr_slot slot) {
  if (batch == NULL)
    return CGR_E_INVALID_ARGUMENT;
  /* The step's path, as check_unchanged accepts it: an input slot not
   * given yet, whose set holds it with as many rows, in a graph mode
   * other than in-graph (whose extra rule check_unchanged keeps). */
  if (batch->open == CGR__BATCH_OPEN && (uint32_t)slot < batch->slot_count &&
      batch->given[slot] == CGR__GIVEN_NONE) {
    const cgr__replay *replay = batch_replay(batch);
    unsigned traits = batch->slot_traits[slot];
    uint32_t rows = batch->rows[traits & CGR__INPUT_PER_TOKEN];
    int k = (int)(cgr__replay_batch_step(replay) % CGR__SETS);
    if (traits != 0 && rows > 0 && replay->sets[k].loaded_size[slot] == rows &&
        replay->mode != CGR_REPLAY_IN_GRAPH &&
        replay->mode != CGR_REPLAY_EAGER &&
        batch->size <=
            cgr__largest_bucket(batch->rt->layers[CGR__LAYER_CAPTURE].state)) {
      batch->given[slot] = CGR__GIVEN_UNCHANGED;
      batch->shape[slot] = CGR__GIVEN_UNCHANGED;
      batch->given_count++;
      return CGR_OK;
    }
  }
  const cgr__slot *s = NULL;
  CGR__CHECK(input_slot(batch, slot, __func__, &s));
  CGR__CHECK(check_unchanged(batch->rt, batch, slot, s));
  batch->given[slot] = CGR__GIVEN_UNCHANGED;
  batch->shape[slot] = CGR__GIVEN_UNCHANGED;
  batch->given_count++;
  return CGR_OK;
}

/* Records a checked feedback of the batch. */
static inline void give_feedback(cgr_batch *batch, cgr_slot slot,
                                 const int32_t *prev_rows, const void *new_rows,
                                 size_t new_rows_bytes, int in_place) {
  cgr__slot_input *input = &batch->inputs[slot];
  batch->given[slot] = CGR__GIVEN_FEEDBACK;
  batch->shape[slot] = (unsigned char)(CGR__GIVEN_FEEDBACK +
                                       (in_place ? CGR__SHAPE_IN_PLACE : 0));
  input->prev_rows = prev_rows;
  input->new_rows = new_rows;
  input->bytes = new_rows_bytes;
  input->in_place = (uint32_t)in_place;
  batch->given_count++;
}

static CGR__COLD cgr_status feedback_checked(cgr_batch *batch, cgr_slot slot,
                                             const int32_t *prev_rows,
                                             const void *new_rows,
                                             size_t new_rows_bytes);

cgr_status cgr_batch_feedback(cgr_batch *batch, cgr_slot slot,
                              const int32_t *prev_rows, const void *new_rows,
                              size_t new_rows_bytes) {
  /* The step's path: a fed slot not given yet, out of validation mode, in
   * a mode that runs a plan, continuing the step before; its rows
   * checked in one pass that also finds whether they all stay in place.
   * Anything else takes the checked path, which says why. */
  if (batch != NULL && batch->open == CGR__BATCH_OPEN &&
      (uint32_t)slot < batch->slot_count && prev_rows != NULL &&
      batch->given[slot] == CGR__GIVEN_NONE &&
      (batch->slot_traits[slot] & CGR__INPUT_FED)) {
    const cgr__replay *replay = batch_replay(batch);
    unsigned per_token = batch->slot_traits[slot] & CGR__INPUT_PER_TOKEN;
    uint32_t rows = batch->rows[per_token];
    uint64_t fed_rows = per_token
                            ? (uint64_t)replay->fed_batch * replay->fed_tokens
                            : replay->fed_batch;
    uint64_t step = cgr__replay_batch_step(replay);
    uint64_t fresh = 0;
    int in_place = 1, bad = 0;
    for (uint32_t j = 0; j < rows; ++j) {
      int32_t prev = prev_rows[j];
      if (prev == (int32_t)j)
        continue;
      in_place = 0;
      if (prev == -1)
        fresh++;
      else if ((uint64_t)(uint32_t)prev >= fed_rows) /* a negative one too */
        bad = 1;
    }
    if (!bad && replay->mode != CGR_REPLAY_IN_GRAPH && step > 0 &&
        replay->fed_step == step - 1 &&
        new_rows_bytes == fresh * batch->slot_unit[slot] &&
        (fresh == 0 || new_rows != NULL)) {
      give_feedback(batch, slot, prev_rows, new_rows, new_rows_bytes, in_place);
      return CGR_OK;
    }
  }
  if (batch == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return feedback_checked(batch, slot, prev_rows, new_rows, new_rows_bytes);
}

/* cgr_batch_feedback with every check and message: the path of a refusal
 * and of validation mode. */
static CGR__COLD cgr_status feedback_checked(cgr_batch *batch, cgr_slot slot,
                                             const int32_t *prev_rows,
                                             const void *new_rows,
                                             size_t new_rows_bytes) {
  cgr_runtime *rt = batch->rt;
  const cgr__slot *s = NULL;
  CGR__CHECK(input_slot(batch, slot, "cgr_batch_feedback", &s));
  cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  if (s->fed_by < 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_batch_feedback",
                     "slot '%s' is not fed (cgr_slot_feed)", s->name);
  if (replay->mode == CGR_REPLAY_IN_GRAPH)
    return cgr__fail(&rt->error, CGR_E_UNSUPPORTED, "cgr_batch_feedback",
                     "slot '%s': feedback needs a copy plan per step, which "
                     "CGR_REPLAY_IN_GRAPH does not run",
                     s->name);
  uint64_t step = cgr__replay_batch_step(replay);
  if (step == 0 || replay->fed_step != step - 1)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, "cgr_batch_feedback",
                     "slot '%s': the previous step was not a graph replay "
                     "(none yet, an eager step, or a failed one): nothing "
                     "to continue from",
                     s->name);
  if (prev_rows == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_batch_feedback",
                     "slot '%s': prev_rows is NULL", s->name);
  /* Rows as the slot counts them: per token for a slot scaled by token,
   * in this step and in the previous one (cgr.h). */
  uint64_t fresh = 0, rows = cgr__slot_rows(s, batch->size, batch->tokens);
  uint64_t fed_rows = cgr__slot_rows(s, replay->fed_batch, replay->fed_tokens);
  int in_place = 1;
  for (uint64_t j = 0; j < rows; ++j) {
    in_place &= prev_rows[j] == (int32_t)j;
    if (prev_rows[j] == -1) {
      fresh++;
    } else if (prev_rows[j] < 0 || (uint64_t)prev_rows[j] >= fed_rows) {
      return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_batch_feedback",
                       "slot '%s': prev_rows[%llu] is %d; the previous step "
                       "had %llu rows (or -1 for a new request)",
                       s->name, (unsigned long long)j, prev_rows[j],
                       (unsigned long long)fed_rows);
    }
  }
  if (new_rows_bytes != fresh * s->row_bytes || (fresh > 0 && !new_rows))
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_batch_feedback",
                     "slot '%s': %llu new requests need %llu bytes of "
                     "new_rows, %zu given",
                     s->name, (unsigned long long)fresh,
                     (unsigned long long)(fresh * s->row_bytes),
                     new_rows_bytes);
  /* New requests' rows reach the step as an input's would: the same
   * range check. */
  if (rt->config.validate && fresh > 0)
    CGR__CHECK(check_values(rt, s, new_rows, new_rows_bytes,
                            "cgr_batch_feedback", "new_rows element"));
  give_feedback(batch, slot, prev_rows, new_rows, new_rows_bytes, in_place);
  return CGR_OK;
}

cgr_status cgr_batch_gather(cgr_batch *batch, cgr_slot slot,
                            const void *device_src, const int32_t *row_index) {
  if (batch == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr_runtime *rt = batch->rt;
  const cgr__slot *s = NULL;
  CGR__CHECK(input_slot(batch, slot, __func__, &s));
  if (s->desc.kind != CGR_SLOT_ROWS)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "slot '%s': only ROWS slots gather", s->name);
  if (device_src == NULL || row_index == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "slot '%s': %s is NULL", s->name,
                     device_src == NULL ? "device_src" : "row_index");
  if (rt->config.validate) {
    /* The first row of the source (which rows the indices name is known
     * only on the device) and the whole index array. */
    cgr__memory_kind src_kind, index_kind;
    CGR__CHECK(cgr__be_memory_kind(&rt->backend, device_src,
                                   (size_t)s->row_bytes, &src_kind));
    CGR__CHECK(cgr__be_memory_kind(
        &rt->backend, row_index,
        (size_t)cgr__slot_rows(s, batch->size, batch->tokens) * sizeof(int32_t),
        &index_kind));
    int src_ok = src_kind == CGR__MEMORY_DEVICE;
    int index_ok = index_kind == CGR__MEMORY_DEVICE;
    if (!src_ok || !index_ok)
      return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                       "slot '%s': %s is not device memory of this "
                       "runtime's device",
                       s->name, src_ok ? "row_index" : "device_src");
  }
  cgr__slot_input *input = &batch->inputs[slot];
  batch->given[slot] = CGR__GIVEN_GATHER;
  batch->shape[slot] = CGR__GIVEN_GATHER;
  input->gather_src = device_src;
  input->gather_index = row_index;
  batch->given_count++;
  return CGR_OK;
}

cgr_status cgr__batch_not_open(cgr_runtime *rt, const cgr_batch *batch,
                               const char *func) {
  if (batch->dropped)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, func,
                     "the batch was closed when the staged step it followed "
                     "failed to launch (cgr_replay_ahead): build it again");
  return cgr__fail(&rt->error, CGR_E_INVALID_STATE, func,
                   "the batch is not open (cgr_batch_begin)");
}

void cgr_batch_discard(cgr_batch *batch) {
  if (batch != NULL)
    batch->open = 0;
}

/* ---- ordering with the caller's work ---------------------------------------
 */

cgr_status cgr_batch_wait_event(cgr_batch *batch, cgr_event *event) {
  if (batch == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr_runtime *rt = batch->rt;
  if (!batch->open)
    return cgr__batch_not_open(rt, batch, __func__);
  if (event == NULL || event->rt != rt)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'event' is %s",
                     event == NULL ? "NULL" : "an event of another runtime");
  if (batch->event_count == CGR_BATCH_MAX_EVENTS)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "a batch waits for at most %d events",
                     CGR_BATCH_MAX_EVENTS);
  /* Enqueued now, on both streams (the side stream loads the inputs in
   * double-buffered mode, the main stream in the others, and runs the
   * graph, which reads them after the loads anyway): the wait takes the
   * event's latest record as of this call, as cudaStreamWaitEvent does,
   * and the batch keeps nothing of the event, which the caller may
   * destroy at once. Work cgr enqueues later waits too, even if the batch
   * is discarded: the waits only ever order, never change, a step. */
  for (int role = 0; role < 2; ++role)
    CGR__CHECK(cgr__be_stream_wait_event(&rt->backend, rt->streams[role],
                                         event->event));
  batch->event_count++;
  return CGR_OK;
}
