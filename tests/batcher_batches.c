/* How the batcher forms batches: keys never mixed in a batch; the wait
 * window (a lone request waits it out; a full batch, a second request or
 * a stop closes it early); batches over the largest bucket run eagerly; a
 * lazily captured runtime, whose buckets are captured by the engine's
 * replays while the step before is unfinished. */
#include <stdatomic.h>
#include <stdint.h>

#include "batcher_fixture.h"

/* ---- keys ---------------------------------------------------------------- */

static void test_batcher_never_mixes_keys_in_a_batch(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 301 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  fx.check_keys = 1;
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.key = key_of;
  config.max_batch = 32;
  fixture_start(&fx, &config);

  request requests[N];
  cgr_handle *handles[N];
  request_init(&requests[0], 0, 0);
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  /* Keys 1, 2, 0, 1, 2, ... queued together. */
  for (uint32_t i = 1; i < N; ++i) {
    request_init(&requests[i], i, (int32_t)i);
    handles[i] = submit_ok(&fx, &requests[i], 0);
  }
  test_gate_open(&gate);
  for (uint32_t i = 0; i < N; ++i) {
    expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  assert_int_equal(atomic_load(&fx.key_mixes), 0);
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.completed, N);
  /* The 300 queued ones went in full batches of one key each, not one by
   * one. */
  if (s.batches > 1 + 3 * ((N - 1) / 3 / 32 + 1))
    fail_msg("%llu batches for 300 queued requests of 3 keys",
             (unsigned long long)s.batches);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* ---- the wait window ----------------------------------------------------- */

static void test_batcher_lone_request_waits_the_window(void **state) {
  (void)cgr_test_runtime(state);
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, 1);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.max_wait_us = 100000;
  fixture_start(&fx, &config);
  request r;
  request_init(&r, 0, 42);
  uint64_t t0 = cgr_clock_us();
  cgr_handle *h = submit_ok(&fx, &r, 0);
  expect_answered(&fx, &r, h);
  uint64_t took_us = cgr_clock_us() - t0;
  if (took_us < 90000)
    fail_msg("a lone request ended after %llu us, inside the 100 ms window",
             (unsigned long long)took_us);
  /* Its wait, submit to batch start, is the window. */
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  if (s.wait_us_p50 < 90000 || s.wait_us_p99 < 90000)
    fail_msg("wait_us_p50 %.0f, p99 %.0f for a request that waited 100 ms",
             s.wait_us_p50, s.wait_us_p99);
  cgr_handle_release(h);
  expect_no_problems(&fx);
  fixture_close(&fx);
}

/* Windows of 60 s that must close early: a request that ends at all
 * within END_WAIT_US (30 s) shows that its window closed (no tight
 * timing). */
static void
test_batcher_full_batch_second_request_or_stop_closes_window(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 7 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  request requests[N];
  cgr_handle *handles[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)i);

  /* min_wait_us = max_wait_us: only a full batch of 4 closes at once. */
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.max_wait_us = 60000000;
  config.min_wait_us = 60000000;
  config.max_batch = 4;
  fixture_start(&fx, &config);
  for (uint32_t i = 0; i < 4; ++i)
    handles[i] = submit_ok(&fx, &requests[i], 0);
  for (uint32_t i = 0; i < 4; ++i)
    expect_answered(&fx, &requests[i], handles[i]);
  /* A lone request, then a drain: its window closes at once. */
  handles[4] = submit_ok(&fx, &requests[4], 0);
  sleep_ms(5);
  assert_cgr_ok(fx.rt, cgr_batcher_stop(fx.batcher, CGR_BATCHER_DRAIN));
  assert_int_equal(cgr_handle_poll(handles[4]), CGR_OK);
  expect_answered(&fx, &requests[4], handles[4]);
  cgr_batcher_destroy(fx.batcher);
  fx.batcher = NULL;

  /* A second request shortens the window to min_wait_us. */
  fixture_config(&fx, &config);
  config.max_wait_us = 60000000;
  config.min_wait_us = 1000;
  fixture_start(&fx, &config);
  for (uint32_t i = 5; i < 7; ++i)
    handles[i] = submit_ok(&fx, &requests[i], 0);
  for (uint32_t i = 5; i < 7; ++i)
    expect_answered(&fx, &requests[i], handles[i]);
  for (uint32_t i = 0; i < N; ++i)
    cgr_handle_release(handles[i]);
  expect_no_problems(&fx);
  fixture_close(&fx);
}

/* ---- eager and lazy ------------------------------------------------------ */

static void
test_batcher_runs_batches_over_the_largest_bucket_eagerly(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 17 };
  static const uint32_t small[] = {1, 2, 4};
  fixture fx;
  fixture_open(&fx, small, 3, 1, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.max_batch = 8;
  fixture_start(&fx, &config);
  request requests[N];
  cgr_handle *handles[N];
  request_init(&requests[0], 0, 0);
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  for (uint32_t i = 1; i < N; ++i) {
    request_init(&requests[i], i, (int32_t)(7 * i));
    handles[i] = submit_ok(&fx, &requests[i], 0);
  }
  test_gate_open(&gate);
  for (uint32_t i = 0; i < N; ++i) {
    expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  assert_true(atomic_load(&fx.eager_steps) >= 1);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

static void test_batcher_runs_on_a_lazily_captured_runtime(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 5 };
  fixture fx;
  fixture_open_lazy(&fx, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  request requests[N];
  cgr_handle *handles[N];
  for (uint32_t i = 0; i < N; ++i) {
    request_init(&requests[i], i, (int32_t)(100 + i));
    handles[i] = submit_ok(&fx, &requests[i], 0);
  }
  for (uint32_t i = 0; i < N; ++i) {
    expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  expect_no_problems(&fx);
  fixture_close(&fx);
}

/* A lazily captured runtime whose buckets are captured on the engine
 * thread while the step before is still unfinished: a bucket's capture
 * (its warm-up runs) must leave that step's outputs alone. */
static void test_batcher_lazy_capture_keeps_the_unfinished_step(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 6 };
  fixture fx;
  fixture_open_lazy(&fx, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  request requests[N];
  cgr_handle *handles[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)(300 + i));
  /* The plug runs alone (bucket 1); the five queued behind it need bucket
   * 8, captured by their replay before the plug's step is finished. */
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  for (uint32_t i = 1; i < N; ++i)
    handles[i] = submit_ok(&fx, &requests[i], 0);
  test_gate_open(&gate);
  for (uint32_t i = 0; i < N; ++i) {
    expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_batcher_never_mixes_keys_in_a_batch),
    RUNTIME_TEST(test_batcher_lone_request_waits_the_window),
    RUNTIME_TEST(test_batcher_full_batch_second_request_or_stop_closes_window),
    RUNTIME_TEST(test_batcher_runs_batches_over_the_largest_bucket_eagerly),
    RUNTIME_TEST(test_batcher_runs_on_a_lazily_captured_runtime),
    RUNTIME_TEST(test_batcher_lazy_capture_keeps_the_unfinished_step),
};

CGR_TEST_MAIN(tests)
