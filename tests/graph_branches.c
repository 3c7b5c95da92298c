/* Graphs with branches: a capture that forks a second stream in (a record
 * on the capturing stream, a wait on the other) and joins it back (the
 * reverse), as CUDA captures one; what CUDA rejects of such a capture; and
 * replays that run the branches at once, each node after the nodes it
 * depends on. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "kernels/basic.h"
#include "runtime/fault.h"
#include "runtime/host/host.h"

enum { N = 4096, REPLAYS = 50, GATE_TIMEOUT_MS = 5000 };

/* ---- helpers ------------------------------------------------------------- */

/* Later work on `to` depends on the work on `from` so far: a fork into a
 * capture, or a join back. */
static void link_streams(cgr_runtime *rt, cgr__event *event, cgr__stream *from,
                         cgr__stream *to) {
  assert_cgr_ok(rt, cgr__be_event_record(TEST_BE(rt), event, from));
  assert_cgr_ok(rt, cgr__be_stream_wait_event(TEST_BE(rt), to, event));
}

static cgr__event *event_new(cgr_runtime *rt) {
  cgr__event *event = NULL;
  assert_cgr_ok(rt, cgr__be_event_create(TEST_BE(rt), 0, &event));
  return event;
}

static int32_t *device_new(cgr_runtime *rt, size_t count) {
  int32_t *device = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(TEST_BE(rt), count * sizeof(int32_t),
                                         (void **)&device));
  return device;
}

static int32_t *pinned_new(cgr_runtime *rt, size_t count) {
  int32_t *pinned = NULL;
  assert_cgr_ok(rt, cgr__be_pinned_alloc(TEST_BE(rt), count * sizeof(int32_t),
                                         (void **)&pinned));
  return pinned;
}

static void add_on(cgr_runtime *rt, cgr__stream *stream, int32_t *dst,
                   const int32_t *a, const int32_t *b, int64_t count) {
  cgr__add_i32_args add = {dst, a, b, count};
  assert_cgr_ok(rt, cgr__be_kernel_launch(TEST_BE(rt), stream,
                                          &cgr__kernel_add_i32, &add));
}

static cgr__graph_exec *instantiate(cgr_runtime *rt, cgr__graph *graph) {
  cgr__graph_exec *exec = NULL;
  assert_cgr_ok(rt, cgr__be_graph_instantiate(TEST_BE(rt), graph, NULL, &exec));
  return exec;
}

/* After a capture that failed: neither stream captures, each captures and
 * runs work again. */
static void expect_streams_recovered(cgr_runtime *rt) {
  cgr__backend *be = TEST_BE(rt);
  cgr__stream *streams[2] = {TEST_MAIN(rt), TEST_SIDE(rt)};
  int32_t *device = device_new(rt, 16);
  for (int s = 0; s < 2; ++s) {
    assert_int_equal(cgr__be_stream_is_capturing(be, streams[s]), 0);
    cgr__graph *graph = NULL;
    assert_cgr_ok(rt, cgr__be_capture_begin(be, streams[s]));
    assert_cgr_ok(rt, cgr__be_memset_async(be, streams[s], device, 0, 64));
    assert_cgr_ok(rt, cgr__be_capture_end(be, streams[s], &graph));
    assert_non_null(graph);
    cgr__be_graph_destroy(be, graph);
    assert_cgr_ok(rt, cgr__be_memset_async(be, streams[s], device, 1, 64));
    assert_cgr_ok(rt, cgr__be_stream_synchronize(be, streams[s]));
  }
  assert_cgr_ok(rt, cgr_synchronize(rt));
  cgr__be_device_free(be, device);
}

/* Ends a capture that must fail: no graph, neither stream capturing. */
static void expect_end_fails(cgr_runtime *rt) {
  cgr__graph *graph = (cgr__graph *)rt; /* must come back NULL */
  assert_cgr_status(rt, cgr__be_capture_end(TEST_BE(rt), TEST_MAIN(rt), &graph),
                    CGR_E_CAPTURE);
  assert_null(graph);
  assert_int_equal(cgr__be_stream_is_capturing(TEST_BE(rt), TEST_MAIN(rt)), 0);
  assert_int_equal(cgr__be_stream_is_capturing(TEST_BE(rt), TEST_SIDE(rt)), 0);
}

/* ---- a fork/join step: out = (a + in) + (a + a) with a = in + in --------- */

typedef struct diamond {
  int32_t *in, *a, *b, *c, *out; /* device, N each */
  cgr__event *fork, *join;
} diamond;

static void diamond_alloc(cgr_runtime *rt, diamond *d) {
  d->in = device_new(rt, N);
  d->a = device_new(rt, N);
  d->b = device_new(rt, N);
  d->c = device_new(rt, N);
  d->out = device_new(rt, N);
  d->fork = event_new(rt);
  d->join = event_new(rt);
}

static void diamond_free(cgr_runtime *rt, diamond *d) {
  int32_t *buffers[5] = {d->in, d->a, d->b, d->c, d->out};
  for (int i = 0; i < 5; ++i)
    cgr__be_device_free(TEST_BE(rt), buffers[i]);
  cgr__be_event_destroy(TEST_BE(rt), d->fork);
  cgr__be_event_destroy(TEST_BE(rt), d->join);
}

/* Nodes in capture order: 0 a (main), 1 b (side), 2 c (main), 3 out
 * (main, after the join). */
static cgr__graph *diamond_capture(cgr_runtime *rt, diamond *d) {
  cgr__backend *be = TEST_BE(rt);
  cgr__graph *graph = NULL;
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  add_on(rt, TEST_MAIN(rt), d->a, d->in, d->in, N);
  link_streams(rt, d->fork, TEST_MAIN(rt), TEST_SIDE(rt));
  assert_int_equal(cgr__be_stream_is_capturing(be, TEST_SIDE(rt)), 1);
  add_on(rt, TEST_SIDE(rt), d->b, d->a, d->in, N);
  add_on(rt, TEST_MAIN(rt), d->c, d->a, d->a, N);
  link_streams(rt, d->join, TEST_SIDE(rt), TEST_MAIN(rt));
  add_on(rt, TEST_MAIN(rt), d->out, d->b, d->c, N);
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  assert_non_null(graph);
  assert_int_equal(cgr__be_stream_is_capturing(be, TEST_MAIN(rt)), 0);
  assert_int_equal(cgr__be_stream_is_capturing(be, TEST_SIDE(rt)), 0);
  return graph;
}

/* ---- host functions ---------------------------------------------------- */

/* A and B each wait for the other: both finish only if they run at once. */
typedef struct handshake {
  test_gate a_started;
  test_gate b_answered;
  int a_saw_b;
  pthread_t a_thread, b_thread;
} handshake;

static void handshake_a(void *user) {
  handshake *h = user;
  h->a_thread = pthread_self();
  test_gate_open(&h->a_started);
  h->a_saw_b = test_gate_wait(&h->b_answered, GATE_TIMEOUT_MS);
}

static void handshake_b(void *user) {
  handshake *h = user;
  h->b_thread = pthread_self();
  if (test_gate_wait(&h->a_started, GATE_TIMEOUT_MS))
    test_gate_open(&h->b_answered);
}

static void note_thread(void *user) { *(pthread_t *)user = pthread_self(); }

/* A slow writer on one branch and a reader on another. */
typedef struct relay {
  int value;
  int round;
  int observed[REPLAYS];
} relay;

static void relay_write(void *user) {
  relay *r = user;
  usleep(2000); /* without the dependency, the reader gets here first */
  r->value++;
}

static void relay_read(void *user) {
  relay *r = user;
  r->observed[r->round] = r->value;
}

/* Which node ran, on which thread, in what order. */
typedef struct run_log {
  pthread_mutex_t lock;
  int count;
  int order[16];
  pthread_t thread[16];
} run_log;

typedef struct log_entry {
  run_log *log;
  int node;
} log_entry;

static void log_node(void *user) {
  log_entry *entry = user;
  pthread_mutex_lock(&entry->log->lock);
  int at = entry->log->count++;
  if (at < 16) {
    entry->log->order[at] = entry->node;
    entry->log->thread[at] = pthread_self();
  }
  pthread_mutex_unlock(&entry->log->lock);
}

/* ---- tests --------------------------------------------------------------- */

static void test_fork_join_capture_replays_right(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  diamond d;
  diamond_alloc(rt, &d);
  int32_t *pinned_in = pinned_new(rt, N);
  int32_t *pinned_out = pinned_new(rt, N);
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_MAIN(rt), d.out, 0,
                                         N * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr_synchronize(rt));

  cgr__graph *graph = diamond_capture(rt, &d);
  size_t nodes = 0;
  assert_cgr_ok(rt, cgr__be_graph_node_count(be, graph, &nodes));
  assert_int_equal(nodes, 4);
  /* Captured, not run, on either stream. */
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), pinned_out, d.out,
                                         N * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr_synchronize(rt));
  for (int i = 0; i < N; ++i)
    assert_int_equal(pinned_out[i], 0);

  cgr__graph_exec *exec = instantiate(rt, graph);
  cgr__be_graph_destroy(be, graph);
  for (int replay = 0; replay < REPLAYS; ++replay) {
    for (int i = 0; i < N; ++i)
      pinned_in[i] = (i * 31 + replay * 7) % 1000;
    assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), d.in, pinned_in,
                                           N * sizeof(int32_t)));
    assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
    assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), pinned_out, d.out,
                                           N * sizeof(int32_t)));
    assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
    for (int i = 0; i < N; ++i)
      if (pinned_out[i] != 7 * pinned_in[i])
        fail_msg("replay %d: out[%d] = %d, expected %d", replay, i,
                 pinned_out[i], 7 * pinned_in[i]);
  }
  cgr__be_graph_exec_destroy(be, exec);
  cgr__be_pinned_free(be, pinned_in);
  cgr__be_pinned_free(be, pinned_out);
  diamond_free(rt, &d);
}

static void test_branches_really_run_at_once(void **state) {
  cgr_test_require_host(); /* CUDA may run host nodes on one thread */
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  cgr__event *fork = event_new(rt), *join = event_new(rt);
  handshake h;
  memset(&h, 0, sizeof h);
  cgr__graph *graph = NULL;
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  link_streams(rt, fork, TEST_MAIN(rt), TEST_SIDE(rt));
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), handshake_a, &h));
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_SIDE(rt), handshake_b, &h));
  link_streams(rt, join, TEST_SIDE(rt), TEST_MAIN(rt));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  cgr__graph_exec *exec = instantiate(rt, graph);
  cgr__be_graph_destroy(be, graph);

  pthread_t main_worker;
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), note_thread,
                                      &main_worker));
  for (int replay = 0; replay < 10; ++replay) {
    test_gate_init(&h.a_started);
    test_gate_init(&h.b_answered);
    h.a_saw_b = 0;
    assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
    assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
    if (!h.a_saw_b)
      fail_msg("replay %d: the two branches did not run at once", replay);
    /* The origin's branch runs on the launching worker, the other one
     * beside it. */
    assert_true(pthread_equal(h.a_thread, main_worker));
    assert_false(pthread_equal(h.b_thread, main_worker));
    test_gate_fini(&h.a_started);
    test_gate_fini(&h.b_answered);
  }
  cgr__be_graph_exec_destroy(be, exec);
  cgr__be_event_destroy(be, fork);
  cgr__be_event_destroy(be, join);
}

static void test_dependency_across_branches_orders_work(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  cgr__event *fork = event_new(rt), *written = event_new(rt),
             *join = event_new(rt);
  relay r;
  memset(&r, 0, sizeof r);
  /* The side branch forks before main's writer, then waits for it: only
   * that wait orders the read after the write. */
  cgr__graph *graph = NULL;
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  link_streams(rt, fork, TEST_MAIN(rt), TEST_SIDE(rt));
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), relay_write, &r));
  link_streams(rt, written, TEST_MAIN(rt), TEST_SIDE(rt));
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_SIDE(rt), relay_read, &r));
  link_streams(rt, join, TEST_SIDE(rt), TEST_MAIN(rt));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  cgr__graph_exec *exec = instantiate(rt, graph);
  cgr__be_graph_destroy(be, graph);
  for (int replay = 0; replay < REPLAYS; ++replay) {
    r.round = replay;
    assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
    assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
    if (r.observed[replay] != replay + 1)
      fail_msg("replay %d: the reader saw %d, expected %d", replay,
               r.observed[replay], replay + 1);
  }
  cgr__be_graph_exec_destroy(be, exec);
  cgr__be_event_destroy(be, fork);
  cgr__be_event_destroy(be, written);
  cgr__be_event_destroy(be, join);
}

static void test_launches_of_a_branched_exec_are_ordered(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  enum { M = 1 << 15, HALF = M / 2 };
  int32_t *acc = device_new(rt, M), *one = device_new(rt, M);
  int32_t *pinned = pinned_new(rt, M);
  cgr__event *fork = event_new(rt), *join = event_new(rt);
  cgr__arange_i32_args ones = {one, M, 1, 0};
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &ones));
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_MAIN(rt), acc, 0,
                                         M * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr_synchronize(rt));
  /* Each branch adds one to its half; 50 launches alternate between the
   * streams with no event between them: only the exec's own ordering keeps
   * a launch's branches from overlapping the previous launch's. */
  cgr__graph *graph = NULL;
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  link_streams(rt, fork, TEST_MAIN(rt), TEST_SIDE(rt));
  add_on(rt, TEST_MAIN(rt), acc, acc, one, HALF);
  add_on(rt, TEST_SIDE(rt), acc + HALF, acc + HALF, one, HALF);
  link_streams(rt, join, TEST_SIDE(rt), TEST_MAIN(rt));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  cgr__graph_exec *exec = instantiate(rt, graph);
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
  cgr__be_event_destroy(be, fork);
  cgr__be_event_destroy(be, join);
  cgr__be_device_free(be, acc);
  cgr__be_device_free(be, one);
  cgr__be_pinned_free(be, pinned);
}

static void test_unjoined_fork_fails_at_end(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  int32_t *device = device_new(rt, 16);
  int32_t *pinned = pinned_new(rt, 16);
  cgr__event *fork = event_new(rt);
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_MAIN(rt), device, 0, 64));
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_MAIN(rt), device, 0, 32));
  link_streams(rt, fork, TEST_MAIN(rt), TEST_SIDE(rt));
  assert_cgr_ok(rt,
                cgr__be_memset_async(be, TEST_SIDE(rt), device + 8, 0x5A, 32));
  /* No join: main's end does not depend on the side's memset. */
  expect_end_fails(rt);
  assert_last_error_contains(rt, "cudaErrorStreamCaptureUnjoined");
  if (cgr_test_backend == CGR_BACKEND_HOST)
    assert_last_error_contains(rt, "'cgr side'");
  /* The side's captured work never ran. */
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_cgr_ok(rt,
                cgr__be_memcpy_async(be, TEST_MAIN(rt), pinned, device, 64));
  assert_cgr_ok(rt, cgr_synchronize(rt));
  for (int i = 0; i < 16; ++i)
    assert_int_equal(pinned[i], 0);
  expect_streams_recovered(rt);
  cgr__be_event_destroy(be, fork);
  cgr__be_device_free(be, device);
  cgr__be_pinned_free(be, pinned);
}

static void test_ending_on_the_joined_stream_fails(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  int32_t *device = device_new(rt, 16);
  cgr__event *fork = event_new(rt);
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  link_streams(rt, fork, TEST_MAIN(rt), TEST_SIDE(rt));
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_SIDE(rt), device, 0, 64));
  cgr__graph *graph = (cgr__graph *)rt; /* must come back NULL */
  assert_cgr_status(rt, cgr__be_capture_end(be, TEST_SIDE(rt), &graph),
                    CGR_E_CAPTURE);
  assert_null(graph);
  assert_last_error_contains(rt, "cudaErrorStreamCaptureUnmatched");
  if (cgr_test_backend == CGR_BACKEND_HOST) {
    /* Still in the capture, which only its origin can end. */
    assert_int_equal(cgr__be_stream_is_capturing(be, TEST_SIDE(rt)), 1);
    expect_end_fails(rt);
    assert_last_error_contains(rt, "invalidated");
  } else {
    expect_end_fails(rt); /* invalidated, or unjoined: never a graph */
  }
  expect_streams_recovered(rt);
  cgr__be_event_destroy(be, fork);
  cgr__be_device_free(be, device);
}

static void test_synchronizing_a_joined_stream_invalidates(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  int32_t *device = device_new(rt, 16);
  cgr__event *fork = event_new(rt), *join = event_new(rt);
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  link_streams(rt, fork, TEST_MAIN(rt), TEST_SIDE(rt));
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_SIDE(rt), device, 0, 64));
  assert_cgr_status(rt, cgr__be_stream_synchronize(be, TEST_SIDE(rt)),
                    CGR_E_CAPTURE);
  /* Joining back fails too, now: the capture is invalid. */
  cgr_status record = cgr__be_event_record(be, join, TEST_SIDE(rt));
  if (cgr_test_backend == CGR_BACKEND_HOST)
    assert_cgr_status(rt, record, CGR_E_CAPTURE);
  if (record == CGR_OK)
    (void)cgr__be_stream_wait_event(be, TEST_MAIN(rt), join);
  expect_end_fails(rt);
  if (cgr_test_backend == CGR_BACKEND_HOST)
    assert_last_error_contains(rt, "synchronizing the capturing stream");
  expect_streams_recovered(rt);
  cgr__be_event_destroy(be, fork);
  cgr__be_event_destroy(be, join);
  cgr__be_device_free(be, device);
}

static void test_an_event_of_another_capture_invalidates(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  int32_t *device = device_new(rt, 16);
  cgr__event *other = event_new(rt);
  /* Two captures at once, one per stream: main may not depend on the
   * side's (CUDA: the captures would merge). */
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_SIDE(rt)));
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_SIDE(rt), device, 0, 64));
  assert_cgr_ok(rt, cgr__be_event_record(be, other, TEST_SIDE(rt)));
  cgr_status wait = cgr__be_stream_wait_event(be, TEST_MAIN(rt), other);
  if (wait == CGR_OK)
    fail_msg("a capture waited on an event recorded in another capture");
  cgr__graph *graph = (cgr__graph *)rt;
  if (cgr_test_backend == CGR_BACKEND_HOST) {
    assert_cgr_status(rt, wait, CGR_E_CAPTURE);
    assert_last_error_contains(rt, "in another capture");
    assert_cgr_status(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph),
                      CGR_E_CAPTURE);
    assert_null(graph);
    /* The other capture is not main's to spoil. */
    assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_SIDE(rt), &graph));
    size_t nodes = 0;
    assert_cgr_ok(rt, cgr__be_graph_node_count(be, graph, &nodes));
    assert_int_equal(nodes, 1);
    cgr__be_graph_destroy(be, graph);
  } else {
    /* What CUDA does to each capture it does not document: end both. */
    for (int s = 0; s < 2; ++s) {
      cgr__stream *stream = s ? TEST_SIDE(rt) : TEST_MAIN(rt);
      graph = NULL;
      if (cgr__be_stream_is_capturing(be, stream) &&
          cgr__be_capture_end(be, stream, &graph) == CGR_OK)
        cgr__be_graph_destroy(be, graph);
    }
  }
  expect_streams_recovered(rt);
  cgr__be_event_destroy(be, other);
  cgr__be_device_free(be, device);
}

/* The step of tests/capture.c: five nodes on one stream, with a record and
 * a wait inside the capture that add nothing. */
static cgr__graph *chain_capture(cgr_runtime *rt, int32_t *in, int32_t *work,
                                 int32_t *out, cgr__event *mark) {
  cgr__backend *be = TEST_BE(rt);
  cgr__graph *graph = NULL;
  cgr__arange_i32_args arange = {work, N, 10, 7};
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_MAIN(rt), out, 0,
                                         N * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &arange));
  link_streams(rt, mark, TEST_MAIN(rt), TEST_MAIN(rt));
  add_on(rt, TEST_MAIN(rt), work, work, in, N);
  add_on(rt, TEST_MAIN(rt), out, work, work, N);
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), out + N - 10, in,
                                         10 * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  return graph;
}

/* What the host backend's dump of the chain said before graphs had
 * branches, byte for byte. */
static const char chain_dot[] =
    "digraph cgr_host_graph {\n"
    "  rankdir=TB;\n"
    "  label=\"host backend graph, 5 nodes\";\n"
    "  n0 [shape=box, label=\"0: memset 16384 B = 0x00\"];\n"
    "  n1 [shape=box, label=\"1: kernel arange_i32\\nargs 24 B\"];\n"
    "  n0 -> n1;\n"
    "  n2 [shape=box, label=\"2: kernel add_i32\\nargs 32 B\"];\n"
    "  n1 -> n2;\n"
    "  n3 [shape=box, label=\"3: kernel add_i32\\nargs 32 B\"];\n"
    "  n2 -> n3;\n"
    "  n4 [shape=box, label=\"4: memcpy 40 B\"];\n"
    "  n3 -> n4;\n"
    "}\n";

static void read_file(const char *path, char *text, size_t size) {
  FILE *file = fopen(path, "r");
  assert_non_null(file);
  size_t got = fread(text, 1, size - 1, file);
  text[got] = '\0';
  fclose(file);
}

static void test_chain_only_graph_behaves_as_before(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  int32_t *in = device_new(rt, N), *work = device_new(rt, N),
          *out = device_new(rt, N);
  int32_t *pinned_in = pinned_new(rt, N), *pinned_out = pinned_new(rt, N);
  cgr__event *mark = event_new(rt);
  cgr__graph *graph = chain_capture(rt, in, work, out, mark);
  size_t nodes = 0;
  assert_cgr_ok(rt, cgr__be_graph_node_count(be, graph, &nodes));
  assert_int_equal(nodes, 5);
  if (cgr_test_backend == CGR_BACKEND_HOST) {
    char path[64], text[2048];
    snprintf(path, sizeof path, "/tmp/cgr_chain_%d.dot", (int)getpid());
    assert_cgr_ok(rt, cgr__be_graph_dump(be, graph, path));
    read_file(path, text, sizeof text);
    unlink(path);
    assert_string_equal(text, chain_dot);
  }
  cgr__graph_exec *exec = instantiate(rt, graph);
  cgr__be_graph_destroy(be, graph);
  pthread_t main_worker, node_thread;
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), note_thread,
                                      &main_worker));
  uint64_t kernels = cgr__be_calls(be, CGR__CALL_KERNEL_LAUNCH);
  uint64_t memsets = cgr__be_calls(be, CGR__CALL_MEMSET);
  uint64_t launches = cgr__be_calls(be, CGR__CALL_GRAPH_LAUNCH);
  for (int replay = 0; replay < 5; ++replay) {
    for (int i = 0; i < N; ++i)
      pinned_in[i] = (i * 13 + replay) % 5000;
    assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), in, pinned_in,
                                           N * sizeof(int32_t)));
    assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
    assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), pinned_out, out,
                                           N * sizeof(int32_t)));
    assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
    for (int i = 0; i < N; ++i) {
      int32_t want = i >= N - 10 ? pinned_in[i - (N - 10)]
                                 : 2 * (10 + 7 * i + pinned_in[i]);
      if (pinned_out[i] != want)
        fail_msg("replay %d: out[%d] = %d, expected %d", replay, i,
                 pinned_out[i], want);
    }
  }
  /* A launch counts once; its nodes are not calls. */
  assert_int_equal(cgr__be_calls(be, CGR__CALL_KERNEL_LAUNCH), kernels);
  assert_int_equal(cgr__be_calls(be, CGR__CALL_MEMSET), memsets);
  assert_int_equal(cgr__be_calls(be, CGR__CALL_GRAPH_LAUNCH), launches + 5);
  cgr__be_graph_exec_destroy(be, exec);
  if (cgr_test_backend == CGR_BACKEND_HOST) {
    /* A chain runs on the launching worker, as it always did. */
    assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
    assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), note_thread,
                                        &node_thread));
    assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
    exec = instantiate(rt, graph);
    cgr__be_graph_destroy(be, graph);
    assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
    assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
    assert_true(pthread_equal(node_thread, main_worker));
    cgr__be_graph_exec_destroy(be, exec);
  }
  cgr__be_event_destroy(be, mark);
  cgr__be_device_free(be, in);
  cgr__be_device_free(be, work);
  cgr__be_device_free(be, out);
  cgr__be_pinned_free(be, pinned_in);
  cgr__be_pinned_free(be, pinned_out);
}

static void test_dot_dump_shows_a_fork(void **state) {
  cgr_test_require_host(); /* CUDA's dump is cudaGraphDebugDotPrint's */
  cgr_runtime *rt = cgr_test_runtime(state);
  diamond d;
  diamond_alloc(rt, &d);
  cgr__graph *graph = diamond_capture(rt, &d);
  char path[64], text[4096];
  snprintf(path, sizeof path, "/tmp/cgr_fork_%d.dot", (int)getpid());
  assert_cgr_ok(rt, cgr__be_graph_dump(TEST_BE(rt), graph, path));
  read_file(path, text, sizeof text);
  unlink(path);
  /* a (0) forks into b (1, side) and c (2, main), which join into out (3). */
  static const char *const edges[] = {"n0 -> n1;", "n0 -> n2;", "n1 -> n3;",
                                      "n2 -> n3;"};
  for (int e = 0; e < 4; ++e)
    if (strstr(text, edges[e]) == NULL)
      fail_msg("the dump lacks edge \"%s\":\n%s", edges[e], text);
  int arrows = 0;
  for (const char *at = strstr(text, "->"); at != NULL;
       at = strstr(at + 2, "->"))
    ++arrows;
  assert_int_equal(arrows, 4);
  assert_non_null(strstr(text, "4 nodes, 2 branches"));
  assert_non_null(strstr(text, "label=\"stream 'cgr side'\";\n    n1;\n  }"));
  cgr__be_graph_destroy(TEST_BE(rt), graph);
  diamond_free(rt, &d);
}

/* Three branches, seven nodes, logged: where a branch's thread does not
 * start, its nodes run on the launching worker in capture order. */
static void
test_branches_whose_threads_do_not_start_run_in_order(void **state) {
  cgr_test_require_host();
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  cgr__stream *third = NULL;
  assert_cgr_ok(rt, cgr__be_stream_create(be, CGR_PRIORITY_NORMAL, "cgr third",
                                          &third));
  cgr__event *fork = event_new(rt), *join_side = event_new(rt),
             *join_third = event_new(rt);
  run_log log;
  memset(&log, 0, sizeof log);
  pthread_mutex_init(&log.lock, NULL);
  log_entry entries[7];
  cgr__stream *on[7] = {TEST_MAIN(rt), TEST_SIDE(rt), third,
                        TEST_MAIN(rt), TEST_SIDE(rt), third,
                        TEST_MAIN(rt)};
  cgr__graph *graph = NULL;
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  for (int n = 0; n < 7; ++n) {
    entries[n] = (log_entry){&log, n};
    if (n == 1) {
      assert_cgr_ok(rt, cgr__be_event_record(be, fork, TEST_MAIN(rt)));
      assert_cgr_ok(rt, cgr__be_stream_wait_event(be, TEST_SIDE(rt), fork));
      assert_cgr_ok(rt, cgr__be_stream_wait_event(be, third, fork));
    }
    if (n == 6) {
      link_streams(rt, join_side, TEST_SIDE(rt), TEST_MAIN(rt));
      link_streams(rt, join_third, third, TEST_MAIN(rt));
    }
    assert_cgr_ok(rt, cgr__be_host_func(be, on[n], log_node, &entries[n]));
  }
  assert_cgr_ok(rt, cgr__be_capture_end(be, TEST_MAIN(rt), &graph));
  cgr__graph_exec *exec = instantiate(rt, graph);
  cgr__be_graph_destroy(be, graph);
  pthread_t main_worker;
  assert_cgr_ok(rt, cgr__be_host_func(be, TEST_MAIN(rt), note_thread,
                                      &main_worker));

  /* refused: 2 starts (no thread: one at a time, in capture order), 1 (the
   * side's branch on the worker, the third's on its thread), 0. */
  for (int refused = 2; refused >= 0; --refused) {
    log.count = 0;
    atomic_store(&cgr__host_refuse_branch_threads, refused);
    assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
    assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
    assert_int_equal(atomic_load(&cgr__host_refuse_branch_threads), 0);
    assert_int_equal(log.count, 7); /* no work dropped */
    int seen[7] = {0}, on_worker = 0;
    for (int i = 0; i < 7; ++i) {
      seen[log.order[i]]++;
      on_worker += pthread_equal(log.thread[i], main_worker) != 0;
      if (refused == 2)
        assert_int_equal(log.order[i], i);
    }
    for (int n = 0; n < 7; ++n)
      assert_int_equal(seen[n], 1);
    assert_true(log.order[0] == 0 && log.order[6] == 6);
    assert_int_equal(on_worker, refused == 2 ? 7 : refused == 1 ? 5 : 3);
  }
  cgr__be_graph_exec_destroy(be, exec);
  cgr__be_event_destroy(be, fork);
  cgr__be_event_destroy(be, join_side);
  cgr__be_event_destroy(be, join_third);
  cgr__be_stream_destroy(be, third);
  pthread_mutex_destroy(&log.lock);
}

/* A kernel an ASYNC fault struck faults in every launch, on whichever
 * branch it was captured, as it does in a chain. */
static void test_a_faulty_node_in_a_branch_loses_the_device(void **state) {
  cgr_test_require_host();
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  diamond d;
  diamond_alloc(rt, &d);
  cgr__fault_plan plan = {.call = CGR__CALL_KERNEL_LAUNCH,
                          .nth = 2, /* b, on the side's branch */
                          .mode = CGR__FAULT_ASYNC};
  assert_true(cgr__fault_arm_plans(&plan, 1));
  cgr__graph *graph = diamond_capture(rt, &d);
  cgr__fault_disarm();
  cgr__graph_exec *exec = instantiate(rt, graph);
  cgr__be_graph_destroy(be, graph);
  assert_cgr_ok(rt, cgr_synchronize(rt));
  assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
  assert_cgr_status(rt, cgr_synchronize(rt), CGR_E_DEVICE_LOST);
  assert_last_error_contains(rt, "kernel 'add_i32' raised a device fault");
  cgr__be_graph_exec_destroy(be, exec);
  diamond_free(rt, &d);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_fork_join_capture_replays_right),
    HOST_RUNTIME_TEST(test_branches_really_run_at_once),
    RUNTIME_TEST(test_dependency_across_branches_orders_work),
    RUNTIME_TEST(test_launches_of_a_branched_exec_are_ordered),
    RUNTIME_TEST(test_unjoined_fork_fails_at_end),
    RUNTIME_TEST(test_ending_on_the_joined_stream_fails),
    RUNTIME_TEST(test_synchronizing_a_joined_stream_invalidates),
    RUNTIME_TEST(test_an_event_of_another_capture_invalidates),
    RUNTIME_TEST(test_chain_only_graph_behaves_as_before),
    HOST_RUNTIME_TEST(test_dot_dump_shows_a_fork),
    HOST_RUNTIME_TEST(test_branches_whose_threads_do_not_start_run_in_order),
    HOST_RUNTIME_TEST(test_a_faulty_node_in_a_branch_loses_the_device),
};

CGR_TEST_MAIN(tests)
