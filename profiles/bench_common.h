/*
 * What every benchmark in profiles/ needs: a monotonic clock, nearest-rank
 * percentiles, JSON strings, JSON lines to stdout and a --out file, and the
 * directories of that file; the command line every benchmark shares (and its
 * exit codes), the --out file, and the meta line's shared fields.
 */
#ifndef CGR_PROFILES_BENCH_COMMON_H
#define CGR_PROFILES_BENCH_COMMON_H

#include <stddef.h>
#include <stdio.h>

#include "cgr/cgr.h"

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

/* ---- command line -------------------------------------------------------- */

/* Every benchmark's exit codes: 0 ok, 1 a failure, 2 bad usage. */
enum { BENCH_EXIT_OK = 0, BENCH_EXIT_FAILED = 1, BENCH_EXIT_USAGE = 2 };

/* How big a grid: the full one, --quick (seconds) or --smoke (tests). */
typedef enum bench_grid {
  BENCH_GRID_FULL,
  BENCH_GRID_QUICK,
  BENCH_GRID_SMOKE
} bench_grid;

/* "full", "quick" or "smoke", as the meta line's "grid" field says it. */
const char *bench_grid_name(bench_grid grid);

/* The options every benchmark takes: --backend auto|cuda|host, --quick,
 * --smoke (also --json), --json, --out FILE. The last --quick or --smoke
 * wins. */
typedef struct bench_options {
  cgr_backend_kind backend; /* CGR_BACKEND_AUTO unless --backend */
  bench_grid grid;          /* BENCH_GRID_FULL unless --quick or --smoke */
  int json_only;            /* --json or --smoke: no table */
  const char *out_path;     /* --out, or NULL */
} bench_options;

/* One argument as a benchmark's own option handler sees it. */
typedef struct bench_arg {
  const char *program; /* "bench_replay": every message starts with it */
  const char *arg;     /* argv[i] as given */
  char name[32];       /* the option, without any "=value" */
  const char *value;   /* its value for an option that takes one, else NULL */
} bench_arg;

/* What an option handler returns: BENCH_ARG_OK (taken), BENCH_ARG_USAGE
 * (bad, a message printed) or BENCH_ARG_UNKNOWN (not its option). */
enum { BENCH_ARG_OK = 0, BENCH_ARG_USAGE = 2, BENCH_ARG_UNKNOWN = 3 };

/* A benchmark's command line. */
typedef struct bench_cli {
  const char *program;
  /* The benchmark's own options that take a value (--backend and --out
   * are added), NULL-terminated; NULL for none. */
  const char *const *valued;
  /* Nonzero: "--name=value" is also accepted (and "--flag=x" refused). */
  int allow_equals;
  /* Nonzero: --smoke is not an option (the bench has no smoke grid). */
  int no_smoke;
  /* Prints the usage text to `to`. */
  void (*usage)(FILE *to);
  /* Handles one of the bench's own options; `user` is parse's. NULL: the
   * bench has none. Returns a BENCH_ARG_* value. */
  int (*own_option)(const bench_arg *arg, void *user);
} bench_cli;

/* Sets `common` to its defaults and parses argv: the shared options, then
 * each other one through cli->own_option. Returns -1 to go on, or the exit
 * code main returns: BENCH_EXIT_OK after printing the usage for --help/-h
 * to stdout, BENCH_EXIT_USAGE after a message and the usage on stderr. */
int bench_parse_args(const bench_cli *cli, int argc, char **argv,
                     bench_options *common, void *user);

/* arg->value as a whole number from min to max into *out; else prints
 * "PROGRAM: NAME must be a whole number from MIN to MAX, not 'VALUE'" and
 * returns BENCH_ARG_USAGE. */
int bench_parse_long(const bench_arg *arg, long min, long max, long *out);

/* "PROGRAM: unknown option 'ARG'"; returns BENCH_ARG_USAGE. */
int bench_unknown_option(const bench_arg *arg);

/* ---- output file --------------------------------------------------------- */

/* *out: NULL when path is NULL, else path opened for writing (its
 * directories made). Returns 0, or -1 after "PROGRAM: cannot write". */
int bench_open_out(const char *program, const char *path, FILE **out);

/* Closes `out` (NULL is fine). Returns 0, or -1 after "PROGRAM: writing
 * 'PATH' failed" when the data may not all be there. */
int bench_close_out(const char *program, const char *path, FILE *out);

/* ---- the meta line ------------------------------------------------------- */

/* The note every host-backend meta line ends with (a JSON member, its
 * comma first), and the words the human output says it in. */
#define BENCH_HOST_NOTE_TEXT                                                   \
  "host backend: these are CPU timings, not comparable with GPU numbers"
#define BENCH_HOST_NOTE_JSON ",\"note\":\"" BENCH_HOST_NOTE_TEXT "\""

/* What every meta line says about the machine, read from one runtime. */
typedef struct bench_meta {
  int cuda;              /* the runtime runs on CUDA */
  char backend_name[16]; /* cgr_backend_name */
  char reason[512];      /* cgr_backend_reason, as text */
  char reason_json[600]; /* the same as a JSON string */
  /* The shared JSON members, no braces: kind ("meta"), bench, backend,
   * timing ("gpu"/"cpu"), device, compute_capability, driver_version,
   * runtime_version, cgr_version, date (ISO 8601, UTC). */
  char fields[1024];
  /* BENCH_HOST_NOTE_JSON on the host backend, "" on CUDA. */
  const char *note;
  int multiprocessors; /* from cgr_device_info; 0 when unknown */
} bench_meta;

/* Fills `meta` from `rt` for the bench named `bench` ("replay"). */
void bench_meta_read(cgr_runtime *rt, const char *bench, bench_meta *meta);

/* bench_meta_read on a runtime of its own, created with `backend` and
 * destroyed before it returns. Returns 0, or -1 after "PROGRAM: ... failed". */
int bench_meta_probe(const char *program, cgr_backend_kind backend,
                     const char *bench, bench_meta *meta);

/* On the host backend, prints BENCH_HOST_NOTE_TEXT, then `more` (NULL for
 * nothing) and the backend's reason in parentheses: to stderr when the
 * output is JSON only, else to stdout. Nothing on CUDA. */
void bench_print_host_note(const bench_meta *meta, int json_only,
                           const char *more);

/* "PROGRAM: WHAT failed: STATUS: cgr_last_error(rt)" on stderr; returns -1. */
int bench_fail_call(const char *program, cgr_runtime *rt, cgr_status status,
                    const char *what);

/* The check macro: when `call` is not CGR_OK, returns -1 from the calling
 * function after bench_fail_call's message. */
#define BENCH_CHECK_CALL(program, rt, call, what)                              \
  do {                                                                         \
    cgr_status check_status_ = (call);                                         \
    if (check_status_ != CGR_OK)                                               \
      return bench_fail_call((program), (rt), check_status_, (what));          \
  } while (0)

#endif /* CGR_PROFILES_BENCH_COMMON_H */
