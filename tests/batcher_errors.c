/* The batcher's argument and state errors (bad configs and arguments, a
 * runtime not captured, a second batcher on one runtime) and injected
 * faults on the host backend: create fails cleanly at every one, a submit
 * out of memory and a failed replay leave the batcher working. */
#include <string.h>

#include "batcher_fixture.h"
#include "runtime/fault.h"

/* ---- argument and state errors ------------------------------------------- */

static void expect_create_fails(fixture *fx, const cgr_batcher_config *config,
                                cgr_status want, const char *needle) {
  cgr_batcher *b = (cgr_batcher *)fx;
  assert_cgr_status(fx->rt, cgr_batcher_create(fx->rt, config, &b), want);
  assert_null(b);
  if (needle != NULL)
    assert_last_error_contains(fx->rt, needle);
}

static void test_batcher_rejects_bad_arguments(void **state) {
  (void)cgr_test_runtime(state);
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, 1);
  cgr_batcher_config good, config;
  fixture_config(&fx, &good);
  cgr_batcher *b = (cgr_batcher *)&fx;

  assert_int_equal(cgr_batcher_config_init(NULL), CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_batcher_create(NULL, &good, &b), CGR_E_INVALID_ARGUMENT);
  assert_null(b);
  assert_true(strlen(cgr_last_error(NULL)) > 0);
  expect_create_fails(&fx, NULL, CGR_E_INVALID_ARGUMENT, "config");
  assert_int_equal(cgr_batcher_create(fx.rt, &good, NULL),
                   CGR_E_INVALID_ARGUMENT);
  config = good;
  config.build = NULL;
  expect_create_fails(&fx, &config, CGR_E_INVALID_ARGUMENT, "build");
  config = good;
  config.finish = NULL;
  expect_create_fails(&fx, &config, CGR_E_INVALID_ARGUMENT, "finish");
  config = good;
  config.min_wait_us = config.max_wait_us + 1;
  expect_create_fails(&fx, &config, CGR_E_INVALID_ARGUMENT, "min_wait_us");
  config = good;
  config.queue_capacity = 0;
  expect_create_fails(&fx, &config, CGR_E_INVALID_ARGUMENT, "queue_capacity");
  config = good;
  config.max_batch = LARGEST + 1; /* the runtime allows no eager step */
  expect_create_fails(&fx, &config, CGR_E_INVALID_ARGUMENT, "max_batch");
  config = good;
  config.size = 0;
  expect_create_fails(&fx, &config, CGR_E_VERSION, NULL);
  config = good;
  config.version = 99;
  expect_create_fails(&fx, &config, CGR_E_VERSION, NULL);
  /* Nothing failed for good: the runtime still takes a batcher. */
  fixture_start(&fx, &good);

  request r;
  request_init(&r, 0, 1);
  cgr_handle *h = (cgr_handle *)&h;
  assert_int_equal(cgr_batcher_submit(fx.batcher, &r, 0, NULL),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_batcher_submit(NULL, &r, 0, &h), CGR_E_INVALID_ARGUMENT);
  assert_null(h);
  void *result = &result;
  assert_int_equal(cgr_handle_wait(NULL, 0), CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_handle_poll(NULL), CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_handle_result(NULL, &result), CGR_E_INVALID_ARGUMENT);
  assert_null(result);
  cgr_handle_release(NULL);
  cgr_batcher_stats s;
  assert_int_equal(cgr_batcher_stats_get(NULL, &s), CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_batcher_stats_get(fx.batcher, NULL),
                   CGR_E_INVALID_ARGUMENT);
  char message[16];
  assert_int_equal(cgr_batcher_last_failure(NULL, message, sizeof message),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_batcher_last_failure(fx.batcher, NULL, 16),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_batcher_stop(NULL, CGR_BATCHER_DRAIN),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_batcher_stop(fx.batcher, (cgr_batcher_stop_mode)7),
                   CGR_E_INVALID_ARGUMENT);
  cgr_batcher_destroy(NULL);

  /* Still running after all that. */
  h = submit_ok(&fx, &r, 0);
  expect_answered(&fx, &r, h);
  cgr_handle_release(h);
  expect_no_problems(&fx);
  fixture_close(&fx);
}

static void test_batcher_needs_a_captured_runtime(void **state) {
  (void)cgr_test_runtime(state);
  fixture fx;
  fixture_init(&fx, 1);
  fx.rt = model_runtime(buckets, BUCKETS, 0, &fx.m);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  expect_create_fails(&fx, &config, CGR_E_INVALID_STATE, NULL);
  fixture_close(&fx);
}

/* One engine thread per runtime: a second batcher is refused while the
 * first lives, and allowed once it is destroyed. */
static void test_batcher_one_runtime_has_one_batcher(void **state) {
  (void)cgr_test_runtime(state);
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, 1);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  cgr_batcher *second = NULL;
  assert_cgr_status(fx.rt, cgr_batcher_create(fx.rt, &config, &second),
                    CGR_E_INVALID_STATE);
  assert_null(second);
  assert_non_null(strstr(cgr_last_error(fx.rt), "another batcher"));
  cgr_batcher_destroy(fx.batcher);
  fx.batcher = NULL;
  fixture_start(&fx, &config);
  fixture_close(&fx);
}

static void
test_batcher_allows_max_batch_over_buckets_with_eager(void **state) {
  (void)cgr_test_runtime(state);
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 1, 1);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.max_batch = LARGEST + 1;
  fixture_start(&fx, &config);
  fixture_close(&fx);
}

/* ---- injected faults (host backend) -------------------------------------- */

static void
test_batcher_create_fails_cleanly_at_every_injected_fault(void **state) {
  (void)cgr_test_runtime(state);
  cgr_test_require_host();
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, 1);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  int sites = 0, thread_site = 0;
  for (int call = 0; call < CGR__CALL_COUNT; ++call) {
    for (uint64_t nth = 1;; ++nth) {
      cgr_batcher *b = (cgr_batcher *)&fx;
      cgr__fault_arm((cgr__call)call, nth);
      cgr_status status = cgr_batcher_create(fx.rt, &config, &b);
      int fired = cgr__fault_fired();
      cgr__fault_disarm();
      if (!fired) {
        assert_cgr_ok(fx.rt, status);
        cgr_batcher_destroy(b);
        break;
      }
      sites++;
      thread_site |= call == CGR__CALL_THREAD_CREATE;
      if (status == CGR_OK)
        fail_msg("create succeeded although %s call #%llu failed",
                 cgr__call_name((cgr__call)call), (unsigned long long)nth);
      assert_null(b);
      assert_int_equal(status, cgr__fault_status((cgr__call)call));
      assert_true(strlen(cgr_last_error(fx.rt)) > 0);
      assert_true(nth < 100);
    }
  }
  /* The batcher's memory and its engine thread at least. */
  assert_true(sites >= 2);
  assert_true(thread_site);
  /* And after all that, a batcher that works. */
  fixture_start(&fx, &config);
  request r;
  request_init(&r, 0, 3);
  cgr_handle *h = submit_ok(&fx, &r, 0);
  expect_answered(&fx, &r, h);
  cgr_handle_release(h);
  fixture_close(&fx);
}

static void test_batcher_submit_out_of_memory_leaves_it_working(void **state) {
  (void)cgr_test_runtime(state);
  cgr_test_require_host();
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, 2);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  request requests[2];
  request_init(&requests[0], 0, 5);
  request_init(&requests[1], 1, 6);
  /* The engine is idle: the submit is the only allocation. */
  cgr_handle *h = (cgr_handle *)&h;
  cgr__fault_arm(CGR__CALL_HOST_ALLOC, 1);
  cgr_status status = cgr_batcher_submit(fx.batcher, &requests[0], 0, &h);
  int fired = cgr__fault_fired();
  cgr__fault_disarm();
  assert_true(fired);
  assert_int_equal(status, CGR_E_OUT_OF_MEMORY);
  assert_null(h);
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  assert_int_equal(s.submitted, 0);
  for (int i = 0; i < 2; ++i) {
    h = submit_ok(&fx, &requests[i], 0);
    expect_answered(&fx, &requests[i], h);
    cgr_handle_release(h);
  }
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.submitted, 2);
  assert_int_equal(s.completed, 2);
  expect_no_problems(&fx);
  fixture_close(&fx);
}

static void test_batcher_failed_replay_fails_its_batch_only(void **state) {
  (void)cgr_test_runtime(state);
  cgr_test_require_host();
  enum { N = 7 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  request requests[N];
  cgr_handle *handles[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)(20 + i));
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  for (uint32_t i = 1; i < 5; ++i)
    handles[i] = submit_ok(&fx, &requests[i], 0);
  /* The plug's graph launch is the first, the queued batch's the second. */
  cgr__fault_arm(CGR__CALL_GRAPH_LAUNCH, 2);
  test_gate_open(&gate);
  expect_answered(&fx, &requests[0], handles[0]);
  for (uint32_t i = 1; i < 5; ++i) {
    cgr_status status = end_of(handles[i]);
    if (status != CGR_E_CUDA)
      fail_msg("request %u of the batch whose launch failed ended %s", i,
               cgr_status_name(status));
  }
  int fired = cgr__fault_fired();
  cgr__fault_disarm();
  assert_true(fired);
  char message[512];
  assert_cgr_ok(fx.rt,
                cgr_batcher_last_failure(fx.batcher, message, sizeof message));
  if (strstr(message, "injected fault") == NULL)
    fail_msg("cgr_batcher_last_failure says \"%s\"", message);
  /* The runtime and the batcher go on. */
  for (uint32_t i = 5; i < N; ++i)
    handles[i] = submit_ok(&fx, &requests[i], 0);
  for (uint32_t i = 5; i < N; ++i)
    expect_answered(&fx, &requests[i], handles[i]);
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.failed, 4);
  assert_int_equal(s.completed, 3);
  for (uint32_t i = 0; i < N; ++i)
    cgr_handle_release(handles[i]);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_batcher_rejects_bad_arguments),
    RUNTIME_TEST(test_batcher_needs_a_captured_runtime),
    RUNTIME_TEST(test_batcher_one_runtime_has_one_batcher),
    RUNTIME_TEST(test_batcher_allows_max_batch_over_buckets_with_eager),
    HOST_RUNTIME_TEST(
        test_batcher_create_fails_cleanly_at_every_injected_fault),
    HOST_RUNTIME_TEST(test_batcher_submit_out_of_memory_leaves_it_working),
    HOST_RUNTIME_TEST(test_batcher_failed_replay_fails_its_batch_only),
};

CGR_TEST_MAIN(tests)
