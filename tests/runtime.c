/* The runtime object on each backend: what it reports, its counters. */
#include <string.h>

#include "harness.h"
#include "kernels/basic.h"

static void test_runtime_reports_its_backend_and_device(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  assert_int_equal(cgr_backend(rt), cgr_test_backend);
  assert_string_equal(cgr_backend_name(rt),
                      cgr_test_backend == CGR_BACKEND_CUDA ? "cuda" : "host");
  assert_true(strlen(cgr_backend_reason(rt)) > 0);
  cgr_device_info info;
  memset(&info, 0x7F, sizeof info);
  assert_cgr_ok(rt, cgr_device_info_get(rt, &info));
  assert_true(strlen(info.name) > 0);
  assert_true(info.multiprocessors > 0);
  if (cgr_test_backend == CGR_BACKEND_CUDA) {
    assert_int_equal(info.ordinal, 0);
    assert_true(info.compute_major >= 7);
    assert_true(info.global_memory > 0);
    assert_true(info.driver_version >= info.runtime_version);
  } else {
    assert_int_equal(info.ordinal, -1);
    assert_non_null(strstr(info.name, "host"));
  }
  assert_int_equal(cgr_device_info_get(rt, NULL), CGR_E_INVALID_ARGUMENT);
}

static void test_runtime_starts_with_two_streams(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  assert_non_null(TEST_MAIN(rt));
  assert_non_null(TEST_SIDE(rt));
  assert_ptr_not_equal(TEST_MAIN(rt), TEST_SIDE(rt));
  cgr_counters counters;
  assert_cgr_ok(rt, cgr_counters_get(rt, &counters));
  assert_int_equal(counters.stream_creates, 2);
  assert_int_equal(cgr_last_error(rt)[0], '\0');
}

static void test_counters_count_each_call_kind_and_reset(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  assert_cgr_ok(rt, cgr_counters_reset(rt));
  int32_t *device = NULL;
  cgr__event *event = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, 256, (void **)&device));
  assert_cgr_ok(rt, cgr__be_event_create(be, 0, &event));
  cgr__arange_i32_args args = {device, 64, 0, 1};
  for (int i = 0; i < 3; ++i)
    assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                            &cgr__kernel_arange_i32, &args));
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_MAIN(rt), device, 0, 256));
  assert_cgr_ok(rt, cgr__be_event_record(be, event, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_stream_wait_event(be, TEST_SIDE(rt), event));
  assert_cgr_ok(rt, cgr_synchronize(rt));

  cgr_counters counters;
  assert_cgr_ok(rt, cgr_counters_get(rt, &counters));
  assert_int_equal(counters.device_allocs, 1);
  assert_int_equal(counters.event_creates, 1);
  assert_int_equal(counters.kernel_launches, 3);
  assert_int_equal(counters.memsets, 1);
  assert_int_equal(counters.copies, 0);
  assert_int_equal(counters.event_records, 1);
  assert_int_equal(counters.event_waits, 1);
  assert_int_equal(counters.synchronizations, 2); /* one per stream */
  assert_int_equal(counters.graph_launches, 0);

  /* A failed call counts nothing. */
  assert_true(cgr__be_memset_async(be, NULL, device, 0, 4) != CGR_OK);
  assert_cgr_ok(rt, cgr_counters_get(rt, &counters));
  assert_int_equal(counters.memsets, 1);

  assert_cgr_ok(rt, cgr_counters_reset(rt));
  assert_cgr_ok(rt, cgr_counters_get(rt, &counters));
  const uint64_t *fields = (const uint64_t *)&counters;
  for (size_t i = 0; i < sizeof counters / sizeof(uint64_t); ++i)
    assert_int_equal(fields[i], 0);
  cgr__be_event_destroy(be, event);
  cgr__be_device_free(be, device);
}

static void test_synchronize_waits_for_both_streams(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  enum { N = 1 << 16 };
  int32_t *device = NULL, *pinned = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, N * sizeof(int32_t),
                                         (void **)&device));
  assert_cgr_ok(rt, cgr__be_pinned_alloc(be, N * sizeof(int32_t),
                                         (void **)&pinned));
  memset(pinned, 0, N * sizeof(int32_t));
  cgr__arange_i32_args args = {device, N, 1, 1};
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_SIDE(rt),
                                          &cgr__kernel_arange_i32, &args));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_SIDE(rt), pinned, device,
                                         N * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_int_equal(pinned[N - 1], N);
  cgr__be_device_free(be, device);
  cgr__be_pinned_free(be, pinned);
}

static void test_runtimes_are_independent(void **state) {
  cgr_runtime *first = cgr_test_runtime(state);
  cgr_config config;
  cgr_test_config(&config);
  cgr_runtime *second = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &second));
  /* An error on one runtime leaves the other's message alone. */
  assert_true(cgr__be_device_alloc(TEST_BE(second), 0, NULL) != CGR_OK);
  assert_true(strlen(cgr_last_error(second)) > 0);
  assert_int_equal(cgr_last_error(first)[0], '\0');
  cgr_runtime_destroy(second);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_runtime_reports_its_backend_and_device),
    RUNTIME_TEST(test_runtime_starts_with_two_streams),
    RUNTIME_TEST(test_counters_count_each_call_kind_and_reset),
    RUNTIME_TEST(test_synchronize_waits_for_both_streams),
    RUNTIME_TEST(test_runtimes_are_independent),
};

CGR_TEST_MAIN(tests)
