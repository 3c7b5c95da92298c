/*
 * What the benchmark tests share (tests/bench_smoke.c runs the benchmarks,
 * tests/bench_report.c the report over their results): running a command
 * or a benchmark and reading what it printed.
 */
#ifndef CGR_TESTS_BENCH_FIXTURE_H
#define CGR_TESTS_BENCH_FIXTURE_H

#include <stddef.h>

typedef struct result {
  int exit_code;
  char *output; /* all of stdout and stderr, NUL-terminated */
  size_t length;
} result;

/* Runs a shell command; stdout and stderr together in r->output (free
 * with result_free). */
void run_command(const char *command, result *r);
/* Runs `binary` (relative to the build tree) with `args` on the backend
 * under test. */
void run_bench(const char *binary_path, const char *args, result *r);
void result_free(result *r);
/* Lines of the output that contain `needle`. */
int count_lines_with(const char *output, const char *needle);
/* Fails with the output unless the command exited 0. */
void expect_exit_zero(result *r, const char *binary);
/* Exit 77: the benchmark could not run here: a skip. */
void skip_when_not_run(result *r);

#endif /* CGR_TESTS_BENCH_FIXTURE_H */
