/* The replay engine: long random sequences of batches in every mode, each
 * step's outputs checked element by element; padding rows never keep live
 * data; call counts per step; a protocol test that can fail; bad batches
 * rejected with nothing changed. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/capture.h"
#include "harness.h"
#include "model.h"
#include "replay/replay.h"
#include "replay_fixture.h"
#include "runtime/fault.h"

static const uint32_t buckets[] = {1, 2, 4, 8, 16, 24, 32};
enum { BUCKETS = 7 };

/* Runs `steps` random steps; mode < 0 switches modes at random. `steady`:
 * as a decode loop's, the batch size mostly stays and each slot of a set
 * is mostly given as it was last time (so step shapes repeat). */
static void random_sequence(cgr_runtime *rt, model *m, int mode, int steps,
                            uint64_t seed, int steady) {
  sources s;
  sources_create(rt, &s, &seed);
  set_memory memory[2];
  memset(memory, 0, sizeof memory);
  step_record previous;
  int have_previous = 0;
  uint32_t b = 1;
  choice kept_how[2][4] = {{HOST}};
  uint32_t kept_roll[2][4] = {{9}};
  for (int n = 0; n < steps; ++n) {
    cgr_replay_mode current = (cgr_replay_mode)mode;
    if (mode < 0) {
      current = (cgr_replay_mode)below(&seed, 4);
      assert_cgr_ok(rt, cgr_set_replay_mode(rt, current));
    }
    int in_graph = current == CGR_REPLAY_IN_GRAPH;

    if (!steady || below(&seed, 12) == 0)
      b = next_batch(b, &seed);
    step_record r;
    model_make_inputs(&r.in, b, b, (unsigned)test_random(&seed));
    cgr_batch *batch = NULL;
    assert_cgr_ok(rt, cgr_batch_begin(rt, b, &batch));
    int parity = n % 2;
    int eager = b > LARGEST || current == CGR_REPLAY_EAGER;
    set_memory *mem = &memory[parity];
    for (int slot = 0; slot < 4; ++slot) {
      /* The in-graph mode reads host staging only. */
      int host_only = in_graph && !eager;
      /* Steady: a device source, a gather one time in ten as often. */
      int host_or_pinned = host_only || (steady && below(&seed, 10) != 0);
      choice how = (choice)below(&seed, host_or_pinned ? 2 : 3);
      uint32_t roll = below(&seed, steady ? 40 : 10);
      if (steady && below(&seed, 12) != 0 &&
          !(host_only && kept_how[parity][slot] == DEVICE)) {
        how = kept_how[parity][slot];
        roll = kept_roll[parity][slot];
      }
      kept_how[parity][slot] = how;
      kept_roll[parity][slot] = roll;
      if (!eager && roll < 2 && mem->size[slot] == b &&
          (!in_graph || mem->in_graph))
        how = UNCHANGED;
      else if (roll < 4 && (slot == 0 || slot == 2) && !host_only)
        how = GATHER;
      give(rt, batch, m, &s, parity, slot, how, &r.in, mem, &seed);
    }
    assert_cgr_ok(rt, cgr_replay(rt, batch, &r.ticket));
    memset(s.pageable, 0xEE, sizeof s.pageable);

    assert_int_equal(r.ticket.step, (uint64_t)n);
    assert_int_equal(r.ticket.set, eager ? -1 : parity);
    if (!eager) {
      for (int slot = 0; slot < 4; ++slot)
        mem->size[slot] = b;
      mem->in = r.in;
      mem->in_graph = in_graph;
    } else {
      /* The eager step's buffers are not the sets': nothing changed. */
      check_step(rt, m, &r);
    }
    /* Keep two steps in flight: check the previous one now. */
    if (have_previous && previous.ticket.set >= 0) {
      check_step(rt, m, &previous);
      if (previous.ticket.step % 25 == 0)
        check_against_eager(rt, m, &previous);
    }
    previous = r;
    have_previous = 1;
  }
  if (previous.ticket.set >= 0)
    check_step(rt, m, &previous);
  sources_destroy(rt, &s);
}

static cgr_runtime *replaying_runtime(model *m, cgr_replay_mode mode) {
  cgr_runtime *rt = model_captured_runtime(buckets, BUCKETS, 1, m);
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, mode));
  return rt;
}

static void run_mode_steps(void **state, int mode, int steps) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = replaying_runtime(&m, mode < 0 ? CGR_REPLAY_FUSED
                                                   : (cgr_replay_mode)mode);
  random_sequence(rt, &m, mode, steps, 0xC0FFEE + (uint64_t)mode, 0);
  cgr_replay_stats stats;
  assert_cgr_ok(rt, cgr_replay_stats_get(rt,
                                         mode < 0 ? CGR_REPLAY_FUSED
                                                  : (cgr_replay_mode)mode,
                                         &stats));
  assert_true(stats.steps > 0);
  assert_true(stats.eager_steps > 0);
  if (mode == CGR_REPLAY_EAGER)
    assert_int_equal(stats.eager_steps, stats.steps);
  if (mode != CGR_REPLAY_EAGER)
    assert_true(stats.ops_skipped > 0); /* eager steps skip nothing */
  cgr_runtime_destroy(rt);
}

static void run_mode(void **state, int mode) {
  run_mode_steps(state, mode, steps_to_run(10000));
}

static void test_random_steps_match_in_eager_mode(void **state) {
  /* Each eager step allocates its buffers: fewer steps. */
  run_mode_steps(state, CGR_REPLAY_EAGER, steps_to_run(10000) / 10);
}

static void test_random_steps_match_in_naive_mode(void **state) {
  run_mode(state, CGR_REPLAY_NAIVE);
}

static void test_random_steps_match_in_fused_mode(void **state) {
  run_mode(state, CGR_REPLAY_FUSED);
}

static void test_random_steps_match_in_double_buffered_mode(void **state) {
  run_mode(state, CGR_REPLAY_DOUBLE_BUFFERED);
}

static void test_random_steps_match_in_in_graph_mode(void **state) {
  run_mode(state, CGR_REPLAY_IN_GRAPH);
}

static void test_modes_switch_between_steps(void **state) {
  run_mode(state, -1);
}

/* Random steps as steady as a decode loop's, with validation off, the
 * default config's: the step path (owned plans, plans reused from the plan
 * memo whenever a shape repeats) must give what the checked path gives;
 * each plan mode, then the modes switching at random (the in-graph mode
 * among them, which forgets a set's remembered plans). */
static cgr_runtime *unvalidated_runtime(model *m) {
  cgr_runtime *rt = model_runtime_validating(buckets, BUCKETS, 1, 0, m);
  assert_cgr_ok(rt, cgr_capture(rt, model_step, m));
  return rt;
}

static void test_unvalidated_random_steps_match(void **state) {
  (void)cgr_test_runtime(state);
  static const cgr_replay_mode modes[] = {CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED,
                                          CGR_REPLAY_DOUBLE_BUFFERED};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; ++i) {
    model m;
    cgr_runtime *rt = unvalidated_runtime(&m);
    assert_cgr_ok(rt, cgr_set_replay_mode(rt, modes[i]));
    random_sequence(rt, &m, (int)modes[i], steps_to_run(3000),
                    0xF00D + (uint64_t)i, 1);
    cgr_runtime_destroy(rt);
  }
  model m;
  cgr_runtime *rt = unvalidated_runtime(&m);
  random_sequence(rt, &m, -1, steps_to_run(6000), 0xF00D + 7, 1);
  cgr_runtime_destroy(rt);
}

/* ---- call counts --------------------------------------------------------- */

static void one_host_step(cgr_runtime *rt, const model *m, uint32_t b,
                          cgr_counters *counters, step_record *r) {
  model_make_inputs(&r->in, b, b, b * 7);
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, b, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->ids, CGR_SOURCE_HOST, r->in.ids,
                                    b * 4));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->pos, CGR_SOURCE_HOST, r->in.pos,
                                    b * 4));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->pages, CGR_SOURCE_HOST,
                                    r->in.pages, b * 4 * MODEL_PAGES));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->cu_k, CGR_SOURCE_HOST, r->in.cu_k,
                                    (b + 1) * 4));
  assert_cgr_ok(rt, cgr_counters_reset(rt));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &r->ticket));
  assert_cgr_ok(rt, cgr_counters_get(rt, counters));
}

static void test_call_counts_per_step_in_each_mode(void **state) {
  (void)cgr_test_runtime(state);
  static const struct {
    cgr_replay_mode mode;
    uint64_t copies, kernels, records, waits;
  } expected[] = {
      {CGR_REPLAY_NAIVE, 4, 0, 2, 0},
      {CGR_REPLAY_FUSED, 0, 1, 2, 0},
      {CGR_REPLAY_DOUBLE_BUFFERED, 0, 1, 3, 2},
      /* The copy is a node of the graph: the host launches the graph and
       * records its events, nothing else. */
      {CGR_REPLAY_IN_GRAPH, 0, 0, 2, 0},
  };
  for (size_t e = 0; e < sizeof expected / sizeof expected[0]; ++e) {
    model m;
    cgr_runtime *rt = replaying_runtime(&m, expected[e].mode);
    /* The first pass captures the in-graph variants; count the second. */
    for (int n = 0; n < 80; ++n) {
      cgr_counters c;
      step_record r;
      one_host_step(rt, &m, 1 + (uint32_t)((n % 40) * 5) % LARGEST, &c, &r);
      if (n < 40) {
        check_step(rt, &m, &r);
        continue;
      }
      /* Steady state: the device keeps up (the test waits every step). */
      assert_int_equal(c.graph_launches, 1);
      assert_int_equal(c.copies, expected[e].copies);
      assert_int_equal(c.kernel_launches, expected[e].kernels);
      assert_int_equal(c.memsets, 0);
      assert_int_equal(c.event_records, expected[e].records);
      assert_int_equal(c.event_waits, expected[e].waits);
      assert_int_equal(c.synchronizations, 0);
      check_step(rt, &m, &r);
    }
    cgr_runtime_destroy(rt);
  }
}

/* Once warm, a step's copy plan allocates nothing: not its operations
 * (append), not the overlap check's ranges (issue 23: no heap allocation
 * on the per-step path). An allocation there would meet the armed fault. */
static void test_a_warm_plan_allocates_nothing(void **state) {
  cgr_test_require_host(); /* fault injection */
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = replaying_runtime(&m, CGR_REPLAY_FUSED);
  cgr_counters c;
  step_record r;
  for (int n = 0; n < 10; ++n) {
    one_host_step(rt, &m, 1 + (uint32_t)(n * 7) % LARGEST, &c, &r);
    check_step(rt, &m, &r);
  }
  const cgr__fault_plan plans[] = {
      {.call = CGR__CALL_HOST_ALLOC, .site = "append", .nth = 1},
      {.call = CGR__CALL_HOST_ALLOC, .site = "check_overlaps", .nth = 1},
      {.call = CGR__CALL_HOST_ALLOC, .site = "scratch_ranges", .nth = 1},
  };
  assert_true(cgr__fault_arm_plans(plans, 3));
  for (int n = 0; n < 40; ++n) {
    one_host_step(rt, &m, 1 + (uint32_t)(n * 7) % LARGEST, &c, &r);
    check_step(rt, &m, &r);
  }
  int fired = cgr__fault_fired();
  cgr__fault_disarm();
  assert_false(fired);
  cgr_runtime_destroy(rt);
}

static void test_padding_is_refilled_only_where_rows_were_live(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = replaying_runtime(&m, CGR_REPLAY_FUSED);
  /* Set 0 sees 20 (bucket 24), then 5 (bucket 8): rows 5..8 were live and
   * are refilled; then 6 (bucket 8): rows 6..8 are padding already, so
   * only PREFIX padding is written. Set 1 runs in between. */
  static const uint32_t sizes[] = {20, 1, 5, 1, 6, 1};
  cgr_replay_stats before, after;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
    cgr_counters c;
    step_record r;
    assert_cgr_ok(rt, cgr_replay_stats_get(rt, CGR_REPLAY_FUSED, &before));
    one_host_step(rt, &m, sizes[i], &c, &r);
    assert_cgr_ok(rt, cgr_replay_stats_get(rt, CGR_REPLAY_FUSED, &after));
    check_step(rt, &m, &r);
    uint64_t ops = after.ops_copied - before.ops_copied;
    if (i == 2)
      assert_int_equal(ops, 4 + 3 + 1); /* 4 copies, 3 ROWS fills, 1 PREFIX */
    if (i == 4)
      assert_int_equal(ops, 4 + 1); /* rows 6..8 were clean */
  }
  cgr_runtime_destroy(rt);
}

/* ---- the protocol can fail ------------------------------------------------
 */

static int double_buffer_race(int drop_wait) {
  model m;
  cgr_runtime *rt = replaying_runtime(&m, CGR_REPLAY_DOUBLE_BUFFERED);
  test_gate gate;
  test_gate_init(&gate);
  step_record steps[5];
  cgr_counters c;
  /* Two ordinary steps, which also make the replay state. */
  for (int n = 0; n < 2; ++n) {
    one_host_step(rt, &m, 4, &c, &steps[n]);
    check_step(rt, &m, &steps[n]);
  }
  cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  replay->test_drop_set_wait = drop_wait;
  /* Step 2's graph holds at its first node; step 4 loads the same set
   * with one row (bucket 1), refilling rows 1..3 with padding. Its graph
   * writes only out[0], so rows 1..3 of the set's output keep step 2's
   * results, which must come from step 2's inputs. */
  __atomic_store_n(&m.hold, &gate, __ATOMIC_RELEASE);
  one_host_step(rt, &m, 4, &c, &steps[2]);
  one_host_step(rt, &m, 4, &c, &steps[3]);
  one_host_step(rt, &m, 1, &c, &steps[4]);
  if (drop_wait) {
    /* Without the wait the side stream is free to overwrite set 0 now. */
    assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_SIDE(rt)));
  } else {
    usleep(20000);
  }
  test_gate_open(&gate);
  assert_cgr_ok(rt, cgr_synchronize(rt));
  int32_t got[4];
  void *out = NULL;
  assert_cgr_ok(rt, cgr_slot_address(rt, m.out, steps[2].ticket.set, 0, &out));
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), got, out,
                                         sizeof got));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
  int mismatches = 0;
  for (uint32_t r = 1; r < 4; ++r)
    mismatches += got[r] != model_expected_out(&steps[2].in, 4, r);
  assert_cgr_ok(rt, cgr_synchronize(rt));
  test_gate_fini(&gate);
  cgr_runtime_destroy(rt);
  return mismatches;
}

static void test_dropping_the_side_wait_is_caught(void **state) {
  cgr_test_require_host(); /* the forced interleaving needs host streams */
  (void)cgr_test_runtime(state);
  assert_int_equal(double_buffer_race(0), 0);
  assert_true(double_buffer_race(1) > 0);
}

/* ---- tickets, eager, lazy -------------------------------------------------
 */

static void test_tickets_expire_when_their_set_is_reused(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = replaying_runtime(&m, CGR_REPLAY_DOUBLE_BUFFERED);
  step_record r[3];
  cgr_counters c;
  for (int n = 0; n < 3; ++n)
    one_host_step(rt, &m, 3, &c, &r[n]);
  void *out = NULL;
  assert_cgr_status(rt, cgr_output(rt, &r[0].ticket, m.out, &out),
                    CGR_E_INVALID_STATE);
  assert_null(out);
  assert_last_error_contains(rt, "expired");
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &r[0].ticket)); /* still waitable */
  check_step(rt, &m, &r[1]);
  check_step(rt, &m, &r[2]);
  cgr_ticket foreign = r[2].ticket;
  foreign.step = 99;
  assert_cgr_status(rt, cgr_ticket_wait(rt, &foreign), CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(rt, cgr_output(rt, &r[2].ticket, m.ids, &out),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "not an OUTPUT slot");
  cgr_runtime_destroy(rt);
}

static void test_oversized_batch_runs_eagerly_through_replay(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = replaying_runtime(&m, CGR_REPLAY_DOUBLE_BUFFERED);
  cgr_counters c;
  step_record r;
  one_host_step(rt, &m, 40, &c, &r);
  assert_int_equal(r.ticket.set, -1);
  assert_int_equal(r.ticket.padded_batch, 40);
  assert_int_equal(c.graph_launches, 0);
  check_step(rt, &m, &r);
  cgr_replay_stats stats;
  assert_cgr_ok(rt,
                cgr_replay_stats_get(rt, CGR_REPLAY_DOUBLE_BUFFERED, &stats));
  assert_int_equal(stats.eager_steps, 1);
  /* The next replay ends the eager step's buffers: its ticket expires. */
  step_record next;
  one_host_step(rt, &m, 2, &c, &next);
  void *out = NULL;
  assert_cgr_status(rt, cgr_output(rt, &r.ticket, m.out, &out),
                    CGR_E_INVALID_STATE);
  check_step(rt, &m, &next);
  cgr_runtime_destroy(rt);
}

/* The model on a runtime with lazy capture, its step registered. */
static cgr_runtime *lazy_runtime(model *m) {
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = buckets;
  config.bucket_count = BUCKETS;
  config.lazy_capture = 1;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  model_declare(rt, m);
  assert_cgr_ok(rt, cgr_capture(rt, model_step, m));
  return rt;
}

static void test_lazy_capture_happens_at_first_replay(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = lazy_runtime(&m);
  cgr_counters c;
  step_record r;
  one_host_step(rt, &m, 11, &c, &r);
  check_step(rt, &m, &r);
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.buckets_captured, 1);
  cgr_bucket_stats bucket;
  assert_cgr_ok(rt, cgr_bucket_stats_get(rt, 16, &bucket));
  assert_int_equal(bucket.captured, 1);
  cgr_runtime_destroy(rt);
}

/* A bucket captured lazily after steps ran must leave the buffer sets
 * alone: the previous step's outputs are still the caller's to read (and a
 * fed slot continues from them). Its capture once ran a warm-up of the step
 * in the sets, which overwrote them. */
static void test_lazy_capture_keeps_the_previous_steps_output(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = lazy_runtime(&m);
  cgr_counters c;
  step_record first, second, third;
  one_host_step(rt, &m, 3, &c, &first);
  one_host_step(rt, &m, 11, &c, &second); /* captures bucket 16 now */
  check_step(rt, &m, &first);
  check_step(rt, &m, &second);
  one_host_step(rt, &m, 20, &c, &third); /* and bucket 32 */
  check_step(rt, &m, &second);
  check_step(rt, &m, &third);
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.buckets_captured, 3);
  cgr_runtime_destroy(rt);
}

/* ---- bad input ------------------------------------------------------------
 */

static void test_bad_batches_are_rejected_and_change_nothing(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = replaying_runtime(&m, CGR_REPLAY_DOUBLE_BUFFERED);
  cgr_counters c;
  step_record good;
  one_host_step(rt, &m, 5, &c, &good);
  check_step(rt, &m, &good);

  cgr_batch *batch = NULL;
  cgr_ticket ticket;
  int32_t data[64] = {0};
  assert_cgr_status(rt, cgr_batch_begin(rt, 0, &batch), CGR_E_INVALID_ARGUMENT);
  assert_null(batch);
  assert_cgr_ok(rt, cgr_batch_begin(rt, 3, &batch));
  cgr_batch *second = NULL;
  assert_cgr_status(rt, cgr_batch_begin(rt, 3, &second), CGR_E_INVALID_STATE);
  assert_null(second);
  assert_cgr_status(rt, cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, data, 8),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "8 bytes given, a batch of 3 needs 12");
  assert_cgr_ok(rt, cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, data, 12));
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, data, 12),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "given twice");
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.out, CGR_SOURCE_HOST, data, 12),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "an OUTPUT");
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.cu_q, CGR_SOURCE_HOST, data, 16),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "a CONSTANT");
  /* Validation mode: a page id past the cache, a host pointer posing as
   * device memory. */
  int32_t pages[3 * MODEL_PAGES] = {0};
  pages[5] = MODEL_PAGE_LIMIT;
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.pages, CGR_SOURCE_HOST, pages,
                                    sizeof pages),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "element 5 is 1000, outside [0, 999]");
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.pos, CGR_SOURCE_DEVICE, data, 12),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "must lie wholly in device memory");
  /* Set 1 never held cu_k: refused at the call, the batch left open. */
  assert_cgr_status(rt, cgr_batch_unchanged(batch, m.cu_k),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "marked unchanged");
  /* pos and pages never given: replay names one and changes nothing. */
  assert_cgr_status(rt, cgr_replay(rt, batch, &ticket), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "slot 'positions' was not given");

  /* Unchanged with a batch size the set never held. */
  assert_cgr_ok(rt, cgr_batch_begin(rt, 2, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, data, 8));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, data, 8));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pages, CGR_SOURCE_HOST, data,
                                    2 * 4 * MODEL_PAGES));
  assert_cgr_status(rt, cgr_batch_unchanged(batch, m.cu_k),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "marked unchanged");
  assert_cgr_status(rt, cgr_replay(rt, batch, &ticket), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "slot 'cu_seqlens_k' was not given");

  /* A batch the caller gives up on changes nothing either. */
  assert_cgr_ok(rt, cgr_batch_begin(rt, 4, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, data, 16));
  cgr_batch_discard(batch);
  cgr_batch_discard(batch); /* closed already: a no-op */
  cgr_batch_discard(NULL);
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, data, 16),
                    CGR_E_INVALID_STATE);

  /* The ticket sequence and the sets are as they were. */
  step_record next;
  one_host_step(rt, &m, 7, &c, &next);
  assert_int_equal(next.ticket.step, good.ticket.step + 1);
  check_step(rt, &m, &next);
  cgr_runtime_destroy(rt);
}

static void test_oversized_batch_refused_without_eager(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, BUCKETS, 0, &m);
  cgr_batch *batch = NULL;
  assert_cgr_status(rt, cgr_batch_begin(rt, 33, &batch), CGR_E_BATCH_TOO_LARGE);
  assert_null(batch);
  cgr_runtime_destroy(rt);
}

static void test_replay_before_capture_is_refused(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr_batch *batch = NULL;
  assert_cgr_status(rt, cgr_batch_begin(rt, 1, &batch), CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "call cgr_capture() first");
  assert_cgr_status(rt, cgr_set_replay_mode(rt, (cgr_replay_mode)7),
                    CGR_E_INVALID_ARGUMENT);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_random_steps_match_in_eager_mode),
    RUNTIME_TEST(test_random_steps_match_in_naive_mode),
    RUNTIME_TEST(test_random_steps_match_in_fused_mode),
    RUNTIME_TEST(test_random_steps_match_in_double_buffered_mode),
    RUNTIME_TEST(test_random_steps_match_in_in_graph_mode),
    RUNTIME_TEST(test_modes_switch_between_steps),
    RUNTIME_TEST(test_unvalidated_random_steps_match),
    RUNTIME_TEST(test_call_counts_per_step_in_each_mode),
    RUNTIME_TEST(test_padding_is_refilled_only_where_rows_were_live),
    HOST_RUNTIME_TEST(test_a_warm_plan_allocates_nothing),
    HOST_RUNTIME_TEST(test_dropping_the_side_wait_is_caught),
    RUNTIME_TEST(test_tickets_expire_when_their_set_is_reused),
    RUNTIME_TEST(test_oversized_batch_runs_eagerly_through_replay),
    RUNTIME_TEST(test_lazy_capture_happens_at_first_replay),
    RUNTIME_TEST(test_lazy_capture_keeps_the_previous_steps_output),
    RUNTIME_TEST(test_bad_batches_are_rejected_and_change_nothing),
    RUNTIME_TEST(test_oversized_batch_refused_without_eager),
    RUNTIME_TEST(test_replay_before_capture_is_refused),
};

CGR_TEST_MAIN(tests)
