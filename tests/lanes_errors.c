/* Lanes that fail and lanes' resources: a failed lane is named and every
 * batch is consumed; swapped batches are refused and consumed; create
 * rejects bad configs, and a failed setup or capture names the lane and
 * leaks nothing; memory is reported per lane, with no writable memory
 * shared; lane priorities are accepted. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lanes_fixture.h"

/* After a failed cgr_lanes_replay every batch was consumed: each lane
 * opens a new one. */
static void expect_batches_consumed(cgr_lanes *lanes) {
  for (uint32_t lane = 0; lane < cgr_lanes_count(lanes); ++lane) {
    cgr_runtime *rt = cgr_lanes_runtime(lanes, lane);
    cgr_batch *batch = NULL;
    cgr_status status = cgr_batch_begin(rt, 1, &batch);
    if (status != CGR_OK)
      fail_msg("lane %u: cgr_batch_begin after the failed replay: %s (%s)",
               lane, cgr_status_name(status), cgr_last_error(rt));
    cgr_batch_discard(batch);
  }
}

static void test_failed_lane_is_named_and_every_batch_consumed(void **state) {
  (void)cgr_test_runtime(state);
  lanes_fixture f;
  fixture_init(&f, NULL);
  cgr_lanes *lanes = lanes_open(&f, 3);
  request requests[9];
  uint64_t seed = 23;
  static lane_rows rows[3];
  cgr_batch *batches[3];
  cgr_ticket tickets[3];

  /* Lane 0's batch lacks cu_seqlens_k: nothing launches, all consumed. */
  make_requests(requests, 9, &seed);
  fill_round_robin(lanes, requests, 9, rows, batches);
  cgr_batch_discard(batches[0]);
  batches[0] =
      lane_batch(cgr_lanes_runtime(lanes, 0), &lane_state_of(lanes, 0)->m,
                 &rows[0], lane_state_of(lanes, 0)->m.cu_k);
  assert_cgr_status(NULL, cgr_lanes_replay(lanes, batches, tickets, 1),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "lane 0");
  assert_last_error_contains(NULL, "cu_seqlens_k");
  assert_last_error_contains(cgr_lanes_runtime(lanes, 0), "cu_seqlens_k");
  for (uint32_t lane = 0; lane < 3; ++lane)
    assert_int_equal(tickets[lane].batch_size, 0);
  expect_batches_consumed(lanes);

  /* Lane 1 fails: lane 0 was launched and runs to the end, lane 2 is
   * discarded. */
  fill_round_robin(lanes, requests, 9, rows, batches);
  cgr_batch_discard(batches[1]);
  batches[1] =
      lane_batch(cgr_lanes_runtime(lanes, 1), &lane_state_of(lanes, 1)->m,
                 &rows[1], lane_state_of(lanes, 1)->m.pages);
  assert_cgr_status(NULL, cgr_lanes_replay(lanes, batches, tickets, 1),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "lane 1");
  assert_last_error_contains(NULL, "page_table");
  assert_int_equal(tickets[0].batch_size, 3);
  assert_int_equal(tickets[1].batch_size, 0);
  assert_int_equal(tickets[2].batch_size, 0);
  assert_cgr_ok(NULL, cgr_lanes_wait(lanes, tickets));
  answer answers[9];
  memset(answers, 0, sizeof answers);
  collect_answers(cgr_lanes_runtime(lanes, 0), &lane_state_of(lanes, 0)->m,
                  &tickets[0], &rows[0], answers);
  expect_batches_consumed(lanes);

  /* Missing arguments: batches given are consumed too. */
  fill_round_robin(lanes, requests, 9, rows, batches);
  assert_cgr_status(NULL, cgr_lanes_replay(lanes, batches, NULL, 1),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "tickets");
  expect_batches_consumed(lanes);
  assert_cgr_status(NULL, cgr_lanes_replay(NULL, batches, tickets, 1),
                    CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(NULL, cgr_lanes_replay(lanes, NULL, tickets, 1),
                    CGR_E_INVALID_ARGUMENT);

  /* The lanes work on: a full step after the failures. */
  fill_round_robin(lanes, requests, 9, rows, batches);
  assert_cgr_ok(NULL, cgr_lanes_replay(lanes, batches, tickets, 1));
  check_lanes(lanes, rows, batches, tickets, 9);
  lanes_close(lanes, &f);
}

/* Batches handed to the wrong lanes: cgr_replay refuses a batch that is
 * not its runtime's without consuming it, and the contract still says
 * every batch is consumed. */
static void test_swapped_batches_are_refused_and_consumed(void **state) {
  (void)cgr_test_runtime(state);
  lanes_fixture f;
  fixture_init(&f, NULL);
  cgr_lanes *lanes = lanes_open(&f, 2);
  request requests[4];
  uint64_t seed = 29;
  make_requests(requests, 4, &seed);
  static lane_rows rows[2];
  cgr_batch *batches[2], *swapped[2];
  cgr_ticket tickets[2];
  fill_round_robin(lanes, requests, 4, rows, batches);
  swapped[0] = batches[1];
  swapped[1] = batches[0];
  assert_cgr_status(NULL, cgr_lanes_replay(lanes, swapped, tickets, 1),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "lane 0");
  expect_batches_consumed(lanes);
  lanes_close(lanes, &f);
}

static void test_create_rejects_bad_configs(void **state) {
  (void)cgr_test_runtime(state);
  lanes_fixture f;
  fixture_init(&f, NULL);
  cgr_config runtime;
  cgr_lanes_config config;
  lanes_config(&config, &runtime, &f, 2);
  cgr_lanes *lanes = (cgr_lanes *)&f; /* must come back NULL */

  assert_cgr_status(NULL, cgr_lanes_create(NULL, &lanes),
                    CGR_E_INVALID_ARGUMENT);
  assert_null(lanes);
  assert_last_error_contains(NULL, "config");
  assert_cgr_status(NULL, cgr_lanes_create(&config, NULL),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "out");

  cgr_lanes_config bad = config;
  bad.setup = NULL;
  assert_cgr_status(NULL, cgr_lanes_create(&bad, &lanes),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "config->setup");
  bad = config;
  bad.step = NULL;
  assert_cgr_status(NULL, cgr_lanes_create(&bad, &lanes),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "config->step");
  bad = config;
  bad.lanes = 0;
  assert_cgr_status(NULL, cgr_lanes_create(&bad, &lanes),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "config->lanes");
  bad.lanes = CGR_MAX_LANES + 1;
  assert_cgr_status(NULL, cgr_lanes_create(&bad, &lanes),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "config->lanes");
  bad = config;
  bad.size = 0;
  assert_cgr_status(NULL, cgr_lanes_create(&bad, &lanes), CGR_E_VERSION);
  bad = config;
  bad.version = 99;
  assert_cgr_status(NULL, cgr_lanes_create(&bad, &lanes), CGR_E_VERSION);

  /* A size short of its version's fields, or past the struct this library
   * knows, is refused (the rule of every versioned struct: tests/config.c
   * tests it for each). */
  bad = config;
  bad.size = offsetof(cgr_lanes_config, setup);
  assert_cgr_status(NULL, cgr_lanes_create(&bad, &lanes), CGR_E_VERSION);
  assert_last_error_contains(NULL, "cgr_lanes_config");
  bad.size = sizeof bad + 8;
  assert_cgr_status(NULL, cgr_lanes_create(&bad, &lanes), CGR_E_VERSION);
  assert_null(lanes);
  /* None of those reached a setup. */
  assert_int_equal(f.setups[0], 0);
  assert_cgr_status(NULL, cgr_lanes_config_init(NULL), CGR_E_INVALID_ARGUMENT);
  cgr_lanes_destroy(NULL);
  assert_int_equal(cgr_lanes_count(NULL), 0);
  assert_null(cgr_lanes_runtime(NULL, 0));
  assert_null(cgr_lanes_user(NULL, 0));
}

static void test_failed_setup_names_the_lane_and_leaks_nothing(void **state) {
  (void)cgr_test_runtime(state);
  lanes_fixture f;
  fixture_init(&f, NULL);
  f.fail_setup_lane = 1;
  cgr_config runtime;
  cgr_lanes_config config;
  lanes_config(&config, &runtime, &f, 3);
  cgr_lanes *lanes = NULL;
  assert_cgr_status(NULL, cgr_lanes_create(&config, &lanes),
                    CGR_E_DEVICE_OUT_OF_MEMORY);
  assert_null(lanes);
  assert_last_error_contains(NULL, "lane 1");
  assert_last_error_contains(NULL, "setup");
  assert_int_equal(f.setups[0], 1);
  assert_int_equal(f.setups[1], 1);
  assert_int_equal(f.setups[2], 0);
  assert_int_equal(f.teardowns[0], 1); /* what lane 0's setup made */
  assert_int_equal(f.teardowns[1], 0); /* setup failed: nothing made */
  assert_int_equal(f.wrong_user, 0);

  /* A capture that fails on lane 1: both setups are torn down. */
  fixture_init(&f, NULL);
  f.fail_capture_lane = 1;
  assert_cgr_status(NULL, cgr_lanes_create(&config, &lanes), CGR_E_CAPTURE);
  assert_null(lanes);
  assert_last_error_contains(NULL, "lane 1");
  assert_last_error_contains(NULL, "cgr_capture");
  assert_int_equal(f.teardowns[0], 1);
  assert_int_equal(f.teardowns[1], 1);
  assert_int_equal(f.setups[2], 0);

  /* The first lane's capture fails: its setup is torn down, no other
   * lane was started. */
  fixture_init(&f, NULL);
  f.fail_capture_lane = 0;
  assert_cgr_status(NULL, cgr_lanes_create(&config, &lanes), CGR_E_CAPTURE);
  assert_null(lanes);
  assert_last_error_contains(NULL, "lane 0");
  assert_int_equal(f.teardowns[0], 1);
  assert_int_equal(f.setups[1], 0);
}

static void test_memory_is_reported_per_lane(void **state) {
  (void)cgr_test_runtime(state);
  lanes_fixture f;
  fixture_init(&f, NULL);
  cgr_lanes *lanes = lanes_open(&f, 2);
  uint64_t bytes[2] = {0, 0};
  for (uint32_t lane = 0; lane < 2; ++lane) {
    assert_cgr_ok(NULL, cgr_lanes_memory(lanes, lane, &bytes[lane]));
    cgr_capture_stats stats;
    cgr_runtime *rt = cgr_lanes_runtime(lanes, lane);
    assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
    assert_true(bytes[lane] == stats.slot_bytes + stats.arena_bytes);
  }
  assert_true(bytes[0] > 0);
  assert_true(bytes[0] == bytes[1]);
  uint64_t out_of_range = 123;
  assert_cgr_status(NULL, cgr_lanes_memory(lanes, 2, &out_of_range),
                    CGR_E_INVALID_ARGUMENT);
  assert_true(out_of_range == 0);
  assert_cgr_status(NULL, cgr_lanes_memory(lanes, 0, NULL),
                    CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(NULL, cgr_lanes_memory(NULL, 0, &out_of_range),
                    CGR_E_INVALID_ARGUMENT);
  assert_null(cgr_lanes_runtime(lanes, 2));
  assert_null(cgr_lanes_user(lanes, 2));

  /* No writable memory shared: every buffer of every slot differs. */
  cgr_runtime *rt0 = cgr_lanes_runtime(lanes, 0);
  cgr_runtime *rt1 = cgr_lanes_runtime(lanes, 1);
  assert_true(rt0 != rt1);
  const model *m0 = &lane_state_of(lanes, 0)->m;
  const model *m1 = &lane_state_of(lanes, 1)->m;
  const cgr_slot slots[MODEL_SLOTS] = {m0->ids,  m0->pos,      m0->pages,
                                       m0->cu_k, m0->cu_q,     m0->bias,
                                       m0->out,  m0->out_pages};
  const cgr_slot other[MODEL_SLOTS] = {m1->ids,  m1->pos,      m1->pages,
                                       m1->cu_k, m1->cu_q,     m1->bias,
                                       m1->out,  m1->out_pages};
  for (int i = 0; i < MODEL_SLOTS; ++i)
    for (int set = 0; set < 2; ++set)
      for (int j = 0; j < MODEL_SLOTS; ++j)
        for (int other_set = 0; other_set < 2; ++other_set) {
          void *a = NULL, *b = NULL;
          assert_cgr_ok(rt0, cgr_slot_address(rt0, slots[i], set, 8, &a));
          assert_cgr_ok(rt1, cgr_slot_address(rt1, other[j], other_set, 8, &b));
          assert_true(a != b);
        }
  lanes_close(lanes, &f);
}

static void test_lane_priorities_are_accepted(void **state) {
  (void)cgr_test_runtime(state);
  lanes_fixture f;
  fixture_init(&f, NULL);
  cgr_config runtime;
  cgr_lanes_config config;
  lanes_config(&config, &runtime, &f, 2);
  config.lane_priority_set = 1;
  config.lane_priority[0] = CGR_PRIORITY_HIGH;
  config.lane_priority[1] = CGR_PRIORITY_NORMAL;
  cgr_lanes *lanes = NULL;
  assert_cgr_ok(NULL, cgr_lanes_create(&config, &lanes));
  assert_int_equal(cgr_lanes_count(lanes), 2);
  request requests[6];
  uint64_t seed = 8;
  make_requests(requests, 6, &seed);
  static lane_rows rows[2];
  cgr_batch *batches[2];
  cgr_ticket tickets[2];
  fill_round_robin(lanes, requests, 6, rows, batches);
  assert_cgr_ok(NULL, cgr_lanes_replay(lanes, batches, tickets, 1));
  check_lanes(lanes, rows, batches, tickets, 6);
  lanes_close(lanes, &f);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_failed_lane_is_named_and_every_batch_consumed),
    RUNTIME_TEST(test_swapped_batches_are_refused_and_consumed),
    RUNTIME_TEST(test_create_rejects_bad_configs),
    RUNTIME_TEST(test_failed_setup_names_the_lane_and_leaks_nothing),
    RUNTIME_TEST(test_memory_is_reported_per_lane),
    RUNTIME_TEST(test_lane_priorities_are_accepted),
};

CGR_TEST_MAIN(tests)
