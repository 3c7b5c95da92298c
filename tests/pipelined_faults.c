/* CGR_REPLAY_PIPELINED's failure paths (fault injection inside
 * cgr_replay_stage and cgr_replay_ahead): a batch open across a failed
 * launch, tickets of steps whose set a failed launch overwrote, refused
 * `next` batches, failed lazy captures, capture and destroy with a step
 * staged, and a fault sweep of whole pipelined runs. Each test states the
 * contract it checks (cgr.h). Host backend, for the faults. (Written by
 * an independent review; the first three tests failed before their
 * fixes.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/capture.h"
#include "fault_sweep_engine.h"
#include "replay/replay.h"
#include "replay_fixture.h"
#include "runtime/fault.h"

static const uint32_t rbuckets[] = {1, 2, 4, 8};

static void arm(cgr__call call, const char *site, uint64_t nth) {
  cgr__fault_plan plan = {.call = call,
                          .site = site,
                          .nth = nth,
                          .mode = CGR__FAULT_NOW};
  assert_true(cgr__fault_arm_plans(&plan, 1));
}

/* Waits for the ticket and checks its outputs against `in`. */
static void check_ticket(cgr_runtime *rt, const model *m,
                         const model_inputs *in, const cgr_ticket *t) {
  assert_cgr_ok(rt, cgr_ticket_wait(rt, t));
  sweep_check_step(rt, m, in, t);
}

/* ---- 1. a batch open across a failed ahead(NULL) ------------------------ */

/*
 * A batch built while step 1 is staged is checked against it: its
 * feedback continues step 1, its unchanged slot the set step 0 loaded.
 * cgr_replay_ahead(rt, NULL) then fails to launch step 1, which never
 * runs: the batch is closed, and its use says why, instead of staging
 * feedback with nothing to continue (stale ids) or an unchanged slot of a
 * set that may hold anything (an assert in plan_slot). `how` 0: feedback,
 * 1: unchanged.
 */
static void open_batch_across_a_failed_end(int how) {
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, rbuckets, 4, 0, 1);
  model_inputs in[3];
  cgr_ticket t0, t1;
  model_make_inputs(&in[0], 4, 4, 11);
  model_make_inputs(&in[1], 4, 4, 12);
  assert_cgr_ok(rt,
                cgr_replay_stage(rt, model_begin_batch(rt, &m, &in[0], 4, -1)));
  assert_cgr_ok(rt,
                cgr_replay_ahead(rt, model_begin_batch(rt, &m, &in[1], 4, -1),
                                 &t0));
  check_ticket(rt, &m, &in[0], &t0);
  int32_t prev[4] = {0, 1, 2, 3};
  cgr_batch *b2 = NULL;
  if (how == 0) {
    model_make_inputs(&in[2], 4, 4, 13);
    for (uint32_t j = 0; j < 4; ++j)
      in[2].ids[j] = model_expected_out(&in[1], 4, j);
    b2 = model_begin_batch(rt, &m, &in[2], 4, m.ids);
    assert_cgr_ok(rt, cgr_batch_feedback(b2, m.ids, prev, NULL, 0));
  } else {
    in[2] = in[0]; /* step 2 loads set 0, which step 0 loaded */
    b2 = model_begin_batch(rt, &m, &in[2], 4, m.pos);
    assert_cgr_ok(rt, cgr_batch_unchanged(b2, m.pos));
  }
  arm(CGR__CALL_GRAPH_LAUNCH, "launch_staged", 1);
  cgr_status s = cgr_replay_ahead(rt, NULL, &t1);
  cgr__fault_disarm();
  assert_cgr_status(rt, s, CGR_E_CUDA);
  assert_false(cgr_replay_staged(rt));
  assert_cgr_status(rt, cgr_replay_stage(rt, b2), CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "failed to launch");
  /* Built again: the fed slot from the host, every slot given. */
  model_make_inputs(&in[2], 4, 4, 14);
  assert_cgr_ok(rt,
                cgr_replay_stage(rt, model_begin_batch(rt, &m, &in[2], 4, -1)));
  cgr_ticket t2;
  assert_cgr_ok(rt, cgr_replay_ahead(rt, NULL, &t2));
  check_ticket(rt, &m, &in[2], &t2);
  cgr_runtime_destroy(rt);
}

static void test_a_batch_open_across_a_failed_launch_is_closed(void **state) {
  cgr_test_require_host();
  (void)state;
  open_batch_across_a_failed_end(0);
  open_batch_across_a_failed_end(1);
}

/* ---- 2. outputs of step n-2 after a failed launch of step n ------------- */

/*
 * Step 2's graph is launched (on set 0) and the record of its event
 * fails: no ticket 2 is issued, but the graph ran on set 0, so ticket 0's
 * outputs are gone: cgr_output refuses it as expired, in the pipelined
 * mode and in the others (`site`: where the graph's event is recorded).
 */
static void failed_record_expires_the_set(cgr_replay_mode mode,
                                          const char *site, uint64_t nth) {
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, rbuckets, 4, 0, 0);
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, mode));
  model_inputs in[4];
  cgr_ticket t[3];
  for (int i = 0; i < 4; ++i)
    model_make_inputs(&in[i], 4, 4, 31 + (unsigned)i);
  cgr_status s;
  if (mode == CGR_REPLAY_PIPELINED) {
    assert_cgr_ok(rt, cgr_replay_stage(rt, model_begin_batch(rt, &m, &in[0], 4,
                                                             -1)));
    assert_cgr_ok(rt,
                  cgr_replay_ahead(rt, model_begin_batch(rt, &m, &in[1], 4, -1),
                                   &t[0]));
    assert_cgr_ok(rt,
                  cgr_replay_ahead(rt, model_begin_batch(rt, &m, &in[2], 4, -1),
                                   &t[1]));
    check_ticket(rt, &m, &in[0], &t[0]);
    arm(CGR__CALL_EVENT_RECORD, site, nth);
    s = cgr_replay_ahead(rt, model_begin_batch(rt, &m, &in[3], 4, -1), &t[2]);
  } else {
    for (int i = 0; i < 2; ++i)
      assert_cgr_ok(rt, cgr_replay(rt, model_begin_batch(rt, &m, &in[i], 4, -1),
                                   &t[i]));
    check_ticket(rt, &m, &in[0], &t[0]);
    arm(CGR__CALL_EVENT_RECORD, site, nth);
    s = cgr_replay(rt, model_begin_batch(rt, &m, &in[2], 4, -1), &t[2]);
  }
  int fired = cgr__fault_fired();
  cgr__fault_disarm();
  assert_true(fired);
  assert_cgr_status(rt, s, CGR_E_CUDA);
  assert_cgr_ok(rt, cgr_synchronize(rt));
  void *out = NULL;
  assert_cgr_status(rt, cgr_output(rt, &t[0], m.out, &out),
                    CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "expired");
  /* Ticket 1 (the other set) is still step 1's. */
  check_ticket(rt, &m, &in[1], &t[1]);
  cgr_runtime_destroy(rt);
}

static void test_a_failed_record_after_a_launch_expires_its_set(void **state) {
  cgr_test_require_host();
  (void)state;
  failed_record_expires_the_set(CGR_REPLAY_PIPELINED, "launch_staged", 1);
  /* launch(): staging_free, then graph_done after the graph. */
  failed_record_expires_the_set(CGR_REPLAY_FUSED, "launch", 2);
}

/* ---- 3. a failed cgr_replay_stage --------------------------------------- */

/*
 * The stage of step 1 fails at its fused copy, which may have written
 * part of the set: the set holds nothing to continue from, and the same
 * feedback batch is refused with the reason (cgr.h: as after a failed
 * cgr_replay); given from the host, the step runs right.
 */
static void test_a_failed_stage_assumes_the_worst(void **state) {
  cgr_test_require_host();
  (void)state;
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, rbuckets, 4, 0, 1);
  model_inputs in[2];
  cgr_ticket t0, t1;
  model_make_inputs(&in[0], 4, 4, 41);
  assert_cgr_ok(rt,
                cgr_replay_stage(rt, model_begin_batch(rt, &m, &in[0], 4, -1)));
  assert_cgr_ok(rt, cgr_replay_ahead(rt, NULL, &t0));
  check_ticket(rt, &m, &in[0], &t0);
  model_make_inputs(&in[1], 4, 4, 42);
  int32_t prev[4] = {3, 2, 1, 0};
  cgr_batch *b = model_begin_batch(rt, &m, &in[1], 4, m.ids);
  assert_cgr_ok(rt, cgr_batch_feedback(b, m.ids, prev, NULL, 0));
  arm(CGR__CALL_KERNEL_LAUNCH, "cgr__fused_copy_launch", 1);
  cgr_status s = cgr_replay_stage(rt, b);
  cgr__fault_disarm();
  assert_cgr_status(rt, s, CGR_E_CUDA);
  assert_false(cgr_replay_staged(rt));
  b = model_begin_batch(rt, &m, &in[1], 4, m.ids);
  assert_cgr_status(rt, cgr_batch_feedback(b, m.ids, prev, NULL, 0),
                    CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "nothing to continue from");
  assert_cgr_ok(rt, cgr_batch_input(b, m.ids, CGR_SOURCE_HOST, in[1].ids, 16));
  assert_cgr_ok(rt, cgr_replay_stage(rt, b));
  assert_cgr_ok(rt, cgr_replay_ahead(rt, NULL, &t1));
  check_ticket(rt, &m, &in[1], &t1);
  cgr_runtime_destroy(rt);
}

/* ---- 4. a refused next (from the plan), then a corrected one ------------ */

/* A gather index array that is not 4-byte aligned is refused when the
 * plan is made (cgr.h); the staged step stays staged and then launches
 * with a corrected batch, every output right. */
static void test_plan_refusal_keeps_the_staged_step(void **state) {
  cgr_test_require_host();
  (void)state;
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, rbuckets, 4, 0, 0);
  int32_t rows[8];
  for (int i = 0; i < 8; ++i)
    rows[i] = 500 + 3 * i;
  int32_t index[5] = {0, 7, 1, 6, 2};
  void *dev_rows = NULL, *dev_index = NULL, *dev_bad = NULL;
  assert_cgr_ok(rt, cgr_device_alloc(rt, sizeof rows, &dev_rows));
  assert_cgr_ok(rt, cgr_device_alloc(rt, sizeof index, &dev_index));
  assert_cgr_ok(rt, cgr_device_alloc(rt, sizeof index + 8, &dev_bad));
  assert_cgr_ok(rt, cgr_memcpy(rt, dev_rows, rows, sizeof rows));
  assert_cgr_ok(rt, cgr_memcpy(rt, dev_index, index, sizeof index));
  assert_cgr_ok(rt, cgr_memcpy(rt, (char *)dev_bad + 5, index, 16));
  model_inputs in[3];
  cgr_ticket t[3];
  model_make_inputs(&in[0], 3, 3, 51);
  model_make_inputs(&in[1], 4, 4, 52);
  assert_cgr_ok(rt,
                cgr_replay_stage(rt, model_begin_batch(rt, &m, &in[0], 3, -1)));
  assert_cgr_ok(rt,
                cgr_replay_ahead(rt, model_begin_batch(rt, &m, &in[1], 4, -1),
                                 &t[0]));
  /* Step 2: a misaligned gather index. */
  model_make_inputs(&in[2], 4, 4, 53);
  cgr_batch *b = model_begin_batch(rt, &m, &in[2], 4, m.ids);
  assert_cgr_ok(rt, cgr_batch_gather(b, m.ids, dev_rows,
                                     (const int32_t *)((char *)dev_bad + 5)));
  cgr_status s = cgr_replay_ahead(rt, b, &t[1]);
  assert_int_not_equal(s, CGR_OK);
  assert_true(cgr_replay_staged(rt));
  print_message("checking step 0\n");
  check_ticket(rt, &m, &in[0], &t[0]);
  /* Corrected. */
  for (uint32_t j = 0; j < 4; ++j)
    in[2].ids[j] = rows[index[j]];
  b = model_begin_batch(rt, &m, &in[2], 4, m.ids);
  assert_cgr_ok(rt, cgr_batch_gather(b, m.ids, dev_rows, dev_index));
  assert_cgr_ok(rt, cgr_replay_ahead(rt, b, &t[1]));
  assert_int_equal(t[1].step, 1);
  assert_int_equal(t[1].batch_size, 4);
  print_message("checking step 1\n");
  check_ticket(rt, &m, &in[1], &t[1]);
  print_message("checking step 2\n");
  assert_cgr_ok(rt, cgr_replay_ahead(rt, NULL, &t[2]));
  check_ticket(rt, &m, &in[2], &t[2]);
  assert_cgr_ok(rt, cgr_device_free(rt, dev_rows));
  assert_cgr_ok(rt, cgr_device_free(rt, dev_index));
  assert_cgr_ok(rt, cgr_device_free(rt, dev_bad));
  cgr_runtime_destroy(rt);
}

/* ---- 5. a lazy capture that fails inside cgr_replay_ahead -------------- */

static void test_failed_lazy_capture_in_ahead_leaves_it_usable(void **state) {
  cgr_test_require_host();
  (void)state;
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, rbuckets, 4, 1, 1);
  model_inputs in[6];
  cgr_ticket t[6];
  model_make_inputs(&in[0], 2, 2, 61);
  model_make_inputs(&in[1], 3, 3, 62);
  model_make_inputs(&in[2], 7, 7, 63);
  assert_cgr_ok(rt,
                cgr_replay_stage(rt, model_begin_batch(rt, &m, &in[0], 2, -1)));
  assert_cgr_ok(rt,
                cgr_replay_ahead(rt, model_begin_batch(rt, &m, &in[1], 3, -1),
                                 &t[0]));
  /* Step 1 (bucket 4) fails to capture. */
  m.fail_bucket = 4;
  m.fail_set = 1;
  cgr_status s =
      cgr_replay_ahead(rt, model_begin_batch(rt, &m, &in[2], 7, -1), &t[1]);
  assert_int_not_equal(s, CGR_OK);
  assert_false(cgr_replay_staged(rt));
  m.fail_bucket = 0;
  check_ticket(rt, &m, &in[0], &t[0]);
  /* A new run: bucket 4 again, then feedback, then 8. */
  model_make_inputs(&in[3], 3, 3, 64);
  model_make_inputs(&in[4], 3, 3, 65);
  model_make_inputs(&in[5], 8, 8, 66);
  assert_cgr_ok(rt,
                cgr_replay_stage(rt, model_begin_batch(rt, &m, &in[3], 3, -1)));
  int32_t prev[3] = {2, -1, 0};
  int32_t fresh = 777;
  for (uint32_t j = 0; j < 3; ++j)
    in[4].ids[j] =
        prev[j] < 0 ? fresh : model_expected_out(&in[3], 4, (uint32_t)prev[j]);
  cgr_batch *b = model_begin_batch(rt, &m, &in[4], 3, m.ids);
  assert_cgr_ok(rt, cgr_batch_feedback(b, m.ids, prev, &fresh, 4));
  assert_cgr_ok(rt, cgr_replay_ahead(rt, b, &t[3]));
  assert_cgr_ok(rt,
                cgr_replay_ahead(rt, model_begin_batch(rt, &m, &in[5], 8, -1),
                                 &t[4]));
  check_ticket(rt, &m, &in[3], &t[3]);
  assert_cgr_ok(rt, cgr_replay_ahead(rt, NULL, &t[5]));
  check_ticket(rt, &m, &in[4], &t[4]);
  check_ticket(rt, &m, &in[5], &t[5]);
  cgr_runtime_destroy(rt);
}

/* ---- 5b. capture, synchronize and destroy with a step staged ----------- */

/* Lazy capture: cgr_capture_bucket of the staged step's bucket and of
 * another while a step is staged (and the one before it in flight),
 * cgr_synchronize, then the run goes on, right; destroy with a step
 * staged and its carrier graph in flight. */
static void test_capture_and_destroy_with_a_step_staged(void **state) {
  cgr_test_require_host();
  (void)state;
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, rbuckets, 4, 1, 1);
  model_inputs in[4];
  cgr_ticket t[4];
  model_make_inputs(&in[0], 3, 3, 81);
  model_make_inputs(&in[1], 6, 6, 82);
  model_make_inputs(&in[2], 2, 2, 83);
  assert_cgr_ok(rt,
                cgr_replay_stage(rt, model_begin_batch(rt, &m, &in[0], 3, -1)));
  assert_cgr_ok(rt, cgr_capture_bucket(rt, 4));
  assert_cgr_ok(rt,
                cgr_replay_ahead(rt, model_begin_batch(rt, &m, &in[1], 6, -1),
                                 &t[0]));
  assert_cgr_ok(rt, cgr_capture_bucket(rt, 8));
  assert_cgr_ok(rt, cgr_capture_bucket(rt, 1));
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_true(cgr_replay_staged(rt));
  check_ticket(rt, &m, &in[0], &t[0]);
  cgr_key key;
  assert_cgr_ok(rt, cgr_ticket_key(rt, &t[0], &key));
  assert_int_equal(key.padded_batch, 4);
  assert_cgr_ok(rt,
                cgr_replay_ahead(rt, model_begin_batch(rt, &m, &in[2], 2, -1),
                                 &t[1]));
  check_ticket(rt, &m, &in[1], &t[1]);
  model_make_inputs(&in[3], 1, 1, 84);
  assert_cgr_ok(rt,
                cgr_replay_ahead(rt, model_begin_batch(rt, &m, &in[3], 1, -1),
                                 &t[2]));
  /* Ticket 0 expired with ticket 2. */
  void *out = NULL;
  assert_cgr_status(rt, cgr_output(rt, &t[0], m.out, &out),
                    CGR_E_INVALID_STATE);
  assert_cgr_status(rt, cgr_ticket_key(rt, &t[0], &key), CGR_E_INVALID_STATE);
  check_ticket(rt, &m, &in[2], &t[2]);
  cgr_runtime_destroy(rt); /* step 3 staged, graph 2 maybe running */
}

/* ---- 6. a fault sweep of a pipelined run -------------------------------- */

enum { RUN_STEPS = 4 };

typedef struct pipe_ctx {
  model m;
  cgr_runtime *rt;
  int lazy;
  int checking;
  model_inputs in[RUN_STEPS];
  cgr_ticket t[RUN_STEPS];
  int32_t table[8];
  int32_t *dev_table, *dev_index, *dev_pos;
  int32_t fresh;
} pipe_ctx;

static const int32_t sweep_index[3] = {5, 0, 3};
static const int32_t sweep_prev[4] = {0, 2, -1, 1};

static cgr_status give_host(cgr_runtime *rt, cgr_batch *batch, const model *m,
                            const model_inputs *in, uint32_t rows,
                            cgr_slot skip1, cgr_slot skip2) {
  const struct {
    cgr_slot slot;
    const void *data;
    size_t bytes;
  } given[] = {{m->ids, in->ids, rows * 4},
               {m->pos, in->pos, rows * 4},
               {m->pages, in->pages, rows * 4 * MODEL_PAGES},
               {m->cu_k, in->cu_k, (rows + 1) * 4}};
  (void)rt;
  for (size_t i = 0; i < 4; ++i) {
    if (given[i].slot == skip1 || given[i].slot == skip2)
      continue;
    CGR__CHECK(cgr_batch_input(batch, given[i].slot, CGR_SOURCE_HOST,
                               given[i].data, given[i].bytes));
  }
  return CGR_OK;
}

/* The batch of step i of the run (0: host; 1: feedback from step 0; 2:
 * ids gathered and pos from the device; 3: host, larger bucket). */
static cgr_status build(pipe_ctx *c, int i, cgr_batch **out) {
  cgr_runtime *rt = c->rt;
  const model *m = &c->m;
  static const uint32_t sizes[RUN_STEPS] = {3, 4, 3, 7};
  uint32_t rows = sizes[i];
  model_make_inputs(&c->in[i], rows, rows, 70 + (unsigned)i);
  cgr_batch *b = NULL;
  CGR__CHECK(cgr_batch_begin(rt, rows, &b));
  cgr_status s = CGR_OK;
  if (i == 1) {
    c->fresh = 4242;
    for (uint32_t j = 0; j < rows; ++j)
      c->in[1].ids[j] =
          sweep_prev[j] < 0
              ? c->fresh
              : model_expected_out(&c->in[0], 4, (uint32_t)sweep_prev[j]);
    s = cgr_batch_feedback(b, m->ids, sweep_prev, &c->fresh, 4);
    if (s == CGR_OK)
      s = give_host(rt, b, m, &c->in[1], rows, m->ids, -1);
  } else if (i == 2) {
    for (uint32_t j = 0; j < rows; ++j) {
      c->in[2].ids[j] = c->table[sweep_index[j]];
      c->in[2].pos[j] = 10 + (int32_t)j;
    }
    s = cgr_batch_gather(b, m->ids, c->dev_table, c->dev_index);
    if (s == CGR_OK)
      s = cgr_batch_input(b, m->pos, CGR_SOURCE_DEVICE, c->dev_pos, rows * 4);
    if (s == CGR_OK)
      s = give_host(rt, b, m, &c->in[2], rows, m->ids, m->pos);
  } else {
    s = give_host(rt, b, m, &c->in[i], rows, -1, -1);
  }
  if (s != CGR_OK) {
    cgr_batch_discard(b);
    return s;
  }
  *out = b;
  return CGR_OK;
}

/* Ends a run left staged by a failure, whatever that returns. */
static cgr_status bail(pipe_ctx *c, cgr_status s) {
  if (cgr_replay_staged(c->rt)) {
    cgr_ticket t;
    (void)cgr_replay_ahead(c->rt, NULL, &t);
  }
  return s;
}

static cgr_status pipe_run(void *ctx) {
  pipe_ctx *c = ctx;
  cgr_batch *b = NULL;
  CGR__CHECK(build(c, 0, &b));
  CGR__CHECK(cgr_replay_stage(c->rt, b));
  for (int i = 1; i <= RUN_STEPS; ++i) {
    b = NULL;
    if (i < RUN_STEPS) {
      cgr_status s = build(c, i, &b);
      if (s != CGR_OK)
        return bail(c, s);
    }
    cgr_status s = cgr_replay_ahead(c->rt, b, &c->t[i - 1]);
    if (s != CGR_OK)
      return bail(c, s);
    if (c->checking) {
      check_ticket(c->rt, &c->m, &c->in[i - 1], &c->t[i - 1]);
    }
  }
  return cgr_synchronize(c->rt);
}

static void pipe_setup(void *ctx) {
  pipe_ctx *c = ctx;
  c->rt = pipelined_runtime(&c->m, rbuckets, 4, c->lazy, 1);
  for (int r = 0; r < 8; ++r)
    c->table[r] = 100 + 7 * r;
  int32_t pos[3] = {10, 11, 12};
  assert_cgr_ok(c->rt, cgr_device_alloc(c->rt, sizeof c->table,
                                        (void **)&c->dev_table));
  assert_cgr_ok(c->rt, cgr_device_alloc(c->rt, sizeof sweep_index,
                                        (void **)&c->dev_index));
  assert_cgr_ok(c->rt,
                cgr_device_alloc(c->rt, sizeof pos, (void **)&c->dev_pos));
  assert_cgr_ok(c->rt,
                cgr_memcpy(c->rt, c->dev_table, c->table, sizeof c->table));
  assert_cgr_ok(c->rt, cgr_memcpy(c->rt, c->dev_index, sweep_index,
                                  sizeof sweep_index));
  assert_cgr_ok(c->rt, cgr_memcpy(c->rt, c->dev_pos, pos, sizeof pos));
  /* Lazy: the swept run captures every graph it launches (the keys and
   * their pipelined forms). Otherwise a warm runtime: a pipelined run
   * and a fused step before the swept run, so that its first step
   * continues another mode. */
  if (c->lazy)
    return;
  c->checking = 1;
  assert_cgr_ok(c->rt, pipe_run(c));
  c->checking = 0;
  assert_cgr_ok(c->rt, cgr_set_replay_mode(c->rt, CGR_REPLAY_FUSED));
  model_inputs in;
  cgr_ticket t;
  model_make_inputs(&in, 5, 5, 99);
  assert_cgr_ok(c->rt, sweep_host_step(c->rt, &c->m, &in, &t));
  assert_cgr_ok(c->rt, cgr_set_replay_mode(c->rt, CGR_REPLAY_PIPELINED));
}

static void pipe_check_usable(void *ctx) {
  pipe_ctx *c = ctx;
  assert_false(cgr_replay_staged(c->rt));
  c->checking = 1;
  assert_cgr_ok(c->rt, pipe_run(c));
  c->checking = 0;
}

static void pipe_check_lost(void *ctx) {
  pipe_ctx *c = ctx;
  sweep_check_runtime_lost(c->rt);
}

static void pipe_teardown(void *ctx) {
  pipe_ctx *c = ctx;
  (void)cgr_device_free(c->rt, c->dev_table);
  (void)cgr_device_free(c->rt, c->dev_index);
  (void)cgr_device_free(c->rt, c->dev_pos);
  cgr_runtime_destroy(c->rt);
  c->rt = NULL;
}

static void sweep_pipelined(int lazy, const char *name) {
  cgr_test_require_host();
  static pipe_ctx c;
  memset(&c, 0, sizeof c);
  c.lazy = lazy;
  sweep_operation op = {
      name,         pipe_setup, pipe_run, pipe_check_usable, pipe_check_lost,
      pipe_teardown};
  sweep_result result = sweep(&op, &c, SWEEP_ALL);
  assert_true(result.faults[CGR__FAULT_NOW] > 0);
}

static void test_every_fault_in_a_pipelined_run_leaves_it_usable(void **state) {
  (void)state;
  sweep_pipelined(0, "a pipelined run");
}

static void
test_every_fault_in_a_lazy_pipelined_run_leaves_it_usable(void **state) {
  (void)state;
  sweep_pipelined(1, "a lazy pipelined run");
}

static const struct CMUnitTest tests[] = {
    HOST_TEST(test_a_batch_open_across_a_failed_launch_is_closed),
    HOST_TEST(test_a_failed_record_after_a_launch_expires_its_set),
    HOST_TEST(test_a_failed_stage_assumes_the_worst),
    HOST_TEST(test_plan_refusal_keeps_the_staged_step),
    HOST_TEST(test_failed_lazy_capture_in_ahead_leaves_it_usable),
    HOST_TEST(test_capture_and_destroy_with_a_step_staged),
    HOST_TEST(test_every_fault_in_a_pipelined_run_leaves_it_usable),
    HOST_TEST(test_every_fault_in_a_lazy_pipelined_run_leaves_it_usable),
};

CGR_TEST_MAIN(tests)
