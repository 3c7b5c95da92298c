/* The splitter (cgr_split): its three policies checked against their
 * definitions on generated request sets, balanced also against a
 * brute-force optimum and with a user's work estimator; one lane below the
 * minimum; bad arguments answered with a message. Every statement of a
 * definition here is independent of the library's code. */
#include <stdint.h>
#include <string.h>

#include "lanes_fixture.h"

enum { MAX_REQUESTS = 300 };

/* ---- the splitter: independent statements of each definition ----------- */

/* Items with random phases (context with probability context_percent) and
 * tokens from 1 to max_tokens. */
static void random_items(cgr_split_item *items, uint32_t count,
                         uint32_t context_percent, uint32_t max_tokens,
                         uint64_t *seed) {
  for (uint32_t i = 0; i < count; ++i) {
    items[i].phase = below(seed, 100) < context_percent ? CGR_PHASE_CONTEXT
                                                        : CGR_PHASE_GENERATION;
    items[i].tokens = 1 + below(seed, max_tokens);
    items[i].request = NULL;
  }
}

static void expect_all_lane_zero(const uint32_t *lane_of, uint32_t count,
                                 const char *why) {
  for (uint32_t i = 0; i < count; ++i)
    if (lane_of[i] != 0)
      fail_msg("%s: lane_of[%u] = %u, expected 0", why, i, lane_of[i]);
}

static void test_round_robin_sends_request_i_to_lane_i_mod_lanes(void **state) {
  (void)state;
  static cgr_split_item items[MAX_REQUESTS + 1];
  static uint32_t lane_of[MAX_REQUESTS + 1];
  for (uint64_t s = 1; s <= 3; ++s) {
    uint64_t seed = s * 7919;
    for (uint32_t lanes = 1; lanes <= CGR_MAX_LANES; ++lanes) {
      for (uint32_t count = 0; count <= MAX_REQUESTS; ++count) {
        random_items(items, count, 50, 100, &seed);
        cgr_split_config config = {.policy = CGR_SPLIT_ROUND_ROBIN,
                                   .lanes = lanes};
        split(&config, items, count, lane_of);
        for (uint32_t i = 0; i < count; ++i)
          if (lane_of[i] != i % lanes)
            fail_msg("%u lanes, %u requests: lane_of[%u] = %u", lanes, count, i,
                     lane_of[i]);
      }
    }
  }
}

/* What by_phase must do, stated from the header: both phases present on
 * two lanes or more: round(lanes * context / count) lanes for context,
 * clamped to [1, lanes - 1], context first, each phase alternating over
 * its own lanes in request order; one phase: alternating over all. */
static void check_by_phase(const cgr_split_item *items, uint32_t count,
                           uint32_t lanes, const uint32_t *lane_of) {
  uint32_t context = 0;
  for (uint32_t i = 0; i < count; ++i)
    context += items[i].phase == CGR_PHASE_CONTEXT;
  uint32_t generation = count - context;
  if (count < 2 || lanes == 1) {
    expect_all_lane_zero(lane_of, count, "by_phase below the minimum");
    return;
  }
  if (context == 0 || generation == 0) {
    for (uint32_t i = 0; i < count; ++i)
      if (lane_of[i] != i % lanes)
        fail_msg("by_phase, one phase, %u lanes: lane_of[%u] = %u", lanes, i,
                 lane_of[i]);
    return;
  }
  /* round(x) = floor(x + 1/2), with x = lanes * context / count. */
  uint32_t rounded = (2 * lanes * context + count) / (2 * count);
  uint32_t context_lanes = rounded < 1           ? 1
                           : rounded > lanes - 1 ? lanes - 1
                                                 : rounded;
  uint32_t generation_lanes = lanes - context_lanes;
  int holds[CGR_MAX_LANES][2] = {{0}};
  uint32_t nth_context = 0, nth_generation = 0;
  for (uint32_t i = 0; i < count; ++i) {
    int is_context = items[i].phase == CGR_PHASE_CONTEXT;
    uint32_t want = is_context
                        ? nth_context++ % context_lanes
                        : context_lanes + nth_generation++ % generation_lanes;
    if (lane_of[i] != want)
      fail_msg("by_phase, %u lanes, %u context of %u: lane_of[%u] = %u, "
               "expected %u (%u context lanes)",
               lanes, context, count, i, lane_of[i], want, context_lanes);
    holds[lane_of[i]][is_context] = 1;
  }
  for (uint32_t lane = 0; lane < lanes; ++lane)
    if (holds[lane][0] && holds[lane][1])
      fail_msg("by_phase: lane %u holds both phases", lane);
}

static void test_by_phase_keeps_phases_apart_and_alternates(void **state) {
  (void)state;
  static cgr_split_item items[MAX_REQUESTS];
  static uint32_t lane_of[MAX_REQUESTS];
  static const uint32_t context_percents[] = {0, 3, 25, 50, 75, 97, 100};
  uint64_t seed = 42;
  for (size_t p = 0; p < sizeof context_percents / sizeof *context_percents;
       ++p) {
    for (uint32_t lanes = 1; lanes <= CGR_MAX_LANES; ++lanes) {
      for (uint32_t count = 0; count <= 120; ++count) {
        random_items(items, count, context_percents[p], 600, &seed);
        cgr_split_config config = {.policy = CGR_SPLIT_BY_PHASE,
                                   .lanes = lanes};
        split(&config, items, count, lane_of);
        check_by_phase(items, count, lanes, lane_of);
      }
    }
  }
  /* A worked case: 3 context of 8 on 4 lanes is round(1.5) = 2 lanes. */
  cgr_split_item worked[8];
  for (uint32_t i = 0; i < 8; ++i)
    worked[i] =
        (cgr_split_item){i % 3 == 0 ? CGR_PHASE_CONTEXT : CGR_PHASE_GENERATION,
                         1, NULL};
  uint32_t lanes_of_worked[8];
  cgr_split_config config = {.policy = CGR_SPLIT_BY_PHASE, .lanes = 4};
  split(&config, worked, 8, lanes_of_worked);
  static const uint32_t expected[8] = {0, 2, 3, 1, 2, 3, 0, 2};
  for (uint32_t i = 0; i < 8; ++i)
    assert_int_equal(lanes_of_worked[i], expected[i]);
}

typedef struct work_counter {
  int calls;
} work_counter;

/* The greedy as the header words it: by decreasing work (ties in request
 * order), each to the lane with the least work so far (ties to the lowest
 * lane). Insertion sort: no shared code with the library's qsort. */
static void reference_balanced(const uint64_t *work, uint32_t count,
                               uint32_t lanes, uint32_t *lane_of,
                               uint64_t *heaviest) {
  static uint32_t order[MAX_REQUESTS];
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t j = i;
    while (j > 0 && work[order[j - 1]] < work[i]) {
      order[j] = order[j - 1];
      --j;
    }
    order[j] = i;
  }
  uint64_t load[CGR_MAX_LANES] = {0};
  for (uint32_t k = 0; k < count; ++k) {
    uint32_t lightest = 0;
    for (uint32_t lane = 1; lane < lanes; ++lane)
      if (load[lane] < load[lightest])
        lightest = lane;
    load[lightest] += work[order[k]];
    lane_of[order[k]] = lightest;
  }
  *heaviest = 0;
  for (uint32_t lane = 0; lane < lanes; ++lane)
    if (load[lane] > *heaviest)
      *heaviest = load[lane];
}

static uint64_t heaviest_lane(const uint64_t *work, uint32_t count,
                              uint32_t lanes, const uint32_t *lane_of) {
  uint64_t load[CGR_MAX_LANES] = {0}, heaviest = 0;
  for (uint32_t i = 0; i < count; ++i)
    load[lane_of[i]] += work[i];
  for (uint32_t lane = 0; lane < lanes; ++lane)
    if (load[lane] > heaviest)
      heaviest = load[lane];
  return heaviest;
}

/* The smallest heaviest lane over every assignment (item 0 on lane 0:
 * lanes are interchangeable). */
static uint64_t optimum(const uint64_t *work, uint32_t count, uint32_t lanes) {
  uint32_t assignment[16] = {0};
  uint64_t best = UINT64_MAX;
  for (;;) {
    uint64_t load[CGR_MAX_LANES] = {0}, heaviest = 0;
    for (uint32_t i = 0; i < count; ++i)
      load[assignment[i]] += work[i];
    for (uint32_t lane = 0; lane < lanes; ++lane)
      if (load[lane] > heaviest)
        heaviest = load[lane];
    if (heaviest < best)
      best = heaviest;
    uint32_t i = 1;
    while (i < count && ++assignment[i] == lanes)
      assignment[i++] = 0;
    if (i >= count)
      return best;
  }
}

static void test_balanced_is_the_documented_greedy(void **state) {
  (void)state;
  static cgr_split_item items[MAX_REQUESTS];
  static uint32_t lane_of[MAX_REQUESTS], expected[MAX_REQUESTS];
  static uint64_t work[MAX_REQUESTS];
  /* Wide spreads, many ties, all equal. */
  static const uint32_t max_tokens[] = {1000, 4, 1};
  uint64_t seed = 2024;
  for (size_t t = 0; t < sizeof max_tokens / sizeof *max_tokens; ++t) {
    for (uint32_t lanes = 1; lanes <= CGR_MAX_LANES; ++lanes) {
      for (uint32_t count = 0; count <= MAX_REQUESTS; count += 1 + count / 8) {
        random_items(items, count, 30, max_tokens[t], &seed);
        for (uint32_t i = 0; i < count; ++i)
          work[i] = items[i].tokens; /* the default estimator */
        cgr_split_config config = {.policy = CGR_SPLIT_BALANCED,
                                   .lanes = lanes};
        split(&config, items, count, lane_of);
        if (count < 2 || lanes == 1) {
          expect_all_lane_zero(lane_of, count, "balanced below the minimum");
          continue;
        }
        uint64_t heaviest = 0;
        reference_balanced(work, count, lanes, expected, &heaviest);
        for (uint32_t i = 0; i < count; ++i)
          if (lane_of[i] != expected[i])
            fail_msg("balanced, %u lanes, %u requests (tokens up to %u): "
                     "lane_of[%u] = %u, the greedy gives %u",
                     lanes, count, max_tokens[t], i, lane_of[i], expected[i]);
        assert_true(heaviest_lane(work, count, lanes, lane_of) == heaviest);
      }
    }
  }
}

static void
test_balanced_heaviest_lane_within_optimum_plus_largest(void **state) {
  (void)state;
  cgr_split_item items[10];
  uint32_t lane_of[10];
  uint64_t work[10];
  uint64_t seed = 99;
  int tight = 0; /* sets where the greedy missed the optimum */
  for (int round = 0; round < 150; ++round) {
    uint32_t lanes = 2 + below(&seed, 2);
    uint32_t count = 2 + below(&seed, 9);
    random_items(items, count, 50, round % 3 == 0 ? 10 : 1000, &seed);
    uint64_t largest = 0;
    for (uint32_t i = 0; i < count; ++i) {
      work[i] = items[i].tokens;
      if (work[i] > largest)
        largest = work[i];
    }
    cgr_split_config config = {.policy = CGR_SPLIT_BALANCED, .lanes = lanes};
    split(&config, items, count, lane_of);
    uint64_t heaviest = heaviest_lane(work, count, lanes, lane_of);
    uint64_t best = optimum(work, count, lanes);
    if (heaviest < best || heaviest > best + largest)
      fail_msg("balanced, %u lanes, %u requests: heaviest lane %llu, "
               "optimum %llu, largest request %llu",
               lanes, count, (unsigned long long)heaviest,
               (unsigned long long)best, (unsigned long long)largest);
    tight += heaviest > best;
  }
  /* The bound was exercised, not only met by optimal answers. */
  assert_true(tight > 0);
}

/* A user estimator: the request's own cost when it has one, else
 * tokens squared (attention grows with the square of a prompt). */
typedef struct costed {
  uint64_t cost;
} costed;

static uint64_t user_work(void *user, const cgr_split_item *item) {
  work_counter *counter = user;
  counter->calls++;
  if (item->request != NULL)
    return ((const costed *)item->request)->cost;
  return item->tokens * item->tokens;
}

static void test_balanced_honours_the_user_estimator(void **state) {
  (void)state;
  enum { COUNT = 40 };
  cgr_split_item items[COUNT];
  costed costs[COUNT];
  uint32_t lane_of[COUNT], expected[COUNT], by_tokens[COUNT];
  uint64_t work[COUNT];
  uint64_t seed = 7;
  int differs = 0;
  for (int round = 0; round < 20; ++round) {
    random_items(items, COUNT, 40, 300, &seed);
    for (uint32_t i = 0; i < COUNT; ++i) {
      /* Every third request carries its own cost. */
      costs[i].cost = 1 + below(&seed, 50000);
      items[i].request = i % 3 == 0 ? &costs[i] : NULL;
      work[i] = i % 3 == 0 ? costs[i].cost : items[i].tokens * items[i].tokens;
    }
    work_counter counter = {0};
    cgr_split_config config = {.policy = CGR_SPLIT_BALANCED,
                               .lanes = 3,
                               .work = user_work,
                               .work_user = &counter};
    split(&config, items, COUNT, lane_of);
    assert_int_equal(counter.calls, COUNT);
    uint64_t heaviest = 0;
    reference_balanced(work, COUNT, 3, expected, &heaviest);
    for (uint32_t i = 0; i < COUNT; ++i)
      assert_int_equal(lane_of[i], expected[i]);
    /* Without it, tokens: a different answer on most sets. */
    config.work = NULL;
    split(&config, items, COUNT, by_tokens);
    for (uint32_t i = 0; i < COUNT; ++i)
      work[i] = items[i].tokens;
    reference_balanced(work, COUNT, 3, expected, &heaviest);
    for (uint32_t i = 0; i < COUNT; ++i)
      assert_int_equal(by_tokens[i], expected[i]);
    differs += memcmp(lane_of, by_tokens, sizeof lane_of) != 0;
  }
  assert_true(differs > 0);
}

static void test_below_the_minimum_one_lane_runs_everything(void **state) {
  (void)state;
  enum { COUNT = 64 };
  cgr_split_item items[COUNT];
  uint32_t lane_of[COUNT];
  uint64_t seed = 5;
  random_items(items, COUNT, 50, 100, &seed);
  static const cgr_split_policy policies[] = {CGR_SPLIT_ROUND_ROBIN,
                                              CGR_SPLIT_BY_PHASE,
                                              CGR_SPLIT_BALANCED};
  for (size_t p = 0; p < 3; ++p) {
    cgr_split_config config = {.policy = policies[p],
                               .lanes = 4,
                               .min_requests_for_parallel = 10};
    for (uint32_t count = 0; count < 10; ++count) {
      split(&config, items, count, lane_of);
      expect_all_lane_zero(lane_of, count, "under min_requests_for_parallel");
    }
    /* At the minimum the policy applies: some request leaves lane 0. */
    split(&config, items, 10, lane_of);
    uint32_t off_lane_zero = 0;
    for (uint32_t i = 0; i < 10; ++i)
      off_lane_zero += lane_of[i] != 0;
    assert_true(off_lane_zero > 0);
    /* The default minimum is 2: one request stays on lane 0, two split. */
    config.min_requests_for_parallel = 0;
    items[0].phase = items[1].phase = CGR_PHASE_GENERATION;
    split(&config, items, 1, lane_of);
    assert_int_equal(lane_of[0], 0);
    split(&config, items, 2, lane_of);
    assert_int_equal(lane_of[0] + lane_of[1], 1);
    /* One lane: everything on it, whatever the count. */
    config.lanes = 1;
    split(&config, items, COUNT, lane_of);
    expect_all_lane_zero(lane_of, COUNT, "one lane");
  }
}

static void test_split_rejects_bad_arguments_with_a_message(void **state) {
  (void)state;
  cgr_split_item items[4] = {{CGR_PHASE_GENERATION, 1, NULL},
                             {CGR_PHASE_CONTEXT, 9, NULL},
                             {CGR_PHASE_GENERATION, 1, NULL},
                             {CGR_PHASE_GENERATION, 1, NULL}};
  uint32_t lane_of[4];
  cgr_split_config config = {.policy = CGR_SPLIT_ROUND_ROBIN, .lanes = 2};
  assert_cgr_status(NULL, cgr_split(NULL, items, 4, lane_of),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "config");
  assert_cgr_status(NULL, cgr_split(&config, NULL, 4, lane_of),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "items");
  assert_cgr_status(NULL, cgr_split(&config, items, 4, NULL),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "lane_of");
  /* Nothing to split: NULL arrays are fine. */
  assert_cgr_ok(NULL, cgr_split(&config, NULL, 0, NULL));
  config.lanes = 0;
  assert_cgr_status(NULL, cgr_split(&config, items, 4, lane_of),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "config->lanes");
  config.lanes = CGR_MAX_LANES + 1;
  assert_cgr_status(NULL, cgr_split(&config, items, 4, lane_of),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "config->lanes");
  config.lanes = 2;
  config.policy = (cgr_split_policy)3;
  assert_cgr_status(NULL, cgr_split(&config, items, 4, lane_of),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "config->policy");
  config.policy = CGR_SPLIT_BY_PHASE;
  items[2].phase = (cgr_phase)2;
  assert_cgr_status(NULL, cgr_split(&config, items, 4, lane_of),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "items[2].phase");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_robin_sends_request_i_to_lane_i_mod_lanes),
    cmocka_unit_test(test_by_phase_keeps_phases_apart_and_alternates),
    cmocka_unit_test(test_balanced_is_the_documented_greedy),
    cmocka_unit_test(test_balanced_heaviest_lane_within_optimum_plus_largest),
    cmocka_unit_test(test_balanced_honours_the_user_estimator),
    cmocka_unit_test(test_below_the_minimum_one_lane_runs_everything),
    cmocka_unit_test(test_split_rejects_bad_arguments_with_a_message),
};

CGR_TEST_MAIN(tests)
