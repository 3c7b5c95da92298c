/*
 * Keys in CGR_REPLAY_PIPELINED: random sequences of keys and variants,
 * each step staged one ahead (so the key, the tokens per request and the
 * variant change between the step a graph runs and the step it loads),
 * checked against the keyed step's closed form (keys_fixture.h), with
 * unchanged slots and feedback over token rows of the staged step.
 */
#include <string.h>

#include "keys_fixture.h"

static uint32_t below(uint64_t *state, uint32_t bound) {
  return (uint32_t)test_random_below(state, bound);
}

/* What each buffer set was last loaded with (for unchanged slots), and
 * the feedback arrays of the batch being staged (they live until it is). */
typedef struct run_state {
  uint32_t pos_rows[2]; /* 0: unknown */
  int32_t pos[2][MAX_ROWS];
  int32_t prev_rows[MAX_ROWS], fresh[MAX_ROWS];
} run_state;

/*
 * The batch of step `step` (a random key, at most the largest bucket)
 * into *in. With feedback, ids continue random token rows of `before`,
 * the staged step it follows, whose outputs are known from the closed
 * form before it has run; pos is unchanged when its set holds the same
 * rows.
 */
static cgr_batch *make_step(cgr_runtime *rt, const keyed *m, run_state *st,
                            const step_inputs *before, uint64_t step,
                            uint64_t *seed, step_inputs *in) {
  memset(in, 0, sizeof *in);
  in->batch = 1 + below(seed, LARGEST);
  in->q = tokens[below(seed, TOKENS)];
  in->variant = below(seed, VARIANTS);
  uint32_t rows = in->batch * in->q;
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt,
                cgr_batch_begin_key(rt, in->batch, in->q, in->variant, &batch));
  int feed = m->feed && before != NULL && below(seed, 4) != 0;
  uint32_t before_rows = before != NULL ? before->batch * before->q : 0;
  uint32_t fresh_count = 0;
  for (uint32_t j = 0; j < rows; ++j) {
    in->ids[j] = (int32_t)below(seed, 1000);
    if (!feed)
      continue;
    uint32_t pick = below(seed, 4);
    if (pick == 0) {
      st->prev_rows[j] = -1;
      st->fresh[fresh_count++] = in->ids[j];
    } else {
      st->prev_rows[j] =
          (int32_t)(pick == 1 && j < before_rows ? j
                                                 : below(seed, before_rows));
      in->ids[j] =
          expected_out(before, test_bucket_of(buckets, BUCKETS, before->batch),
                       (uint32_t)st->prev_rows[j]);
    }
  }
  if (feed)
    assert_cgr_ok(rt, cgr_batch_feedback(batch, m->ids, st->prev_rows,
                                         st->fresh, fresh_count * 4));
  else
    assert_cgr_ok(rt, cgr_batch_input(batch, m->ids, CGR_SOURCE_HOST, in->ids,
                                      rows * 4));
  int k = (int)(step % 2);
  if (st->pos_rows[k] == rows && below(seed, 2) == 0) {
    assert_cgr_ok(rt, cgr_batch_unchanged(batch, m->pos));
    memcpy(in->pos, st->pos[k], rows * 4);
  } else {
    for (uint32_t j = 0; j < rows; ++j)
      in->pos[j] = (int32_t)below(seed, 500);
    assert_cgr_ok(rt, cgr_batch_input(batch, m->pos, CGR_SOURCE_HOST, in->pos,
                                      rows * 4));
  }
  st->pos_rows[k] = rows;
  memcpy(st->pos[k], in->pos, rows * 4);
  for (uint32_t r = 0; r < in->batch; ++r) {
    in->lens[r] = (int32_t)below(seed, 100);
    in->cu_k[r + 1] = in->cu_k[r] + in->lens[r];
  }
  assert_cgr_ok(rt, cgr_batch_input(batch, m->lens, CGR_SOURCE_HOST, in->lens,
                                    in->batch * 4));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->cu_k, CGR_SOURCE_HOST, in->cu_k,
                                    (in->batch + 1) * 4));
  return batch;
}

/* `steps` random steps in one pipelined run; each is checked as soon as
 * it launched (its set holds its load until the next launch). */
static void pipelined_steps(cgr_runtime *rt, keyed *m, int steps,
                            uint64_t seed) {
  run_state st;
  memset(&st, 0, sizeof st);
  step_inputs in[2];
  assert_cgr_ok(rt, cgr_replay_stage(rt, make_step(rt, m, &st, NULL, 0, &seed,
                                                   &in[0])));
  int32_t out_copy[MAX_ROWS];
  for (int n = 0; n < steps; ++n) {
    const step_inputs *now = &in[n % 2];
    cgr_batch *next = NULL;
    if (n + 1 < steps)
      next =
          make_step(rt, m, &st, now, (uint64_t)n + 1, &seed, &in[(n + 1) % 2]);
    cgr_ticket ticket;
    assert_cgr_ok(rt, cgr_replay_ahead(rt, next, &ticket));
    assert_int_equal(ticket.step, (uint64_t)n);
    assert_int_equal(ticket.set, n % 2);
    cgr_key key;
    assert_cgr_ok(rt, cgr_ticket_key(rt, &ticket, &key));
    assert_int_equal(key.padded_batch,
                     test_bucket_of(buckets, BUCKETS, now->batch));
    assert_int_equal(key.tokens_per_request, now->q);
    assert_int_equal(key.variant, now->variant);
    check_step(rt, m, &ticket, now, out_copy);
  }
}

static void test_random_keys_match_the_closed_form(void **state) {
  (void)state;
  cgr_test_require_backend();
  for (int feed = 0; feed < 2; ++feed) {
    keyed m;
    cgr_runtime *rt = keyed_runtime(&m, CGR_REPLAY_PIPELINED, 0, feed);
    pipelined_steps(rt, &m, 400, 2000 + (uint64_t)feed);
    cgr_replay_stats stats;
    assert_cgr_ok(rt, cgr_replay_stats_get(rt, CGR_REPLAY_PIPELINED, &stats));
    assert_int_equal(stats.steps, 400);
    cgr_runtime_destroy(rt);
  }
}

/* Lazy capture of keys (and their pipelined graphs) in the middle of a
 * run, with feedback. */
static void test_lazy_keys_match_the_closed_form(void **state) {
  (void)state;
  cgr_test_require_backend();
  keyed m;
  cgr_runtime *rt = keyed_runtime(&m, CGR_REPLAY_PIPELINED, 1, 1);
  pipelined_steps(rt, &m, 200, 3000);
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_true(stats.keys_captured > 1);
  cgr_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_random_keys_match_the_closed_form),
    cmocka_unit_test(test_lazy_keys_match_the_closed_form),
};

CGR_TEST_MAIN(tests)
