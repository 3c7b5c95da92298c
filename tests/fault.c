/* Fault injection: every call site of create and destroy fails cleanly
 * (the asan preset proves nothing leaks), and failed calls leave the
 * runtime usable. */
#include <string.h>

#include "harness.h"
#include "kernels/basic.h"
#include "runtime/fault.h"

static void test_create_fails_cleanly_at_every_injected_fault(void **state) {
  (void)state;
  cgr_config config;
  cgr_test_config(&config);
  int sites = 0;
  for (int call = 0; call < CGR__CALL_COUNT; ++call) {
    /* Fail the 1st, 2nd, ... call of this kind until create no longer
     * reaches an nth call: then every site of this kind was hit once. */
    for (uint64_t nth = 1;; ++nth) {
      cgr_runtime *rt = (cgr_runtime *)&config; /* must come back NULL */
      cgr__fault_arm((cgr__call)call, nth);
      cgr_status status = cgr_runtime_create(&config, &rt);
      int fired = cgr__fault_fired();
      cgr__fault_disarm();
      if (!fired) {
        assert_cgr_ok(NULL, status);
        cgr_runtime_destroy(rt);
        break;
      }
      sites++;
      if (status == CGR_OK)
        fail_msg("create succeeded although %s call #%llu failed",
                 cgr__call_name((cgr__call)call), (unsigned long long)nth);
      assert_null(rt);
      assert_int_equal(status, cgr__fault_status((cgr__call)call));
      /* The message says what failed. */
      assert_true(strlen(cgr_last_error(NULL)) > 0);
      assert_true(nth < 100);
    }
  }
  /* The runtime allocation, its backend context, two streams (each with a
   * stop op and a thread): at least six distinct sites. */
  assert_true(sites >= 6);
}

static void test_injected_kernel_launch_failure_counts_nothing(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  int32_t *device = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, 64 * sizeof(int32_t),
                                         (void **)&device));
  assert_cgr_ok(rt, cgr_counters_reset(rt));
  cgr__arange_i32_args args = {device, 64, 0, 1};
  cgr__fault_arm(CGR__CALL_KERNEL_LAUNCH, 2);
  cgr_status first =
      cgr__be_kernel_launch(be, TEST_MAIN(rt), &cgr__kernel_arange_i32, &args);
  cgr_status second =
      cgr__be_kernel_launch(be, TEST_MAIN(rt), &cgr__kernel_arange_i32, &args);
  cgr_status third =
      cgr__be_kernel_launch(be, TEST_MAIN(rt), &cgr__kernel_arange_i32, &args);
  cgr__fault_disarm();
  assert_cgr_ok(rt, first);
  assert_int_equal(second, CGR_E_CUDA);
  assert_last_error_contains(rt, "injected fault in KERNEL_LAUNCH call #2");
  assert_cgr_ok(rt, third);
  cgr_counters counters;
  assert_cgr_ok(rt, cgr_counters_get(rt, &counters));
  assert_int_equal(counters.kernel_launches, 2);
  assert_cgr_ok(rt, cgr_synchronize(rt));
  cgr__be_device_free(be, device);
}

static void test_host_op_allocation_failure_leaves_stream_usable(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  int32_t *device = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, 64 * sizeof(int32_t),
                                         (void **)&device));
  cgr__arange_i32_args args = {device, 64, 3, 1};
  /* The host backend allocates an op per enqueue: fail that allocation. */
  cgr__fault_arm(CGR__CALL_HOST_ALLOC, 1);
  cgr_status status =
      cgr__be_kernel_launch(be, TEST_MAIN(rt), &cgr__kernel_arange_i32, &args);
  cgr__fault_disarm();
  assert_int_equal(status, CGR_E_OUT_OF_MEMORY);
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &args));
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_int_equal(device[10], 13);
  cgr__be_device_free(be, device);
}

static void
test_every_fault_during_capture_leaves_a_usable_stream(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  int32_t *device = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, 64 * sizeof(int32_t),
                                         (void **)&device));
  cgr__arange_i32_args args = {device, 64, 0, 1};
  const cgr__call kinds[] = {CGR__CALL_HOST_ALLOC,
                             CGR__CALL_CAPTURE_BEGIN,
                             CGR__CALL_KERNEL_LAUNCH,
                             CGR__CALL_CAPTURE_END,
                             CGR__CALL_GRAPH_INSTANTIATE,
                             CGR__CALL_GRAPH_LAUNCH};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; ++k) {
    for (uint64_t nth = 1;; ++nth) {
      cgr__graph *graph = NULL;
      cgr__graph_exec *exec = NULL;
      cgr_status status = CGR_OK;
      cgr__fault_arm(kinds[k], nth);
      CGR__CHECK_GOTO(cgr__be_capture_begin(be, TEST_MAIN(rt)), status, done);
      status = cgr__be_kernel_launch(be, TEST_MAIN(rt), &cgr__kernel_arange_i32,
                                     &args);
      {
        /* End the capture whatever happened inside it. */
        cgr_status end = cgr__be_capture_end(be, TEST_MAIN(rt), &graph);
        if (status == CGR_OK)
          status = end;
      }
      if (status != CGR_OK)
        goto done;
      CGR__CHECK_GOTO(cgr__be_graph_instantiate(be, graph, NULL, &exec), status,
                      done);
      CGR__CHECK_GOTO(cgr__be_graph_launch(be, exec, TEST_MAIN(rt)), status,
                      done);
    done:;
      int fired = cgr__fault_fired();
      cgr__fault_disarm();
      cgr__be_graph_exec_destroy(be, exec);
      cgr__be_graph_destroy(be, graph);
      assert_int_equal(cgr__be_stream_is_capturing(be, TEST_MAIN(rt)), 0);
      assert_cgr_ok(rt, cgr_synchronize(rt));
      if (!fired) {
        assert_cgr_ok(rt, status);
        break;
      }
      assert_true(status != CGR_OK);
      assert_true(nth < 50);
    }
  }
  cgr__be_device_free(be, device);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_create_fails_cleanly_at_every_injected_fault),
    RUNTIME_TEST(test_injected_kernel_launch_failure_counts_nothing),
    RUNTIME_TEST(test_host_op_allocation_failure_leaves_stream_usable),
    RUNTIME_TEST(test_every_fault_during_capture_leaves_a_usable_stream),
};

CGR_TEST_MAIN(tests)
