/* Lanes of the test model: per-request answers equal one lane's and an
 * eager run's under every policy; asynchronous tickets, one per lane;
 * lanes that provably run at once on the host backend (a rendezvous no
 * serialized order can pass); a prefill replayed eagerly beside a decode
 * graph, and an eager lane that fails after a graph lane launched.
 *
 * The fixture is in lanes_fixture.h; the splitter is tested in
 * lanes_split.c, failures and create errors in lanes_errors.c. */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "lanes_fixture.h"

/* Runs one step of `requests` split by lane_of over the lanes and files
 * every request's answer. Synchronous, or asynchronous then
 * cgr_lanes_wait. */
static void run_step(cgr_lanes *lanes, const request *requests, uint32_t count,
                     const uint32_t *lane_of, int wait, answer *answers) {
  uint32_t n = cgr_lanes_count(lanes);
  static lane_rows rows[CGR_MAX_LANES];
  cgr_batch *batches[CGR_MAX_LANES] = {NULL};
  cgr_ticket tickets[CGR_MAX_LANES];
  for (uint32_t lane = 0; lane < n; ++lane) {
    lane_rows_build(&rows[lane], requests, count, lane_of, lane);
    batches[lane] =
        lane_batch(cgr_lanes_runtime(lanes, lane),
                   &lane_state_of(lanes, lane)->m, &rows[lane], (cgr_slot)-1);
  }
  assert_cgr_ok(NULL, cgr_lanes_replay(lanes, batches, tickets, wait));
  if (!wait)
    assert_cgr_ok(NULL, cgr_lanes_wait(lanes, tickets));
  memset(answers, 0, count * sizeof *answers);
  for (uint32_t lane = 0; lane < n; ++lane) {
    if (batches[lane] == NULL) {
      assert_int_equal(tickets[lane].batch_size, 0);
      continue;
    }
    cgr_runtime *rt = cgr_lanes_runtime(lanes, lane);
    assert_cgr_ok(rt, cgr_ticket_query(rt, &tickets[lane]));
    collect_answers(rt, &lane_state_of(lanes, lane)->m, &tickets[lane],
                    &rows[lane], answers);
  }
  for (uint32_t i = 0; i < count; ++i) {
    assert_int_equal(answers[i].seen, 1);
    assert_int_equal(answers[i].value, requests[i].id + requests[i].pos);
  }
}

static void expect_same_answers(const answer *a, const answer *b,
                                uint32_t count, const char *what) {
  for (uint32_t i = 0; i < count; ++i)
    if (a[i].value != b[i].value ||
        memcmp(a[i].pages, b[i].pages, sizeof a[i].pages) != 0)
      fail_msg("%s: request %u answers %d, the reference %d", what, i,
               a[i].value, b[i].value);
}
static void test_lanes_answer_as_one_lane_and_eager(void **state) {
  (void)cgr_test_runtime(state);
  lanes_fixture f1, f2, f4, fe;
  fixture_init(&f1, NULL);
  fixture_init(&f2, NULL);
  fixture_init(&f4, NULL);
  fixture_init(&fe, NULL);
  cgr_lanes *one = lanes_open(&f1, 1);
  cgr_lanes *two = lanes_open(&f2, 2);
  cgr_lanes *four = lanes_open(&f4, 4);
  cgr_lanes *eager = lanes_open(&fe, 1);
  cgr_runtime *eager_rt = cgr_lanes_runtime(eager, 0);
  assert_cgr_ok(eager_rt, cgr_set_replay_mode(eager_rt, CGR_REPLAY_EAGER));
  static const cgr_split_policy policies[] = {CGR_SPLIT_ROUND_ROBIN,
                                              CGR_SPLIT_BY_PHASE,
                                              CGR_SPLIT_BALANCED};
  static request requests[LARGEST];
  static answer reference[LARGEST], single[LARGEST], split_answers[LARGEST];
  uint32_t lane_of[LARGEST], zeros[LARGEST] = {0};
  uint64_t seed = 31337;
  for (int round = 0; round < 12; ++round) {
    uint32_t count = 2 + below(&seed, LARGEST - 1);
    make_requests(requests, count, &seed);
    run_step(eager, requests, count, zeros, 1, reference);
    run_step(one, requests, count, zeros, 1, single);
    expect_same_answers(single, reference, count, "one lane vs eager");
    for (size_t p = 0; p < 3; ++p) {
      split_requests(requests, count, policies[p], 2, lane_of);
      run_step(two, requests, count, lane_of, 1, split_answers);
      expect_same_answers(split_answers, reference, count,
                          "two lanes vs eager");
      split_requests(requests, count, policies[p], 4, lane_of);
      run_step(four, requests, count, lane_of, round % 2, split_answers);
      expect_same_answers(split_answers, reference, count,
                          "four lanes vs eager");
    }
  }
  cgr_replay_stats replays;
  assert_cgr_ok(eager_rt,
                cgr_replay_stats_get(eager_rt, CGR_REPLAY_EAGER, &replays));
  assert_int_equal(replays.eager_steps, 12);
  lanes_close(one, &f1);
  lanes_close(two, &f2);
  lanes_close(four, &f4);
  lanes_close(eager, &fe);
}

static void test_async_replay_gives_one_ticket_per_lane(void **state) {
  (void)cgr_test_runtime(state);
  lanes_fixture f;
  fixture_init(&f, NULL);
  cgr_lanes *lanes = lanes_open(&f, 3);
  request requests[12];
  uint32_t lane_of[12];
  uint64_t seed = 11;
  make_requests(requests, 12, &seed);
  split_requests(requests, 12, CGR_SPLIT_ROUND_ROBIN, 3, lane_of);
  lane_rows rows[3];
  cgr_batch *batches[3];
  cgr_ticket tickets[3];
  for (int step = 0; step < 4; ++step) {
    for (uint32_t lane = 0; lane < 3; ++lane) {
      lane_rows_build(&rows[lane], requests, 12, lane_of, lane);
      batches[lane] =
          lane_batch(cgr_lanes_runtime(lanes, lane),
                     &lane_state_of(lanes, lane)->m, &rows[lane], (cgr_slot)-1);
    }
    /* Lane 1 sits every other step out. */
    if (step % 2 == 1) {
      cgr_batch_discard(batches[1]);
      batches[1] = NULL;
    }
    assert_cgr_ok(NULL, cgr_lanes_replay(lanes, batches, tickets, 0));
    for (uint32_t lane = 0; lane < 3; ++lane)
      assert_int_equal(tickets[lane].batch_size, batches[lane] == NULL ? 0 : 4);
    assert_int_equal(tickets[1].padded_batch, step % 2 == 1 ? 0 : 4);
    if (step < 2) {
      assert_cgr_ok(NULL, cgr_lanes_wait(lanes, tickets));
    } else {
      /* Or each lane's own ticket on its own runtime. */
      for (uint32_t lane = 0; lane < 3; ++lane)
        if (tickets[lane].batch_size > 0)
          assert_cgr_ok(cgr_lanes_runtime(lanes, lane),
                        cgr_ticket_wait(cgr_lanes_runtime(lanes, lane),
                                        &tickets[lane]));
    }
    answer answers[12];
    memset(answers, 0, sizeof answers);
    for (uint32_t lane = 0; lane < 3; ++lane)
      if (batches[lane] != NULL)
        collect_answers(cgr_lanes_runtime(lanes, lane),
                        &lane_state_of(lanes, lane)->m, &tickets[lane],
                        &rows[lane], answers);
  }
  /* Lane 1 ran only the even steps: its step count says so. */
  cgr_replay_stats stats;
  cgr_runtime *rt1 = cgr_lanes_runtime(lanes, 1);
  assert_cgr_ok(rt1,
                cgr_replay_stats_get(rt1, CGR_REPLAY_DOUBLE_BUFFERED, &stats));
  assert_int_equal(stats.steps, 2);
  assert_cgr_status(NULL, cgr_lanes_wait(NULL, tickets),
                    CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(NULL, cgr_lanes_wait(lanes, NULL), CGR_E_INVALID_ARGUMENT);
  lanes_close(lanes, &f);
}
static void test_lanes_run_concurrently_on_the_host_backend(void **state) {
  (void)cgr_test_runtime(state);
  cgr_test_require_host();
  enum { LANES = 4, COUNT = 20 };
  rendezvous meet;
  memset(&meet, 0, sizeof meet);
  lanes_fixture f;
  fixture_init(&f, &meet);
  cgr_lanes *lanes = lanes_open(&f, LANES);
  /* The warm-ups ran the node disarmed. */
  assert_int_equal(atomic_load(&meet.arrived), 0);
  request requests[COUNT];
  uint64_t seed = 3;
  static lane_rows rows[LANES];
  cgr_batch *batches[LANES];
  cgr_ticket tickets[LANES];
  for (int step = 0; step < 3; ++step) {
    make_requests(requests, COUNT, &seed);
    fill_round_robin(lanes, requests, COUNT, rows, batches);
    rendezvous_arm(&meet, LANES, 5000);
    assert_cgr_ok(NULL, cgr_lanes_replay(lanes, batches, tickets, 1));
    atomic_store(&meet.armed, 0);
    if (atomic_load(&meet.timed_out) != 0)
      fail_msg("step %d: %u of %u lanes waited 5 s for the others: the "
               "lanes did not run at once",
               step, atomic_load(&meet.timed_out), LANES);
    assert_int_equal(atomic_load(&meet.met), LANES);
    check_lanes(lanes, rows, batches, tickets, COUNT);
  }
  /* The control: one lane alone cannot meet the others, so the test above
   * would fail if cgr_lanes_replay ran the lanes one after the other. */
  make_requests(requests, COUNT, &seed);
  fill_round_robin(lanes, requests, COUNT, rows, batches);
  for (uint32_t lane = 1; lane < LANES; ++lane) {
    cgr_batch_discard(batches[lane]);
    batches[lane] = NULL;
  }
  rendezvous_arm(&meet, LANES, 200);
  assert_cgr_ok(NULL, cgr_lanes_replay(lanes, batches, tickets, 1));
  atomic_store(&meet.armed, 0);
  assert_int_equal(atomic_load(&meet.timed_out), 1);
  assert_int_equal(atomic_load(&meet.met), 0);
  lanes_close(lanes, &f);
}

static void test_prefill_runs_eagerly_beside_a_decode_graph(void **state) {
  (void)cgr_test_runtime(state);
  int host = cgr_test_backend == CGR_BACKEND_HOST;
  enum { DECODE = 5, PREFILL = 48, ALL = DECODE + PREFILL };
  rendezvous meet;
  memset(&meet, 0, sizeof meet);
  lanes_fixture f;
  fixture_init(&f, host ? &meet : NULL);
  cgr_lanes *lanes = lanes_open(&f, 2);
  static request requests[ALL];
  static lane_rows rows[2];
  uint32_t lane_of[ALL];
  uint64_t seed = 17;
  int eager_steps[2] = {0, 0};
  for (int step = 0; step < 4; ++step) {
    /* Five requests decode, one prompt of 48 tokens (a row each)
     * prefills. by_phase puts context on lane 0: cgr_lanes_replay must
     * still launch lane 1's graph before lane 0's eager step blocks. Odd
     * steps swap the lanes. Steps 0 and 1 are eager by the mode, 2 and 3
     * by size (48 rows, over the largest bucket). */
    make_requests(requests, ALL, &seed);
    for (uint32_t i = 0; i < ALL; ++i) {
      requests[i].phase = i < DECODE ? CGR_PHASE_GENERATION : CGR_PHASE_CONTEXT;
      if (i >= DECODE)
        requests[i].pos = (int32_t)(i - DECODE);
    }
    split_requests(requests, ALL, CGR_SPLIT_BY_PHASE, 2, lane_of);
    for (uint32_t i = 0; i < ALL; ++i)
      assert_int_equal(lane_of[i], i < DECODE ? 1 : 0);
    uint32_t prefill_lane = (uint32_t)step % 2;
    if (prefill_lane == 1)
      for (uint32_t i = 0; i < ALL; ++i)
        lane_of[i] = 1 - lane_of[i];
    cgr_runtime *prefill_rt = cgr_lanes_runtime(lanes, prefill_lane);
    if (step < 2)
      assert_cgr_ok(prefill_rt,
                    cgr_set_replay_mode(prefill_rt, CGR_REPLAY_EAGER));
    cgr_batch *batches[2];
    cgr_ticket tickets[2];
    for (uint32_t lane = 0; lane < 2; ++lane) {
      lane_rows_build(&rows[lane], requests, ALL, lane_of, lane);
      batches[lane] =
          lane_batch(cgr_lanes_runtime(lanes, lane),
                     &lane_state_of(lanes, lane)->m, &rows[lane], (cgr_slot)-1);
    }
    if (host)
      rendezvous_arm(&meet, 2, 5000);
    assert_cgr_ok(NULL, cgr_lanes_replay(lanes, batches, tickets, 1));
    atomic_store(&meet.armed, 0);
    const cgr_ticket *decode = &tickets[1 - prefill_lane];
    const cgr_ticket *prefill = &tickets[prefill_lane];
    assert_int_equal(decode->padded_batch, 8);
    assert_true(decode->set >= 0);
    assert_int_equal(prefill->set, -1);
    assert_int_equal(prefill->padded_batch, PREFILL);
    eager_steps[prefill_lane]++;
    if (host) {
      /* The decode graph's last node waited for the prefill's: they
       * overlapped. */
      if (atomic_load(&meet.timed_out) != 0)
        fail_msg("step %d: the decode graph and the eager prefill (lane "
                 "%u) did not run at once",
                 step, prefill_lane);
      assert_int_equal(atomic_load(&meet.met), 2);
    }
    check_lanes(lanes, rows, batches, tickets, ALL);
    assert_cgr_ok(prefill_rt,
                  cgr_set_replay_mode(prefill_rt, CGR_REPLAY_DOUBLE_BUFFERED));
  }
  for (uint32_t lane = 0; lane < 2; ++lane) {
    cgr_runtime *rt = cgr_lanes_runtime(lanes, lane);
    cgr_replay_stats eager_mode, graph_mode;
    assert_cgr_ok(rt, cgr_replay_stats_get(rt, CGR_REPLAY_EAGER, &eager_mode));
    assert_cgr_ok(rt, cgr_replay_stats_get(rt, CGR_REPLAY_DOUBLE_BUFFERED,
                                           &graph_mode));
    assert_int_equal(eager_mode.eager_steps + graph_mode.eager_steps,
                     eager_steps[lane]);
    cgr_counters counters;
    assert_cgr_ok(rt, cgr_counters_get(rt, &counters));
    assert_true(counters.graph_launches >= 2);
  }

  /* An eager lane that fails after a graph lane launched: the graph runs
   * to the end, the eager lane is named. */
  make_requests(requests, ALL, &seed);
  for (uint32_t i = 0; i < ALL; ++i)
    lane_of[i] = i < DECODE ? 1 : 0;
  cgr_runtime *rt0 = cgr_lanes_runtime(lanes, 0);
  assert_cgr_ok(rt0, cgr_set_replay_mode(rt0, CGR_REPLAY_EAGER));
  cgr_batch *batches[2];
  cgr_ticket tickets[2];
  for (uint32_t lane = 0; lane < 2; ++lane)
    lane_rows_build(&rows[lane], requests, ALL, lane_of, lane);
  batches[0] = lane_batch(rt0, &lane_state_of(lanes, 0)->m, &rows[0],
                          lane_state_of(lanes, 0)->m.ids);
  batches[1] = lane_batch(cgr_lanes_runtime(lanes, 1),
                          &lane_state_of(lanes, 1)->m, &rows[1], (cgr_slot)-1);
  assert_cgr_status(NULL, cgr_lanes_replay(lanes, batches, tickets, 1),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "lane 0");
  assert_last_error_contains(NULL, "input_ids");
  assert_int_equal(tickets[0].batch_size, 0);
  assert_int_equal(tickets[1].batch_size, DECODE);
  assert_cgr_ok(NULL, cgr_lanes_wait(lanes, tickets));
  answer answers[ALL];
  memset(answers, 0, sizeof answers);
  collect_answers(cgr_lanes_runtime(lanes, 1), &lane_state_of(lanes, 1)->m,
                  &tickets[1], &rows[1], answers);
  lanes_close(lanes, &f);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_lanes_answer_as_one_lane_and_eager),
    RUNTIME_TEST(test_async_replay_gives_one_ticket_per_lane),
    HOST_RUNTIME_TEST(test_lanes_run_concurrently_on_the_host_backend),
    RUNTIME_TEST(test_prefill_runs_eagerly_beside_a_decode_graph),
};

CGR_TEST_MAIN(tests)
