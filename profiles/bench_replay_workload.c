/*
 * One configuration of bench_replay: the synthetic step (one kernel per
 * input slot plus filler), its runtime and slots, the input values every
 * step cycles through and the outputs they must give, and the batch of
 * each step (input_ids by feedback on a fed workload).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_replay.h"
#include "capture/capture.h"
#include "kernels/basic.h"
#include "runtime/runtime.h"

/* ---- small helpers ------------------------------------------------------- */

/* xorshift64: reproducible input values. */
static uint32_t next_random(uint64_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return (uint32_t)(*state >> 32);
}

/* A failed cgr call: what and why. Returns -1. */
int replay_fail_call(cgr_runtime *rt, cgr_status status, const char *what) {
  return bench_fail_call("bench_replay", rt, status, what);
}

/* ---- the step ------------------------------------------------------------ */

static cgr_status add(cgr_step *step, int32_t *dst, const int32_t *a,
                      const int32_t *b, uint64_t count) {
  cgr__add_i32_args args = {dst, a, b, (int64_t)count};
  return cgr_step_launch(step, &cgr__kernel_add_i32, &args);
}

/* G kernels (G + 1 fed: next_ids = ids + ones after the first):
 * ones = 1; acc = ids + positions; acc += seq_lens, out_loc,
 * cu_seqlens_k[1..], cu_seqlens_q, the last page_table row (its first
 * min(bs, W) pages); G - 8 times acc += ones; out = acc + ones. */
static cgr_status bench_step(cgr_step *step, void *user) {
  const workload *w = user;
  uint32_t bs = cgr_step_padded_batch(step);
  uint32_t width = w->shape.width;
  int32_t *acc = NULL, *ones = NULL;
  CGR__CHECK(cgr_step_scratch(step, bs * sizeof(int32_t), 256, (void **)&acc));
  CGR__CHECK(cgr_step_scratch(step, bs * sizeof(int32_t), 256, (void **)&ones));
  const int32_t *in[IN_COUNT];
  for (int i = 0; i < IN_COUNT; ++i)
    in[i] = cgr_step_slot(step, w->inputs[i]);
  const int32_t *cu_q = cgr_step_slot(step, w->cu_q);
  int32_t *out = cgr_step_slot(step, w->out);

  cgr__arange_i32_args ones_args = {ones, bs, 1, 0};
  CGR__CHECK(cgr_step_launch(step, &cgr__kernel_arange_i32, &ones_args));
  if (w->fed)
    CGR__CHECK(
        add(step, cgr_step_slot(step, w->next_ids), in[IN_IDS], ones, bs));
  CGR__CHECK(add(step, acc, in[IN_IDS], in[IN_POSITIONS], bs));
  CGR__CHECK(add(step, acc, acc, in[IN_SEQ_LENS], bs));
  CGR__CHECK(add(step, acc, acc, in[IN_OUT_LOC], bs));
  CGR__CHECK(add(step, acc, acc, in[IN_CU_K] + 1, bs));
  CGR__CHECK(add(step, acc, acc, cu_q, bs));
  CGR__CHECK(add(step, acc, acc, in[IN_PAGES] + (uint64_t)(bs - 1) * width,
                 bs < width ? bs : width));
  for (uint32_t k = STEP_MIN_KERNELS; k < w->shape.kernels; ++k)
    CGR__CHECK(add(step, acc, acc, ones, bs));
  return add(step, out, acc, ones, bs);
}

/* ---- a step's batch and what it must give ------------------------------- */

static const cgr_source source_kinds[REPLAY_SOURCE_COUNT] = {CGR_SOURCE_HOST,
                                                             CGR_SOURCE_PINNED};

/* Fed: whether step n of a method moves its rows (w->moved) rather than
 * keeping them in place. */
static int rows_move(long n) { return n % VARIANTS == VARIANTS - 1; }

/* Fed: input_ids of step n of a method by feedback (n > 0). */
static cgr_status feed_ids(workload *w, cgr_batch *batch, long n) {
  uint32_t bs = w->shape.bucket;
  if (!rows_move(n))
    return cgr_batch_feedback(batch, w->inputs[IN_IDS], w->in_place, NULL, 0);
  const int32_t *fresh = w->data[IN_IDS] + (size_t)(n % VARIANTS) * bs;
  return cgr_batch_feedback(batch, w->inputs[IN_IDS], w->moved, fresh + bs - 1,
                            sizeof(int32_t));
}

void workload_fed_reference(workload *w, long n) {
  uint32_t bs = w->shape.bucket;
  int v = (int)(n % VARIANTS);
  const int32_t *fresh = w->data[IN_IDS] + (size_t)v * bs;
  int32_t *ids = w->fed_ids;
  if (n == 0) {
    memcpy(ids, fresh, bs * sizeof(int32_t));
  } else if (rows_move(n)) {
    for (uint32_t j = 0; j + 1 < bs; ++j)
      ids[j] = ids[j + 1] + 1;
    ids[bs - 1] = fresh[bs - 1];
  } else {
    for (uint32_t j = 0; j < bs; ++j)
      ids[j] += 1;
  }
  /* `out` is input_ids plus what the other inputs of variant v add. */
  const int32_t *want = w->expected + (size_t)v * bs;
  for (uint32_t j = 0; j < bs; ++j)
    w->fed_expected[j] =
        (int32_t)((uint32_t)ids[j] + (uint32_t)want[j] - (uint32_t)fresh[j]);
}

cgr_status workload_batch(workload *w, long n, cgr_batch **out) {
  int pinned = w->source == REPLAY_SOURCE_PINNED;
  int v = (int)(n % VARIANTS);
  cgr_source source = source_kinds[w->source];
  cgr_batch *batch = NULL;
  cgr_status status = cgr_batch_begin(w->rt, w->shape.bucket, &batch);
  if (status == CGR_OK && w->fed && n > 0)
    status = feed_ids(w, batch, n);
  for (int i = 0; i < IN_COUNT && status == CGR_OK; ++i)
    if (!(i == IN_IDS && w->fed && n > 0))
      status = cgr_batch_input(batch, w->inputs[i], source,
                               (pinned ? w->pinned[i] : w->data[i]) +
                                   (size_t)v * w->elems[i],
                               w->elems[i] * sizeof(int32_t));
  if (status != CGR_OK) {
    cgr_batch_discard(batch);
    batch = NULL;
  }
  *out = batch;
  return status;
}

/* ---- a configuration ----------------------------------------------------- */

/* Fills the VARIANTS sets of inputs and what `out` must hold for each. */
static void make_values(workload *w) {
  uint32_t bs = w->shape.bucket, width = w->shape.width;
  uint64_t state =
      UINT64_C(0x9E3779B97F4A7C15) ^
      ((uint64_t)bs << 40 | (uint64_t)width << 16 | w->shape.kernels);
  for (int v = 0; v < VARIANTS; ++v) {
    int32_t *ids = w->data[IN_IDS] + (size_t)v * bs;
    int32_t *pos = w->data[IN_POSITIONS] + (size_t)v * bs;
    int32_t *lens = w->data[IN_SEQ_LENS] + (size_t)v * bs;
    int32_t *loc = w->data[IN_OUT_LOC] + (size_t)v * bs;
    int32_t *cu_k = w->data[IN_CU_K] + (size_t)v * (bs + 1);
    int32_t *pages = w->data[IN_PAGES] + (size_t)v * bs * width;
    int32_t *want = w->expected + (size_t)v * bs;
    cu_k[0] = 0;
    for (uint32_t i = 0; i < bs; ++i) {
      ids[i] = (int32_t)(next_random(&state) % 32000);
      lens[i] = (int32_t)(1 + next_random(&state) % 4096);
      pos[i] = lens[i] - 1;
      loc[i] = (int32_t)(next_random(&state) % (1u << 20));
      cu_k[i + 1] = cu_k[i] + lens[i];
    }
    for (size_t e = 0; e < (size_t)bs * width; ++e)
      pages[e] = (int32_t)(next_random(&state) % 65536);
    const int32_t *last_row = pages + (size_t)(bs - 1) * width;
    for (uint32_t i = 0; i < bs; ++i) {
      uint32_t sum = (uint32_t)ids[i] + (uint32_t)pos[i] + (uint32_t)lens[i] +
                     (uint32_t)loc[i] + (uint32_t)cu_k[i + 1] + i;
      if (i < width)
        sum += (uint32_t)last_row[i];
      sum += w->shape.kernels - STEP_MIN_KERNELS + 1;
      want[i] = (int32_t)sum;
    }
  }
}

static int declare(workload *w, cgr_slot *out, const char *name,
                   cgr_slot_kind kind, uint64_t row_elems) {
  cgr_slot_desc desc;
  CHECK(w->rt, cgr_slot_desc_init(&desc, name, kind, 4, row_elems),
        "cgr_slot_desc_init");
  if (kind == CGR_SLOT_CONSTANT)
    desc.extra_elems = 1; /* 0..bs: bs + 1 entries */
  char what[96];
  snprintf(what, sizeof what, "cgr_slot_declare(%s)", name);
  CHECK(w->rt, cgr_slot_declare(w->rt, &desc, out), what);
  return 0;
}

/* Page-locked copies of every input's values, for CGR_SOURCE_PINNED. */
static int make_pinned(workload *w) {
  for (int i = 0; i < IN_COUNT; ++i) {
    size_t bytes = VARIANTS * w->elems[i] * sizeof(int32_t);
    CHECK(w->rt, cgr__be_pinned_alloc(w->be, bytes, (void **)&w->pinned[i]),
          "allocating the pinned inputs");
    memcpy(w->pinned[i], w->data[i], bytes);
  }
  return 0;
}

void workload_release(workload *w) {
  if (w->rt != NULL) {
    /* Both streams: a copy on the side stream may still read a pinned
     * source when a method stopped on a failure. */
    cgr__be_stream_drain(w->be, w->main_stream);
    cgr__be_stream_drain(w->be, w->rt->streams[CGR_STREAM_SIDE]);
    cgr__be_event_destroy(w->be, w->start);
    cgr__be_event_destroy(w->be, w->end);
    cgr__be_event_destroy(w->be, w->launched[0]);
    cgr__be_event_destroy(w->be, w->launched[1]);
    cgr__be_pinned_free(w->be, w->readback);
    for (int i = 0; i < IN_COUNT; ++i)
      cgr__be_pinned_free(w->be, w->pinned[i]);
  }
  cgr_runtime_destroy(w->rt);
  for (int i = 0; i < IN_COUNT; ++i)
    free(w->data[i]);
  free(w->expected);
  free(w->in_place);
  free(w->moved);
  free(w->fed_ids);
  free(w->fed_expected);
  memset(w, 0, sizeof *w);
}

/* Fed: next_ids fed into input_ids, and the host's side of feedback. */
static int declare_feed(workload *w) {
  uint32_t bs = w->shape.bucket;
  if (declare(w, &w->next_ids, "next_ids", CGR_SLOT_OUTPUT, 1) != 0)
    return -1;
  CHECK(w->rt, cgr_slot_feed(w->rt, w->next_ids, w->inputs[IN_IDS]),
        "cgr_slot_feed(next_ids, input_ids)");
  w->in_place = malloc(bs * sizeof(int32_t));
  w->moved = malloc(bs * sizeof(int32_t));
  w->fed_ids = malloc(bs * sizeof(int32_t));
  w->fed_expected = malloc(bs * sizeof(int32_t));
  if (!w->in_place || !w->moved || !w->fed_ids || !w->fed_expected) {
    fprintf(stderr, "bench_replay: out of host memory (feedback)\n");
    return -1;
  }
  /* Row 0 leaves, the others move up one, a new row joins at the end. */
  for (uint32_t j = 0; j < bs; ++j) {
    w->in_place[j] = (int32_t)j;
    w->moved[j] = j + 1 < bs ? (int32_t)(j + 1) : -1;
  }
  return 0;
}

/* Creates the runtime, declares the slots (and the feed when `fed`),
 * captures the one bucket. */
int workload_open(bench *b, workload *w, replay_shape s, int fed) {
  memset(w, 0, sizeof *w);
  w->shape = s;
  w->fed = fed;
  cgr_config config;
  CHECK(NULL, cgr_config_init(&config), "cgr_config_init");
  config.backend = b->opt.common.backend;
  config.buckets = &s.bucket;
  config.bucket_count = 1;
  config.replay_mode = CGR_REPLAY_NAIVE;
  cgr_status status = cgr_runtime_create(&config, &w->rt);
  if (status != CGR_OK)
    return replay_fail_call(NULL, status, "cgr_runtime_create");
  w->be = &w->rt->backend;
  w->main_stream = w->rt->streams[CGR_STREAM_MAIN];
  snprintf(b->report.backend_name, sizeof b->report.backend_name, "%s",
           cgr_backend_name(w->rt));

  static const char *const names[IN_COUNT] = {"input_ids",    "positions",
                                              "seq_lens",     "out_loc",
                                              "cu_seqlens_k", "page_table"};
  for (int i = 0; i < IN_COUNT; ++i) {
    cgr_slot_kind kind = i == IN_CU_K ? CGR_SLOT_PREFIX : CGR_SLOT_ROWS;
    if (declare(w, &w->inputs[i], names[i], kind,
                i == IN_PAGES ? s.width : 1) != 0)
      return -1;
    w->elems[i] = i == IN_CU_K    ? (size_t)s.bucket + 1
                  : i == IN_PAGES ? (size_t)s.bucket * s.width
                                  : (size_t)s.bucket;
    w->data[i] = malloc(VARIANTS * w->elems[i] * sizeof(int32_t));
    if (w->data[i] == NULL) {
      fprintf(stderr, "bench_replay: out of host memory (inputs)\n");
      return -1;
    }
  }
  if (declare(w, &w->cu_q, "cu_seqlens_q", CGR_SLOT_CONSTANT, 1) != 0 ||
      declare(w, &w->out, "out", CGR_SLOT_OUTPUT, 1) != 0)
    return -1;
  if (fed && declare_feed(w) != 0)
    return -1;
  w->expected = malloc((size_t)VARIANTS * s.bucket * sizeof(int32_t));
  if (w->expected == NULL) {
    fprintf(stderr, "bench_replay: out of host memory (expected)\n");
    return -1;
  }
  make_values(w);
  if (b->opt.sources[REPLAY_SOURCE_PINNED] && make_pinned(w) != 0)
    return -1;
  CHECK(w->rt,
        cgr__be_pinned_alloc(w->be, s.bucket * sizeof(int32_t),
                             (void **)&w->readback),
        "allocating the read-back buffer");
  CHECK(w->rt, cgr__be_event_create(w->be, 1, &w->start),
        "creating the start event");
  CHECK(w->rt, cgr__be_event_create(w->be, 1, &w->end),
        "creating the end event");
  for (int k = 0; k < 2; ++k)
    CHECK(w->rt, cgr__be_event_create(w->be, 0, &w->launched[k]),
          "creating the floor's events");
  CHECK(w->rt, cgr_capture(w->rt, bench_step, w), "cgr_capture");

  cgr__capture *cap = w->rt->layers[CGR__LAYER_CAPTURE].state;
  long index = cap != NULL ? cgr__bucket_index(cap, s.bucket) : -1;
  if (index < 0) {
    fprintf(stderr, "bench_replay: bucket %u was not captured\n", s.bucket);
    return -1;
  }
  for (int k = 0; k < 2; ++k)
    w->execs[k] = cap->keys[cgr__key_index(cap, (size_t)index, 0, 0)].execs[k];
  return 0;
}
