/* profiles/report.py over the benchmarks' smoke results (written with
 * --out FILE, as profiles/gpu_run.sh runs them): the tables (and plots) of
 * docs/benchmarks.md, in a temporary folder, with the pinned rows beside
 * the host rows; the PyTorch peer's `torch` (pinned tensors) beside cgr's
 * pinned rows, also in results from before bench_replay had --source; and
 * the pipelined mode held to its GPU targets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_fixture.h"
#include "bench_paths.h"
#include "harness.h"

#ifndef REPORT_PATH
#error "REPORT_PATH must name profiles/report.py"
#endif

/* ---- the report ---------------------------------------------------------- */

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

/* A results folder of the benchmarks' smoke runs, as profiles/gpu_run.sh lays
 * it out, in a fresh temporary directory: `dir` gets its path. */
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
      {BENCH_TP_PATH, "--smoke", "tp.jsonl"},
  };
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; ++i) {
    char args[4096];
    snprintf(args, sizeof args, "%s --out '%s/results/%s'", runs[i].args, dir,
             runs[i].file);
    result r;
    run_bench(runs[i].binary, args, &r);
    if (r.exit_code == 77)
      remove_tree(dir);
    skip_when_not_run(&r);
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

/* Runs the report over dir/results into dir/docs with `python`; returns
 * benchmarks.md. */
static char *run_report(const char *python, const char *dir,
                        const char *extra) {
  char report[4096], command[16384];
  cgr_test_source_path(report, sizeof report, REPORT_PATH);
  snprintf(command, sizeof command,
           "'%s' '%s' '%s/results' --docs '%s/docs' %s 2>&1", python, report,
           dir, dir, extra);
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

/* The interpreter for report.py, or a skip when there is none. */
static const char *require_python(void) {
  const char *python = cgr_test_python();
  if (python == NULL)
    cgr_test_skip("no Python 3 interpreter: none was found at configure time "
                  "and CGR_TEST_PYTHON is unset");
  return python;
}

static void test_report_writes_every_table(void **state) {
  (void)cgr_test_runtime(state);
  const char *python = require_python();
  char dir[4096];
  make_results(dir, sizeof dir);
  char *text = run_report(python, dir, "--no-plots");
  static const char *const needles[] = {
      "## results",
      "### Replay: host time per step",
      "| config | source | floor | naive | fused | double | ingraph |",
      "| ingraph | pipelined | fused_feed | double_feed | pipelined_feed |",
      /* The backend calls per step: a pipelined step's one graph. */
      "| mode | graphs | kernels | copies | memsets | events | host waits |",
      "| pipelined | 1.00 | 0.00 | 0.00 | 0.00 | 1.00 |",
      "| pipelined_feed | 1.00 | 0.00 | 0.00 | 0.00 | 1.00 |",
      /* Both sources reach the report, each on its own row. */
      "| b=8 w=16 g=8 | host |",
      "| b=8 w=16 g=8 | pinned |",
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
      "### Tensor parallel (bench_tp)",
      "| variant | ranks | batch | host us |",
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
}

static void test_report_draws_plots(void **state) {
  (void)cgr_test_runtime(state);
  const char *python = require_python();
  char command[4200];
  snprintf(command, sizeof command,
           "'%s' -c 'import matplotlib' >/dev/null 2>&1", python);
  if (system(command) != 0)
    cgr_test_skip("matplotlib is missing (apt-get install python3-matplotlib)");
  char dir[4096];
  make_results(dir, sizeof dir);
  char *text = run_report(python, dir, "");
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
}

/* A line of text into dir/results/file (made or appended to). */
static void append_line(const char *dir, const char *file, const char *line) {
  char path[4300];
  snprintf(path, sizeof path, "%s/results/%s", dir, file);
  FILE *f = fopen(path, "a");
  if (f == NULL) {
    remove_tree(dir);
    fail_msg("cannot write %s", path);
  }
  fprintf(f, "%s\n", line);
  fclose(f);
}

/* One replay row of bucket 64, 128 pages, 8 kernels: `fields` holds its
 * backend, mode and (or not) source, and any more fields. */
static void append_replay_row(const char *dir, const char *file,
                              const char *fields, double host_us,
                              double gpu_step_us) {
  char line[1024];
  snprintf(line, sizeof line,
           "{\"bench\":\"replay\",\"timing\":\"gpu\",%s,\"bucket\":64,"
           "\"pages_per_row\":128,\"kernels\":8,\"steps\":300,"
           "\"warmup\":50,\"host_us_median\":%.3f,\"host_us_p99\":%.3f,"
           "\"prepare_us_median\":0.1,\"gpu_step_us\":%.3f,"
           "\"ratio_to_floor\":1.0,\"launches_per_step\":1.0,"
           "\"bytes_per_step\":0}",
           fields, host_us, host_us, gpu_step_us);
  append_line(dir, file, line);
}

/* GPU results as an older bench_replay wrote them (no "source": read as
 * host) beside the PyTorch peer's: `torch` goes on a pinned row, with no
 * cgr row there to compare, and the report says so; `torch_pageable` on
 * the host row. Then cgr's own pinned rows come in and stand beside it. */
static void test_report_puts_torch_beside_pinned_rows(void **state) {
  (void)state;
  cgr_test_require_host();
  const char *python = require_python();
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/cgr-report-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  assert_non_null(mkdtemp(dir));
  char results[4200];
  snprintf(results, sizeof results, "%s/results", dir);
  assert_int_equal(mkdir(results, 0777), 0);
  static const struct {
    const char *mode;
    double host_us;
  } cgr_rows[] = {{"floor", 2.0},
                  {"naive", 9.0},
                  {"fused", 4.0},
                  {"double", 2.5},
                  {"ingraph", 2.2}},
    peer_rows[] = {{"torch_floor", 8.0},
                   {"torch", 40.0},
                   {"torch_pageable", 60.0}};
  for (size_t i = 0; i < sizeof cgr_rows / sizeof cgr_rows[0]; ++i) {
    char fields[128];
    snprintf(fields, sizeof fields, "\"backend\":\"cuda\",\"mode\":\"%s\"",
             cgr_rows[i].mode);
    append_replay_row(dir, "replay.jsonl", fields, cgr_rows[i].host_us, 10.0);
  }
  for (size_t i = 0; i < sizeof peer_rows / sizeof peer_rows[0]; ++i) {
    char fields[128];
    snprintf(fields, sizeof fields, "\"backend\":\"torch\",\"mode\":\"%s\"",
             peer_rows[i].mode);
    append_replay_row(dir, "torch_replay.jsonl", fields, peer_rows[i].host_us,
                      10.0);
  }
  char *text = run_report(python, dir, "--no-plots");
  static const char *const old_needles[] = {
      "| config | source | floor | naive | fused | double | ingraph | "
      "torch_floor | torch | torch_pageable |",
      "| b=64 w=128 g=8 | host | 2.00 | 9.00 (4.50x) | 4.00 (2.00x) | "
      "2.50 (1.25x) | 2.20 (1.10x) | 8.00 (4.00x) | - | 60.00 (30.00x) |",
      "| b=64 w=128 g=8 | pinned | - | - | - | - | - | 8.00 | 40.00 | - |",
      "The PyTorch peer copies its inputs from pinned tensors (`torch`), so "
      "it is compared with cgr's pinned rows",
      "no cgr rows from pinned memory",
      "double >= 10x lower than torch, b=64 w=128 g=8 (source=host: no "
      "pinned rows; torch's are pinned) | 16.00 | met |",
  };
  for (size_t i = 0; i < sizeof old_needles / sizeof old_needles[0]; ++i)
    expect_text(text, dir, old_needles[i]);
  free(text);

  for (size_t i = 0; i < sizeof cgr_rows / sizeof cgr_rows[0]; ++i) {
    char fields[128];
    snprintf(fields, sizeof fields,
             "\"backend\":\"cuda\",\"mode\":\"%s\",\"source\":\"pinned\"",
             cgr_rows[i].mode);
    append_replay_row(dir, "replay.jsonl", fields, cgr_rows[i].host_us / 2,
                      10.0);
  }
  text = run_report(python, dir, "--no-plots");
  static const char *const new_needles[] = {
      "| b=64 w=128 g=8 | pinned | 1.00 | 4.50 (4.50x) | 2.00 (2.00x) | "
      "1.25 (1.25x) | 1.10 (1.10x) | 8.00 (8.00x) | 40.00 (40.00x) | - |",
      "double >= 10x lower than torch, b=64 w=128 g=8 (source=pinned, as "
      "torch's) | 32.00 | met |",
      "double host <= 1.5x floor, b=64 w=128 g=8 source=pinned |",
  };
  for (size_t i = 0; i < sizeof new_needles / sizeof new_needles[0]; ++i)
    expect_text(text, dir, new_needles[i]);
  if (strstr(text, "no cgr rows from pinned memory") != NULL) {
    free(text);
    remove_tree(dir);
    fail_msg("the report says there are no pinned rows, with pinned rows");
  }
  free(text);
  remove_tree(dir);
}

/* GPU results with pipelined rows: the report holds the pipelined mode
 * to its targets (host time per step <= 1.1x the floor, GPU step time <=
 * the floor's + 0.5 us, 1 graph launch and at most 1 event call per step),
 * met from one source and missed from the other. */
static void test_report_holds_pipelined_to_its_targets(void **state) {
  (void)state;
  cgr_test_require_host();
  const char *python = require_python();
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/cgr-report-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  assert_non_null(mkdtemp(dir));
  char results[4200];
  snprintf(results, sizeof results, "%s/results", dir);
  assert_int_equal(mkdir(results, 0777), 0);
  static const char *const calls[] = {
      /* within: one graph, one event */
      "\"graphs_per_step\":1.00,\"kernels_per_step\":0.00,"
      "\"copies_per_step\":0.00,\"memsets_per_step\":0.00,"
      "\"events_per_step\":1.00,\"syncs_per_step\":0.00",
      /* over: a copy and a second event of its own */
      "\"graphs_per_step\":1.00,\"kernels_per_step\":0.00,"
      "\"copies_per_step\":1.00,\"memsets_per_step\":0.00,"
      "\"events_per_step\":2.00,\"syncs_per_step\":0.00"};
  static const struct {
    const char *source, *mode;
    double host_us, gpu_us;
    int over;
  } rows[] = {{"host", "floor", 2.0, 10.0, 0},
              {"host", "pipelined", 2.1, 10.4, 0},
              {"pinned", "floor", 2.0, 10.0, 0},
              {"pinned", "pipelined", 2.5, 11.0, 1}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; ++i) {
    char fields[512];
    snprintf(fields, sizeof fields,
             "\"backend\":\"cuda\",\"mode\":\"%s\",\"source\":\"%s\",%s",
             rows[i].mode, rows[i].source, calls[rows[i].over]);
    append_replay_row(dir, "replay.jsonl", fields, rows[i].host_us,
                      rows[i].gpu_us);
  }
  char *text = run_report(python, dir, "--no-plots");
  static const char *const needles[] = {
      "| b=64 w=128 g=8 | host | 2.00 | 2.10 (1.05x) |",
      "| pipelined | 1.00 | 0.00 | 0.00-1.00 | 0.00 | 1.00-2.00 | 0.00 |",
      "| pipelined host <= 1.1x floor, b=64 w=128 g=8 source=host | 1.05 | "
      "met |",
      "| pipelined GPU step <= graph + 0.5 us, b=64 w=128 g=8 source=host "
      "(us over) | 0.40 | met |",
      "| pipelined calls per step <= 1 graph/0 kernels/0 copies/0 memsets/1 "
      "event, b=64 w=128 g=8 source=host | 1/0/0/0/1 | met |",
      "| pipelined host <= 1.1x floor, b=64 w=128 g=8 source=pinned | 1.25 | "
      "MISSED |",
      "| pipelined GPU step <= graph + 0.5 us, b=64 w=128 g=8 "
      "source=pinned (us over) | 1.00 | MISSED |",
      "| pipelined calls per step <= 1 graph/0 kernels/0 copies/0 memsets/1 "
      "event, b=64 w=128 g=8 source=pinned | 1/0/1/0/2 | MISSED |",
  };
  for (size_t i = 0; i < sizeof needles / sizeof needles[0]; ++i)
    expect_text(text, dir, needles[i]);
  free(text);
  remove_tree(dir);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_report_writes_every_table),
    RUNTIME_TEST(test_report_draws_plots),
    HOST_TEST(test_report_puts_torch_beside_pinned_rows),
    HOST_TEST(test_report_holds_pipelined_to_its_targets),
};

CGR_TEST_MAIN(tests)
