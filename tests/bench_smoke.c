/* The benchmarks run and say what they measured, as JSON lines on stdout
 * under --json: bench_replay --smoke gives one line per replay mode and
 * the floor, bench_fused_copy --smoke at least one fused line,
 * bench_capture --smoke a line per bucket and a total, bench_streams
 * --smoke a line per method, bench_batcher --smoke its max point and a
 * load, bench_lanes --smoke a decode and an overlap line with a speedup;
 * all exit 0. Timings are not checked. Then each runs again with --out
 * FILE and no --json, as gpu_suite.sh runs them: a table on stdout and no
 * JSON line there, the JSON lines in the file; profiles/report.py turns
 * those files into the tables (and plots) of docs/benchmarks.md, in a
 * temporary folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef BENCH_REPLAY_PATH
#error "BENCH_REPLAY_PATH must name the bench_replay binary"
#endif
#ifndef BENCH_FUSED_COPY_PATH
#error "BENCH_FUSED_COPY_PATH must name the bench_fused_copy binary"
#endif
#ifndef BENCH_CAPTURE_PATH
#error "BENCH_CAPTURE_PATH must name the bench_capture binary"
#endif
#ifndef BENCH_STREAMS_PATH
#error "BENCH_STREAMS_PATH must name the bench_streams binary"
#endif
#ifndef BENCH_BATCHER_PATH
#error "BENCH_BATCHER_PATH must name the bench_batcher binary"
#endif
#ifndef BENCH_LANES_PATH
#error "BENCH_LANES_PATH must name the bench_lanes binary"
#endif
#ifndef REPORT_PATH
#error "REPORT_PATH must name profiles/report.py"
#endif
/* REPORT_PYTHON: a Python 3 interpreter, undefined when CMake found none. */

typedef struct result {
  int exit_code;
  char *output; /* all of stdout and stderr, NUL-terminated */
  size_t length;
} result;

/* Runs a shell command; stdout and stderr together in r->output (free
 * with result_free). Reads the pipe to its end: a child left blocked on a
 * full pipe would never exit. */
static void run_command(const char *command, result *r) {
  FILE *pipe = popen(command, "r");
  assert_non_null(pipe);
  size_t capacity = 1 << 16;
  r->length = 0;
  r->output = malloc(capacity);
  assert_non_null(r->output);
  for (;;) {
    if (capacity - r->length < 4096) {
      capacity *= 2;
      char *grown = realloc(r->output, capacity);
      if (grown == NULL) {
        free(r->output);
        pclose(pipe);
        fail_msg("out of memory reading the output of %s", command);
      }
      r->output = grown;
    }
    size_t n = fread(r->output + r->length, 1, capacity - r->length - 1, pipe);
    if (n == 0)
      break;
    r->length += n;
  }
  r->output[r->length] = '\0';
  int status = pclose(pipe);
  r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs `binary` with `args` on the backend under test. */
static void run_bench(const char *binary, const char *args, result *r) {
  const char *backend = cgr_test_backend == CGR_BACKEND_CUDA ? "cuda" : "host";
  const char *format = "'%s' --backend %s %s 2>&1";
  int length = snprintf(NULL, 0, format, binary, backend, args);
  assert_true(length > 0);
  char *command = malloc((size_t)length + 1);
  assert_non_null(command);
  snprintf(command, (size_t)length + 1, format, binary, backend, args);
  run_command(command, r);
  free(command);
}

static void result_free(result *r) {
  free(r->output);
  r->output = NULL;
}

/* Lines of the output that contain `needle`. */
static int count_lines_with(const char *output, const char *needle) {
  int count = 0;
  const char *line = output;
  while (*line != '\0') {
    const char *end = strchr(line, '\n');
    size_t length = end ? (size_t)(end - line) : strlen(line);
    size_t needle_length = strlen(needle);
    for (size_t i = 0; i + needle_length <= length; ++i)
      if (memcmp(line + i, needle, needle_length) == 0) {
        count++;
        break;
      }
    line += length + (end ? 1 : 0);
  }
  return count;
}

static void expect_exit_zero(result *r, const char *binary) {
  if (r->exit_code != 0) {
    fprintf(stderr, "%s", r->output);
    int code = r->exit_code;
    result_free(r);
    fail_msg("%s exited %d (output above)", binary, code);
  }
}

static void test_bench_replay_runs(void **state) {
  (void)cgr_test_runtime(state);
  result r;
  run_bench(BENCH_REPLAY_PATH, "--smoke --json --steps 50", &r);
  expect_exit_zero(&r, "bench_replay");
  static const char *const modes[] = {"floor", "naive", "fused", "double",
                                      "ingraph"};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; ++i) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"mode\":\"%s\"", modes[i]);
    int lines = count_lines_with(r.output, needle);
    if (lines != 1) {
      fprintf(stderr, "%s", r.output);
      result_free(&r);
      fail_msg("bench_replay printed %d lines with %s, expected 1", lines,
               needle);
    }
  }
  assert_int_equal(count_lines_with(r.output, "\"kind\":\"meta\""), 1);
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

/* ---- the report ---------------------------------------------------------- */

#ifdef REPORT_PYTHON
static void remove_tree(const char *dir) {
  char command[4200];
  snprintf(command, sizeof command, "rm -rf '%s'", dir);
  if (system(command) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  size_t capacity = 1 << 16, length = 0;
  char *text = malloc(capacity);
  while (text != NULL) {
    if (capacity - length < 4096) {
      char *grown = realloc(text, capacity * 2);
      if (grown == NULL) {
        free(text);
        text = NULL;
        break;
      }
      text = grown;
      capacity *= 2;
    }
    size_t n = fread(text + length, 1, capacity - length - 1, f);
    if (n == 0) {
      text[length] = '\0';
      break;
    }
    length += n;
  }
  fclose(f);
  return text;
}

/* Lines of the output that start with `prefix`. */
static int count_lines_starting_with(const char *output, const char *prefix) {
  int count = 0;
  size_t prefix_length = strlen(prefix);
  for (const char *line = output; *line != '\0';) {
    if (strncmp(line, prefix, prefix_length) == 0)
      count++;
    const char *end = strchr(line, '\n');
    if (end == NULL)
      break;
    line = end + 1;
  }
  return count;
}

/* A results folder of the benchmarks' smoke runs, as gpu_suite.sh lays it
 * out, in a fresh temporary directory: `dir` gets its path. */
static void make_results(char *dir, size_t size) {
  snprintf(dir, size, "%s/cgr-report-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  assert_non_null(mkdtemp(dir));
  struct {
    const char *binary, *args, *file;
  } runs[] = {
      {BENCH_REPLAY_PATH, "--smoke --steps 50", "replay.jsonl"},
      {BENCH_FUSED_COPY_PATH, "--smoke", "fused_copy.jsonl"},
      {BENCH_CAPTURE_PATH, "--smoke", "capture.jsonl"},
      {BENCH_STREAMS_PATH, "--smoke", "streams.jsonl"},
      {BENCH_BATCHER_PATH, "--smoke", "batcher.jsonl"},
      {BENCH_LANES_PATH, "--smoke", "lanes.jsonl"},
  };
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; ++i) {
    char args[4096];
    snprintf(args, sizeof args, "%s --out '%s/results/%s'", runs[i].args, dir,
             runs[i].file);
    result r;
    run_bench(runs[i].binary, args, &r);
    expect_exit_zero(&r, runs[i].binary);
    /* Without --json the JSON lines go to the file only; a table, which
     * ends with "finished in", to stdout. */
    if (count_lines_starting_with(r.output, "{") != 0 ||
        count_lines_with(r.output, "finished in") != 1) {
      fprintf(stderr, "%s", r.output);
      result_free(&r);
      remove_tree(dir);
      fail_msg("%s --out printed JSON lines or no table (output above)",
               runs[i].binary);
    }
    result_free(&r);
    char path[4300];
    snprintf(path, sizeof path, "%s/results/%s", dir, runs[i].file);
    char *lines = read_file(path);
    int meta_lines = lines ? count_lines_with(lines, "\"kind\":\"meta\"") : 0;
    free(lines);
    if (meta_lines != 1) {
      remove_tree(dir);
      fail_msg("%s has %d meta lines, expected 1", path, meta_lines);
    }
  }
}

/* Runs the report over dir/results into dir/docs; returns benchmarks.md. */
static char *run_report(const char *dir, const char *extra) {
  char command[8192];
  snprintf(command, sizeof command,
           "'%s' '%s' '%s/results' --docs '%s/docs' %s 2>&1", REPORT_PYTHON,
           REPORT_PATH, dir, dir, extra);
  result r;
  run_command(command, &r);
  expect_exit_zero(&r, "report.py");
  result_free(&r);
  char path[4200];
  snprintf(path, sizeof path, "%s/docs/benchmarks.md", dir);
  char *text = read_file(path);
  assert_non_null(text);
  return text;
}

static void expect_text(char *text, const char *dir, const char *needle) {
  if (strstr(text, needle) == NULL) {
    fprintf(stderr, "%s", text);
    free(text);
    remove_tree(dir);
    fail_msg("benchmarks.md lacks \"%s\" (text above)", needle);
  }
}
#endif

static void test_report_writes_every_table(void **state) {
  (void)cgr_test_runtime(state);
#ifndef REPORT_PYTHON
  cgr_test_skip("no Python 3 interpreter was found at configure time");
#else
  char dir[4096];
  make_results(dir, sizeof dir);
  char *text = run_report(dir, "--no-plots");
  static const char *const needles[] = {
      "## results",
      "### Replay: host time per step",
      "| config | floor | naive | fused | double | ingraph |",
      "| b=8 w=16 g=8 |",
      "### Fused copy",
      "### Capture",
      "| bucket | wall ms |",
      "### Independent per-item updates",
      "| N | item floats | sequential | streams2 | streams4 | graph |",
      " vectorized |",
      "### Request batcher (bench_batcher)",
      "| load | offered/s | achieved/s |",
      "### Lanes (bench_lanes)",
      "| run | batch | prefill rows | one lane us |",
      "Plots were not made (--no-plots).",
  };
  for (size_t i = 0; i < sizeof needles / sizeof needles[0]; ++i)
    expect_text(text, dir, needles[i]);
  if (cgr_test_backend == CGR_BACKEND_HOST) {
    expect_text(text, dir, "CPU timings");
    expect_text(text, dir, "not held against CPU timings");
  } else {
    expect_text(text, dir, "### Targets");
  }
  free(text);
  remove_tree(dir);
#endif
}

static void test_report_draws_plots(void **state) {
  (void)cgr_test_runtime(state);
#ifndef REPORT_PYTHON
  cgr_test_skip("no Python 3 interpreter was found at configure time");
#else
  char command[4200];
  snprintf(command, sizeof command,
           "'%s' -c 'import matplotlib' >/dev/null 2>&1", REPORT_PYTHON);
  if (system(command) != 0)
    cgr_test_skip("matplotlib is missing (apt-get install python3-matplotlib)");
  char dir[4096];
  make_results(dir, sizeof dir);
  char *text = run_report(dir, "");
  static const char *const plots[] = {"replay", "fused-copy", "capture",
                                      "streams", "batcher"};
  for (size_t i = 0; i < sizeof plots / sizeof plots[0]; ++i) {
    char link[128], path[4300];
    snprintf(link, sizeof link, "(benchmarks/results-%s.png)", plots[i]);
    expect_text(text, dir, link);
    snprintf(path, sizeof path, "%s/docs/benchmarks/results-%s.png", dir,
             plots[i]);
    char *png = read_file(path);
    if (png == NULL || memcmp(png, "\x89PNG", 4) != 0) {
      free(png);
      free(text);
      remove_tree(dir);
      fail_msg("%s is missing or not a PNG", path);
    }
    free(png);
  }
  free(text);
  remove_tree(dir);
#endif
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_bench_replay_runs),
    RUNTIME_TEST(test_bench_fused_copy_runs),
    RUNTIME_TEST(test_bench_capture_runs),
    RUNTIME_TEST(test_bench_streams_runs),
    RUNTIME_TEST(test_bench_batcher_runs),
    RUNTIME_TEST(test_bench_lanes_runs),
    RUNTIME_TEST(test_report_writes_every_table),
    RUNTIME_TEST(test_report_draws_plots),
};

CGR_TEST_MAIN(tests)
