/* The fused copy: random plans against a plain memcpy/memset reference,
 * byte for byte, with every byte outside the destinations untouched; every
 * invalid plan rejected by name; one plan, one launch. Then plan_load: the
 * same plans read from a pinned plan area when the kernel runs, with any
 * grid, and from one captured launch replayed with a new plan each time. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/fused_copy.h"
#include "runtime/fault.h"

enum {
  DST_ARENA = 24 << 20,
  SRC_ARENA = 8 << 20,
  INDEX_ARENA = 1 << 20, /* bytes of int32 indices */
  PLAN_BUDGET = 20 << 20,
  POISON = 0xCD
};

/* Device-side arenas and their host mirrors. */
typedef struct arenas {
  unsigned char *dst;       /* device */
  unsigned char *src;       /* device or pinned */
  int32_t *index;           /* device */
  unsigned char *readback;  /* pinned: dst copied back */
  unsigned char *reference; /* host: what dst must hold */
  unsigned char *src_host;  /* host: what src holds */
  int32_t *index_host;
  int pinned_source;
} arenas;

static void arenas_create(cgr_runtime *rt, arenas *a, int pinned_source) {
  cgr__backend *be = TEST_BE(rt);
  memset(a, 0, sizeof *a);
  a->pinned_source = pinned_source;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, DST_ARENA, (void **)&a->dst));
  if (pinned_source)
    assert_cgr_ok(rt, cgr__be_pinned_alloc(be, SRC_ARENA, (void **)&a->src));
  else
    assert_cgr_ok(rt, cgr__be_device_alloc(be, SRC_ARENA, (void **)&a->src));
  assert_cgr_ok(rt, cgr__be_device_alloc(be, INDEX_ARENA, (void **)&a->index));
  assert_cgr_ok(rt, cgr__be_pinned_alloc(be, DST_ARENA, (void **)&a->readback));
  a->reference = malloc(DST_ARENA);
  a->src_host = malloc(SRC_ARENA);
  a->index_host = malloc(INDEX_ARENA);
  assert_non_null(a->reference);
  assert_non_null(a->src_host);
  assert_non_null(a->index_host);
}

static void arenas_destroy(cgr_runtime *rt, arenas *a) {
  cgr__backend *be = TEST_BE(rt);
  cgr__be_device_free(be, a->dst);
  if (a->pinned_source)
    cgr__be_pinned_free(be, a->src);
  else
    cgr__be_device_free(be, a->src);
  cgr__be_device_free(be, a->index);
  cgr__be_pinned_free(be, a->readback);
  free(a->reference);
  free(a->src_host);
  free(a->index_host);
}

/* Poisons dst (device and reference) and loads random sources. */
static void arenas_reset(cgr_runtime *rt, arenas *a, uint64_t *seed) {
  cgr__backend *be = TEST_BE(rt);
  for (size_t i = 0; i < SRC_ARENA; i += 8) {
    uint64_t word = test_random(seed);
    memcpy(a->src_host + i, &word, 8);
  }
  memset(a->reference, POISON, DST_ARENA);
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_MAIN(rt), a->dst, POISON,
                                         DST_ARENA));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), a->src, a->src_host,
                                         SRC_ARENA));
}

static void upload_indices(cgr_runtime *rt, arenas *a, size_t indices_used) {
  if (indices_used > 0)
    assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), a->index,
                                           a->index_host,
                                           indices_used * sizeof(int32_t)));
}

/* Waits for the stream, reads dst back and compares all of it: the
 * destinations with the reference and the gaps with the poison. */
static void compare_dst(cgr_runtime *rt, arenas *a, size_t op_count) {
  cgr__backend *be = TEST_BE(rt);
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), a->readback, a->dst,
                                         DST_ARENA));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
  if (memcmp(a->readback, a->reference, DST_ARENA) == 0)
    return;
  for (size_t i = 0; i < DST_ARENA; ++i)
    if (a->readback[i] != a->reference[i])
      fail_msg("dst byte %zu is 0x%02x, expected 0x%02x (plan of %zu ops)", i,
               a->readback[i], a->reference[i], op_count);
}

/* Copies the indices in, runs the plan, and compares dst. */
static void run_and_compare(cgr_runtime *rt, arenas *a, cgr__copy_plan *plan,
                            size_t indices_used) {
  upload_indices(rt, a, indices_used);
  assert_cgr_ok(rt, cgr__copy_plan_finish(plan, &rt->error));
  assert_cgr_ok(rt, cgr__fused_copy_launch(TEST_BE(rt), TEST_MAIN(rt), plan));
  compare_dst(rt, a, plan->count);
}

/* ---- reference operations (plain memcpy/memset, no tiling) -------------- */

static void add_copy(cgr_runtime *rt, arenas *a, cgr__copy_plan *plan,
                     size_t dst_offset, size_t src_offset, size_t bytes) {
  assert_cgr_ok(rt,
                cgr__copy_plan_copy(plan, a->dst + dst_offset,
                                    a->src + src_offset, bytes, &rt->error));
  memcpy(a->reference + dst_offset, a->src_host + src_offset, bytes);
}

static void add_fill(cgr_runtime *rt, arenas *a, cgr__copy_plan *plan,
                     size_t dst_offset, uint64_t pattern, unsigned width,
                     size_t bytes) {
  assert_cgr_ok(rt, cgr__copy_plan_fill(plan, a->dst + dst_offset, pattern,
                                        width, bytes, &rt->error));
  for (size_t i = 0; i < bytes; i += width)
    memcpy(a->reference + dst_offset + i, &pattern, width); /* little-endian */
}

static void add_gather(cgr_runtime *rt, arenas *a, cgr__copy_plan *plan,
                       size_t dst_offset, size_t src_offset, size_t index_at,
                       size_t rows, size_t row_bytes) {
  size_t src_rows = (SRC_ARENA - src_offset) / row_bytes;
  for (size_t j = 0; j < rows; ++j) {
    int32_t row = (int32_t)(((size_t)rand()) % src_rows);
    a->index_host[index_at + j] = row;
    memcpy(a->reference + dst_offset + j * row_bytes,
           a->src_host + src_offset + (size_t)row * row_bytes, row_bytes);
  }
  assert_cgr_ok(rt,
                cgr__copy_plan_gather(plan, a->dst + dst_offset,
                                      a->src + src_offset, a->index + index_at,
                                      rows, row_bytes, &rt->error));
}

/* A size between 0 and 1 MiB, mostly small, as metadata rows are. */
static size_t random_size(uint64_t *seed) {
  uint64_t roll = test_random_below(seed, 100);
  if (roll < 5)
    return 0;
  if (roll < 70)
    return test_random_below(seed, 4096);
  if (roll < 95)
    return test_random_below(seed, 64 << 10);
  return test_random_below(seed, (1 << 20) + 1);
}

/* Resets the arenas and adds `count` random mixed operations to an empty
 * plan, left unfinished; returns the gather indices it used. */
static size_t build_random_plan(cgr_runtime *rt, arenas *a,
                                cgr__copy_plan *plan, uint64_t seed,
                                size_t count) {
  arenas_reset(rt, a, &seed);
  srand((unsigned)seed);
  size_t cursor = 0, indices = 0;
  size_t budget = PLAN_BUDGET;
  for (size_t i = 0; i < count; ++i) {
    /* A poisoned gap, then a random alignment, never moving backwards. */
    cursor += test_random_below(&seed, 64);
    cursor = (cursor + 15) / 16 * 16 + test_random_below(&seed, 16);
    size_t bytes = random_size(&seed);
    if (bytes > budget / (count - i))
      bytes = budget / (count - i);
    if (cursor + bytes + 64 > DST_ARENA)
      break;
    uint64_t kind = test_random_below(&seed, 4);
    if (kind < 2) {
      size_t src_offset = test_random_below(&seed, SRC_ARENA - bytes + 1);
      add_copy(rt, a, plan, cursor, src_offset, bytes);
    } else if (kind == 2) {
      unsigned width = 1u << test_random_below(&seed, 4);
      bytes -= bytes % width;
      add_fill(rt, a, plan, cursor, test_random(&seed), width, bytes);
    } else {
      size_t row_bytes = test_random_below(&seed, 2)
                             ? 16 * (1 + test_random_below(&seed, 64))
                             : 1 + test_random_below(&seed, 700);
      size_t rows = bytes / row_bytes;
      if (indices + rows > INDEX_ARENA / sizeof(int32_t))
        rows = 0;
      size_t src_offset = test_random_below(&seed, 17);
      add_gather(rt, a, plan, cursor, src_offset, indices, rows, row_bytes);
      indices += rows;
      bytes = rows * row_bytes;
    }
    cursor += bytes;
    budget -= bytes;
  }
  return indices;
}

/* Builds one random plan of `count` mixed operations and checks it. */
static void random_plan(cgr_runtime *rt, arenas *a, uint64_t seed,
                        size_t count) {
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  size_t indices = build_random_plan(rt, a, &plan, seed, count);
  run_and_compare(rt, a, &plan, indices);
  cgr__copy_plan_release(&plan);
}

static const size_t plan_sizes[] = {1,   2,   6,   8,   9,    64,   65,
                                    200, 679, 680, 681, 1360, 1361, 2000};

static void random_plans(cgr_runtime *rt, int pinned_source) {
  arenas a;
  arenas_create(rt, &a, pinned_source);
  uint64_t seed = 0x9E3779B97F4A7C15u + (uint64_t)pinned_source;
  for (size_t i = 0; i < sizeof plan_sizes / sizeof plan_sizes[0]; ++i)
    random_plan(rt, &a, seed + i * 7919, plan_sizes[i]);
  for (int extra = 0; extra < 6; ++extra)
    random_plan(rt, &a, seed ^ (uint64_t)(extra + 100),
                1 + (size_t)test_random_below(&seed, 2000));
  arenas_destroy(rt, &a);
}

/* ---- tests ------------------------------------------------------------- */

static void test_random_plans_match_reference(void **state) {
  random_plans(cgr_test_runtime(state), 0);
}

static void
test_random_plans_from_pinned_sources_match_reference(void **state) {
  random_plans(cgr_test_runtime(state), 1);
}

static void test_every_alignment_copies_exactly(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  static const size_t lengths[] = {1, 3, 15, 16, 17, 31, 33, 100, 4099, 20000};
  arenas a;
  arenas_create(rt, &a, 0);
  uint64_t seed = 42;
  arenas_reset(rt, &a, &seed);
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  size_t cursor = 0;
  /* Every destination alignment against every source alignment, each
   * length: the scalar head, the vector body and the tail all exercised,
   * as are the 4-byte and byte paths. */
  for (size_t d = 0; d < 16; ++d)
    for (size_t s = 0; s < 16; ++s)
      for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; ++l) {
        cursor = (cursor + 64) / 16 * 16 + d;
        add_copy(rt, &a, &plan, cursor, 4096 * s + s, lengths[l]);
        cursor += lengths[l];
      }
  assert_true(cursor < DST_ARENA);
  run_and_compare(rt, &a, &plan, 0);
  cgr__copy_plan_release(&plan);
  arenas_destroy(rt, &a);
}

static void test_fill_patterns_of_every_width(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  arenas a;
  arenas_create(rt, &a, 0);
  uint64_t seed = 7;
  arenas_reset(rt, &a, &seed);
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  size_t cursor = 0;
  for (unsigned width = 1; width <= 8; width *= 2)
    for (size_t align = 0; align < 16; ++align)
      for (size_t units = 1; units < 3000; units = units * 3 + 1) {
        cursor = (cursor + 40) / 16 * 16 + align;
        add_fill(rt, &a, &plan, cursor, 0x0102030405060708u + width, width,
                 units * width);
        cursor += units * width;
      }
  run_and_compare(rt, &a, &plan, 0);
  cgr__copy_plan_release(&plan);
  arenas_destroy(rt, &a);
}

static void test_gather_rows_by_index(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  static const size_t row_widths[] = {1, 4, 12, 16, 24, 512, 4096, 20000};
  arenas a;
  arenas_create(rt, &a, 0);
  uint64_t seed = 99;
  arenas_reset(rt, &a, &seed);
  srand(99);
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  size_t cursor = 0, indices = 0;
  for (size_t w = 0; w < sizeof row_widths / sizeof row_widths[0]; ++w)
    for (size_t src_align = 0; src_align < 16; src_align += 5) {
      size_t rows = 1 + (size_t)test_random_below(&seed, 100);
      cursor = (cursor + 64) / 16 * 16 + (src_align * 3) % 16;
      add_gather(rt, &a, &plan, cursor, src_align, indices, rows,
                 row_widths[w]);
      indices += rows;
      cursor += rows * row_widths[w];
    }
  run_and_compare(rt, &a, &plan, indices);
  cgr__copy_plan_release(&plan);
  arenas_destroy(rt, &a);
}

static void test_invalid_operations_are_rejected_by_name(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__error *err = &rt->error;
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  unsigned char buffer[64];
  int32_t index[4] = {0, 1, 2, 3};
  assert_cgr_ok(rt, cgr__copy_plan_copy(&plan, buffer, buffer + 32, 8, err));

  assert_cgr_status(rt, cgr__copy_plan_copy(&plan, NULL, buffer, 8, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "operation 1 (COPY): dst is NULL");
  assert_cgr_status(rt, cgr__copy_plan_copy(&plan, buffer, NULL, 8, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "src is NULL");
  assert_cgr_status(rt,
                    cgr__copy_plan_copy(&plan, buffer, buffer, UINT64_MAX, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "overflows");
  assert_cgr_status(rt, cgr__copy_plan_fill(&plan, buffer, 1, 3, 9, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "(FILL): pattern_size");
  assert_cgr_status(rt, cgr__copy_plan_fill(&plan, buffer, 1, 4, 10, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "not a multiple of pattern_size");
  assert_cgr_status(rt, cgr__copy_plan_fill(&plan, NULL, 1, 4, 8, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(rt,
                    cgr__copy_plan_gather(&plan, buffer, buffer, NULL, 2, 4,
                                          err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "(GATHER): index is NULL");
  assert_cgr_status(rt,
                    cgr__copy_plan_gather(&plan, buffer, buffer, index, 2, 0,
                                          err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "row_bytes is 0");
  assert_cgr_status(rt,
                    cgr__copy_plan_gather(&plan, buffer, buffer, index,
                                          UINT64_MAX / 2, 4, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "overflows 64 bits");
  /* Rejected operations were not added. */
  assert_int_equal(plan.count, 1);
  cgr__copy_plan_release(&plan);
}

static void test_overlapping_destinations_are_rejected(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__error *err = &rt->error;
  unsigned char buffer[4096];
  int32_t index[8] = {0};
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  /* Touching ranges are fine... */
  assert_cgr_ok(rt,
                cgr__copy_plan_copy(&plan, buffer, buffer + 2048, 100, err));
  assert_cgr_ok(rt, cgr__copy_plan_fill(&plan, buffer + 100, 0, 1, 100, err));
  assert_cgr_ok(rt, cgr__copy_plan_finish(&plan, err));
  /* ...one byte of overlap is not, however far apart the operations. */
  assert_cgr_ok(rt, cgr__copy_plan_copy(&plan, buffer + 1000, buffer + 3000, 10,
                                        err));
  assert_cgr_ok(rt, cgr__copy_plan_gather(&plan, buffer + 199, buffer + 2048,
                                          index, 2, 4, err));
  assert_cgr_status(rt, cgr__copy_plan_finish(&plan, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "operations 1 (FILL) and 3 (GATHER)");
  assert_int_equal(plan.finished, 0);
  /* A range inside a longer, earlier one is caught too. */
  cgr__copy_plan_clear(&plan);
  assert_cgr_ok(rt,
                cgr__copy_plan_copy(&plan, buffer, buffer + 2048, 1000, err));
  assert_cgr_ok(rt, cgr__copy_plan_copy(&plan, buffer + 1500, buffer + 2048, 10,
                                        err));
  assert_cgr_ok(rt, cgr__copy_plan_copy(&plan, buffer + 500, buffer + 2048, 10,
                                        err));
  assert_cgr_status(rt, cgr__copy_plan_finish(&plan, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "operations 0 (COPY) and 2 (COPY)");
  /* Reading what another operation writes is a race too. */
  cgr__copy_plan_clear(&plan);
  assert_cgr_ok(rt,
                cgr__copy_plan_copy(&plan, buffer, buffer + 2048, 100, err));
  assert_cgr_ok(rt, cgr__copy_plan_copy(&plan, buffer + 2000, buffer + 50, 10,
                                        err));
  assert_cgr_status(rt, cgr__copy_plan_finish(&plan, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "operation 1 (COPY) reads source bytes that "
                                 "operation 0 (COPY) writes");
  cgr__copy_plan_clear(&plan);
  assert_cgr_ok(rt, cgr__copy_plan_fill(&plan, buffer, 0, 4, 64, err));
  assert_cgr_ok(rt, cgr__copy_plan_gather(&plan, buffer + 1024, buffer + 2048,
                                          (const int32_t *)(buffer + 60), 4, 8,
                                          err));
  assert_cgr_status(rt, cgr__copy_plan_finish(&plan, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "operation 1 (GATHER) reads index bytes");
  /* A source that only touches a destination is fine. */
  cgr__copy_plan_clear(&plan);
  assert_cgr_ok(rt, cgr__copy_plan_copy(&plan, buffer, buffer + 100, 100, err));
  assert_cgr_ok(rt, cgr__copy_plan_finish(&plan, err));
  cgr__copy_plan_release(&plan);
}

static void test_one_plan_is_one_launch(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  static const size_t counts[] = {0, 1, 8, 9, 64, 65, 680, 681, 1360, 2000};
  unsigned char *device = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, 2000 * 64, (void **)&device));
  for (size_t c = 0; c < sizeof counts / sizeof counts[0]; ++c) {
    cgr__copy_plan plan;
    cgr__copy_plan_init(&plan);
    for (size_t i = 0; i < counts[c]; ++i)
      assert_cgr_ok(rt, cgr__copy_plan_fill(&plan, device + 64 * i, i, 4, 64,
                                            &rt->error));
    assert_cgr_ok(rt, cgr__copy_plan_finish(&plan, &rt->error));
    assert_cgr_ok(rt, cgr_counters_reset(rt));
    assert_cgr_ok(rt, cgr__fused_copy_launch(be, TEST_MAIN(rt), &plan));
    cgr_counters counters;
    assert_cgr_ok(rt, cgr_counters_get(rt, &counters));
    size_t expected = (counts[c] + 679) / 680;
    assert_int_equal(counters.kernel_launches, expected);
    assert_int_equal(cgr__copy_plan_launches(&plan), expected);
    assert_int_equal(counters.copies + counters.memsets, 0);
    cgr__copy_plan_release(&plan);
  }
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
  cgr__be_device_free(be, device);
}

static void test_tiles_cover_every_byte_once(void **state) {
  (void)state;
  cgr_test_require_backend(); /* backend-free, but must not pass as "cuda" */
  cgr__error err;
  assert_int_equal(cgr__error_init(&err), CGR_OK);
  uint64_t seed = 1234;
  /* Addresses are never dereferenced here: only the tiling is checked. */
  uintptr_t base = (uintptr_t)1 << 40;
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  uint64_t cursor = 0;
  for (int i = 0; i < 1500; ++i) {
    uint64_t bytes = 1 + test_random_below(&seed, 200000);
    assert_int_equal(cgr__copy_plan_copy(&plan, (void *)(base + cursor),
                                         (void *)(base / 2), bytes, &err),
                     CGR_OK);
    cursor += bytes;
  }
  assert_int_equal(cgr__copy_plan_finish(&plan, &err), CGR_OK);
  /* Walk each launch's tiles as the kernel does: the ranges must tile
   * every operation exactly, in order, with no gap and no overlap. */
  uint64_t *covered = calloc(plan.count, sizeof *covered);
  uint64_t tiles_seen = 0;
  for (size_t first = 0; first < plan.count; first += CGR__FUSED_COPY_LARGE) {
    size_t count = plan.count - first < CGR__FUSED_COPY_LARGE
                       ? plan.count - first
                       : CGR__FUSED_COPY_LARGE;
    const cgr__copy_desc *ops = &plan.ops[first];
    const cgr__copy_desc *last = &ops[count - 1];
    uint32_t tiles =
        (uint32_t)(last->tile_begin + cgr__copy_tiles_for(last->bytes));
    for (uint32_t t = 0; t < tiles; ++t) {
      uint32_t i = cgr__copy_tile_op(ops, (uint32_t)count, t);
      uint64_t begin, end;
      cgr__copy_tile_range(&ops[i], t, &begin, &end);
      assert_int_equal(begin, covered[first + i]);
      assert_true(end > begin);
      assert_true(end - begin <= CGR__COPY_TILE_BYTES);
      covered[first + i] = end;
    }
    tiles_seen += tiles;
  }
  for (size_t i = 0; i < plan.count; ++i)
    assert_int_equal(covered[i], plan.ops[i].bytes);
  assert_int_equal(tiles_seen, plan.tile_count);
  free(covered);
  cgr__copy_plan_release(&plan);
  cgr__error_fini(&err);
}

static void test_unfinished_plan_is_not_launched(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  unsigned char *device = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(TEST_BE(rt), 256, (void **)&device));
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  assert_cgr_ok(rt, cgr__copy_plan_fill(&plan, device, 0, 1, 64, &rt->error));
  assert_cgr_status(rt,
                    cgr__fused_copy_launch(TEST_BE(rt), TEST_MAIN(rt), &plan),
                    CGR_E_INVALID_STATE);
  assert_cgr_ok(rt, cgr__copy_plan_finish(&plan, &rt->error));
  /* A change after finishing needs another finish. */
  assert_cgr_ok(rt,
                cgr__copy_plan_fill(&plan, device + 64, 0, 1, 64, &rt->error));
  assert_cgr_status(rt,
                    cgr__fused_copy_launch(TEST_BE(rt), TEST_MAIN(rt), &plan),
                    CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "cgr__copy_plan_finish");
  cgr__copy_plan_release(&plan);
  cgr__be_device_free(TEST_BE(rt), device);
}

static void test_zero_byte_operations_move_nothing(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  arenas a;
  arenas_create(rt, &a, 0);
  uint64_t seed = 5;
  arenas_reset(rt, &a, &seed);
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  int32_t *index = a.index;
  assert_cgr_ok(rt, cgr__copy_plan_copy(&plan, a.dst, a.src, 0, &rt->error));
  assert_cgr_ok(rt, cgr__copy_plan_fill(&plan, a.dst, 7, 8, 0, &rt->error));
  assert_cgr_ok(rt, cgr__copy_plan_gather(&plan, a.dst, a.src, index, 0, 16,
                                          &rt->error));
  assert_int_equal(plan.count, 0);
  assert_cgr_ok(rt, cgr_counters_reset(rt));
  run_and_compare(rt, &a, &plan, 0); /* dst still all poison */
  cgr_counters counters;
  assert_cgr_ok(rt, cgr_counters_get(rt, &counters));
  assert_int_equal(counters.kernel_launches, 0);
  cgr__copy_plan_release(&plan);
  arenas_destroy(rt, &a);
}

static void test_cleared_plan_is_reused_without_allocating(void **state) {
  (void)state;
  cgr_test_require_backend();
  cgr__error err;
  assert_int_equal(cgr__error_init(&err), CGR_OK);
  unsigned char buffer[1024];
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  for (int i = 0; i < 100; ++i)
    assert_int_equal(cgr__copy_plan_fill(&plan, buffer + 8 * i, 0, 8, 8, &err),
                     CGR_OK);
  cgr__copy_desc *ops = plan.ops;
  size_t capacity = plan.capacity;
  cgr__copy_plan_clear(&plan);
  assert_int_equal(plan.count, 0);
  /* The replay path refills one plan every step: no allocation may fail
   * it, so none may happen. */
  cgr__fault_arm_sticky(CGR__CALL_HOST_ALLOC, 1);
  for (int i = 0; i < 100; ++i)
    assert_int_equal(cgr__copy_plan_fill(&plan, buffer + 8 * i, 0, 8, 8, &err),
                     CGR_OK);
  int fired = cgr__fault_fired();
  cgr__fault_disarm();
  assert_int_equal(fired, 0);
  assert_ptr_equal(plan.ops, ops);
  assert_int_equal(plan.capacity, capacity);
  cgr__copy_plan_release(&plan);
  cgr__error_fini(&err);
}

/* ---- plan_load: the plan read from a pinned area when the kernel runs ---- */

enum { AREA_CAPACITY = 2000 }; /* the largest plan of plan_sizes */

static void *area_create(cgr_runtime *rt) {
  void *area = NULL;
  assert_cgr_ok(rt, cgr__be_pinned_alloc(TEST_BE(rt),
                                         cgr__plan_area_bytes(AREA_CAPACITY),
                                         &area));
  return area;
}

static void repoison(cgr_runtime *rt, arenas *a) {
  assert_cgr_ok(rt, cgr__be_memset_async(TEST_BE(rt), TEST_MAIN(rt), a->dst,
                                         POISON, DST_ARENA));
}

/* build_random_plan, then the indices copied in and the plan finished. */
static void finished_random_plan(cgr_runtime *rt, arenas *a,
                                 cgr__copy_plan *plan, uint64_t seed,
                                 size_t count) {
  upload_indices(rt, a, build_random_plan(rt, a, plan, seed, count));
  assert_cgr_ok(rt, cgr__copy_plan_finish(plan, &rt->error));
}

/* Writes the finished plan into the area, runs it with `grid` blocks, and
 * compares dst. */
static void load_and_compare(cgr_runtime *rt, arenas *a, void *area,
                             const cgr__copy_plan *plan, uint32_t grid) {
  assert_cgr_ok(rt,
                cgr__plan_area_write(area, AREA_CAPACITY, plan, &rt->error));
  assert_cgr_ok(rt,
                cgr__plan_load_launch(TEST_BE(rt), TEST_MAIN(rt), area, grid));
  compare_dst(rt, a, plan->count);
}

static void test_plan_load_runs_random_plans_with_any_grid(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  arenas a;
  arenas_create(rt, &a, 1);
  void *area = area_create(rt);
  /* Plans of more than 680 operations too: the plan numbers their tiles
   * per launch of the by-value kernel, the area through one launch. */
  for (size_t i = 0; i < sizeof plan_sizes / sizeof plan_sizes[0]; ++i) {
    cgr__copy_plan plan;
    cgr__copy_plan_init(&plan);
    finished_random_plan(rt, &a, &plan, 0x5EED + i * 104729, plan_sizes[i]);
    uint32_t tiles = (uint32_t)plan.tile_count;
    /* One block for all tiles, fewer blocks than tiles, one per tile, more
     * blocks than tiles, and the grid cgr__plan_load_grid picks. */
    const uint32_t grids[] = {1, tiles / 3 + 1, tiles, tiles + 17,
                              cgr__plan_load_grid(tiles)};
    for (size_t g = 0; g < sizeof grids / sizeof grids[0]; ++g) {
      repoison(rt, &a);
      load_and_compare(rt, &a, area, &plan, grids[g] > 0 ? grids[g] : 1);
    }
    cgr__copy_plan_release(&plan);
  }
  cgr__be_pinned_free(TEST_BE(rt), area);
  arenas_destroy(rt, &a);
}

static void
test_captured_plan_load_runs_the_plan_written_before_each_replay(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  arenas a;
  arenas_create(rt, &a, 0);
  void *area = area_create(rt);
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  assert_cgr_ok(rt, cgr__copy_plan_finish(&plan, &rt->error));
  assert_cgr_ok(rt,
                cgr__plan_area_write(area, AREA_CAPACITY, &plan, &rt->error));
  cgr__graph *graph = NULL;
  cgr__graph_exec *exec = NULL;
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__plan_load_launch(be, TEST_MAIN(rt), area, 64));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  size_t nodes = 0;
  assert_cgr_ok(rt, cgr__be_graph_node_count(be, graph, &nodes));
  assert_int_equal(nodes, 1);
  assert_cgr_ok(rt, cgr__be_graph_instantiate(be, graph, TEST_MAIN(rt), &exec));
  cgr__be_graph_destroy(be, graph);
  /* Fewer tiles than the 64 blocks and many more, over 680 operations,
   * and an empty plan, which must move nothing (dst stays poison). */
  static const size_t sizes[] = {9, 681, 0, 1, 1361, 200};
  for (size_t r = 0; r < sizeof sizes / sizeof sizes[0]; ++r) {
    cgr__copy_plan_clear(&plan);
    finished_random_plan(rt, &a, &plan, 0xCAB + r, sizes[r]);
    /* readback holds the last replay's result: this plan's must differ,
     * or a replay that repeated the last plan would pass. */
    if (r > 0)
      assert_true(memcmp(a.readback, a.reference, DST_ARENA) != 0);
    assert_cgr_ok(rt,
                  cgr__plan_area_write(area, AREA_CAPACITY, &plan, &rt->error));
    assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
    compare_dst(rt, &a, plan.count);
    /* The area unchanged and dst poisoned again: the replay repeats it. */
    repoison(rt, &a);
    assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
    compare_dst(rt, &a, plan.count);
  }
  cgr__be_graph_exec_destroy(be, exec);
  cgr__copy_plan_release(&plan);
  cgr__be_pinned_free(be, area);
  arenas_destroy(rt, &a);
}

static void test_plan_load_runs_each_part_of_a_split_plan(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  arenas a;
  arenas_create(rt, &a, 0);
  void *area = area_create(rt);
  cgr__copy_plan plan, head, tail;
  cgr__copy_plan_init(&plan);
  upload_indices(rt, &a, build_random_plan(rt, &a, &plan, 4242, 1500));
  assert_cgr_ok(rt, cgr__copy_plan_finish_split(&plan, 700, &head, &tail,
                                                &rt->error));
  assert_cgr_ok(rt,
                cgr__plan_area_write(area, AREA_CAPACITY, &head, &rt->error));
  assert_cgr_ok(rt,
                cgr__plan_load_launch(TEST_BE(rt), TEST_MAIN(rt), area,
                                      cgr__plan_load_grid(head.tile_count)));
  /* The area is rewritten only once the launch that reads it is done. */
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
  load_and_compare(rt, &a, area, &tail, cgr__plan_load_grid(tail.tile_count));
  cgr__copy_plan_release(&plan);
  cgr__be_pinned_free(TEST_BE(rt), area);
  arenas_destroy(rt, &a);
}

static void test_plan_load_misuse_is_rejected_by_name(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  cgr__error *err = &rt->error;
  unsigned char *area = area_create(rt);
  size_t area_bytes = cgr__plan_area_bytes(AREA_CAPACITY);
  memset(area, 0xAB, area_bytes);
  unsigned char *device = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, 1024, (void **)&device));
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  for (int i = 0; i < 5; ++i)
    assert_cgr_ok(rt,
                  cgr__copy_plan_fill(&plan, device + 64 * i, 0, 1, 64, err));
  assert_cgr_ok(rt, cgr__copy_plan_finish(&plan, err));
  assert_cgr_status(rt, cgr__plan_area_write(area, 4, &plan, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "5 operations do not fit the plan area's "
                                 "capacity of 4");
  assert_cgr_status(rt, cgr__plan_area_write(area + 8, 5, &plan, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "is not 16-byte aligned");
  assert_cgr_ok(rt, cgr__copy_plan_fill(&plan, device + 512, 0, 1, 64, err));
  assert_cgr_status(rt, cgr__plan_area_write(area, 8, &plan, err),
                    CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "cgr__copy_plan_finish");
  /* More tiles than uint32_t holds, in a plan the by-value launches take
   * (each chunk of 680 operations fits): addresses never dereferenced. */
  cgr__copy_plan_clear(&plan);
  uintptr_t base = (uintptr_t)1 << 40;
  uint64_t first_tiles = UINT32_MAX - 679;
  assert_cgr_ok(rt,
                cgr__copy_plan_fill(&plan, (void *)base, 0, 1,
                                    first_tiles * CGR__COPY_TILE_BYTES, err));
  uintptr_t cursor = base + first_tiles * CGR__COPY_TILE_BYTES;
  for (int i = 0; i < 679; ++i)
    assert_cgr_ok(rt,
                  cgr__copy_plan_fill(&plan, (void *)cursor++, 0, 1, 1, err));
  assert_cgr_ok(rt,
                cgr__copy_plan_fill(&plan, (void *)cursor, 0, 1,
                                    ((uint64_t)1 << 31) * CGR__COPY_TILE_BYTES,
                                    err));
  assert_cgr_ok(rt, cgr__copy_plan_finish(&plan, err));
  assert_cgr_status(rt, cgr__plan_area_write(area, AREA_CAPACITY, &plan, err),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "6442450943 tiles exceed one launch's limit "
                                 "of 4294967295");
  /* No failed write touched the area. */
  for (size_t i = 0; i < area_bytes; ++i)
    if (area[i] != 0xAB)
      fail_msg("a rejected write changed plan area byte %zu", i);
  assert_cgr_ok(rt, cgr_counters_reset(rt));
  assert_cgr_status(rt, cgr__plan_load_launch(be, TEST_MAIN(rt), area, 0),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "grid 0 is not in [1, 2^31 - 1]");
  assert_cgr_status(rt,
                    cgr__plan_load_launch(be, TEST_MAIN(rt), area, 1u << 31),
                    CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(rt, cgr__plan_load_launch(be, TEST_MAIN(rt), NULL, 1),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "'area' is NULL");
  assert_cgr_status(rt, cgr__plan_load_launch(be, TEST_MAIN(rt), area + 4, 1),
                    CGR_E_INVALID_ARGUMENT);
  cgr_counters counters;
  assert_cgr_ok(rt, cgr_counters_get(rt, &counters));
  assert_int_equal(counters.kernel_launches, 0);
  cgr__copy_plan_release(&plan);
  cgr__be_device_free(be, device);
  cgr__be_pinned_free(be, area);
}

static void test_plan_area_size_and_grid_bounds(void **state) {
  (void)state;
  cgr_test_require_backend(); /* backend-free, but must not pass as "cuda" */
  assert_int_equal(cgr__plan_area_bytes(0), 16);
  assert_int_equal(cgr__plan_area_bytes(1), 16 + 48);
  assert_int_equal(cgr__plan_area_bytes(SIZE_MAX), UINT64_MAX);
  assert_int_equal(cgr__plan_load_grid(0), 1);
  assert_int_equal(cgr__plan_load_grid(1), 1);
  assert_int_equal(cgr__plan_load_grid(300), 300);
  assert_int_equal(cgr__plan_load_grid(CGR__PLAN_LOAD_MAX_GRID),
                   CGR__PLAN_LOAD_MAX_GRID);
  assert_int_equal(cgr__plan_load_grid(CGR__PLAN_LOAD_MAX_GRID + 1),
                   CGR__PLAN_LOAD_MAX_GRID);
  assert_int_equal(cgr__plan_load_grid(UINT64_MAX), CGR__PLAN_LOAD_MAX_GRID);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_random_plans_match_reference),
    RUNTIME_TEST(test_random_plans_from_pinned_sources_match_reference),
    RUNTIME_TEST(test_every_alignment_copies_exactly),
    RUNTIME_TEST(test_fill_patterns_of_every_width),
    RUNTIME_TEST(test_gather_rows_by_index),
    RUNTIME_TEST(test_invalid_operations_are_rejected_by_name),
    RUNTIME_TEST(test_overlapping_destinations_are_rejected),
    RUNTIME_TEST(test_one_plan_is_one_launch),
    cmocka_unit_test(test_tiles_cover_every_byte_once),
    RUNTIME_TEST(test_unfinished_plan_is_not_launched),
    RUNTIME_TEST(test_zero_byte_operations_move_nothing),
    cmocka_unit_test(test_cleared_plan_is_reused_without_allocating),
    RUNTIME_TEST(test_plan_load_runs_random_plans_with_any_grid),
    RUNTIME_TEST(
        test_captured_plan_load_runs_the_plan_written_before_each_replay),
    RUNTIME_TEST(test_plan_load_runs_each_part_of_a_split_plan),
    RUNTIME_TEST(test_plan_load_misuse_is_rejected_by_name),
    cmocka_unit_test(test_plan_area_size_and_grid_bounds),
};

CGR_TEST_MAIN(tests)
