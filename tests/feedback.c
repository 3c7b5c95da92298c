/* Feedback: the step's output token ids become the next step's input_ids
 * on the device, with requests leaving and joining between steps; the loop
 * never waits on the device and matches a host reference loop token for
 * token. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model.h"
#include "replay/replay.h"

static const uint32_t buckets[] = {1, 2, 4, 8, 16, 24, 32};
enum { BUCKETS = 7, LARGEST = 32, MAX_REQUESTS = 40 };

static uint32_t below(uint64_t *state, uint32_t bound) {
  return (uint32_t)test_random_below(state, bound);
}

static cgr_runtime *feeding_runtime_validating(model *m, cgr_replay_mode mode,
                                               int validate) {
  cgr_runtime *rt = model_runtime_validating(buckets, BUCKETS, 1, validate, m);
  assert_cgr_ok(rt, cgr_slot_feed(rt, m->out, m->ids));
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, mode));
  assert_cgr_ok(rt, cgr_capture(rt, model_step, m));
  return rt;
}

static cgr_runtime *feeding_runtime(model *m, cgr_replay_mode mode) {
  return feeding_runtime_validating(m, mode, 1);
}

/* The host reference: each live request's current token. */
typedef struct request {
  int32_t token;
  int32_t row; /* its row in the previous step, -1 if it just joined */
} request;

typedef struct pending {
  cgr_ticket ticket;
  model_inputs in; /* what the step saw, ids included */
} pending;

static void check(cgr_runtime *rt, const model *m, const pending *p) {
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &p->ticket));
  void *out = NULL, *out_pages = NULL;
  assert_cgr_ok(rt, cgr_output(rt, &p->ticket, m->out, &out));
  assert_cgr_ok(rt, cgr_output(rt, &p->ticket, m->out_pages, &out_pages));
  model_check_outputs(rt, out, out_pages, &p->in, p->ticket.padded_batch,
                      p->ticket.batch_size, NULL);
}

/* The fed slot's padded rows hold the pad (0), not an earlier step's
 * tokens. Waits for the step; no later step may have been issued, since
 * the next graph feeds this set. */
static void check_fed_padding(cgr_runtime *rt, const model *m,
                              const cgr_ticket *ticket) {
  if (ticket->set < 0 || ticket->batch_size == ticket->padded_batch)
    return;
  assert_cgr_ok(rt, cgr_ticket_wait(rt, ticket));
  void *ids = NULL;
  int32_t rows[LARGEST];
  assert_cgr_ok(rt, cgr_slot_address(rt, m->ids, ticket->set, 0, &ids));
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), rows, ids,
                                         ticket->padded_batch * 4));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
  for (uint32_t r = ticket->batch_size; r < ticket->padded_batch; ++r)
    if (rows[r] != 0)
      fail_msg("step %llu: padded row %u of input_ids holds %d",
               (unsigned long long)ticket->step, r, rows[r]);
}

/*
 * Runs `steps` decode steps. Requests finish at random (rows after them
 * move up), new ones join at the end, and sometimes the batch is shuffled;
 * every so often the batch outgrows the largest bucket (an eager step,
 * after which the ids are given from the host), and now and then the ids
 * are given from the host after a graph step too.
 */
static void decode_loop(cgr_runtime *rt, model *m, int steps, uint64_t seed) {
  request live[MAX_REQUESTS];
  uint32_t count = 0;
  int previous_was_graph = 0;
  pending previous;
  int have_previous = 0;
  for (int n = 0; n < steps; ++n) {
    /* One step in six is steady: every request stays in its row, none
     * joins, so the fed slot's rows all continue in place. */
    int steady = count > 0 && below(&seed, 6) == 0;
    /* Leave: each request finishes with probability 1/8. */
    uint32_t kept = 0;
    for (uint32_t r = 0; r < count; ++r) {
      if (!steady && below(&seed, 8) == 0)
        continue;
      live[kept] = live[r];
      live[kept].row = (int32_t)r;
      kept++;
    }
    count = kept;
    /* Join: a few new requests, rarely enough to pass the largest
     * bucket. */
    uint32_t cap = below(&seed, 40) == 0 ? MAX_REQUESTS : LARGEST - 2;
    uint32_t joins = steady ? 0 : 1 + below(&seed, 4);
    while (joins-- > 0 && count < cap) {
      live[count].token = (int32_t)below(&seed, 50000);
      live[count].row = -1;
      count++;
    }
    /* Shuffle now and then: rows move without leaving. */
    if (!steady && below(&seed, 5) == 0)
      for (uint32_t r = count; r > 1; --r) {
        uint32_t other = below(&seed, r);
        request swap = live[r - 1];
        live[r - 1] = live[other];
        live[other] = swap;
      }

    pending p;
    model_make_inputs(&p.in, count, count, (unsigned)test_random(&seed));
    int32_t prev_rows[MAX_REQUESTS], fresh[MAX_REQUESTS];
    uint32_t fresh_count = 0;
    for (uint32_t j = 0; j < count; ++j) {
      p.in.ids[j] = live[j].token;
      prev_rows[j] = live[j].row;
      if (live[j].row < 0)
        fresh[fresh_count++] = live[j].token;
    }
    cgr_batch *batch = NULL;
    assert_cgr_ok(rt, cgr_batch_begin(rt, count, &batch));
    /* Now and then the ids come from the host even after a graph step:
     * the fed slot's copy then writes rows the previous graph's feed
     * writes too, and must land after it. */
    if (previous_was_graph && below(&seed, 7) != 0)
      assert_cgr_ok(rt, cgr_batch_feedback(batch, m->ids, prev_rows, fresh,
                                           fresh_count * sizeof(int32_t)));
    else
      assert_cgr_ok(rt, cgr_batch_input(batch, m->ids, CGR_SOURCE_HOST,
                                        p.in.ids, count * 4));
    assert_cgr_ok(rt, cgr_batch_input(batch, m->pos, CGR_SOURCE_HOST, p.in.pos,
                                      count * 4));
    assert_cgr_ok(rt, cgr_batch_input(batch, m->pages, CGR_SOURCE_HOST,
                                      p.in.pages, count * 4 * MODEL_PAGES));
    assert_cgr_ok(rt, cgr_batch_input(batch, m->cu_k, CGR_SOURCE_HOST,
                                      p.in.cu_k, (count + 1) * 4));
    assert_cgr_ok(rt, cgr_replay(rt, batch, &p.ticket));
    if (n % 3 == 0)
      check_fed_padding(rt, m, &p.ticket);
    /* The host reference: the next token of row j is this step's out[j],
     * known on the host without waiting for the device. */
    for (uint32_t j = 0; j < count; ++j) {
      live[j].token = model_expected_out(&p.in, p.ticket.padded_batch, j);
      live[j].row = (int32_t)j;
    }
    previous_was_graph = p.ticket.set >= 0;
    if (!previous_was_graph)
      check(rt, m, &p); /* eager outputs live until the next replay */
    if (have_previous && previous.ticket.set >= 0)
      check(rt, m, &previous);
    previous = p;
    have_previous = 1;
  }
  if (previous.ticket.set >= 0)
    check(rt, m, &previous);
}

static void run_decode(void **state, cgr_replay_mode mode, int validate) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = feeding_runtime_validating(&m, mode, validate);
  decode_loop(rt, &m, 2000, 0xFEED + (uint64_t)mode + 16u * (unsigned)validate);
  cgr_runtime_destroy(rt);
}

static void test_feedback_matches_the_reference_loop_naive(void **state) {
  run_decode(state, CGR_REPLAY_NAIVE, 1);
}

static void test_feedback_matches_the_reference_loop_fused(void **state) {
  run_decode(state, CGR_REPLAY_FUSED, 1);
}

static void
test_feedback_matches_the_reference_loop_double_buffered(void **state) {
  run_decode(state, CGR_REPLAY_DOUBLE_BUFFERED, 1);
}

/* The same loops with validation off, the default config's: the step
 * path's fast checks and planning (issue 23) instead of the checked
 * ones. */
static void test_unvalidated_feedback_matches_the_loop_naive(void **state) {
  run_decode(state, CGR_REPLAY_NAIVE, 0);
}

static void test_unvalidated_feedback_matches_the_loop_fused(void **state) {
  run_decode(state, CGR_REPLAY_FUSED, 0);
}

static void test_unvalidated_feedback_matches_the_loop_double(void **state) {
  run_decode(state, CGR_REPLAY_DOUBLE_BUFFERED, 0);
}

/* The same decode loop with validation on (every step planned and
 * checked whole) and off (the step path: plans reused from the plan memo,
 * moved feedback planned on top of them): the same copies, bytes and
 * skipped work, step for step in total, in every mode that plans. */
static void test_reused_plans_account_as_planned_ones(void **state) {
  (void)cgr_test_runtime(state);
  static const cgr_replay_mode modes[] = {CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED,
                                          CGR_REPLAY_DOUBLE_BUFFERED};
  for (size_t mode = 0; mode < sizeof modes / sizeof modes[0]; ++mode) {
    cgr_replay_stats stats[2];
    for (int validate = 0; validate < 2; ++validate) {
      model m;
      cgr_runtime *rt = feeding_runtime_validating(&m, modes[mode], validate);
      decode_loop(rt, &m, 600, 0xACC0 + (uint64_t)mode);
      assert_cgr_ok(rt,
                    cgr_replay_stats_get(rt, modes[mode], &stats[validate]));
      cgr_runtime_destroy(rt);
    }
    assert_true(stats[0].steps > 0);
    assert_int_equal(stats[0].steps, stats[1].steps);
    assert_int_equal(stats[0].eager_steps, stats[1].eager_steps);
    assert_int_equal(stats[0].ops_copied, stats[1].ops_copied);
    assert_int_equal(stats[0].bytes_copied, stats[1].bytes_copied);
    assert_int_equal(stats[0].ops_skipped, stats[1].ops_skipped);
  }
}

/* Two steps with the same requests in the same rows: the fed slot costs no
 * copy at all (the graph already wrote it); with validation on or off. */
static void unmoved_rows_cost_nothing(int validate) {
  model m;
  cgr_runtime *rt = feeding_runtime_validating(&m, CGR_REPLAY_FUSED, validate);
  model_inputs in;
  model_make_inputs(&in, 6, 6, 3);
  cgr_batch *batch = NULL;
  cgr_ticket first, second;
  assert_cgr_ok(rt, cgr_batch_begin(rt, 6, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, in.ids, 24));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, in.pos, 24));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pages, CGR_SOURCE_HOST, in.pages,
                                    24 * MODEL_PAGES));
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.cu_k, CGR_SOURCE_HOST, in.cu_k, 28));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &first));

  int32_t same_rows[6] = {0, 1, 2, 3, 4, 5};
  model_inputs next = in;
  for (uint32_t j = 0; j < 6; ++j)
    next.ids[j] = model_expected_out(&in, first.padded_batch, j);
  assert_cgr_ok(rt, cgr_batch_begin(rt, 6, &batch));
  assert_cgr_ok(rt, cgr_batch_feedback(batch, m.ids, same_rows, NULL, 0));
  /* pos was last loaded into set 0, not set 1: unchanged is refused at the
   * call, and the batch stays open for its data. */
  assert_cgr_status(rt, cgr_batch_unchanged(batch, m.pos),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "buffer set 1 holds no load of it");
  cgr_replay_stats before, after;
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, next.pos, 24));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pages, CGR_SOURCE_HOST, next.pages,
                                    24 * MODEL_PAGES));
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.cu_k, CGR_SOURCE_HOST, next.cu_k, 28));
  assert_cgr_ok(rt, cgr_replay_stats_get(rt, CGR_REPLAY_FUSED, &before));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &second));
  assert_cgr_ok(rt, cgr_replay_stats_get(rt, CGR_REPLAY_FUSED, &after));
  /* Three copies (pos, pages, cu_k) and the PREFIX fill; set 1's pos and
   * pages rows are still padding from birth; ids: no copy, only its rows
   * 6..8, which the feed wrote, are refilled. */
  assert_int_equal(after.ops_copied - before.ops_copied, 3 + 1 + 1);
  pending p = {.ticket = second, .in = next};
  check(rt, &m, &p);
  cgr_runtime_destroy(rt);
}

static void test_unmoved_rows_cost_nothing(void **state) {
  (void)cgr_test_runtime(state);
  unmoved_rows_cost_nothing(1);
  unmoved_rows_cost_nothing(0);
}

static void test_feedback_misuse_is_refused(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = feeding_runtime(&m, CGR_REPLAY_FUSED);
  int32_t rows[4] = {0, 1, -1, 7};
  int32_t fresh[1] = {5};
  cgr_batch *batch = NULL;
  /* Nothing to continue from yet. */
  assert_cgr_ok(rt, cgr_batch_begin(rt, 4, &batch));
  assert_cgr_status(rt, cgr_batch_feedback(batch, m.ids, rows, fresh, 4),
                    CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "nothing to continue from");
  /* Not a fed slot. */
  assert_cgr_status(rt, cgr_batch_feedback(batch, m.pos, rows, fresh, 4),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "is not fed");
  int32_t ids[4] = {1, 2, 3, 4}, pos[4] = {0}, pages[16] = {0},
          cu_k[5] = {0, 1, 2, 3, 4};
  assert_cgr_ok(rt, cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, ids, 16));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, pos, 16));
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.pages, CGR_SOURCE_HOST, pages, 64));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.cu_k, CGR_SOURCE_HOST, cu_k, 20));
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  /* Row 7 did not exist; the new rows' bytes must match the -1s. */
  assert_cgr_ok(rt, cgr_batch_begin(rt, 4, &batch));
  assert_cgr_status(rt, cgr_batch_feedback(batch, m.ids, rows, fresh, 4),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "prev_rows[3] is 7");
  rows[3] = 3;
  assert_cgr_status(rt, cgr_batch_feedback(batch, m.ids, rows, fresh, 8),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "need 4 bytes of new_rows, 8 given");
  /* Declaring feeds after capture, and nonsense feeds. */
  assert_cgr_status(rt, cgr_slot_feed(rt, m.out, m.pos), CGR_E_INVALID_STATE);
  cgr_runtime_destroy(rt);

  rt = model_runtime(buckets, BUCKETS, 1, &m);
  assert_cgr_status(rt, cgr_slot_feed(rt, m.ids, m.pos),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "from an OUTPUT slot to a ROWS slot");
  assert_cgr_status(rt, cgr_slot_feed(rt, m.out_pages, m.ids),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "do not match");
  assert_cgr_ok(rt, cgr_slot_feed(rt, m.out, m.ids));
  assert_cgr_status(rt, cgr_slot_feed(rt, m.out, m.ids),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "already fed");
  cgr_runtime_destroy(rt);
}

static void test_feedback_refused_in_graph_mode(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = feeding_runtime(&m, CGR_REPLAY_IN_GRAPH);
  int32_t ids[2] = {1, 2}, pos[2] = {0}, pages[8] = {0}, cu_k[3] = {0, 1, 2};
  cgr_batch *batch = NULL;
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_batch_begin(rt, 2, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, ids, 8));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, pos, 8));
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.pages, CGR_SOURCE_HOST, pages, 32));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.cu_k, CGR_SOURCE_HOST, cu_k, 12));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  int32_t rows[2] = {0, 1};
  assert_cgr_ok(rt, cgr_batch_begin(rt, 2, &batch));
  assert_cgr_status(rt, cgr_batch_feedback(batch, m.ids, rows, NULL, 0),
                    CGR_E_UNSUPPORTED);
  assert_last_error_contains(rt, "CGR_REPLAY_IN_GRAPH");
  cgr_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_feedback_matches_the_reference_loop_naive),
    RUNTIME_TEST(test_feedback_matches_the_reference_loop_fused),
    RUNTIME_TEST(test_feedback_matches_the_reference_loop_double_buffered),
    RUNTIME_TEST(test_unvalidated_feedback_matches_the_loop_naive),
    RUNTIME_TEST(test_unvalidated_feedback_matches_the_loop_fused),
    RUNTIME_TEST(test_unvalidated_feedback_matches_the_loop_double),
    RUNTIME_TEST(test_reused_plans_account_as_planned_ones),
    RUNTIME_TEST(test_unmoved_rows_cost_nothing),
    RUNTIME_TEST(test_feedback_misuse_is_refused),
    RUNTIME_TEST(test_feedback_refused_in_graph_mode),
};

CGR_TEST_MAIN(tests)
