/* Fault injection: every call site of create and destroy fails cleanly
 * (the asan preset proves nothing leaks), and failed calls leave the
 * runtime usable; the ways CUDA fails later (an asynchronous fault that
 * loses the device, a non-sticky error a later call reports) behave as on
 * a GPU; plans count per call site; CGR_FAULT arms plans in any program.
 * Host backend: the device these tests lose is the host backend's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/basic.h"
#include "model.h"
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

/* ---- faults that surface later ---------------------------------------- */

enum { WORDS = 64 };

static cgr_runtime *host_runtime(void) {
  cgr_config config;
  cgr_test_config(&config);
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  return rt;
}

static void assert_message_has(cgr_runtime *rt, const char *needle) {
  if (strstr(cgr_last_error(rt), needle) == NULL)
    fail_msg("the message lacks \"%s\": %s", needle, cgr_last_error(rt));
}

/* The armed copy is accepted; it faults when the worker runs it, so the
 * device is lost for every runtime on it; the next sync reports it. */
static void
test_an_async_copy_fault_surfaces_later_and_loses_every_runtime(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr_runtime *rt = host_runtime();
  cgr_runtime *other = host_runtime();
  int32_t *device = NULL;
  assert_cgr_ok(rt, cgr_device_alloc(rt, WORDS * 4, (void **)&device));
  int32_t host[WORDS];
  for (int i = 0; i < WORDS; ++i)
    host[i] = i;
  cgr__fault_plan plan = {.call = CGR__CALL_COPY,
                          .site = __func__,
                          .nth = 1,
                          .mode = CGR__FAULT_ASYNC};
  assert_true(cgr__fault_arm_plans(&plan, 1));
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), device,
                                         host, sizeof host));
  assert_true(cgr__fault_fired());
  assert_cgr_status(rt, cgr_synchronize(rt), CGR_E_DEVICE_LOST);
  cgr__fault_disarm();
  assert_int_equal(cgr__fault_raised(), 1);
  assert_message_has(rt, "a copy of 256 bytes raised a device fault");
  assert_message_has(rt, "injected asynchronous fault in COPY call #1");
  assert_message_has(rt, __func__); /* the site */
  /* The copy did no work; the other runtime lost its device too, and
   * every later call says so at once. */
  assert_int_not_equal(device[5], 5);
  assert_cgr_status(other, cgr_synchronize(other), CGR_E_DEVICE_LOST);
  assert_message_has(other, "the device was lost");
  assert_cgr_status(rt,
                    cgr__be_memset_async(TEST_BE(rt), TEST_MAIN(rt), device, 0,
                                         sizeof host),
                    CGR_E_DEVICE_LOST);
  assert_cgr_ok(rt, cgr_device_free(rt, device));
  cgr_runtime_destroy(other);
  cgr_runtime_destroy(rt);
  /* The last runtime gone, the next one gets a fresh device. */
  rt = host_runtime();
  assert_cgr_ok(rt, cgr_synchronize(rt));
  cgr_runtime_destroy(rt);
}

/* An event query is where the host looks without waiting: it reports the
 * loss once the faulting work ran. */
static void test_an_event_query_reports_an_async_memset_fault(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr_runtime *rt = host_runtime();
  void *device = NULL;
  assert_cgr_ok(rt, cgr_device_alloc(rt, WORDS * 4, &device));
  cgr__event *event = NULL;
  assert_cgr_ok(rt, cgr__be_event_create(TEST_BE(rt), 0, &event));
  /* The stream is held until the record is enqueued: the memset must not
   * fault (and lose the device) before the record call is made. */
  test_gate gate;
  test_gate_init(&gate);
  assert_cgr_ok(rt, cgr__be_host_func(TEST_BE(rt), TEST_MAIN(rt),
                                      test_gate_hold_stream, &gate));
  cgr__fault_plan plan = {.call = CGR__CALL_MEMSET,
                          .nth = 1,
                          .mode = CGR__FAULT_ASYNC};
  assert_true(cgr__fault_arm_plans(&plan, 1));
  assert_cgr_ok(rt, cgr__be_memset_async(TEST_BE(rt), TEST_MAIN(rt), device, 1,
                                         WORDS * 4));
  cgr__fault_disarm();
  assert_cgr_ok(rt, cgr__be_event_record(TEST_BE(rt), event, TEST_MAIN(rt)));
  test_gate_open(&gate);
  cgr_status status = CGR_E_NOT_READY;
  for (uint64_t began = cgr_clock_us();
       status == CGR_E_NOT_READY && cgr_clock_us() - began < 10000000;)
    status = cgr__be_event_query(TEST_BE(rt), event);
  assert_cgr_status(rt, status, CGR_E_DEVICE_LOST);
  assert_message_has(rt, "cgr__be_event_query");
  assert_message_has(rt, "a memset of 256 bytes raised a device fault");
  cgr__be_event_destroy(TEST_BE(rt), event);
  assert_cgr_ok(rt, cgr_device_free(rt, device));
  cgr_runtime_destroy(rt);
  test_gate_fini(&gate);
}

/* A kernel captured under an ASYNC plan is accepted, and so are the
 * capture and the instantiation: the graph faults when it runs. */
static void
test_an_async_kernel_fault_in_a_graph_faults_at_launch(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr_runtime *rt = host_runtime();
  cgr__backend *be = TEST_BE(rt);
  int32_t *device = NULL;
  assert_cgr_ok(rt, cgr_device_alloc(rt, WORDS * 4, (void **)&device));
  cgr__arange_i32_args args = {device, WORDS, 0, 1};
  cgr__fault_plan plan = {.call = CGR__CALL_KERNEL_LAUNCH,
                          .nth = 1,
                          .mode = CGR__FAULT_ASYNC};
  assert_true(cgr__fault_arm_plans(&plan, 1));
  cgr__graph *graph = NULL;
  cgr__graph_exec *exec = NULL;
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &args));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  cgr__fault_disarm();
  assert_cgr_ok(rt, cgr__be_graph_instantiate(be, graph, NULL, &exec));
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_int_equal(cgr__fault_raised(), 0); /* nothing ran yet */
  assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
  assert_cgr_status(rt, cgr_synchronize(rt), CGR_E_DEVICE_LOST);
  assert_message_has(rt, "kernel 'arange_i32' raised a device fault");
  assert_int_not_equal(device[7], 7);
  cgr__be_graph_exec_destroy(be, exec);
  cgr__be_graph_destroy(be, graph);
  assert_cgr_ok(rt, cgr_device_free(rt, device));
  cgr_runtime_destroy(rt);
}

/* Through the public API: a replayed step whose graph launch faults on the
 * device is accepted; its ticket wait reports the loss, naming the step;
 * every later call says CGR_E_DEVICE_LOST; destroy works. */
static void
test_an_async_graph_launch_fault_ends_the_ticket_wait(void **state) {
  (void)state;
  cgr_test_require_host();
  static const uint32_t buckets[] = {1, 2, 4};
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, 3, 1, &m);
  model_inputs in;
  model_make_inputs(&in, 3, 3, 5);
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, 3, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, in.ids, 12));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, in.pos, 12));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pages, CGR_SOURCE_HOST, in.pages,
                                    12 * MODEL_PAGES));
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.cu_k, CGR_SOURCE_HOST, in.cu_k, 16));
  cgr__fault_plan plan = {.call = CGR__CALL_GRAPH_LAUNCH,
                          .nth = 1,
                          .mode = CGR__FAULT_ASYNC};
  assert_true(cgr__fault_arm_plans(&plan, 1));
  /* The replay is accepted unless the worker was quicker than its next
   * call: the loss surfaces where the host looks next. */
  cgr_ticket ticket;
  cgr_status status = cgr_replay(rt, batch, &ticket);
  if (status == CGR_OK)
    status = cgr_ticket_wait(rt, &ticket);
  cgr__fault_disarm();
  assert_cgr_status(rt, status, CGR_E_DEVICE_LOST);
  assert_message_has(rt, "step 0 (batch 3");
  assert_message_has(rt, "a graph launch raised a device fault");
  assert_cgr_status(rt, cgr_batch_begin(rt, 3, &batch), CGR_E_DEVICE_LOST);
  assert_cgr_status(rt, cgr_synchronize(rt), CGR_E_DEVICE_LOST);
  cgr_runtime_destroy(rt);
}

/* The armed call succeeds and its work runs; the runtime's next call that
 * launches or waits returns CGR_E_CUDA once; then everything works and the
 * device is not lost. Another runtime never sees the error. */
static void
test_a_deferred_error_is_reported_once_by_a_later_call(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr_runtime *rt = host_runtime();
  cgr_runtime *other = host_runtime();
  cgr__backend *be = TEST_BE(rt);
  int32_t *device = NULL;
  assert_cgr_ok(rt, cgr_device_alloc(rt, WORDS * 4, (void **)&device));
  cgr__arange_i32_args args = {device, WORDS, 10, 1};
  cgr__fault_plan plan = {.call = CGR__CALL_KERNEL_LAUNCH,
                          .nth = 1,
                          .mode = CGR__FAULT_DEFERRED};
  assert_true(cgr__fault_arm_plans(&plan, 1));
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &args));
  cgr__fault_disarm();
  assert_int_equal(cgr__fault_left_count(), 1);
  assert_cgr_ok(other, cgr_synchronize(other));
  /* An unrelated call of the same runtime reports it... */
  assert_cgr_status(rt, cgr__be_memset_async(be, TEST_SIDE(rt), device, 0, 0),
                    CGR_OK); /* no work: no call reaches the device */
  assert_cgr_status(rt, cgr_synchronize(rt), CGR_E_CUDA);
  assert_message_has(rt, "an earlier call left an error behind");
  assert_message_has(rt, "injected deferred fault in KERNEL_LAUNCH call #1");
  assert_int_equal(cgr__fault_left_count(), 0);
  /* ...once: the device works, and the kernel did its work. */
  assert_false(cgr__be_lost(be));
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_int_equal(device[5], 15);
  args.start = 20;
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &args));
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_int_equal(device[5], 25);
  assert_cgr_ok(rt, cgr_device_free(rt, device));
  cgr_runtime_destroy(other);
  cgr_runtime_destroy(rt);
}

/* An error left behind and never reported goes with its runtime: a new
 * runtime (perhaps at the same address) does not inherit it. */
static void
test_an_unreported_deferred_error_goes_with_its_runtime(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr_runtime *rt = host_runtime();
  cgr__event *event = NULL;
  assert_cgr_ok(rt, cgr__be_event_create(TEST_BE(rt), 0, &event));
  cgr__fault_plan plan = {.call = CGR__CALL_EVENT_RECORD,
                          .nth = 1,
                          .mode = CGR__FAULT_DEFERRED};
  assert_true(cgr__fault_arm_plans(&plan, 1));
  assert_cgr_ok(rt, cgr__be_event_record(TEST_BE(rt), event, TEST_MAIN(rt)));
  cgr__fault_disarm();
  assert_int_equal(cgr__fault_left_count(), 1);
  cgr__be_event_destroy(TEST_BE(rt), event);
  cgr_runtime_destroy(rt);
  assert_int_equal(cgr__fault_left_count(), 0);
  rt = host_runtime();
  assert_cgr_ok(rt, cgr_synchronize(rt));
  cgr_runtime_destroy(rt);
}

/* ---- counting per site --------------------------------------------------- */

static cgr_status copy_from_a(cgr_runtime *rt, void *dst, const void *src) {
  return cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), dst, src, 4);
}

static cgr_status copy_from_b(cgr_runtime *rt, void *dst, const void *src) {
  return cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), dst, src, 4);
}

/* A plan with a site counts that site's calls only: the 2nd copy of
 * copy_from_b is the 4th copy of the process here, and the sites are
 * listed with their counts. */
static void test_a_site_plan_counts_only_its_sites_calls(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr_test_require_host();
  void *device = NULL;
  assert_cgr_ok(rt, cgr_device_alloc(rt, 16, &device));
  static const int32_t value = 7;
  cgr__fault_plan plan = {.call = CGR__CALL_COPY,
                          .site = "copy_from_b",
                          .nth = 2};
  assert_true(cgr__fault_arm_plans(&plan, 1));
  cgr_status statuses[4] = {copy_from_a(rt, device, &value),
                            copy_from_b(rt, device, &value),
                            copy_from_a(rt, device, &value),
                            copy_from_b(rt, device, &value)};
  assert_cgr_ok(rt, statuses[0]);
  assert_cgr_ok(rt, statuses[1]);
  assert_cgr_ok(rt, statuses[2]);
  assert_int_equal(statuses[3], CGR_E_CUDA);
  assert_message_has(rt, "COPY call #2 (hit #2 of site copy_from_b, ");
  assert_message_has(rt, "tests/fault.c:");
  /* The sites of every kind, in the order first seen: the copies' and
   * the host backend's allocation of each copy's op. */
  cgr__fault_site_hits sites[8], copies[8];
  size_t count = cgr__fault_sites(sites, 8), copy_sites = 0;
  cgr__fault_disarm();
  assert_true(count <= 8);
  for (size_t i = 0; i < count; ++i)
    if (sites[i].call == CGR__CALL_COPY)
      copies[copy_sites++] = sites[i];
    else
      assert_int_equal(sites[i].call, CGR__CALL_HOST_ALLOC);
  assert_int_equal(copy_sites, 2);
  assert_string_equal(copies[0].func, "copy_from_a");
  assert_int_equal(copies[0].hits, 2);
  assert_string_equal(copies[1].func, "copy_from_b");
  assert_int_equal(copies[1].hits, 2);
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_cgr_ok(rt, cgr_device_free(rt, device));
}

static void test_a_plan_refuses_a_mode_its_kind_cannot_fail_in(void **state) {
  (void)state;
  cgr__fault_plan plans[] = {
      {.call = CGR__CALL_DEVICE_ALLOC, .nth = 1, .mode = CGR__FAULT_ASYNC},
      {.call = CGR__CALL_SYNCHRONIZE, .nth = 1, .mode = CGR__FAULT_DEFERRED},
      {.call = CGR__CALL_COPY, .nth = 0},
      {.call = CGR__CALL_COPY, .nth = 1, .sticky = 1, .mode = CGR__FAULT_ASYNC},
  };
  for (size_t i = 0; i < sizeof plans / sizeof plans[0]; ++i)
    if (cgr__fault_arm_plans(&plans[i], 1))
      fail_msg("plan %zu was armed", i);
  assert_true(cgr__fault_mode_fits(CGR__CALL_COPY, CGR__FAULT_ASYNC));
  assert_true(cgr__fault_mode_fits(CGR__CALL_HOST_FUNC, CGR__FAULT_DEFERRED));
  assert_false(cgr__fault_mode_fits(CGR__CALL_HOST_FUNC, CGR__FAULT_ASYNC));
}

/* ---- CGR_FAULT ----------------------------------------------------------- */

/* Creates a runtime with CGR_FAULT=value read afresh; the environment is
 * restored (and any plan disarmed) by fault_env_end. */
static cgr_status create_with_fault_env(const char *value, cgr_runtime **rt) {
  setenv("CGR_FAULT", value, 1);
  cgr__env_reload();
  cgr_config config;
  cgr_test_config(&config);
  return cgr_runtime_create(&config, rt);
}

static void fault_env_end(void) {
  unsetenv("CGR_FAULT");
  cgr__env_reload();
  cgr__fault_disarm();
}

static void test_cgr_fault_arms_a_plan_at_create(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr_runtime *rt = NULL;
  cgr_status status = create_with_fault_env("stream_create:2", &rt);
  fault_env_end();
  assert_int_equal(status, CGR_E_CUDA);
  assert_null(rt);
  assert_last_error_contains(NULL, "injected fault in STREAM_CREATE call #2");
  /* Unset, nothing is armed. */
  rt = host_runtime();
  cgr_runtime_destroy(rt);
}

/* The plans of a person's own test: an asynchronous fault in a step's
 * graph, and a deferred error at a named site, in one variable. */
static void test_cgr_fault_arms_async_and_deferred_plans(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr_runtime *rt = NULL;
  char value[160];
  snprintf(value, sizeof value, "GRAPH_LAUNCH:1:async,COPY@%s:1:deferred",
           __func__);
  assert_cgr_ok(NULL, create_with_fault_env(value, &rt));
  void *device = NULL;
  assert_cgr_ok(rt, cgr_device_alloc(rt, 16, &device));
  static const int32_t seven = 7;
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), device,
                                         &seven, 4));
  assert_cgr_status(rt, cgr_synchronize(rt), CGR_E_CUDA);
  assert_message_has(rt, "injected deferred fault in COPY call #1");
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_int_equal(*(int32_t *)device, 7);
  cgr__graph *graph = NULL;
  cgr__graph_exec *exec = NULL;
  assert_cgr_ok(rt, cgr__be_capture_begin(TEST_BE(rt), TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_capture_end(TEST_BE(rt), TEST_MAIN(rt), &graph));
  assert_cgr_ok(rt, cgr__be_graph_instantiate(TEST_BE(rt), graph, NULL, &exec));
  assert_cgr_ok(rt, cgr__be_graph_launch(TEST_BE(rt), exec, TEST_MAIN(rt)));
  cgr_status status = cgr_synchronize(rt);
  fault_env_end();
  assert_cgr_status(rt, status, CGR_E_DEVICE_LOST);
  assert_message_has(rt, "injected asynchronous fault in GRAPH_LAUNCH call #1");
  cgr__be_graph_exec_destroy(TEST_BE(rt), exec);
  cgr__be_graph_destroy(TEST_BE(rt), graph);
  assert_cgr_ok(rt, cgr_device_free(rt, device));
  cgr_runtime_destroy(rt);
}

static void test_cgr_fault_nonsense_is_rejected_at_create(void **state) {
  (void)state;
  static const char *const nonsense[] = {
      "COPY",
      "NOPE:1",
      "COPY:0",
      "COPY:x",
      "COPY:2x",
      "COPY@:1",
      "EVENT_CREATE:1:async",
      "COPY:1+:async",
      "COPY:1:later",
      "COPY:1,",
      "COPY:1,COPY:2,COPY:3,COPY:4,COPY:5,COPY:6,COPY:7,COPY:8,COPY:9"};
  assert_true(cgr__fault_arm_plans(NULL, 0)); /* fired: 0 */
  cgr__fault_disarm();
  for (size_t i = 0; i < sizeof nonsense / sizeof nonsense[0]; ++i) {
    cgr_runtime *rt = NULL;
    cgr_status status = create_with_fault_env(nonsense[i], &rt);
    fault_env_end();
    if (status != CGR_E_INVALID_ARGUMENT)
      fail_msg("CGR_FAULT='%s' gave %s", nonsense[i], cgr_status_name(status));
    assert_null(rt);
    assert_last_error_contains(NULL, "CGR_FAULT='");
  }
  assert_false(cgr__fault_fired());
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_create_fails_cleanly_at_every_injected_fault),
    RUNTIME_TEST(test_injected_kernel_launch_failure_counts_nothing),
    RUNTIME_TEST(test_host_op_allocation_failure_leaves_stream_usable),
    RUNTIME_TEST(test_every_fault_during_capture_leaves_a_usable_stream),
    HOST_TEST(test_an_async_copy_fault_surfaces_later_and_loses_every_runtime),
    HOST_TEST(test_an_event_query_reports_an_async_memset_fault),
    HOST_TEST(test_an_async_kernel_fault_in_a_graph_faults_at_launch),
    HOST_TEST(test_an_async_graph_launch_fault_ends_the_ticket_wait),
    HOST_TEST(test_a_deferred_error_is_reported_once_by_a_later_call),
    HOST_TEST(test_an_unreported_deferred_error_goes_with_its_runtime),
    HOST_RUNTIME_TEST(test_a_site_plan_counts_only_its_sites_calls),
    cmocka_unit_test(test_a_plan_refuses_a_mode_its_kind_cannot_fail_in),
    HOST_TEST(test_cgr_fault_arms_a_plan_at_create),
    HOST_TEST(test_cgr_fault_arms_async_and_deferred_plans),
    HOST_TEST(test_cgr_fault_nonsense_is_rejected_at_create),
};

CGR_TEST_MAIN(tests)
