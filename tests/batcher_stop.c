/* Stopping the batcher and the callbacks' contract: stop(CANCEL) under
 * load ends every accepted request once; stop with a full queue cancels or
 * drains it; a cancel after a drain cancels what is still queued; stop from
 * a callback is refused; key runs on the submitting thread, the other
 * callbacks on the engine thread; a released handle's request is abandoned
 * once, with its answer or cancelled by destroy.
 *
 * Callbacks never assert (see batcher_fixture.h): the test thread does. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batcher_fixture.h"

/* ---- stop ---------------------------------------------------------------- */

enum { STOP_PRODUCERS = 8, STOP_WINDOW = 64, STOP_MAX = 200000 };

/* A producer that submits until the batcher refuses, keeping every
 * handle: what matters is how each one ended. */
typedef struct stopper {
  fixture *fx;
  uint32_t number;
  request *requests; /* STOP_MAX / STOP_PRODUCERS of them */
  cgr_handle **handles;
  uint32_t submitted;
  uint64_t busies, refused;
} stopper;

static void *produce_until_stopped(void *arg) {
  stopper *p = arg;
  fixture *fx = p->fx;
  const uint32_t capacity = STOP_MAX / STOP_PRODUCERS;
  for (uint32_t i = 0; i < capacity; ++i) {
    if (i >= STOP_WINDOW &&
        cgr_handle_wait(p->handles[i - STOP_WINDOW], END_WAIT_US) != CGR_OK) {
      note_problem(fx, "stopper %u: request %u never ended", p->number,
                   i - STOP_WINDOW);
      return NULL;
    }
    uint32_t index = p->number * capacity + i;
    request *r = &p->requests[i];
    request_init(r, index, (int32_t)index);
    cgr_status status;
    for (;;) {
      status = cgr_batcher_submit(fx->batcher, r, 0, &p->handles[i]);
      if (status != CGR_E_BUSY)
        break;
      p->busies++;
      sched_yield();
    }
    if (status == CGR_E_INVALID_STATE) {
      p->refused++;
      if (p->handles[i] != NULL)
        note_problem(fx, "a refused submit left a handle");
      return NULL;
    }
    if (status != CGR_OK) {
      note_problem(fx, "stopper %u: submit: %s", p->number,
                   cgr_status_name(status));
      return NULL;
    }
    p->submitted = i + 1;
  }
  note_problem(fx, "stopper %u: submitted %u requests and never met the stop",
               p->number, capacity);
  return NULL;
}

typedef struct stop_run {
  fixture fx;
  stopper producers[STOP_PRODUCERS];
  pthread_t threads[STOP_PRODUCERS];
  request *requests;
  cgr_handle **handles;
} stop_run;

static void stop_run_start(stop_run *run, uint32_t queue_capacity) {
  fixture_open(&run->fx, buckets, BUCKETS, 0, STOP_MAX);
  cgr_batcher_config config;
  fixture_config(&run->fx, &config);
  config.max_batch = 32;
  config.queue_capacity = queue_capacity;
  fixture_start(&run->fx, &config);
  run->requests = calloc(STOP_MAX, sizeof *run->requests);
  run->handles = calloc(STOP_MAX, sizeof *run->handles);
  assert_non_null(run->requests);
  assert_non_null(run->handles);
  const uint32_t capacity = STOP_MAX / STOP_PRODUCERS;
  for (uint32_t i = 0; i < STOP_PRODUCERS; ++i) {
    stopper *p = &run->producers[i];
    p->fx = &run->fx;
    p->number = i;
    p->requests = run->requests + (size_t)i * capacity;
    p->handles = run->handles + (size_t)i * capacity;
    assert_int_equal(pthread_create(&run->threads[i], NULL,
                                    produce_until_stopped, p),
                     0);
  }
}

/* Joins the producers and checks that every accepted request ended once,
 * CGR_OK with its answer or (when `cancel_allowed`) CGR_E_CANCELLED never
 * seen by a step; returns how many were cancelled. */
static uint64_t stop_run_finish(stop_run *run, int cancel_allowed) {
  fixture *fx = &run->fx;
  uint64_t refused = 0, submitted = 0, busies = 0, ok = 0, cancelled = 0;
  for (uint32_t i = 0; i < STOP_PRODUCERS; ++i) {
    pthread_join(run->threads[i], NULL);
    refused += run->producers[i].refused;
    busies += run->producers[i].busies;
  }
  expect_no_problems(fx);
  /* Refused from now on, and counted. */
  request late;
  request_init(&late, 0, 0);
  cgr_handle *h = (cgr_handle *)&h;
  assert_int_equal(cgr_batcher_submit(fx->batcher, &late, 0, &h),
                   CGR_E_INVALID_STATE);
  assert_null(h);
  refused++;
  /* A second stop is a no-op. */
  assert_cgr_ok(fx->rt, cgr_batcher_stop(fx->batcher, CGR_BATCHER_CANCEL));
  assert_cgr_ok(fx->rt, cgr_batcher_stop(fx->batcher, CGR_BATCHER_DRAIN));

  for (uint32_t k = 0; k < STOP_PRODUCERS; ++k) {
    const stopper *p = &run->producers[k];
    submitted += p->submitted;
    for (uint32_t i = 0; i < p->submitted; ++i) {
      const request *r = &p->requests[i];
      /* stop returned: every accepted request has ended already. */
      assert_int_equal(cgr_handle_poll(p->handles[i]), CGR_OK);
      cgr_status status = cgr_handle_result(p->handles[i], NULL);
      if (status == CGR_OK) {
        expect_answered(fx, r, p->handles[i]);
        ok++;
      } else if (status == CGR_E_CANCELLED && cancel_allowed) {
        expect_ended_unseen(fx, r, p->handles[i], CGR_E_CANCELLED);
        cancelled++;
      } else {
        fail_msg("request %d ended %s", r->id, cgr_status_name(status));
      }
      cgr_handle_release(p->handles[i]);
    }
  }
  cgr_batcher_stats s;
  stats_of(fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.submitted, submitted);
  assert_int_equal(s.completed, ok);
  assert_int_equal(s.cancelled, cancelled);
  assert_int_equal(s.timed_out + s.invalid + s.failed, 0);
  assert_int_equal(s.pending, 0);
  assert_int_equal(s.queue_depth, 0);
  assert_int_equal(s.rejected_stopped, refused);
  assert_int_equal(s.rejected_busy, busies);
  assert_true(refused >= STOP_PRODUCERS);
  printf("stopped after %llu requests: %llu answered, %llu cancelled\n",
         (unsigned long long)submitted, (unsigned long long)ok,
         (unsigned long long)cancelled);
  fixture_close(fx);
  free(run->requests);
  free(run->handles);
  return cancelled;
}

static void test_batcher_stop_cancel_under_load_ends_each_once(void **state) {
  (void)cgr_test_runtime(state);
  stop_run *run = calloc(1, sizeof *run);
  assert_non_null(run);
  /* A queue smaller than the producers' windows: busy answers too. */
  stop_run_start(run, 128);
  cgr_batcher_stats s;
  for (int ms = 0;; ++ms) {
    stats_of(&run->fx, &s);
    if (s.completed >= 2000 || atomic_load(&run->fx.problems) != 0)
      break;
    if (ms > 20000)
      fail_msg("2000 requests did not complete in 20 s");
    sleep_ms(1);
  }
  assert_cgr_ok(run->fx.rt,
                cgr_batcher_stop(run->fx.batcher, CGR_BATCHER_CANCEL));
  (void)stop_run_finish(run, 1);
  free(run);
}

/* With the engine held in a build, the queue fills; stop then ends the
 * queued requests as `mode` says, and the held batch finishes normally. */
static void run_stop_with_a_full_queue(cgr_batcher_stop_mode mode) {
  stop_run *run = calloc(1, sizeof *run);
  assert_non_null(run);
  stop_run_start(run, 4096);
  fixture *fx = &run->fx;
  cgr_batcher_stats s;
  for (int ms = 0;; ++ms) {
    stats_of(fx, &s);
    if (s.completed >= 500 || atomic_load(&fx->problems) != 0)
      break;
    if (ms > 20000)
      fail_msg("500 requests did not complete in 20 s");
    sleep_ms(1);
  }
  test_gate gate;
  test_gate_init(&gate);
  atomic_store(&fx->build_hold, &gate);
  for (int ms = 0; !atomic_load(&fx->build_waiting); ++ms) {
    if (ms > 10000)
      fail_msg("no build reached the gate in 10 s");
    sleep_ms(1);
  }
  for (int ms = 0;; ++ms) {
    stats_of(fx, &s);
    if (s.queue_depth > 0)
      break;
    if (ms > 10000)
      fail_msg("nothing was queued behind the held build in 10 s");
    sleep_ms(1);
  }
  opener o;
  opener_start(&o, &gate, 50);
  assert_cgr_ok(fx->rt, cgr_batcher_stop(fx->batcher, mode));
  opener_join(&o);
  uint64_t cancelled = stop_run_finish(run, mode == CGR_BATCHER_CANCEL);
  if (mode == CGR_BATCHER_CANCEL)
    assert_true(cancelled >= 1);
  else
    assert_int_equal(cancelled, 0);
  test_gate_fini(&gate);
  free(run);
}

static void test_batcher_stop_cancel_cancels_the_queue(void **state) {
  (void)cgr_test_runtime(state);
  run_stop_with_a_full_queue(CGR_BATCHER_CANCEL);
}

static void test_batcher_stop_drain_runs_the_queue(void **state) {
  (void)cgr_test_runtime(state);
  run_stop_with_a_full_queue(CGR_BATCHER_DRAIN);
}

/* stop(DRAIN) from one thread waits for a held engine; stop(CANCEL) from
 * another then cancels what is still queued, and both return. */
typedef struct drainer {
  cgr_batcher *batcher;
  cgr_status status;
  atomic_int returned;
  pthread_t thread;
} drainer;

static void *drain(void *arg) {
  drainer *d = arg;
  d->status = cgr_batcher_stop(d->batcher, CGR_BATCHER_DRAIN);
  atomic_store(&d->returned, 1);
  return NULL;
}

static void
test_batcher_cancel_after_drain_cancels_what_is_queued(void **state) {
  (void)cgr_test_runtime(state);
  /* Up to 5,000 submits 1 ms apart: the drain thread gets 5 s to run,
   * enough on a loaded machine. */
  enum { QUEUED = 8, MAX_N = 1 + QUEUED + 5000 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, MAX_N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  static request requests[MAX_N];
  static cgr_handle *handles[MAX_N];
  for (uint32_t i = 0; i < MAX_N; ++i)
    request_init(&requests[i], i, (int32_t)(50 + i));
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  uint32_t n = 1;
  for (; n < 1 + QUEUED; ++n)
    handles[n] = submit_ok(&fx, &requests[n], 0);
  drainer d;
  memset(&d, 0, sizeof d);
  d.batcher = fx.batcher;
  assert_int_equal(pthread_create(&d.thread, NULL, drain, &d), 0);
  /* Submits go on being accepted until the drain takes effect, then are
   * refused; the accepted ones queue behind the held engine. */
  for (;; ++n) {
    if (n == MAX_N)
      fail_msg("%u submits accepted after stop(DRAIN) was called", n);
    cgr_status status =
        cgr_batcher_submit(fx.batcher, &requests[n], 0, &handles[n]);
    if (status == CGR_E_INVALID_STATE)
      break;
    if (status == CGR_E_BUSY) { /* a full queue: the drain is late */
      --n;
      sleep_ms(1);
      continue;
    }
    assert_cgr_ok(fx.rt, status);
    sleep_ms(1);
  }
  sleep_ms(10);
  assert_int_equal(atomic_load(&d.returned), 0); /* the engine is held */
  opener o;
  opener_start(&o, &gate, 30);
  assert_cgr_ok(fx.rt, cgr_batcher_stop(fx.batcher, CGR_BATCHER_CANCEL));
  opener_join(&o);
  pthread_join(d.thread, NULL);
  assert_cgr_ok(fx.rt, d.status);
  expect_answered(&fx, &requests[0], handles[0]);
  for (uint32_t i = 1; i < n; ++i)
    expect_ended_unseen(&fx, &requests[i], handles[i], CGR_E_CANCELLED);
  for (uint32_t i = 0; i < n; ++i)
    cgr_handle_release(handles[i]);
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.cancelled, n - 1);
  assert_int_equal(s.completed, 1);
  assert_int_equal(s.rejected_stopped, 1);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* stop joins the engine thread: from a callback, on the engine thread
 * itself, it is misuse, answered with a status (and nothing stops). */
static void test_batcher_stop_from_a_callback_is_refused(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 2 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  request requests[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)(70 + i));
  atomic_store(&fx.stop_in_finish_status, 1);
  atomic_store(&fx.stop_in_finish, 1);
  cgr_handle *h = submit_ok(&fx, &requests[0], 0);
  expect_answered(&fx, &requests[0], h);
  cgr_handle_release(h);
  assert_int_equal(atomic_load(&fx.stop_in_finish), 0);
  int status = atomic_load(&fx.stop_in_finish_status);
  if (status != CGR_E_INVALID_STATE)
    fail_msg("cgr_batcher_stop from the finish callback returned %s, not "
             "CGR_E_INVALID_STATE",
             status == 1 ? "nothing" : cgr_status_name((cgr_status)status));
  /* The batcher still runs. */
  h = submit_ok(&fx, &requests[1], 0);
  expect_answered(&fx, &requests[1], h);
  cgr_handle_release(h);
  expect_no_problems(&fx);
  fixture_close(&fx);
}

/* ---- the callbacks' threads ---------------------------------------------- */

/* key runs inside cgr_batcher_submit, on the submitting thread, once per
 * request; validate, build, finish and abandon on the engine thread. */
static void
test_batcher_runs_key_on_the_submitter_the_rest_on_the_engine(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 8 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.key = key_of;
  config.validate = validate_id;
  fixture_start(&fx, &config);
  request requests[N];
  cgr_handle *handles[N];
  request_init(&requests[0], 0, 0);
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  for (uint32_t i = 1; i < N; ++i) {
    request_init(&requests[i], i, (int32_t)i);
    handles[i] = submit_ok(&fx, &requests[i], 0);
  }
  assert_int_equal(atomic_load(&fx.key_calls), N);
  cgr_handle_release(handles[N - 1]); /* abandoned */
  test_gate_open(&gate);
  for (uint32_t i = 0; i + 1 < N; ++i) {
    expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  for (int ms = 0; atomic_load(&fx.tallies[N - 1].abandoned) == 0; ++ms) {
    if (ms > 10000)
      fail_msg("the released request was never abandoned");
    sleep_ms(1);
  }
  assert_int_equal(atomic_load(&fx.key_calls), N);
  int seen[CALLBACK_COUNT], changed[CALLBACK_COUNT], on_test[CALLBACK_COUNT];
  int same_as_build[CALLBACK_COUNT];
  pthread_mutex_lock(&fx.lock);
  for (int c = 0; c < CALLBACK_COUNT; ++c) {
    seen[c] = fx.thread_seen[c];
    changed[c] = fx.thread_changed[c];
    on_test[c] = fx.on_test_thread[c];
    same_as_build[c] = pthread_equal(fx.thread[c], fx.thread[CALLBACK_BUILD]);
  }
  pthread_mutex_unlock(&fx.lock);
  for (int c = 0; c < CALLBACK_COUNT; ++c) {
    const char *name = callback_names[c];
    if (!seen[c])
      fail_msg("the %s callback never ran", name);
    if (changed[c])
      fail_msg("the %s callback ran on more than one thread", name);
    if (c == CALLBACK_KEY) {
      if (!on_test[c] || same_as_build[c])
        fail_msg("the key callback did not run on the submitting thread");
    } else if (on_test[c] || !same_as_build[c]) {
      fail_msg("the %s callback did not run on the engine thread", name);
    }
  }
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* ---- handles ------------------------------------------------------------- */

static void test_batcher_released_handle_is_abandoned_once(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 4 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  request requests[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)(10 + i));

  /* Released while queued; it still runs, and abandon gets its answer. */
  test_gate gate;
  cgr_handle *plug = hold_engine(&fx, &gate, &requests[0]);
  cgr_handle *h = submit_ok(&fx, &requests[1], 0);
  assert_int_equal(cgr_handle_poll(h), CGR_E_NOT_READY);
  void *result = &result;
  assert_int_equal(cgr_handle_result(h, &result), CGR_E_NOT_READY);
  assert_int_equal(cgr_handle_wait(h, 1000), CGR_E_NOT_READY);
  cgr_handle_release(h);
  test_gate_open(&gate);
  expect_answered(&fx, &requests[0], plug);
  cgr_handle_release(plug);
  const tally *t = &fx.tallies[1];
  for (int ms = 0; atomic_load(&t->abandoned) == 0; ++ms) {
    if (ms > 10000)
      fail_msg("the released request was never abandoned");
    sleep_ms(1);
  }
  assert_int_equal(atomic_load(&t->abandon_status), CGR_OK);
  assert_int_equal(requests[1].answer, requests[1].id + requests[1].pos);
  test_gate_fini(&gate);

  /* Released while queued, then cancelled by destroy: abandoned with
   * CGR_E_CANCELLED; a handle kept stays valid after destroy. */
  cgr_handle *plug2 = hold_engine(&fx, &gate, &requests[2]);
  h = submit_ok(&fx, &requests[3], 0);
  cgr_handle_release(h);
  opener o;
  opener_start(&o, &gate, 20);
  cgr_batcher_destroy(fx.batcher);
  fx.batcher = NULL;
  opener_join(&o);
  t = &fx.tallies[3];
  assert_int_equal(atomic_load(&t->abandoned), 1);
  assert_int_equal(atomic_load(&t->abandon_status), CGR_E_CANCELLED);
  expect_answered(&fx, &requests[2], plug2);
  cgr_handle_release(plug2);
  assert_int_equal(atomic_load(&fx.abandons), 2);
  assert_int_equal(atomic_load(&fx.tallies[1].abandoned), 1);
  assert_int_equal(atomic_load(&fx.tallies[0].abandoned), 0);
  assert_int_equal(atomic_load(&fx.tallies[2].abandoned), 0);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_batcher_stop_cancel_under_load_ends_each_once),
    RUNTIME_TEST(test_batcher_stop_cancel_cancels_the_queue),
    RUNTIME_TEST(test_batcher_stop_drain_runs_the_queue),
    RUNTIME_TEST(test_batcher_cancel_after_drain_cancels_what_is_queued),
    RUNTIME_TEST(test_batcher_stop_from_a_callback_is_refused),
    RUNTIME_TEST(test_batcher_runs_key_on_the_submitter_the_rest_on_the_engine),
    RUNTIME_TEST(test_batcher_released_handle_is_abandoned_once),
};

CGR_TEST_MAIN(tests)
