/* CGR_REPLAY_PIPELINED: each step's graph loads the next step's inputs,
 * staged one step ahead. Long random sequences of every source, bucket
 * changes at every step and lazy capture, each step checked element by
 * element (and against an eager run); feedback with moved, dropped and
 * new rows against a host reference loop; the padding the graph's load
 * leaves; one launch and one event per step; a protocol test that can
 * fail; the calls refused, with nothing changed. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/capture.h"
#include "replay/replay.h"
#include "replay_fixture.h"

static const uint32_t buckets[] = {1, 2, 4, 8, 16, 24, 32};
enum { BUCKETS = 7 };

/* A batch of b rows whose slots come from random sources (unchanged where
 * the set it loads, parity, holds the same rows); records the inputs. */
static cgr_batch *random_batch(cgr_runtime *rt, const model *m, sources *s,
                               set_memory *memory, int parity, uint32_t b,
                               uint64_t *seed, step_record *r) {
  model_make_inputs(&r->in, b, b, (unsigned)test_random(seed));
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, b, &batch));
  set_memory *mem = &memory[parity];
  for (int slot = 0; slot < 4; ++slot) {
    choice how = (choice)below(seed, 3);
    uint32_t roll = below(seed, 10);
    if (roll < 2 && mem->size[slot] == b)
      how = UNCHANGED;
    else if (roll < 4 && (slot == 0 || slot == 2))
      how = GATHER;
    give(rt, batch, m, s, parity, slot, how, &r->in, mem, seed);
  }
  return batch;
}

/* What set `parity` holds once the staged step's load ran. */
static void remember(set_memory *memory, int parity, const step_record *r) {
  for (int slot = 0; slot < 4; ++slot)
    memory[parity].size[slot] = r->in.rows;
  memory[parity].in = r->in;
}

/* The padding the load of the staged step r (into set `set`) left: read
 * once the graph that carried it (ticket `carrier`) ended, before the
 * staged step's own graph runs. */
static void check_loaded_padding(cgr_runtime *rt, const model *m,
                                 const cgr_ticket *carrier, step_record r,
                                 int set) {
  assert_cgr_ok(rt, cgr_ticket_wait(rt, carrier));
  r.ticket.set = set;
  r.ticket.batch_size = r.in.rows;
  r.ticket.padded_batch = test_bucket_of(buckets, BUCKETS, r.in.rows);
  check_padding(rt, m, &r);
}

/*
 * Runs `steps` random steps, staged one ahead: the step staged at call n
 * launches at call n + 1. Batches change size (and bucket) at random;
 * every source, unchanged slots and gathers. Each step is checked while
 * the next is staged, every 25th against an eager run, and every third
 * step's padding as its carrier graph's load left it.
 */
static void random_run(cgr_runtime *rt, model *m, int steps, uint64_t seed) {
  sources s;
  sources_create(rt, &s, &seed);
  set_memory memory[2];
  memset(memory, 0, sizeof memory);
  step_record *records = calloc((size_t)steps, sizeof *records);
  assert_non_null(records);
  uint32_t b = 1 + below(&seed, LARGEST);
  cgr_batch *batch = random_batch(rt, m, &s, memory, 0, b, &seed, &records[0]);
  assert_cgr_ok(rt, cgr_replay_stage(rt, batch));
  assert_true(cgr_replay_staged(rt));
  remember(memory, 0, &records[0]);
  for (int n = 0; n < steps; ++n) {
    int last = n + 1 == steps;
    /* Step n-1 first: its sources' parity is the next batch's, and the
     * load that read them (in graph n-2, or the first step's copy) must
     * have ended before they are rewritten. */
    if (n > 0) {
      check_outputs(rt, m, &records[n - 1]);
      if ((n - 1) % 25 == 0)
        check_against_eager(rt, m, &records[n - 1]);
    }
    batch = NULL;
    if (!last) {
      b = next_batch(b, &seed);
      if (b > LARGEST) /* pipelined steps are graph steps */
        b = LARGEST - below(&seed, 8);
      batch = random_batch(rt, m, &s, memory, (n + 1) % 2, b, &seed,
                           &records[n + 1]);
    }
    cgr_ticket ticket;
    assert_cgr_ok(rt, cgr_replay_ahead(rt, batch, &ticket));
    memset(s.pageable, 0xEE, sizeof s.pageable);
    assert_int_equal(ticket.step, (uint64_t)n);
    assert_int_equal(ticket.set, n % 2);
    assert_int_equal(ticket.batch_size, records[n].in.rows);
    assert_int_equal(ticket.padded_batch,
                     test_bucket_of(buckets, BUCKETS, records[n].in.rows));
    assert_int_equal(cgr_replay_staged(rt), !last);
    records[n].ticket = ticket;
    if (!last) {
      remember(memory, (n + 1) % 2, &records[n + 1]);
      if (n % 3 == 0)
        check_loaded_padding(rt, m, &ticket, records[n + 1], (n + 1) % 2);
    }
  }
  check_outputs(rt, m, &records[steps - 1]);
  free(records);
  sources_destroy(rt, &s);
}

static void test_random_steps_match(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, buckets, BUCKETS, 0, 0);
  random_run(rt, &m, steps_to_run(10000), 0x9199);
  cgr_replay_stats stats;
  assert_cgr_ok(rt, cgr_replay_stats_get(rt, CGR_REPLAY_PIPELINED, &stats));
  assert_int_equal(stats.steps, (uint64_t)steps_to_run(10000));
  assert_int_equal(stats.eager_steps, 0);
  assert_true(stats.ops_skipped > 0 && stats.ops_copied > 0);
  cgr_runtime_destroy(rt);
}

/* Lazy capture: each key's graphs, and their pipelined forms, are made at
 * the step that first needs them, with steps in flight. */
static void test_random_steps_match_with_lazy_capture(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, buckets, BUCKETS, 1, 0);
  random_run(rt, &m, steps_to_run(10000) / 5, 0x1A2F);
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.buckets_captured, BUCKETS);
  cgr_runtime_destroy(rt);
}

/* ---- feedback ------------------------------------------------------------ */

typedef struct request {
  int32_t token;
  int32_t row; /* its row in the step before, -1 if it just joined */
} request;

/*
 * The next step's requests from this step's: each leaves with probability
 * 1/8 (rows after it move up), one to four join at the end, and now and
 * then all are shuffled. Tokens are this step's outputs (known on the host
 * from its inputs), the joiners' random.
 */
static uint32_t schedule(request *live, uint32_t count, const model_inputs *in,
                         uint32_t padded, uint64_t *seed) {
  uint32_t kept = 0;
  for (uint32_t r = 0; r < count; ++r) {
    if (below(seed, 8) == 0)
      continue;
    live[kept].token = model_expected_out(in, padded, r);
    live[kept].row = (int32_t)r;
    kept++;
  }
  uint32_t joins = 1 + below(seed, 4);
  while (joins-- > 0 && kept < LARGEST) {
    live[kept].token = (int32_t)below(seed, 50000);
    live[kept].row = -1;
    kept++;
  }
  if (below(seed, 5) == 0)
    for (uint32_t r = kept; r > 1; --r) {
      uint32_t other = below(seed, r);
      request swap = live[r - 1];
      live[r - 1] = live[other];
      live[other] = swap;
    }
  return kept;
}

/* The feedback arrays of a batch: they must live until it is staged. */
typedef struct fed_rows {
  int32_t prev_rows[LARGEST], fresh[LARGEST];
} fed_rows;

/* The batch of the scheduled requests: ids by feedback (or, now and
 * then, from the host), the rest from the host or the device. */
static cgr_batch *feedback_batch(cgr_runtime *rt, const model *m, sources *s,
                                 const request *live, uint32_t count,
                                 int parity, int first, uint64_t *seed,
                                 step_record *r, fed_rows *rows) {
  model_make_inputs(&r->in, count, count, (unsigned)test_random(seed));
  int32_t *prev_rows = rows->prev_rows, *fresh = rows->fresh;
  uint32_t fresh_count = 0;
  for (uint32_t j = 0; j < count; ++j) {
    r->in.ids[j] = live[j].token;
    prev_rows[j] = live[j].row;
    if (live[j].row < 0)
      fresh[fresh_count++] = live[j].token;
  }
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, count, &batch));
  if (!first && below(seed, 7) != 0)
    assert_cgr_ok(rt, cgr_batch_feedback(batch, m->ids, prev_rows, fresh,
                                         fresh_count * sizeof(int32_t)));
  else
    give(rt, batch, m, s, parity, 0, HOST, &r->in, NULL, seed);
  for (int slot = 1; slot < 4; ++slot)
    give(rt, batch, m, s, parity, slot, (choice)below(seed, 3), &r->in, NULL,
         seed);
  return batch;
}

/* A decode loop scheduled one step ahead: step n+1's requests are chosen
 * (and its batch staged) before step n runs; its fed tokens are step n's
 * outputs, gathered on the device where rows moved. */
static void feedback_run(cgr_runtime *rt, model *m, int steps, uint64_t seed) {
  sources s;
  sources_create(rt, &s, &seed);
  request live[LARGEST];
  uint32_t count = schedule(live, 0, NULL, 0, &seed);
  step_record *records = calloc((size_t)steps, sizeof *records);
  assert_non_null(records);
  fed_rows rows;
  cgr_batch *batch =
      feedback_batch(rt, m, &s, live, count, 0, 1, &seed, &records[0], &rows);
  assert_cgr_ok(rt, cgr_replay_stage(rt, batch));
  for (int n = 0; n < steps; ++n) {
    int last = n + 1 == steps;
    if (n > 0) /* before its sources' parity is rewritten */
      check_outputs(rt, m, &records[n - 1]);
    batch = NULL;
    if (!last) {
      count =
          schedule(live, count, &records[n].in,
                   test_bucket_of(buckets, BUCKETS, records[n].in.rows), &seed);
      batch = feedback_batch(rt, m, &s, live, count, (n + 1) % 2, 0, &seed,
                             &records[n + 1], &rows);
    }
    assert_cgr_ok(rt, cgr_replay_ahead(rt, batch, &records[n].ticket));
  }
  check_outputs(rt, m, &records[steps - 1]);
  free(records);
  sources_destroy(rt, &s);
}

static void test_feedback_matches_the_reference_loop(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, buckets, BUCKETS, 0, 1);
  feedback_run(rt, &m, steps_to_run(10000) / 5, 0xFEED5);
  cgr_runtime_destroy(rt);
}

/* ---- counts, and the protocol can fail ------------------------------------
 */

/* A batch of b rows, every slot from the host. */
static cgr_batch *host_batch(cgr_runtime *rt, const model *m, uint32_t b,
                             step_record *r) {
  model_make_inputs(&r->in, b, b, b * 7 + 1);
  return model_begin_batch(rt, m, &r->in, b, -1);
}

static void test_one_launch_and_one_event_per_step(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, buckets, BUCKETS, 0, 0);
  step_record r[81];
  cgr_counters c;
  assert_cgr_ok(rt, cgr_counters_reset(rt));
  assert_cgr_ok(rt, cgr_replay_stage(rt, host_batch(rt, &m, 3, &r[0])));
  assert_cgr_ok(rt, cgr_counters_get(rt, &c));
  /* The first step: one fused copy on the main stream, no graph. */
  assert_int_equal(c.kernel_launches, 1);
  assert_int_equal(c.graph_launches, 0);
  for (int n = 0; n < 80; ++n) {
    uint32_t b = 1 + (uint32_t)((n % 40) * 5) % LARGEST;
    cgr_batch *next = host_batch(rt, &m, b, &r[n + 1]);
    assert_cgr_ok(rt, cgr_counters_reset(rt));
    assert_cgr_ok(rt, cgr_replay_ahead(rt, next, &r[n].ticket));
    assert_cgr_ok(rt, cgr_counters_get(rt, &c));
    if (n >= 40) {
      /* Steady state (every pipelined graph captured, the device keeping
       * up: the test waits every step): the graph and its event. */
      assert_int_equal(c.graph_launches, 1);
      assert_int_equal(c.kernel_launches, 0);
      assert_int_equal(c.copies, 0);
      assert_int_equal(c.memsets, 0);
      assert_int_equal(c.event_records, 1);
      assert_int_equal(c.event_waits, 0);
      assert_int_equal(c.synchronizations, 0);
    }
    check_outputs(rt, &m, &r[n]);
  }
  assert_cgr_ok(rt, cgr_replay_ahead(rt, NULL, &r[80].ticket));
  check_outputs(rt, &m, &r[80]);
  cgr_runtime_destroy(rt);
}

/*
 * Step 2's ids continue step 1's rows in reverse order: gathers from step
 * 1's output, which the late part of graph 1's load runs after the step.
 * Graph 1 is held at its first node; a test switch captures the late load
 * in the branch beside the step instead, where it reads the output before
 * the step wrote it: step 2 then sees wrong ids.
 */
static int late_load_race(int unordered) {
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, buckets, BUCKETS, 0, 1);
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  cap->test_pipe_unordered = unordered;
  step_record r[3];
  cgr_ticket t;
  assert_cgr_ok(rt, cgr_replay_stage(rt, host_batch(rt, &m, 4, &r[0])));
  assert_cgr_ok(rt, cgr_replay_ahead(rt, host_batch(rt, &m, 4, &r[1]), &t));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &t));
  int32_t prev_rows[4] = {3, 2, 1, 0};
  model_make_inputs(&r[2].in, 4, 4, 99);
  for (uint32_t j = 0; j < 4; ++j)
    r[2].in.ids[j] = model_expected_out(&r[1].in, 4, (uint32_t)prev_rows[j]);
  cgr_batch *batch = model_begin_batch(rt, &m, &r[2].in, 4, m.ids);
  assert_cgr_ok(rt, cgr_batch_feedback(batch, m.ids, prev_rows, NULL, 0));
  test_gate gate;
  test_gate_init(&gate);
  __atomic_store_n(&m.hold, &gate, __ATOMIC_RELEASE);
  assert_cgr_ok(rt, cgr_replay_ahead(rt, batch, &r[1].ticket));
  usleep(20000);
  test_gate_open(&gate);
  assert_cgr_ok(rt, cgr_replay_ahead(rt, NULL, &r[2].ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &r[2].ticket));
  void *out = NULL;
  int32_t got[4];
  assert_cgr_ok(rt, cgr_output(rt, &r[2].ticket, m.out, &out));
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), got, out,
                                         sizeof got));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
  int mismatches = 0;
  for (uint32_t j = 0; j < 4; ++j)
    mismatches += got[j] != model_expected_out(&r[2].in, 4, j);
  test_gate_fini(&gate);
  cgr_runtime_destroy(rt);
  return mismatches;
}

static void test_dropping_the_late_loads_order_is_caught(void **state) {
  cgr_test_require_host(); /* the forced interleaving needs host streams */
  (void)cgr_test_runtime(state);
  assert_int_equal(late_load_race(0), 0);
  /* Without the order the program races by design (the load reads what
   * the held step writes): ThreadSanitizer would report just that. */
#if !defined(__SANITIZE_THREAD__)
  assert_true(late_load_race(1) > 0);
#endif
}

/* ---- switching modes ----------------------------------------------------- */

/* Pipelined runs of random length between steps of the other modes: the
 * sets' padding, unchanged slots and staging pass between them. */
static void test_runs_alternate_with_other_modes(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, buckets, BUCKETS, 0, 0);
  uint64_t seed = 0x5EED;
  sources s;
  sources_create(rt, &s, &seed);
  set_memory memory[2];
  memset(memory, 0, sizeof memory);
  uint64_t step = 0;
  uint32_t b = 5;
  for (int round = 0; round < 60; ++round) {
    int pipelined = round % 2 == 0;
    cgr_replay_mode mode =
        pipelined ? CGR_REPLAY_PIPELINED : (cgr_replay_mode)below(&seed, 3);
    assert_cgr_ok(rt, cgr_set_replay_mode(rt, mode));
    int steps = 1 + (int)below(&seed, 6);
    step_record r[8];
    for (int n = 0; n < steps; ++n) {
      b = 1 + below(&seed, LARGEST);
      int parity = (int)((step + (uint64_t)n) % 2);
      cgr_batch *batch =
          random_batch(rt, &m, &s, memory, parity, b, &seed, &r[n]);
      if (!pipelined) {
        assert_cgr_ok(rt, cgr_replay(rt, batch, &r[n].ticket));
        remember(memory, parity, &r[n]);
        check_step(rt, &m, &r[n]);
      } else if (n == 0) {
        assert_cgr_ok(rt, cgr_replay_stage(rt, batch));
        remember(memory, parity, &r[n]);
      } else {
        assert_cgr_ok(rt, cgr_replay_ahead(rt, batch, &r[n - 1].ticket));
        remember(memory, parity, &r[n]);
        check_outputs(rt, &m, &r[n - 1]);
      }
    }
    if (pipelined) {
      /* A mode cannot change while a step is staged. */
      assert_cgr_status(rt, cgr_set_replay_mode(rt, CGR_REPLAY_FUSED),
                        CGR_E_INVALID_STATE);
      assert_cgr_ok(rt, cgr_replay_ahead(rt, NULL, &r[steps - 1].ticket));
      check_step(rt, &m, &r[steps - 1]);
    }
    step += (uint64_t)steps;
  }
  sources_destroy(rt, &s);
  cgr_runtime_destroy(rt);
}

/* ---- misuse -------------------------------------------------------------- */

static void test_misuse_is_refused_and_changes_nothing(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, buckets, BUCKETS, 0, 0);
  step_record r[3];
  cgr_ticket t;
  /* Nothing staged yet. */
  assert_cgr_status(rt, cgr_replay_ahead(rt, NULL, &t), CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "no step is staged");
  /* cgr_replay does not run pipelined steps. */
  assert_cgr_status(rt, cgr_replay(rt, host_batch(rt, &m, 2, &r[0]), &t),
                    CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "cgr_replay_stage and cgr_replay_ahead");
  /* Over the largest bucket: a graph must hold it. */
  cgr_batch *batch = NULL;
  assert_cgr_status(rt, cgr_batch_begin(rt, LARGEST + 1, &batch),
                    CGR_E_BATCH_TOO_LARGE);
  assert_cgr_ok(rt, cgr_replay_stage(rt, host_batch(rt, &m, 2, &r[0])));
  /* Staged twice. */
  assert_cgr_status(rt, cgr_replay_stage(rt, host_batch(rt, &m, 3, &r[1])),
                    CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "already staged");
  assert_true(cgr_replay_staged(rt));
  /* A next batch missing a slot: refused, the staged step stays. */
  model_make_inputs(&r[1].in, 3, 3, 5);
  batch = model_begin_batch(rt, &m, &r[1].in, 3, m.pos);
  assert_cgr_status(rt, cgr_replay_ahead(rt, batch, &t),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "slot 'positions' was not given");
  assert_true(cgr_replay_staged(rt));
  /* A NULL ticket consumes the batch, launches nothing. */
  assert_cgr_status(rt,
                    cgr_replay_ahead(rt, host_batch(rt, &m, 3, &r[1]), NULL),
                    CGR_E_INVALID_ARGUMENT);
  assert_true(cgr_replay_staged(rt));
  cgr_counters c;
  assert_cgr_ok(rt, cgr_counters_get(rt, &c));
  assert_int_equal(c.graph_launches, 0);
  /* The staged step still runs as staged. */
  assert_cgr_ok(rt, cgr_replay_ahead(rt, host_batch(rt, &m, 3, &r[1]),
                                     &r[0].ticket));
  assert_int_equal(r[0].ticket.step, 0);
  assert_int_equal(r[0].ticket.batch_size, 2);
  assert_cgr_ok(rt, cgr_replay_ahead(rt, NULL, &r[1].ticket));
  assert_int_equal(r[1].ticket.step, 1);
  check_step(rt, &m, &r[1]);
  assert_false(cgr_replay_staged(rt));
  /* In another mode the pipelined calls refuse. */
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, CGR_REPLAY_FUSED));
  assert_cgr_status(rt, cgr_replay_stage(rt, host_batch(rt, &m, 2, &r[2])),
                    CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "not CGR_REPLAY_PIPELINED");
  assert_cgr_status(rt, cgr_replay_ahead(NULL, NULL, &t),
                    CGR_E_INVALID_ARGUMENT);
  assert_false(cgr_replay_staged(NULL));
  cgr_runtime_destroy(rt);
}

static cgr_status never_called_setup(void *user, cgr_runtime *rt, uint32_t lane,
                                     void **lane_user) {
  (void)user;
  (void)rt;
  (void)lane;
  (void)lane_user;
  fail_msg("a lane was set up for the pipelined mode");
  return CGR_E_INTERNAL;
}

static cgr_status never_called_build(void *user, cgr_batch *batch,
                                     void *const *requests, uint32_t count) {
  (void)user;
  (void)batch;
  (void)requests;
  (void)count;
  return CGR_E_INTERNAL;
}

static cgr_status never_called_finish(void *user, cgr_runtime *rt,
                                      const cgr_ticket *ticket,
                                      void *const *requests, uint32_t count,
                                      void **results) {
  (void)user;
  (void)rt;
  (void)ticket;
  (void)requests;
  (void)count;
  (void)results;
  return CGR_E_INTERNAL;
}

/* The batcher, lanes and groups replay with cgr_replay: they refuse the
 * mode when they are made (or switched to it), by name. */
static void test_serving_layers_refuse_the_mode(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = pipelined_runtime(&m, buckets, BUCKETS, 0, 0);
  cgr_batcher_config bconfig;
  assert_cgr_ok(rt, cgr_batcher_config_init(&bconfig));
  bconfig.build = never_called_build;
  bconfig.finish = never_called_finish;
  cgr_batcher *b = NULL;
  assert_cgr_status(rt, cgr_batcher_create(rt, &bconfig, &b),
                    CGR_E_UNSUPPORTED);
  assert_last_error_contains(rt, "CGR_REPLAY_PIPELINED");
  cgr_runtime_destroy(rt);

  cgr_config runtime;
  cgr_test_config(&runtime);
  runtime.replay_mode = CGR_REPLAY_PIPELINED;
  cgr_lanes_config lconfig;
  assert_cgr_ok(NULL, cgr_lanes_config_init(&lconfig));
  lconfig.runtime = &runtime;
  lconfig.setup = never_called_setup;
  lconfig.step = model_step;
  cgr_lanes *lanes = NULL;
  assert_cgr_status(NULL, cgr_lanes_create(&lconfig, &lanes),
                    CGR_E_UNSUPPORTED);
  assert_last_error_contains(NULL, "CGR_REPLAY_PIPELINED");

  if (cgr_test_backend != CGR_BACKEND_HOST)
    return; /* a group of two needs two GPUs or the host backend */
  cgr_group_config gconfig;
  assert_cgr_ok(NULL, cgr_group_config_init(&gconfig));
  gconfig.runtime = &runtime;
  cgr_group *group = NULL;
  assert_cgr_status(NULL, cgr_group_create(&gconfig, &group),
                    CGR_E_UNSUPPORTED);
  assert_null(group);
  assert_true(strstr(cgr_group_last_error(NULL), "CGR_REPLAY_PIPELINED"));
  runtime.replay_mode = CGR_REPLAY_FUSED;
  assert_cgr_ok(NULL, cgr_group_create(&gconfig, &group));
  assert_int_equal(cgr_group_set_replay_mode(group, CGR_REPLAY_PIPELINED),
                   CGR_E_UNSUPPORTED);
  assert_true(strstr(cgr_group_last_error(group), "CGR_REPLAY_PIPELINED"));
  cgr_group_destroy(group);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_random_steps_match),
    RUNTIME_TEST(test_random_steps_match_with_lazy_capture),
    RUNTIME_TEST(test_feedback_matches_the_reference_loop),
    RUNTIME_TEST(test_one_launch_and_one_event_per_step),
    HOST_RUNTIME_TEST(test_dropping_the_late_loads_order_is_caught),
    RUNTIME_TEST(test_runs_alternate_with_other_modes),
    RUNTIME_TEST(test_misuse_is_refused_and_changes_nothing),
    RUNTIME_TEST(test_serving_layers_refuse_the_mode),
};

CGR_TEST_MAIN(tests)
