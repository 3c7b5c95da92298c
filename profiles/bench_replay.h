/*
 * What bench_replay's measuring files share: the options, one
 * configuration's workload (its runtime, slots, values and expected
 * outputs: bench_replay_workload.c builds it) and the benchmark's state
 * (bench_replay.c runs the methods over the grid).
 */
#ifndef CGR_PROFILES_BENCH_REPLAY_H
#define CGR_PROFILES_BENCH_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "bench_common.h"
#include "bench_replay_report.h"
#include "cgr/cgr.h"
#include "runtime/backend.h"

/* Sets of input values used in turn: each step's data differs from the
 * step before and from what its buffer set last held. */
#define VARIANTS 4
/* Kernels the step has before its filler adds (the arange, the six adds
 * that read inputs, the add that writes `out`). */
#define STEP_MIN_KERNELS 8
#define MAX_STEPS 10000000L

/* The input slots, in the order a batch gives them. */
enum {
  IN_IDS,
  IN_POSITIONS,
  IN_SEQ_LENS,
  IN_OUT_LOC,
  IN_CU_K,
  IN_PAGES,
  IN_COUNT
};

typedef struct options {
  bench_options common; /* --backend, --quick, --smoke, --json, --out */
  long steps;
  int steps_given;
  int sources[REPLAY_SOURCE_COUNT]; /* --source: nonzero for each to run */
} options;

/* One configuration: its runtime, slots, input values and expected
 * outputs. The step function reads it.
 *
 * The input values are written once, before the capture, and only read
 * afterwards: step n reads set n mod VARIANTS. That is what a pinned
 * source needs, since the device reads it asynchronously until the step's
 * ticket completes: no array is ever rewritten under a copy in flight. */
typedef struct workload {
  replay_shape shape;
  int fed; /* input_ids is fed by next_ids (the _feed methods) */
  cgr_runtime *rt;
  cgr__backend *be;
  cgr__stream *main_stream;
  cgr_slot inputs[IN_COUNT];
  cgr_slot cu_q;
  cgr_slot out;
  cgr_slot next_ids;         /* fed: input_ids + 1, fed into input_ids */
  int32_t *data[IN_COUNT];   /* VARIANTS * elems[i] each, pageable */
  int32_t *pinned[IN_COUNT]; /* the same values, page-locked; NULL when
                                no pinned source runs */
  size_t elems[IN_COUNT];    /* per variant */
  replay_source source;      /* where the steps now take their inputs */
  int32_t *expected;         /* VARIANTS * bucket */
  /* Fed: prev_rows of a step that keeps its rows and of one that moves
   * them; the ids the latest step read and its expected `out`, as the
   * host works them out (bucket each). */
  int32_t *in_place, *moved, *fed_ids, *fed_expected;
  int32_t *readback;         /* bucket, pinned */
  cgr__event *start, *end;   /* timing events */
  cgr__event *launched[2];   /* after the last step of each set */
  cgr__graph_exec *execs[2]; /* the floor's graphs */
  int set_variant[2];        /* what each set holds for the floor */
} workload;

typedef struct bench {
  options opt;
  int warmup;
  const uint32_t *buckets, *widths, *kernels;
  size_t bucket_count, width_count, kernel_count;
  double *host_us; /* steps samples each */
  double *prepare_us;
  double *sorted;
  replay_report report;
} bench;

/* A failed cgr call: what and why (bench_fail_call). */
int replay_fail_call(cgr_runtime *rt, cgr_status status, const char *what);

#define CHECK(rt, call, what) BENCH_CHECK_CALL("bench_replay", rt, call, what)

/* Opens configuration s on a runtime of its own: declares the slots (and
 * the fed one when `fed`), captures the step, makes the values, the
 * expected outputs and, when a pinned source runs, their page-locked
 * copies. 0 on success, else 1 with the cause printed. */
int workload_open(bench *b, workload *w, replay_shape s, int fed);
/* Frees what workload_open made; safe on a half-open workload. */
void workload_release(workload *w);

/* The batch of step n of a method, with input values `v` = n mod VARIANTS
 * from w->source (input_ids by feedback after step 0 on a fed workload:
 * rows in place for three steps of four, moved on the fourth). On
 * failure the batch is discarded and *out is NULL. */
cgr_status workload_batch(workload *w, long n, cgr_batch **out);
/* Fed: what step n of a method reads as input_ids and must write to
 * `out` (into w->fed_ids, w->fed_expected), from what step n - 1 read:
 * the host's reference, worked out without reading the device. Called
 * for steps 0, 1, 2, ... in turn. */
void workload_fed_reference(workload *w, long n);

#endif /* CGR_PROFILES_BENCH_REPLAY_H */
