/* The fault sweep where threads meet (tests/fault_sweep_engine.h has the
 * method): a batcher's life, a batcher stopped (drained or cancelled)
 * with requests queued and handles released early (abandoned), and two
 * lanes. Every accepted request ends exactly once and nothing leaks,
 * whatever failed; and a plan that names a site faults the same call in
 * every run although the engine thread's calls interleave with the
 * caller's. Host backend only. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_sweep_engine.h"

/* ---- a batcher's life ---------------------------------------------------- */

enum { REQUESTS = 5 };

typedef struct batcher_ctx {
  model m;
  cgr_runtime *rt;
  cgr__stream *readback;
  cgr_batcher_stop_mode stop_mode;
  int32_t answers[REQUESTS];
  int32_t ids[REQUESTS];
  int32_t rows[REQUESTS]; /* host inputs for build: outlive it */
  int32_t pos[REQUESTS], cu_k[REQUESTS + 1];
  int32_t pages[REQUESTS * MODEL_PAGES];
  int32_t got[REQUESTS]; /* finish's read-back */
  atomic_int ends;       /* requests ended: taken or abandoned */
  atomic_int wrong;      /* results that were not the right answer */
  atomic_int failure;    /* the first failed end (not a cancel) */
  /* Stopping: the engine holds its third batch until the stop comes, so
   * that requests are still queued when it does; the stop comes once a
   * request has ended (the engine builds one step ahead of the one it
   * finishes, so the first has ended by the third build). */
  test_gate hold, first_end;
  int holding;
  int builds;
  /* Over the whole sweep: what the stopping paths reached. */
  atomic_int abandoned, cancelled;
} batcher_ctx;

typedef struct request {
  batcher_ctx *c;
  int index;
} request;

static cgr_status batcher_build(void *user, cgr_batch *batch,
                                void *const *requests, uint32_t count) {
  batcher_ctx *c = user;
  if (c->holding && ++c->builds == 3)
    (void)test_gate_wait(&c->hold, 10000);
  c->cu_k[0] = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const request *r = requests[i];
    c->rows[i] = c->ids[r->index];
    c->pos[i] = 10 * r->index;
    c->cu_k[i + 1] = c->cu_k[i] + 1;
    for (int p = 0; p < MODEL_PAGES; ++p)
      c->pages[i * MODEL_PAGES + p] = p;
  }
  const model *m = &c->m;
  cgr_status status =
      cgr_batch_input(batch, m->ids, CGR_SOURCE_HOST, c->rows, count * 4);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, m->pos, CGR_SOURCE_HOST, c->pos, count * 4);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, m->pages, CGR_SOURCE_HOST, c->pages,
                             count * 4 * MODEL_PAGES);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, m->cu_k, CGR_SOURCE_HOST, c->cu_k,
                             (count + 1) * 4);
  return status;
}

static cgr_status batcher_finish(void *user, cgr_runtime *rt,
                                 const cgr_ticket *ticket,
                                 void *const *requests, uint32_t count,
                                 void **results) {
  batcher_ctx *c = user;
  void *out = NULL;
  CGR__CHECK(cgr_output(rt, ticket, c->m.out, &out));
  int32_t *got = c->got;
  CGR__CHECK(
      cgr__be_memcpy_async(TEST_BE(rt), c->readback, got, out, count * 4));
  cgr_status status = cgr__be_stream_synchronize(TEST_BE(rt), c->readback);
  if (status != CGR_OK) {
    /* The copy may still be queued: let it land before its destination
     * is reused. */
    cgr__be_stream_drain(TEST_BE(rt), c->readback);
    return status;
  }
  for (uint32_t i = 0; i < count; ++i) {
    const request *r = requests[i];
    /* out = ids + pos + cu_k[i + 1] + cu_q[i] + bias[i] (tests/model.h) */
    c->answers[r->index] = got[i] - (int32_t)(i + 1) - (int32_t)i -
                           (int32_t)(ticket->padded_batch * 100 + i);
    results[i] = &c->answers[r->index];
  }
  return CGR_OK;
}

/* One request's end, taken or abandoned (on any thread, so it counts
 * rather than asserts): a result must be right, and a failure other than a
 * cancel is remembered. */
static void request_ended(batcher_ctx *c, const request *r, cgr_status status,
                          void *result) {
  atomic_fetch_add(&c->ends, 1);
  test_gate_open(&c->first_end);
  if (status == CGR_E_CANCELLED)
    atomic_fetch_add(&c->cancelled, 1);
  if (status == CGR_OK) {
    if (result != &c->answers[r->index] ||
        c->answers[r->index] != c->ids[r->index] + 10 * r->index)
      atomic_fetch_add(&c->wrong, 1);
  } else if (status != CGR_E_CANCELLED) {
    int none = CGR_OK;
    atomic_compare_exchange_strong(&c->failure, &none, (int)status);
  }
}

static void batcher_abandon(void *user, void *request_ptr, cgr_status status,
                            void *result) {
  request *r = request_ptr;
  batcher_ctx *c = user;
  atomic_fetch_add(&c->abandoned, 1);
  request_ended(c, r, status, result);
  free(r);
}

static void batcher_setup(void *ctx) {
  batcher_ctx *c = ctx;
  memset(&c->m, 0, sizeof c->m);
  c->rt = model_captured_runtime(sweep_buckets, SWEEP_BUCKETS, 1, &c->m);
  assert_cgr_ok(c->rt,
                cgr__be_stream_create(TEST_BE(c->rt), CGR_PRIORITY_NORMAL,
                                      "readback", &c->readback));
  for (int i = 0; i < REQUESTS; ++i)
    c->ids[i] = 1000 + i;
}

static cgr_status batcher_create(batcher_ctx *c, cgr_batcher **out) {
  cgr_batcher_config config;
  cgr_batcher_config_init(&config);
  config.build = batcher_build;
  config.finish = batcher_finish;
  config.abandon = batcher_abandon;
  config.user = c;
  config.max_wait_us = 200;
  config.min_wait_us = 50;
  /* Stopping: one request per batch, so the queue holds some. */
  config.max_batch = c->holding ? 1 : 0;
  return cgr_batcher_create(c->rt, &config, out);
}

/* Waits until a request has ended: an abandoned one (the callback opens
 * first_end) or one whose handle is kept. */
static int first_request_ended(batcher_ctx *c, cgr_handle *const *handles) {
  for (uint64_t began = cgr_clock_us(); cgr_clock_us() - began < 10000000;) {
    for (int i = 0; i < REQUESTS; ++i)
      if (handles[i] != NULL && cgr_handle_poll(handles[i]) == CGR_OK)
        return 1;
    if (test_gate_wait(&c->first_end, 1))
      return 1;
  }
  return 0;
}

/*
 * Submits every request. `stopping`: one request per batch; releases the
 * handles of requests 1 and 3 at once (abandoned: they end in the abandon
 * callback), and stops in c->stop_mode while the engine holds its third
 * batch and the rest are queued; otherwise drains. Every
 * accepted request must end exactly once; the status is the first failure
 * met (create, submit, stop, or a request's end other than a cancel).
 */
static cgr_status batcher_life(batcher_ctx *c, int stopping) {
  atomic_store(&c->ends, 0);
  atomic_store(&c->wrong, 0);
  atomic_store(&c->failure, CGR_OK);
  c->holding = stopping;
  c->builds = 0;
  test_gate_init(&c->hold);
  test_gate_init(&c->first_end);
  cgr_batcher *b = NULL;
  cgr_status created = batcher_create(c, &b);
  if (created != CGR_OK) {
    test_gate_fini(&c->first_end);
    test_gate_fini(&c->hold);
    return created;
  }
  cgr_status status = CGR_OK;
  cgr_handle *handles[REQUESTS] = {0};
  request *requests[REQUESTS] = {0};
  int accepted = 0;
  for (int i = 0; i < REQUESTS; ++i) {
    requests[i] = malloc(sizeof *requests[i]);
    assert_non_null(requests[i]);
    *requests[i] = (request){c, i};
    c->answers[i] = INT32_MIN;
    cgr_status s = cgr_batcher_submit(b, requests[i], 0, &handles[i]);
    if (s != CGR_OK) {
      free(requests[i]);
      requests[i] = NULL;
      if (status == CGR_OK)
        status = s;
      continue;
    }
    accepted++;
    if (stopping && (i == 1 || i == 3)) {
      cgr_handle_release(handles[i]);
      handles[i] = NULL;
    }
  }
  if (stopping && accepted >= 3 && !first_request_ended(c, handles))
    fail_msg("no request ended before the engine's third batch");
  /* The engine finishes its third step while the stop begins. */
  test_gate_open(&c->hold);
  cgr_status stop =
      cgr_batcher_stop(b, stopping ? c->stop_mode : CGR_BATCHER_DRAIN);
  if (stop != CGR_OK && status == CGR_OK)
    status = stop;
  for (int i = 0; i < REQUESTS; ++i) {
    if (handles[i] == NULL)
      continue;
    /* Stopped: every accepted request has ended. */
    assert_int_equal(cgr_handle_poll(handles[i]), CGR_OK);
    void *result = NULL;
    cgr_status s = cgr_handle_result(handles[i], &result);
    request_ended(c, requests[i], s, result);
    free(requests[i]);
    cgr_handle_release(handles[i]);
  }
  cgr_batcher_destroy(b);
  test_gate_fini(&c->first_end);
  test_gate_fini(&c->hold);
  c->holding = 0;
  assert_int_equal(atomic_load(&c->ends), accepted);
  assert_int_equal(atomic_load(&c->wrong), 0);
  if (status == CGR_OK)
    status = (cgr_status)atomic_load(&c->failure);
  return status;
}

static cgr_status batcher_run(void *ctx) { return batcher_life(ctx, 0); }

static cgr_status batcher_stop_run(void *ctx) { return batcher_life(ctx, 1); }

static void batcher_check_usable(void *ctx) {
  batcher_ctx *c = ctx;
  assert_cgr_ok(c->rt, batcher_life(c, 0));
}

static void batcher_check_lost(void *ctx) {
  batcher_ctx *c = ctx;
  sweep_check_runtime_lost(c->rt);
}

static void batcher_teardown(void *ctx) {
  batcher_ctx *c = ctx;
  cgr__be_stream_destroy(TEST_BE(c->rt), c->readback);
  c->readback = NULL;
  cgr_runtime_destroy(c->rt);
  c->rt = NULL;
}

static void sweep_batcher(const char *name, cgr_status (*run)(void *),
                          cgr_batcher_stop_mode stop_mode) {
  cgr_test_require_host();
  static batcher_ctx c;
  memset(&c, 0, sizeof c);
  c.stop_mode = stop_mode;
  sweep_operation op = {name,
                        batcher_setup,
                        run,
                        batcher_check_usable,
                        batcher_check_lost,
                        batcher_teardown};
  sweep_result result = sweep(&op, &c, SWEEP_ALL);
  assert_true(result.faults[CGR__FAULT_NOW] > 0);
  assert_true(result.raised > 0);
  assert_true(result.faults[CGR__FAULT_DEFERRED] > 0);
  if (run == batcher_stop_run) {
    printf("%s: %d requests abandoned, %d cancelled\n", name,
           atomic_load(&c.abandoned), atomic_load(&c.cancelled));
    assert_true(atomic_load(&c.abandoned) > 0);
    if (stop_mode == CGR_BATCHER_CANCEL)
      assert_true(atomic_load(&c.cancelled) > 0);
  }
}

static void test_every_fault_in_a_batchers_life_leaves_it_usable(void **state) {
  (void)state;
  sweep_batcher("a batcher's life", batcher_run, CGR_BATCHER_DRAIN);
}

static void
test_every_fault_in_a_drained_batcher_with_abandoned_requests_ends_each_once(
    void **state) {
  (void)state;
  sweep_batcher("a batcher drained with abandoned requests", batcher_stop_run,
                CGR_BATCHER_DRAIN);
}

static void
test_every_fault_in_a_cancelled_batcher_with_abandoned_requests_ends_each_once(
    void **state) {
  (void)state;
  sweep_batcher("a batcher cancelled with abandoned requests", batcher_stop_run,
                CGR_BATCHER_CANCEL);
}

/* A site plan strikes the same call (the same line of the same function,
 * the same hit of the site) in every run, although the engine thread's
 * calls interleave with the caller's differently each time. */
static void test_a_site_plan_faults_the_same_call_in_every_run(void **state) {
  (void)state;
  cgr_test_require_host();
  static batcher_ctx c;
  memset(&c, 0, sizeof c);
  static cgr__fault_site_hits sites[CGR__FAULT_MAX_SITES];
  batcher_setup(&c);
  assert_true(cgr__fault_arm_plans(NULL, 0));
  assert_cgr_ok(c.rt, batcher_life(&c, 0));
  size_t count = cgr__fault_sites(sites, CGR__FAULT_MAX_SITES);
  cgr__fault_disarm();
  batcher_teardown(&c);
  assert_true(count > 10);
  for (size_t i = 0; i < count; ++i) {
    if (sites[i].call == CGR__CALL_DEVICE_FAULT)
      continue;
    cgr__fault_at first = {0};
    for (int run = 0; run < 3; ++run) {
      cgr__fault_plan plan = {.call = sites[i].call,
                              .site = sites[i].func,
                              .nth = 1};
      batcher_setup(&c);
      assert_true(cgr__fault_arm_plans(&plan, 1));
      (void)batcher_life(&c, 0);
      cgr__fault_at at;
      int fired = cgr__fault_last(&at);
      cgr__fault_disarm();
      batcher_teardown(&c);
      assert_true(fired);
      if (run == 0) {
        first = at;
      } else if (at.site.line != first.site.line || at.hit != first.hit ||
                 strcmp(at.site.file, first.site.file) != 0) {
        fail_msg("%s at %s: run 1 faulted line %d (call #%llu), run %d line "
                 "%d (call #%llu)",
                 cgr__call_name(sites[i].call), sites[i].func, first.site.line,
                 (unsigned long long)first.hit, run + 1, at.site.line,
                 (unsigned long long)at.hit);
      }
    }
  }
}

/* ---- lanes --------------------------------------------------------------- */

typedef struct lanes_ctx {
  cgr_lanes *lanes;
  int setups, teardowns;
  model_inputs in;
  cgr_ticket tickets[2];
} lanes_ctx;

static cgr_status lane_setup(void *user, cgr_runtime *rt, uint32_t lane,
                             void **lane_user) {
  (void)lane;
  lanes_ctx *c = user;
  model *m = calloc(1, sizeof *m);
  if (m == NULL)
    return CGR_E_OUT_OF_MEMORY;
  cgr_status status = model_try_declare(rt, m);
  if (status != CGR_OK) {
    free(m);
    return status;
  }
  c->setups++;
  *lane_user = m;
  return CGR_OK;
}

static void lane_teardown(void *user, uint32_t lane, void *lane_user) {
  (void)lane;
  lanes_ctx *c = user;
  c->teardowns++;
  free(lane_user);
}

static void lanes_setup(void *ctx) {
  lanes_ctx *c = ctx;
  c->lanes = NULL;
  c->setups = c->teardowns = 0;
}

/* Creates two lanes and replays a step on both. */
static cgr_status lanes_run(void *ctx) {
  lanes_ctx *c = ctx;
  cgr_config runtime;
  cgr_test_config(&runtime);
  runtime.buckets = sweep_buckets;
  runtime.bucket_count = SWEEP_BUCKETS;
  cgr_lanes_config config;
  cgr_lanes_config_init(&config);
  config.runtime = &runtime;
  config.setup = lane_setup;
  config.teardown = lane_teardown;
  config.step = model_step;
  config.user = c;
  CGR__CHECK(cgr_lanes_create(&config, &c->lanes));
  model_make_inputs(&c->in, SWEEP_ROWS, SWEEP_ROWS, 11);
  const model_inputs *in = &c->in;
  cgr_batch *batches[2] = {NULL, NULL};
  cgr_status status = CGR_OK;
  for (uint32_t lane = 0; lane < 2 && status == CGR_OK; ++lane) {
    cgr_runtime *rt = cgr_lanes_runtime(c->lanes, lane);
    const model *m = cgr_lanes_user(c->lanes, lane);
    status = cgr_batch_begin(rt, SWEEP_ROWS, &batches[lane]);
    if (status == CGR_OK)
      status = cgr_batch_input(batches[lane], m->ids, CGR_SOURCE_HOST, in->ids,
                               SWEEP_ROWS * 4);
    if (status == CGR_OK)
      status = cgr_batch_input(batches[lane], m->pos, CGR_SOURCE_HOST, in->pos,
                               SWEEP_ROWS * 4);
    if (status == CGR_OK)
      status = cgr_batch_input(batches[lane], m->pages, CGR_SOURCE_HOST,
                               in->pages, SWEEP_ROWS * 4 * MODEL_PAGES);
    if (status == CGR_OK)
      status = cgr_batch_input(batches[lane], m->cu_k, CGR_SOURCE_HOST,
                               in->cu_k, (SWEEP_ROWS + 1) * 4);
  }
  if (status != CGR_OK) {
    cgr_batch_discard(batches[0]);
    cgr_batch_discard(batches[1]);
    return status;
  }
  CGR__CHECK(cgr_lanes_replay(c->lanes, batches, c->tickets, 1));
  for (uint32_t lane = 0; lane < 2; ++lane)
    CGR__CHECK(
        cgr_ticket_wait(cgr_lanes_runtime(c->lanes, lane), &c->tickets[lane]));
  return CGR_OK;
}

static void lanes_teardown(void *ctx) {
  lanes_ctx *c = ctx;
  cgr_lanes_destroy(c->lanes);
  c->lanes = NULL;
  /* Every lane that was set up was torn down, by create's cleanup or by
   * destroy. */
  assert_int_equal(c->setups, c->teardowns);
}

static void lanes_check_usable(void *ctx) {
  lanes_ctx *c = ctx;
  /* A failed create left nothing; a failed replay left lanes that work. */
  lanes_teardown(c);
  assert_cgr_ok(NULL, lanes_run(c));
  for (uint32_t lane = 0; lane < 2; ++lane)
    sweep_check_step(cgr_lanes_runtime(c->lanes, lane),
                     cgr_lanes_user(c->lanes, lane), &c->in, &c->tickets[lane]);
}

static void lanes_check_lost(void *ctx) {
  lanes_ctx *c = ctx;
  /* A create that failed destroyed its runtimes: nothing is left. */
  if (c->lanes == NULL)
    return;
  for (uint32_t lane = 0; lane < 2; ++lane)
    sweep_check_runtime_lost(cgr_lanes_runtime(c->lanes, lane));
}

static void test_every_fault_in_lanes_leaves_them_usable(void **state) {
  (void)state;
  cgr_test_require_host();
  static lanes_ctx c;
  memset(&c, 0, sizeof c);
  sweep_operation op = {
      "two lanes and a step", lanes_setup,      lanes_run,
      lanes_check_usable,     lanes_check_lost, lanes_teardown};
  sweep_result result = sweep(&op, &c, SWEEP_ALL);
  assert_true(result.faults[CGR__FAULT_NOW] > 0);
  assert_true(result.raised > 0);
  assert_true(result.faults[CGR__FAULT_DEFERRED] > 0);
}

static const struct CMUnitTest tests[] = {
    HOST_TEST(test_every_fault_in_a_batchers_life_leaves_it_usable),
    HOST_TEST(
        test_every_fault_in_a_drained_batcher_with_abandoned_requests_ends_each_once),
    HOST_TEST(
        test_every_fault_in_a_cancelled_batcher_with_abandoned_requests_ends_each_once),
    HOST_TEST(test_a_site_plan_faults_the_same_call_in_every_run),
    HOST_TEST(test_every_fault_in_lanes_leaves_them_usable),
};

CGR_TEST_MAIN(tests)
