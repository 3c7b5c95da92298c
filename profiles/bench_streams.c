/*
 * bench_streams: ways to run N small independent per-item updates, the
 * per-sample scheduler step x' = a_i * x + b_i * eps of a diffusion or
 * sampling loop, where every item i has its own coefficients and its own
 * buffer of E floats (kernels/sched_update.h).
 *
 * One round updates all N items once, as one scheduler step would. The
 * methods, run in this order for each (N, E):
 *
 *   sequential      N launches of the per-item kernel on the main stream
 *   streams2        the N launches round-robin over 2 streams, forked from
 *                   the main stream by an event and joined back to it by
 *                   one event per stream, every round
 *   streams4        the same over 4 streams
 *   graph           the N sequential launches captured once into a graph,
 *                   then one graph launch per round
 *   graph_streams4  the 4-stream fork/join captured into one graph (its
 *                   branches run concurrently), one graph launch per
 *                   round; CUDA only: the host backend cannot fork a
 *                   capture into other streams
 *   vectorized      one launch of the batched kernel over all N items,
 *                   stored back to back, coefficients in device arrays
 *
 * Per method: x is reset, `warmup` rounds run, then `rounds` timed rounds
 * back to back. host_us is the CLOCK_MONOTONIC time to enqueue one round
 * (median and p99). Before each round, outside the timed part, the loop
 * waits for an event recorded on the main stream after round n - 2: two
 * rounds stay in flight, so host_us is the host's own cost and not time
 * spent blocked on a device that runs behind. device_us_per_round is the
 * time between two timing events on the main stream, one before the first
 * timed round and one after the last, divided by the rounds: when the
 * host enqueues slower than the device runs, it is the host's pace (which
 * is what the launch-bound methods are about). speedup_vs_sequential is
 * the sequential method's device time over this method's (higher is
 * better); host_speedup_vs_sequential the same for host medians.
 *
 * After each method x is read back and compared, exactly, with what the
 * rounds must have made of it (exit 1 on a mismatch). The values keep the
 * arithmetic exact on both backends: a_i is 1 or -1, b_i in 1..4, eps and
 * the initial x small integers, so every intermediate is an integer below
 * 2^24 for up to a million rounds and an fma gives the same bits as a
 * multiply and an add.
 *
 * On the host backend the "device" is CPU threads: every number is a CPU
 * timing ("timing":"cpu") and means nothing next to a GPU's.
 *
 * Output: a table, one group of rows per (N, E), its headers the JSON
 * fields; --json: JSON lines on stdout instead; --out FILE: JSON lines to
 * FILE as well.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "cgr/cgr.h"
#include "kernels/sched_update.h"
#include "runtime/backend.h"
#include "runtime/runtime.h"

#define MAX_ROUNDS 1000000L
/* The most streams a method forks into. */
#define MAX_STREAMS 4
/* N * E at most (2^27 floats: 512 MiB of x and as much of eps): a larger
 * item size is cut to fit for that N. */
#define MAX_TOTAL_ELEMS (INT64_C(1) << 27)

typedef enum method {
  METHOD_SEQUENTIAL,
  METHOD_STREAMS2,
  METHOD_STREAMS4,
  METHOD_GRAPH,
  METHOD_GRAPH_STREAMS4,
  METHOD_VECTORIZED,
  METHOD_COUNT
} method;

static const char *const method_names[METHOD_COUNT] = {
    "sequential", "streams2",       "streams4",
    "graph",      "graph_streams4", "vectorized"};

/* Streams a method spreads its launches over; 1 means the main stream. */
static const int method_streams[METHOD_COUNT] = {1, 2, 4, 1, 4, 1};

typedef struct options {
  bench_options common; /* --backend, --quick, --smoke, --json, --out */
  long rounds;
  int rounds_given;
} options;

typedef struct result {
  double host_median;
  double host_p99;
  double device_us;          /* per round */
  double launches_per_round; /* kernels and graphs, events not counted */
} result;

/* One table row, kept for the end. */
typedef struct row {
  uint32_t n;
  int64_t item_elems;
  method method;
  result res;
  double speedup;      /* sequential device time / this one */
  double host_speedup; /* sequential host median / this one */
} row;

/* One configuration's buffers: x and eps hold n items of item_elems floats
 * back to back, coefficients holds a[0..n) then b[0..n). */
typedef struct workload {
  uint32_t n;
  int64_t item_elems;
  int64_t total;                 /* n * item_elems */
  float *x, *eps, *coefficients; /* device */
  float *staging;                /* pinned, total floats */
  float *staging_coefficients;   /* pinned, 2n floats */
  cgr__sched_update_args *items; /* the per-item launches' arguments */
  cgr__graph_exec *exec;         /* the graph methods' graph */
} workload;

typedef struct bench {
  options opt;
  int cuda;
  int warmup;
  const uint32_t *ns;
  const int64_t *sizes;
  size_t n_count, size_count;
  cgr_runtime *rt;
  cgr__backend *be;
  cgr__stream *main_stream;
  cgr__stream *streams[MAX_STREAMS];
  cgr__event *start, *end; /* timing events */
  cgr__event *launched[2]; /* after each round, for the throttle */
  cgr__event *fork, *join[MAX_STREAMS];
  cgr__event *capture_fork, *capture_join[MAX_STREAMS]; /* in the graph */
  double *host_us;                                      /* rounds samples */
  double *sorted;
  bench_output out;
  row *rows;
  size_t row_count, row_capacity;
  char backend_name[16];
} bench;

/* ---- small helpers ------------------------------------------------------- */

/* A failed cgr call: what and why. Returns -1. */
static int fail_call(cgr_runtime *rt, cgr_status status, const char *what) {
  return bench_fail_call("bench_streams", rt, status, what);
}

#define CHECK(rt, call, what) BENCH_CHECK_CALL("bench_streams", rt, call, what)

/* The values: small integers, so every round's result is exact. */
static float initial_x(int64_t k) { return (float)((int)(k % 13) - 6); }
static float noise(int64_t k) { return (float)((int)((k * 7 + 3) % 5) - 2); }
static float coefficient_a(uint32_t i) { return i % 2 ? -1.0f : 1.0f; }
static float coefficient_b(uint32_t i) { return (float)(1 + i % 4); }

/* x[k] of item i after `rounds` updates: with a = 1 it grows by b * eps
 * each round, with a = -1 it swings between x0 and b * eps - x0. */
static float expected_x(int64_t k, uint32_t i, long rounds) {
  int64_t x0 = (int64_t)initial_x(k);
  int64_t step = (int64_t)(coefficient_b(i) * noise(k));
  if (coefficient_a(i) > 0)
    return (float)(x0 + (int64_t)rounds * step);
  return (float)(rounds % 2 ? step - x0 : x0);
}

static uint64_t launch_count(const cgr__backend *be) {
  return cgr__be_calls(be, CGR__CALL_KERNEL_LAUNCH) +
         cgr__be_calls(be, CGR__CALL_GRAPH_LAUNCH);
}

/* ---- a configuration ----------------------------------------------------- */

/* Waits for every stream, then frees what the configuration holds. */
static void workload_release(bench *b, workload *w) {
  cgr__be_stream_drain(b->be, b->main_stream);
  for (int s = 0; s < MAX_STREAMS; ++s)
    cgr__be_stream_drain(b->be, b->streams[s]);
  cgr__be_graph_exec_destroy(b->be, w->exec);
  cgr__be_device_free(b->be, w->x);
  cgr__be_device_free(b->be, w->eps);
  cgr__be_device_free(b->be, w->coefficients);
  cgr__be_pinned_free(b->be, w->staging);
  cgr__be_pinned_free(b->be, w->staging_coefficients);
  free(w->items);
  memset(w, 0, sizeof *w);
}

/* Allocates the buffers, uploads eps and the coefficients, fills in the
 * per-item arguments. */
static int workload_open(bench *b, workload *w, uint32_t n,
                         int64_t item_elems) {
  memset(w, 0, sizeof *w);
  w->n = n;
  w->item_elems = item_elems;
  w->total = (int64_t)n * item_elems;
  size_t bytes = (size_t)w->total * sizeof(float);
  size_t coefficient_bytes = 2 * (size_t)n * sizeof(float);
  CHECK(b->rt, cgr__be_device_alloc(b->be, bytes, (void **)&w->x),
        "allocating x");
  CHECK(b->rt, cgr__be_device_alloc(b->be, bytes, (void **)&w->eps),
        "allocating eps");
  CHECK(b->rt,
        cgr__be_device_alloc(b->be, coefficient_bytes,
                             (void **)&w->coefficients),
        "allocating the coefficients");
  CHECK(b->rt, cgr__be_pinned_alloc(b->be, bytes, (void **)&w->staging),
        "allocating the staging buffer");
  CHECK(b->rt,
        cgr__be_pinned_alloc(b->be, coefficient_bytes,
                             (void **)&w->staging_coefficients),
        "allocating the coefficients' staging buffer");
  w->items = malloc((size_t)n * sizeof *w->items);
  if (w->items == NULL) {
    fprintf(stderr, "bench_streams: out of host memory (item arguments)\n");
    return -1;
  }

  for (int64_t k = 0; k < w->total; ++k)
    w->staging[k] = noise(k);
  for (uint32_t i = 0; i < n; ++i) {
    w->staging_coefficients[i] = coefficient_a(i);
    w->staging_coefficients[n + i] = coefficient_b(i);
    w->items[i] = (cgr__sched_update_args){
        .x = w->x + (int64_t)i * item_elems,
        .eps = w->eps + (int64_t)i * item_elems,
        .a = coefficient_a(i),
        .b = coefficient_b(i),
        .count = item_elems,
    };
  }
  CHECK(b->rt,
        cgr__be_memcpy_async(b->be, b->main_stream, w->eps, w->staging, bytes),
        "uploading eps");
  CHECK(b->rt,
        cgr__be_memcpy_async(b->be, b->main_stream, w->coefficients,
                             w->staging_coefficients, coefficient_bytes),
        "uploading the coefficients");
  CHECK(b->rt, cgr__be_stream_synchronize(b->be, b->main_stream),
        "synchronizing the uploads");
  return 0;
}

/* x = its initial values, on the device, before a method starts. */
static int reset_x(bench *b, workload *w) {
  for (int64_t k = 0; k < w->total; ++k)
    w->staging[k] = initial_x(k);
  CHECK(b->rt,
        cgr__be_memcpy_async(b->be, b->main_stream, w->x, w->staging,
                             (size_t)w->total * sizeof(float)),
        "resetting x");
  CHECK(b->rt, cgr__be_stream_synchronize(b->be, b->main_stream),
        "synchronizing the reset of x");
  return 0;
}

/* x as the device holds it equals `rounds` updates of its initial values. */
static int check_x(bench *b, workload *w, method m, long rounds) {
  CHECK(b->rt,
        cgr__be_memcpy_async(b->be, b->main_stream, w->staging, w->x,
                             (size_t)w->total * sizeof(float)),
        "reading x back");
  CHECK(b->rt, cgr__be_stream_synchronize(b->be, b->main_stream),
        "synchronizing the read-back");
  for (uint32_t i = 0; i < w->n; ++i) {
    for (int64_t j = 0; j < w->item_elems; ++j) {
      int64_t k = (int64_t)i * w->item_elems + j;
      float want = expected_x(k, i, rounds);
      if (w->staging[k] != want) {
        fprintf(stderr,
                "bench_streams: WRONG RESULT: n %u, item_elems %lld, %s, "
                "after %ld rounds: item %u, x[%lld] is %g, expected %g\n",
                w->n, (long long)w->item_elems, method_names[m], rounds, i,
                (long long)j, (double)w->staging[k], (double)want);
        return -1;
      }
    }
  }
  return 0;
}

/* ---- the methods --------------------------------------------------------- */

static int launch_item(bench *b, workload *w, cgr__stream *stream, uint32_t i) {
  CHECK(b->rt,
        cgr__be_kernel_launch(b->be, stream, &cgr__kernel_sched_update,
                              &w->items[i]),
        "launching sched_update");
  return 0;
}

static int launch_all_items(bench *b, workload *w, cgr__stream *stream) {
  for (uint32_t i = 0; i < w->n; ++i)
    if (launch_item(b, w, stream, i) != 0)
      return -1;
  return 0;
}

/* Item i on stream i mod `count`, the streams forked from `origin` by
 * `fork` and joined back to it by `join`. Outside a capture this is one
 * round of streams2/4; inside one, the graph of graph_streams4. */
static int fork_join_items(bench *b, workload *w, cgr__stream *origin,
                           int count, cgr__event *fork, cgr__event **join) {
  CHECK(b->rt, cgr__be_event_record(b->be, fork, origin),
        "recording the fork event");
  for (int s = 0; s < count; ++s)
    CHECK(b->rt, cgr__be_stream_wait_event(b->be, b->streams[s], fork),
          "forking a stream");
  for (uint32_t i = 0; i < w->n; ++i)
    if (launch_item(b, w, b->streams[i % (uint32_t)count], i) != 0)
      return -1;
  for (int s = 0; s < count; ++s) {
    CHECK(b->rt, cgr__be_event_record(b->be, join[s], b->streams[s]),
          "recording a join event");
    CHECK(b->rt, cgr__be_stream_wait_event(b->be, origin, join[s]),
          "joining a stream");
  }
  return 0;
}

/* Captures the graph of a graph method on the main stream and instantiates
 * it into w->exec. A failure ends the capture before it returns. */
static int capture_graph(bench *b, workload *w, method m) {
  CHECK(b->rt, cgr__be_capture_begin(b->be, b->main_stream),
        "beginning the capture");
  int rc = m == METHOD_GRAPH
               ? launch_all_items(b, w, b->main_stream)
               : fork_join_items(b, w, b->main_stream, method_streams[m],
                                 b->capture_fork, b->capture_join);
  cgr__graph *graph = NULL;
  cgr_status status = cgr__be_capture_end(b->be, b->main_stream, &graph);
  if (rc != 0) {
    cgr__be_graph_destroy(b->be, graph);
    return -1;
  }
  CHECK(b->rt, status, "ending the capture");
  status = cgr__be_graph_instantiate(b->be, graph, b->main_stream, &w->exec);
  cgr__be_graph_destroy(b->be, graph);
  CHECK(b->rt, status, "instantiating the graph");
  return 0;
}

/* Enqueues one round: every item updated once. */
static int enqueue_round(bench *b, workload *w, method m) {
  switch (m) {
  case METHOD_SEQUENTIAL:
    return launch_all_items(b, w, b->main_stream);
  case METHOD_STREAMS2:
  case METHOD_STREAMS4:
    return fork_join_items(b, w, b->main_stream, method_streams[m], b->fork,
                           b->join);
  case METHOD_GRAPH:
  case METHOD_GRAPH_STREAMS4:
    CHECK(b->rt, cgr__be_graph_launch(b->be, w->exec, b->main_stream),
          "launching the graph");
    return 0;
  case METHOD_VECTORIZED: {
    cgr__sched_update_batched_args args = {
        .x = w->x,
        .eps = w->eps,
        .a = w->coefficients,
        .b = w->coefficients + w->n,
        .items = w->n,
        .item_elems = w->item_elems,
    };
    CHECK(b->rt,
          cgr__be_kernel_launch(b->be, b->main_stream,
                                &cgr__kernel_sched_update_batched, &args),
          "launching sched_update_batched");
    return 0;
  }
  case METHOD_COUNT:
    break;
  }
  return -1;
}

/* Untimed, before round n: waits for the event recorded after round n - 2
 * if it has not passed yet, so at most two rounds are in flight. It blocks
 * rather than polls: on the host backend a polling thread takes a CPU from
 * the stream workers it waits for. */
static int wait_round_before_last(bench *b, int k) {
  cgr_status status = cgr__be_event_query(b->be, b->launched[k]);
  if (status == CGR_E_NOT_READY)
    status = cgr__be_event_synchronize(b->be, b->launched[k]);
  CHECK(b->rt, status, "waiting for round n - 2");
  return 0;
}

static int run_method(bench *b, workload *w, method m, result *res) {
  if (reset_x(b, w) != 0)
    return -1;
  if ((m == METHOD_GRAPH || m == METHOD_GRAPH_STREAMS4) &&
      capture_graph(b, w, m) != 0)
    return -1;
  long total = b->warmup + b->opt.rounds;
  uint64_t launches_before = 0;
  for (long n = 0; n < total; ++n) {
    long timed = n - b->warmup;
    if (timed == 0) {
      launches_before = launch_count(b->be);
      CHECK(b->rt, cgr__be_event_record(b->be, b->start, b->main_stream),
            "recording the start event");
    }
    int k = (int)(n % 2);
    if (n >= 2 && wait_round_before_last(b, k) != 0)
      return -1;
    double t0 = bench_now_us();
    int rc = enqueue_round(b, w, m);
    double t1 = bench_now_us();
    if (rc != 0)
      return -1;
    CHECK(b->rt, cgr__be_event_record(b->be, b->launched[k], b->main_stream),
          "recording the round's event");
    if (timed >= 0)
      b->host_us[timed] = t1 - t0;
  }
  CHECK(b->rt, cgr__be_event_record(b->be, b->end, b->main_stream),
        "recording the end event");
  res->launches_per_round =
      (double)(launch_count(b->be) - launches_before) / (double)b->opt.rounds;
  CHECK(b->rt, cgr__be_event_synchronize(b->be, b->end),
        "synchronizing the end event");
  float ms = 0.0f;
  CHECK(b->rt, cgr__be_event_elapsed_ms(b->be, b->start, b->end, &ms),
        "reading the timing events");
  res->device_us = (double)ms * 1e3 / (double)b->opt.rounds;
  bench_percentiles(b->host_us, b->opt.rounds, b->sorted, &res->host_median, 99,
                    &res->host_p99);
  if (check_x(b, w, m, total) != 0)
    return -1;
  cgr__be_graph_exec_destroy(b->be, w->exec);
  w->exec = NULL;
  return 0;
}

/* graph_streams4 needs a capture that forks into other streams. */
static int method_runs(const bench *b, method m) {
  return m != METHOD_GRAPH_STREAMS4 || b->cuda;
}

/* ---- output -------------------------------------------------------------- */

static int add_row(bench *b, const row *r) {
  if (b->row_count == b->row_capacity) {
    size_t capacity = b->row_capacity ? b->row_capacity * 2 : 64;
    row *rows = realloc(b->rows, capacity * sizeof *rows);
    if (rows == NULL) {
      fprintf(stderr, "bench_streams: out of host memory (table)\n");
      return -1;
    }
    b->rows = rows;
    b->row_capacity = capacity;
  }
  b->rows[b->row_count++] = *r;
  return 0;
}

static void emit_row(bench *b, const row *r) {
  char line[1024];
  snprintf(line, sizeof line,
           "{\"bench\":\"streams\",\"backend\":\"%s\",\"timing\":\"%s\","
           "\"method\":\"%s\",\"n\":%u,\"item_elems\":%lld,\"rounds\":%ld,"
           "\"warmup\":%d,\"host_us_median\":%.3f,\"host_us_p99\":%.3f,"
           "\"device_us_per_round\":%.3f,\"speedup_vs_sequential\":%.3f,"
           "\"host_speedup_vs_sequential\":%.3f,\"launches_per_round\":%.2f,"
           "\"streams\":%d}",
           b->backend_name, b->cuda ? "gpu" : "cpu", method_names[r->method],
           r->n, (long long)r->item_elems, b->opt.rounds, b->warmup,
           r->res.host_median, r->res.host_p99, r->res.device_us, r->speedup,
           r->host_speedup, r->res.launches_per_round,
           method_streams[r->method]);
  bench_emit(&b->out, line);
}

/* The grid's values as a JSON array. */
static void json_list(char *out, size_t size, const int64_t *values,
                      size_t count) {
  size_t used = (size_t)snprintf(out, size, "[");
  for (size_t i = 0; i < count && used < size; ++i)
    used += (size_t)snprintf(out + used, size - used, "%s%lld", i ? "," : "",
                             (long long)values[i]);
  if (used < size)
    snprintf(out + used, size - used, "]");
}

static int emit_meta(bench *b) {
  bench_meta meta;
  bench_meta_read(b->rt, "streams", &meta);
  bench_print_start(&meta, &b->opt.common);
  char ns[128], sizes[128], line[2048];
  int64_t n_values[8];
  for (size_t i = 0; i < b->n_count; ++i)
    n_values[i] = b->ns[i];
  json_list(ns, sizeof ns, n_values, b->n_count);
  json_list(sizes, sizeof sizes, b->sizes, b->size_count);
  snprintf(line, sizeof line,
           "{%s,\"grid\":\"%s\",\"rounds\":%ld,\"warmup\":%d,"
           "\"max_rounds_in_flight\":2,\"n_values\":%s,"
           "\"item_elems_values\":%s,\"max_total_elems\":%lld,"
           "\"backend_reason\":%s%s}",
           meta.fields, bench_grid_name(b->opt.common.grid), b->opt.rounds,
           b->warmup, ns, sizes, (long long)MAX_TOTAL_ELEMS, meta.reason_json,
           meta.note);
  bench_emit(&b->out, line);
  return 0;
}

static void print_table(const bench *b) {
  char device_round[40];
  bench_device_header(device_round, sizeof device_round, "device_us_per_round",
                      b->cuda);
  const char *const names[] = {"method",
                               "host_us_median",
                               "host_us_p99",
                               device_round,
                               "speedup_vs_sequential",
                               "host_speedup_vs_sequential",
                               "launches_per_round"};
  bench_columns columns;
  bench_columns_init(&columns, 7, names, 8);
  columns.widths[0] = 14; /* "graph_streams4" */
  for (size_t i = 0; i < b->row_count; ++i) {
    const row *r = &b->rows[i];
    if (i == 0 || r->n != b->rows[i - 1].n ||
        r->item_elems != b->rows[i - 1].item_elems) {
      printf("\nn %u, item_elems %lld\n", r->n, (long long)r->item_elems);
      bench_columns_header(&columns);
    }
    bench_cell_text(&columns, 0, method_names[r->method]);
    bench_cell_number(&columns, 1, r->res.host_median, 2);
    bench_cell_number(&columns, 2, r->res.host_p99, 2);
    bench_cell_number(&columns, 3, r->res.device_us, 2);
    bench_cell_number(&columns, 4, r->speedup, 2);
    bench_cell_number(&columns, 5, r->host_speedup, 2);
    bench_cell_number(&columns, 6, r->res.launches_per_round, 1);
    bench_row_end();
  }
  printf("\nn: items; item_elems: floats per item. host_us_median, "
         "host_us_p99: CLOCK_MONOTONIC time to enqueue one round (every item "
         "updated once), over %ld rounds\n"
         "device_us_per_round: the device's timing events around the %ld "
         "back-to-back rounds (two in flight), per round%s\n"
         "speedup_vs_sequential: sequential's device_us_per_round over this "
         "method's (higher is better); host_speedup_vs_sequential: the same "
         "for host_us_median\n"
         "launches_per_round: kernel and graph launches per round\n",
         b->opt.rounds, b->opt.rounds,
         b->cuda ? "" : "; (cpu): the host backend's events, on CPU threads");
}

/* ---- the grid ------------------------------------------------------------ */

static int run_config(bench *b, uint32_t n, int64_t item_elems) {
  workload w;
  result results[METHOD_COUNT];
  memset(results, 0, sizeof results);
  int rc = workload_open(b, &w, n, item_elems);
  for (int m = 0; m < METHOD_COUNT && rc == 0; ++m)
    if (method_runs(b, (method)m))
      rc = run_method(b, &w, (method)m, &results[m]);
  workload_release(b, &w);
  if (rc != 0)
    return -1;
  const result *sequential = &results[METHOD_SEQUENTIAL];
  for (int m = 0; m < METHOD_COUNT; ++m) {
    if (!method_runs(b, (method)m))
      continue;
    const result *res = &results[m];
    row r = {.n = n,
             .item_elems = item_elems,
             .method = (method)m,
             .res = *res};
    r.speedup =
        res->device_us > 0 ? sequential->device_us / res->device_us : 0.0;
    r.host_speedup =
        res->host_median > 0 ? sequential->host_median / res->host_median : 0.0;
    emit_row(b, &r);
    if (add_row(b, &r) != 0)
      return -1;
  }
  return 0;
}

static int run_grid(bench *b) {
  for (size_t i = 0; i < b->n_count; ++i) {
    int64_t previous = 0;
    for (size_t j = 0; j < b->size_count; ++j) {
      int64_t item_elems = b->sizes[j];
      if (item_elems * b->ns[i] > MAX_TOTAL_ELEMS)
        item_elems = MAX_TOTAL_ELEMS / b->ns[i];
      if (item_elems == previous)
        continue; /* cut down to a size already run */
      previous = item_elems;
      if (run_config(b, b->ns[i], item_elems) != 0)
        return -1;
    }
  }
  return 0;
}

static void choose_grid(bench *b) {
  static const uint32_t full_ns[] = {8, 64, 512};
  static const int64_t full_sizes[] = {256, 16384, 1048576};
  static const uint32_t quick_ns[] = {8, 64, 512};
  static const int64_t quick_sizes[] = {256, 4096};
  static const uint32_t smoke_ns[] = {8};
  static const int64_t smoke_sizes[] = {256};
  long rounds = 1000;
  switch (b->opt.common.grid) {
  case BENCH_GRID_FULL:
    b->ns = full_ns, b->n_count = 3;
    b->sizes = full_sizes, b->size_count = 3;
    b->warmup = 50;
    break;
  case BENCH_GRID_QUICK:
    b->ns = quick_ns, b->n_count = 3;
    b->sizes = quick_sizes, b->size_count = 2;
    b->warmup = 10;
    rounds = 200;
    break;
  case BENCH_GRID_SMOKE:
    b->ns = smoke_ns, b->n_count = 1;
    b->sizes = smoke_sizes, b->size_count = 1;
    b->warmup = 2;
    rounds = 20;
    break;
  }
  if (!b->opt.rounds_given)
    b->opt.rounds = rounds;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *to) {
  fprintf(to,
          "usage: bench_streams [--backend auto|cuda|host] [--rounds N] "
          "[--quick] [--smoke] [--json] [--out FILE]\n"
          "\n"
          "N independent per-item updates x = a_i * x + b_i * eps (one "
          "scheduler\n"
          "step over N samples) run as: sequential launches; round-robin "
          "over 2 and\n"
          "4 streams (fork/join every round); one graph of the N launches; "
          "one graph\n"
          "of the 4-stream fork/join (CUDA only); one vectorized launch. "
          "Host time\n"
          "and device time per round, and the speedup over sequential.\n"
          "\n"
          "Grid: N {8, 64, 512} x item floats {256, 16384, 1048576}; an "
          "item size\n"
          "is cut to 2^27 / N floats so x and eps stay within 1 GiB (N = "
          "512 runs\n"
          "262144-float items).\n"
          "\n"
          "  --rounds N     timed rounds per configuration and method "
          "(default 1000,\n"
          "                 at most %ld)\n",
          MAX_ROUNDS);
  bench_usage_common(to,
                     "N {8, 64, 512}, items {256, 4096}, 200 rounds (for the "
                     "host backend)",
                     "N = 8, 256-float items, 20 rounds (the tests)");
}

/* bench_streams' own option: --rounds N. */
static int parse_option(const bench_arg *arg, void *user) {
  options *opt = user;
  if (strcmp(arg->name, "--rounds") != 0)
    return BENCH_ARG_UNKNOWN;
  opt->rounds_given = 1;
  return bench_parse_long(arg, 1, MAX_ROUNDS, &opt->rounds);
}

/* The runtime, the extra streams and the events every method uses. */
static int bench_open(bench *b) {
  choose_grid(b);
  size_t samples = (size_t)b->opt.rounds;
  b->host_us = malloc(samples * sizeof *b->host_us);
  b->sorted = malloc(samples * sizeof *b->sorted);
  if (b->host_us == NULL || b->sorted == NULL) {
    fprintf(stderr, "bench_streams: out of host memory (samples)\n");
    return -1;
  }
  if (bench_output_open(&b->out, "bench_streams", &b->opt.common) != 0)
    return -1;

  cgr_config config;
  CHECK(NULL, cgr_config_init(&config), "cgr_config_init");
  config.backend = b->opt.common.backend;
  cgr_status status = cgr_runtime_create(&config, &b->rt);
  if (status != CGR_OK)
    return fail_call(NULL, status, "cgr_runtime_create");
  b->be = &b->rt->backend;
  b->main_stream = b->rt->streams[CGR_STREAM_MAIN];
  b->cuda = cgr_backend(b->rt) == CGR_BACKEND_CUDA;
  snprintf(b->backend_name, sizeof b->backend_name, "%s",
           cgr_backend_name(b->rt));

  for (int s = 0; s < MAX_STREAMS; ++s) {
    char name[32];
    snprintf(name, sizeof name, "bench stream %d", s);
    CHECK(b->rt,
          cgr__be_stream_create(b->be, CGR_PRIORITY_NORMAL, name,
                                &b->streams[s]),
          "creating a stream");
  }
  CHECK(b->rt, cgr__be_event_create(b->be, 1, &b->start),
        "creating the start event");
  CHECK(b->rt, cgr__be_event_create(b->be, 1, &b->end),
        "creating the end event");
  for (int k = 0; k < 2; ++k)
    CHECK(b->rt, cgr__be_event_create(b->be, 0, &b->launched[k]),
          "creating the throttle's events");
  CHECK(b->rt, cgr__be_event_create(b->be, 0, &b->fork),
        "creating the fork event");
  CHECK(b->rt, cgr__be_event_create(b->be, 0, &b->capture_fork),
        "creating the captured fork event");
  for (int s = 0; s < MAX_STREAMS; ++s) {
    CHECK(b->rt, cgr__be_event_create(b->be, 0, &b->join[s]),
          "creating a join event");
    CHECK(b->rt, cgr__be_event_create(b->be, 0, &b->capture_join[s]),
          "creating a captured join event");
  }
  return emit_meta(b);
}

static int bench_close(bench *b) {
  int rc = 0;
  if (b->rt != NULL) {
    /* Destroying a stream waits for its work; events may go while work
     * that uses them is queued (CUDA's rule, kept by the host backend). */
    for (int s = 0; s < MAX_STREAMS; ++s)
      cgr__be_stream_destroy(b->be, b->streams[s]);
    cgr__be_event_destroy(b->be, b->start);
    cgr__be_event_destroy(b->be, b->end);
    for (int k = 0; k < 2; ++k)
      cgr__be_event_destroy(b->be, b->launched[k]);
    cgr__be_event_destroy(b->be, b->fork);
    cgr__be_event_destroy(b->be, b->capture_fork);
    for (int s = 0; s < MAX_STREAMS; ++s) {
      cgr__be_event_destroy(b->be, b->join[s]);
      cgr__be_event_destroy(b->be, b->capture_join[s]);
    }
    cgr_runtime_destroy(b->rt);
  }
  if (bench_output_close(&b->out) != 0)
    rc = -1;
  free(b->host_us);
  free(b->sorted);
  free(b->rows);
  return rc;
}

int main(int argc, char **argv) {
  bench b;
  memset(&b, 0, sizeof b);
  static const char *const valued[] = {"--rounds", NULL};
  const bench_cli cli = {.program = "bench_streams",
                         .valued = valued,
                         .usage = usage,
                         .own_option = parse_option};
  int exit_code = bench_parse_args(&cli, argc, argv, &b.opt.common, &b.opt);
  if (exit_code >= 0)
    return exit_code;
  double began = bench_now_us();
  int rc = bench_open(&b);
  if (rc == 0)
    rc = run_grid(&b);
  if (rc == 0 && !b.opt.common.json) {
    print_table(&b);
    bench_print_end(b.cuda,
                    "each stream is one worker thread, so streams2 and "
                    "streams4 measure hand-offs between threads, not kernels "
                    "side by side, and graph_streams4 runs on CUDA only (the "
                    "host backend cannot fork a capture into other streams)",
                    began);
  }
  if (bench_close(&b) != 0)
    rc = -1;
  return rc == 0 ? 0 : 1;
}
