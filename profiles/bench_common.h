/*
 * What every benchmark in profiles/ needs: a monotonic clock, nearest-rank
 * percentiles, JSON strings, JSON lines to stdout and a --out file, and the
 * directories of that file.
 */
#ifndef CGR_PROFILES_BENCH_COMMON_H
#define CGR_PROFILES_BENCH_COMMON_H

#include <stddef.h>
#include <stdio.h>

/* Microseconds on CLOCK_MONOTONIC. */
double bench_now_us(void);

/* The median of n samples and the value at `percent` (nearest rank, e.g.
 * 90 or 99). `scratch` holds n doubles; samples are left as they are. */
void bench_percentiles(const double *samples, long n, double *scratch,
                       double *median, int percent, double *at_percent);

/* s as a JSON string, quotes included, cut to fit `size`. */
void bench_json_quote(char *out, size_t size, const char *s);

/* One JSON line to stdout (flushed) and, when `file` is not NULL, to it. */
void bench_emit(FILE *file, const char *line);

/* mkdir -p of path's directory part; a failure surfaces at fopen. */
void bench_make_parent_dirs(const char *path);

#endif /* CGR_PROFILES_BENCH_COMMON_H */
