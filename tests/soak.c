/* The soak: CGR_SOAK_STEPS decode steps (default 1,000,000) of the test
 * model on the host backend in the default mode, with random batch sizes
 * (eager ones over the largest bucket included) and random inputs; every
 * 100th step's outputs are checked against the model's closed form, and
 * at the end the runtime's counters must add up: one graph launch per
 * graph step, no leaked work. The same in the pipelined mode, one run. Labelled
 * `soak`, outside the default run: `ctest --preset soak` runs it (CI with
 * 100,000 steps). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static const uint32_t buckets[] = {1, 2, 4, 8, 16, 24, 32};
enum { BUCKETS = 7, LARGEST = 32, MAX_BATCH = 40, CHECK_EVERY = 100 };

static long soak_steps(void) {
  const char *value = getenv("CGR_SOAK_STEPS");
  if (value == NULL || *value == '\0')
    return 1000000;
  char *end = NULL;
  errno = 0;
  long steps = strtol(value, &end, 10);
  if (errno != 0 || *end != '\0' || steps < 1)
    fail_msg("CGR_SOAK_STEPS='%s' is not a positive whole number", value);
  return steps;
}

/* xorshift32: the batch sizes. */
static uint32_t next_random(uint32_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 17;
  *state ^= *state << 5;
  return *state;
}

static void test_soak_default_mode_random_batches(void **state) {
  (void)cgr_test_runtime(state);
  cgr_test_require_host();
  long steps = soak_steps();
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, BUCKETS, 1, &m);
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, CGR_REPLAY_DOUBLE_BUFFERED));
  assert_cgr_ok(rt, cgr_counters_reset(rt));
  uint32_t random = 0x9E3779B9u;
  model_inputs in;
  long graph_steps = 0, eager_steps = 0, checked = 0;
  for (long n = 0; n < steps; ++n) {
    uint32_t live = 1 + next_random(&random) % MAX_BATCH;
    model_make_inputs(&in, live, live, (unsigned)n);
    cgr_batch *batch = NULL;
    assert_cgr_ok(rt, cgr_batch_begin(rt, live, &batch));
    assert_cgr_ok(rt, cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, in.ids,
                                      live * 4));
    assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, in.pos,
                                      live * 4));
    assert_cgr_ok(rt, cgr_batch_input(batch, m.pages, CGR_SOURCE_HOST, in.pages,
                                      live * 4 * MODEL_PAGES));
    assert_cgr_ok(rt, cgr_batch_input(batch, m.cu_k, CGR_SOURCE_HOST, in.cu_k,
                                      (live + 1) * 4));
    cgr_ticket ticket;
    assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
    if (live > LARGEST)
      eager_steps++;
    else
      graph_steps++;
    /* Eager outputs last until the next replay: check those at once. */
    if (n % CHECK_EVERY == 0 || n == steps - 1 || live > LARGEST) {
      assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
      void *out = NULL, *out_pages = NULL;
      assert_cgr_ok(rt, cgr_output(rt, &ticket, m.out, &out));
      assert_cgr_ok(rt, cgr_output(rt, &ticket, m.out_pages, &out_pages));
      model_check_outputs(rt, out, out_pages, &in, ticket.padded_batch, live,
                          NULL);
      checked++;
    }
  }
  assert_cgr_ok(rt, cgr_synchronize(rt));
  cgr_counters c;
  assert_cgr_ok(rt, cgr_counters_get(rt, &c));
  assert_int_equal(c.graph_launches, graph_steps);
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.eager_runs, eager_steps);
  printf("soak: %ld steps (%ld graph, %ld eager), %ld checked\n", steps,
         graph_steps, eager_steps, checked);
  cgr_runtime_destroy(rt);
}

/* A batch of `live` rows of `in`, every slot from the host. */
static cgr_batch *host_batch(cgr_runtime *rt, const model *m,
                             const model_inputs *in, uint32_t live) {
  return model_begin_batch(rt, m, in, live, -1);
}

/* The same in CGR_REPLAY_PIPELINED, one long run: each step staged one
 * ahead (batches up to the largest bucket: the mode has no eager steps);
 * every 100th step checked when it launched, and at the end exactly one
 * graph launch per step. */
static void test_soak_pipelined_mode_random_batches(void **state) {
  (void)cgr_test_runtime(state);
  cgr_test_require_host();
  long steps = soak_steps();
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, BUCKETS, 1, &m);
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, CGR_REPLAY_PIPELINED));
  assert_cgr_ok(rt, cgr_counters_reset(rt));
  uint32_t random = 0x7F4A7C15u;
  model_inputs in[2];
  uint32_t live = 1 + next_random(&random) % LARGEST;
  model_make_inputs(&in[0], live, live, 0);
  assert_cgr_ok(rt, cgr_replay_stage(rt, host_batch(rt, &m, &in[0], live)));
  long checked = 0;
  for (long n = 0; n < steps; ++n) {
    const model_inputs *now = &in[n % 2];
    cgr_batch *next = NULL;
    if (n + 1 < steps) {
      live = 1 + next_random(&random) % LARGEST;
      model_make_inputs(&in[(n + 1) % 2], live, live, (unsigned)n + 1);
      next = host_batch(rt, &m, &in[(n + 1) % 2], live);
    }
    cgr_ticket ticket;
    assert_cgr_ok(rt, cgr_replay_ahead(rt, next, &ticket));
    if (n % CHECK_EVERY == 0 || n == steps - 1) {
      assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
      void *out = NULL, *out_pages = NULL;
      assert_cgr_ok(rt, cgr_output(rt, &ticket, m.out, &out));
      assert_cgr_ok(rt, cgr_output(rt, &ticket, m.out_pages, &out_pages));
      model_check_outputs(rt, out, out_pages, now, ticket.padded_batch,
                          now->rows, NULL);
      checked++;
    }
  }
  assert_cgr_ok(rt, cgr_synchronize(rt));
  cgr_counters c;
  assert_cgr_ok(rt, cgr_counters_get(rt, &c));
  assert_int_equal(c.graph_launches, steps);
  printf("soak (pipelined): %ld steps, %ld checked\n", steps, checked);
  cgr_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
    HOST_RUNTIME_TEST(test_soak_default_mode_random_batches),
    HOST_RUNTIME_TEST(test_soak_pipelined_mode_random_batches),
};

CGR_TEST_MAIN(tests)
