/* Stream capture and graphs: a captured step replays like the eager one,
 * and what CUDA forbids during capture is rejected the same way. */
#include <string.h>

#include "harness.h"
#include "kernels/basic.h"

enum { N = 3000 };

/* A step-shaped sequence: inputs in `in`, work in `scratch`, result in
 * `out`. Several kernels, a memset and copies, all on one stream. */
typedef struct step_buffers {
  int32_t *in;      /* device: N inputs */
  int32_t *scratch; /* device: N */
  int32_t *out;     /* device: N */
} step_buffers;

static cgr_status enqueue_step(cgr__backend *be, cgr__stream *stream,
                               const step_buffers *b) {
  cgr__arange_i32_args arange = {b->scratch, N, 10, 7};
  cgr__add_i32_args add_in = {b->scratch, b->scratch, b->in, N};
  cgr__add_i32_args twice = {b->out, b->scratch, b->scratch, N};
  CGR__CHECK(cgr__be_memset_async(be, stream, b->out, 0, N * sizeof(int32_t)));
  CGR__CHECK(
      cgr__be_kernel_launch(be, stream, &cgr__kernel_arange_i32, &arange));
  CGR__CHECK(cgr__be_kernel_launch(be, stream, &cgr__kernel_add_i32, &add_in));
  CGR__CHECK(cgr__be_kernel_launch(be, stream, &cgr__kernel_add_i32, &twice));
  /* The last 10 results are overwritten by the first 10 inputs. */
  return cgr__be_memcpy_async(be, stream, b->out + N - 10, b->in,
                              10 * sizeof(int32_t));
}

static int32_t expected(const int32_t *in, int i) {
  if (i >= N - 10)
    return in[i - (N - 10)];
  return 2 * (10 + 7 * i + in[i]);
}

static void alloc_step(cgr_runtime *rt, step_buffers *b) {
  cgr__backend *be = TEST_BE(rt);
  assert_cgr_ok(rt,
                cgr__be_device_alloc(be, N * sizeof(int32_t), (void **)&b->in));
  assert_cgr_ok(rt, cgr__be_device_alloc(be, N * sizeof(int32_t),
                                         (void **)&b->scratch));
  assert_cgr_ok(rt, cgr__be_device_alloc(be, N * sizeof(int32_t),
                                         (void **)&b->out));
}

static void free_step(cgr_runtime *rt, step_buffers *b) {
  cgr__be_device_free(TEST_BE(rt), b->in);
  cgr__be_device_free(TEST_BE(rt), b->scratch);
  cgr__be_device_free(TEST_BE(rt), b->out);
}

static void load_inputs(cgr_runtime *rt, step_buffers *b, int32_t *pinned_in,
                        int seed) {
  for (int i = 0; i < N; ++i)
    pinned_in[i] = (int32_t)((i * 2654435761u + (unsigned)seed) % 100000);
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), b->in,
                                         pinned_in, N * sizeof(int32_t)));
}

static void check_outputs(cgr_runtime *rt, step_buffers *b,
                          const int32_t *pinned_in, int32_t *pinned_out) {
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), pinned_out,
                                         b->out, N * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
  for (int i = 0; i < N; ++i)
    if (pinned_out[i] != expected(pinned_in, i))
      fail_msg("out[%d] = %d, expected %d", i, pinned_out[i],
               expected(pinned_in, i));
}

static void capture_step(cgr_runtime *rt, const step_buffers *b,
                         cgr__graph_exec **exec, size_t *nodes) {
  cgr__backend *be = TEST_BE(rt);
  cgr__graph *graph = NULL;
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_int_equal(cgr__be_stream_is_capturing(be, TEST_MAIN(rt)), 1);
  assert_cgr_ok(rt, enqueue_step(be, TEST_MAIN(rt), b));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  assert_int_equal(cgr__be_stream_is_capturing(be, TEST_MAIN(rt)), 0);
  assert_cgr_ok(rt, cgr__be_graph_node_count(be, graph, nodes));
  assert_cgr_ok(rt, cgr__be_graph_instantiate(be, graph, TEST_MAIN(rt), exec));
  /* The exec owns its own copy: the graph can go at once. */
  cgr__be_graph_destroy(be, graph);
}

static void test_captured_graph_replays_like_eager(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  step_buffers eager, graphed;
  alloc_step(rt, &eager);
  alloc_step(rt, &graphed);
  int32_t *pinned_in = NULL, *pinned_out = NULL;
  assert_cgr_ok(rt, cgr__be_pinned_alloc(be, N * sizeof(int32_t),
                                         (void **)&pinned_in));
  assert_cgr_ok(rt, cgr__be_pinned_alloc(be, N * sizeof(int32_t),
                                         (void **)&pinned_out));

  load_inputs(rt, &eager, pinned_in, 1);
  assert_cgr_ok(rt, enqueue_step(be, TEST_MAIN(rt), &eager));
  check_outputs(rt, &eager, pinned_in, pinned_out);

  cgr__graph_exec *exec = NULL;
  size_t nodes = 0;
  capture_step(rt, &graphed, &exec, &nodes);
  assert_int_equal(nodes, 5);
  /* Each replay reads the inputs as they are at replay time. */
  for (int seed = 1; seed <= 4; ++seed) {
    load_inputs(rt, &graphed, pinned_in, seed);
    assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
    check_outputs(rt, &graphed, pinned_in, pinned_out);
  }
  cgr__be_graph_exec_destroy(be, exec);
  cgr__be_pinned_free(be, pinned_in);
  cgr__be_pinned_free(be, pinned_out);
  free_step(rt, &eager);
  free_step(rt, &graphed);
}

static void test_capture_records_work_without_running_it(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  int32_t *device = NULL, *pinned = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, 64 * sizeof(int32_t),
                                         (void **)&device));
  assert_cgr_ok(rt, cgr__be_pinned_alloc(be, 64 * sizeof(int32_t),
                                         (void **)&pinned));
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_MAIN(rt), device, 0,
                                         64 * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));

  cgr__graph *graph = NULL;
  cgr__arange_i32_args args = {device, 64, 1, 1};
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &args));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  /* Captured, not run: the memory still holds the zeros. */
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), pinned, device,
                                         64 * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
  for (int i = 0; i < 64; ++i)
    assert_int_equal(pinned[i], 0);
  cgr__be_graph_destroy(be, graph);
  cgr__be_device_free(be, device);
  cgr__be_pinned_free(be, pinned);
}

static void test_launches_of_one_exec_are_ordered(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  enum { M = 1 << 15 };
  int32_t *acc = NULL, *one = NULL, *pinned = NULL;
  assert_cgr_ok(rt,
                cgr__be_device_alloc(be, M * sizeof(int32_t), (void **)&acc));
  assert_cgr_ok(rt,
                cgr__be_device_alloc(be, M * sizeof(int32_t), (void **)&one));
  assert_cgr_ok(rt, cgr__be_pinned_alloc(be, M * sizeof(int32_t),
                                         (void **)&pinned));
  cgr__arange_i32_args ones = {one, M, 1, 0};
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &ones));
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_MAIN(rt), acc, 0,
                                         M * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));

  /* acc += 1, captured once, launched 50 times alternating between two
   * streams with no event between them: only the exec's own ordering keeps
   * the read-modify-writes from overlapping. */
  cgr__graph *graph = NULL;
  cgr__graph_exec *exec = NULL;
  cgr__add_i32_args increment = {acc, acc, one, M};
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_add_i32, &increment));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  assert_cgr_ok(rt, cgr__be_graph_instantiate(be, graph, NULL, &exec));
  cgr__be_graph_destroy(be, graph);
  for (int i = 0; i < 50; ++i)
    assert_cgr_ok(rt,
                  cgr__be_graph_launch(be, exec,
                                       i % 2 ? TEST_SIDE(rt) : TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), pinned, acc,
                                         M * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
  for (int i = 0; i < M; ++i)
    if (pinned[i] != 50)
      fail_msg("acc[%d] = %d after 50 ordered launches", i, pinned[i]);
  cgr__be_graph_exec_destroy(be, exec);
  cgr__be_device_free(be, acc);
  cgr__be_device_free(be, one);
  cgr__be_pinned_free(be, pinned);
}

/* Ends a capture that something illegal invalidated, and proves the stream
 * captures fine afterwards. */
static void expect_invalidated_then_recover(cgr_runtime *rt) {
  cgr__backend *be = TEST_BE(rt);
  cgr__graph *graph = (cgr__graph *)rt; /* must come back NULL */
  assert_cgr_status(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph),
                    CGR_E_CAPTURE);
  assert_null(graph);
  assert_int_equal(cgr__be_stream_is_capturing(be, TEST_MAIN(rt)), 0);
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  assert_non_null(graph);
  cgr__be_graph_destroy(be, graph);
  assert_cgr_ok(rt, cgr_synchronize(rt));
}

static void test_synchronizing_during_capture_is_rejected(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_status(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)),
                    CGR_E_CAPTURE);
  expect_invalidated_then_recover(rt);
}

static void test_allocating_during_capture_is_rejected(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  void *memory = NULL;
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_status(rt, cgr__be_device_alloc(be, 1024, &memory), CGR_E_CAPTURE);
  assert_null(memory);
  expect_invalidated_then_recover(rt);
}

static void
test_waiting_on_an_outside_event_during_capture_is_rejected(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  cgr__event *outside = NULL;
  assert_cgr_ok(rt, cgr__be_event_create(be, 0, &outside));
  assert_cgr_ok(rt, cgr__be_event_record(be, outside, TEST_SIDE(rt)));
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_status(rt, cgr__be_stream_wait_event(be, TEST_MAIN(rt), outside),
                    CGR_E_CAPTURE);
  expect_invalidated_then_recover(rt);
  cgr__be_event_destroy(be, outside);
}

static void
test_launching_a_graph_into_a_capturing_stream_is_rejected(void **state) {
  cgr_test_require_host(); /* recent CUDA may capture it as a child graph */
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  cgr__graph *graph = NULL;
  cgr__graph_exec *exec = NULL;
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  assert_cgr_ok(rt, cgr__be_graph_instantiate(be, graph, NULL, &exec));
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_status(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)),
                    CGR_E_CAPTURE);
  expect_invalidated_then_recover(rt);
  cgr__be_graph_exec_destroy(be, exec);
  cgr__be_graph_destroy(be, graph);
}

/* What CUDA documents of a failed call during a capture: the call fails;
 * whether it invalidated the capture, where CUDA does not say, is left
 * open on CUDA and is invalidation on the host backend (the stricter
 * reading of the programming guide's rule that an invalid operation during
 * capture invalidates it). Either way, ending the capture takes the stream
 * out of capture mode, a failed end returns no graph, and the stream
 * captures fine afterwards. */
static void end_after_misuse_then_recover(cgr_runtime *rt) {
  cgr__backend *be = TEST_BE(rt);
  if (cgr_test_backend == CGR_BACKEND_HOST) {
    expect_invalidated_then_recover(rt);
    return;
  }
  cgr__graph *graph = (cgr__graph *)rt; /* set either way */
  cgr_status status = cgr__be_capture_end(be, TEST_MAIN(rt), &graph);
  if (status != CGR_OK) {
    assert_cgr_status(rt, status, CGR_E_CAPTURE);
    assert_null(graph);
  }
  cgr__be_graph_destroy(be, graph);
  assert_int_equal(cgr__be_stream_is_capturing(be, TEST_MAIN(rt)), 0);
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  assert_non_null(graph);
  cgr__be_graph_destroy(be, graph);
  assert_cgr_ok(rt, cgr_synchronize(rt));
}

static void test_capture_misuse_is_rejected(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  cgr__graph *graph = (cgr__graph *)rt; /* must come back NULL */
  /* Ending a capture that never began (cudaStreamEndCapture: "Capture must
   * have been initiated on stream"). */
  assert_cgr_status(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph),
                    CGR_E_CAPTURE);
  assert_null(graph);
  /* Beginning twice (cudaStreamBeginCapture: capture "may only be
   * initiated if the stream is not already in capture mode"). */
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  cgr_status second = cgr__be_capture_begin(be, TEST_MAIN(rt));
  if (second == CGR_OK)
    fail_msg("a second capture began on a capturing stream");
  if (cgr_test_backend == CGR_BACKEND_HOST)
    assert_cgr_status(rt, second, CGR_E_CAPTURE);
  end_after_misuse_then_recover(rt);
}

static void
test_querying_a_captured_event_invalidates_the_capture(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  cgr__event *inside = NULL;
  assert_cgr_ok(rt, cgr__be_event_create(be, 0, &inside));
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_event_record(be, inside, TEST_MAIN(rt)));
  /* Waiting on it from inside the same capture is fine. */
  assert_cgr_ok(rt, cgr__be_stream_wait_event(be, TEST_MAIN(rt), inside));
  /* Asking the host about it is not: CUDA calls querying a captured event
   * invalid, and an invalid operation invalidates the capture, which then
   * ends with an error and no graph. That the query itself fails is all
   * CUDA says of its status (cudaErrorCapturedEvent on the host backend). */
  cgr_status query = cgr__be_event_query(be, inside);
  if (query == CGR_OK || query == CGR_E_NOT_READY)
    fail_msg("querying an event recorded in the capture returned %s",
             cgr_status_name(query));
  if (cgr_test_backend == CGR_BACKEND_HOST)
    assert_cgr_status(rt, query, CGR_E_CAPTURE);
  expect_invalidated_then_recover(rt);
  cgr__be_event_destroy(be, inside);
}

/* A launch keeps its exec: cuGraphExecDestroy, "If the executable graph is
 * in-flight, it will not be terminated, but rather freed asynchronously on
 * completion". Destroy returns at once, and the launch runs in full. */
static void test_exec_destroyed_while_launch_pending(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  enum { M = 64, DESTROY_LIMIT_US = 5000000 };
  test_gate gate;
  test_gate_init(&gate);
  int32_t *device = NULL, *pinned = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, M * sizeof(int32_t),
                                         (void **)&device));
  assert_cgr_ok(rt, cgr__be_pinned_alloc(be, M * sizeof(int32_t),
                                         (void **)&pinned));
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_MAIN(rt), device, 0,
                                         M * sizeof(int32_t)));
  cgr__graph *graph = NULL;
  cgr__graph_exec *exec = NULL;
  cgr__event *after = NULL;
  cgr__arange_i32_args args = {device, M, 0, 1};
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &args));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  assert_cgr_ok(rt, cgr__be_graph_instantiate(be, graph, NULL, &exec));
  cgr__be_graph_destroy(be, graph);
  assert_cgr_ok(rt, cgr__be_event_create(be, 0, &after));
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), test_gate_hold_stream,
                                      &gate));
  assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_event_record(be, after, TEST_MAIN(rt)));
  uint64_t began = cgr_clock_us();
  cgr__be_graph_exec_destroy(be, exec);
  uint64_t took = cgr_clock_us() - began;
  /* The launch was still queued behind the gate when the exec went. */
  assert_cgr_status(rt, cgr__be_event_query(be, after), CGR_E_NOT_READY);
  test_gate_open(&gate);
  if (took > DESTROY_LIMIT_US)
    fail_msg("destroying the exec took %llu us: it waited for the launch",
             (unsigned long long)took);
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), pinned, device,
                                         M * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
  for (int i = 0; i < M; ++i)
    if (pinned[i] != i)
      fail_msg("out[%d] = %d after the destroyed exec's launch", i, pinned[i]);
  cgr__be_event_destroy(be, after);
  cgr__be_pinned_free(be, pinned);
  cgr__be_device_free(be, device);
  test_gate_fini(&gate);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_captured_graph_replays_like_eager),
    RUNTIME_TEST(test_capture_records_work_without_running_it),
    RUNTIME_TEST(test_launches_of_one_exec_are_ordered),
    RUNTIME_TEST(test_synchronizing_during_capture_is_rejected),
    RUNTIME_TEST(test_allocating_during_capture_is_rejected),
    RUNTIME_TEST(test_waiting_on_an_outside_event_during_capture_is_rejected),
    HOST_RUNTIME_TEST(
        test_launching_a_graph_into_a_capturing_stream_is_rejected),
    RUNTIME_TEST(test_capture_misuse_is_rejected),
    RUNTIME_TEST(test_querying_a_captured_event_invalidates_the_capture),
    RUNTIME_TEST(test_exec_destroyed_while_launch_pending),
};

CGR_TEST_MAIN(tests)
