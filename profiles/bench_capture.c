/*
 * bench_capture: what capturing the example model's decode step costs, in
 * time and in device memory, per bucket and buffer set and in total.
 *
 * Two runs, each on its own runtime with the example model (examples/
 * decode/model.h) and the serving engines' buckets (1, 2, 4, 8, then every
 * 8 up to --max-batch):
 *
 *   eager  one cgr_capture() of every bucket x 2 buffer sets, timed as a
 *          whole on CLOCK_MONOTONIC: the number a serving engine waits for
 *          at start-up. Free device memory before and after.
 *   lazy   the step registered with lazy_capture (this sizes and allocates
 *          the scratch arena), then cgr_capture_key() for each key (each
 *          bucket, largest first as cgr_capture() goes, and each tokens
 *          value), each timed, with free device memory after each: what
 *          each key's two graphs hold.
 *
 * --spec K adds the key of speculative decoding's verify step: every
 * bucket is captured for 1 and K + 1 tokens per request, as cgr-decode
 * --spec K captures it, on one arena: the total line says whether the
 * arena is the largest key's scratch (it must be) and what the sum over
 * keys would have been.
 *
 * Per bucket the runtime's own stats add the capture time of each set
 * (warm-up excluded), instantiate + upload time, node counts and the arena
 * bytes the step used. The device memory the graphs hold is the drop in
 * cudaMemGetInfo's free memory across the lazy captures (after the arena
 * and slots exist), and CUDA's graph memory attributes (memory that graph
 * allocation nodes hold; cgr's graphs have none, as they use the one
 * arena). The driver hands out memory in 2 MiB pages, so one bucket's
 * drop is 0 or a multiple of 2 MiB: the total over all buckets is the
 * number to read.
 *
 * On the host backend there is no device memory to measure (null in the
 * JSON) and every time is a CPU timing ("timing":"cpu"): the host
 * backend's warm-up runs the model on the CPU, so the default model and
 * 256 rows take minutes there; use --quick.
 *
 * Output: a table, a row per bucket, its headers the JSON fields, then
 * the total line's fields; --json: JSON lines on stdout instead; --out
 * FILE: JSON lines to FILE as well.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CGR_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "bench_common.h"
#include "cgr/cgr.h"
#include "model.h"

#define MAX_BUCKETS 64

typedef struct options {
  bench_options common; /* --backend, --quick, --smoke, --json, --out */
  int32_t max_batch;
  int max_batch_given;
  int32_t spec; /* --spec K: 0 for none */
} options;

/* Device memory as the driver sees it; `known` is 0 on the host backend. */
typedef struct memory {
  int known;
  uint64_t free_bytes;
  uint64_t graph_used;     /* cudaGraphMemAttrUsedMemCurrent */
  uint64_t graph_reserved; /* cudaGraphMemAttrReservedMemHigh */
} memory;

/* One key of the lazy run. */
typedef struct key_row {
  cgr_key_stats stats;
  double wall_ms;
  int64_t device_bytes; /* drop in free memory; -1 when unknown */
} key_row;

enum { MAX_KEYS = 2 * MAX_BUCKETS };

typedef struct bench {
  options opt;
  dec_config model;
  uint32_t tokens[2]; /* tokens per request: 1, and K + 1 with --spec K */
  size_t token_count;
  int cuda;
  char backend_name[16];
  uint32_t buckets[MAX_BUCKETS];
  size_t bucket_count;
  bench_output out;
  /* results */
  double eager_ms;
  int64_t eager_device_bytes;
  cgr_capture_stats eager_stats;
  size_t weight_bytes, cache_bytes;
  double register_ms;
  key_row rows[MAX_KEYS]; /* in capture order */
  size_t row_count;
  int64_t lazy_device_bytes;
  memory lazy_end;
  cgr_capture_stats lazy_stats;
} bench;

/* The model and its runtime. */
typedef struct engine {
  cgr_runtime *rt;
  dec_model model;
  int has_model;
} engine;

static int fail_call(cgr_runtime *rt, cgr_status status, const char *what) {
  return bench_fail_call("bench_capture", rt, status, what);
}

#define CHECK(rt, call, what) BENCH_CHECK_CALL("bench_capture", rt, call, what)

/* ---- device memory ------------------------------------------------------- */

#ifdef CGR_HAVE_CUDA
static int cuda_failed(cudaError_t error, const char *what) {
  fprintf(stderr, "bench_capture: %s failed: %s (%s)\n", what,
          cudaGetErrorName(error), cudaGetErrorString(error));
  return -1;
}
#endif

/* Free device memory and the graph memory attributes, on CUDA. Everything
 * queued first finishes, so the numbers are settled. */
static int memory_read(const bench *b, cgr_runtime *rt, memory *out) {
  memset(out, 0, sizeof *out);
  if (!b->cuda)
    return 0;
  CHECK(rt, cgr_synchronize(rt), "cgr_synchronize");
#ifdef CGR_HAVE_CUDA
  size_t free_bytes = 0, total_bytes = 0;
  cudaError_t error = cudaMemGetInfo(&free_bytes, &total_bytes);
  if (error != cudaSuccess)
    return cuda_failed(error, "cudaMemGetInfo");
  int device = 0;
  error = cudaGetDevice(&device);
  if (error != cudaSuccess)
    return cuda_failed(error, "cudaGetDevice");
  unsigned long long used = 0, reserved = 0;
  error = cudaDeviceGetGraphMemAttribute(device, cudaGraphMemAttrUsedMemCurrent,
                                         &used);
  if (error != cudaSuccess)
    return cuda_failed(error, "cudaDeviceGetGraphMemAttribute(UsedMemCurrent)");
  error =
      cudaDeviceGetGraphMemAttribute(device, cudaGraphMemAttrReservedMemHigh,
                                     &reserved);
  if (error != cudaSuccess)
    return cuda_failed(error,
                       "cudaDeviceGetGraphMemAttribute(ReservedMemHigh)");
  out->known = 1;
  out->free_bytes = free_bytes;
  out->graph_used = used;
  out->graph_reserved = reserved;
  return 0;
#else
  fprintf(stderr, "bench_capture: a CUDA runtime in a build without CUDA\n");
  return -1;
#endif
}

/* How much free memory dropped from `before` to `after`; -1 if unknown. */
static int64_t memory_drop(const memory *before, const memory *after) {
  if (!before->known || !after->known)
    return -1;
  return (int64_t)before->free_bytes - (int64_t)after->free_bytes;
}

/* ---- the runs ------------------------------------------------------------ */

static void engine_close(engine *e) {
  /* The graphs read the model's memory: the runtime goes first. */
  cgr_runtime *rt = e->rt;
  e->rt = NULL;
  cgr_runtime_destroy(rt);
  if (e->has_model)
    dec_model_destroy(&e->model);
  e->has_model = 0;
}

/* A runtime with the buckets and the model on it, nothing captured. */
static int engine_open(bench *b, engine *e, int lazy) {
  memset(e, 0, sizeof *e);
  cgr_config config;
  CHECK(NULL, cgr_config_init(&config), "cgr_config_init");
  config.backend = b->opt.common.backend;
  config.buckets = b->buckets;
  config.bucket_count = b->bucket_count;
  config.tokens_per_request = b->tokens;
  config.tokens_per_request_count = b->token_count;
  config.lazy_capture = lazy;
  cgr_status status = cgr_runtime_create(&config, &e->rt);
  if (status != CGR_OK)
    return fail_call(NULL, status, "cgr_runtime_create");
  char why[512];
  status = dec_model_create(e->rt, &b->model, &e->model, why, sizeof why);
  if (status != CGR_OK) {
    fprintf(stderr, "bench_capture: dec_model_create failed: %s: %s\n",
            cgr_status_name(status), why);
    return -1;
  }
  e->has_model = 1;
  b->weight_bytes = e->model.weight_bytes;
  b->cache_bytes = e->model.cache_bytes;
  return 0;
}

static int run_eager(bench *b) {
  engine e;
  int rc = engine_open(b, &e, 0);
  memory before, after;
  if (rc == 0)
    rc = memory_read(b, e.rt, &before);
  if (rc == 0) {
    double t0 = bench_now_us();
    cgr_status status = cgr_capture(e.rt, dec_step, &e.model);
    b->eager_ms = (bench_now_us() - t0) / 1e3;
    if (status != CGR_OK)
      rc = fail_call(e.rt, status, "cgr_capture (eager)");
  }
  if (rc == 0)
    rc = memory_read(b, e.rt, &after);
  if (rc == 0) {
    b->eager_device_bytes = memory_drop(&before, &after);
    cgr_status status = cgr_capture_stats_get(e.rt, &b->eager_stats);
    if (status != CGR_OK)
      rc = fail_call(e.rt, status, "cgr_capture_stats_get");
  }
  engine_close(&e);
  return rc;
}

static int run_lazy(bench *b) {
  engine e;
  int rc = engine_open(b, &e, 1);
  memory start, previous, now;
  if (rc == 0) {
    double t0 = bench_now_us();
    cgr_status status = cgr_capture(e.rt, dec_step, &e.model);
    b->register_ms = (bench_now_us() - t0) / 1e3;
    if (status != CGR_OK)
      rc = fail_call(e.rt, status, "cgr_capture (lazy registration)");
  }
  if (rc == 0)
    rc = memory_read(b, e.rt, &start);
  previous = start;
  /* Largest first, as cgr_capture goes: the first capture meets the arena
   * at its full size. */
  for (size_t i = b->bucket_count; rc == 0 && i-- > 0;) {
    for (size_t t = b->token_count; rc == 0 && t-- > 0;) {
      cgr_key key = {b->buckets[i], b->tokens[t], 0};
      key_row *row = &b->rows[b->row_count++];
      double t0 = bench_now_us();
      cgr_status status = cgr_capture_key(e.rt, &key);
      row->wall_ms = (bench_now_us() - t0) / 1e3;
      if (status != CGR_OK) {
        char what[64];
        snprintf(what, sizeof what, "cgr_capture_key(%u, %u)", key.padded_batch,
                 key.tokens_per_request);
        rc = fail_call(e.rt, status, what);
        break;
      }
      status = cgr_key_stats_get(e.rt, &key, &row->stats);
      if (status != CGR_OK) {
        rc = fail_call(e.rt, status, "cgr_key_stats_get");
        break;
      }
      if (!row->stats.captured) {
        fprintf(stderr,
                "bench_capture: key (%u, %u) is not captured after "
                "cgr_capture_key\n",
                key.padded_batch, key.tokens_per_request);
        rc = -1;
        break;
      }
      rc = memory_read(b, e.rt, &now);
      row->device_bytes = memory_drop(&previous, &now);
      previous = now;
    }
  }
  if (rc == 0) {
    b->lazy_device_bytes = memory_drop(&start, &previous);
    b->lazy_end = previous;
    cgr_status status = cgr_capture_stats_get(e.rt, &b->lazy_stats);
    if (status != CGR_OK)
      rc = fail_call(e.rt, status, "cgr_capture_stats_get");
  }
  engine_close(&e);
  return rc;
}

/* ---- output -------------------------------------------------------------- */

/* An int64 as JSON: null when negative (unknown). */
static void json_bytes(char *out, size_t size, int64_t bytes) {
  if (bytes < 0)
    snprintf(out, size, "null");
  else
    snprintf(out, size, "%lld", (long long)bytes);
}

static int emit_meta(bench *b) {
  bench_meta meta;
  if (bench_meta_probe("bench_capture", b->opt.common.backend, "capture",
                       &meta) != 0)
    return -1;
  b->cuda = meta.cuda;
  snprintf(b->backend_name, sizeof b->backend_name, "%s", meta.backend_name);
  bench_print_start(&meta, &b->opt.common);
  char line[2048];
  const dec_config *m = &b->model;
  snprintf(line, sizeof line,
           "{%s,\"grid\":\"%s\",\"model\":{\"layers\":%d,\"hidden\":%d,"
           "\"heads\":%d,\"head_dim\":%d,\"mlp\":%d,\"vocab\":%d,"
           "\"dtype\":\"%s\",\"pages\":%d,\"pages_per_seq\":%d},"
           "\"max_batch\":%d,\"buckets\":%zu%s}",
           meta.fields, bench_grid_name(b->opt.common.grid), m->layers,
           m->hidden, m->heads, m->head_dim, m->mlp, m->vocab,
           dec_dtype_name(m->dtype), m->pages, m->pages_per_seq,
           b->opt.max_batch, b->bucket_count, meta.note);
  bench_emit(&b->out, line);
  return 0;
}

static void emit_results(bench *b) {
  const char *timing = b->cuda ? "gpu" : "cpu";
  char line[2048], bytes[32], per_graph[32];
  for (size_t i = 0; i < b->row_count; ++i) {
    const key_row *r = &b->rows[i];
    json_bytes(bytes, sizeof bytes, r->device_bytes);
    snprintf(line, sizeof line,
             "{\"bench\":\"capture\",\"backend\":\"%s\",\"timing\":\"%s\","
             "\"run\":\"lazy\",\"bucket\":%u,\"tokens_per_request\":%u,"
             "\"variant\":%u,\"wall_ms\":%.3f,"
             "\"capture_ms\":[%.3f,%.3f],\"instantiate_ms\":[%.3f,%.3f],"
             "\"nodes\":[%llu,%llu],\"scratch_bytes\":%llu,"
             "\"device_bytes\":%s}",
             b->backend_name, timing, r->stats.key.padded_batch,
             r->stats.key.tokens_per_request, r->stats.key.variant, r->wall_ms,
             r->stats.capture_ms[0], r->stats.capture_ms[1],
             r->stats.instantiate_ms[0], r->stats.instantiate_ms[1],
             (unsigned long long)r->stats.nodes[0],
             (unsigned long long)r->stats.nodes[1],
             (unsigned long long)r->stats.scratch_bytes, bytes);
    bench_emit(&b->out, line);
  }

  uint64_t graphs = b->lazy_stats.graphs;
  json_bytes(bytes, sizeof bytes, b->lazy_device_bytes);
  json_bytes(per_graph, sizeof per_graph,
             b->lazy_device_bytes >= 0 && graphs > 0
                 ? b->lazy_device_bytes / (int64_t)graphs
                 : -1);
  double capture_sum = 0, instantiate_sum = 0, wall_sum = 0;
  uint64_t scratch_max = 0, scratch_sum = 0;
  for (size_t i = 0; i < b->row_count; ++i) {
    const key_row *r = &b->rows[i];
    capture_sum += r->stats.capture_ms[0] + r->stats.capture_ms[1];
    instantiate_sum += r->stats.instantiate_ms[0] + r->stats.instantiate_ms[1];
    wall_sum += r->wall_ms;
    scratch_sum += r->stats.scratch_bytes;
    if (r->stats.scratch_bytes > scratch_max)
      scratch_max = r->stats.scratch_bytes;
  }
  char graph_used[32], graph_reserved[32], eager_bytes[32];
  json_bytes(graph_used, sizeof graph_used,
             b->lazy_end.known ? (int64_t)b->lazy_end.graph_used : -1);
  json_bytes(graph_reserved, sizeof graph_reserved,
             b->lazy_end.known ? (int64_t)b->lazy_end.graph_reserved : -1);
  json_bytes(eager_bytes, sizeof eager_bytes, b->eager_device_bytes);
  char second_tokens[16] = "";
  if (b->token_count > 1)
    snprintf(second_tokens, sizeof second_tokens, "%u", b->tokens[1]);
  snprintf(line, sizeof line,
           "{\"kind\":\"total\",\"bench\":\"capture\",\"backend\":\"%s\","
           "\"timing\":\"%s\",\"buckets\":%zu,\"graphs\":%llu,"
           "\"eager_capture_ms\":%.3f,\"eager_device_bytes\":%s,"
           "\"lazy_register_ms\":%.3f,\"lazy_wall_ms\":%.3f,"
           "\"capture_ms_sum\":%.3f,\"instantiate_ms_sum\":%.3f,"
           "\"graph_device_bytes\":%s,\"graph_device_bytes_per_graph\":%s,"
           "\"graph_mem_used_current\":%s,\"graph_mem_reserved_high\":%s,"
           "\"arena_bytes\":%llu,\"slot_bytes\":%llu,\"weight_bytes\":%zu,"
           "\"cache_bytes\":%zu,\"keys\":%llu,\"tokens_per_request\":[%u%s%s],"
           "\"scratch_max_key\":%llu,\"scratch_sum_keys\":%llu,"
           "\"arena_is_largest_key\":%s}",
           b->backend_name, timing, b->bucket_count, (unsigned long long)graphs,
           b->eager_ms, eager_bytes, b->register_ms, wall_sum, capture_sum,
           instantiate_sum, bytes, per_graph, graph_used, graph_reserved,
           (unsigned long long)b->lazy_stats.arena_bytes,
           (unsigned long long)b->lazy_stats.slot_bytes, b->weight_bytes,
           b->cache_bytes, (unsigned long long)b->lazy_stats.keys, b->tokens[0],
           b->token_count > 1 ? "," : "", second_tokens,
           (unsigned long long)scratch_max, (unsigned long long)scratch_sum,
           b->lazy_stats.arena_bytes == scratch_max ? "true" : "false");
  bench_emit(&b->out, line);
}

/* bytes as "12.0 MiB", or "-" when unknown (negative). */
static void format_known_bytes(char *out, size_t size, int64_t bytes) {
  if (bytes < 0)
    snprintf(out, size, "-");
  else
    bench_format_bytes(out, size, (unsigned long long)bytes);
}

static void print_table(const bench *b) {
  const char *const names[] = {"bucket",
                               "tokens_per_request",
                               "wall_ms",
                               "capture_ms[0]",
                               "capture_ms[1]",
                               "instantiate_ms[0]",
                               "instantiate_ms[1]",
                               "nodes[0]",
                               "scratch_bytes",
                               "device_bytes"};
  bench_columns columns;
  bench_columns_init(&columns, 10, names, 10);
  printf("\nlazy: the keys one by one, largest bucket first\n");
  bench_columns_header(&columns);
  for (size_t i = 0; i < b->row_count; ++i) {
    const key_row *r = &b->rows[i];
    char bucket[16], tokens[16], scratch[32], device[32];
    snprintf(bucket, sizeof bucket, "%u", r->stats.key.padded_batch);
    snprintf(tokens, sizeof tokens, "%u", r->stats.key.tokens_per_request);
    bench_format_bytes(scratch, sizeof scratch, r->stats.scratch_bytes);
    format_known_bytes(device, sizeof device, r->device_bytes);
    bench_cell_text(&columns, 0, bucket);
    bench_cell_text(&columns, 1, tokens);
    bench_cell_number(&columns, 2, r->wall_ms, 2);
    bench_cell_number(&columns, 3, r->stats.capture_ms[0], 2);
    bench_cell_number(&columns, 4, r->stats.capture_ms[1], 2);
    bench_cell_number(&columns, 5, r->stats.instantiate_ms[0], 2);
    bench_cell_number(&columns, 6, r->stats.instantiate_ms[1], 2);
    bench_cell_number(&columns, 7, (double)r->stats.nodes[0], 0);
    bench_cell_text(&columns, 8, scratch);
    bench_cell_text(&columns, 9, device);
    bench_row_end();
  }
  double wall_sum = 0;
  uint64_t scratch_max = 0, scratch_sum = 0;
  for (size_t i = 0; i < b->row_count; ++i) {
    wall_sum += b->rows[i].wall_ms;
    scratch_sum += b->rows[i].stats.scratch_bytes;
    if (b->rows[i].stats.scratch_bytes > scratch_max)
      scratch_max = b->rows[i].stats.scratch_bytes;
  }
  uint64_t graphs = b->lazy_stats.graphs;
  char graph_bytes[32], per_graph[32], used[32], reserved[32], eager[32];
  format_known_bytes(graph_bytes, sizeof graph_bytes, b->lazy_device_bytes);
  format_known_bytes(per_graph, sizeof per_graph,
                     b->lazy_device_bytes >= 0 && graphs > 0
                         ? b->lazy_device_bytes / (int64_t)graphs
                         : -1);
  format_known_bytes(used, sizeof used,
                     b->lazy_end.known ? (int64_t)b->lazy_end.graph_used : -1);
  format_known_bytes(reserved, sizeof reserved,
                     b->lazy_end.known ? (int64_t)b->lazy_end.graph_reserved
                                       : -1);
  format_known_bytes(eager, sizeof eager, b->eager_device_bytes);
  char arena[32], slots[32], weights[32], cache[32];
  bench_format_bytes(arena, sizeof arena, b->lazy_stats.arena_bytes);
  bench_format_bytes(slots, sizeof slots, b->lazy_stats.slot_bytes);
  bench_format_bytes(weights, sizeof weights, b->weight_bytes);
  bench_format_bytes(cache, sizeof cache, b->cache_bytes);
  char most[32], sum[32];
  bench_format_bytes(most, sizeof most, scratch_max);
  bench_format_bytes(sum, sizeof sum, scratch_sum);
  printf("\nkeys %llu: the arena (%s) is %s the largest key's scratch (%s); "
         "the sum over keys would be %s\n",
         (unsigned long long)b->lazy_stats.keys, arena,
         b->lazy_stats.arena_bytes == scratch_max ? "exactly" : "NOT", most,
         sum);
  printf("\ntotal: buckets %zu, graphs %llu (every key x 2 buffer sets)\n"
         "  eager_capture_ms %.1f: one cgr_capture of every graph; "
         "eager_device_bytes %s\n"
         "  lazy_register_ms %.1f, lazy_wall_ms %.1f: the rows above\n"
         "  graph_device_bytes %s, graph_device_bytes_per_graph %s; "
         "graph_mem_used_current %s, graph_mem_reserved_high %s\n"
         "  shared by every graph: arena_bytes %s, slot_bytes %s; the "
         "model's weight_bytes %s, cache_bytes %s\n",
         b->bucket_count, (unsigned long long)graphs, b->eager_ms, eager,
         b->register_ms, wall_sum, graph_bytes, per_graph, used, reserved,
         arena, slots, weights, cache);
  printf("\nwall_ms: cgr_capture_bucket (warm-up, 2 captures, 2 "
         "instantiates and uploads); capture_ms[k], instantiate_ms[k]: "
         "buffer set k's capture, and its instantiate + upload\n"
         "nodes[0]: set 0's graph nodes; scratch_bytes: the arena the step "
         "used; device_bytes: the drop in free device memory (2 MiB pages: "
         "read the total)\n");
  if (!b->cuda)
    printf("-: device memory is not measurable on the host backend\n");
}

/* ---- options ------------------------------------------------------------- */

/* The serving engines' buckets (1, 2, 4, 8, then every 8), cut at max. */
static void choose_buckets(bench *b) {
  int32_t max = b->opt.max_batch;
  size_t n = 0;
  for (uint32_t s = 1; s <= 8 && (int32_t)s < max; s *= 2)
    b->buckets[n++] = s;
  for (uint32_t s = 16; (int32_t)s < max; s += 8)
    b->buckets[n++] = s;
  b->buckets[n++] = (uint32_t)max;
  b->bucket_count = n;
}

static void choose_model(bench *b) {
  dec_config_default(&b->model);
  int32_t max_batch = 256;
  if (b->opt.common.grid != BENCH_GRID_FULL) {
    /* cgr-decode's small model: the host backend runs its warm-ups. */
    b->model.layers = 2;
    b->model.hidden = 128;
    b->model.heads = 4;
    b->model.head_dim = 32;
    b->model.mlp = 256;
    b->model.vocab = 2048;
    max_batch = b->opt.common.grid == BENCH_GRID_QUICK ? 64 : 8;
  }
  if (!b->opt.max_batch_given)
    b->opt.max_batch = max_batch;
}

static void usage(FILE *to) {
  fprintf(to,
          "usage: bench_capture [--backend auto|cuda|host] [--max-batch N] "
          "[--quick] [--smoke] [--json] [--out FILE]\n"
          "\n"
          "Capture and instantiate time of every bucket x buffer set of the\n"
          "example model (cgr-decode's default: 4 layers, hidden 512), and "
          "the\n"
          "device memory the graphs hold, per graph and in total.\n"
          "\n"
          "  --max-batch N  the largest bucket, 1 to 256 (default 256: 35 "
          "buckets)\n"
          "  --spec K       also capture every bucket for K + 1 tokens per "
          "request\n"
          "                 (cgr-decode --spec K's verify step), 1 to 8\n");
  bench_usage_common(to,
                     "cgr-decode's small model (2 layers, hidden 128), max "
                     "batch 64",
                     "the small model, max batch 8 (the tests)");
}

/* bench_capture's own options: --max-batch N, --spec K. */
static int parse_option(const bench_arg *arg, void *user) {
  options *opt = user;
  long n = 0;
  if (strcmp(arg->name, "--spec") == 0) {
    if (bench_parse_long(arg, 1, 8, &n) != BENCH_ARG_OK)
      return BENCH_ARG_USAGE;
    opt->spec = (int32_t)n;
    return BENCH_ARG_OK;
  }
  if (strcmp(arg->name, "--max-batch") != 0)
    return BENCH_ARG_UNKNOWN;
  if (bench_parse_long(arg, 1, 256, &n) != BENCH_ARG_OK)
    return BENCH_ARG_USAGE;
  opt->max_batch = (int32_t)n;
  opt->max_batch_given = 1;
  return BENCH_ARG_OK;
}

int main(int argc, char **argv) {
  bench b;
  memset(&b, 0, sizeof b);
  static const char *const valued[] = {"--max-batch", "--spec", NULL};
  const bench_cli cli = {.program = "bench_capture",
                         .valued = valued,
                         .usage = usage,
                         .own_option = parse_option};
  int exit_code = bench_parse_args(&cli, argc, argv, &b.opt.common, &b.opt);
  if (exit_code >= 0)
    return exit_code;
  choose_model(&b);
  choose_buckets(&b);
  b.tokens[0] = 1;
  b.token_count = 1;
  if (b.opt.spec > 0)
    b.tokens[b.token_count++] = (uint32_t)b.opt.spec + 1;
  double began = bench_now_us();
  int rc = 0;
  if (bench_output_open(&b.out, "bench_capture", &b.opt.common) != 0)
    return BENCH_EXIT_FAILED;
  rc = emit_meta(&b);
  if (rc == 0)
    rc = run_eager(&b);
  if (rc == 0)
    rc = run_lazy(&b);
  if (rc == 0)
    emit_results(&b);
  if (rc == 0 && !b.opt.common.json) {
    print_table(&b);
    bench_print_end(b.cuda,
                    "each capture's warm-up runs the model on the CPU, and "
                    "there is no device memory to measure",
                    began);
  }
  if (bench_output_close(&b.out) != 0)
    rc = -1;
  return rc == 0 ? 0 : 1;
}
