/* Streams and events: order within a stream, concurrency across streams,
 * ordering through events, memory, copies and kernels. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "kernels/basic.h"

enum { GATE_TIMEOUT_MS = 10000 };

/* ---- helpers run as host functions on a stream ------------------------- */

typedef struct order_log {
  int entries[256];
  int count; /* written only by the stream running the functions */
} order_log;

typedef struct order_entry {
  order_log *log;
  int value;
} order_entry;

static void append_entry(void *user) {
  order_entry *entry = user;
  entry->log->entries[entry->log->count++] = entry->value;
}

typedef struct handshake {
  test_gate a_started;
  test_gate b_answered;
  int a_saw_b; /* written by A's function, read after synchronize */
} handshake;

static void handshake_a(void *user) {
  handshake *h = user;
  test_gate_open(&h->a_started);
  h->a_saw_b = test_gate_wait(&h->b_answered, GATE_TIMEOUT_MS);
}

static void handshake_b(void *user) {
  handshake *h = user;
  if (test_gate_wait(&h->a_started, GATE_TIMEOUT_MS))
    test_gate_open(&h->b_answered);
}

typedef struct shared_value {
  int value;
  int observed;
} shared_value;

static void write_value(void *user) { ((shared_value *)user)->value = 42; }

static void read_value(void *user) {
  shared_value *shared = user;
  shared->observed = shared->value;
}

/* ---- tests --------------------------------------------------------------- */

static void test_stream_runs_work_in_fifo_order(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  order_log log = {.count = 0};
  order_entry entries[200];
  for (int i = 0; i < 200; ++i) {
    entries[i] = (order_entry){&log, i};
    assert_cgr_ok(rt, cgr__be_host_func(TEST_BE(rt), TEST_MAIN(rt),
                                        append_entry, &entries[i]));
  }
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
  assert_int_equal(log.count, 200);
  for (int i = 0; i < 200; ++i)
    assert_int_equal(log.entries[i], i);
}

static void test_two_streams_really_run_at_once(void **state) {
  cgr_test_require_host(); /* CUDA may run host functions on one thread */
  cgr_runtime *rt = cgr_test_runtime(state);
  /* A waits until B has answered, B answers only once A has started: this
   * completes only if the two streams run at the same time. */
  handshake h = {.a_saw_b = 0};
  test_gate_init(&h.a_started);
  test_gate_init(&h.b_answered);
  assert_cgr_ok(rt,
                cgr__be_host_func(TEST_BE(rt), TEST_MAIN(rt), handshake_a, &h));
  assert_cgr_ok(rt,
                cgr__be_host_func(TEST_BE(rt), TEST_SIDE(rt), handshake_b, &h));
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_int_equal(h.a_saw_b, 1);
  test_gate_fini(&h.a_started);
  test_gate_fini(&h.b_answered);
}

static void test_event_orders_work_across_streams(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  test_gate gate;
  test_gate_init(&gate);
  shared_value shared = {0, 0};
  cgr__event *event = NULL;
  assert_cgr_ok(rt, cgr__be_event_create(be, 0, &event));
  /* Main: held at the gate, then writes and records. Side: waits for the
   * record, then reads. The gate opens only after everything is enqueued,
   * so without the event the side stream would read first. */
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), test_gate_hold_stream,
                                      &gate));
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), write_value, &shared));
  assert_cgr_ok(rt, cgr__be_event_record(be, event, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_stream_wait_event(be, TEST_SIDE(rt), event));
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_SIDE(rt), read_value, &shared));
  usleep(20000);
  test_gate_open(&gate);
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_int_equal(shared.observed, 42);
  cgr__be_event_destroy(be, event);
  test_gate_fini(&gate);
}

static void test_missing_wait_is_a_real_race(void **state) {
  cgr_test_require_host();
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  test_gate gate;
  test_gate_init(&gate);
  shared_value shared = {0, -1};
  /* The same work without the wait: the side stream runs ahead of the held
   * main stream. A backend that secretly serialized streams would hang here
   * (caught by the gate's timeout) or read 42. */
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), test_gate_hold_stream,
                                      &gate));
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), write_value, &shared));
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_SIDE(rt), read_value, &shared));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_SIDE(rt)));
  assert_int_equal(shared.observed, 0);
  test_gate_open(&gate);
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_int_equal(shared.value, 42);
  test_gate_fini(&gate);
}

static void test_event_query_and_synchronize(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  test_gate gate;
  test_gate_init(&gate);
  cgr__event *event = NULL;
  assert_cgr_ok(rt, cgr__be_event_create(be, 0, &event));
  /* Never recorded: complete, as in CUDA. */
  assert_cgr_ok(rt, cgr__be_event_query(be, event));
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), test_gate_hold_stream,
                                      &gate));
  assert_cgr_ok(rt, cgr__be_event_record(be, event, TEST_MAIN(rt)));
  assert_cgr_status(rt, cgr__be_event_query(be, event), CGR_E_NOT_READY);
  test_gate_open(&gate);
  assert_cgr_ok(rt, cgr__be_event_synchronize(be, event));
  assert_cgr_ok(rt, cgr__be_event_query(be, event));
  cgr__be_event_destroy(be, event);
  test_gate_fini(&gate);
}

static void test_wait_on_never_recorded_event_does_not_block(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  cgr__event *event = NULL;
  order_log log = {.count = 0};
  order_entry entry = {&log, 7};
  assert_cgr_ok(rt, cgr__be_event_create(be, 0, &event));
  assert_cgr_ok(rt, cgr__be_stream_wait_event(be, TEST_MAIN(rt), event));
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), append_entry, &entry));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
  assert_int_equal(log.count, 1);
  cgr__be_event_destroy(be, event);
}

static void sleep_20ms(void *user) {
  (void)user;
  usleep(20000);
}

static void test_timing_events_measure_elapsed_time(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  cgr__event *start = NULL, *end = NULL, *plain = NULL;
  assert_cgr_ok(rt, cgr__be_event_create(be, 1, &start));
  assert_cgr_ok(rt, cgr__be_event_create(be, 1, &end));
  assert_cgr_ok(rt, cgr__be_event_create(be, 0, &plain));
  assert_cgr_ok(rt, cgr__be_event_record(be, start, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), sleep_20ms, NULL));
  assert_cgr_ok(rt, cgr__be_event_record(be, end, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_event_record(be, plain, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_event_synchronize(be, end));
  float ms = 0.0f;
  assert_cgr_ok(rt, cgr__be_event_elapsed_ms(be, start, end, &ms));
  assert_true(ms >= 15.0f);
  assert_true(ms < 5000.0f);
  /* An event made without timing cannot be timed. */
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
  assert_true(cgr__be_event_elapsed_ms(be, start, plain, &ms) != CGR_OK);
  cgr__be_event_destroy(be, start);
  cgr__be_event_destroy(be, end);
  cgr__be_event_destroy(be, plain);
}

static void test_device_memory_copies_and_memsets(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  enum { N = 4096 };
  unsigned char *device_a = NULL, *device_b = NULL, *pinned = NULL;
  unsigned char host[N];
  assert_cgr_ok(rt, cgr__be_device_alloc(be, N, (void **)&device_a));
  assert_cgr_ok(rt, cgr__be_device_alloc(be, N, (void **)&device_b));
  assert_cgr_ok(rt, cgr__be_pinned_alloc(be, N, (void **)&pinned));
  assert_true(((uintptr_t)device_a % 256) == 0);
  for (int i = 0; i < N; ++i)
    host[i] = (unsigned char)(i * 7 + 3);
  /* pageable host → device → device, a memset over the middle, → pinned */
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), device_a, host, N));
  assert_cgr_ok(rt,
                cgr__be_memcpy_async(be, TEST_MAIN(rt), device_b, device_a, N));
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_MAIN(rt), device_b + 100,
                                         0xEE, 1000));
  assert_cgr_ok(rt,
                cgr__be_memcpy_async(be, TEST_MAIN(rt), pinned, device_b, N));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
  for (int i = 0; i < N; ++i) {
    unsigned char want = (i >= 100 && i < 1100) ? 0xEE : host[i];
    if (pinned[i] != want)
      fail_msg("byte %d is 0x%02x, expected 0x%02x", i, pinned[i], want);
  }
  cgr__be_device_free(be, device_a);
  cgr__be_device_free(be, device_b);
  cgr__be_pinned_free(be, pinned);
}

static void test_zero_byte_allocation_is_rejected(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  void *ptr = (void *)1;
  assert_cgr_status(rt, cgr__be_device_alloc(TEST_BE(rt), 0, &ptr),
                    CGR_E_INVALID_ARGUMENT);
  assert_null(ptr);
  assert_last_error_contains(rt, "'bytes'");
}

static void test_registered_kernels_run(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  enum { N = 10000 };
  int32_t *a = NULL, *b = NULL, *pinned = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, N * sizeof(int32_t), (void **)&a));
  assert_cgr_ok(rt, cgr__be_device_alloc(be, N * sizeof(int32_t), (void **)&b));
  assert_cgr_ok(rt, cgr__be_pinned_alloc(be, N * sizeof(int32_t),
                                         (void **)&pinned));
  cgr__arange_i32_args arange_a = {a, N, 5, 3};
  cgr__arange_i32_args arange_b = {b, N, -1000, -2};
  cgr__add_i32_args add = {a, a, b, N};
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &arange_a));
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &arange_b));
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_add_i32, &add));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), pinned, a,
                                         N * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
  for (int32_t i = 0; i < N; ++i)
    assert_int_equal(pinned[i], (5 + 3 * i) + (-1000 - 2 * i));
  cgr__be_device_free(be, a);
  cgr__be_device_free(be, b);
  cgr__be_pinned_free(be, pinned);
}

static void test_kernel_arguments_are_copied_at_launch(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  test_gate gate;
  test_gate_init(&gate);
  int32_t *device = NULL, *pinned = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, 64 * sizeof(int32_t),
                                         (void **)&device));
  assert_cgr_ok(rt, cgr__be_pinned_alloc(be, 64 * sizeof(int32_t),
                                         (void **)&pinned));
  /* Hold the stream, launch, then scribble on the arguments: the kernel
   * must see what was passed at launch, as CUDA's by-value parameters. */
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), test_gate_hold_stream,
                                      &gate));
  cgr__arange_i32_args args = {device, 64, 100, 1};
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &args));
  args.start = -1;
  args.count = 0;
  test_gate_open(&gate);
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), pinned, device,
                                         64 * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
  for (int i = 0; i < 64; ++i)
    assert_int_equal(pinned[i], 100 + i);
  cgr__be_device_free(be, device);
  cgr__be_pinned_free(be, pinned);
  test_gate_fini(&gate);
}

static void test_null_arguments_are_rejected_by_name(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  int byte = 0;
  assert_cgr_status(rt, cgr__be_memcpy_async(be, NULL, &byte, &byte, 1),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "'stream'");
  assert_cgr_status(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), NULL, &byte, 1),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "'dst'");
  assert_cgr_status(rt,
                    cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_add_i32, NULL),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "'args'");
  assert_cgr_status(rt, cgr__be_host_func(be, TEST_MAIN(rt), NULL, NULL),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "'fn'");
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_stream_runs_work_in_fifo_order),
    HOST_RUNTIME_TEST(test_two_streams_really_run_at_once),
    RUNTIME_TEST(test_event_orders_work_across_streams),
    HOST_RUNTIME_TEST(test_missing_wait_is_a_real_race),
    RUNTIME_TEST(test_event_query_and_synchronize),
    RUNTIME_TEST(test_wait_on_never_recorded_event_does_not_block),
    RUNTIME_TEST(test_timing_events_measure_elapsed_time),
    RUNTIME_TEST(test_device_memory_copies_and_memsets),
    RUNTIME_TEST(test_zero_byte_allocation_is_rejected),
    RUNTIME_TEST(test_registered_kernels_run),
    RUNTIME_TEST(test_kernel_arguments_are_copied_at_launch),
    RUNTIME_TEST(test_null_arguments_are_rejected_by_name),
};

CGR_TEST_MAIN(tests)
