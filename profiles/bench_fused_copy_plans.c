/*
 * bench_fused_copy's workloads: for each configuration a finished copy
 * plan (COPY, FILL or GATHER), the same data movement as plain copies
 * (dsts, srcs, sizes: what memcpy_per_op and memcpy_batch issue), and the
 * bytes the destination must hold afterwards, which every method is
 * checked against before it is timed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_fused_copy.h"
#include "kernels/copy_plan.h"
#include "runtime/backend.h"

/* Destinations and sources of distinct operations start 256 bytes apart at
 * least, as cudaMalloc'd tensors do. */
#define ALIGNMENT ((uint64_t)256)
#define GATHER_ROW_BYTES ((uint64_t)512)
#define FILL_PATTERN UINT64_C(0x8877665544332211)

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

void workload_release(bench *b, workload *w) {
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
static int build_copy_ordered(bench *b, workload *w, const char *config,
                              uint64_t ops, uint64_t bytes, int pinned,
                              int reversed) {
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
int build_copy(bench *b, workload *w, const char *config, uint64_t ops,
               uint64_t bytes, int pinned) {
  return build_copy_ordered(b, w, config, ops, bytes, pinned, 1);
}

int build_fill(bench *b, workload *w, const char *config, uint64_t ops,
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
int build_gather(bench *b, workload *w, const char *config, uint64_t rows) {
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
int build_bandwidth(bench *b, workload *w, uint64_t total) {
  if (build_copy_ordered(b, w, "bandwidth", 16, total / 16, 0, 0) != 0)
    return -1;
  w->single_dst = w->dst;
  w->single_src = w->src;
  return 0;
}
