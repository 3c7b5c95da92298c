/* Groups (cgr_group.h) when something is wrong: bad configs, a rank whose
 * collectives differ, a rank that fails, misuse, destroy with steps in
 * flight. Nothing may hang: a collective that cannot meet its peers ends
 * after the group's timeout, and the group is then broken. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "group_fixture.h"

/* Fails unless the group's last error mentions `needle`. */
#define assert_group_error_contains(group, needle)                             \
  do {                                                                         \
    const char *group_message_ = cgr_group_last_error(group);                  \
    if (strstr(group_message_, (needle)) == NULL)                              \
      fail_msg("group error \"%s\" does not mention \"%s\"", group_message_,   \
               (needle));                                                      \
  } while (0)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every call but destroy refuses a broken group. */
static void assert_broken(cgr_group *group) {
  cgr_batch *batches[CGR_GROUP_MAX_RANKS];
  assert_int_equal(cgr_group_batch_begin(group, 1, batches),
                   CGR_E_INVALID_STATE);
  assert_group_error_contains(group, "broken");
  assert_int_equal(cgr_group_set_replay_mode(group, CGR_REPLAY_FUSED),
                   CGR_E_INVALID_STATE);
  cgr_ticket ticket = {0, 1, 1, 0};
  assert_int_equal(cgr_group_ticket_wait(group, &ticket), CGR_E_INVALID_STATE);
  assert_int_equal(cgr_group_capture(group, toy_step, NULL),
                   CGR_E_INVALID_STATE);
}

static void test_group_config_refuses_bad_ranks_and_timeouts(void **state) {
  (void)state;
  cgr_test_require_host();
  assert_int_equal(cgr_group_config_init(NULL), CGR_E_INVALID_ARGUMENT);
  cgr_config runtime;
  cgr_test_config(&runtime);
  cgr_group_config config;
  assert_int_equal(cgr_group_config_init(&config), CGR_OK);
  assert_int_equal(config.ranks, 2);
  assert_int_equal(config.timeout_ms, 30000);
  config.runtime = &runtime;
  cgr_group *group = (cgr_group *)&config;
  static const int bad_ranks[] = {0, -1, CGR_GROUP_MAX_RANKS + 1};
  for (size_t i = 0; i < 3; ++i) {
    config.ranks = bad_ranks[i];
    assert_int_equal(cgr_group_create(&config, &group), CGR_E_INVALID_ARGUMENT);
    assert_null(group);
    assert_group_error_contains(NULL, "config->ranks");
  }
  config.ranks = 2;
  config.timeout_ms = 0;
  assert_int_equal(cgr_group_create(&config, &group), CGR_E_INVALID_ARGUMENT);
  assert_group_error_contains(NULL, "timeout_ms");
  config.timeout_ms = 1000;
  static const int twice[] = {3, 3};
  config.devices = twice;
  assert_int_equal(cgr_group_create(&config, &group), CGR_E_INVALID_ARGUMENT);
  assert_group_error_contains(NULL, "twice");
  config.devices = NULL;
  config.version = CGR_GROUP_CONFIG_VERSION + 1;
  assert_int_equal(cgr_group_create(&config, &group), CGR_E_VERSION);
  config.version = CGR_GROUP_CONFIG_VERSION;
  assert_int_equal(cgr_group_create(NULL, &group), CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_group_create(&config, NULL), CGR_E_INVALID_ARGUMENT);
  /* A rank's runtime refused: named. */
  static const uint32_t unsorted[] = {4, 2};
  runtime.buckets = unsorted;
  runtime.bucket_count = 2;
  assert_int_equal(cgr_group_create(&config, &group), CGR_E_INVALID_ARGUMENT);
  assert_group_error_contains(NULL, "rank 0");
  assert_null(group);
}

static void test_group_refuses_null_and_misuse(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr_slot slot = 0;
  cgr_batch *batches[CGR_GROUP_MAX_RANKS];
  cgr_ticket ticket;
  assert_int_equal(cgr_group_slot_declare(NULL, NULL, &slot),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(slot, -1);
  assert_int_equal(cgr_group_capture(NULL, toy_step, NULL),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_group_batch_begin(NULL, 1, batches),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_group_replay(NULL, batches, &ticket),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_group_ticket_wait(NULL, &ticket),
                   CGR_E_INVALID_ARGUMENT);
  cgr_group_batch_discard(NULL, batches);

  toy_options options;
  toy_options_init(&options);
  toy_slots slots;
  cgr_group *group = toy_group(&options, &slots);
  /* Before the capture. */
  assert_int_equal(cgr_group_batch_begin(group, 1, batches),
                   CGR_E_INVALID_STATE);
  assert_group_error_contains(group, "rank 0");
  assert_int_equal(cgr_group_capture(group, NULL, NULL),
                   CGR_E_INVALID_ARGUMENT);
  /* A bad desc is refused by rank 0, and the group stays usable. */
  cgr_slot_desc desc;
  cgr_slot_desc_init(&desc, "tok", CGR_SLOT_ROWS, 4, 1);
  assert_int_equal(cgr_group_slot_declare(group, &desc, &slot),
                   CGR_E_INVALID_ARGUMENT);
  assert_group_error_contains(group, "rank 0");
  assert_int_equal(cgr_group_set_replay_mode(group, (cgr_replay_mode)99),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_group_capture(group, toy_step, NULL), CGR_OK);
  assert_int_equal(cgr_group_capture(group, toy_step, NULL),
                   CGR_E_INVALID_STATE);

  /* A slot not given on rank 1 is refused before any rank launches: the
   * group goes on. */
  toy_inputs in;
  uint64_t random = 3;
  toy_make_inputs(&in, 3, 0, &random);
  assert_int_equal(cgr_group_batch_begin(group, 3, batches), CGR_OK);
  toy_fill(cgr_group_runtime(group, 0), batches[0], &slots, &in);
  assert_int_equal(cgr_batch_input(batches[1], slots.x, CGR_SOURCE_HOST, in.x,
                                   3 * HIDDEN * 4),
                   CGR_OK);
  assert_int_equal(cgr_group_replay(group, batches, &ticket),
                   CGR_E_INVALID_ARGUMENT);
  assert_group_error_contains(group, "rank 1");
  assert_group_error_contains(group, "'tok'");
  /* A batch open twice, then discarded. */
  assert_int_equal(cgr_group_batch_begin(group, 2, batches), CGR_OK);
  cgr_batch *more[CGR_GROUP_MAX_RANKS];
  assert_int_equal(cgr_group_batch_begin(group, 2, more), CGR_E_INVALID_STATE);
  assert_null(more[0]);
  cgr_group_batch_discard(group, batches);
  assert_int_equal(cgr_group_batch_begin(group, 0, batches),
                   CGR_E_INVALID_ARGUMENT);
  cgr_runtime *single = toy_single(&options, &(toy_slots){0});
  toy_slots single_slots = {0, 1, 2, 3};
  /* Everything closed: the next steps run and are right. */
  for (uint32_t batch = 1; batch <= 8; ++batch) {
    toy_make_inputs(&in, batch, 0, &random);
    (void)toy_step_both(group, &slots, single, &single_slots, &in);
  }
  cgr_runtime_destroy(single);
  cgr_group_destroy(group);
}

/* Rank 1 leaves out its all-gather while capturing only: the warm-ups
 * meet, the graphs differ, and the capture is refused naming the rank,
 * the bucket and the set. */
static void
test_group_capture_refuses_a_rank_with_other_collectives(void **state) {
  (void)state;
  cgr_test_require_host();
  toy_options options;
  toy_options_init(&options);
  options.timeout_ms = 2000;
  toy_slots slots;
  cgr_group *group = toy_group(&options, &slots);
  toy_faults faults;
  toy_faults_init(&faults);
  faults.omit_rank = 1;
  faults.omit_only_capturing = 1;
  assert_int_equal(cgr_group_capture(group, toy_step, &faults), CGR_E_CAPTURE);
  assert_group_error_contains(group, "rank 1");
  assert_group_error_contains(group, "bucket 8");
  assert_group_error_contains(group, "set 0");
  assert_broken(group);
  cgr_group_destroy(group);
}

/* Rank 1 leaves out its all-gather in every run: a warm-up's collectives
 * cannot meet. Refused within the timeout, never a hang. */
static void test_group_capture_missing_collective_does_not_hang(void **state) {
  (void)state;
  cgr_test_require_host();
  toy_options options;
  toy_options_init(&options);
  options.timeout_ms = 200;
  toy_slots slots;
  cgr_group *group = toy_group(&options, &slots);
  toy_faults faults;
  toy_faults_init(&faults);
  faults.omit_rank = 1;
  double started = now_s();
  cgr_status status = cgr_group_capture(group, toy_step, &faults);
  double took = now_s() - started;
  if (status != CGR_E_CAPTURE && status != CGR_E_TIMEOUT)
    fail_msg("cgr_group_capture returned %s: %s", cgr_status_name(status),
             cgr_group_last_error(group));
  if (took > 10.0)
    fail_msg("the refusal took %.1f s with a 0.2 s timeout", took);
  assert_broken(group);
  cgr_group_destroy(group);
}

/* Rank 1's step fails at capture: the group's error names it. */
static void test_group_capture_names_the_failing_rank(void **state) {
  (void)state;
  cgr_test_require_host();
  toy_options options;
  toy_options_init(&options);
  options.ranks = 4;
  toy_slots slots;
  cgr_group *group = toy_group(&options, &slots);
  toy_faults faults;
  toy_faults_init(&faults);
  faults.fail_rank = 2;
  faults.fail_over = 0;
  double started = now_s();
  cgr_status status = cgr_group_capture(group, toy_step, &faults);
  assert_true(now_s() - started < 10.0); /* the 30 s timeout never ran */
  assert_int_equal(status, CGR_E_CAPTURE);
  assert_group_error_contains(group, "rank 2");
  assert_broken(group);
  cgr_group_destroy(group);
}

/* Rank 1's step fails mid-run, in an eager step (a batch over the
 * largest bucket) while rank 0's waits in a collective: the group's
 * replay fails naming rank 1, at once, and the group is broken. */
static void test_group_rank_failing_mid_step_breaks_the_group(void **state) {
  (void)state;
  cgr_test_require_host();
  toy_options options;
  toy_options_init(&options);
  toy_slots slots;
  cgr_group *group = toy_group(&options, &slots);
  toy_faults faults;
  toy_faults_init(&faults);
  faults.fail_rank = 1;
  faults.fail_over = 8;
  assert_int_equal(cgr_group_capture(group, toy_step, &faults), CGR_OK);
  uint64_t random = 5;
  toy_inputs in;
  cgr_batch *batches[CGR_GROUP_MAX_RANKS];
  cgr_ticket ticket;
  for (uint32_t batch = 1; batch <= 8; ++batch) {
    toy_make_inputs(&in, batch, 0, &random);
    assert_int_equal(cgr_group_batch_begin(group, batch, batches), CGR_OK);
    for (int r = 0; r < 2; ++r)
      toy_fill(cgr_group_runtime(group, r), batches[r], &slots, &in);
    assert_int_equal(cgr_group_replay(group, batches, &ticket), CGR_OK);
  }
  assert_int_equal(cgr_group_ticket_wait(group, &ticket), CGR_OK);
  toy_make_inputs(&in, 12, 0, &random);
  assert_int_equal(cgr_group_batch_begin(group, 12, batches), CGR_OK);
  for (int r = 0; r < 2; ++r)
    toy_fill(cgr_group_runtime(group, r), batches[r], &slots, &in);
  double started = now_s();
  cgr_status status = cgr_group_replay(group, batches, &ticket);
  assert_true(now_s() - started < 10.0);
  assert_int_not_equal(status, CGR_OK);
  assert_group_error_contains(group, "rank 1");
  assert_broken(group);
  cgr_group_destroy(group);
}

/* Destroy waits for the steps in flight and frees everything. */
static void test_group_destroy_with_steps_in_flight(void **state) {
  (void)state;
  cgr_test_require_host();
  for (int ranks = 2; ranks <= 4; ranks += 2) {
    toy_options options;
    toy_options_init(&options);
    options.ranks = ranks;
    toy_slots slots;
    cgr_group *group = toy_group(&options, &slots);
    assert_int_equal(cgr_group_capture(group, toy_step, NULL), CGR_OK);
    uint64_t random = 9;
    for (int n = 0; n < 20; ++n) {
      toy_inputs in;
      uint32_t batch = 1 + (uint32_t)test_random_below(&random, 8);
      toy_make_inputs(&in, batch, 0, &random);
      cgr_batch *batches[CGR_GROUP_MAX_RANKS];
      assert_int_equal(cgr_group_batch_begin(group, batch, batches), CGR_OK);
      for (int r = 0; r < ranks; ++r)
        toy_fill(cgr_group_runtime(group, r), batches[r], &slots, &in);
      cgr_ticket ticket;
      assert_int_equal(cgr_group_replay(group, batches, &ticket), CGR_OK);
    }
    /* An open batch, too. */
    cgr_batch *batches[CGR_GROUP_MAX_RANKS];
    assert_int_equal(cgr_group_batch_begin(group, 3, batches), CGR_OK);
    cgr_group_destroy(group);
  }
}

static const struct CMUnitTest tests[] = {
    HOST_TEST(test_group_config_refuses_bad_ranks_and_timeouts),
    HOST_TEST(test_group_refuses_null_and_misuse),
    HOST_TEST(test_group_capture_refuses_a_rank_with_other_collectives),
    HOST_TEST(test_group_capture_missing_collective_does_not_hang),
    HOST_TEST(test_group_capture_names_the_failing_rank),
    HOST_TEST(test_group_rank_failing_mid_step_breaks_the_group),
    HOST_TEST(test_group_destroy_with_steps_in_flight),
};

CGR_TEST_MAIN(tests)
