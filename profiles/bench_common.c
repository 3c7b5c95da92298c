#include "bench_common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

double bench_now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void bench_percentiles(const double *samples, long n, double *scratch,
                       double *median, int percent, double *at_percent) {
  *median = 0.0;
  if (at_percent != NULL)
    *at_percent = 0.0;
  if (n <= 0)
    return;
  memcpy(scratch, samples, (size_t)n * sizeof *samples);
  qsort(scratch, (size_t)n, sizeof *scratch, compare_doubles);
  *median = n % 2 ? scratch[n / 2] : (scratch[n / 2 - 1] + scratch[n / 2]) / 2;
  if (at_percent != NULL) {
    long rank = (percent * n + 99) / 100; /* ceil(percent% of n) */
    *at_percent = scratch[rank > 0 ? rank - 1 : 0];
  }
}

void bench_json_quote(char *out, size_t size, const char *s) {
  size_t n = 0;
  if (size < 3)
    return;
  out[n++] = '"';
  for (; *s != '\0' && n + 8 < size; ++s) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      out[n++] = '\\';
      out[n++] = (char)c;
    } else if (c < 0x20) {
      n += (size_t)snprintf(out + n, size - n, "\\u%04x", c);
    } else {
      out[n++] = (char)c;
    }
  }
  out[n++] = '"';
  out[n] = '\0';
}

void bench_emit(FILE *file, const char *line) {
  fputs(line, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  if (file != NULL) {
    fputs(line, file);
    fputc('\n', file);
  }
}

void bench_make_parent_dirs(const char *path) {
  char copy[4096];
  snprintf(copy, sizeof copy, "%s", path);
  for (char *slash = strchr(copy + 1, '/'); slash != NULL;
       slash = strchr(slash + 1, '/')) {
    *slash = '\0';
    if (mkdir(copy, 0777) != 0 && errno != EEXIST)
      return;
    *slash = '/';
  }
}
