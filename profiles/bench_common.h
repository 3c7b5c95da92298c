/*
 * What every benchmark in profiles/ needs: a monotonic clock, nearest-rank
 * percentiles, JSON strings; the command line every benchmark shares (and
 * its exit codes); where the JSON lines go (stdout under --json, the --out
 * file); the table's columns, named as the JSON fields they show; the meta
 * line's shared fields, and the lines a run starts and a table ends with.
 *
 * Every benchmark prints a human table by default. --json puts one JSON
 * line per configuration on stdout instead; --out FILE writes the same
 * lines to FILE, and the table still goes to stdout.
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
 * --smoke, --json, --out FILE, --help. The last --quick or --smoke wins.
 * Each option does one thing: --smoke picks the grid and --json the
 * output, so a test that reads JSON from stdout passes both. */
typedef struct bench_options {
  cgr_backend_kind backend; /* CGR_BACKEND_AUTO unless --backend */
  bench_grid grid;          /* BENCH_GRID_FULL unless --quick or --smoke */
  int json;                 /* --json: JSON lines on stdout, no table */
  const char *out_path;     /* --out: the JSON lines go to this file too */
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

/* A benchmark's command line. A value is given as "--name value" or
 * "--name=value", for every option of every benchmark. */
typedef struct bench_cli {
  const char *program;
  /* The benchmark's own options that take a value (--backend and --out
   * are added), NULL-terminated; NULL for none. */
  const char *const *valued;
  /* Prints the usage text to `to`. */
  void (*usage)(FILE *to);
  /* Handles one of the bench's own options; `user` is parse's. NULL: the
   * bench has none. Returns a BENCH_ARG_* value. */
  int (*own_option)(const bench_arg *arg, void *user);
} bench_cli;

/* The usage lines of the shared options, for the end of a bench's usage
 * text: each starts with two spaces, its text at column 17 (a longer text
 * goes on with "\n" and 17 spaces). `quick` and `smoke` say what --quick
 * and --smoke run. */
void bench_usage_common(FILE *to, const char *quick, const char *smoke);

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

/* arg->value as a number from min to max into *out; else prints
 * "PROGRAM: NAME must be a number from MIN to MAX, not 'VALUE'" and
 * returns BENCH_ARG_USAGE. */
int bench_parse_double(const bench_arg *arg, double min, double max,
                       double *out);

/* "PROGRAM: unknown option 'ARG'"; returns BENCH_ARG_USAGE. */
int bench_unknown_option(const bench_arg *arg);

/* ---- the JSON lines ------------------------------------------------------ */

/* Where the JSON lines go: stdout under --json, the --out file when one
 * is given, both, or (neither option) nowhere: then the table is all. */
typedef struct bench_output {
  const char *program;
  const char *path; /* --out, or NULL */
  FILE *file;       /* path opened for writing, or NULL */
  int to_stdout;    /* --json */
} bench_output;

/* Opens options->out_path (its directories made) when there is one.
 * Returns 0, or -1 after "PROGRAM: cannot write 'PATH'". */
int bench_output_open(bench_output *out, const char *program,
                      const bench_options *options);

/* One JSON line to each of out's destinations (stdout flushed). */
void bench_emit(bench_output *out, const char *line);

/* Closes the file (none is fine). Returns 0, or -1 after "PROGRAM:
 * writing 'PATH' failed" when the data may not all be there. */
int bench_output_close(bench_output *out);

/* ---- the table ----------------------------------------------------------- */

/* A table's columns. A header is the name of the JSON field the column
 * shows, so the table and the JSON lines read the same; a column is as
 * wide as its header, and at least `min_width`. The first column is
 * left-aligned, the others right-aligned; every line is indented by two
 * spaces, under the line that names the configuration where the rows come
 * in groups. */
typedef struct bench_columns {
  int count;
  const char *names[16];
  int widths[16];
} bench_columns;

/* Sets the columns from `names` (count at most 16). */
void bench_columns_init(bench_columns *columns, int count,
                        const char *const *names, int min_width);

/* The header line. */
void bench_columns_header(const bench_columns *columns);

/* One cell of the current row: text, or a number with `digits` decimals;
 * bench_row_end ends the row. */
void bench_cell_text(const bench_columns *columns, int column,
                     const char *text);
void bench_cell_number(const bench_columns *columns, int column, double value,
                       int digits);
void bench_row_end(void);

/* The header of a column the device's timing events measured: `field`
 * on CUDA, "field(cpu)" on the host backend, whose "device" is CPU
 * worker threads. */
void bench_device_header(char *out, size_t size, const char *field, int cuda);

/* "384 B", "4 KiB", "62.5 KiB", "64 MiB". */
void bench_format_bytes(char *out, size_t size, unsigned long long bytes);

/* ---- the meta line ------------------------------------------------------- */

/* What host-backend numbers can and cannot mean: the head and the tail of
 * the line each host table ends with (a bench's own sentence between
 * them), and the whole of it in every host-backend meta line's "note". */
#define BENCH_HOST_NOTE_HEAD                                                   \
  "host backend: these are CPU timings of cgr's engine on worker threads"
#define BENCH_HOST_NOTE_TAIL "they say nothing about a GPU"
#define BENCH_HOST_NOTE_TEXT BENCH_HOST_NOTE_HEAD "; " BENCH_HOST_NOTE_TAIL
#define BENCH_HOST_NOTE_JSON ",\"note\":\"" BENCH_HOST_NOTE_TEXT "\""

/* What every meta line says about the machine, read from one runtime. */
typedef struct bench_meta {
  int cuda;              /* the runtime runs on CUDA */
  char bench[24];        /* "replay" */
  char backend_name[16]; /* cgr_backend_name */
  char device[256];      /* cgr_device_info's name, or "unknown" */
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

/* The line a run starts with: "bench_replay: quick grid on DEVICE, BACKEND
 * backend (REASON)". To stdout above the table; to stderr under --json,
 * so that stdout holds JSON lines only. */
void bench_print_start(const bench_meta *meta, const bench_options *options);

/* The lines a table ends with: "finished in S s" (since `began_us`), then
 * on the host backend BENCH_HOST_NOTE_HEAD, the bench's own sentence
 * `host_sentence` (NULL for none) and BENCH_HOST_NOTE_TAIL, on one line. */
void bench_print_end(int cuda, const char *host_sentence, double began_us);

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
