/*
 * bench_fused_copy: what one fused-copy launch costs against the copies it
 * replaces.
 *
 * Each configuration is a finished copy plan (COPY, FILL or GATHER) and the
 * same data movement expressed as plain copies. Methods:
 *
 *   fused          cgr__fused_copy_launch of the pre-finished plan
 *   memcpy_per_op  one cgr__be_memcpy_async per operation (cudaMemcpyAsync
 *                  on CUDA); a FILL becomes a copy from a device template
 *                  that holds the pattern, a GATHER row a copy per row
 *   memcpy_batch   the same copies in one cudaMemcpyBatchAsync (CUDA
 *                  runtime 12.8 or later only)
 *   memcpy_single  one copy of all the bytes at once (bandwidth set only)
 *
 * Per run, the stream is first held shut by a host function (a "gate"), a
 * timing event is recorded, the method is issued, a second event is
 * recorded, and then the gate opens: the event pair measures the work
 * alone, never the host issuing it (median_us, p90_us). A second series
 * records the events around the issue on an idle stream, which is what a
 * caller sees from idle (e2e_median_us). The host cost of the issue call
 * alone (CLOCK_MONOTONIC) is host_issue_median_us. If the driver would not
 * queue a whole plan behind the gate (the gate times out), that method
 * falls back to the idle-stream series and says "gated":false.
 *
 * launches_per_plan comes from the runtime's counters (kernel launches plus
 * copies for one issue); for memcpy_batch, which cgr does not see, it is
 * the number of batch calls (1).
 *
 * On the host backend the "device" is the CPU: every number is a CPU timing
 * ("timing":"cpu") and means nothing next to a GPU's.
 *
 * Output: JSON lines on stdout (and in --out FILE), then a table.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "cgr/cgr.h"
#include "kernels/copy_plan.h"
#include "kernels/fused_copy.h"
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
/* Destinations and sources of distinct operations start 256 bytes apart at
 * least, as cudaMalloc'd tensors do. */
#define ALIGNMENT ((uint64_t)256)
#define MAX_GRID_TOTAL (64 * MIB)
#define GATHER_ROW_BYTES ((uint64_t)512)
#define FILL_PATTERN UINT64_C(0x8877665544332211)
/* Long enough for any plan's issue to finish; only a driver that refuses
 * to queue more work behind a closed gate ever reaches it. */
#define GATE_TIMEOUT_S 2

typedef enum method {
  METHOD_PER_OP,
  METHOD_BATCH,
  METHOD_SINGLE,
  METHOD_FUSED,
  METHOD_COUNT
} method;

static const char *const method_names[METHOD_COUNT] = {"memcpy_per_op",
                                                       "memcpy_batch",
                                                       "memcpy_single",
                                                       "fused"};

/* Holds a stream shut until the host opens it (see the top comment). */
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
  int quick; /* --quick: common.grid is BENCH_GRID_QUICK */
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

/* One table row, kept until the end so the table is not torn apart by the
 * JSON lines printed as results come in. */
typedef struct row {
  char config[24];
  uint64_t ops;
  uint64_t bytes_per_op;
  uint64_t total_bytes;
  method method;
  result res;
  char notes[96];
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
  FILE *out;
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

/* ---- small helpers ------------------------------------------------------- */

static uint64_t round_up(uint64_t value, uint64_t to) {
  return (value + to - 1) / to * to;
}

/* Deterministic bytes, different per buffer (seed). */
static void fill_random(unsigned char *dst, size_t bytes, uint64_t seed) {
  uint64_t state = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
  for (size_t i = 0; i < bytes; i += 8) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    size_t n = bytes - i < 8 ? bytes - i : 8;
    memcpy(dst + i, &state, n);
  }
}

/* A failed cgr call: say what and why. */
static int report(bench *b, cgr_status status, const char *what) {
  fprintf(stderr, "bench_fused_copy: %s failed: %s: %s\n", what,
          cgr_status_name(status), b->rt ? cgr_last_error(b->rt) : "");
  return -1;
}

/* Checks a cgr call, reports it, and jumps to the function's cleanup. */
#define BENCH_CHECK(b, call, what)                                             \
  do {                                                                         \
    cgr_status bench_status_ = (call);                                         \
    if (bench_status_ != CGR_OK) {                                             \
      report((b), bench_status_, (what));                                      \
      goto fail;                                                               \
    }                                                                          \
  } while (0)

/* ---- the gate ------------------------------------------------------------ */

static void gate_wait(void *user) {
  gate *g = user;
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += GATE_TIMEOUT_S;
  pthread_mutex_lock(&g->lock);
  while (!g->open) {
    if (pthread_cond_timedwait(&g->opened, &g->lock, &deadline) == ETIMEDOUT) {
      g->timed_out = 1;
      break;
    }
  }
  pthread_mutex_unlock(&g->lock);
}

static int gate_init(gate *g) {
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0)
    return -1;
  int failed = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
               pthread_cond_init(&g->opened, &attr) != 0;
  pthread_condattr_destroy(&attr);
  if (failed)
    return -1;
  if (pthread_mutex_init(&g->lock, NULL) != 0) {
    pthread_cond_destroy(&g->opened);
    return -1;
  }
  g->open = 1;
  g->timed_out = 0;
  return 0;
}

static void gate_set(gate *g, int open) {
  pthread_mutex_lock(&g->lock);
  g->open = open;
  if (open)
    pthread_cond_broadcast(&g->opened);
  pthread_mutex_unlock(&g->lock);
}

/* ---- issuing one plan ---------------------------------------------------- */

#ifdef BENCH_HAVE_BATCH
static cudaError_t batch_copy(bench *b, workload *w) {
  struct cudaMemcpyAttributes attrs;
  memset(&attrs, 0, sizeof attrs);
  /* The sources are written by earlier stream work: read them in order. */
  attrs.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
  size_t attrs_index = 0;
#if CUDART_VERSION >= 13000
  return cudaMemcpyBatchAsync(w->dsts, (const void *const *)w->srcs, w->sizes,
                              w->copies, &attrs, &attrs_index, 1,
                              b->cuda_stream);
#else
  /* 12.8 and 12.9 take a failIdx, and they differ in the constness of the
   * pointer arrays: a void * converts to either. */
  size_t fail_index = 0;
  return cudaMemcpyBatchAsync((void *)w->dsts, (void *)w->srcs, w->sizes,
                              w->copies, &attrs, &attrs_index, 1, &fail_index,
                              b->cuda_stream);
#endif
}
#endif

/* Enqueues the method once. */
static cgr_status issue(bench *b, workload *w, method m) {
  switch (m) {
  case METHOD_FUSED:
    return cgr__fused_copy_launch(b->be, b->stream, &w->plan);
  case METHOD_PER_OP:
    for (size_t i = 0; i < w->copies; ++i) {
      cgr_status status = cgr__be_memcpy_async(b->be, b->stream, w->dsts[i],
                                               w->srcs[i], w->sizes[i]);
      if (status != CGR_OK)
        return status;
    }
    return CGR_OK;
  case METHOD_SINGLE:
    return cgr__be_memcpy_async(b->be, b->stream, w->single_dst, w->single_src,
                                w->total_bytes);
  case METHOD_BATCH:
#ifdef BENCH_HAVE_BATCH
  {
    cudaError_t e = batch_copy(b, w);
    if (e == cudaSuccess)
      return CGR_OK;
    fprintf(stderr, "bench_fused_copy: cudaMemcpyBatchAsync(%zu copies): %s\n",
            w->copies, cudaGetErrorString(e));
    return CGR_E_CUDA;
  }
#endif
  case METHOD_COUNT:
    break;
  }
  return CGR_E_UNSUPPORTED;
}

/* ---- measuring ----------------------------------------------------------- */

/* Clears dst, runs the method once, and compares dst with what it must
 * hold. Returns 0; -1 after a failed call or on wrong bytes (the run then
 * ends with exit status 1); -2 when memcpy_batch is refused. */
static int verify(bench *b, workload *w, method m) {
  BENCH_CHECK(b,
              cgr__be_memset_async(b->be, b->stream, w->dst, 0, w->dst_bytes),
              "clearing the destination");
  cgr_status status = issue(b, w, m);
  if (status != CGR_OK) {
    if (m == METHOD_BATCH)
      return -2; /* the caller drops the method, not the run */
    return report(b, status, method_names[m]);
  }
  BENCH_CHECK(b,
              cgr__be_memcpy_async(b->be, b->stream, w->readback, w->dst,
                                   w->dst_bytes),
              "reading the destination back");
  BENCH_CHECK(b, cgr__be_stream_synchronize(b->be, b->stream),
              "synchronizing after the check");
  if (memcmp(w->readback, w->expected, w->dst_bytes) != 0) {
    size_t at = 0;
    while (w->readback[at] == w->expected[at])
      ++at;
    fprintf(stderr,
            "bench_fused_copy: WRONG RESULT: config %s, %llu ops x %llu "
            "bytes, method %s: destination byte %zu is 0x%02x, expected "
            "0x%02x\n",
            w->config, (unsigned long long)w->ops,
            (unsigned long long)w->bytes_per_op, method_names[m], at,
            w->readback[at], w->expected[at]);
    return -1;
  }
  return 0;
fail:
  return -1;
}

/* Launches (kernels plus copies) one issue makes, from the counters. */
static int count_launches(bench *b, workload *w, method m, uint64_t *out) {
  cgr_counters before, after;
  BENCH_CHECK(b, cgr_counters_get(b->rt, &before), "cgr_counters_get");
  BENCH_CHECK(b, issue(b, w, m), method_names[m]);
  BENCH_CHECK(b, cgr_counters_get(b->rt, &after), "cgr_counters_get");
  BENCH_CHECK(b, cgr__be_stream_synchronize(b->be, b->stream),
              "cgr__be_stream_synchronize");
  *out = (after.kernel_launches - before.kernel_launches) +
         (after.copies - before.copies);
  if (m == METHOD_BATCH)
    *out = 1; /* one cudaMemcpyBatchAsync; cgr does not see it */
  return 0;
fail:
  return -1;
}

/* One timed run; gated or on an idle stream. */
static int timed_run(bench *b, workload *w, method m, int gated, double *gpu,
                     double *issue_time) {
  if (gated) {
    gate_set(&b->gate, 0);
    cgr_status status =
        cgr__be_host_func(b->be, b->stream, gate_wait, &b->gate);
    if (status != CGR_OK) {
      gate_set(&b->gate, 1);
      return report(b, status, "enqueueing the gate");
    }
  }
  BENCH_CHECK(b, cgr__be_event_record(b->be, b->start, b->stream),
              "recording the start event");
  double t0 = bench_now_us();
  cgr_status status = issue(b, w, m);
  double t1 = bench_now_us();
  if (status == CGR_OK)
    status = cgr__be_event_record(b->be, b->end, b->stream);
  if (gated)
    gate_set(&b->gate, 1);
  BENCH_CHECK(b, status, method_names[m]);
  BENCH_CHECK(b, cgr__be_event_synchronize(b->be, b->end),
              "synchronizing the end event");
  float ms = 0.0f;
  BENCH_CHECK(b, cgr__be_event_elapsed_ms(b->be, b->start, b->end, &ms),
              "cgr__be_event_elapsed_ms");
  *gpu = (double)ms * 1e3;
  *issue_time = t1 - t0;
  return 0;
fail:
  if (gated)
    gate_set(&b->gate, 1); /* never leave the stream shut */
  return -1;
}

/* Verifies, warms up and times one method on one workload. Returns 0, -1
 * on failure, -2 when the method is unusable here (memcpy_batch). */
static int measure(bench *b, workload *w, method m, result *res) {
  memset(res, 0, sizeof *res);
  int rc = verify(b, w, m);
  if (rc != 0)
    return rc;
  for (int i = 0; i < b->warmup; ++i)
    BENCH_CHECK(b, issue(b, w, m), method_names[m]);
  BENCH_CHECK(b, cgr__be_stream_synchronize(b->be, b->stream),
              "synchronizing after the warm-up");
  if (count_launches(b, w, m, &res->launches) != 0)
    return -1;

  int runs = b->opt.runs;
  res->gated = 1;
  for (int r = 0; r < runs && res->gated; ++r) {
    if (timed_run(b, w, m, 1, &b->gpu_us[r], &b->issue_us[r]) != 0)
      return -1;
    pthread_mutex_lock(&b->gate.lock);
    if (b->gate.timed_out) {
      b->gate.timed_out = 0;
      res->gated = 0;
    }
    pthread_mutex_unlock(&b->gate.lock);
  }
  for (int r = 0; r < runs; ++r) {
    double issue_time;
    if (timed_run(b, w, m, 0, &b->e2e_us[r], &issue_time) != 0)
      return -1;
    if (!res->gated) {
      b->gpu_us[r] = b->e2e_us[r];
      b->issue_us[r] = issue_time;
    }
  }
  bench_percentiles(b->gpu_us, runs, b->sorted, &res->median_us, 90,
                    &res->p90_us);
  bench_percentiles(b->e2e_us, runs, b->sorted, &res->e2e_median_us, 90, NULL);
  bench_percentiles(b->issue_us, runs, b->sorted, &res->issue_median_us, 90,
                    &res->issue_p90_us);
  res->gbps = res->median_us > 0
                  ? (double)w->total_bytes / (res->median_us * 1e3)
                  : 0.0;
  return 0;
fail:
  return -1;
}

/* ---- output -------------------------------------------------------------- */

static int add_row(bench *b, const workload *w, method m, const result *res,
                   const char *notes) {
  if (b->row_count == b->row_capacity) {
    size_t capacity = b->row_capacity ? b->row_capacity * 2 : 64;
    row *rows = realloc(b->rows, capacity * sizeof *rows);
    if (rows == NULL) {
      fprintf(stderr, "bench_fused_copy: out of memory for the table\n");
      return -1;
    }
    b->rows = rows;
    b->row_capacity = capacity;
  }
  row *r = &b->rows[b->row_count++];
  snprintf(r->config, sizeof r->config, "%s", w->config);
  r->ops = w->ops;
  r->bytes_per_op = w->bytes_per_op;
  r->total_bytes = w->total_bytes;
  r->method = m;
  r->res = *res;
  snprintf(r->notes, sizeof r->notes, "%s", notes);
  return 0;
}

/* The JSON line of one (configuration, method); `extra` is ",..." fields. */
static void emit_result(bench *b, const workload *w, method m,
                        const result *res, const char *extra) {
  char line[1024];
  snprintf(line, sizeof line,
           "{\"bench\":\"fused_copy\",\"backend\":\"%s\",\"timing\":\"%s\","
           "\"config\":\"%s\",\"src\":\"%s\",\"ops\":%llu,\"plan_ops\":%zu,"
           "\"bytes_per_op\":%llu,\"total_bytes\":%llu,\"method\":\"%s\","
           "\"runs\":%d,\"gated\":%s,\"median_us\":%.3f,\"p90_us\":%.3f,"
           "\"e2e_median_us\":%.3f,\"host_issue_median_us\":%.3f,"
           "\"host_issue_p90_us\":%.3f,\"gbps\":%.3f,"
           "\"launches_per_plan\":%llu%s}",
           cgr_backend_name(b->rt), b->cuda ? "gpu" : "cpu", w->config,
           w->src_kind, (unsigned long long)w->ops, w->plan.count,
           (unsigned long long)w->bytes_per_op,
           (unsigned long long)w->total_bytes, method_names[m], b->opt.runs,
           res->gated ? "true" : "false", res->median_us, res->p90_us,
           res->e2e_median_us, res->issue_median_us, res->issue_p90_us,
           res->gbps, (unsigned long long)res->launches, extra);
  bench_emit(b->out, line);
}

static void emit_meta(bench *b) {
  bench_meta meta;
  bench_meta_read(b->rt, "fused_copy", &meta);
  bench_print_host_note(&meta, b->opt.common.json_only, NULL);
  int compiled = 0;
#ifdef CGR_HAVE_CUDA
  compiled = CUDART_VERSION;
#endif
  int batch = 0;
#ifdef BENCH_HAVE_BATCH
  batch = b->cuda;
#endif
  char line[2048];
  snprintf(line, sizeof line,
           "{%s,\"multiprocessors\":%d,\"cudart_compiled\":%d,"
           "\"memcpy_batch\":%s,\"runs\":%d,\"warmup\":%d,\"quick\":%s,"
           "\"backend_reason\":%s%s}",
           meta.fields, meta.multiprocessors, compiled,
           batch ? "true" : "false", b->opt.runs, b->warmup,
           b->opt.quick ? "true" : "false", meta.reason_json, meta.note);
  bench_emit(b->out, line);
}

static void human_bytes(char *out, size_t size, uint64_t bytes) {
  if (bytes >= MIB && bytes % MIB == 0)
    snprintf(out, size, "%llu MiB", (unsigned long long)(bytes / MIB));
  else if (bytes >= MIB)
    snprintf(out, size, "%.1f MiB", (double)bytes / (double)MIB);
  else if (bytes >= KIB && bytes % KIB == 0)
    snprintf(out, size, "%llu KiB", (unsigned long long)(bytes / KIB));
  else if (bytes >= KIB)
    snprintf(out, size, "%.1f KiB", (double)bytes / (double)KIB);
  else
    snprintf(out, size, "%llu B", (unsigned long long)bytes);
}

static void print_table(const bench *b) {
  const char *unit = b->cuda ? "GPU" : "CPU";
  printf("\n%-10s %5s %9s %9s  %-13s %10s %10s %10s %10s %9s %4s  %s\n",
         "config", "ops", "bytes/op", "total", "method", "median us", "p90 us",
         "e2e us", "issue us", "GB/s", "lnch", "notes");
  for (size_t i = 0; i < b->row_count; ++i) {
    const row *r = &b->rows[i];
    char per_op[32], total[32];
    human_bytes(per_op, sizeof per_op, r->bytes_per_op);
    human_bytes(total, sizeof total, r->total_bytes);
    printf("%-10s %5llu %9s %9s  %-13s %10.2f %10.2f %10.2f %10.2f %9.2f "
           "%4llu  %s%s\n",
           r->config, (unsigned long long)r->ops, per_op, total,
           method_names[r->method], r->res.median_us, r->res.p90_us,
           r->res.e2e_median_us, r->res.issue_median_us, r->res.gbps,
           (unsigned long long)r->res.launches, r->res.gated ? "" : "ungated ",
           r->notes);
  }
  printf("\nmedian/p90: %s time of one plan with the work already queued; "
         "e2e: the same from an idle stream, issue included; issue: host "
         "time of the enqueue call.\n",
         unit);
  if (!b->cuda)
    printf("host backend: these are CPU timings, not comparable with GPU "
           "numbers\n");
}

/* ---- workloads ----------------------------------------------------------- */

static void workload_release(bench *b, workload *w) {
  cgr__copy_plan_release(&w->plan);
  free(w->dsts);
  free(w->srcs);
  free(w->sizes);
  if (w->src_pinned)
    cgr__be_pinned_free(b->be, w->src);
  else
    cgr__be_device_free(b->be, w->src);
  cgr__be_device_free(b->be, w->dst);
  cgr__be_device_free(b->be, w->pattern);
  cgr__be_device_free(b->be, w->index);
  cgr__be_pinned_free(b->be, w->readback);
  free(w->expected);
  memset(w, 0, sizeof *w);
}

/* Common part: names, the copy arrays, dst, expected and readback. */
static int workload_begin(bench *b, workload *w, const char *config,
                          uint64_t ops, uint64_t bytes_per_op,
                          size_t dst_bytes) {
  memset(w, 0, sizeof *w);
  cgr__copy_plan_init(&w->plan);
  snprintf(w->config, sizeof w->config, "%s", config);
  w->src_kind = "device";
  w->ops = ops;
  w->bytes_per_op = bytes_per_op;
  w->total_bytes = ops * bytes_per_op;
  w->dst_bytes = dst_bytes;
  w->dsts = calloc(ops, sizeof *w->dsts);
  w->srcs = calloc(ops, sizeof *w->srcs);
  w->sizes = calloc(ops, sizeof *w->sizes);
  w->expected = calloc(dst_bytes, 1);
  if (!w->dsts || !w->srcs || !w->sizes || !w->expected) {
    fprintf(stderr, "bench_fused_copy: out of host memory (%s)\n", config);
    return -1;
  }
  BENCH_CHECK(b, cgr__be_device_alloc(b->be, dst_bytes, &w->dst),
              "allocating the destination");
  BENCH_CHECK(b, cgr__be_pinned_alloc(b->be, dst_bytes, (void **)&w->readback),
              "allocating the read-back buffer");
  return 0;
fail:
  return -1;
}

/* A source of `bytes` random bytes, in device or pinned memory; *image
 * (malloc'd, the caller frees it) holds the same bytes on the host. */
static int make_source(bench *b, workload *w, size_t bytes, int pinned,
                       unsigned char **image) {
  void *staging = NULL;
  *image = malloc(bytes);
  if (*image == NULL) {
    fprintf(stderr, "bench_fused_copy: out of host memory (source image)\n");
    return -1;
  }
  fill_random(*image, bytes, w->ops * 31 + w->bytes_per_op);
  w->src_pinned = pinned;
  if (pinned) {
    w->src_kind = "pinned";
    BENCH_CHECK(b, cgr__be_pinned_alloc(b->be, bytes, &w->src),
                "allocating the pinned source");
    memcpy(w->src, *image, bytes);
    return 0;
  }
  BENCH_CHECK(b, cgr__be_device_alloc(b->be, bytes, &w->src),
              "allocating the source");
  BENCH_CHECK(b, cgr__be_pinned_alloc(b->be, bytes, &staging),
              "allocating the staging buffer");
  memcpy(staging, *image, bytes);
  BENCH_CHECK(b, cgr__be_memcpy_async(b->be, b->stream, w->src, staging, bytes),
              "uploading the source");
  BENCH_CHECK(b, cgr__be_stream_synchronize(b->be, b->stream),
              "synchronizing the upload");
  cgr__be_pinned_free(b->be, staging);
  return 0;
fail:
  cgr__be_pinned_free(b->be, staging);
  return -1;
}

static int finish_plan(bench *b, workload *w) {
  BENCH_CHECK(b, cgr__copy_plan_finish(&w->plan, &b->rt->error),
              "cgr__copy_plan_finish");
  return 0;
fail:
  return -1;
}

/*
 * `ops` COPY operations of `bytes` each. Sources follow each other in
 * order; destinations too, or in reverse order when `reversed`, so a copy
 * that lands in the wrong slot shows. `pinned`: the source is pinned host
 * memory.
 */
static int build_copy(bench *b, workload *w, const char *config, uint64_t ops,
                      uint64_t bytes, int pinned, int reversed) {
  uint64_t stride = round_up(bytes, ALIGNMENT);
  unsigned char *image = NULL;
  if (workload_begin(b, w, config, ops, bytes, ops * stride) != 0 ||
      make_source(b, w, ops * stride, pinned, &image) != 0)
    goto fail;
  for (uint64_t i = 0; i < ops; ++i) {
    uint64_t dst_offset = (reversed ? ops - 1 - i : i) * stride;
    unsigned char *dst = (unsigned char *)w->dst + dst_offset;
    const unsigned char *src = (const unsigned char *)w->src + i * stride;
    BENCH_CHECK(b,
                cgr__copy_plan_copy(&w->plan, dst, src, bytes, &b->rt->error),
                "cgr__copy_plan_copy");
    w->dsts[i] = dst;
    w->srcs[i] = (void *)src;
    w->sizes[i] = bytes;
    memcpy(w->expected + dst_offset, image + i * stride, bytes);
  }
  w->copies = ops;
  free(image);
  return finish_plan(b, w);
fail:
  free(image);
  return -1;
}

/*
 * Padding-heavy: three operations in four are FILLs of the 8-byte pattern
 * (padding rows), the fourth a COPY. The baselines copy the padding from a
 * device template that holds the pattern, as an engine without a fill
 * would.
 */
static int build_fill(bench *b, workload *w, const char *config, uint64_t ops,
                      uint64_t bytes) {
  uint64_t stride = round_up(bytes, ALIGNMENT);
  unsigned char *image = NULL, *pattern = NULL;
  if (workload_begin(b, w, config, ops, bytes, ops * stride) != 0 ||
      make_source(b, w, ops * stride, 0, &image) != 0)
    goto fail;
  pattern = malloc(bytes);
  if (pattern == NULL) {
    fprintf(stderr, "bench_fused_copy: out of host memory (pattern)\n");
    goto fail;
  }
  for (uint64_t k = 0; k < bytes; ++k)
    pattern[k] = (unsigned char)(FILL_PATTERN >> (8 * (k % 8)));
  /* The template goes up through the (still unused) read-back buffer,
   * which is pinned and at least `bytes` long. */
  BENCH_CHECK(b, cgr__be_device_alloc(b->be, bytes, &w->pattern),
              "allocating the fill template");
  memcpy(w->readback, pattern, bytes);
  BENCH_CHECK(b,
              cgr__be_memcpy_async(b->be, b->stream, w->pattern, w->readback,
                                   bytes),
              "uploading the fill template");
  BENCH_CHECK(b, cgr__be_stream_synchronize(b->be, b->stream),
              "synchronizing the upload");
  for (uint64_t i = 0; i < ops; ++i) {
    uint64_t dst_offset = (ops - 1 - i) * stride;
    unsigned char *dst = (unsigned char *)w->dst + dst_offset;
    if (i % 4 == 0) {
      const unsigned char *src = (const unsigned char *)w->src + i * stride;
      BENCH_CHECK(b,
                  cgr__copy_plan_copy(&w->plan, dst, src, bytes, &b->rt->error),
                  "cgr__copy_plan_copy");
      w->srcs[i] = (void *)src;
      memcpy(w->expected + dst_offset, image + i * stride, bytes);
    } else {
      BENCH_CHECK(b,
                  cgr__copy_plan_fill(&w->plan, dst, FILL_PATTERN, 8, bytes,
                                      &b->rt->error),
                  "cgr__copy_plan_fill");
      w->srcs[i] = w->pattern;
      memcpy(w->expected + dst_offset, pattern, bytes);
    }
    w->dsts[i] = dst;
    w->sizes[i] = bytes;
  }
  w->copies = ops;
  free(image);
  free(pattern);
  return finish_plan(b, w);
fail:
  free(image);
  free(pattern);
  return -1;
}

/*
 * One GATHER of `rows` rows of 512 bytes from a table four times larger
 * (at least 1,024 rows), by an int32 index in device memory. The baselines
 * copy row by row (the index known on the host).
 */
static int build_gather(bench *b, workload *w, const char *config,
                        uint64_t rows) {
  uint64_t table_rows = rows * 4 > 1024 ? rows * 4 : 1024;
  unsigned char *image = NULL;
  int32_t *index = NULL;
  void *staging = NULL;
  if (workload_begin(b, w, config, rows, GATHER_ROW_BYTES,
                     rows * GATHER_ROW_BYTES) != 0 ||
      make_source(b, w, table_rows * GATHER_ROW_BYTES, 0, &image) != 0)
    goto fail;
  index = malloc(rows * sizeof *index);
  if (index == NULL) {
    fprintf(stderr, "bench_fused_copy: out of host memory (index)\n");
    goto fail;
  }
  for (uint64_t j = 0; j < rows; ++j) {
    index[j] = (int32_t)((j * UINT64_C(2654435761) + 12345) % table_rows);
    uint64_t row_offset = (uint64_t)index[j] * GATHER_ROW_BYTES;
    w->dsts[j] = (unsigned char *)w->dst + j * GATHER_ROW_BYTES;
    w->srcs[j] = (unsigned char *)w->src + row_offset;
    w->sizes[j] = GATHER_ROW_BYTES;
    memcpy(w->expected + j * GATHER_ROW_BYTES, image + row_offset,
           GATHER_ROW_BYTES);
  }
  w->copies = rows;
  size_t index_bytes = rows * sizeof *index;
  BENCH_CHECK(b, cgr__be_device_alloc(b->be, index_bytes, (void **)&w->index),
              "allocating the gather index");
  BENCH_CHECK(b, cgr__be_pinned_alloc(b->be, index_bytes, &staging),
              "allocating the index staging buffer");
  memcpy(staging, index, index_bytes);
  BENCH_CHECK(b,
              cgr__be_memcpy_async(b->be, b->stream, w->index, staging,
                                   index_bytes),
              "uploading the gather index");
  BENCH_CHECK(b, cgr__be_stream_synchronize(b->be, b->stream),
              "synchronizing the upload");
  BENCH_CHECK(b,
              cgr__copy_plan_gather(&w->plan, w->dst, w->src, w->index, rows,
                                    GATHER_ROW_BYTES, &b->rt->error),
              "cgr__copy_plan_gather");
  cgr__be_pinned_free(b->be, staging);
  free(image);
  free(index);
  return finish_plan(b, w);
fail:
  cgr__be_pinned_free(b->be, staging);
  free(image);
  free(index);
  return -1;
}

/* Bandwidth: 16 COPY operations in order over one contiguous source and
 * destination, against one copy of everything. */
static int build_bandwidth(bench *b, workload *w, uint64_t total) {
  if (build_copy(b, w, "bandwidth", 16, total / 16, 0, 0) != 0)
    return -1;
  w->single_dst = w->dst;
  w->single_src = w->src;
  return 0;
}

/* ---- running a configuration --------------------------------------------- */

/* Measures every method that applies to w and prints the results. */
static int run_workload(bench *b, workload *w) {
  method order[METHOD_COUNT];
  int count = 0;
  order[count++] = METHOD_PER_OP;
  if (b->batch_usable)
    order[count++] = METHOD_BATCH;
  if (w->single_dst != NULL)
    order[count++] = METHOD_SINGLE;
  order[count++] = METHOD_FUSED;

  result results[METHOD_COUNT];
  int have[METHOD_COUNT] = {0};
  for (int k = 0; k < count; ++k) {
    method m = order[k];
    result *res = &results[m];
    int rc = measure(b, w, m, res);
    if (rc == -2) {
      /* memcpy_batch refused: say so once and stop trying it. */
      char line[256];
      snprintf(line, sizeof line,
               "{\"bench\":\"fused_copy\",\"config\":\"%s\",\"ops\":%llu,"
               "\"method\":\"memcpy_batch\",\"error\":\"cudaMemcpyBatchAsync "
               "failed; skipped from here on\"}",
               w->config, (unsigned long long)w->ops);
      bench_emit(b->out, line);
      b->batch_usable = 0;
      continue;
    }
    if (rc != 0)
      return -1;
    have[m] = 1;

    char extra[256] = "", notes[96] = "";
    if (m == METHOD_FUSED && have[METHOD_PER_OP]) {
      const result *per_op = &results[METHOD_PER_OP];
      double speedup =
          res->median_us > 0 ? per_op->median_us / res->median_us : 0.0;
      double one_memcpy = per_op->issue_median_us / (double)w->copies;
      double vs_two =
          one_memcpy > 0 ? res->issue_median_us / (2.0 * one_memcpy) : 0.0;
      size_t n = (size_t)snprintf(extra, sizeof extra,
                                  ",\"speedup_vs_per_op\":%.3f,"
                                  "\"issue_vs_two_memcpy\":%.3f",
                                  speedup, vs_two);
      int used =
          snprintf(notes, sizeof notes,
                   "%.2fx vs per-op; issue %.2fx two memcpy", speedup, vs_two);
      if (have[METHOD_SINGLE] && results[METHOD_SINGLE].gbps > 0) {
        double ratio = res->gbps / results[METHOD_SINGLE].gbps;
        snprintf(extra + n, sizeof extra - n, ",\"ratio_vs_single\":%.3f",
                 ratio);
        snprintf(notes + used, sizeof notes - (size_t)used,
                 "; %.0f%% of one copy", ratio * 100);
      }
    }
    emit_result(b, w, m, res, extra);
    if (add_row(b, w, m, res, notes) != 0)
      return -1;
  }
  return 0;
}

/* Builds, runs and frees one workload; a failed build is a failed run. */
static int run_one(bench *b, workload *w, int built) {
  int rc = built == 0 ? run_workload(b, w) : -1;
  workload_release(b, w);
  return rc;
}

static int run_grid(bench *b) {
  static const uint64_t full_ops[] = {6, 16, 64, 256, 1000};
  static const uint64_t full_bytes[] = {64, KIB, 16 * KIB, 64 * KIB};
  static const uint64_t quick_ops[] = {6, 64, 1000};
  static const uint64_t quick_bytes[] = {64, KIB, 64 * KIB};
  const uint64_t *ops = b->opt.quick ? quick_ops : full_ops;
  const uint64_t *bytes = b->opt.quick ? quick_bytes : full_bytes;
  size_t ops_count = b->opt.quick ? 3 : 5;
  size_t bytes_count = b->opt.quick ? 3 : 4;
  workload w;

  for (size_t i = 0; i < ops_count; ++i)
    for (size_t j = 0; j < bytes_count; ++j) {
      if (ops[i] * bytes[j] > MAX_GRID_TOTAL)
        continue;
      if (run_one(b, &w, build_copy(b, &w, "copy", ops[i], bytes[j], 0, 1)))
        return -1;
    }

  static const uint64_t pinned[][2] = {{16, KIB}, {64, 16 * KIB}};
  for (size_t i = 0; i < (b->opt.quick ? 1u : 2u); ++i)
    if (run_one(b, &w,
                build_copy(b, &w, "pinned", pinned[i][0], pinned[i][1], 1, 1)))
      return -1;

  static const uint64_t fill[][2] = {{64, KIB}, {256, 64}};
  for (size_t i = 0; i < (b->opt.quick ? 1u : 2u); ++i)
    if (run_one(b, &w, build_fill(b, &w, "fill", fill[i][0], fill[i][1])))
      return -1;

  static const uint64_t gather_full[] = {16, 256, 1000};
  static const uint64_t gather_quick[] = {256};
  const uint64_t *gather = b->opt.quick ? gather_quick : gather_full;
  for (size_t i = 0; i < (b->opt.quick ? 1u : 3u); ++i)
    if (run_one(b, &w, build_gather(b, &w, "gather", gather[i])))
      return -1;

  static const uint64_t bandwidth[] = {64 * MIB, 256 * MIB};
  for (size_t i = 0; i < (b->opt.quick ? 1u : 2u); ++i)
    if (run_one(b, &w, build_bandwidth(b, &w, bandwidth[i])))
      return -1;
  return 0;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *to) {
  fprintf(to,
          "usage: bench_fused_copy [--backend auto|cuda|host] [--runs N] "
          "[--quick] [--json] [--out FILE]\n"
          "\n"
          "Times the fused copy (one launch per copy plan) against one copy "
          "per\n"
          "operation, cudaMemcpyBatchAsync (CUDA 12.8+), and one large copy.\n"
          "\n"
          "  --backend B  auto (default), cuda or host; CGR_BACKEND wins\n"
          "  --runs N     timed runs per configuration and method (default "
          "1000)\n"
          "  --quick      50 runs and a reduced grid (seconds, also on a "
          "CPU)\n"
          "  --json       JSON lines only, no table\n"
          "  --out FILE   also write the JSON lines to FILE (directories "
          "made)\n"
          "  --help       this text\n");
}

/* bench_fused_copy's own option: --runs N. */
static int parse_option(const bench_arg *arg, void *user) {
  options *opt = user;
  if (strcmp(arg->name, "--runs") != 0)
    return BENCH_ARG_UNKNOWN;
  long runs = 0;
  if (bench_parse_long(arg, 1, 1000000, &runs) != BENCH_ARG_OK)
    return BENCH_ARG_USAGE;
  opt->runs = (int)runs;
  opt->runs_given = 1;
  return BENCH_ARG_OK;
}

static int bench_open(bench *b) {
  cgr_config config;
  cgr_status status = cgr_config_init(&config);
  if (status != CGR_OK)
    return report(b, status, "cgr_config_init");
  config.backend = b->opt.common.backend;
  status = cgr_runtime_create(&config, &b->rt);
  if (status != CGR_OK) {
    fprintf(stderr, "bench_fused_copy: cgr_runtime_create failed: %s: %s\n",
            cgr_status_name(status), cgr_last_error(NULL));
    return -1;
  }
  b->be = &b->rt->backend;
  b->stream = b->rt->streams[CGR_STREAM_MAIN];
  b->cuda = cgr_backend(b->rt) == CGR_BACKEND_CUDA;
  b->warmup = b->opt.quick ? 5 : 20;
#ifdef CGR_HAVE_CUDA
  if (b->cuda)
    BENCH_CHECK(b, cgr_cuda_stream(b->rt, CGR_STREAM_MAIN, &b->cuda_stream),
                "cgr_cuda_stream");
#endif
#ifdef BENCH_HAVE_BATCH
  b->batch_usable = b->cuda;
#endif
  BENCH_CHECK(b, cgr__be_event_create(b->be, 1, &b->start),
              "creating the start event");
  BENCH_CHECK(b, cgr__be_event_create(b->be, 1, &b->end),
              "creating the end event");
  if (gate_init(&b->gate) != 0) {
    fprintf(stderr, "bench_fused_copy: creating the gate failed\n");
    return -1;
  }
  b->gate_ready = 1;
  size_t n = (size_t)b->opt.runs;
  b->gpu_us = malloc(n * sizeof *b->gpu_us);
  b->e2e_us = malloc(n * sizeof *b->e2e_us);
  b->issue_us = malloc(n * sizeof *b->issue_us);
  b->sorted = malloc(n * sizeof *b->sorted);
  if (!b->gpu_us || !b->e2e_us || !b->issue_us || !b->sorted) {
    fprintf(stderr, "bench_fused_copy: out of host memory (samples)\n");
    return -1;
  }
  if (bench_open_out("bench_fused_copy", b->opt.common.out_path, &b->out) != 0)
    return -1;
  return 0;
fail:
  return -1;
}

static int bench_close(bench *b) {
  int rc = bench_close_out("bench_fused_copy", b->opt.common.out_path, b->out);
  if (b->rt != NULL) {
    cgr__be_event_destroy(b->be, b->start);
    cgr__be_event_destroy(b->be, b->end);
  }
  cgr_runtime_destroy(b->rt);
  if (b->gate_ready) {
    pthread_cond_destroy(&b->gate.opened);
    pthread_mutex_destroy(&b->gate.lock);
  }
  free(b->gpu_us);
  free(b->e2e_us);
  free(b->issue_us);
  free(b->sorted);
  free(b->rows);
  return rc;
}

int main(int argc, char **argv) {
  bench b;
  memset(&b, 0, sizeof b);
  static const char *const valued[] = {"--runs", NULL};
  const bench_cli cli = {.program = "bench_fused_copy",
                         .valued = valued,
                         .allow_equals = 1,
                         .no_smoke = 1,
                         .usage = usage,
                         .own_option = parse_option};
  b.opt.runs = 1000;
  int exit_code = bench_parse_args(&cli, argc, argv, &b.opt.common, &b.opt);
  if (exit_code >= 0)
    return exit_code;
  b.opt.quick = b.opt.common.grid == BENCH_GRID_QUICK;
  if (b.opt.quick && !b.opt.runs_given)
    b.opt.runs = 50;
  double began = bench_now_us();
  int rc = bench_open(&b);
  if (rc == 0) {
    emit_meta(&b);
    rc = run_grid(&b);
  }
  if (rc == 0 && !b.opt.common.json_only) {
    print_table(&b);
    printf("finished in %.1f s\n", (bench_now_us() - began) / 1e6);
  }
  if (bench_close(&b) != 0)
    rc = -1;
  return rc == 0 ? 0 : 1;
}
