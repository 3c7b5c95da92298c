/*
 * bench_tp: what a tensor-parallel decode step costs in a group of N ranks
 * (cgr_group.h), with its all-reduces inside the step's graph against
 * outside it.
 *
 * The step is synthetic and decode-like (bench_tp_group.c): the batch's
 * token ids (one int32 per row, given from host memory), their embedding,
 * L layers of a row-parallel MLP (rmsnorm, up projection, swiglu, down
 * projection: the example model's kernels, examples/decode/kernels.h) each
 * ending in an all-reduce of [rows x hidden] fp32, and an argmax per row.
 * Two groups run it, alternating step by step so drift hits both alike:
 *
 *   inside   the normal group path: the whole step is one graph per rank,
 *            its L all-reduces captured in it (NCCL on CUDA, the host
 *            communicator on the host backend); one cgr_group_replay per
 *            step, then the ticket is waited.
 *   outside  piecewise, as vLLM's piecewise graphs split a step at its
 *            collectives: per layer, a graph replay of the layer's compute
 *            (one graph every layer replays), then its all-reduce as an
 *            eager step (CGR_REPLAY_EAGER: the step function runs
 *            eagerly and enqueues the all-reduce). Both are steps of one
 *            group, switched with cgr_group_set_replay_mode, so they run
 *            in order on each rank's main stream with no event between
 *            them; the pieces hand activations over in device buffers of
 *            their own (the embedding and the argmax ride on the eager
 *            steps). What this cannot copy from vLLM: cgr's eager step
 *            waits for its work before cgr_group_replay returns, so each
 *            all-reduce costs a host wait that vLLM's eager NCCL call
 *            does not; and each piece is a cgr step with its own batch
 *            (begin, tok given or unchanged, replay).
 *
 * Per step: host_us is the host time of the step's cgr calls (batch
 * begin, inputs, replay; for outside also the mode switches and the eager
 * steps' waits), and host_us_per_rank that over the ranks; step_us is the
 * wall time until the ticket was waited; on CUDA gpu_us is the time
 * between two CUDA events recorded on rank 0's main stream before and
 * after the step's replays (cgr_cuda_stream). The last step's argmax must
 * be the same in both groups (WRONG RESULT and exit 1 otherwise).
 *
 * On the host backend a rank's streams are CPU worker threads and a kernel
 * runs on one thread: these are CPU timings ("timing":"cpu"), not
 * comparable with GPU numbers. Defaults: 1 rank on CUDA (one GPU), 2 on
 * the host backend; --ranks N for more (on CUDA, N GPUs and NCCL).
 * Even one rank's group needs NCCL on CUDA: without it bench_tp says NOT
 * RUN and exits 77.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "bench_tp.h"
#include "cgr/cgr.h"

#ifdef CGR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <cgr/cgr_cuda.h>
#endif

enum { WARMUP = 3, MAX_RESULTS = 16 };

typedef struct options {
  bench_options common;
  long ranks, steps, layers; /* 0: the default */
} options;

/* CUDA events on a group's rank 0 main stream (none on the host). */
typedef struct gpu_timer {
  int on;
#ifdef CGR_HAVE_CUDA
  cudaStream_t stream;
  cudaEvent_t start, end;
#endif
} gpu_timer;

typedef struct result {
  const char *variant;
  uint32_t batch;
  double host_p50, host_p90, step_p50, step_p90, gpu_p50, gpu_p90;
  double graphs_per_step, waits_per_step;
} result;

typedef struct bench {
  options opt;
  tp_shape shape;
  long steps;
  bench_meta meta;
  bench_output out;
  tp_group groups[2]; /* inside, outside */
  gpu_timer timers[2];
  double *host[2], *step[2], *gpu[2], *scratch;
  result results[MAX_RESULTS];
  size_t result_count;
} bench;

/* ---- the GPU timer ------------------------------------------------------- */

#ifdef CGR_HAVE_CUDA
static int cuda_failed(cudaError_t error, const char *what) {
  fprintf(stderr, "bench_tp: %s failed: %s (%s)\n", what,
          cudaGetErrorName(error), cudaGetErrorString(error));
  return -1;
}

#define CUDA_CHECK(call, what)                                                 \
  do {                                                                         \
    cudaError_t cuda_error_ = (call);                                          \
    if (cuda_error_ != cudaSuccess)                                            \
      return cuda_failed(cuda_error_, (what));                                 \
  } while (0)
#endif

static int timer_open(gpu_timer *t, tp_group *g, int cuda) {
  memset(t, 0, sizeof *t);
  if (!cuda)
    return 0;
#ifdef CGR_HAVE_CUDA
  cgr_runtime *rt = cgr_group_runtime(g->group, 0);
  int device = -1;
  BENCH_CHECK_CALL("bench_tp", rt, cgr_cuda_device(rt, &device),
                   "cgr_cuda_device");
  BENCH_CHECK_CALL("bench_tp", rt,
                   cgr_cuda_stream(rt, CGR_STREAM_MAIN, &t->stream),
                   "cgr_cuda_stream");
  CUDA_CHECK(cudaSetDevice(device), "cudaSetDevice");
  CUDA_CHECK(cudaEventCreate(&t->start), "cudaEventCreate");
  CUDA_CHECK(cudaEventCreate(&t->end), "cudaEventCreate");
  t->on = 1;
  return 0;
#else
  (void)g;
  fprintf(stderr, "bench_tp: a CUDA runtime in a build without CUDA\n");
  return -1;
#endif
}

static void timer_close(gpu_timer *t) {
#ifdef CGR_HAVE_CUDA
  if (t->start != NULL)
    (void)cudaEventDestroy(t->start);
  if (t->end != NULL)
    (void)cudaEventDestroy(t->end);
#endif
  memset(t, 0, sizeof *t);
}

/* Records the start (begin = 1) or the end event. */
static int timer_record(gpu_timer *t, int begin) {
  if (!t->on)
    return 0;
#ifdef CGR_HAVE_CUDA
  CUDA_CHECK(cudaEventRecord(begin ? t->start : t->end, t->stream),
             "cudaEventRecord");
#else
  (void)begin;
#endif
  return 0;
}

/* The µs between the events, once the end has completed; 0 when off. */
static int timer_read(gpu_timer *t, double *us) {
  *us = 0;
  if (!t->on)
    return 0;
#ifdef CGR_HAVE_CUDA
  float ms = 0;
  CUDA_CHECK(cudaEventSynchronize(t->end), "cudaEventSynchronize");
  CUDA_CHECK(cudaEventElapsedTime(&ms, t->start, t->end),
             "cudaEventElapsedTime");
  *us = (double)ms * 1e3;
#endif
  return 0;
}

/* ---- the runs ------------------------------------------------------------ */

/* One step of group v (0 inside, 1 outside), timed into sample i (when
 * i >= 0). */
static int timed_step(bench *b, int v, uint32_t batch, long step, long i,
                      cgr_ticket *ticket) {
  tp_group *g = &b->groups[v];
  double gpu_us = 0, t0 = bench_now_us();
  if (timer_record(&b->timers[v], 1) != 0)
    return -1;
  int rc = v == 0 ? tp_inside_step(g, batch, step, ticket)
                  : tp_outside_step(g, batch, step, ticket);
  if (rc != 0)
    return -1;
  double t1 = bench_now_us();
  if (timer_record(&b->timers[v], 0) != 0)
    return -1;
  TP_CHECK_GROUP(g->group, cgr_group_ticket_wait(g->group, ticket),
                 "cgr_group_ticket_wait");
  double t2 = bench_now_us();
  if (timer_read(&b->timers[v], &gpu_us) != 0)
    return -1;
  if (i >= 0) {
    b->host[v][i] = t1 - t0;
    b->step[v][i] = t2 - t0;
    b->gpu[v][i] = gpu_us;
  }
  return 0;
}

static int same_tokens(const int32_t *inside, const int32_t *outside,
                       uint32_t batch) {
  for (uint32_t j = 0; j < batch; ++j)
    if (inside[j] != outside[j]) {
      fprintf(stderr,
              "bench_tp: WRONG RESULT: batch %u, row %u: argmax %d with the "
              "all-reduces inside the graph, %d outside\n",
              batch, j, inside[j], outside[j]);
      return -1;
    }
  return 0;
}

static int counters(tp_group *g, cgr_counters *out, int reset) {
  cgr_runtime *rt = cgr_group_runtime(g->group, 0);
  if (reset)
    BENCH_CHECK_CALL("bench_tp", rt, cgr_counters_reset(rt),
                     "cgr_counters_reset");
  BENCH_CHECK_CALL("bench_tp", rt, cgr_counters_get(rt, out),
                   "cgr_counters_get");
  return 0;
}

static void summarize(bench *b, int v, uint32_t batch,
                      const cgr_counters *count) {
  result *r = &b->results[b->result_count++];
  memset(r, 0, sizeof *r);
  r->variant = b->groups[v].name;
  r->batch = batch;
  bench_percentiles(b->host[v], b->steps, b->scratch, &r->host_p50, 90,
                    &r->host_p90);
  bench_percentiles(b->step[v], b->steps, b->scratch, &r->step_p50, 90,
                    &r->step_p90);
  bench_percentiles(b->gpu[v], b->steps, b->scratch, &r->gpu_p50, 90,
                    &r->gpu_p90);
  r->graphs_per_step = (double)count->graph_launches / (double)b->steps;
  r->waits_per_step = (double)count->synchronizations / (double)b->steps;
}

static int run_batch(bench *b, uint32_t batch) {
  int32_t tokens[2][4096];
  cgr_ticket ticket;
  cgr_counters count[2];
  if (tp_outside_prime(&b->groups[1], batch) != 0)
    return -1;
  long total = WARMUP + b->steps;
  for (long s = 0; s < total; ++s) {
    if (s == WARMUP)
      for (int v = 0; v < 2; ++v)
        if (counters(&b->groups[v], &count[v], 1) != 0)
          return -1;
    for (int v = 0; v < 2; ++v) {
      if (timed_step(b, v, batch, s, s - WARMUP, &ticket) != 0)
        return -1;
      if (s == total - 1 &&
          tp_read_next(&b->groups[v], &ticket, batch, tokens[v]) != 0)
        return -1;
    }
  }
  if (same_tokens(tokens[0], tokens[1], batch) != 0)
    return -1;
  for (int v = 0; v < 2; ++v) {
    if (counters(&b->groups[v], &count[v], 0) != 0)
      return -1;
    summarize(b, v, batch, &count[v]);
  }
  return 0;
}

/* ---- output -------------------------------------------------------------- */

static const result *inside_of(const bench *b, const result *r) {
  for (size_t i = 0; i < b->result_count; ++i)
    if (b->results[i].batch == r->batch &&
        strcmp(b->results[i].variant, "inside") == 0)
      return &b->results[i];
  return r;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

static void emit_meta(bench *b) {
  const tp_shape *s = &b->shape;
  char line[2048];
  snprintf(line, sizeof line,
           "{%s,\"grid\":\"%s\",\"ranks\":%d,\"layers\":%d,\"hidden\":%d,"
           "\"mlp\":%d,\"vocab\":%d,\"dtype\":\"fp32\",\"steps\":%ld,"
           "\"warmup\":%d,\"gpu_timer\":%s%s}",
           b->meta.fields, bench_grid_name(b->opt.common.grid), s->ranks,
           s->layers, s->hidden, s->mlp, s->vocab, b->steps, WARMUP,
           b->meta.cuda ? "\"cuda_events_rank0_main_stream\"" : "null",
           b->meta.note);
  bench_emit(&b->out, line);
}

static void number_or_null(char *out, size_t size, int known, double value) {
  if (known)
    snprintf(out, size, "%.2f", value);
  else
    snprintf(out, size, "null");
}

static void emit_results(bench *b) {
  const tp_shape *s = &b->shape;
  for (size_t i = 0; i < b->result_count; ++i) {
    const result *r = &b->results[i];
    char gpu50[32], gpu90[32], line[2048];
    number_or_null(gpu50, sizeof gpu50, b->meta.cuda, r->gpu_p50);
    number_or_null(gpu90, sizeof gpu90, b->meta.cuda, r->gpu_p90);
    int outside = strcmp(r->variant, "outside") == 0;
    snprintf(
        line, sizeof line,
        "{\"bench\":\"tp\",\"backend\":\"%s\",\"timing\":\"%s\","
        "\"variant\":\"%s\",\"collectives\":\"%s\",\"ranks\":%d,"
        "\"batch\":%u,\"layers\":%d,\"hidden\":%d,\"allreduce_bytes\":%llu,"
        "\"steps\":%ld,\"host_us_p50\":%.2f,\"host_us_p90\":%.2f,"
        "\"host_us_per_rank_p50\":%.2f,\"step_us_p50\":%.2f,"
        "\"step_us_p90\":%.2f,\"gpu_us_p50\":%s,\"gpu_us_p90\":%s,"
        "\"graph_launches_per_step\":%.2f,\"host_waits_per_step\":%.2f,"
        "\"step_vs_inside\":%.3f}",
        b->meta.backend_name, b->meta.cuda ? "gpu" : "cpu", r->variant,
        outside ? "eager_between_graphs" : "in_graph", s->ranks, r->batch,
        s->layers, s->hidden,
        (unsigned long long)r->batch * (unsigned long long)s->hidden * 4ull,
        b->steps, r->host_p50, r->host_p90, r->host_p50 / s->ranks, r->step_p50,
        r->step_p90, gpu50, gpu90, r->graphs_per_step, r->waits_per_step,
        ratio(r->step_p50, inside_of(b, r)->step_p50));
    bench_emit(&b->out, line);
  }
}

static void print_table(const bench *b) {
  const tp_shape *s = &b->shape;
  int cuda = b->meta.cuda;
  const char *names[10] = {"variant",
                           "batch",
                           "allreduce_bytes",
                           "host_us_p50",
                           "host_us_per_rank_p50",
                           "step_us_p50",
                           "step_vs_inside",
                           "graph_launches_per_step",
                           "host_waits_per_step",
                           "gpu_us_p50"};
  bench_columns columns;
  bench_columns_init(&columns, cuda ? 10 : 9, names, 7);
  putchar('\n');
  bench_columns_header(&columns);
  for (size_t i = 0; i < b->result_count; ++i) {
    const result *r = &b->results[i];
    char bytes[32];
    bench_format_bytes(bytes, sizeof bytes,
                       (unsigned long long)r->batch * (unsigned)s->hidden * 4);
    bench_cell_text(&columns, 0, r->variant);
    bench_cell_number(&columns, 1, r->batch, 0);
    bench_cell_text(&columns, 2, bytes);
    bench_cell_number(&columns, 3, r->host_p50, 1);
    bench_cell_number(&columns, 4, r->host_p50 / s->ranks, 1);
    bench_cell_number(&columns, 5, r->step_p50, 1);
    bench_cell_number(&columns, 6,
                      ratio(r->step_p50, inside_of(b, r)->step_p50), 2);
    bench_cell_number(&columns, 7, r->graphs_per_step, 1);
    bench_cell_number(&columns, 8, r->waits_per_step, 1);
    if (cuda)
      bench_cell_number(&columns, 9, r->gpu_p50, 1);
    bench_row_end();
  }
  printf("\n%d rank%s, %d layers of hidden %d (mlp %d, %d per rank), fp32; "
         "p50 over %ld steps (--json adds the p90s)\n"
         "inside: one graph per step per rank, its %d all-reduces captured "
         "in it; outside: per layer a graph of the layer's compute, then its "
         "all-reduce as an eager step (cgr waits for each eager step: a host "
         "wait vLLM's eager NCCL call does not make)\n"
         "host_us_p50: the step's cgr calls on the host (batch begin, "
         "inputs, replay); host_us_per_rank_p50 that over the ranks; "
         "step_us_p50: until the ticket was waited; graph_launches_per_step, "
         "host_waits_per_step: rank 0's counters\n",
         s->ranks, s->ranks == 1 ? "" : "s", s->layers, s->hidden, s->mlp,
         s->mlp / s->ranks, b->steps, s->layers);
  if (cuda)
    printf("gpu_us_p50: CUDA events on rank 0's main stream around the "
           "step's replays\n");
}

/* ---- options ------------------------------------------------------------- */

static void choose_grid(bench *b) {
  tp_shape *s = &b->shape;
  static const uint32_t full[] = {1, 8, 32};
  static const uint32_t quick[] = {1, 8};
  static const uint32_t smoke[] = {4};
  const uint32_t *sizes = full;
  size_t count = 3;
  long steps = 100;
  *s = (tp_shape){.layers = 8, .hidden = 1024, .mlp = 3072, .vocab = 1024};
  if (b->opt.common.grid == BENCH_GRID_QUICK) {
    *s = (tp_shape){.layers = 4, .hidden = 256, .mlp = 768, .vocab = 512};
    sizes = quick;
    count = 2;
    steps = 30;
  } else if (b->opt.common.grid == BENCH_GRID_SMOKE) {
    /* Small: the tests run it under ThreadSanitizer. */
    *s = (tp_shape){.layers = 2, .hidden = 64, .mlp = 128, .vocab = 128};
    sizes = smoke;
    count = 1;
    steps = 4;
  }
  if (b->opt.layers > 0)
    s->layers = (int32_t)b->opt.layers;
  s->ranks = b->opt.ranks > 0 ? (int)b->opt.ranks : b->meta.cuda ? 1 : 2;
  memcpy(s->sizes, sizes, count * sizeof *sizes);
  s->size_count = count;
  b->steps = b->opt.steps > 0 ? b->opt.steps : steps;
}

static void usage(FILE *to) {
  fprintf(to,
          "usage: bench_tp [--backend auto|cuda|host] [--ranks N] "
          "[--layers N] [--steps N] [--quick] [--smoke] [--json] "
          "[--out FILE]\n"
          "\n"
          "A tensor-parallel decode step in a group (cgr_group) of N ranks:\n"
          "host time and step time with the all-reduces inside the step's\n"
          "graph against outside it (a graph per layer's compute, each\n"
          "all-reduce an eager step between them).\n"
          "\n"
          "  --ranks N      ranks (default 1 on CUDA, 2 on the host backend;"
          "\n"
          "                 on CUDA N GPUs, NCCL beyond one)\n"
          "  --layers N     layers (default 8; quick 4, smoke 2)\n"
          "  --steps N      timed steps per configuration (default 100; "
          "quick 30)\n");
  bench_usage_common(to, "hidden 256, 4 layers, batches 1 and 8",
                     "hidden 64, 2 layers, batch 4, 4 steps (the tests)");
}

static int parse_option(const bench_arg *arg, void *user) {
  options *opt = user;
  if (strcmp(arg->name, "--ranks") == 0)
    return bench_parse_long(arg, 1, CGR_GROUP_MAX_RANKS, &opt->ranks);
  if (strcmp(arg->name, "--layers") == 0)
    return bench_parse_long(arg, 1, 256, &opt->layers);
  if (strcmp(arg->name, "--steps") == 0)
    return bench_parse_long(arg, 1, 1000000, &opt->steps);
  return BENCH_ARG_UNKNOWN;
}

static int run_all(bench *b) {
  cgr_backend_kind backend = b->opt.common.backend;
  for (int v = 0; v < 2; ++v) {
    int rc = tp_group_open(&b->groups[v], &b->shape, backend, v);
    if (rc != 0)
      return rc;
    if (timer_open(&b->timers[v], &b->groups[v], b->meta.cuda) != 0)
      return -1;
  }
  bench_print_start(&b->meta, &b->opt.common);
  emit_meta(b);
  for (size_t i = 0; i < b->shape.size_count; ++i)
    if (run_batch(b, b->shape.sizes[i]) != 0)
      return -1;
  emit_results(b);
  return 0;
}

static int alloc_samples(bench *b) {
  size_t bytes = (size_t)b->steps * sizeof(double);
  b->scratch = malloc(bytes);
  int ok = b->scratch != NULL;
  for (int v = 0; v < 2; ++v) {
    b->host[v] = malloc(bytes);
    b->step[v] = malloc(bytes);
    b->gpu[v] = malloc(bytes);
    ok = ok && b->host[v] && b->step[v] && b->gpu[v];
  }
  if (!ok)
    fprintf(stderr, "bench_tp: out of memory for %ld samples\n", b->steps);
  return ok ? 0 : -1;
}

static void free_samples(bench *b) {
  free(b->scratch);
  for (int v = 0; v < 2; ++v) {
    free(b->host[v]);
    free(b->step[v]);
    free(b->gpu[v]);
  }
}

int main(int argc, char **argv) {
  static bench b;
  static const char *const valued[] = {"--ranks", "--layers", "--steps", NULL};
  const bench_cli cli = {.program = "bench_tp",
                         .valued = valued,
                         .usage = usage,
                         .own_option = parse_option};
  int exit_code = bench_parse_args(&cli, argc, argv, &b.opt.common, &b.opt);
  if (exit_code >= 0)
    return exit_code;
  double began = bench_now_us();
  if (bench_meta_probe("bench_tp", b.opt.common.backend, "tp", &b.meta) != 0)
    return BENCH_EXIT_FAILED;
  choose_grid(&b);
  if (b.shape.mlp % b.shape.ranks != 0) {
    fprintf(stderr, "bench_tp: mlp %d does not split over %d ranks\n",
            b.shape.mlp, b.shape.ranks);
    return BENCH_EXIT_USAGE;
  }
  if (alloc_samples(&b) != 0)
    return BENCH_EXIT_FAILED;
  if (bench_output_open(&b.out, "bench_tp", &b.opt.common) != 0) {
    free_samples(&b);
    return BENCH_EXIT_FAILED;
  }
  int rc = run_all(&b);
  if (rc == 0 && !b.opt.common.json) {
    print_table(&b);
    bench_print_end(b.meta.cuda,
                    "each rank's streams are worker threads, a kernel runs on "
                    "one thread and the all-reduce is a host communicator "
                    "between them",
                    began);
  }
  for (int v = 0; v < 2; ++v) {
    timer_close(&b.timers[v]);
    tp_group_close(&b.groups[v]);
  }
  free_samples(&b);
  if (bench_output_close(&b.out) != 0)
    rc = -1;
  if (rc == TP_NOT_RUN) {
    /* 77, as bench_python.py's: the GPU run calls it not run, not failed. */
    fprintf(stderr, "bench_tp: NOT RUN: no group on this machine (NCCL "
                    "could not be loaded)\n");
    return 77;
  }
  return rc == 0 ? BENCH_EXIT_OK : BENCH_EXIT_FAILED;
}
