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
 * falls back to the idle-stream series and says "gated":false. Every
 * method's result is checked against the bytes the plan must write before
 * it is timed (exit 1 on a mismatch).
 *
 * launches_per_plan comes from the runtime's counters (kernel launches plus
 * copies for one issue); for memcpy_batch, which cgr does not see, it is
 * the number of batch calls (1).
 *
 * On the host backend the "device" is the CPU: every number is a CPU timing
 * ("timing":"cpu") and means nothing next to a GPU's.
 *
 * Output: a table, one group of rows per configuration, its headers the
 * JSON fields; --json: JSON lines on stdout instead; --out FILE: JSON
 * lines to FILE as well.
 *
 * This file holds the grid, the output and main; the workloads are built
 * in bench_fused_copy_plans.c and timed in bench_fused_copy_timing.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "bench_fused_copy.h"
#include "cgr/cgr.h"
#include "runtime/backend.h"
#include "runtime/runtime.h"

/* A copy configuration of more than 64 MiB in all is left out. */
#define MAX_GRID_TOTAL (64 * MIB)
#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

const char *const method_names[METHOD_COUNT] = {"memcpy_per_op", "memcpy_batch",
                                                "memcpy_single", "fused"};

/* The configurations of one grid, scenario by scenario. */
typedef struct grid {
  const uint64_t *copy_ops, *copy_bytes; /* every ops x bytes, COPY */
  size_t copy_ops_count, copy_bytes_count;
  const uint64_t (*pinned)[2]; /* {ops, bytes}: COPY from pinned memory */
  size_t pinned_count;
  const uint64_t (*fill)[2]; /* {ops, bytes}: FILL-heavy */
  size_t fill_count;
  const uint64_t *gather; /* rows */
  size_t gather_count;
  const uint64_t *bandwidth; /* total bytes */
  size_t bandwidth_count;
  int runs, warmup;
} grid;

static const uint64_t full_ops[] = {6, 16, 64, 256, 1000};
static const uint64_t full_bytes[] = {64, KIB, 16 * KIB, 64 * KIB};
static const uint64_t full_pinned[][2] = {{16, KIB}, {64, 16 * KIB}};
static const uint64_t full_fill[][2] = {{64, KIB}, {256, 64}};
static const uint64_t full_gather[] = {16, 256, 1000};
static const uint64_t full_bandwidth[] = {64 * MIB, 256 * MIB};
static const grid full_grid = {.copy_ops = full_ops,
                               .copy_ops_count = COUNT(full_ops),
                               .copy_bytes = full_bytes,
                               .copy_bytes_count = COUNT(full_bytes),
                               .pinned = full_pinned,
                               .pinned_count = 2,
                               .fill = full_fill,
                               .fill_count = 2,
                               .gather = full_gather,
                               .gather_count = COUNT(full_gather),
                               .bandwidth = full_bandwidth,
                               .bandwidth_count = COUNT(full_bandwidth),
                               .runs = 1000,
                               .warmup = 20};

/* Seconds on a CPU: the first pinned, fill and bandwidth configuration. */
static const uint64_t quick_ops[] = {6, 64, 1000};
static const uint64_t quick_bytes[] = {64, KIB, 64 * KIB};
static const uint64_t quick_gather[] = {256};
static const grid quick_grid = {.copy_ops = quick_ops,
                                .copy_ops_count = COUNT(quick_ops),
                                .copy_bytes = quick_bytes,
                                .copy_bytes_count = COUNT(quick_bytes),
                                .pinned = full_pinned,
                                .pinned_count = 1,
                                .fill = full_fill,
                                .fill_count = 1,
                                .gather = quick_gather,
                                .gather_count = COUNT(quick_gather),
                                .bandwidth = full_bandwidth,
                                .bandwidth_count = 1,
                                .runs = 50,
                                .warmup = 5};

/* The tests' run, short under ThreadSanitizer: every scenario, small. */
static const uint64_t smoke_ops[] = {6, 64};
static const uint64_t smoke_bytes[] = {64, KIB};
static const uint64_t smoke_gather[] = {16};
static const uint64_t smoke_bandwidth[] = {MIB};
static const grid smoke_grid = {.copy_ops = smoke_ops,
                                .copy_ops_count = COUNT(smoke_ops),
                                .copy_bytes = smoke_bytes,
                                .copy_bytes_count = COUNT(smoke_bytes),
                                .pinned = full_pinned,
                                .pinned_count = 1,
                                .fill = full_fill,
                                .fill_count = 1,
                                .gather = smoke_gather,
                                .gather_count = COUNT(smoke_gather),
                                .bandwidth = smoke_bandwidth,
                                .bandwidth_count = COUNT(smoke_bandwidth),
                                .runs = 3,
                                .warmup = 2};

static const grid *grid_of(bench_grid which) {
  return which == BENCH_GRID_SMOKE   ? &smoke_grid
         : which == BENCH_GRID_QUICK ? &quick_grid
                                     : &full_grid;
}

/* ---- output -------------------------------------------------------------- */

static int add_row(bench *b, const workload *w, method m, const result *res,
                   const comparison *vs) {
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
  memset(r, 0, sizeof *r);
  snprintf(r->config, sizeof r->config, "%s", w->config);
  r->src_kind = w->src_kind;
  r->ops = w->ops;
  r->plan_ops = w->plan.count;
  r->bytes_per_op = w->bytes_per_op;
  r->total_bytes = w->total_bytes;
  r->method = m;
  r->res = *res;
  if (vs != NULL)
    r->vs = *vs;
  return 0;
}

/* The JSON line of one (configuration, method); `vs` for fused only. */
static void emit_result(bench *b, const workload *w, method m,
                        const result *res, const comparison *vs) {
  char extra[256] = "";
  if (vs != NULL && vs->speedup_vs_per_op > 0) {
    size_t n = (size_t)snprintf(extra, sizeof extra,
                                ",\"speedup_vs_per_op\":%.3f,"
                                "\"issue_vs_two_memcpy\":%.3f",
                                vs->speedup_vs_per_op, vs->issue_vs_two_memcpy);
    if (vs->ratio_vs_single > 0)
      snprintf(extra + n, sizeof extra - n, ",\"ratio_vs_single\":%.3f",
               vs->ratio_vs_single);
  }
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
  bench_emit(&b->out, line);
}

static void emit_meta(bench *b) {
  bench_meta meta;
  bench_meta_read(b->rt, "fused_copy", &meta);
  bench_print_start(&meta, &b->opt.common);
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
           "\"memcpy_batch\":%s,\"grid\":\"%s\",\"runs\":%d,\"warmup\":%d,"
           "\"backend_reason\":%s%s}",
           meta.fields, meta.multiprocessors, compiled,
           batch ? "true" : "false", bench_grid_name(b->opt.common.grid),
           b->opt.runs, b->warmup, meta.reason_json, meta.note);
  bench_emit(&b->out, line);
}

/* The line that names a row's configuration, above its group. */
static void print_config(const row *r) {
  char per_op[32], total[32];
  bench_format_bytes(per_op, sizeof per_op, r->bytes_per_op);
  bench_format_bytes(total, sizeof total, r->total_bytes);
  printf("\nconfig %s, src %s, ops %llu, plan_ops %zu, bytes_per_op %s, "
         "total_bytes %s\n",
         r->config, r->src_kind, (unsigned long long)r->ops, r->plan_ops,
         per_op, total);
}

static int same_config(const row *a, const row *b) {
  return strcmp(a->config, b->config) == 0 && a->ops == b->ops &&
         a->bytes_per_op == b->bytes_per_op && a->total_bytes == b->total_bytes;
}

static void print_table(const bench *b) {
  char median[32], p90[32], e2e[32];
  bench_device_header(median, sizeof median, "median_us", b->cuda);
  bench_device_header(p90, sizeof p90, "p90_us", b->cuda);
  bench_device_header(e2e, sizeof e2e, "e2e_median_us", b->cuda);
  const char *const names[] = {
      "method",           median, p90, e2e, "host_issue_median_us", "gbps",
      "launches_per_plan"};
  bench_columns columns;
  bench_columns_init(&columns, 7, names, 8);
  columns.widths[0] = 13; /* "memcpy_single" */
  for (size_t i = 0; i < b->row_count; ++i) {
    const row *r = &b->rows[i];
    if (i == 0 || !same_config(r, &b->rows[i - 1])) {
      print_config(r);
      bench_columns_header(&columns);
    }
    bench_cell_text(&columns, 0, method_names[r->method]);
    bench_cell_number(&columns, 1, r->res.median_us, 2);
    bench_cell_number(&columns, 2, r->res.p90_us, 2);
    bench_cell_number(&columns, 3, r->res.e2e_median_us, 2);
    bench_cell_number(&columns, 4, r->res.issue_median_us, 2);
    bench_cell_number(&columns, 5, r->res.gbps, 2);
    bench_cell_number(&columns, 6, (double)r->res.launches, 0);
    if (!r->res.gated)
      printf("  gated false: timed from an idle stream");
    bench_row_end();
    if (r->method == METHOD_FUSED && r->vs.speedup_vs_per_op > 0) {
      printf("  fused vs the rest: speedup_vs_per_op %.2f, "
             "issue_vs_two_memcpy %.2f",
             r->vs.speedup_vs_per_op, r->vs.issue_vs_two_memcpy);
      if (r->vs.ratio_vs_single > 0)
        printf(", ratio_vs_single %.2f", r->vs.ratio_vs_single);
      bench_row_end();
    }
  }
  printf("\nmedian_us, p90_us: the device's timing events around one plan "
         "with the work already queued, over %d runs%s\n"
         "e2e_median_us: the same from an idle stream, the issue included; "
         "host_issue_median_us: CLOCK_MONOTONIC time of the enqueue call\n"
         "gbps: total_bytes over median_us; launches_per_plan: kernel "
         "launches + copies of one issue\n"
         "speedup_vs_per_op: memcpy_per_op's median_us over fused's; "
         "issue_vs_two_memcpy: fused's issue over two memcpy issues; "
         "ratio_vs_single: fused's gbps over memcpy_single's\n",
         b->opt.runs,
         b->cuda ? "" : "; (cpu): the host backend's events, on CPU threads");
}

/* ---- running a configuration --------------------------------------------- */

/* How fused compares with the methods measured before it on w. */
static comparison compare(const workload *w, const result *results,
                          const int *have) {
  comparison vs = {0.0, 0.0, 0.0};
  const result *fused = &results[METHOD_FUSED];
  if (!have[METHOD_PER_OP])
    return vs;
  const result *per_op = &results[METHOD_PER_OP];
  vs.speedup_vs_per_op =
      fused->median_us > 0 ? per_op->median_us / fused->median_us : 0.0;
  double one_memcpy = per_op->issue_median_us / (double)w->copies;
  vs.issue_vs_two_memcpy =
      one_memcpy > 0 ? fused->issue_median_us / (2.0 * one_memcpy) : 0.0;
  if (have[METHOD_SINGLE] && results[METHOD_SINGLE].gbps > 0)
    vs.ratio_vs_single = fused->gbps / results[METHOD_SINGLE].gbps;
  return vs;
}

/* memcpy_batch refused: says so once and stops trying it. */
static void drop_batch(bench *b, const workload *w) {
  char line[256];
  snprintf(line, sizeof line,
           "{\"bench\":\"fused_copy\",\"config\":\"%s\",\"ops\":%llu,"
           "\"method\":\"memcpy_batch\",\"error\":\"cudaMemcpyBatchAsync "
           "failed; skipped from here on\"}",
           w->config, (unsigned long long)w->ops);
  bench_emit(&b->out, line);
  fprintf(stderr,
          "bench_fused_copy: cudaMemcpyBatchAsync failed (config %s, %llu "
          "ops); memcpy_batch is skipped from here on\n",
          w->config, (unsigned long long)w->ops);
  b->batch_usable = 0;
}

/* Measures every method that applies to w and keeps the results. */
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
      drop_batch(b, w);
      continue;
    }
    if (rc != 0)
      return -1;
    have[m] = 1;
    comparison vs = compare(w, results, have);
    const comparison *fused_vs = m == METHOD_FUSED ? &vs : NULL;
    emit_result(b, w, m, res, fused_vs);
    if (add_row(b, w, m, res, fused_vs) != 0)
      return -1;
  }
  return 0;
}

/* Runs and frees one workload; a failed build is a failed run. */
static int run_one(bench *b, workload *w, int built) {
  int rc = built == 0 ? run_workload(b, w) : -1;
  workload_release(b, w);
  return rc;
}

static int run_grid(bench *b) {
  const grid *g = grid_of(b->opt.common.grid);
  workload w;
  for (size_t i = 0; i < g->copy_ops_count; ++i)
    for (size_t j = 0; j < g->copy_bytes_count; ++j) {
      uint64_t ops = g->copy_ops[i], bytes = g->copy_bytes[j];
      if (ops * bytes > MAX_GRID_TOTAL)
        continue;
      if (run_one(b, &w, build_copy(b, &w, "copy", ops, bytes, 0)) != 0)
        return -1;
    }
  for (size_t i = 0; i < g->pinned_count; ++i)
    if (run_one(b, &w,
                build_copy(b, &w, "pinned", g->pinned[i][0], g->pinned[i][1],
                           1)) != 0)
      return -1;
  for (size_t i = 0; i < g->fill_count; ++i)
    if (run_one(b, &w,
                build_fill(b, &w, "fill", g->fill[i][0], g->fill[i][1])) != 0)
      return -1;
  for (size_t i = 0; i < g->gather_count; ++i)
    if (run_one(b, &w, build_gather(b, &w, "gather", g->gather[i])) != 0)
      return -1;
  for (size_t i = 0; i < g->bandwidth_count; ++i)
    if (run_one(b, &w, build_bandwidth(b, &w, g->bandwidth[i])) != 0)
      return -1;
  return 0;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *to) {
  fprintf(to, "usage: bench_fused_copy [--backend auto|cuda|host] [--runs N] "
              "[--quick] [--smoke] [--json] [--out FILE]\n"
              "\n"
              "Times the fused copy (one launch per copy plan) against one "
              "copy per\n"
              "operation, cudaMemcpyBatchAsync (CUDA 12.8+), and one large "
              "copy.\n"
              "\n"
              "  --runs N       timed runs per configuration and method "
              "(default 1000)\n");
  bench_usage_common(to, "50 runs and a reduced grid (seconds, also on a CPU)",
                     "3 runs, small configurations of each scenario "
                     "(the tests)");
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
  const grid *g = grid_of(b->opt.common.grid);
  if (!b->opt.runs_given)
    b->opt.runs = g->runs;
  b->warmup = g->warmup;
  cgr_config config;
  cgr_status status = cgr_config_init(&config);
  if (status != CGR_OK)
    return bench_fail_call("bench_fused_copy", NULL, status, "cgr_config_init");
  config.backend = b->opt.common.backend;
  status = cgr_runtime_create(&config, &b->rt);
  if (status != CGR_OK)
    return bench_fail_call("bench_fused_copy", NULL, status,
                           "cgr_runtime_create");
  b->be = &b->rt->backend;
  b->stream = b->rt->streams[CGR_STREAM_MAIN];
  b->cuda = cgr_backend(b->rt) == CGR_BACKEND_CUDA;
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
  if (bench_output_open(&b->out, "bench_fused_copy", &b->opt.common) != 0)
    return -1;
  return 0;
fail:
  return -1;
}

static int bench_close(bench *b) {
  int rc = bench_output_close(&b->out);
  if (b->rt != NULL) {
    cgr__be_event_destroy(b->be, b->start);
    cgr__be_event_destroy(b->be, b->end);
  }
  cgr_runtime_destroy(b->rt);
  if (b->gate_ready)
    gate_destroy(&b->gate);
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
                         .usage = usage,
                         .own_option = parse_option};
  int exit_code = bench_parse_args(&cli, argc, argv, &b.opt.common, &b.opt);
  if (exit_code >= 0)
    return exit_code;
  double began = bench_now_us();
  int rc = bench_open(&b);
  if (rc == 0) {
    emit_meta(&b);
    rc = run_grid(&b);
  }
  if (rc == 0 && !b.opt.common.json) {
    print_table(&b);
    bench_print_end(b.cuda,
                    "each copy or plan is a task for one worker thread, so "
                    "launches_per_plan counts hand-offs to it, not GPU "
                    "launches, and gbps is this CPU's memory bandwidth",
                    began);
  }
  if (bench_close(&b) != 0)
    rc = -1;
  return rc == 0 ? 0 : 1;
}
