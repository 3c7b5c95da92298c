/* Groups (cgr_group.h) on the host backend: a tensor-parallel toy step on
 * 2 and 4 ranks equals one runtime's, in every replay mode, with
 * feedback, lazy capture and eager batches over the largest bucket. */
#include <errno.h>
#include <stdlib.h>

#include <string.h>

#include "group_fixture.h"

static void run_modes(int ranks, int feedback, int lazy, uint32_t max_batch) {
  cgr_test_require_host();
  static const cgr_replay_mode modes[] = {CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED,
                                          CGR_REPLAY_DOUBLE_BUFFERED,
                                          CGR_REPLAY_IN_GRAPH,
                                          CGR_REPLAY_EAGER};
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; ++m) {
    toy_options options;
    toy_options_init(&options);
    options.ranks = ranks;
    options.mode = modes[m];
    options.feedback = feedback;
    options.lazy = lazy;
    toy_equivalence(&options, 60, max_batch, 0x1234u + m);
  }
}

static void test_group_two_ranks_equal_one_runtime_in_every_mode(void **state) {
  (void)state;
  run_modes(2, 0, 0, 8);
}

static void
test_group_four_ranks_equal_one_runtime_in_every_mode(void **state) {
  (void)state;
  run_modes(4, 0, 0, 8);
}

static void test_group_feedback_equals_one_runtime(void **state) {
  (void)state;
  run_modes(2, 1, 0, 8);
  run_modes(4, 1, 0, 8);
}

static void test_group_lazy_capture_equals_one_runtime(void **state) {
  (void)state;
  run_modes(2, 0, 1, 8);
  run_modes(4, 1, 1, 8);
}

/* Batches over the largest bucket (8) run eagerly, on a thread per rank. */
static void test_group_eager_fallback_equals_one_runtime(void **state) {
  (void)state;
  run_modes(2, 1, 0, 14);
  run_modes(4, 0, 1, 14);
}

static void test_group_one_rank_is_a_runtime(void **state) {
  (void)state;
  cgr_test_require_host();
  toy_options options;
  toy_options_init(&options);
  options.ranks = 1;
  toy_equivalence(&options, 50, 10, 7);
}

/* CGR_GROUP_STEPS (default 10,000) steps of random batch sizes, eager ones
 * included, on 2 ranks in the default mode with feedback. */
static long group_steps(long fallback) {
  const char *value = getenv("CGR_GROUP_STEPS");
  if (value == NULL || *value == '\0')
    return fallback;
  char *end = NULL;
  errno = 0;
  long steps = strtol(value, &end, 10);
  if (errno != 0 || *end != '\0' || steps < 1)
    fail_msg("CGR_GROUP_STEPS='%s' is not a positive whole number", value);
  return steps;
}

static void test_group_random_steps_equal_one_runtime(void **state) {
  (void)state;
  cgr_test_require_host();
  toy_options options;
  toy_options_init(&options);
  options.feedback = 1;
  toy_equivalence(&options, group_steps(10000), 10, 0xC0FFEEu);
}

/* A group with keys: every key of every rank captured and its collectives
 * compared; a step of any key equals one runtime's (the toy ignores the
 * key); ranks with different keys are refused before any launch. */
static void test_group_keys_equal_one_runtime(void **state) {
  (void)state;
  cgr_test_require_host();
  static const uint32_t tokens[] = {1, 2};
  static const char *const variants[] = {"greedy", "sampled"};
  toy_options options;
  toy_options_init(&options);
  options.tokens = tokens;
  options.token_count = 2;
  options.variants = variants;
  options.variant_count = 2;
  toy_slots gs, ss;
  cgr_group *group = toy_group(&options, &gs);
  if (cgr_group_capture(group, toy_step, NULL) != CGR_OK)
    fail_msg("cgr_group_capture: %s", cgr_group_last_error(group));
  cgr_runtime *single = toy_single(&options, &ss);
  cgr_capture_stats stats;
  assert_cgr_ok(cgr_group_runtime(group, 1),
                cgr_capture_stats_get(cgr_group_runtime(group, 1), &stats));
  assert_int_equal(stats.keys_captured, 4 * 2 * 2);
  uint64_t random = 99;
  for (int n = 0; n < 60; ++n) {
    toy_inputs in;
    toy_make_inputs(&in, 1 + (uint32_t)test_random_below(&random, 10), 0,
                    &random);
    in.tokens = tokens[test_random_below(&random, 2)];
    in.variant = (uint32_t)test_random_below(&random, 2);
    toy_step_both(group, &gs, single, &ss, &in);
  }
  cgr_batch *batches[CGR_GROUP_MAX_RANKS] = {NULL};
  toy_inputs in;
  toy_make_inputs(&in, 3, 0, &random);
  for (int r = 0; r < 2; ++r) {
    cgr_runtime *rt = cgr_group_runtime(group, r);
    assert_cgr_ok(rt, cgr_batch_begin_key(rt, 3, 1, (uint32_t)r, &batches[r]));
    toy_fill(rt, batches[r], &gs, &in);
  }
  cgr_ticket ticket;
  assert_int_equal(cgr_group_replay(group, batches, &ticket),
                   CGR_E_INVALID_ARGUMENT);
  if (strstr(cgr_group_last_error(group), "one key on every rank") == NULL)
    fail_msg("\"%s\" does not say the keys differ",
             cgr_group_last_error(group));
  assert_int_equal(cgr_group_batch_begin_key(group, 3, 3, 0, batches),
                   CGR_E_INVALID_ARGUMENT);
  assert_null(batches[0]);
  cgr_group_destroy(group);
  cgr_runtime_destroy(single);
}

static void test_group_ranks_and_runtimes(void **state) {
  (void)state;
  cgr_test_require_host();
  toy_options options;
  toy_options_init(&options);
  options.ranks = 4;
  toy_slots slots;
  cgr_group *group = toy_group(&options, &slots);
  assert_int_equal(cgr_group_ranks(group), 4);
  assert_int_equal(cgr_group_ranks(NULL), 0);
  for (int r = 0; r < 4; ++r) {
    cgr_runtime *rt = cgr_group_runtime(group, r);
    assert_non_null(rt);
    for (int q = 0; q < r; ++q)
      assert_ptr_not_equal(rt, cgr_group_runtime(group, q));
  }
  assert_null(cgr_group_runtime(group, 4));
  assert_null(cgr_group_runtime(group, -1));
  assert_null(cgr_group_runtime(NULL, 0));
  assert_string_equal(cgr_group_last_error(group), "");
  cgr_group_destroy(group);
  cgr_group_destroy(NULL);
}

static const struct CMUnitTest tests[] = {
    HOST_TEST(test_group_two_ranks_equal_one_runtime_in_every_mode),
    HOST_TEST(test_group_four_ranks_equal_one_runtime_in_every_mode),
    HOST_TEST(test_group_feedback_equals_one_runtime),
    HOST_TEST(test_group_lazy_capture_equals_one_runtime),
    HOST_TEST(test_group_eager_fallback_equals_one_runtime),
    HOST_TEST(test_group_one_rank_is_a_runtime),
    HOST_TEST(test_group_random_steps_equal_one_runtime),
    HOST_TEST(test_group_keys_equal_one_runtime),
    HOST_TEST(test_group_ranks_and_runtimes),
};

CGR_TEST_MAIN(tests)
