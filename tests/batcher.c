/* The batcher answers: 32 threads' requests each answered exactly once
 * with their own result, and counters that add up; a full queue answered
 * busy at once; expired requests ended unbuilt; invalid requests failing
 * alone; a failed build or finish failing its batch only, and
 * cgr_batcher_last_failure naming it.
 *
 * The fixture is in batcher_fixture.h; stop and the callbacks' contract are
 * tested in batcher_stop.c, how requests form batches in
 * batcher_batches.c, argument errors and injected faults in
 * batcher_errors.c. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batcher_fixture.h"

/* ---- 32 producers -------------------------------------------------------- */

enum { PRODUCERS = 32, WINDOW = 64 };

/* Requests per producer: CGR_TEST_BATCHER_REQUESTS overrides (the
 * sanitizer presets run fewer). */
static uint32_t requests_per_producer(void) {
  const char *text = getenv("CGR_TEST_BATCHER_REQUESTS");
  if (text != NULL) {
    char *end = NULL;
    long n = strtol(text, &end, 10);
    if (end != text && *end == '\0' && n > 0 && n <= 10000000)
      return (uint32_t)n;
  }
  return 100000;
}

typedef struct producer {
  fixture *fx;
  uint32_t number, count;
  uint64_t busies;
  request window[WINDOW];
  cgr_handle *handles[WINDOW];
} producer;

/* Waits the window's request in `slot`, checks it, releases its handle. */
static void settle(producer *p, uint32_t slot) {
  fixture *fx = p->fx;
  cgr_handle *h = p->handles[slot];
  request *r = &p->window[slot];
  p->handles[slot] = NULL;
  cgr_status status = cgr_handle_wait(h, END_WAIT_US);
  if (status != CGR_OK) {
    note_problem(fx, "producer %u: request %d never ended (%s)", p->number,
                 r->id, cgr_status_name(status));
    return; /* the handle stays: the request may still write into r */
  }
  void *result = NULL;
  status = cgr_handle_result(h, &result);
  if (status != CGR_OK)
    note_problem(fx, "producer %u: request %d ended %s", p->number, r->id,
                 cgr_status_name(status));
  else if (result != &r->answer || r->answer != r->id + r->pos || !r->pages_ok)
    note_problem(fx,
                 "producer %u: request %d got answer %d (expected %d), "
                 "result %p (expected %p), pages %s",
                 p->number, r->id, r->answer, r->id + r->pos, result,
                 (void *)&r->answer, r->pages_ok ? "right" : "wrong");
  cgr_handle_release(h);
}

static void *produce(void *arg) {
  producer *p = arg;
  fixture *fx = p->fx;
  for (uint32_t i = 0; i < p->count; ++i) {
    uint32_t slot = i % WINDOW;
    if (i >= WINDOW)
      settle(p, slot); /* the oldest outstanding request */
    if (p->handles[slot] != NULL)
      return NULL; /* it never ended: reported, and r is not ours */
    uint32_t index = p->number * p->count + i;
    request *r = &p->window[slot];
    request_init(r, index, (int32_t)index);
    cgr_status status;
    for (;;) {
      status = cgr_batcher_submit(fx->batcher, r, 0, &p->handles[slot]);
      if (status != CGR_E_BUSY)
        break;
      p->busies++;
      sched_yield();
    }
    if (status != CGR_OK) {
      note_problem(fx, "producer %u: submit of request %u: %s", p->number, i,
                   cgr_status_name(status));
      return NULL;
    }
  }
  uint32_t outstanding = p->count < WINDOW ? p->count : WINDOW;
  for (uint32_t k = 0; k < outstanding; ++k) {
    uint32_t slot = (p->count + k) % WINDOW;
    if (p->handles[slot] != NULL)
      settle(p, slot);
  }
  return NULL;
}

static void test_batcher_answers_every_request_exactly_once(void **state) {
  (void)cgr_test_runtime(state);
  uint32_t per_producer = requests_per_producer();
  uint64_t total = (uint64_t)PRODUCERS * per_producer;
  assert_true(total <= INT32_MAX);
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, (uint32_t)total);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.max_batch = LARGEST;
  /* Under the 32 x 64 requests outstanding: submits meet a full queue. */
  config.queue_capacity = 1024;
  fixture_start(&fx, &config);

  producer *producers = calloc(PRODUCERS, sizeof *producers);
  pthread_t threads[PRODUCERS];
  assert_non_null(producers);
  double began = (double)cgr_clock_us();
  for (uint32_t i = 0; i < PRODUCERS; ++i) {
    producers[i].fx = &fx;
    producers[i].number = i;
    producers[i].count = per_producer;
    assert_int_equal(pthread_create(&threads[i], NULL, produce, &producers[i]),
                     0);
  }
  /* Meanwhile every snapshot adds up and no counter goes back. */
  cgr_batcher_stats previous, now;
  memset(&previous, 0, sizeof previous);
  uint64_t snapshots = 0;
  for (;;) {
    stats_of(&fx, &now);
    expect_consistent(&now);
    assert_true(now.submitted >= previous.submitted);
    assert_true(now.completed >= previous.completed);
    assert_true(now.batches >= previous.batches);
    assert_true(now.rejected_busy >= previous.rejected_busy);
    assert_true(now.queue_depth <= config.queue_capacity);
    previous = now;
    snapshots++;
    if (now.completed == total || atomic_load(&fx.problems) != 0)
      break;
    sleep_ms(50); /* a snapshot sorts 65,536 wait samples */
  }
  uint64_t busies = 0;
  for (uint32_t i = 0; i < PRODUCERS; ++i) {
    pthread_join(threads[i], NULL);
    busies += producers[i].busies;
  }
  double seconds = ((double)cgr_clock_us() - began) / 1e6;
  free(producers);
  expect_no_problems(&fx);

  for (uint32_t i = 0; i < total; ++i) {
    const tally *t = &fx.tallies[i];
    if (atomic_load(&t->built) != 1 || atomic_load(&t->finished) != 1)
      fail_msg("request %u: built %d times, finished %d times", i,
               atomic_load(&t->built), atomic_load(&t->finished));
  }
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.submitted, total);
  assert_int_equal(s.completed, total);
  assert_int_equal(s.pending, 0);
  assert_int_equal(s.timed_out + s.invalid + s.failed + s.cancelled, 0);
  assert_int_equal(s.rejected_busy, busies);
  assert_int_equal(s.rejected_stopped, 0);
  assert_int_equal(s.queue_depth, 0);
  assert_true(s.queue_depth_max <= config.queue_capacity);
  /* The engine's batches are the ones build saw, bin by bin. */
  assert_int_equal(s.batches, atomic_load(&fx.builds));
  assert_int_equal(atomic_load(&fx.finishes), s.batches);
  assert_int_equal(atomic_load(&fx.rows_built), total);
  for (int k = 0; k < CGR_BATCHER_SIZE_BINS; ++k) {
    assert_int_equal(s.batch_size_bins[k], atomic_load(&fx.bins[k]));
    if (k > 8) /* nothing over max_batch 256 */
      assert_int_equal(s.batch_size_bins[k], 0);
  }
  double batched = s.mean_batch * (double)s.batches;
  if (batched < (double)total - 0.5 - 1e-9 * (double)total ||
      batched > (double)total + 0.5 + 1e-9 * (double)total)
    fail_msg("mean_batch %.6f x %llu batches = %.1f, not the %llu requests",
             s.mean_batch, (unsigned long long)s.batches, batched,
             (unsigned long long)total);
  assert_true(s.wait_us_p50 <= s.wait_us_p99);
  printf("%u producers x %u requests: %.2f s (%.0f requests/s), %llu "
         "batches of %.1f on average, %llu busy answers, %llu snapshots\n",
         PRODUCERS, per_producer, seconds, (double)total / seconds,
         (unsigned long long)s.batches, s.mean_batch,
         (unsigned long long)busies, (unsigned long long)snapshots);
  fixture_close(&fx);
}

/* ---- queue full ---------------------------------------------------------- */

static void test_batcher_full_queue_answers_busy_at_once(void **state) {
  (void)cgr_test_runtime(state);
  enum { CAPACITY = 32, MAX_REQUESTS = 200 };
  static const uint32_t small[] = {1, 2, 4, 8};
  fixture fx;
  fixture_open(&fx, small, 4, 0, MAX_REQUESTS + 1);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.queue_capacity = CAPACITY;
  fixture_start(&fx, &config);

  /* The next graph waits at the gate: the engine soon waits on the
   * device, and nothing leaves the queue. */
  test_gate gate;
  test_gate_init(&gate);
  __atomic_store_n(&fx.m.hold, &gate, __ATOMIC_RELEASE);
  static request requests[MAX_REQUESTS + 1];
  cgr_handle *handles[MAX_REQUESTS + 1];
  uint32_t accepted = 0;
  uint64_t busies = 0;
  cgr_batcher_stats s;
  for (int settled = 0; !settled;) {
    for (;;) {
      if (accepted == MAX_REQUESTS)
        fail_msg("%u requests accepted with the device held and a queue of "
                 "%u",
                 accepted, CAPACITY);
      request_init(&requests[accepted], accepted, (int32_t)accepted);
      cgr_status status = cgr_batcher_submit(fx.batcher, &requests[accepted], 0,
                                             &handles[accepted]);
      if (status == CGR_E_BUSY) {
        assert_null(handles[accepted]);
        busies++;
        break;
      }
      assert_cgr_ok(fx.rt, status);
      accepted++;
    }
    /* The engine may still take a batch before it waits on the device:
     * fill again until the queue stays full. */
    sleep_ms(20);
    stats_of(&fx, &s);
    settled = s.queue_depth == CAPACITY;
  }
  request_init(&requests[accepted], accepted, (int32_t)accepted);
  cgr_handle *h = (cgr_handle *)&h;
  uint64_t t0 = cgr_clock_us();
  cgr_status status =
      cgr_batcher_submit(fx.batcher, &requests[accepted], 0, &h);
  uint64_t took_us = cgr_clock_us() - t0;
  assert_int_equal(status, CGR_E_BUSY);
  busies++;
  assert_null(h);
  if (took_us >= 50000)
    fail_msg("a submit to a full queue took %llu us",
             (unsigned long long)took_us);
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.rejected_busy, busies);
  assert_int_equal(s.submitted, accepted);
  assert_int_equal(s.queue_depth, CAPACITY);
  assert_int_equal(s.queue_depth_max, CAPACITY);

  test_gate_open(&gate);
  for (uint32_t i = 0; i < accepted; ++i) {
    expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  stats_of(&fx, &s);
  assert_int_equal(s.completed, accepted);
  assert_int_equal(s.pending, 0);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* ---- deadlines ----------------------------------------------------------- */

static void test_batcher_expired_requests_end_timeout_unbuilt(void **state) {
  (void)cgr_test_runtime(state);
  enum { EACH = 10, N = 1 + 3 * EACH };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.max_batch = 64;
  fixture_start(&fx, &config);

  request requests[N];
  cgr_handle *handles[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)(1000 + i));
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  /* Interleaved: soon expired, no deadline, a deadline far away. */
  uint64_t now = cgr_clock_us();
  for (uint32_t i = 1; i < N; ++i) {
    uint64_t deadline = i % 3 == 1   ? now + 2000
                        : i % 3 == 2 ? 0
                                     : now + UINT64_C(60000000);
    handles[i] = submit_ok(&fx, &requests[i], deadline);
  }
  sleep_ms(20);
  test_gate_open(&gate);

  expect_answered(&fx, &requests[0], handles[0]);
  for (uint32_t i = 1; i < N; ++i) {
    if (i % 3 == 1)
      expect_ended_unseen(&fx, &requests[i], handles[i], CGR_E_TIMEOUT);
    else
      expect_answered(&fx, &requests[i], handles[i]);
  }
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.timed_out, EACH);
  assert_int_equal(s.completed, N - EACH);
  assert_int_equal(s.pending, 0);
  assert_int_equal(atomic_load(&fx.rows_built), N - EACH);
  for (uint32_t i = 0; i < N; ++i)
    cgr_handle_release(handles[i]);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* ---- validation ---------------------------------------------------------- */

static void test_batcher_invalid_requests_fail_alone(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 101 };
  static const uint32_t small[] = {1, 2, 4, 8, 16};
  fixture fx;
  fixture_open(&fx, small, 5, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.validate = validate_id;
  fixture_start(&fx, &config);

  request requests[N];
  cgr_handle *handles[N];
  request_init(&requests[0], 0, 0);
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  uint32_t invalid = 0;
  for (uint32_t i = 1; i < N; ++i) {
    int bad = i % 3 == 0;
    request_init(&requests[i], i, bad ? -(int32_t)i : (int32_t)i);
    invalid += (uint32_t)bad;
    handles[i] = submit_ok(&fx, &requests[i], 0);
  }
  test_gate_open(&gate);
  for (uint32_t i = 0; i < N; ++i) {
    if (requests[i].id < 0)
      expect_ended_unseen(&fx, &requests[i], handles[i],
                          CGR_E_INVALID_ARGUMENT);
    else
      expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.invalid, invalid);
  assert_int_equal(s.completed, N - invalid);
  assert_int_equal(s.failed, 0);
  assert_int_equal(atomic_load(&fx.validations), N);
  assert_int_equal(atomic_load(&fx.rows_built), N - invalid);
  /* The 100 queued requests went in batches of at most 16 that held
   * invalid ones too: those batches ran with the valid ones alone. */
  assert_true(s.batches >= (N - 1 - invalid + 15) / 16);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* ---- a failed step fails its batch only ---------------------------------- */

/* Requests 5 and 27 of 40 (plus the plug) are marked; the callback named
 * by `in_build` fails the batches that hold them with `failure`. */
static void run_failing_step(int in_build, cgr_status failure) {
  enum { N = 41 };
  static const uint32_t small[] = {1, 2, 4, 8};
  fixture fx;
  fixture_open(&fx, small, 4, 0, N);
  if (in_build)
    fx.build_failure = failure;
  else
    fx.finish_failure = failure;
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);

  request requests[N];
  cgr_handle *handles[N];
  request_init(&requests[0], 0, 0);
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  for (uint32_t i = 1; i < N; ++i) {
    request_init(&requests[i], i, (int32_t)i);
    requests[i].mark = i == 5 || i == 27;
    handles[i] = submit_ok(&fx, &requests[i], 0);
  }
  test_gate_open(&gate);
  for (uint32_t i = 0; i < N; ++i)
    (void)end_of(handles[i]);

  /* The batches build saw the marked requests in. */
  unsigned failed_batches[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    const request *marked = &requests[k == 0 ? 5 : 27];
    failed_batches[k] = atomic_load(&fx.tallies[marked->index].batch);
    assert_true(failed_batches[k] != 0);
  }
  uint64_t failed = 0;
  for (uint32_t i = 0; i < N; ++i) {
    const tally *t = &fx.tallies[requests[i].index];
    unsigned batch = atomic_load(&t->batch);
    if (batch == failed_batches[0] || batch == failed_batches[1]) {
      failed++;
      cgr_status status = cgr_handle_result(handles[i], NULL);
      if (status != failure)
        fail_msg("request %u shared batch %u with a marked request but "
                 "ended %s, not %s",
                 i, batch, cgr_status_name(status), cgr_status_name(failure));
      assert_int_equal(atomic_load(&t->built), 1);
      assert_int_equal(atomic_load(&t->finished), in_build ? 0 : 1);
    } else {
      expect_answered(&fx, &requests[i], handles[i]);
    }
    cgr_handle_release(handles[i]);
  }
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.failed, failed);
  assert_int_equal(s.completed, N - failed);
  assert_int_equal(s.pending, 0);
  char message[512];
  assert_cgr_ok(fx.rt,
                cgr_batcher_last_failure(fx.batcher, message, sizeof message));
  if (strstr(message, in_build ? "build" : "finish") == NULL)
    fail_msg("cgr_batcher_last_failure says \"%s\", which does not name the "
             "%s callback",
             message, in_build ? "build" : "finish");
  /* Cut to the size given, terminated. */
  char short_message[8];
  assert_cgr_ok(fx.rt, cgr_batcher_last_failure(fx.batcher, short_message,
                                                sizeof short_message));
  assert_int_equal(strlen(short_message), sizeof short_message - 1);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

static void test_batcher_failed_finish_fails_its_batch_only(void **state) {
  (void)cgr_test_runtime(state);
  run_failing_step(0, CGR_E_UNSUPPORTED);
}

static void test_batcher_failed_build_fails_its_batch_only(void **state) {
  (void)cgr_test_runtime(state);
  run_failing_step(1, CGR_E_SYSTEM);
}

static void test_batcher_last_failure_is_empty_before_any(void **state) {
  (void)cgr_test_runtime(state);
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, 1);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  char message[64] = "not cleared";
  assert_cgr_ok(fx.rt,
                cgr_batcher_last_failure(fx.batcher, message, sizeof message));
  assert_string_equal(message, "");
  fixture_close(&fx);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_batcher_answers_every_request_exactly_once),
    RUNTIME_TEST(test_batcher_full_queue_answers_busy_at_once),
    RUNTIME_TEST(test_batcher_expired_requests_end_timeout_unbuilt),
    RUNTIME_TEST(test_batcher_invalid_requests_fail_alone),
    RUNTIME_TEST(test_batcher_failed_finish_fails_its_batch_only),
    RUNTIME_TEST(test_batcher_failed_build_fails_its_batch_only),
    RUNTIME_TEST(test_batcher_last_failure_is_empty_before_any),
};

CGR_TEST_MAIN(tests)
