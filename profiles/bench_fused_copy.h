/*
 * bench_fused_copy's parts, one file each: the workloads (each
 * configuration's copy plan, the same data movement as plain copies, and
 * the bytes the destination must hold: bench_fused_copy_plans.c), the
 * timing of one method on one workload (bench_fused_copy_timing.c), and
 * the grid, the output and main (bench_fused_copy.c). What it measures is
 * told at the top of bench_fused_copy.c.
 */
#ifndef CGR_PROFILES_BENCH_FUSED_COPY_H
#define CGR_PROFILES_BENCH_FUSED_COPY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench_common.h"
#include "cgr/cgr.h"
#include "kernels/copy_plan.h"
#include "runtime/backend.h"
#include "runtime/runtime.h"

#ifdef CGR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "cgr/cgr_cuda.h"
#if CUDART_VERSION >= 12080
#define BENCH_HAVE_BATCH 1
#endif
#endif

#define KIB ((uint64_t)1024)
#define MIB (KIB * KIB)

typedef enum method {
  METHOD_PER_OP,
  METHOD_BATCH,
  METHOD_SINGLE,
  METHOD_FUSED,
  METHOD_COUNT
} method;

/* "memcpy_per_op", "memcpy_batch", "memcpy_single", "fused". */
extern const char *const method_names[METHOD_COUNT];

/* Holds a stream shut until the host opens it (see bench_fused_copy.c). */
typedef struct gate {
  pthread_mutex_t lock;
  pthread_cond_t opened;
  int open;
  int timed_out;
} gate;

typedef struct options {
  bench_options common; /* --backend, --quick, --smoke, --json, --out */
  int runs;
  int runs_given;
} options;

typedef struct result {
  double median_us;
  double p90_us;
  double e2e_median_us;
  double issue_median_us;
  double issue_p90_us;
  double gbps;
  uint64_t launches;
  int gated;
} result;

/* The fused method against the others on one workload; each ratio is
 * 0 when the method it compares with did not run. */
typedef struct comparison {
  double speedup_vs_per_op;   /* per-op median over fused's */
  double issue_vs_two_memcpy; /* fused's issue over two memcpy issues */
  double ratio_vs_single;     /* fused's GB/s over one large copy's */
} comparison;

/* One table row, kept until the end so the table comes in one piece. */
typedef struct row {
  char config[24];
  const char *src_kind;
  uint64_t ops;
  size_t plan_ops;
  uint64_t bytes_per_op;
  uint64_t total_bytes;
  method method;
  result res;
  comparison vs; /* METHOD_FUSED only */
} row;

typedef struct bench {
  options opt;
  cgr_runtime *rt;
  cgr__backend *be;
  cgr__stream *stream;
  cgr__event *start;
  cgr__event *end;
  gate gate;
  int gate_ready;
  int cuda;
  int batch_usable;
  int warmup;
  double *gpu_us; /* opt.runs samples each */
  double *e2e_us;
  double *issue_us;
  double *sorted;
  bench_output out;
  row *rows;
  size_t row_count;
  size_t row_capacity;
#ifdef CGR_HAVE_CUDA
  cudaStream_t cuda_stream;
#endif
} bench;

/* One configuration: the plan, the equivalent copies, and the buffers. */
typedef struct workload {
  char config[24];
  const char *src_kind; /* "device" or "pinned" */
  uint64_t ops;         /* copies in the baseline (GATHER: rows) */
  uint64_t bytes_per_op;
  uint64_t total_bytes;
  cgr__copy_plan plan;
  size_t copies;
  void **dsts;
  void **srcs;
  size_t *sizes;
  void *single_dst; /* bandwidth set: one copy of everything */
  const void *single_src;
  void *src;
  int src_pinned;
  void *dst;
  size_t dst_bytes;
  void *pattern;           /* FILL template for the baselines (device) */
  int32_t *index;          /* GATHER index (device) */
  unsigned char *expected; /* dst_bytes, what dst must hold */
  unsigned char *readback; /* dst_bytes, pinned */
} workload;

/* Checks a cgr call: on failure, says what failed and why, and jumps to
 * the function's `fail` label. */
#define BENCH_CHECK(b, call, what)                                             \
  do {                                                                         \
    cgr_status bench_status_ = (call);                                         \
    if (bench_status_ != CGR_OK) {                                             \
      bench_fail_call("bench_fused_copy", (b)->rt, bench_status_, (what));     \
      goto fail;                                                               \
    }                                                                          \
  } while (0)

/* ---- the workloads (bench_fused_copy_plans.c) ---------------------------- */

/* Each builds `w` (any earlier content is dropped) and returns 0, or -1
 * after a message; workload_release frees what a build made, even a
 * failed one. */

/* `ops` COPY operations of `bytes` each, from device memory or, when
 * `pinned`, pinned host memory; destinations in reverse order. */
int build_copy(bench *b, workload *w, const char *config, uint64_t ops,
               uint64_t bytes, int pinned);

/* Three FILLs of an 8-byte pattern in four operations, the fourth a COPY. */
int build_fill(bench *b, workload *w, const char *config, uint64_t ops,
               uint64_t bytes);

/* One GATHER of `rows` 512-byte rows by an index in device memory. */
int build_gather(bench *b, workload *w, const char *config, uint64_t rows);

/* 16 COPY operations in order over `total` contiguous bytes, and the one
 * copy of all of them that memcpy_single makes. */
int build_bandwidth(bench *b, workload *w, uint64_t total);

void workload_release(bench *b, workload *w);

/* ---- timing (bench_fused_copy_timing.c) ---------------------------------- */

/* An open gate; 0, or -1. gate_destroy frees it. */
int gate_init(gate *g);
void gate_destroy(gate *g);

/* Checks, warms up and times method m on w into *res. Returns 0, -1 on a
 * failure or a wrong result, -2 when the method is unusable here
 * (memcpy_batch refused by the driver). */
int measure(bench *b, workload *w, method m, result *res);

#endif /* CGR_PROFILES_BENCH_FUSED_COPY_H */
