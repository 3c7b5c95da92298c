/* The benchmark tests' shared helpers (bench_fixture.h). */
#include "bench_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Runs a shell command; stdout and stderr together in r->output (free
 * with result_free). Reads the pipe to its end: a child left blocked on a
 * full pipe would never exit. */
void run_command(const char *command, result *r) {
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

void run_bench(const char *binary_path, const char *args, result *r) {
  char binary[4096];
  cgr_test_build_path(binary, sizeof binary, binary_path);
  if (access(binary, X_OK) != 0)
    fail_msg("no benchmark at %s: set CGR_TEST_BUILD_DIR", binary);
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

void result_free(result *r) {
  free(r->output);
  r->output = NULL;
}

int count_lines_with(const char *output, const char *needle) {
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

void expect_exit_zero(result *r, const char *binary) {
  if (r->exit_code != 0) {
    fprintf(stderr, "%s", r->output);
    int code = r->exit_code;
    result_free(r);
    fail_msg("%s exited %d (output above)", binary, code);
  }
}

/* Exit 77: the benchmark could not run here (bench_tp on CUDA without a
 * loadable NCCL: even one rank's group has a communicator). A skip, which
 * the GPU run counts against itself, as it does tests/nccl.c's. */
void skip_when_not_run(result *r) {
  if (r->exit_code != 77)
    return;
  static char why[512];
  const char *last = strstr(r->output, "NOT RUN");
  snprintf(why, sizeof why, "%s", last ? last : "exit 77 (not run)");
  why[strcspn(why, "\n")] = '\0';
  result_free(r);
  cgr_test_skip(why);
}
