/* The group tests' toy step and its single-runtime reference
 * (group_fixture.h). */
#include "group_fixture.h"

#include <stdio.h>
#include <string.h>

static const uint32_t default_buckets[] = {1, 2, 4, 8};

void toy_options_init(toy_options *options) {
  memset(options, 0, sizeof *options);
  options->ranks = 2;
  options->mode = CGR_REPLAY_DOUBLE_BUFFERED;
  options->timeout_ms = 30000;
  options->buckets = default_buckets;
  options->bucket_count = 4;
}

void toy_faults_init(toy_faults *faults) {
  memset(faults, 0, sizeof *faults);
  faults->omit_rank = -1;
  faults->fail_rank = -1;
}

/* ---- the kernels (host only) --------------------------------------------- */

static int32_t weight(uint32_t i, uint32_t j) {
  return (int32_t)((i * 7 + j * 3) % 11) - 5;
}

typedef struct partial_args {
  const int32_t *x, *tok;
  int32_t *partial;
  uint32_t padded, first, shard;
} partial_args;

static void partial_run(const void *raw) {
  const partial_args *a = raw;
  for (uint32_t b = 0; b < a->padded; ++b)
    for (uint32_t j = 0; j < HIDDEN; ++j) {
      int32_t sum = 0;
      for (uint32_t i = a->first; i < a->first + a->shard; ++i)
        sum += (a->x[b * HIDDEN + i] + a->tok[b]) * weight(i, j);
      a->partial[b * HIDDEN + j] = sum;
    }
}

typedef struct act_args {
  const int32_t *partial;
  int32_t *shard_out;
  uint32_t padded, first, shard;
} act_args;

static void act_run(const void *raw) {
  const act_args *a = raw;
  for (uint32_t b = 0; b < a->padded; ++b)
    for (uint32_t k = 0; k < a->shard; ++k)
      a->shard_out[b * a->shard + k] =
          (a->partial[b * HIDDEN + a->first + k] % 1009 + 1009) % 1009;
}

typedef struct out_args {
  const int32_t *gathered;
  int32_t *out, *next;
  uint32_t padded, shard;
} out_args;

static void out_run(const void *raw) {
  const out_args *a = raw;
  for (uint32_t b = 0; b < a->padded; ++b) {
    /* Unsigned: a failed step leaves `gathered` uninitialized (0xA5...). */
    uint32_t sum = 0;
    for (uint32_t j = 0; j < HIDDEN; ++j) {
      uint32_t rank = j / a->shard, k = j % a->shard;
      int32_t value = a->gathered[(rank * a->padded + b) * a->shard + k];
      a->out[b * HIDDEN + j] = value;
      sum += (uint32_t)value;
    }
    a->next[b] = (int32_t)(sum % 1000);
  }
}

static const cgr_kernel partial_kernel = {"toy_partial", sizeof(partial_args),
                                          NULL, partial_run};
static const cgr_kernel act_kernel = {"toy_act", sizeof(act_args), NULL,
                                      act_run};
static const cgr_kernel out_kernel = {"toy_out", sizeof(out_args), NULL,
                                      out_run};

/* Slots in declaration order (toy_declare). */
enum { SLOT_TOK, SLOT_X, SLOT_OUT, SLOT_NEXT };

cgr_status toy_step(cgr_step *step, void *user) {
  const toy_faults *faults = user;
  int rank = cgr_step_rank(step), ranks = cgr_step_ranks(step);
  uint32_t padded = cgr_step_padded_batch(step);
  uint32_t shard = HIDDEN / (uint32_t)ranks, first = (uint32_t)rank * shard;
  if (faults != NULL && rank == faults->fail_rank && padded > faults->fail_over)
    return CGR_E_INVALID_ARGUMENT;
  void *partial = NULL, *shard_out = NULL, *gathered = NULL;
  CGR__CHECK(cgr_step_scratch(step, (size_t)padded * HIDDEN * 4, 0, &partial));
  CGR__CHECK(cgr_step_scratch(step, (size_t)padded * shard * 4, 0, &shard_out));
  CGR__CHECK(cgr_step_scratch(step, (size_t)padded * HIDDEN * 4, 0, &gathered));
  partial_args p = {cgr_step_slot(step, SLOT_X),
                    cgr_step_slot(step, SLOT_TOK),
                    partial,
                    padded,
                    first,
                    shard};
  CGR__CHECK(cgr_step_launch(step, &partial_kernel, &p));
  CGR__CHECK(cgr_step_all_reduce(step, partial, partial,
                                 (size_t)padded * HIDDEN, CGR_DTYPE_INT32,
                                 CGR_REDUCE_SUM));
  act_args a = {partial, shard_out, padded, first, shard};
  CGR__CHECK(cgr_step_launch(step, &act_kernel, &a));
  int omit = faults != NULL && rank == faults->omit_rank &&
             (!faults->omit_only_capturing || cgr_step_is_capturing(step));
  if (!omit)
    CGR__CHECK(cgr_step_all_gather(step, shard_out, gathered,
                                   (size_t)padded * shard, CGR_DTYPE_INT32));
  int32_t *next = cgr_step_slot(step, SLOT_NEXT);
  out_args o = {gathered, cgr_step_slot(step, SLOT_OUT), next, padded, shard};
  CGR__CHECK(cgr_step_launch(step, &out_kernel, &o));
  return cgr_step_broadcast(step, next, next, padded, CGR_DTYPE_INT32, 0);
}

/* ---- groups and the reference -------------------------------------------- */

static void toy_runtime_config(const toy_options *options, cgr_config *config) {
  cgr_test_config(config);
  config->buckets = options->buckets;
  config->bucket_count = options->bucket_count;
  config->replay_mode = options->mode;
  config->lazy_capture = options->lazy;
  config->tokens_per_request = options->tokens;
  config->tokens_per_request_count = options->token_count;
  config->variants = options->variants;
  config->variant_count = options->variant_count;
}

static void toy_descs(cgr_slot_desc descs[4]) {
  cgr_slot_desc_init(&descs[0], "tok", CGR_SLOT_ROWS, 4, 1);
  cgr_slot_desc_init(&descs[1], "x", CGR_SLOT_ROWS, 4, HIDDEN);
  cgr_slot_desc_init(&descs[2], "out", CGR_SLOT_OUTPUT, 4, HIDDEN);
  cgr_slot_desc_init(&descs[3], "next", CGR_SLOT_OUTPUT, 4, 1);
}

cgr_group *toy_group(const toy_options *options, toy_slots *slots) {
  cgr_config runtime;
  toy_runtime_config(options, &runtime);
  cgr_group_config config;
  cgr_group_config_init(&config);
  config.ranks = options->ranks;
  config.runtime = &runtime;
  config.timeout_ms = options->timeout_ms;
  config.world_ranks = options->world_ranks;
  config.world_rank = options->world_rank;
  config.id = options->id;
  cgr_group *group = NULL;
  cgr_status status = cgr_group_create(&config, &group);
  if (status != CGR_OK)
    fail_msg("cgr_group_create: %s: %s", cgr_status_name(status),
             cgr_group_last_error(NULL));
  cgr_slot_desc descs[4];
  toy_descs(descs);
  cgr_slot *out[4] = {&slots->tok, &slots->x, &slots->out, &slots->next};
  for (int i = 0; i < 4; ++i) {
    status = cgr_group_slot_declare(group, &descs[i], out[i]);
    if (status != CGR_OK || *out[i] != i)
      fail_msg("cgr_group_slot_declare: %s: %s", cgr_status_name(status),
               cgr_group_last_error(group));
  }
  if (options->feedback) {
    status = cgr_group_slot_feed(group, slots->next, slots->tok);
    if (status != CGR_OK)
      fail_msg("cgr_group_slot_feed: %s", cgr_group_last_error(group));
  }
  return group;
}

cgr_runtime *toy_single(const toy_options *options, toy_slots *slots) {
  cgr_config config;
  toy_runtime_config(options, &config);
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  cgr_slot_desc descs[4];
  toy_descs(descs);
  cgr_slot *out[4] = {&slots->tok, &slots->x, &slots->out, &slots->next};
  for (int i = 0; i < 4; ++i)
    assert_cgr_ok(rt, cgr_slot_declare(rt, &descs[i], out[i]));
  if (options->feedback)
    assert_cgr_ok(rt, cgr_slot_feed(rt, slots->next, slots->tok));
  assert_cgr_ok(rt, cgr_capture(rt, toy_step, NULL));
  return rt;
}

/* ---- steps -----------------------------------------------------------------
 */

void toy_make_inputs(toy_inputs *in, uint32_t batch, uint32_t prev_batch,
                     uint64_t *random) {
  memset(in, 0, sizeof *in);
  in->batch = batch;
  for (uint32_t b = 0; b < batch; ++b) {
    in->tok[b] = (int32_t)test_random_below(random, 1000);
    for (uint32_t i = 0; i < HIDDEN; ++i)
      in->x[b * HIDDEN + i] = (int32_t)test_random_below(random, 100);
  }
  if (prev_batch == 0)
    return;
  in->use_feedback = 1;
  int in_place = batch <= prev_batch && test_random_below(random, 3) == 0;
  for (uint32_t b = 0; b < batch; ++b) {
    if (in_place)
      in->prev_rows[b] = (int32_t)b;
    else if (test_random_below(random, 4) == 0)
      in->prev_rows[b] = -1;
    else
      in->prev_rows[b] = (int32_t)test_random_below(random, prev_batch);
    if (in->prev_rows[b] == -1)
      in->new_tok[in->new_count++] = in->tok[b];
  }
}

void toy_fill(cgr_runtime *rt, cgr_batch *batch, const toy_slots *slots,
              const toy_inputs *in) {
  assert_cgr_ok(rt, cgr_batch_input(batch, slots->x, CGR_SOURCE_HOST, in->x,
                                    (size_t)in->batch * HIDDEN * 4));
  if (in->use_feedback)
    assert_cgr_ok(rt,
                  cgr_batch_feedback(batch, slots->tok, in->prev_rows,
                                     in->new_tok, (size_t)in->new_count * 4));
  else
    assert_cgr_ok(rt, cgr_batch_input(batch, slots->tok, CGR_SOURCE_HOST,
                                      in->tok, (size_t)in->batch * 4));
}

void toy_read(cgr_runtime *rt, const cgr_ticket *ticket, const toy_slots *slots,
              uint32_t batch, int32_t *out, int32_t *next) {
  void *device = NULL;
  assert_cgr_ok(rt, cgr_output(rt, ticket, slots->out, &device));
  assert_cgr_ok(rt, cgr_memcpy(rt, out, device, (size_t)batch * HIDDEN * 4));
  assert_cgr_ok(rt, cgr_output(rt, ticket, slots->next, &device));
  assert_cgr_ok(rt, cgr_memcpy(rt, next, device, (size_t)batch * 4));
}

cgr_ticket toy_step_both(cgr_group *group, const toy_slots *group_slots,
                         cgr_runtime *single, const toy_slots *single_slots,
                         const toy_inputs *in) {
  cgr_batch *batches[CGR_GROUP_MAX_RANKS] = {NULL};
  cgr_status status =
      in->tokens ? cgr_group_batch_begin_key(group, in->batch, in->tokens,
                                             in->variant, batches)
                 : cgr_group_batch_begin(group, in->batch, batches);
  if (status != CGR_OK)
    fail_msg("cgr_group_batch_begin: %s", cgr_group_last_error(group));
  int ranks = cgr_group_ranks(group);
  for (int r = 0; r < ranks; ++r)
    toy_fill(cgr_group_runtime(group, r), batches[r], group_slots, in);
  cgr_ticket ticket;
  status = cgr_group_replay(group, batches, &ticket);
  if (status != CGR_OK)
    fail_msg("cgr_group_replay: %s: %s", cgr_status_name(status),
             cgr_group_last_error(group));
  status = cgr_group_ticket_wait(group, &ticket);
  if (status != CGR_OK)
    fail_msg("cgr_group_ticket_wait: %s", cgr_group_last_error(group));

  cgr_batch *batch = NULL;
  assert_cgr_ok(single, in->tokens
                            ? cgr_batch_begin_key(single, in->batch, in->tokens,
                                                  in->variant, &batch)
                            : cgr_batch_begin(single, in->batch, &batch));
  toy_fill(single, batch, single_slots, in);
  cgr_ticket want_ticket;
  assert_cgr_ok(single, cgr_replay(single, batch, &want_ticket));
  assert_cgr_ok(single, cgr_ticket_wait(single, &want_ticket));
  int32_t want_out[GROUP_MAX_BATCH * HIDDEN], want_next[GROUP_MAX_BATCH];
  toy_read(single, &want_ticket, single_slots, in->batch, want_out, want_next);
  for (int r = 0; r < ranks; ++r) {
    int32_t out[GROUP_MAX_BATCH * HIDDEN], next[GROUP_MAX_BATCH];
    toy_read(cgr_group_runtime(group, r), &ticket, group_slots, in->batch, out,
             next);
    for (uint32_t i = 0; i < in->batch * HIDDEN; ++i)
      if (out[i] != want_out[i])
        fail_msg("step %llu (batch %u), rank %d: out[%u] is %d, one runtime "
                 "wrote %d",
                 (unsigned long long)ticket.step, in->batch, r, i, out[i],
                 want_out[i]);
    for (uint32_t b = 0; b < in->batch; ++b)
      if (next[b] != want_next[b])
        fail_msg("step %llu (batch %u), rank %d: next[%u] is %d, one runtime "
                 "wrote %d",
                 (unsigned long long)ticket.step, in->batch, r, b, next[b],
                 want_next[b]);
  }
  return ticket;
}

void toy_equivalence(const toy_options *options, long steps, uint32_t max_batch,
                     uint64_t seed) {
  toy_slots group_slots, single_slots;
  cgr_group *group = toy_group(options, &group_slots);
  cgr_status status = cgr_group_capture(group, toy_step, NULL);
  if (status != CGR_OK)
    fail_msg("cgr_group_capture: %s: %s", cgr_status_name(status),
             cgr_group_last_error(group));
  cgr_runtime *single = toy_single(options, &single_slots);
  uint32_t largest = options->buckets[options->bucket_count - 1];
  /* Feedback continues a graph step only, never in-graph or eager. */
  int can_feed = options->feedback && options->mode != CGR_REPLAY_IN_GRAPH &&
                 options->mode != CGR_REPLAY_EAGER;
  uint32_t prev_graph_batch = 0;
  uint64_t random = seed;
  for (long n = 0; n < steps; ++n) {
    uint32_t batch = 1 + (uint32_t)test_random_below(&random, max_batch);
    toy_inputs in;
    toy_make_inputs(&in, batch, can_feed ? prev_graph_batch : 0, &random);
    (void)toy_step_both(group, &group_slots, single, &single_slots, &in);
    prev_graph_batch = batch <= largest ? batch : 0;
  }
  cgr_group_destroy(group);
  cgr_runtime_destroy(single);
}
