/* The benchmarks run and say what they measured, as JSON lines on stdout
 * under --json: bench_replay --smoke gives one line per replay mode and
 * the floor for each input source (pageable and pinned; --source picks
 * one), the pipelined ones at 1 graph launch, no kernel, copy or memset
 * and at most 1 event call per step, bench_fused_copy --smoke at least
 * one fused line,
 * bench_capture --smoke a line per bucket and a total, bench_streams
 * --smoke a line per method, bench_batcher --smoke its max point and a
 * load, bench_lanes --smoke a decode and an overlap line with a speedup,
 * bench_tp --smoke an inside and an outside line with host and step times,
 * bench_host_path --smoke a checked line per configuration;
 * all exit 0. Timings are not checked. (tests/bench_report.c runs them
 * again with --out FILE, as profiles/gpu_run.sh does, and the report over
 * those files.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_fixture.h"
#include "bench_paths.h"
#include "harness.h"

static const char *const replay_modes[] = {"floor",         "naive",
                                           "fused",         "double",
                                           "ingraph",       "pipelined",
                                           "fused_feed",    "double_feed",
                                           "pipelined_feed"};

/* Fails with the output unless exactly `want` lines have each mode with
 * `source` ("host" or "pinned"). */
static void expect_replay_rows(result *r, const char *source, int want) {
  for (size_t i = 0; i < sizeof replay_modes / sizeof replay_modes[0]; ++i) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"mode\":\"%s\",\"source\":\"%s\"",
             replay_modes[i], source);
    int lines = count_lines_with(r->output, needle);
    if (lines != want) {
      fprintf(stderr, "%s", r->output);
      result_free(r);
      fail_msg("bench_replay printed %d lines with %s, expected %d", lines,
               needle, want);
    }
  }
}

/* The number after "field": in `line` (up to its end), or -1 when the
 * line has no such field. */
static double line_number(const char *line, const char *end,
                          const char *field) {
  char key[64];
  snprintf(key, sizeof key, "\"%s\":", field);
  size_t key_length = strlen(key);
  for (const char *p = line; p + key_length <= end; ++p)
    if (memcmp(p, key, key_length) == 0)
      return strtod(p + key_length, NULL);
  return -1.0;
}

/* What a pipelined step may ask of the backend (cgr.h: one graph launch,
 * nothing else, and the event its graph's end is recorded with). */
static const struct {
  const char *field;
  double low, high;
} pipelined_calls[] = {{"graphs_per_step", 1.0, 1.0},
                       {"kernels_per_step", 0.0, 0.0},
                       {"copies_per_step", 0.0, 0.0},
                       {"memsets_per_step", 0.0, 0.0},
                       {"events_per_step", 0.0, 1.0}};

/* Fails with the output unless every pipelined line (pipelined and
 * pipelined_feed) of `source` asks, per step, for no more than
 * pipelined_calls allows; `want` such lines. */
static void expect_pipelined_calls(result *r, const char *source, int want) {
  char needle[64];
  snprintf(needle, sizeof needle, "\"source\":\"%s\"", source);
  int lines = 0;
  for (const char *line = r->output; *line != '\0';) {
    const char *end = strchr(line, '\n');
    if (end == NULL)
      end = line + strlen(line);
    static const char mode[] = "\"mode\":\"pipelined";
    int pipelined = 0, from_source = 0;
    for (const char *p = line; p < end; ++p) {
      if (strncmp(p, mode, sizeof mode - 1) == 0)
        pipelined = 1;
      if (strncmp(p, needle, strlen(needle)) == 0)
        from_source = 1;
    }
    if (pipelined && from_source) {
      lines++;
      for (size_t i = 0; i < sizeof pipelined_calls / sizeof *pipelined_calls;
           ++i) {
        double value = line_number(line, end, pipelined_calls[i].field);
        if (value < pipelined_calls[i].low || value > pipelined_calls[i].high) {
          fprintf(stderr, "%s", r->output);
          int length = (int)(end - line);
          result_free(r);
          fail_msg("a pipelined step asks for %s %.2f (allowed %.0f..%.0f): "
                   "%.*s",
                   pipelined_calls[i].field, value, pipelined_calls[i].low,
                   pipelined_calls[i].high, length, line);
        }
      }
    }
    line = *end != '\0' ? end + 1 : end;
  }
  if (lines != want) {
    fprintf(stderr, "%s", r->output);
    result_free(r);
    fail_msg("bench_replay printed %d pipelined lines from %s, expected %d",
             lines, source, want);
  }
}

static void test_bench_replay_runs(void **state) {
  (void)cgr_test_runtime(state);
  result r;
  run_bench(BENCH_REPLAY_PATH, "--smoke --json --steps 50", &r);
  expect_exit_zero(&r, "bench_replay");
  /* --source both, the default: every method from each source. */
  expect_replay_rows(&r, "host", 1);
  expect_replay_rows(&r, "pinned", 1);
  expect_pipelined_calls(&r, "host", 2);
  expect_pipelined_calls(&r, "pinned", 2);
  assert_int_equal(count_lines_with(r.output, "\"kind\":\"meta\""), 1);
  assert_int_equal(count_lines_with(r.output,
                                    "\"sources\":[\"host\",\"pinned\"]"),
                   1);
  result_free(&r);
}

static void test_bench_replay_source_picks_the_rows(void **state) {
  (void)cgr_test_runtime(state);
  result r;
  run_bench(BENCH_REPLAY_PATH, "--smoke --json --steps 20 --source pinned", &r);
  expect_exit_zero(&r, "bench_replay --source pinned");
  expect_replay_rows(&r, "pinned", 1);
  expect_replay_rows(&r, "host", 0);
  expect_pipelined_calls(&r, "pinned", 2);
  result_free(&r);

  run_bench(BENCH_REPLAY_PATH, "--smoke --json --steps 20 --source=host", &r);
  expect_exit_zero(&r, "bench_replay --source=host");
  expect_replay_rows(&r, "host", 1);
  expect_replay_rows(&r, "pinned", 0);
  result_free(&r);

  run_bench(BENCH_REPLAY_PATH, "--smoke --source fast", &r);
  int code = r.exit_code;
  int named = count_lines_with(r.output, "--source must be host, pinned or "
                                         "both, not 'fast'");
  if (code != 2 || named != 1) {
    fprintf(stderr, "%s", r.output);
    result_free(&r);
    fail_msg("bench_replay --source fast exited %d (expected 2) with %d "
             "lines naming the option",
             code, named);
  }
  result_free(&r);
}

static void test_bench_fused_copy_runs(void **state) {
  (void)cgr_test_runtime(state);
  result r;
  run_bench(BENCH_FUSED_COPY_PATH, "--smoke --json", &r);
  expect_exit_zero(&r, "bench_fused_copy");
  int lines = count_lines_with(r.output, "\"method\":\"fused\"");
  if (lines < 1) {
    fprintf(stderr, "%s", r.output);
    result_free(&r);
    fail_msg("bench_fused_copy printed no \"method\":\"fused\" line");
  }
  result_free(&r);
}

/* Fails with the output when fewer than `at_least` lines contain
 * `needle`. */
static void expect_lines(result *r, const char *binary, const char *needle,
                         int at_least) {
  int lines = count_lines_with(r->output, needle);
  if (lines < at_least) {
    fprintf(stderr, "%s", r->output);
    result_free(r);
    fail_msg("%s printed %d lines with %s, expected at least %d", binary, lines,
             needle, at_least);
  }
}

static void test_bench_capture_runs(void **state) {
  (void)cgr_test_runtime(state);
  result r;
  run_bench(BENCH_CAPTURE_PATH, "--smoke --json", &r);
  expect_exit_zero(&r, "bench_capture");
  /* --smoke: buckets 1, 2, 4, 8. */
  assert_int_equal(count_lines_with(r.output, "\"run\":\"lazy\""), 4);
  expect_lines(&r, "bench_capture", "\"kind\":\"total\"", 1);
  expect_lines(&r, "bench_capture", "\"graphs\":8,", 1);
  result_free(&r);
  /* --spec 2: every bucket for 1 and 3 tokens per request, one arena the
   * size of the largest key's scratch. */
  run_bench(BENCH_CAPTURE_PATH, "--smoke --json --spec 2", &r);
  expect_exit_zero(&r, "bench_capture --spec 2");
  assert_int_equal(count_lines_with(r.output, "\"run\":\"lazy\""), 8);
  expect_lines(&r, "bench_capture", "\"tokens_per_request\":3,", 4);
  expect_lines(&r, "bench_capture", "\"graphs\":16,", 1);
  expect_lines(&r, "bench_capture", "\"arena_is_largest_key\":true", 1);
  result_free(&r);
}

static void test_bench_streams_runs(void **state) {
  (void)cgr_test_runtime(state);
  result r;
  run_bench(BENCH_STREAMS_PATH, "--smoke --json", &r);
  expect_exit_zero(&r, "bench_streams");
  static const char *const methods[] = {"sequential", "streams2", "streams4",
                                        "graph", "vectorized"};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; ++i) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"method\":\"%s\"", methods[i]);
    expect_lines(&r, "bench_streams", needle, 1);
  }
  result_free(&r);
}

static void test_bench_batcher_runs(void **state) {
  (void)cgr_test_runtime(state);
  result r;
  run_bench(BENCH_BATCHER_PATH, "--smoke --json", &r);
  expect_exit_zero(&r, "bench_batcher");
  expect_lines(&r, "bench_batcher", "{\"bench\":\"batcher\",", 1);
  expect_lines(&r, "bench_batcher", "\"load\":\"max\"", 1);
  assert_int_equal(count_lines_with(r.output, "\"kind\":\"meta\""), 1);
  result_free(&r);
}

static void test_bench_lanes_runs(void **state) {
  (void)cgr_test_runtime(state);
  result r;
  run_bench(BENCH_LANES_PATH, "--smoke --json", &r);
  expect_exit_zero(&r, "bench_lanes");
  expect_lines(&r, "bench_lanes", "{\"bench\":\"lanes\",", 2);
  expect_lines(&r, "bench_lanes", "\"run\":\"decode\"", 1);
  expect_lines(&r, "bench_lanes", "\"run\":\"overlap\"", 1);
  expect_lines(&r, "bench_lanes", "\"speedup_two_vs_one\":", 2);
  assert_int_equal(count_lines_with(r.output, "\"kind\":\"meta\""), 1);
  result_free(&r);
}

/* bench_host_path --smoke, not under valgrind (profiles/bench_host_path.sh
 * counts its instructions): a line per configuration, 5 modes without
 * feedback and 4 with it (not ingraph), from each source, each with its
 * outputs checked; a bad --mode is a usage error. */
static void test_bench_host_path_runs(void **state) {
  (void)cgr_test_runtime(state);
  const char *binary = BENCH_HOST_PATH_PATH;
  result r;
  run_bench(binary, "--smoke --json", &r);
  expect_exit_zero(&r, "bench_host_path");
  assert_int_equal(count_lines_with(r.output, "\"kind\":\"meta\""), 1);
  assert_int_equal(count_lines_with(r.output, "{\"bench\":\"host_path\","), 18);
  assert_int_equal(count_lines_with(r.output, "\"feedback\":true"), 8);
  assert_int_equal(count_lines_with(r.output, "\"mode\":\"pipelined\""), 4);
  assert_int_equal(count_lines_with(r.output, "\"checked\":0,"), 0);
  result_free(&r);

  run_bench(binary, "--smoke --mode fast", &r);
  int code = r.exit_code;
  int named = count_lines_with(r.output, "--mode must be naive");
  if (code != 2 || named != 1) {
    fprintf(stderr, "%s", r.output);
    result_free(&r);
    fail_msg("bench_host_path --mode fast exited %d (expected 2) with %d "
             "lines naming the option",
             code, named);
  }
  result_free(&r);
}

static void test_bench_tp_runs(void **state) {
  (void)cgr_test_runtime(state);
  result r;
  run_bench(BENCH_TP_PATH, "--smoke --json", &r);
  skip_when_not_run(&r);
  expect_exit_zero(&r, "bench_tp");
  expect_lines(&r, "bench_tp", "{\"bench\":\"tp\",", 2);
  expect_lines(&r, "bench_tp", "\"variant\":\"inside\"", 1);
  expect_lines(&r, "bench_tp", "\"variant\":\"outside\"", 1);
  expect_lines(&r, "bench_tp", "\"host_us_per_rank_p50\":", 2);
  expect_lines(&r, "bench_tp",
               cgr_test_backend == CGR_BACKEND_HOST ? "\"gpu_us_p50\":null"
                                                    : "\"timing\":\"gpu\"",
               2);
  assert_int_equal(count_lines_with(r.output, "\"kind\":\"meta\""), 1);
  result_free(&r);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_bench_replay_runs),
    RUNTIME_TEST(test_bench_replay_source_picks_the_rows),
    RUNTIME_TEST(test_bench_fused_copy_runs),
    RUNTIME_TEST(test_bench_capture_runs),
    RUNTIME_TEST(test_bench_streams_runs),
    RUNTIME_TEST(test_bench_batcher_runs),
    RUNTIME_TEST(test_bench_lanes_runs),
    RUNTIME_TEST(test_bench_tp_runs),
    RUNTIME_TEST(test_bench_host_path_runs),
};

CGR_TEST_MAIN(tests)
