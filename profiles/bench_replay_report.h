/*
 * bench_replay's output: what one measured row holds, and where rows go.
 * The meta line first, then each row as a JSON line when it is measured
 * (stdout under --json, the --out file), and at the end the human table,
 * one group of rows per configuration, its headers the JSON fields.
 * bench_replay.c measures; this file only writes.
 */
#ifndef CGR_PROFILES_BENCH_REPLAY_REPORT_H
#define CGR_PROFILES_BENCH_REPLAY_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "bench_common.h"

/* The methods, in the order they run. The _FEED ones run on a runtime of
 * their own whose input_ids is fed by the step (cgr_slot_feed), as
 * cgr-decode's is. The PIPELINED ones drive CGR_REPLAY_PIPELINED with its
 * one-step lookahead (cgr_replay_stage, then cgr_replay_ahead per step). */
typedef enum replay_method {
  REPLAY_FLOOR,
  REPLAY_NAIVE,
  REPLAY_FUSED,
  REPLAY_DOUBLE,
  REPLAY_INGRAPH,
  REPLAY_PIPELINED,
  REPLAY_FUSED_FEED,
  REPLAY_DOUBLE_FEED,
  REPLAY_PIPELINED_FEED,
  REPLAY_METHOD_COUNT
} replay_method;

/* "floor", "naive", "fused", "double", "ingraph", "pipelined",
 * "fused_feed", "double_feed", "pipelined_feed": the JSON "mode". */
extern const char *const replay_method_names[REPLAY_METHOD_COUNT];

/* Where a step's inputs lie on the host, in the order they run: pageable
 * (CGR_SOURCE_HOST) or page-locked (CGR_SOURCE_PINNED). */
typedef enum replay_source {
  REPLAY_SOURCE_HOST,
  REPLAY_SOURCE_PINNED,
  REPLAY_SOURCE_COUNT
} replay_source;

/* "host", "pinned": the JSON "source" and the values of --source. */
extern const char *const replay_source_names[REPLAY_SOURCE_COUNT];

/* One configuration's shape. */
typedef struct replay_shape {
  uint32_t bucket;
  uint32_t width; /* pages per row */
  uint32_t kernels;
} replay_shape;

/* What the backend was asked per timed step, from cgr_counters_get
 * around the step's cgr calls (the floor: its bare graph launch), so
 * never the benchmark's own timing events. */
typedef struct replay_calls {
  double graphs;  /* graph launches */
  double kernels; /* kernel launches outside a graph (the fused copy's) */
  double copies;  /* asynchronous memcpys outside a graph */
  double memsets;
  double events; /* event records + stream waits on an event */
  double syncs;  /* host waits: the engine's staging waits */
} replay_calls;

/* What one method measured. */
typedef struct replay_result {
  double host_median;
  double host_p99;
  double prepare_median;
  double gpu_step_us;
  double launches_per_step; /* kernels, copies, memsets, graphs */
  double bytes_per_step;    /* copied by the replay's plan */
  replay_calls calls;       /* per step */
} replay_result;

/* One row of the table, one JSON line. */
typedef struct replay_row {
  replay_shape shape;
  replay_source source;
  replay_method method;
  replay_result res;
  double ratio_floor; /* host medians: over the floor's of the same source */
  double ratio_naive; /* and over naive's */
} replay_row;

/* The run's output and every row so far, kept for the table. */
typedef struct replay_report {
  bench_output out;
  int cuda;              /* the runtime runs on CUDA: GPU timings */
  char backend_name[16]; /* cgr_backend_name */
  long steps;
  int warmup;
  replay_row *rows;
  size_t row_count, row_capacity;
} replay_report;

/* Probes the device (a throwaway runtime) for the meta line, prints the
 * line a run starts with, opens the output and writes the meta line,
 * which names the grid, steps, warm-up and the sources that will run
 * (`sources[s]` nonzero). Returns 0, or -1 after a message. */
int replay_report_open(replay_report *report, const bench_options *options,
                       long steps, int warmup, const int *sources);

/* Writes the row's JSON line and keeps the row for the table. Returns 0,
 * or -1 after a message (out of memory). */
int replay_report_add(replay_report *report, const replay_row *row);

/* The table of every row kept, and the lines that say what its columns
 * measure. */
void replay_report_print(const replay_report *report);

/* Closes the output and frees the rows. Returns 0, or -1 when the JSON
 * lines may not all have been written. */
int replay_report_close(replay_report *report);

#endif /* CGR_PROFILES_BENCH_REPLAY_REPORT_H */
