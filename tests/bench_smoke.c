/* The benchmarks run and say what they measured: bench_replay --smoke
 * gives one line per replay mode and the floor, bench_fused_copy --quick
 * (3 runs, so it stays short under ThreadSanitizer) at least one fused
 * line, both exit 0. Timings are not checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#ifndef BENCH_REPLAY_PATH
#error "BENCH_REPLAY_PATH must name the bench_replay binary"
#endif
#ifndef BENCH_FUSED_COPY_PATH
#error "BENCH_FUSED_COPY_PATH must name the bench_fused_copy binary"
#endif

typedef struct result {
  int exit_code;
  char *output; /* all of stdout and stderr, NUL-terminated */
  size_t length;
} result;

/* Runs `binary` with `args` on the backend under test; stdout and stderr
 * together in r->output (free with result_free). Reads the pipe to its end:
 * a child left blocked on a full pipe would never exit. */
static void run_bench(const char *binary, const char *args, result *r) {
  char command[4096];
  snprintf(command, sizeof command, "'%s' --backend %s %s 2>&1", binary,
           cgr_test_backend == CGR_BACKEND_CUDA ? "cuda" : "host", args);
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
        fail_msg("out of memory reading %s", binary);
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
  run_bench(BENCH_REPLAY_PATH, "--smoke --steps 50", &r);
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
  run_bench(BENCH_FUSED_COPY_PATH, "--quick --runs 3 --json", &r);
  expect_exit_zero(&r, "bench_fused_copy");
  int lines = count_lines_with(r.output, "\"method\":\"fused\"");
  if (lines < 1) {
    fprintf(stderr, "%s", r.output);
    result_free(&r);
    fail_msg("bench_fused_copy printed no \"method\":\"fused\" line");
  }
  result_free(&r);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_bench_replay_runs),
    RUNTIME_TEST(test_bench_fused_copy_runs),
};

CGR_TEST_MAIN(tests)
