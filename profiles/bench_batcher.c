/*
 * bench_batcher: what the batcher delivers on the example model, requests
 * per second and the latency each request sees, across offered loads.
 *
 * A request is one decode step of one sequence (a token at a position,
 * the sequence's pages): the batcher's build callback gives the batch's
 * rows to every input slot from host memory, its finish callback reads
 * back the sampled token of each row as that request's result. One
 * runtime captures every bucket once (1, 2, 4, 8, then every 8 up to the
 * largest); each load runs on a fresh batcher over it.
 *
 *   max    closed loop: P producer threads each keep W requests in
 *          flight (submit, and wait the oldest when W are out), a busy
 *          answer retried at once: the most the batcher and the device
 *          sustain.
 *   open   open loop: P producers submit on a Poisson schedule at a
 *          total `offered_rps`, never waiting for an answer to submit the
 *          next; a busy answer is a rejected request, counted, not
 *          retried. By default the rates are fractions of the max point
 *          (0.1 to 1.1 of it), so the table covers light load to
 *          overload on any device; --rates gives absolute rates.
 *
 * Latency is measured by the producer: from just before its submit to
 * when it saw the request end (cgr_handle_wait or cgr_handle_poll of its
 * oldest outstanding request, which it checks between submits).
 * achieved_rps is the requests that ended CGR_OK over the time from the
 * first submit to the last end. The batcher's own stats add the mean
 * batch, the queue wait (submit to batch start) and the deepest queue.
 *
 * On the host backend the "device" is CPU threads running the model's
 * kernels: every number is a CPU timing ("timing":"cpu"), and the default
 * model takes minutes to capture there: use --quick.
 *
 * Output: a table, a row per load, its headers the JSON fields; --json:
 * JSON lines on stdout instead; --out FILE: JSON lines to FILE as well.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "cgr/cgr.h"
#include "model.h"

#define MAX_BUCKETS 64
#define MAX_LOADS 16
#define MAX_PRODUCERS 64
/* Requests one open-loop producer keeps outstanding at most; past that it
 * waits (and falls behind its schedule, which its latency then shows). */
#define OPEN_RING 16384u
/* Positions are drawn below this: attention over up to 128 tokens. */
#define MAX_POSITION 128

typedef struct options {
  bench_options common; /* --backend, --quick, --smoke, --json, --out */
  int producers;
  double seconds; /* per load; 0: the grid's */
  double rates[MAX_LOADS];
  int rate_count; /* 0: fractions of the max point */
} options;

/* One request: its row, and the token the step sampled for it. */
typedef struct request {
  int32_t token, position, sequence;
  int32_t next_token;
  double submitted_us;
} request;

/* The engine thread's side: the model and one batch's rows. */
typedef struct engine {
  cgr_runtime *rt;
  dec_model model;
  int has_model;
  uint32_t max_batch;
  int32_t *ids, *positions, *seq_lens, *cu_k, *out_loc, *page_table, *tokens;
  _Atomic uint64_t bad_tokens; /* a sampled token outside the vocabulary */
} engine;

/* What one load measured. */
typedef struct load_result {
  const char *load;             /* "max" or "open" */
  double offered_rps, fraction; /* open loop; 0 for max */
  double seconds;
  uint64_t submitted, completed, busy, failed;
  double achieved_rps;
  double latency_p50, latency_p99, latency_mean, latency_max;
  cgr_batcher_stats stats;
} load_result;

typedef struct bench {
  options opt;
  dec_config model;
  uint32_t max_batch;
  uint32_t buckets[MAX_BUCKETS];
  size_t bucket_count;
  int cuda;
  char backend_name[16];
  double capture_ms;
  bench_output out;
  engine e;
  load_result results[MAX_LOADS + 1];
  int result_count;
} bench;

#define CHECK(rt, call, what) BENCH_CHECK_CALL("bench_batcher", rt, call, what)

/* ---- the batcher's callbacks (engine thread) ----------------------------- */

/* Page p of a sequence's table: sequences share the cache's pages round
 * robin, never the dummy page. Steps run one after another, so two
 * requests of one sequence writing the same KV slot is no race. */
static int32_t sequence_page(const dec_config *c, int32_t sequence, int32_t p) {
  return (int32_t)(((int64_t)sequence * c->pages_per_seq + p) % (c->pages - 1));
}

static cgr_status build_batch(void *user, cgr_batch *batch,
                              void *const *requests, uint32_t count) {
  engine *e = user;
  const dec_config *c = &e->model.config;
  const size_t width = (size_t)c->pages_per_seq;
  e->cu_k[0] = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const request *r = requests[i];
    e->ids[i] = r->token;
    e->positions[i] = r->position;
    e->seq_lens[i] = r->position + 1;
    e->cu_k[i + 1] = e->cu_k[i] + r->position + 1;
    e->out_loc[i] = sequence_page(c, r->sequence, r->position / c->page_size) *
                        c->page_size +
                    r->position % c->page_size;
    for (size_t p = 0; p < width; ++p)
      e->page_table[i * width + p] = sequence_page(c, r->sequence, (int32_t)p);
  }
  const struct {
    cgr_slot slot;
    const int32_t *data;
    size_t bytes;
  } inputs[] = {
      {e->model.slot.input_ids, e->ids, count * 4},
      {e->model.slot.positions, e->positions, count * 4},
      {e->model.slot.seq_lens, e->seq_lens, count * 4},
      {e->model.slot.cu_seqlens_k, e->cu_k, (count + 1) * 4},
      {e->model.slot.out_loc, e->out_loc, count * 4},
      {e->model.slot.page_table, e->page_table, count * width * 4},
  };
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; ++i) {
    cgr_status status = cgr_batch_input(batch, inputs[i].slot, CGR_SOURCE_HOST,
                                        inputs[i].data, inputs[i].bytes);
    if (status != CGR_OK)
      return status;
  }
  return CGR_OK;
}

static cgr_status finish_batch(void *user, cgr_runtime *rt,
                               const cgr_ticket *ticket, void *const *requests,
                               uint32_t count, void **results) {
  engine *e = user;
  void *device = NULL;
  cgr_status status = cgr_output(rt, ticket, e->model.slot.next_ids, &device);
  if (status == CGR_OK)
    status = dec_copy(&e->model, e->tokens, device, (size_t)count * 4);
  if (status != CGR_OK)
    return status;
  for (uint32_t i = 0; i < count; ++i) {
    request *r = requests[i];
    r->next_token = e->tokens[i];
    if (r->next_token < 0 || r->next_token >= e->model.config.vocab)
      e->bad_tokens++;
    results[i] = &r->next_token;
  }
  return CGR_OK;
}

/* ---- producers ----------------------------------------------------------- */

typedef struct producer {
  bench *b;
  cgr_batcher *batcher;
  int closed;         /* closed loop (max) or open */
  uint32_t window;    /* outstanding at most */
  double rate_per_us; /* open loop */
  double start_us, end_us;
  uint64_t seed;
  request *ring;
  cgr_handle **handles;
  uint32_t head, count;
  double *latencies;
  size_t latency_count, latency_capacity;
  uint64_t submitted, completed, busy, failed;
  double last_end_us;
  int error;
} producer;

static double uniform(uint64_t *seed) {
  return (double)(dec_random(seed) >> 11) * (1.0 / 9007199254740992.0);
}

/* Takes the oldest outstanding request, which has ended. */
static void collect_oldest(producer *p, double now) {
  uint32_t slot = p->head;
  cgr_status status = cgr_handle_result(p->handles[slot], NULL);
  cgr_handle_release(p->handles[slot]);
  p->handles[slot] = NULL;
  p->head = (p->head + 1) % p->window;
  p->count--;
  p->last_end_us = now;
  if (status != CGR_OK) {
    p->failed++;
    return;
  }
  p->completed++;
  if (p->latency_count == p->latency_capacity) {
    size_t capacity = p->latency_capacity ? 2 * p->latency_capacity : 65536;
    double *grown = realloc(p->latencies, capacity * sizeof *grown);
    if (grown == NULL) {
      p->error = 1;
      return;
    }
    p->latencies = grown;
    p->latency_capacity = capacity;
  }
  p->latencies[p->latency_count++] = now - p->ring[slot].submitted_us;
}

/* Collects every oldest request that has ended, without waiting. */
static void collect_ended(producer *p) {
  while (p->count > 0 && cgr_handle_poll(p->handles[p->head]) == CGR_OK)
    collect_oldest(p, bench_now_us());
}

/* Waits up to timeout_us for the oldest request; 1 when it ended. */
static int wait_oldest(producer *p, uint64_t timeout_us) {
  if (cgr_handle_wait(p->handles[p->head], timeout_us) != CGR_OK)
    return 0;
  collect_oldest(p, bench_now_us());
  return 1;
}

/* Submits the next request into the ring's free slot: 1 accepted, 0 busy,
 * -1 on an error. */
static int submit_next(producer *p) {
  const dec_config *c = &p->b->model;
  uint32_t slot = (p->head + p->count) % p->window;
  request *r = &p->ring[slot];
  r->token = (int32_t)(dec_random(&p->seed) % (uint64_t)c->vocab);
  r->position = (int32_t)(dec_random(&p->seed) % MAX_POSITION);
  r->sequence = (int32_t)(dec_random(&p->seed) % 4096);
  r->next_token = -1;
  r->submitted_us = bench_now_us();
  cgr_status status = cgr_batcher_submit(p->batcher, r, 0, &p->handles[slot]);
  if (status == CGR_E_BUSY) {
    p->busy++;
    return 0;
  }
  if (status != CGR_OK) {
    fprintf(stderr, "bench_batcher: cgr_batcher_submit: %s\n",
            cgr_status_name(status));
    p->error = 1;
    return -1;
  }
  p->submitted++;
  p->count++;
  return 1;
}

static void run_closed(producer *p) {
  while (!p->error && bench_now_us() < p->end_us) {
    collect_ended(p);
    if (p->count == p->window) {
      (void)wait_oldest(p, UINT64_MAX);
      continue;
    }
    if (submit_next(p) == 0)
      sched_yield(); /* the queue is full: let the engine take some */
  }
}

static void run_open(producer *p) {
  double next = p->start_us - log(1.0 - uniform(&p->seed)) / p->rate_per_us;
  while (!p->error) {
    double now = bench_now_us();
    if (next >= p->end_us)
      break;
    if (now < next) {
      uint64_t idle_us = (uint64_t)(next - now);
      if (p->count > 0)
        (void)wait_oldest(p, idle_us);
      else if (idle_us > 0)
        usleep((useconds_t)idle_us);
      continue;
    }
    if (p->count == p->window)
      (void)wait_oldest(p, UINT64_MAX); /* behind schedule from here */
    else if (submit_next(p) >= 0)
      next -= log(1.0 - uniform(&p->seed)) / p->rate_per_us;
    collect_ended(p);
  }
}

static void *produce(void *arg) {
  producer *p = arg;
  if (p->closed)
    run_closed(p);
  else
    run_open(p);
  while (p->count > 0)
    (void)wait_oldest(p, UINT64_MAX);
  return NULL;
}

/* ---- one load ------------------------------------------------------------ */

static int compare_doubles(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

/* Merges the producers' latencies into r's percentiles. */
static int summarize(const producer *producers, int n, load_result *r) {
  size_t total = 0;
  for (int i = 0; i < n; ++i)
    total += producers[i].latency_count;
  if (total == 0)
    return 0;
  double *all = malloc(total * sizeof *all);
  double *scratch = malloc(total * sizeof *scratch);
  if (all == NULL || scratch == NULL) {
    free(all);
    free(scratch);
    fprintf(stderr, "bench_batcher: out of memory for %zu latencies\n", total);
    return -1;
  }
  size_t k = 0;
  double sum = 0;
  for (int i = 0; i < n; ++i)
    for (size_t j = 0; j < producers[i].latency_count; ++j) {
      all[k] = producers[i].latencies[j];
      sum += all[k++];
    }
  bench_percentiles(all, (long)total, scratch, &r->latency_p50, 99,
                    &r->latency_p99);
  qsort(all, total, sizeof *all, compare_doubles);
  r->latency_max = all[total - 1];
  r->latency_mean = sum / (double)total;
  free(all);
  free(scratch);
  return 0;
}

/* Runs one load on a fresh batcher: offered_rps 0 is the closed loop. */
static int run_load(bench *b, double offered_rps, double fraction,
                    load_result *r) {
  memset(r, 0, sizeof *r);
  r->load = offered_rps > 0 ? "open" : "max";
  r->offered_rps = offered_rps;
  r->fraction = fraction;
  r->seconds = b->opt.seconds;
  cgr_batcher_config config;
  CHECK(b->e.rt, cgr_batcher_config_init(&config), "cgr_batcher_config_init");
  config.max_batch = b->max_batch;
  config.build = build_batch;
  config.finish = finish_batch;
  config.user = &b->e;
  cgr_batcher *batcher = NULL;
  CHECK(b->e.rt, cgr_batcher_create(b->e.rt, &config, &batcher),
        "cgr_batcher_create");

  int n = b->opt.producers;
  producer producers[MAX_PRODUCERS];
  pthread_t threads[MAX_PRODUCERS];
  memset(producers, 0, sizeof producers);
  /* Closed loop: two full batches outstanding in all. */
  uint32_t closed_window = 2 * b->max_batch / (uint32_t)n;
  if (closed_window < 4)
    closed_window = 4;
  double start = bench_now_us() + 1000.0;
  int rc = 0, started = 0;
  for (int i = 0; i < n && rc == 0; ++i) {
    producer *p = &producers[i];
    p->b = b;
    p->batcher = batcher;
    p->closed = offered_rps <= 0;
    p->window = p->closed ? closed_window : OPEN_RING;
    p->rate_per_us = offered_rps / 1e6 / n;
    p->start_us = start;
    p->end_us = start + b->opt.seconds * 1e6;
    p->seed = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) + (uint64_t)offered_rps;
    p->ring = calloc(p->window, sizeof *p->ring);
    p->handles = calloc(p->window, sizeof *p->handles);
    if (p->ring == NULL || p->handles == NULL) {
      fprintf(stderr, "bench_batcher: out of memory for the producers\n");
      rc = -1;
      break;
    }
    if (pthread_create(&threads[i], NULL, produce, p) != 0) {
      fprintf(stderr, "bench_batcher: pthread_create failed\n");
      rc = -1;
      break;
    }
    started++;
  }
  double last_end = start;
  for (int i = 0; i < started; ++i) {
    pthread_join(threads[i], NULL);
    producer *p = &producers[i];
    r->submitted += p->submitted;
    r->completed += p->completed;
    r->busy += p->busy;
    r->failed += p->failed;
    if (p->last_end_us > last_end)
      last_end = p->last_end_us;
    if (p->error)
      rc = -1;
  }
  if (rc == 0 && cgr_batcher_stats_get(batcher, &r->stats) != CGR_OK)
    rc = -1;
  cgr_batcher_destroy(batcher);
  if (rc == 0) {
    r->achieved_rps = last_end > start
                          ? (double)r->completed / ((last_end - start) / 1e6)
                          : 0.0;
    rc = summarize(producers, started, r);
  }
  for (int i = 0; i < n; ++i) {
    free(producers[i].ring);
    free(producers[i].handles);
    free(producers[i].latencies);
  }
  if (rc == 0 && r->failed > 0) {
    fprintf(stderr, "bench_batcher: %llu requests failed\n",
            (unsigned long long)r->failed);
    rc = -1;
  }
  return rc;
}

/* ---- setup --------------------------------------------------------------- */

static void engine_close(engine *e) {
  /* The graphs read the model's memory: the runtime goes first. */
  cgr_runtime *rt = e->rt;
  e->rt = NULL;
  cgr_runtime_destroy(rt);
  if (e->has_model)
    dec_model_destroy(&e->model);
  e->has_model = 0;
  int32_t **rows[] = {&e->ids,     &e->positions,  &e->seq_lens, &e->cu_k,
                      &e->out_loc, &e->page_table, &e->tokens};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; ++i) {
    free(*rows[i]);
    *rows[i] = NULL;
  }
}

/* The runtime, the model, every bucket captured, the rows' buffers. */
static int engine_open(bench *b) {
  engine *e = &b->e;
  cgr_config config;
  CHECK(NULL, cgr_config_init(&config), "cgr_config_init");
  config.backend = b->opt.common.backend;
  config.buckets = b->buckets;
  config.bucket_count = b->bucket_count;
  CHECK(NULL, cgr_runtime_create(&config, &e->rt), "cgr_runtime_create");
  b->cuda = cgr_backend(e->rt) == CGR_BACKEND_CUDA;
  snprintf(b->backend_name, sizeof b->backend_name, "%s",
           cgr_backend_name(e->rt));
  char why[512];
  cgr_status status =
      dec_model_create(e->rt, &b->model, &e->model, why, sizeof why);
  if (status != CGR_OK) {
    fprintf(stderr, "bench_batcher: dec_model_create failed: %s: %s\n",
            cgr_status_name(status), why);
    return -1;
  }
  e->has_model = 1;
  double t0 = bench_now_us();
  CHECK(e->rt, cgr_capture(e->rt, dec_step, &e->model), "cgr_capture");
  b->capture_ms = (bench_now_us() - t0) / 1e3;
  size_t n = b->max_batch;
  size_t width = (size_t)b->model.pages_per_seq;
  e->max_batch = b->max_batch;
  e->ids = calloc(n, 4);
  e->positions = calloc(n, 4);
  e->seq_lens = calloc(n, 4);
  e->cu_k = calloc(n + 1, 4);
  e->out_loc = calloc(n, 4);
  e->page_table = calloc(n * width, 4);
  e->tokens = calloc(n, 4);
  if (!e->ids || !e->positions || !e->seq_lens || !e->cu_k || !e->out_loc ||
      !e->page_table || !e->tokens) {
    fprintf(stderr, "bench_batcher: out of memory for the rows\n");
    return -1;
  }
  return 0;
}

/* ---- output -------------------------------------------------------------- */

static void emit_meta(bench *b) {
  bench_meta meta;
  bench_meta_read(b->e.rt, "batcher", &meta);
  bench_print_start(&meta, &b->opt.common);
  cgr_batcher_config defaults;
  cgr_batcher_config_init(&defaults);
  char line[2048];
  const dec_config *m = &b->model;
  snprintf(line, sizeof line,
           "{%s,\"grid\":\"%s\",\"model\":{\"layers\":%d,\"hidden\":%d,"
           "\"heads\":%d,\"head_dim\":%d,\"mlp\":%d,\"vocab\":%d,"
           "\"dtype\":\"%s\",\"pages\":%d,\"pages_per_seq\":%d},"
           "\"max_batch\":%u,\"buckets\":%zu,\"producers\":%d,"
           "\"seconds\":%.3f,\"max_wait_us\":%u,\"min_wait_us\":%u,"
           "\"queue_capacity\":%u,\"capture_ms\":%.1f%s}",
           meta.fields, bench_grid_name(b->opt.common.grid), m->layers,
           m->hidden, m->heads, m->head_dim, m->mlp, m->vocab,
           dec_dtype_name(m->dtype), m->pages, m->pages_per_seq, b->max_batch,
           b->bucket_count, b->opt.producers, b->opt.seconds,
           defaults.max_wait_us, defaults.min_wait_us, defaults.queue_capacity,
           b->capture_ms, meta.note);
  bench_emit(&b->out, line);
}

static void emit_result(bench *b, const load_result *r) {
  char line[2048], offered[32], fraction[32];
  if (r->offered_rps > 0) {
    snprintf(offered, sizeof offered, "%.0f", r->offered_rps);
    if (r->fraction > 0)
      snprintf(fraction, sizeof fraction, "%.2f", r->fraction);
    else
      snprintf(fraction, sizeof fraction, "null");
  } else {
    snprintf(offered, sizeof offered, "null");
    snprintf(fraction, sizeof fraction, "null");
  }
  const cgr_batcher_stats *s = &r->stats;
  snprintf(line, sizeof line,
           "{\"bench\":\"batcher\",\"backend\":\"%s\",\"timing\":\"%s\","
           "\"load\":\"%s\",\"offered_rps\":%s,\"load_fraction\":%s,"
           "\"producers\":%d,\"seconds\":%.3f,\"submitted\":%llu,"
           "\"completed\":%llu,\"busy\":%llu,\"achieved_rps\":%.1f,"
           "\"latency_us_p50\":%.1f,\"latency_us_p99\":%.1f,"
           "\"latency_us_mean\":%.1f,\"latency_us_max\":%.1f,"
           "\"mean_batch\":%.2f,\"batches\":%llu,\"queue_wait_us_p50\":%.1f,"
           "\"queue_wait_us_p99\":%.1f,\"queue_depth_max\":%u}",
           b->backend_name, b->cuda ? "gpu" : "cpu", r->load, offered, fraction,
           b->opt.producers, r->seconds, (unsigned long long)r->submitted,
           (unsigned long long)r->completed, (unsigned long long)r->busy,
           r->achieved_rps, r->latency_p50, r->latency_p99, r->latency_mean,
           r->latency_max, s->mean_batch, (unsigned long long)s->batches,
           s->wait_us_p50, s->wait_us_p99, s->queue_depth_max);
  bench_emit(&b->out, line);
}

static void print_table(const bench *b) {
  const char *const names[] = {"load",           "load_fraction",
                               "offered_rps",    "achieved_rps",
                               "latency_us_p50", "latency_us_p99",
                               "latency_us_max", "mean_batch",
                               "busy",           "queue_wait_us_p99"};
  bench_columns columns;
  bench_columns_init(&columns, 10, names, 4);
  putchar('\n');
  bench_columns_header(&columns);
  for (int i = 0; i < b->result_count; ++i) {
    const load_result *r = &b->results[i];
    bench_cell_text(&columns, 0, r->load);
    if (r->offered_rps > 0 && r->fraction > 0)
      bench_cell_number(&columns, 1, r->fraction, 2);
    else
      bench_cell_text(&columns, 1, "-");
    if (r->offered_rps > 0)
      bench_cell_number(&columns, 2, r->offered_rps, 0);
    else
      bench_cell_text(&columns, 2, "-");
    bench_cell_number(&columns, 3, r->achieved_rps, 0);
    bench_cell_number(&columns, 4, r->latency_p50, 0);
    bench_cell_number(&columns, 5, r->latency_p99, 0);
    bench_cell_number(&columns, 6, r->latency_max, 0);
    bench_cell_number(&columns, 7, r->stats.mean_batch, 1);
    bench_cell_number(&columns, 8, (double)r->busy, 0);
    bench_cell_number(&columns, 9, r->stats.wait_us_p99, 0);
    bench_row_end();
  }
  cgr_batcher_config defaults;
  cgr_batcher_config_init(&defaults);
  printf("\n%d producers, %.1f s per load, max batch %u (%zu buckets), the "
         "batcher's default window (%u us, %u once two wait)\n"
         "load: max is the closed loop (no offered_rps: '-'), open a Poisson "
         "schedule at offered_rps, load_fraction of max's achieved_rps\n"
         "latency_us_*: submit to end as the producer saw it; mean_batch: "
         "requests per step; busy: submits refused by a full queue (open "
         "loop: dropped); queue_wait_us_p99: submit to batch start\n",
         b->opt.producers, b->opt.seconds, b->max_batch, b->bucket_count,
         defaults.max_wait_us, defaults.min_wait_us);
}

/* ---- options ------------------------------------------------------------- */

/* The serving engines' buckets (1, 2, 4, 8, then every 8), cut at max. */
static void choose_buckets(bench *b) {
  uint32_t max = b->max_batch;
  size_t n = 0;
  for (uint32_t s = 1; s <= 8 && s < max; s *= 2)
    b->buckets[n++] = s;
  for (uint32_t s = 16; s < max; s += 8)
    b->buckets[n++] = s;
  b->buckets[n++] = max;
  b->bucket_count = n;
}

static void choose_model(bench *b) {
  dec_config_default(&b->model);
  b->max_batch = 256;
  double seconds = 3.0;
  if (b->opt.common.grid != BENCH_GRID_FULL) {
    /* cgr-decode's small model: the host backend runs it. */
    b->model.layers = 2;
    b->model.hidden = 128;
    b->model.heads = 4;
    b->model.head_dim = 32;
    b->model.mlp = 256;
    b->model.vocab = 2048;
    b->max_batch = b->opt.common.grid == BENCH_GRID_QUICK ? 64 : 8;
    seconds = b->opt.common.grid == BENCH_GRID_QUICK ? 1.0 : 0.1;
  }
  if (b->opt.seconds <= 0)
    b->opt.seconds = seconds;
}

static void usage(FILE *to) {
  fprintf(to,
          "usage: bench_batcher [--backend auto|cuda|host] [--producers N] "
          "[--seconds S] [--rates R1,R2,...] [--quick] [--smoke] [--json] "
          "[--out FILE]\n"
          "\n"
          "Requests per second and latency (p50, p99) of the batcher on the\n"
          "example model (cgr-decode's default: 4 layers, hidden 512), "
          "closed\n"
          "loop (max) and open loop at offered loads.\n"
          "\n"
          "  --producers N  submitting threads, 1 to %d (default 4)\n"
          "  --seconds S    per load, 0.01 to 3600 (default 3; --quick 1, "
          "--smoke 0.1)\n"
          "  --rates LIST   open-loop rates in requests/s (default: 0.1, "
          "0.25, 0.5,\n"
          "                 0.75, 0.9 and 1.1 of the max point)\n",
          MAX_PRODUCERS);
  bench_usage_common(to,
                     "cgr-decode's small model (2 layers, hidden 128), max\n"
                     "                 batch 64, loads 0.1, 0.5, 0.9, 1.1 of "
                     "max",
                     "the small model, max batch 8, max and one load (the "
                     "tests)");
}

static int parse_rates(const char *text, options *opt) {
  const char *at = text;
  opt->rate_count = 0;
  while (*at != '\0') {
    char *end = NULL;
    errno = 0;
    double rate = strtod(at, &end);
    if (errno != 0 || end == at || !(rate > 0) || rate > 1e9 ||
        opt->rate_count == MAX_LOADS || (*end != ',' && *end != '\0'))
      return -1;
    opt->rates[opt->rate_count++] = rate;
    at = *end == ',' ? end + 1 : end;
  }
  return opt->rate_count > 0 ? 0 : -1;
}

/* bench_batcher's own options: --producers N, --seconds S, --rates LIST. */
static int parse_option(const bench_arg *arg, void *user) {
  options *opt = user;
  if (strcmp(arg->name, "--producers") == 0) {
    long n = 0;
    if (bench_parse_long(arg, 1, MAX_PRODUCERS, &n) != BENCH_ARG_OK)
      return BENCH_ARG_USAGE;
    opt->producers = (int)n;
  } else if (strcmp(arg->name, "--seconds") == 0) {
    return bench_parse_double(arg, 0.01, 3600, &opt->seconds);
  } else if (strcmp(arg->name, "--rates") == 0) {
    if (parse_rates(arg->value, opt) != 0) {
      fprintf(stderr,
              "bench_batcher: --rates must be up to %d positive rates "
              "(requests/s) separated by commas, not '%s'\n",
              MAX_LOADS, arg->value);
      return BENCH_ARG_USAGE;
    }
  } else {
    return BENCH_ARG_UNKNOWN;
  }
  return BENCH_ARG_OK;
}

/* The max point, then each open-loop load. */
static int run_all(bench *b) {
  load_result *max = &b->results[0];
  if (run_load(b, 0, 0, max) != 0)
    return -1;
  emit_result(b, max);
  b->result_count = 1;
  static const double full[] = {0.1, 0.25, 0.5, 0.75, 0.9, 1.1};
  static const double quick[] = {0.1, 0.5, 0.9, 1.1};
  static const double smoke[] = {0.5};
  const double *fractions = b->opt.common.grid == BENCH_GRID_FULL    ? full
                            : b->opt.common.grid == BENCH_GRID_QUICK ? quick
                                                                     : smoke;
  int count = b->opt.common.grid == BENCH_GRID_FULL    ? 6
              : b->opt.common.grid == BENCH_GRID_QUICK ? 4
                                                       : 1;
  if (b->opt.rate_count > 0)
    count = b->opt.rate_count;
  for (int i = 0; i < count; ++i) {
    double fraction = b->opt.rate_count > 0 ? 0 : fractions[i];
    double rate =
        b->opt.rate_count > 0 ? b->opt.rates[i] : fraction * max->achieved_rps;
    if (rate < 1)
      rate = 1;
    load_result *r = &b->results[b->result_count];
    if (run_load(b, rate, fraction, r) != 0)
      return -1;
    emit_result(b, r);
    b->result_count++;
  }
  if (b->e.bad_tokens > 0) {
    fprintf(stderr,
            "bench_batcher: %llu sampled tokens outside the vocabulary\n",
            (unsigned long long)b->e.bad_tokens);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  static bench b;
  b.opt.producers = 4;
  static const char *const valued[] = {"--producers", "--seconds", "--rates",
                                       NULL};
  const bench_cli cli = {.program = "bench_batcher",
                         .valued = valued,
                         .usage = usage,
                         .own_option = parse_option};
  int exit_code = bench_parse_args(&cli, argc, argv, &b.opt.common, &b.opt);
  if (exit_code >= 0)
    return exit_code;
  choose_model(&b);
  choose_buckets(&b);
  double began = bench_now_us();
  if (bench_output_open(&b.out, "bench_batcher", &b.opt.common) != 0)
    return BENCH_EXIT_FAILED;
  int rc = engine_open(&b);
  if (rc == 0) {
    emit_meta(&b);
    rc = run_all(&b);
  }
  if (rc == 0 && !b.opt.common.json) {
    print_table(&b);
    bench_print_end(b.cuda,
                    "the producers, the engine thread and the stream workers "
                    "share this machine's cores, so the open loop can saturate "
                    "below the max point",
                    began);
  }
  engine_close(&b.e);
  if (bench_output_close(&b.out) != 0)
    rc = -1;
  return rc == 0 ? 0 : 1;
}
