/* The fault sweep: for every kind of backend call and every call of that
 * kind that an operation makes (capture, a replay in each mode, a batcher's
 * life, lanes), failing exactly that call gives a clear status, leaks
 * nothing (the asan preset), and leaves the runtime usable: the same
 * operation, run again without a fault, succeeds and computes the right
 * outputs. The sweep counts the calls itself (it arms call 1, 2, 3, ...
 * until the fault no longer fires), so a new call site is covered without
 * editing this file. Host backend: fault injection is process-wide and
 * only the host backend's behavior after a failed call is defined here. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "runtime/fault.h"

static const uint32_t buckets[] = {1, 2, 4, 8};
enum { BUCKETS = 4, STEP_ROWS = 3, SWEEP_LIMIT = 2000 };

/* One operation under test: `run` is what the sweep fails call by call;
 * `setup` and `teardown` run unarmed around it. */
typedef struct operation {
  const char *name;
  void (*setup)(void *ctx);
  cgr_status (*run)(void *ctx);
  void (*check_usable)(void *ctx); /* after a failure: run works again */
  void (*teardown)(void *ctx);
} operation;

/* Fails each call of each kind that `op` makes, one at a time. Returns the
 * number of faults that fired. */
static unsigned sweep(const operation *op, void *ctx) {
  unsigned fired_total = 0;
  for (int call = 0; call < CGR__CALL_COUNT; ++call) {
    /* A device fault loses the device for good: nothing is usable after
     * it by design (tests/device_lost.c). */
    if (call == CGR__CALL_DEVICE_FAULT)
      continue;
    for (uint64_t nth = 1;; ++nth) {
      op->setup(ctx);
      cgr__fault_arm((cgr__call)call, nth);
      cgr_status status = op->run(ctx);
      int fired = cgr__fault_fired();
      cgr__fault_disarm();
      if (!fired) {
        if (status != CGR_OK)
          fail_msg("%s failed without an injected fault (%s, call %llu of "
                   "%s armed): %s",
                   op->name, cgr_status_name(status), (unsigned long long)nth,
                   cgr__call_name((cgr__call)call), cgr_last_error(NULL));
        op->teardown(ctx);
        break;
      }
      fired_total++;
      /* A failed call is never absorbed silently. */
      if (status == CGR_OK)
        fail_msg("%s succeeded although call %llu of %s failed", op->name,
                 (unsigned long long)nth, cgr__call_name((cgr__call)call));
      op->check_usable(ctx);
      op->teardown(ctx);
      if (nth > SWEEP_LIMIT)
        fail_msg("%s: more than %d %s calls: a loop that never ends?", op->name,
                 SWEEP_LIMIT, cgr__call_name((cgr__call)call));
    }
  }
  printf("%s: %u injected faults, each failed cleanly\n", op->name,
         fired_total);
  return fired_total;
}

/* ---- the model's step, replayed ------------------------------------------ */

typedef struct step_ctx {
  model m;
  cgr_runtime *rt;
  cgr_replay_mode mode;
  int capture_in_run; /* 1: run = capture + a step; 0: run = a step */
  model_inputs in;
  cgr_ticket ticket;
} step_ctx;

/* One step of STEP_ROWS rows from ctx->in; its outputs are checked by the
 * caller. */
static cgr_status one_step(step_ctx *c) {
  cgr_batch *batch = NULL;
  cgr_status status = cgr_batch_begin(c->rt, STEP_ROWS, &batch);
  if (status != CGR_OK)
    return status;
  const model_inputs *in = &c->in;
  struct {
    cgr_slot slot;
    const void *data;
    size_t bytes;
  } inputs[] = {
      {c->m.ids, in->ids, STEP_ROWS * 4},
      {c->m.pos, in->pos, STEP_ROWS * 4},
      {c->m.pages, in->pages, STEP_ROWS * 4 * MODEL_PAGES},
      {c->m.cu_k, in->cu_k, (STEP_ROWS + 1) * 4},
  };
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; ++i) {
    status = cgr_batch_input(batch, inputs[i].slot, CGR_SOURCE_HOST,
                             inputs[i].data, inputs[i].bytes);
    if (status != CGR_OK) {
      cgr_batch_discard(batch);
      return status;
    }
  }
  status = cgr_replay(c->rt, batch, &c->ticket);
  if (status == CGR_OK)
    status = cgr_ticket_wait(c->rt, &c->ticket);
  return status;
}

static void check_step_outputs(step_ctx *c) {
  void *out = NULL, *out_pages = NULL;
  assert_cgr_ok(c->rt, cgr_output(c->rt, &c->ticket, c->m.out, &out));
  assert_cgr_ok(c->rt,
                cgr_output(c->rt, &c->ticket, c->m.out_pages, &out_pages));
  model_check_outputs(c->rt, out, out_pages, &c->in, c->ticket.padded_batch,
                      STEP_ROWS, NULL);
}

static void step_setup(void *ctx) {
  step_ctx *c = ctx;
  cgr_replay_mode mode = c->mode;
  int capture_in_run = c->capture_in_run;
  memset(&c->m, 0, sizeof c->m);
  c->rt = capture_in_run ? model_runtime(buckets, BUCKETS, 1, &c->m)
                         : model_captured_runtime(buckets, BUCKETS, 1, &c->m);
  assert_cgr_ok(c->rt, cgr_set_replay_mode(c->rt, mode));
  model_make_inputs(&c->in, STEP_ROWS, STEP_ROWS, 7);
  if (!capture_in_run) {
    /* A step before the armed one: the sets and staging are warm, as in
     * a serving loop. */
    assert_cgr_ok(c->rt, one_step(c));
    model_make_inputs(&c->in, STEP_ROWS, STEP_ROWS, 8);
  }
}

static cgr_status step_run(void *ctx) {
  step_ctx *c = ctx;
  if (c->capture_in_run) {
    cgr_status status = cgr_capture(c->rt, model_step, &c->m);
    if (status != CGR_OK)
      return status;
  }
  return one_step(c);
}

static void step_check_usable(void *ctx) {
  step_ctx *c = ctx;
  /* A failed capture destroyed what it built: capture again. */
  cgr_capture_stats stats;
  assert_cgr_ok(c->rt, cgr_capture_stats_get(c->rt, &stats));
  if (stats.buckets_captured == 0)
    assert_cgr_ok(c->rt, cgr_capture(c->rt, model_step, &c->m));
  model_make_inputs(&c->in, STEP_ROWS, STEP_ROWS, 9);
  assert_cgr_ok(c->rt, one_step(c));
  check_step_outputs(c);
}

static void step_teardown(void *ctx) {
  step_ctx *c = ctx;
  cgr_runtime_destroy(c->rt);
  c->rt = NULL;
}

static void sweep_steps(cgr_replay_mode mode, int capture_in_run) {
  cgr_test_require_host();
  step_ctx c;
  memset(&c, 0, sizeof c);
  c.mode = mode;
  c.capture_in_run = capture_in_run;
  operation op = {capture_in_run ? "capture and a step" : "a step", step_setup,
                  step_run, step_check_usable, step_teardown};
  unsigned fired = sweep(&op, &c);
  assert_true(fired > 0); /* the sweep reached call sites */
}

static void test_every_fault_in_capture_leaves_it_usable(void **state) {
  (void)cgr_test_runtime(state);
  sweep_steps(CGR_REPLAY_DOUBLE_BUFFERED, 1);
}

static void test_every_fault_in_a_naive_step_leaves_it_usable(void **state) {
  (void)cgr_test_runtime(state);
  sweep_steps(CGR_REPLAY_NAIVE, 0);
}

static void test_every_fault_in_a_fused_step_leaves_it_usable(void **state) {
  (void)cgr_test_runtime(state);
  sweep_steps(CGR_REPLAY_FUSED, 0);
}

static void
test_every_fault_in_a_double_buffered_step_leaves_it_usable(void **state) {
  (void)cgr_test_runtime(state);
  sweep_steps(CGR_REPLAY_DOUBLE_BUFFERED, 0);
}

static void
test_every_fault_in_an_in_graph_step_leaves_it_usable(void **state) {
  (void)cgr_test_runtime(state);
  sweep_steps(CGR_REPLAY_IN_GRAPH, 0);
}

static void test_every_fault_in_an_eager_step_leaves_it_usable(void **state) {
  (void)cgr_test_runtime(state);
  sweep_steps(CGR_REPLAY_EAGER, 0);
}

/* ---- a batcher's life ------------------------------------------------------
 */

enum { BATCHER_REQUESTS = 5 };

typedef struct batcher_ctx {
  step_ctx step; /* its runtime and model */
  cgr__stream *readback;
  int32_t answers[BATCHER_REQUESTS];
  int32_t ids[BATCHER_REQUESTS];
  int32_t rows[BATCHER_REQUESTS]; /* host inputs for build: outlive it */
  int32_t pos[BATCHER_REQUESTS], cu_k[BATCHER_REQUESTS + 1];
  int32_t pages[BATCHER_REQUESTS * MODEL_PAGES];
  int32_t got[BATCHER_REQUESTS]; /* finish's read-back */
  atomic_int ended;
} batcher_ctx;

typedef struct request {
  batcher_ctx *c;
  int index;
} request;

static cgr_status batcher_build(void *user, cgr_batch *batch,
                                void *const *requests, uint32_t count) {
  batcher_ctx *c = user;
  c->cu_k[0] = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const request *r = requests[i];
    c->rows[i] = c->ids[r->index];
    c->pos[i] = 10 * r->index;
    c->cu_k[i + 1] = c->cu_k[i] + 1;
    for (int p = 0; p < MODEL_PAGES; ++p)
      c->pages[i * MODEL_PAGES + p] = p;
  }
  const model *m = &c->step.m;
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
  CGR__CHECK(cgr_output(rt, ticket, c->step.m.out, &out));
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

static void batcher_setup(void *ctx) {
  batcher_ctx *c = ctx;
  c->step.capture_in_run = 0;
  c->step.mode = CGR_REPLAY_DOUBLE_BUFFERED;
  memset(&c->step.m, 0, sizeof c->step.m);
  c->step.rt = model_captured_runtime(buckets, BUCKETS, 1, &c->step.m);
  assert_cgr_ok(c->step.rt,
                cgr__be_stream_create(TEST_BE(c->step.rt), CGR_PRIORITY_NORMAL,
                                      "readback", &c->readback));
  for (int i = 0; i < BATCHER_REQUESTS; ++i)
    c->ids[i] = 1000 + i;
}

/* Creates a batcher, submits every request, waits for each, stops and
 * destroys it. Every accepted request must end exactly once; the status is
 * the first failure met (create, submit, or a request's end). */
static cgr_status batcher_life(batcher_ctx *c, int expect_all_ok) {
  cgr_batcher_config config;
  cgr_batcher_config_init(&config);
  config.build = batcher_build;
  config.finish = batcher_finish;
  config.user = c;
  config.max_wait_us = 200;
  config.min_wait_us = 50;
  cgr_batcher *b = NULL;
  cgr_status status = cgr_batcher_create(c->step.rt, &config, &b);
  if (status != CGR_OK)
    return status;
  request requests[BATCHER_REQUESTS];
  cgr_handle *handles[BATCHER_REQUESTS] = {0};
  for (int i = 0; i < BATCHER_REQUESTS; ++i) {
    requests[i] = (request){c, i};
    c->answers[i] = INT32_MIN;
    cgr_status s = cgr_batcher_submit(b, &requests[i], 0, &handles[i]);
    if (s != CGR_OK && status == CGR_OK)
      status = s;
  }
  for (int i = 0; i < BATCHER_REQUESTS; ++i) {
    if (handles[i] == NULL)
      continue;
    assert_int_equal(cgr_handle_wait(handles[i], 30000000), CGR_OK);
    void *result = NULL;
    cgr_status s = cgr_handle_result(handles[i], &result);
    if (s == CGR_OK) {
      assert_ptr_equal(result, &c->answers[i]);
      assert_int_equal(c->answers[i], c->ids[i] + 10 * i);
    } else if (status == CGR_OK) {
      status = s;
    }
    cgr_handle_release(handles[i]);
  }
  assert_cgr_ok(c->step.rt, cgr_batcher_stop(b, CGR_BATCHER_DRAIN));
  cgr_batcher_destroy(b);
  if (expect_all_ok)
    assert_cgr_ok(c->step.rt, status);
  return status;
}

static cgr_status batcher_run(void *ctx) { return batcher_life(ctx, 0); }

static void batcher_check_usable(void *ctx) {
  batcher_ctx *c = ctx;
  (void)batcher_life(c, 1);
}

static void batcher_teardown(void *ctx) {
  batcher_ctx *c = ctx;
  cgr__be_stream_destroy(TEST_BE(c->step.rt), c->readback);
  cgr_runtime_destroy(c->step.rt);
  c->step.rt = NULL;
}

static void test_every_fault_in_a_batchers_life_leaves_it_usable(void **state) {
  (void)cgr_test_runtime(state);
  cgr_test_require_host();
  batcher_ctx c;
  memset(&c, 0, sizeof c);
  operation op = {"a batcher's life", batcher_setup, batcher_run,
                  batcher_check_usable, batcher_teardown};
  assert_true(sweep(&op, &c) > 0);
}

/* ---- lanes ------------------------------------------------------------------
 */

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
  runtime.buckets = buckets;
  runtime.bucket_count = BUCKETS;
  cgr_lanes_config config;
  cgr_lanes_config_init(&config);
  config.runtime = &runtime;
  config.setup = lane_setup;
  config.teardown = lane_teardown;
  config.step = model_step;
  config.user = c;
  cgr_status status = cgr_lanes_create(&config, &c->lanes);
  if (status != CGR_OK)
    return status;
  model_make_inputs(&c->in, STEP_ROWS, STEP_ROWS, 11);
  const model_inputs in = c->in;
  cgr_batch *batches[2] = {NULL, NULL};
  for (uint32_t lane = 0; lane < 2 && status == CGR_OK; ++lane) {
    cgr_runtime *rt = cgr_lanes_runtime(c->lanes, lane);
    const model *m = cgr_lanes_user(c->lanes, lane);
    status = cgr_batch_begin(rt, STEP_ROWS, &batches[lane]);
    if (status == CGR_OK)
      status = cgr_batch_input(batches[lane], m->ids, CGR_SOURCE_HOST, in.ids,
                               STEP_ROWS * 4);
    if (status == CGR_OK)
      status = cgr_batch_input(batches[lane], m->pos, CGR_SOURCE_HOST, in.pos,
                               STEP_ROWS * 4);
    if (status == CGR_OK)
      status = cgr_batch_input(batches[lane], m->pages, CGR_SOURCE_HOST,
                               in.pages, STEP_ROWS * 4 * MODEL_PAGES);
    if (status == CGR_OK)
      status = cgr_batch_input(batches[lane], m->cu_k, CGR_SOURCE_HOST, in.cu_k,
                               (STEP_ROWS + 1) * 4);
  }
  if (status != CGR_OK) {
    cgr_batch_discard(batches[0]);
    cgr_batch_discard(batches[1]);
    return status;
  }
  return cgr_lanes_replay(c->lanes, batches, c->tickets, 1);
}

/* Unarmed: both lanes computed the step. */
static void lanes_check_outputs(lanes_ctx *c) {
  const cgr_ticket *tickets = c->tickets;
  const model_inputs in = c->in;
  for (uint32_t lane = 0; lane < 2; ++lane) {
    cgr_runtime *rt = cgr_lanes_runtime(c->lanes, lane);
    const model *m = cgr_lanes_user(c->lanes, lane);
    void *out = NULL, *out_pages = NULL;
    assert_cgr_ok(rt, cgr_output(rt, &tickets[lane], m->out, &out));
    assert_cgr_ok(rt, cgr_output(rt, &tickets[lane], m->out_pages, &out_pages));
    model_check_outputs(rt, out, out_pages, &in, tickets[lane].padded_batch,
                        STEP_ROWS, NULL);
  }
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
  if (c->lanes != NULL) {
    cgr_lanes_destroy(c->lanes);
    c->lanes = NULL;
  }
  assert_int_equal(c->setups, c->teardowns);
  assert_cgr_ok(NULL, lanes_run(c));
  lanes_check_outputs(c);
}

static void test_every_fault_in_lanes_leaves_them_usable(void **state) {
  (void)cgr_test_runtime(state);
  cgr_test_require_host();
  lanes_ctx c;
  memset(&c, 0, sizeof c);
  operation op = {"two lanes and a step", lanes_setup, lanes_run,
                  lanes_check_usable, lanes_teardown};
  assert_true(sweep(&op, &c) > 0);
}

static const struct CMUnitTest tests[] = {
    HOST_RUNTIME_TEST(test_every_fault_in_capture_leaves_it_usable),
    HOST_RUNTIME_TEST(test_every_fault_in_a_naive_step_leaves_it_usable),
    HOST_RUNTIME_TEST(test_every_fault_in_a_fused_step_leaves_it_usable),
    HOST_RUNTIME_TEST(
        test_every_fault_in_a_double_buffered_step_leaves_it_usable),
    HOST_RUNTIME_TEST(test_every_fault_in_an_in_graph_step_leaves_it_usable),
    HOST_RUNTIME_TEST(test_every_fault_in_an_eager_step_leaves_it_usable),
    HOST_RUNTIME_TEST(test_every_fault_in_a_batchers_life_leaves_it_usable),
    HOST_RUNTIME_TEST(test_every_fault_in_lanes_leaves_them_usable),
};

CGR_TEST_MAIN(tests)
