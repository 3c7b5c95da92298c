/* Buckets (the default list, user lists, the O(1) lookup) and slot
 * declarations (every kind, fixed addresses, padding at birth, every bad
 * declaration rejected by name). */
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"
#include "harness.h"
#include "runtime/fault.h"

static cgr_runtime *runtime_with_buckets(const uint32_t *sizes, size_t n) {
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = sizes;
  config.bucket_count = n;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  return rt;
}

static void test_default_buckets_follow_the_serving_engines(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  const uint32_t *sizes = NULL;
  size_t count = 0;
  assert_cgr_ok(rt, cgr_buckets(rt, &sizes, &count));
  assert_int_equal(count, 35);
  assert_int_equal(sizes[0], 1);
  assert_int_equal(sizes[1], 2);
  assert_int_equal(sizes[2], 4);
  assert_int_equal(sizes[3], 8);
  for (size_t i = 4; i < count; ++i)
    assert_int_equal(sizes[i], 16 + 8 * (i - 4));
  assert_int_equal(sizes[count - 1], 256);
}

static void test_bucket_for_batch_is_the_smallest_that_holds_it(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  const uint32_t *sizes = NULL;
  size_t count = 0;
  assert_cgr_ok(rt, cgr_buckets(rt, &sizes, &count));
  for (uint32_t batch = 1; batch <= 256; ++batch) {
    uint32_t want = 0;
    for (size_t i = 0; i < count && want == 0; ++i)
      if (sizes[i] >= batch)
        want = sizes[i];
    uint32_t got = 0;
    assert_cgr_ok(rt, cgr_bucket_for_batch(rt, batch, &got));
    assert_int_equal(got, want);
  }
  uint32_t got = 99;
  assert_cgr_status(rt, cgr_bucket_for_batch(rt, 257, &got),
                    CGR_E_BATCH_TOO_LARGE);
  assert_int_equal(got, 0);
  assert_last_error_contains(rt, "largest bucket (256)");
  assert_cgr_status(rt, cgr_bucket_for_batch(rt, 0, &got),
                    CGR_E_INVALID_ARGUMENT);
}

static void test_user_bucket_lists_are_copied_and_used(void **state) {
  (void)cgr_test_runtime(state);
  uint32_t sizes[] = {3, 5, 1000, 4096};
  cgr_runtime *rt = runtime_with_buckets(sizes, 4);
  sizes[0] = 77; /* the runtime kept its own copy */
  uint32_t got = 0;
  assert_cgr_ok(rt, cgr_bucket_for_batch(rt, 1, &got));
  assert_int_equal(got, 3);
  assert_cgr_ok(rt, cgr_bucket_for_batch(rt, 6, &got));
  assert_int_equal(got, 1000);
  assert_cgr_ok(rt, cgr_bucket_for_batch(rt, 4096, &got));
  assert_int_equal(got, 4096);
  cgr_runtime_destroy(rt);
}

static void test_bad_bucket_lists_are_rejected(void **state) {
  (void)cgr_test_runtime(state);
  static const struct {
    uint32_t sizes[3];
    size_t count;
    const char *says;
  } cases[] = {
      {{4, 2, 8}, 3, "ascend"},
      {{2, 2, 8}, 3, "ascend"},
      {{0, 2, 8}, 3, "[0] is 0"},
      {{1, 2, 4097}, 3, "[2] is 4097"},
      {{1, 2, 4}, 0, "bucket_count is 0"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    cgr_config config;
    cgr_test_config(&config);
    config.buckets = cases[i].sizes;
    config.bucket_count = cases[i].count;
    cgr_runtime *rt = NULL;
    assert_cgr_status(NULL, cgr_runtime_create(&config, &rt),
                      CGR_E_INVALID_ARGUMENT);
    assert_null(rt);
    assert_last_error_contains(NULL, cases[i].says);
  }
  cgr_config config;
  cgr_test_config(&config);
  config.bucket_count = 4; /* with no list */
  cgr_runtime *rt = NULL;
  assert_cgr_status(NULL, cgr_runtime_create(&config, &rt),
                    CGR_E_INVALID_ARGUMENT);
}

/* ---- slots --------------------------------------------------------------- */

static void read_back(cgr_runtime *rt, void *dst, const void *device,
                      size_t bytes) {
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), dst,
                                         device, bytes));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
}

static void test_slots_of_every_kind_start_as_padding(void **state) {
  (void)cgr_test_runtime(state);
  uint32_t sizes[] = {2, 4, 8};
  cgr_runtime *rt = runtime_with_buckets(sizes, 3);
  cgr_slot_desc desc;
  cgr_slot rows, table, prefix, constant, output;
  cgr_slot_desc_init(&desc, "out_loc", CGR_SLOT_ROWS, 8, 1);
  desc.pad_value = 0x1122334455667788u;
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &rows));
  cgr_slot_desc_init(&desc, "page_table", CGR_SLOT_ROWS, 4, 3);
  desc.pad_value = 0xFFFFFFFFu; /* the dummy page */
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &table));
  cgr_slot_desc_init(&desc, "cu_seqlens_k", CGR_SLOT_PREFIX, 4, 1);
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &prefix));
  cgr_slot_desc_init(&desc, "cu_seqlens_q", CGR_SLOT_CONSTANT, 4, 1);
  desc.extra_elems = 1;
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &constant));
  cgr_slot_desc_init(&desc, "logits", CGR_SLOT_OUTPUT, 2, 5);
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &output));
  assert_int_equal(rows, 0);
  assert_int_equal(output, 4);

  for (int set = 0; set < 2; ++set) {
    void *address = NULL;
    uint64_t out_loc[8];
    assert_cgr_ok(rt, cgr_slot_address(rt, rows, set, 0, &address));
    read_back(rt, out_loc, address, sizeof out_loc);
    for (int i = 0; i < 8; ++i)
      assert_int_equal(out_loc[i], 0x1122334455667788u);
    int32_t pages[24];
    assert_cgr_ok(rt, cgr_slot_address(rt, table, set, 0, &address));
    read_back(rt, pages, address, sizeof pages);
    for (int i = 0; i < 24; ++i)
      assert_int_equal(pages[i], -1);
    int32_t cu[9];
    assert_cgr_ok(rt, cgr_slot_address(rt, prefix, set, 0, &address));
    read_back(rt, cu, address, sizeof cu);
    for (int i = 0; i < 9; ++i)
      assert_int_equal(cu[i], 0);
  }
  /* The two sets, and every slot, are distinct memory. */
  void *a = NULL, *b = NULL;
  assert_cgr_ok(rt, cgr_slot_address(rt, rows, 0, 0, &a));
  assert_cgr_ok(rt, cgr_slot_address(rt, rows, 1, 0, &b));
  assert_ptr_not_equal(a, b);
  /* A CONSTANT slot has one buffer per bucket; the sets share it. */
  assert_cgr_ok(rt, cgr_slot_address(rt, constant, 0, 4, &a));
  assert_cgr_ok(rt, cgr_slot_address(rt, constant, 1, 4, &b));
  assert_ptr_equal(a, b);
  assert_cgr_ok(rt, cgr_slot_address(rt, constant, 0, 8, &b));
  assert_ptr_not_equal(a, b);
  assert_cgr_status(rt, cgr_slot_address(rt, constant, 0, 5, &b),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "5 is not a bucket");

  cgr_slot found = -1;
  assert_cgr_ok(rt, cgr_slot_find(rt, "page_table", &found));
  assert_int_equal(found, table);
  assert_cgr_status(rt, cgr_slot_find(rt, "nope", &found),
                    CGR_E_INVALID_ARGUMENT);
  assert_int_equal(found, -1);

  /* 2 sets x 8 rows for ROWS/OUTPUT/PREFIX, per bucket for CONSTANT. */
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  uint64_t want =
      2 * (8 * 8) + 2 * (8 * 12) + 2 * (9 * 4) + (3 + 5 + 9) * 4 + 2 * (8 * 10);
  assert_int_equal(stats.slot_bytes, want);
  cgr_runtime_destroy(rt);
}

static void test_bad_slot_declarations_are_rejected_by_name(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr_slot slot = 0;
  cgr_slot_desc desc;
  cgr_slot_desc_init(&desc, "input_ids", CGR_SLOT_ROWS, 4, 1);
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &slot));

  static const struct {
    const char *name;
    cgr_slot_kind kind;
    uint32_t elem_size;
    uint64_t row_elems;
    const char *says;
  } cases[] = {
      {"input_ids", CGR_SLOT_ROWS, 4, 1, "already declared"},
      {"", CGR_SLOT_ROWS, 4, 1, "NULL or empty"},
      {NULL, CGR_SLOT_ROWS, 4, 1, "NULL or empty"},
      {"x", CGR_SLOT_ROWS, 3, 1, "elem_size"},
      {"x", CGR_SLOT_ROWS, 0, 1, "elem_size"},
      {"x", CGR_SLOT_OUTPUT, 4, 0, "row_elems is 0"},
      {"x", CGR_SLOT_PREFIX, 4, 2, "PREFIX slot has row_elems 1"},
      {"x", (cgr_slot_kind)9, 4, 1, "kind"},
      {"x", CGR_SLOT_ROWS, 8, UINT64_C(1) << 62, "overflows"},
      {"a_name_that_is_far_too_long_to_be_a_slot_name_in_any_decode_loop",
       CGR_SLOT_ROWS, 4, 1, "longer than 63"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    cgr_slot_desc_init(&desc, cases[i].name, cases[i].kind, cases[i].elem_size,
                       cases[i].row_elems);
    slot = 5;
    assert_cgr_status(rt, cgr_slot_declare(rt, &desc, &slot),
                      CGR_E_INVALID_ARGUMENT);
    assert_int_equal(slot, -1);
    assert_last_error_contains(rt, cases[i].says);
  }
  cgr_slot_desc_init(&desc, "q", CGR_SLOT_ROWS, 4, 1);
  desc.extra_elems = 1; /* only CONSTANT slots have extra elements */
  assert_cgr_status(rt, cgr_slot_declare(rt, &desc, &slot),
                    CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(rt, cgr_slot_declare(rt, NULL, &slot),
                    CGR_E_INVALID_ARGUMENT);
  /* Nothing was declared by the failures. */
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.slot_bytes, 2 * 256 * 4);
}

static void test_slot_allocation_failure_declares_nothing(void **state) {
  cgr_test_require_host();
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr_slot_desc desc;
  cgr_slot slot;
  cgr_slot_desc_init(&desc, "q", CGR_SLOT_CONSTANT, 4, 1);
  for (uint64_t nth = 1; nth < 100; ++nth) {
    cgr__fault_arm(CGR__CALL_DEVICE_ALLOC, nth);
    cgr_status status = cgr_slot_declare(rt, &desc, &slot);
    int fired = cgr__fault_fired();
    cgr__fault_disarm();
    if (!fired) {
      assert_cgr_ok(rt, status);
      break;
    }
    assert_int_equal(status, CGR_E_DEVICE_OUT_OF_MEMORY);
    cgr_capture_stats stats;
    assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
    assert_int_equal(stats.slot_bytes, 0);
  }
  assert_int_equal(slot, 0);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_default_buckets_follow_the_serving_engines),
    RUNTIME_TEST(test_bucket_for_batch_is_the_smallest_that_holds_it),
    RUNTIME_TEST(test_user_bucket_lists_are_copied_and_used),
    RUNTIME_TEST(test_bad_bucket_lists_are_rejected),
    RUNTIME_TEST(test_slots_of_every_kind_start_as_padding),
    RUNTIME_TEST(test_bad_slot_declarations_are_rejected_by_name),
    HOST_RUNTIME_TEST(test_slot_allocation_failure_declares_nothing),
};

CGR_TEST_MAIN(tests)
