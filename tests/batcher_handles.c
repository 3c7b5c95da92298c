/* Handles and how each request ends: every accepted request ends in
 * exactly one of its outcome taken (cgr_handle_result) or the abandon
 * callback, however the release of its handle falls against its end:
 * released after the end without its outcome taken (each way a request
 * can end, and after the batcher was destroyed), taken first, and under
 * stress, 16 threads releasing at random moments while the engine
 * finishes steps, deadlines expire and stops cancel or drain.
 *
 * Callbacks never assert (see batcher_fixture.h): the test thread does. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batcher_fixture.h"

/* ---- released after the end ---------------------------------------------- */

/* Waits until the request has ended without reading its outcome. */
static void wait_untaken(cgr_handle *h) {
  cgr_status waited = cgr_handle_wait(h, END_WAIT_US);
  if (waited != CGR_OK)
    fail_msg("a request did not end within %llu s: cgr_handle_wait says %s",
             (unsigned long long)(END_WAIT_US / 1000000),
             cgr_status_name(waited));
}

/* Releases a handle whose request ended and whose outcome nobody took:
 * abandon must have it, once, with how it ended, before release returns. */
static void expect_release_abandons(fixture *fx, const request *r,
                                    cgr_handle *h, cgr_status want) {
  const tally *t = &fx->tallies[r->index];
  assert_int_equal(atomic_load(&t->abandoned), 0);
  cgr_handle_release(h);
  if (atomic_load(&t->abandoned) != 1)
    fail_msg("request %d ended and its handle was released untaken: "
             "abandon ran %d times, not once",
             r->id, atomic_load(&t->abandoned));
  cgr_status status = (cgr_status)atomic_load(&t->abandon_status);
  if (status != want)
    fail_msg("request %d was abandoned with %s, not %s", r->id,
             cgr_status_name(status), cgr_status_name(want));
}

static void
test_batcher_release_after_the_end_abandons_what_was_not_taken(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 9 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.validate = validate_id;
  fx.build_failure = CGR_E_INTERNAL; /* for the batch of a marked one */
  fixture_start(&fx, &config);
  static request requests[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)(20 + i));

  /* Answered, released untaken: abandon gets the request and its answer. */
  cgr_handle *h = submit_ok(&fx, &requests[0], 0);
  wait_untaken(h);
  expect_release_abandons(&fx, &requests[0], h, CGR_OK);
  assert_int_equal(requests[0].answer, requests[0].id + requests[0].pos);

  /* Answered and taken, with or without the result pointer: the caller
   * owns both, and abandon never runs. */
  for (uint32_t i = 1; i <= 2; ++i) {
    h = submit_ok(&fx, &requests[i], 0);
    if (i == 1) {
      expect_answered(&fx, &requests[i], h);
    } else {
      wait_untaken(h);
      assert_int_equal(cgr_handle_result(h, NULL), CGR_OK);
    }
    cgr_handle_release(h);
    assert_int_equal(atomic_load(&fx.tallies[i].abandoned), 0);
  }

  /* Refused by validation, released untaken. */
  request_init(&requests[3], 3, -3);
  h = submit_ok(&fx, &requests[3], 0);
  wait_untaken(h);
  expect_release_abandons(&fx, &requests[3], h, CGR_E_INVALID_ARGUMENT);

  /* Its step failed, released untaken. */
  requests[4].mark = 1;
  h = submit_ok(&fx, &requests[4], 0);
  wait_untaken(h);
  expect_release_abandons(&fx, &requests[4], h, CGR_E_INTERNAL);

  /* Its deadline passed in the queue, released untaken. */
  test_gate gate;
  cgr_handle *plug = hold_engine(&fx, &gate, &requests[5]);
  h = submit_ok(&fx, &requests[6], cgr_clock_us() + 1000);
  sleep_ms(5);
  test_gate_open(&gate);
  wait_untaken(h);
  expect_release_abandons(&fx, &requests[6], h, CGR_E_TIMEOUT);
  expect_answered(&fx, &requests[5], plug);
  cgr_handle_release(plug);
  test_gate_fini(&gate);

  /* Cancelled by destroy, released untaken after the batcher is gone:
   * abandon still runs, on the releasing thread. */
  plug = hold_engine(&fx, &gate, &requests[7]);
  h = submit_ok(&fx, &requests[8], 0);
  opener o;
  opener_start(&o, &gate, 20);
  cgr_batcher_destroy(fx.batcher);
  fx.batcher = NULL;
  opener_join(&o);
  assert_int_equal(cgr_handle_poll(h), CGR_OK);
  expect_release_abandons(&fx, &requests[8], h, CGR_E_CANCELLED);
  expect_answered(&fx, &requests[7], plug);
  cgr_handle_release(plug);
  test_gate_fini(&gate);

  assert_int_equal(atomic_load(&fx.abandons), 5);
  expect_no_problems(&fx);
  fixture_close(&fx);
}

/* ---- 16 threads releasing at random moments ------------------------------ */

enum { STRESS_THREADS = 16, STRESS_WINDOW = 4, STRESS_MAX = 1u << 20 };

/* Rounds of the stress test (a batcher each, stopped at a random moment):
 * CGR_TEST_HANDLES_ROUNDS overrides (the sanitizer runs may run fewer). */
static uint32_t stress_rounds(void) {
  const char *text = getenv("CGR_TEST_HANDLES_ROUNDS");
  if (text != NULL) {
    char *end = NULL;
    long n = strtol(text, &end, 10);
    if (end != text && *end == '\0' && n > 0 && n <= 100000)
      return (uint32_t)n;
  }
  return 96;
}

/* What became of one request, counted by whoever did it. */
typedef struct fate {
  atomic_uchar accepted, finished, taken, abandoned;
} fate;

/* A result as finish makes it: on the heap, the caller's or abandon's to
 * free. */
typedef struct answer_box {
  int32_t answer;
  uint32_t index;
} answer_box;

typedef struct stress {
  fixture fx; /* first: the callbacks' user is the fixture */
  cgr_batcher_finish_fn fixture_finish;
  fate *fates;
  atomic_uint next_index;
  atomic_llong live; /* requests and results allocated, not yet freed */
  atomic_int submitters_done;
  atomic_int destroyed;
  atomic_uint_fast64_t releases_before_end, releases_after_end;
} stress;

/* Checks a request's outcome and frees its result; then frees the request.
 * Whoever ends a request calls it: the taker or abandon. Any thread. */
static void settle_request(stress *s, request *r, cgr_status status,
                           void *result) {
  fixture *fx = &s->fx;
  if (status == CGR_OK) {
    const answer_box *box = result;
    if (box == NULL)
      note_problem(fx, "request %d ended CGR_OK without a result", r->id);
    else if (box->index != r->index || box->answer != r->id + r->pos)
      note_problem(fx,
                   "request %d (index %u) got the answer %d of index %u, "
                   "expected %d",
                   r->id, r->index, box->answer, box->index, r->id + r->pos);
    if (box != NULL) {
      free(result);
      atomic_fetch_sub(&s->live, 1);
    }
  } else if (result != NULL) {
    note_problem(fx, "request %d ended %s with a result", r->id,
                 cgr_status_name(status));
  }
  free(r);
  atomic_fetch_sub(&s->live, 1);
}

/* finish: the fixture's, then each answer moved to a result of its own on
 * the heap (engine thread). */
static cgr_status finish_boxed(void *user, cgr_runtime *rt,
                               const cgr_ticket *ticket, void *const *requests,
                               uint32_t count, void **results) {
  stress *s = user;
  cgr_status status =
      s->fixture_finish(user, rt, ticket, requests, count, results);
  if (status != CGR_OK)
    return status;
  for (uint32_t i = 0; i < count; ++i) {
    const request *r = requests[i];
    answer_box *box = malloc(sizeof *box);
    if (box == NULL) {
      /* The batch fails: free what this call made. */
      for (uint32_t j = 0; j < i; ++j) {
        free(results[j]);
        atomic_fetch_sub(&s->live, 1);
      }
      note_problem(&s->fx, "finish: out of memory");
      return CGR_E_OUT_OF_MEMORY;
    }
    box->answer = r->answer;
    box->index = r->index;
    atomic_fetch_add(&s->live, 1);
    atomic_fetch_add(&s->fates[r->index].finished, 1);
    results[i] = box;
  }
  return CGR_OK;
}

/* abandon: the request ended and its outcome was never taken (engine,
 * stopping or releasing thread). */
static void abandon_boxed(void *user, void *request_ptr, cgr_status status,
                          void *result) {
  stress *s = user;
  request *r = request_ptr;
  if (r->index >= STRESS_MAX) {
    note_problem(&s->fx, "abandon got a request with index %u", r->index);
    return;
  }
  atomic_fetch_add(&s->fates[r->index].abandoned, 1);
  settle_request(s, r, status, result);
}

typedef struct held {
  cgr_handle *handle;
  request *r;
} held;

typedef struct submitter {
  stress *s;
  cgr_batcher *batcher;
  uint64_t seed;
  held window[STRESS_WINDOW];
  uint32_t count;
  pthread_t thread;
} submitter;

/* Takes the outcome of a request that ended: the request and its result
 * are this thread's now. */
static void take(submitter *p, held *e) {
  void *result = NULL;
  cgr_status status = cgr_handle_result(e->handle, &result);
  if (status == CGR_E_NOT_READY) {
    note_problem(&p->s->fx, "request %d: no outcome after it ended", e->r->id);
    return;
  }
  atomic_fetch_add(&p->s->fates[e->r->index].taken, 1);
  settle_request(p->s, e->r, status, result);
}

static void release(submitter *p, held *e) {
  int ended = cgr_handle_poll(e->handle) == CGR_OK;
  atomic_fetch_add(ended ? &p->s->releases_after_end
                         : &p->s->releases_before_end,
                   1);
  cgr_handle_release(e->handle);
}

/* Ends the caller's interest in window entry k at a random moment, in a
 * random way: released at once or after a while, looked at first, or
 * waited for; taken (sometimes) when it was seen to end. */
static void let_go(submitter *p, uint32_t k) {
  held e = p->window[k];
  p->window[k] = p->window[--p->count];
  switch (test_random_below(&p->seed, 6)) {
  case 0:
    break; /* at once */
  case 1:
    for (uint64_t n = test_random_below(&p->seed, 8); n > 0; --n)
      sched_yield();
    break;
  case 2:
    if (cgr_handle_poll(e.handle) == CGR_OK &&
        test_random_below(&p->seed, 2) == 0) {
      take(p, &e);
      cgr_handle_release(e.handle);
      return;
    }
    break;
  case 3:
  case 4:
    if (cgr_handle_wait(e.handle, test_random_below(&p->seed, 300)) == CGR_OK &&
        test_random_below(&p->seed, 2) == 0) {
      take(p, &e);
      cgr_handle_release(e.handle);
      return;
    }
    break;
  default:
    if (cgr_handle_wait(e.handle, END_WAIT_US) != CGR_OK) {
      note_problem(&p->s->fx, "request %d never ended", e.r->id);
      return; /* it may still write into its request: keep both */
    }
    take(p, &e);
    cgr_handle_release(e.handle);
    return;
  }
  release(p, &e);
}

/* A new request: 3% fail validation, 1% fail their step, and deadlines
 * from none to already passed. Returns 0 once the batcher refuses. */
static int submit_one(submitter *p) {
  stress *s = p->s;
  uint32_t index = atomic_fetch_add(&s->next_index, 1);
  if (index >= STRESS_MAX)
    return 0;
  request *r = malloc(sizeof *r);
  if (r == NULL) {
    note_problem(&s->fx, "out of memory for a request");
    return 0;
  }
  atomic_fetch_add(&s->live, 1);
  uint64_t dice = test_random_below(&p->seed, 100);
  request_init(r, index,
               dice < 3 ? -(int32_t)(index % 1000) - 1
                        : (int32_t)(index % 100000));
  r->mark = dice == 3;
  uint64_t deadline = 0, when = test_random_below(&p->seed, 10);
  if (when == 0)
    deadline = 1; /* long past */
  else if (when <= 2)
    deadline = cgr_clock_us() + test_random_below(&p->seed, 400);
  cgr_handle *h = NULL;
  cgr_status status = cgr_batcher_submit(p->batcher, r, deadline, &h);
  if (status == CGR_OK) {
    atomic_store(&s->fates[index].accepted, 1);
    p->window[p->count++] = (held){h, r};
    return 1;
  }
  free(r);
  atomic_fetch_sub(&s->live, 1);
  if (status == CGR_E_BUSY) {
    sched_yield();
    return 1;
  }
  if (status != CGR_E_INVALID_STATE)
    note_problem(&s->fx, "submit: %s", cgr_status_name(status));
  return 0;
}

static void *submit_and_release(void *arg) {
  submitter *p = arg;
  stress *s = p->s;
  for (;;) {
    if (p->count < STRESS_WINDOW && test_random_below(&p->seed, 2) == 0) {
      if (!submit_one(p))
        break;
    } else if (p->count > 0) {
      let_go(p, (uint32_t)test_random_below(&p->seed, p->count));
    }
  }
  /* Stopped: what this thread still holds is let go of after destroy. */
  atomic_fetch_add(&s->submitters_done, 1);
  while (!atomic_load(&s->destroyed))
    sched_yield();
  while (p->count > 0)
    let_go(p, (uint32_t)test_random_below(&p->seed, p->count));
  return NULL;
}

/* One round: a batcher, 16 threads, a stop (cancel or drain) after a
 * random while, a destroy, and the threads let go of the rest. */
static void stress_round(stress *s, uint64_t *seed) {
  fixture *fx = &s->fx;
  cgr_batcher_config config;
  fixture_config(fx, &config);
  s->fixture_finish = config.finish;
  config.finish = finish_boxed;
  config.abandon = abandon_boxed;
  config.validate = validate_id;
  config.max_batch = 1 + (uint32_t)test_random_below(seed, 64);
  config.max_wait_us = 200;
  config.min_wait_us = 50;
  config.queue_capacity = 64 + (uint32_t)test_random_below(seed, 256);
  fixture_start(fx, &config);
  atomic_store(&s->submitters_done, 0);
  atomic_store(&s->destroyed, 0);

  submitter submitters[STRESS_THREADS];
  memset(submitters, 0, sizeof submitters);
  for (uint32_t i = 0; i < STRESS_THREADS; ++i) {
    submitter *p = &submitters[i];
    p->s = s;
    p->batcher = fx->batcher;
    p->seed = test_random(seed) | 1;
    assert_int_equal(pthread_create(&p->thread, NULL, submit_and_release, p),
                     0);
  }
  sleep_ms(1 + (int)test_random_below(seed, 20));
  cgr_batcher_stop_mode mode =
      test_random_below(seed, 2) == 0 ? CGR_BATCHER_CANCEL : CGR_BATCHER_DRAIN;
  assert_cgr_ok(fx->rt, cgr_batcher_stop(fx->batcher, mode));
  cgr_batcher_stats stats;
  stats_of(fx, &stats);
  expect_consistent(&stats);
  assert_int_equal(stats.pending, 0);
  for (int ms = 0; atomic_load(&s->submitters_done) < STRESS_THREADS; ++ms) {
    if (ms > 30000)
      fail_msg("the submitters did not see the stop in 30 s");
    sleep_ms(1);
  }
  cgr_batcher_destroy(fx->batcher);
  fx->batcher = NULL;
  atomic_store(&s->destroyed, 1);
  for (uint32_t i = 0; i < STRESS_THREADS; ++i)
    pthread_join(submitters[i].thread, NULL);
}

static void
test_batcher_handles_released_at_random_end_each_request_once(void **state) {
  (void)cgr_test_runtime(state);
  stress *s = calloc(1, sizeof *s);
  assert_non_null(s);
  fixture_open(&s->fx, buckets, BUCKETS, 0, STRESS_MAX);
  s->fx.build_failure = CGR_E_INTERNAL; /* the batch of a marked one fails */
  s->fates = calloc(STRESS_MAX, sizeof *s->fates);
  assert_non_null(s->fates);
  uint64_t seed = cgr_clock_us() | 1;
  printf("seed %llu\n", (unsigned long long)seed);
  uint32_t rounds = stress_rounds();
  for (uint32_t round = 0; round < rounds; ++round) {
    stress_round(s, &seed);
    expect_no_problems(&s->fx);
  }

  uint32_t n = atomic_load(&s->next_index);
  if (n > STRESS_MAX)
    n = STRESS_MAX;
  uint64_t accepted = 0, taken = 0, abandoned = 0, finished = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const fate *f = &s->fates[i];
    unsigned ends = atomic_load(&f->taken) + atomic_load(&f->abandoned);
    if (atomic_load(&f->accepted)) {
      if (ends != 1)
        fail_msg("request %u ended %u times (taken %u, abandoned %u), not "
                 "once",
                 i, ends, atomic_load(&f->taken), atomic_load(&f->abandoned));
      if (atomic_load(&f->finished) > 1)
        fail_msg("request %u was finished %u times", i,
                 atomic_load(&f->finished));
    } else if (ends != 0 || atomic_load(&f->finished) != 0) {
      fail_msg("request %u was refused but ended %u times", i, ends);
    }
    accepted += atomic_load(&f->accepted);
    taken += atomic_load(&f->taken);
    abandoned += atomic_load(&f->abandoned);
    finished += atomic_load(&f->finished);
  }
  /* Every request and every result was freed by whoever ended it. */
  if (atomic_load(&s->live) != 0)
    fail_msg("%lld requests and results were never freed",
             (long long)atomic_load(&s->live));
  printf("%u rounds: %llu accepted, %llu finished, %llu taken, %llu "
         "abandoned; released %llu before the end, %llu after\n",
         rounds, (unsigned long long)accepted, (unsigned long long)finished,
         (unsigned long long)taken, (unsigned long long)abandoned,
         (unsigned long long)atomic_load(&s->releases_before_end),
         (unsigned long long)atomic_load(&s->releases_after_end));
  assert_true(taken > 0 && abandoned > 0);
  expect_no_problems(&s->fx);
  fixture_close(&s->fx);
  free(s->fates);
  free(s);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(
        test_batcher_release_after_the_end_abandons_what_was_not_taken),
    RUNTIME_TEST(test_batcher_handles_released_at_random_end_each_request_once),
};

CGR_TEST_MAIN(tests)
