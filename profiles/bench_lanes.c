/*
 * bench_lanes: does splitting a step's requests over two lanes
 * (cgr_lanes_*) beat one lane, and does an eager prefill on one lane hide
 * behind decode graphs on the other?
 *
 * The step is the example model's decode step (examples/decode/model.h).
 * A lane is a runtime of its own, and the model's weights and KV cache
 * live in its dec_model, so each lane's setup makes its own dec_model on
 * its lane's runtime: two lanes hold twice the weights and caches (the
 * memory line says how much). Two lanes objects are made once: one lane
 * and two lanes, both capturing the buckets 1, 2, 4, ... up to the largest
 * batch measured.
 *
 *   decode   B requests, one token each (a position from 64 to 191, its
 *            own pages), per step: one lane runs all B rows; two lanes
 *            split them round-robin (cgr_split), B/2 rows each (B = 1
 *            stays on lane 0: below min_requests_for_parallel). Steps
 *            alternate one lane, two lanes, so drift hits both alike.
 *   overlap  a decode step of D rows and a prefill of R prompts of T
 *            tokens (R x T rows, eager, as cgr-decode prefills): one
 *            lane runs the decode graph, then the prefill (eager mode),
 *            one after the other; two lanes replay the decode graph on
 *            lane 0 and the eager prefill on lane 1 in one
 *            cgr_lanes_replay (which launches graph lanes before eager
 *            ones, so the graph runs while the prefill blocks the host).
 *
 * Every time is CLOCK_MONOTONIC around cgr_lanes_replay(wait = 1), so a
 * step's device work is inside it; filling the batches is not. The
 * speedup is one lane's p50 over two lanes' (sequential p50 over overlap
 * p50). Each run's last step's sampled tokens must be the same whichever
 * lane ran a request (its KV pages are its own, so they are): otherwise
 * WRONG RESULT and exit 1.
 *
 * On the host backend each stream is a CPU worker thread and a kernel
 * runs on one thread: these are CPU timings ("timing":"cpu"), not
 * comparable with GPU numbers.
 *
 * Output: a table, a row per configuration, its headers the JSON
 * fields; --json: JSON lines on stdout instead; --out FILE: JSON lines to
 * FILE as well.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "cgr/cgr.h"
#include "model.h"

enum {
  MAX_SIZES = 5,
  MAX_DECODE = 16,   /* the largest decode batch measured */
  MAX_PREFILL = 8,   /* prompts per prefill */
  WARMUP = 3,        /* untimed steps per configuration */
  PAGES_PER_SEQ = 16 /* 256 tokens per sequence */
};

typedef struct options {
  bench_options common; /* --backend, --quick, --smoke, --json, --out */
  long steps;           /* 0: the grid's */
} options;

/* What one configuration measured. */
typedef struct result {
  const char *run; /* "decode" or "overlap" */
  uint32_t batch;  /* decode rows */
  uint32_t prefill_rows;
  double one_p50, one_p90, two_p50, two_p90; /* µs per step */
  double one_mean, two_mean;
  uint32_t rows_per_lane[2]; /* two lanes: rows on lane 0 and 1 */
  /* overlap: one lane's decode and prefill p50 apart */
  double decode_p50, prefill_p50;
  /* What two lanes could reach if a lane's time were its own work alone:
   * rows over the busier lane's rows (decode), the sum over the longer
   * part (overlap). */
  double ideal;
} result;

typedef struct bench {
  options opt;
  dec_config model;
  uint32_t sizes[MAX_SIZES];
  size_t size_count;
  uint32_t decode_rows, prompts, prompt_len; /* overlap */
  uint32_t first_prompt; /* the request number of the first prompt */
  long steps;
  int cuda;
  char backend_name[16];
  bench_output out;
  cgr_lanes *one, *two;
  uint32_t buckets[8];
  size_t bucket_count;
  double *samples[2], *scratch;
  double *parts[2]; /* overlap: one lane's decode and prefill apart */
  result results[MAX_SIZES + 1];
  size_t result_count;
} bench;

static int fail_call(cgr_runtime *rt, cgr_status status, const char *what) {
  return bench_fail_call("bench_lanes", rt, status, what);
}

#define CHECK(rt, call, what) BENCH_CHECK_CALL("bench_lanes", rt, call, what)

/* ---- lanes of the example model ----------------------------------------- */

static cgr_status lane_setup(void *user, cgr_runtime *rt, uint32_t lane,
                             void **lane_user) {
  const bench *b = user;
  dec_model *model = calloc(1, sizeof *model);
  if (model == NULL)
    return CGR_E_OUT_OF_MEMORY;
  char why[512];
  cgr_status status = dec_model_create(rt, &b->model, model, why, sizeof why);
  if (status != CGR_OK) {
    fprintf(stderr, "bench_lanes: lane %u: dec_model_create failed: %s\n", lane,
            why);
    free(model);
    return status;
  }
  *lane_user = model;
  return CGR_OK;
}

static void lane_teardown(void *user, uint32_t lane, void *lane_user) {
  (void)user;
  (void)lane;
  dec_model_destroy(lane_user);
  free(lane_user);
}

static int lanes_open(bench *b, uint32_t count, cgr_lanes **out) {
  cgr_config runtime;
  CHECK(NULL, cgr_config_init(&runtime), "cgr_config_init");
  runtime.backend = b->opt.common.backend;
  runtime.buckets = b->buckets;
  runtime.bucket_count = b->bucket_count;
  cgr_lanes_config config;
  CHECK(NULL, cgr_lanes_config_init(&config), "cgr_lanes_config_init");
  config.lanes = count;
  config.runtime = &runtime;
  config.setup = lane_setup;
  config.teardown = lane_teardown;
  config.step = dec_step;
  config.user = b;
  CHECK(NULL, cgr_lanes_create(&config, out), "cgr_lanes_create");
  return 0;
}

/* ---- requests and batches ------------------------------------------------ */

/* Request k owns pages [k * PAGES_PER_SEQ, (k + 1) * PAGES_PER_SEQ) in
 * every lane's cache; decode requests come first, then the prompts. */
typedef struct rows {
  uint32_t count;
  uint32_t request[MAX_DECODE + MAX_PREFILL * 64];
  int32_t *ids, *positions, *seq_lens, *cu_k, *out_loc, *page_table;
} rows;

static int rows_alloc(rows *r, size_t capacity) {
  memset(r, 0, sizeof *r);
  r->ids = calloc(capacity, 4);
  r->positions = calloc(capacity, 4);
  r->seq_lens = calloc(capacity, 4);
  r->cu_k = calloc(capacity + 1, 4);
  r->out_loc = calloc(capacity, 4);
  r->page_table = calloc(capacity * PAGES_PER_SEQ, 4);
  return r->ids && r->positions && r->seq_lens && r->cu_k && r->out_loc &&
         r->page_table;
}

static void rows_free(rows *r) {
  free(r->ids);
  free(r->positions);
  free(r->seq_lens);
  free(r->cu_k);
  free(r->out_loc);
  free(r->page_table);
}

static void rows_add(const bench *b, rows *r, uint32_t request,
                     int32_t position, int32_t token) {
  const dec_config *c = &b->model;
  uint32_t j = r->count++;
  int32_t first_page = (int32_t)request * PAGES_PER_SEQ;
  r->request[j] = request;
  r->ids[j] = token;
  r->positions[j] = position;
  r->seq_lens[j] = position + 1;
  r->cu_k[j + 1] = r->cu_k[j] + position + 1;
  r->out_loc[j] = (first_page + position / c->page_size) * c->page_size +
                  position % c->page_size;
  for (int32_t p = 0; p < PAGES_PER_SEQ; ++p)
    r->page_table[j * PAGES_PER_SEQ + p] = first_page + p;
}

static int32_t decode_position(uint32_t request) {
  return 64 + (int32_t)((request * 37) % 128);
}

static int32_t token_of(const bench *b, uint32_t request, int32_t position) {
  return (int32_t)((request * 131 + (uint32_t)position * 7 + 3) %
                   (uint32_t)b->model.vocab);
}

/* The decode rows of requests 0..count-1 that lane_of puts on `lane`. */
static void decode_rows(const bench *b, rows *r, uint32_t count,
                        const uint32_t *lane_of, uint32_t lane) {
  r->count = 0;
  for (uint32_t k = 0; k < count; ++k)
    if (lane_of[k] == lane)
      rows_add(b, r, k, decode_position(k), token_of(b, k, decode_position(k)));
}

/* R prompts of T tokens, one row per token: the requests after every
 * decode request. */
static void prefill_rows(const bench *b, rows *r) {
  r->count = 0;
  for (uint32_t i = 0; i < b->prompts; ++i)
    for (uint32_t t = 0; t < b->prompt_len; ++t)
      rows_add(b, r, b->first_prompt + i, (int32_t)t,
               token_of(b, b->first_prompt + i, (int32_t)t));
}

/* Opens the batch of `r` on the lane; NULL when it has no rows. */
static int batch_open(cgr_lanes *lanes, uint32_t lane, const rows *r,
                      cgr_batch **out) {
  *out = NULL;
  if (r->count == 0)
    return 0;
  cgr_runtime *rt = cgr_lanes_runtime(lanes, lane);
  const dec_model *m = cgr_lanes_user(lanes, lane);
  size_t n = r->count;
  cgr_batch *batch = NULL;
  CHECK(rt, cgr_batch_begin(rt, r->count, &batch), "cgr_batch_begin");
  struct {
    cgr_slot slot;
    const int32_t *data;
    size_t bytes;
  } inputs[] = {
      {m->slot.input_ids, r->ids, n * 4},
      {m->slot.positions, r->positions, n * 4},
      {m->slot.seq_lens, r->seq_lens, n * 4},
      {m->slot.cu_seqlens_k, r->cu_k, (n + 1) * 4},
      {m->slot.out_loc, r->out_loc, n * 4},
      {m->slot.page_table, r->page_table, n * PAGES_PER_SEQ * 4},
  };
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; ++i) {
    cgr_status status = cgr_batch_input(batch, inputs[i].slot, CGR_SOURCE_HOST,
                                        inputs[i].data, inputs[i].bytes);
    if (status != CGR_OK) {
      cgr_batch_discard(batch);
      return fail_call(rt, status, "cgr_batch_input");
    }
  }
  *out = batch;
  return 0;
}

/* Replays the batches (wait = 1) and returns the wall time in µs. */
static int replay_timed(cgr_lanes *lanes, cgr_batch **batches,
                        cgr_ticket *tickets, double *us) {
  double t0 = bench_now_us();
  cgr_status status = cgr_lanes_replay(lanes, batches, tickets, 1);
  *us = bench_now_us() - t0;
  CHECK(NULL, status, "cgr_lanes_replay");
  return 0;
}

/* Files the sampled token of each row of a finished lane step under its
 * request. */
static int read_tokens(cgr_lanes *lanes, uint32_t lane, const rows *r,
                       const cgr_ticket *ticket, int32_t *by_request) {
  if (r->count == 0)
    return 0;
  cgr_runtime *rt = cgr_lanes_runtime(lanes, lane);
  const dec_model *m = cgr_lanes_user(lanes, lane);
  void *device = NULL;
  int32_t tokens[MAX_DECODE + MAX_PREFILL * 64];
  CHECK(rt, cgr_output(rt, ticket, m->slot.next_ids, &device), "cgr_output");
  CHECK(rt, dec_copy(m, tokens, device, (size_t)r->count * 4), "dec_copy");
  for (uint32_t j = 0; j < r->count; ++j)
    by_request[r->request[j]] = tokens[j];
  return 0;
}

static int same_tokens(const int32_t *a, const int32_t *b, uint32_t count,
                       const char *what) {
  for (uint32_t k = 0; k < count; ++k)
    if (a[k] != b[k]) {
      fprintf(stderr,
              "bench_lanes: WRONG RESULT: %s: request %u sampled %d on one "
              "lane, %d on two\n",
              what, k, a[k], b[k]);
      return -1;
    }
  return 0;
}

static void summarize(bench *b, long n, double *one_p50, double *one_p90,
                      double *one_mean, double *two_p50, double *two_p90,
                      double *two_mean) {
  bench_percentiles(b->samples[0], n, b->scratch, one_p50, 90, one_p90);
  bench_percentiles(b->samples[1], n, b->scratch, two_p50, 90, two_p90);
  double sums[2] = {0, 0};
  for (long i = 0; i < n; ++i) {
    sums[0] += b->samples[0][i];
    sums[1] += b->samples[1][i];
  }
  *one_mean = sums[0] / (double)n;
  *two_mean = sums[1] / (double)n;
}

/* ---- the runs ------------------------------------------------------------ */

static int run_decode(bench *b, uint32_t batch, rows lane_rows[3]) {
  uint32_t lane_of[MAX_DECODE], zeros[MAX_DECODE] = {0};
  cgr_split_item items[MAX_DECODE];
  for (uint32_t k = 0; k < batch; ++k)
    items[k] = (cgr_split_item){CGR_PHASE_GENERATION, 1, NULL};
  cgr_split_config split = {.policy = CGR_SPLIT_ROUND_ROBIN, .lanes = 2};
  CHECK(NULL, cgr_split(&split, items, batch, lane_of), "cgr_split");
  int32_t one_tokens[MAX_DECODE], two_tokens[MAX_DECODE];
  cgr_ticket tickets[2];
  long total = WARMUP + b->steps;
  for (long s = 0; s < total; ++s) {
    double us = 0;
    cgr_batch *batches[2] = {NULL, NULL};
    /* One lane: every row. */
    decode_rows(b, &lane_rows[0], batch, zeros, 0);
    if (batch_open(b->one, 0, &lane_rows[0], &batches[0]) != 0 ||
        replay_timed(b->one, batches, tickets, &us) != 0)
      return -1;
    if (s >= WARMUP)
      b->samples[0][s - WARMUP] = us;
    if (s == total - 1 &&
        read_tokens(b->one, 0, &lane_rows[0], &tickets[0], one_tokens) != 0)
      return -1;
    /* Two lanes: round-robin. */
    for (uint32_t lane = 0; lane < 2; ++lane) {
      decode_rows(b, &lane_rows[1 + lane], batch, lane_of, lane);
      if (batch_open(b->two, lane, &lane_rows[1 + lane], &batches[lane]) != 0)
        return -1;
    }
    if (replay_timed(b->two, batches, tickets, &us) != 0)
      return -1;
    if (s >= WARMUP)
      b->samples[1][s - WARMUP] = us;
    if (s == total - 1)
      for (uint32_t lane = 0; lane < 2; ++lane)
        if (read_tokens(b->two, lane, &lane_rows[1 + lane], &tickets[lane],
                        two_tokens) != 0)
          return -1;
  }
  if (same_tokens(one_tokens, two_tokens, batch, "decode") != 0)
    return -1;
  result *r = &b->results[b->result_count++];
  memset(r, 0, sizeof *r);
  r->run = "decode";
  r->batch = batch;
  r->rows_per_lane[0] = lane_rows[1].count;
  r->rows_per_lane[1] = lane_rows[2].count;
  uint32_t busier = r->rows_per_lane[0] > r->rows_per_lane[1]
                        ? r->rows_per_lane[0]
                        : r->rows_per_lane[1];
  r->ideal = (double)batch / (double)busier;
  summarize(b, b->steps, &r->one_p50, &r->one_p90, &r->one_mean, &r->two_p50,
            &r->two_p90, &r->two_mean);
  r->decode_p50 = r->prefill_p50 = 0;
  return 0;
}

static int set_mode(cgr_lanes *lanes, uint32_t lane, cgr_replay_mode mode) {
  cgr_runtime *rt = cgr_lanes_runtime(lanes, lane);
  CHECK(rt, cgr_set_replay_mode(rt, mode), "cgr_set_replay_mode");
  return 0;
}

/* One lane: the decode graph, then the eager prefill. Two lanes: both in
 * one cgr_lanes_replay, the eager lane last. */
static int run_overlap(bench *b, rows lane_rows[3]) {
  uint32_t decode = b->decode_rows;
  uint32_t zeros[MAX_DECODE] = {0};
  uint32_t first = b->first_prompt;
  int32_t one_tokens[MAX_DECODE + MAX_PREFILL];
  int32_t two_tokens[MAX_DECODE + MAX_PREFILL];
  memset(one_tokens, 0, sizeof one_tokens);
  memset(two_tokens, 0, sizeof two_tokens);
  cgr_ticket tickets[2];
  long total = WARMUP + b->steps;
  if (set_mode(b->two, 1, CGR_REPLAY_EAGER) != 0)
    return -1;
  for (long s = 0; s < total; ++s) {
    int last = s == total - 1;
    double decode_us = 0, prefill_us = 0, us = 0;
    cgr_batch *batches[2] = {NULL, NULL};
    /* One lane, one after the other. */
    decode_rows(b, &lane_rows[0], decode, zeros, 0);
    if (batch_open(b->one, 0, &lane_rows[0], &batches[0]) != 0 ||
        replay_timed(b->one, batches, tickets, &decode_us) != 0)
      return -1;
    if (last &&
        read_tokens(b->one, 0, &lane_rows[0], &tickets[0], one_tokens) != 0)
      return -1;
    if (set_mode(b->one, 0, CGR_REPLAY_EAGER) != 0)
      return -1;
    prefill_rows(b, &lane_rows[0]);
    if (batch_open(b->one, 0, &lane_rows[0], &batches[0]) != 0 ||
        replay_timed(b->one, batches, tickets, &prefill_us) != 0)
      return -1;
    if (last &&
        read_tokens(b->one, 0, &lane_rows[0], &tickets[0], one_tokens) != 0)
      return -1;
    if (set_mode(b->one, 0, CGR_REPLAY_DOUBLE_BUFFERED) != 0)
      return -1;
    if (s >= WARMUP) {
      b->samples[0][s - WARMUP] = decode_us + prefill_us;
      b->parts[0][s - WARMUP] = decode_us;
      b->parts[1][s - WARMUP] = prefill_us;
    }
    /* Two lanes: decode graph on lane 0, the prefill on lane 1. */
    decode_rows(b, &lane_rows[1], decode, zeros, 0);
    prefill_rows(b, &lane_rows[2]);
    if (batch_open(b->two, 0, &lane_rows[1], &batches[0]) != 0 ||
        batch_open(b->two, 1, &lane_rows[2], &batches[1]) != 0 ||
        replay_timed(b->two, batches, tickets, &us) != 0)
      return -1;
    if (s >= WARMUP)
      b->samples[1][s - WARMUP] = us;
    if (last &&
        (read_tokens(b->two, 0, &lane_rows[1], &tickets[0], two_tokens) != 0 ||
         read_tokens(b->two, 1, &lane_rows[2], &tickets[1], two_tokens) != 0))
      return -1;
  }
  if (set_mode(b->two, 1, CGR_REPLAY_DOUBLE_BUFFERED) != 0)
    return -1;
  /* A prompt's token is the one its last row sampled; compare those and
   * the decode tokens. */
  if (same_tokens(one_tokens, two_tokens, decode, "overlap decode") != 0 ||
      same_tokens(one_tokens + first, two_tokens + first, b->prompts,
                  "overlap prefill") != 0)
    return -1;
  result *r = &b->results[b->result_count++];
  memset(r, 0, sizeof *r);
  r->run = "overlap";
  r->batch = decode;
  r->prefill_rows = b->prompts * b->prompt_len;
  r->rows_per_lane[0] = decode;
  r->rows_per_lane[1] = r->prefill_rows;
  summarize(b, b->steps, &r->one_p50, &r->one_p90, &r->one_mean, &r->two_p50,
            &r->two_p90, &r->two_mean);
  bench_percentiles(b->parts[0], b->steps, b->scratch, &r->decode_p50, 90,
                    NULL);
  bench_percentiles(b->parts[1], b->steps, b->scratch, &r->prefill_p50, 90,
                    NULL);
  double longer =
      r->decode_p50 > r->prefill_p50 ? r->decode_p50 : r->prefill_p50;
  r->ideal = longer > 0 ? (r->decode_p50 + r->prefill_p50) / longer : 0.0;
  return 0;
}

/* ---- output -------------------------------------------------------------- */

static double speedup(const result *r) {
  return r->two_p50 > 0 ? r->one_p50 / r->two_p50 : 0.0;
}

static int emit_meta(bench *b) {
  bench_meta meta;
  bench_meta_read(cgr_lanes_runtime(b->one, 0), "lanes", &meta);
  b->cuda = meta.cuda;
  snprintf(b->backend_name, sizeof b->backend_name, "%s", meta.backend_name);
  char line[2048];
  const dec_config *m = &b->model;
  snprintf(line, sizeof line,
           "{%s,\"grid\":\"%s\",\"model\":{\"layers\":%d,\"hidden\":%d,"
           "\"heads\":%d,\"head_dim\":%d,\"mlp\":%d,\"vocab\":%d,"
           "\"dtype\":\"%s\",\"pages\":%d,\"pages_per_seq\":%d},"
           "\"steps\":%ld,\"warmup\":%d,\"split\":\"round_robin\"%s}",
           meta.fields, bench_grid_name(b->opt.common.grid), m->layers,
           m->hidden, m->heads, m->head_dim, m->mlp, m->vocab,
           dec_dtype_name(m->dtype), m->pages, m->pages_per_seq, b->steps,
           WARMUP, meta.note);
  bench_print_start(&meta, &b->opt.common);
  bench_emit(&b->out, line);
  return 0;
}

/* Per lane: what cgr holds (slots, arena) and what setup made (the
 * model's weights and KV cache, one copy per lane). */
static int emit_memory(bench *b) {
  char line[512];
  for (uint32_t lane = 0; lane < cgr_lanes_count(b->two); ++lane) {
    uint64_t bytes = 0;
    CHECK(NULL, cgr_lanes_memory(b->two, lane, &bytes), "cgr_lanes_memory");
    const dec_model *m = cgr_lanes_user(b->two, lane);
    snprintf(line, sizeof line,
             "{\"kind\":\"memory\",\"bench\":\"lanes\",\"backend\":\"%s\","
             "\"lanes\":2,\"lane\":%u,\"cgr_bytes\":%llu,\"weight_bytes\":%zu,"
             "\"cache_bytes\":%zu}",
             b->backend_name, lane, (unsigned long long)bytes, m->weight_bytes,
             m->cache_bytes);
    bench_emit(&b->out, line);
  }
  return 0;
}

static void emit_results(bench *b) {
  char line[1024];
  for (size_t i = 0; i < b->result_count; ++i) {
    const result *r = &b->results[i];
    char decode[32] = "null", prefill[32] = "null";
    if (r->prefill_rows > 0) {
      snprintf(decode, sizeof decode, "%.2f", r->decode_p50);
      snprintf(prefill, sizeof prefill, "%.2f", r->prefill_p50);
    }
    snprintf(line, sizeof line,
             "{\"bench\":\"lanes\",\"backend\":\"%s\",\"timing\":\"%s\","
             "\"run\":\"%s\",\"batch\":%u,\"prefill_rows\":%u,"
             "\"rows_lane0\":%u,\"rows_lane1\":%u,\"steps\":%ld,"
             "\"one_lane_us_p50\":%.2f,\"one_lane_us_p90\":%.2f,"
             "\"two_lanes_us_p50\":%.2f,\"two_lanes_us_p90\":%.2f,"
             "\"one_lane_steps_per_s\":%.1f,\"two_lanes_steps_per_s\":%.1f,"
             "\"one_lane_decode_us_p50\":%s,\"one_lane_prefill_us_p50\":%s,"
             "\"speedup_two_vs_one\":%.3f,\"speedup_ideal\":%.3f}",
             b->backend_name, b->cuda ? "gpu" : "cpu", r->run, r->batch,
             r->prefill_rows, r->rows_per_lane[0], r->rows_per_lane[1],
             b->steps, r->one_p50, r->one_p90, r->two_p50, r->two_p90,
             r->one_mean > 0 ? 1e6 / r->one_mean : 0.0,
             r->two_mean > 0 ? 1e6 / r->two_mean : 0.0, decode, prefill,
             speedup(r), r->ideal);
    bench_emit(&b->out, line);
  }
}

static double mib(uint64_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

static void print_table(const bench *b) {
  const char *const names[] = {"run",
                               "batch",
                               "prefill_rows",
                               "rows_lane0",
                               "rows_lane1",
                               "one_lane_us_p50",
                               "two_lanes_us_p50",
                               "speedup_two_vs_one",
                               "speedup_ideal"};
  bench_columns columns;
  bench_columns_init(&columns, 9, names, 7);
  putchar('\n');
  bench_columns_header(&columns);
  for (size_t i = 0; i < b->result_count; ++i) {
    const result *r = &b->results[i];
    bench_cell_text(&columns, 0, r->run);
    bench_cell_number(&columns, 1, r->batch, 0);
    bench_cell_number(&columns, 2, r->prefill_rows, 0);
    bench_cell_number(&columns, 3, r->rows_per_lane[0], 0);
    bench_cell_number(&columns, 4, r->rows_per_lane[1], 0);
    bench_cell_number(&columns, 5, r->one_p50, 1);
    bench_cell_number(&columns, 6, r->two_p50, 1);
    bench_cell_number(&columns, 7, speedup(r), 2);
    bench_cell_number(&columns, 8, r->ideal, 2);
    bench_row_end();
  }
  printf("\none_lane_us_p50, two_lanes_us_p50: us per step, p50 over %ld "
         "steps of cgr_lanes_replay with wait (--json adds the p90s and "
         "steps per second)\n"
         "decode: one lane runs every row, two lanes split them round-robin "
         "(rows_lane0 + rows_lane1); overlap: one lane runs the decode graph "
         "then the eager prefill, two lanes run them at once\n"
         "speedup_two_vs_one: one_lane_us_p50 over two_lanes_us_p50; "
         "speedup_ideal: rows over the busier lane's rows (decode), decode + "
         "prefill over the longer of the two (overlap)\n",
         b->steps);
  for (size_t i = 0; i < b->result_count; ++i)
    if (b->results[i].prefill_rows > 0)
      printf("overlap, one lane: one_lane_decode_us_p50 %.1f (the decode "
             "graph) + one_lane_prefill_us_p50 %.1f (the eager prefill): at "
             "best two lanes hide the shorter one\n",
             b->results[i].decode_p50, b->results[i].prefill_p50);
  uint64_t bytes = 0;
  const dec_model *m = cgr_lanes_user(b->two, 0);
  if (cgr_lanes_memory(b->two, 0, &bytes) == CGR_OK)
    printf("memory per lane: cgr_bytes %.2f MiB (slots, arena) + "
           "weight_bytes %.1f MiB + cache_bytes %.1f MiB (the KV cache); each "
           "lane's setup makes its own model, so two lanes hold twice the "
           "weights and caches\n",
           mib(bytes), mib(m->weight_bytes), mib(m->cache_bytes));
  char no_help[1024];
  size_t used = 0;
  no_help[0] = '\0';
  for (size_t i = 0; i < b->result_count; ++i) {
    const result *r = &b->results[i];
    int nothing_split = r->prefill_rows == 0 && r->rows_per_lane[1] == 0;
    if (speedup(r) >= 1.05 && !nothing_split)
      continue;
    char what[128];
    if (r->prefill_rows > 0)
      snprintf(what, sizeof what, "overlap (%u decode + %u prefill rows)",
               r->batch, r->prefill_rows);
    else if (r->rows_per_lane[1] == 0)
      snprintf(what, sizeof what,
               "decode batch %u (one request, nothing to split: the "
               "difference is noise)",
               r->batch);
    else
      snprintf(what, sizeof what, "decode batch %u", r->batch);
    int n = snprintf(no_help + used, sizeof no_help - used, "%s%s (%.2fx)",
                     used ? ", " : "", what, speedup(r));
    if (n > 0 && (size_t)n < sizeof no_help - used)
      used += (size_t)n;
  }
  if (used > 0)
    printf("two lanes did not help (speedup_two_vs_one under 1.05) for: "
           "%s\n",
           no_help);
  else
    printf("two lanes helped (speedup_two_vs_one 1.05 or more) in every "
           "configuration measured here\n");
}

/* ---- options ------------------------------------------------------------- */

static void choose_grid(bench *b) {
  dec_config_default(&b->model);
  static const uint32_t full[] = {1, 2, 4, 8, 16};
  static const uint32_t quick[] = {1, 4, 16};
  static const uint32_t smoke[] = {4};
  const uint32_t *sizes = full;
  size_t count = 5;
  long steps = 100;
  b->decode_rows = 8;
  b->prompts = 4;
  b->prompt_len = 32;
  if (b->opt.common.grid != BENCH_GRID_FULL) {
    /* cgr-decode's small model: the host backend runs it in seconds. */
    b->model.layers = 2;
    b->model.hidden = 128;
    b->model.heads = 4;
    b->model.head_dim = 32;
    b->model.mlp = 256;
    b->model.vocab = 2048;
    sizes = b->opt.common.grid == BENCH_GRID_QUICK ? quick : smoke;
    count = b->opt.common.grid == BENCH_GRID_QUICK ? 3 : 1;
    steps = b->opt.common.grid == BENCH_GRID_QUICK ? 30 : 4;
    b->prompt_len = b->opt.common.grid == BENCH_GRID_QUICK ? 16 : 4;
    if (b->opt.common.grid == BENCH_GRID_SMOKE) {
      /* Smaller still: the tests run it under ThreadSanitizer. */
      b->model.layers = 1;
      b->model.hidden = 64;
      b->model.heads = 2;
      b->model.mlp = 128;
      b->model.vocab = 512;
      b->decode_rows = 2;
      b->prompts = 2;
    }
  }
  b->model.pages_per_seq = PAGES_PER_SEQ;
  /* Every request's pages, then the dummy page. */
  uint32_t largest = sizes[count - 1];
  if (b->decode_rows > largest)
    largest = b->decode_rows;
  b->first_prompt = largest;
  b->model.pages = (int32_t)(largest + b->prompts) * PAGES_PER_SEQ + 1;
  memcpy(b->sizes, sizes, count * sizeof *sizes);
  b->size_count = count;
  b->steps = b->opt.steps > 0 ? b->opt.steps : steps;
  b->bucket_count = 0;
  for (uint32_t s = 1; s <= largest; s *= 2)
    b->buckets[b->bucket_count++] = s;
  if (b->buckets[b->bucket_count - 1] < largest)
    b->buckets[b->bucket_count++] = largest;
}

static void usage(FILE *to) {
  fprintf(to, "usage: bench_lanes [--backend auto|cuda|host] [--steps N] "
              "[--quick] [--smoke] [--json] [--out FILE]\n"
              "\n"
              "Two lanes (cgr_lanes) against one on the example model: decode\n"
              "steps of batch 1, 2, 4, 8, 16 split round-robin, and an eager\n"
              "prefill beside a decode graph against the two one after the "
              "other.\n"
              "\n"
              "  --steps N      timed steps per configuration (default 100; "
              "quick 30)\n");
  bench_usage_common(to, "cgr-decode's small model, batches 1, 4, 16",
                     "a tiny model (1 layer, hidden 64), batch 4, 4 steps "
                     "(the tests)");
}

/* bench_lanes' own option: --steps N. */
static int parse_option(const bench_arg *arg, void *user) {
  options *opt = user;
  if (strcmp(arg->name, "--steps") != 0)
    return BENCH_ARG_UNKNOWN;
  return bench_parse_long(arg, 1, 1000000, &opt->steps);
}

static int run_all(bench *b) {
  if (lanes_open(b, 1, &b->one) != 0 || lanes_open(b, 2, &b->two) != 0)
    return -1;
  if (emit_meta(b) != 0)
    return -1;
  if (emit_memory(b) != 0)
    return -1;
  rows lane_rows[3];
  size_t capacity = MAX_DECODE + (size_t)b->prompts * b->prompt_len;
  int rc = 0;
  for (int i = 0; i < 3 && rc == 0; ++i)
    rc = rows_alloc(&lane_rows[i], capacity) ? 0 : -1;
  if (rc != 0)
    fprintf(stderr, "bench_lanes: out of memory for the rows\n");
  for (size_t i = 0; i < b->size_count && rc == 0; ++i)
    rc = run_decode(b, b->sizes[i], lane_rows);
  if (rc == 0)
    rc = run_overlap(b, lane_rows);
  for (int i = 0; i < 3; ++i)
    rows_free(&lane_rows[i]);
  if (rc == 0)
    emit_results(b);
  return rc;
}

int main(int argc, char **argv) {
  bench b;
  memset(&b, 0, sizeof b);
  static const char *const valued[] = {"--steps", NULL};
  const bench_cli cli = {.program = "bench_lanes",
                         .valued = valued,
                         .usage = usage,
                         .own_option = parse_option};
  int exit_code = bench_parse_args(&cli, argc, argv, &b.opt.common, &b.opt);
  if (exit_code >= 0)
    return exit_code;
  choose_grid(&b);
  double began = bench_now_us();
  b.samples[0] = malloc((size_t)b.steps * sizeof(double));
  b.samples[1] = malloc((size_t)b.steps * sizeof(double));
  b.scratch = malloc((size_t)b.steps * sizeof(double));
  b.parts[0] = malloc((size_t)b.steps * sizeof(double));
  b.parts[1] = malloc((size_t)b.steps * sizeof(double));
  if (b.samples[0] == NULL || b.samples[1] == NULL || b.scratch == NULL ||
      b.parts[0] == NULL || b.parts[1] == NULL) {
    fprintf(stderr, "bench_lanes: out of memory for %ld samples\n", b.steps);
    return 1;
  }
  if (bench_output_open(&b.out, "bench_lanes", &b.opt.common) != 0)
    return BENCH_EXIT_FAILED;
  int rc = run_all(&b);
  if (rc == 0 && !b.opt.common.json) {
    print_table(&b);
    bench_print_end(b.cuda,
                    "each lane's streams are worker threads and a kernel runs "
                    "on one thread, so a speedup measures free CPU cores, not "
                    "a GPU's concurrency",
                    began);
  }
  cgr_lanes_destroy(b.two);
  cgr_lanes_destroy(b.one);
  free(b.samples[0]);
  free(b.samples[1]);
  free(b.scratch);
  free(b.parts[0]);
  free(b.parts[1]);
  if (bench_output_close(&b.out) != 0)
    rc = -1;
  return rc == 0 ? 0 : 1;
}
