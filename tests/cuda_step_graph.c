/*
 * A caller's CUDA graph as a step's work (cgr_cuda_step_graph), and the
 * caller's stream ordered after a step (cgr_cuda_event_wait): what a
 * binding does with a graph PyTorch captured and PyTorch's stream. On
 * CUDA the adopted graph replays in every mode, its output feeds the next
 * step, and a warm-up or eager run, which has no capture to add it to, is
 * refused and does the same work on the step's stream; on the host
 * backend both calls refuse clearly.
 *
 * The adopted graph is built with the graph API, no kernel needed: over
 * the padded batch's rows as one flat array of n elements,
 *   next[i] = tokens[i + 1] (i < n - 1),  next[n - 1] = MARK
 * so every output element depends on the step's input, and feeding `next`
 * back into `tokens` shifts the data on by one element per step.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "cgr/cgr_cuda.h"
#include "harness.h"

enum { ROW = 4, BUCKETS = 2, LARGEST = 4, STEPS = 6 };
static const uint32_t buckets[BUCKETS] = {2, 4};
/* 0x5A in every byte: a byte fill (cudaMemsetAsync) and a 4-byte fill (a
 * memset node) write the same int32. */
#define MARK_BYTE 0x5A
#define MARK ((int32_t)0x5A5A5A5A)

typedef struct adopter {
  cgr_slot tokens, next;
  cudaGraph_t graphs[BUCKETS][2]; /* per bucket and buffer set */
  void *tokens_at[2], *next_at[2];
  /* 1: a run outside a capture first tries to adopt a graph; 2: a
   * captured run first offers a NULL graph. Either refusal is ignored,
   * so the capture must fail all the same. 0: only legal calls. */
  int probe;
  /* What the step saw, for the test to check after cgr returns (a cmocka
   * assertion inside the step would jump out of cgr). */
  int adopted;         /* graphs added to a capture */
  int eager_runs;      /* runs without a capture */
  int eager_refused;   /* ...in which cgr_cuda_step_graph said INVALID_STATE */
  int null_refused;    /* captures in which a NULL graph was refused */
  int wrong_addresses; /* a capture whose slots are not the graph's */
  cgr_status unexpected;
  char refusal[CGR__ERROR_MESSAGE_SIZE];
} adopter;

static int bucket_index(uint32_t padded_batch) {
  return padded_batch == buckets[0] ? 0 : 1;
}

/* The reference: the step's transform of n elements. */
static void expected_next(const int32_t *tokens, int32_t *next, size_t n) {
  for (size_t i = 0; i + 1 < n; ++i)
    next[i] = tokens[i + 1];
  next[n - 1] = MARK;
}

/* The step's work as a graph over one bucket's rows of one buffer set. */
static cudaGraph_t build_graph(int32_t *tokens, int32_t *next, size_t n) {
  cudaGraph_t graph = NULL;
  cudaGraphNode_t copy = NULL, fill = NULL;
  assert_int_equal(cudaGraphCreate(&graph, 0), cudaSuccess);
  assert_int_equal(cudaGraphAddMemcpyNode1D(&copy, graph, NULL, 0, next,
                                            tokens + 1, (n - 1) * 4,
                                            cudaMemcpyDeviceToDevice),
                   cudaSuccess);
  struct cudaMemsetParams params;
  memset(&params, 0, sizeof params);
  params.dst = next + n - 1;
  params.value = (unsigned)MARK;
  params.elementSize = 4;
  params.width = 1;
  params.height = 1;
  assert_int_equal(cudaGraphAddMemsetNode(&fill, graph, &copy, 1, &params),
                   cudaSuccess);
  return graph;
}

/* The same work, eagerly, on the step's stream. */
static cgr_status run_eagerly(cgr_step *step, const adopter *a) {
  cgr_runtime *rt = cgr_step_runtime(step);
  cudaStream_t stream = NULL;
  CGR__CHECK(cgr_cuda_step_stream(step, &stream));
  int32_t *tokens = cgr_step_slot(step, a->tokens);
  int32_t *next = cgr_step_slot(step, a->next);
  size_t n = (size_t)cgr_step_padded_batch(step) * ROW;
  cudaError_t e = cudaMemcpyAsync(next, tokens + 1, (n - 1) * 4,
                                  cudaMemcpyDeviceToDevice, stream);
  if (e == cudaSuccess)
    e = cudaMemsetAsync(next + n - 1, MARK_BYTE, 4, stream);
  if (e != cudaSuccess)
    return cgr__fail(&rt->error, CGR_E_CUDA, "adopting_step", "%s",
                     cudaGetErrorString(e));
  return CGR_OK;
}

static cgr_status adopting_step(cgr_step *step, void *user) {
  adopter *a = user;
  uint32_t padded_batch = cgr_step_padded_batch(step);
  int set = cgr_step_buffer_set(step);
  if (!cgr_step_is_capturing(step)) {
    /* A warm-up, the arena's sizing run or an eager step: refused, with
     * a message that says what to do instead. */
    a->eager_runs++;
    if (a->probe == 1) {
      cgr_status status = cgr_cuda_step_graph(step, a->graphs[0][0]);
      if (status == CGR_E_INVALID_STATE) {
        a->eager_refused++;
        snprintf(a->refusal, sizeof a->refusal, "%s",
                 cgr_last_error(cgr_step_runtime(step)));
      } else {
        a->unexpected = status;
      }
    }
    return run_eagerly(step, a);
  }
  if (cgr_step_slot(step, a->tokens) != a->tokens_at[set] ||
      cgr_step_slot(step, a->next) != a->next_at[set]) {
    a->wrong_addresses++;
    return CGR_E_INVALID_ARGUMENT;
  }
  if (a->probe == 2 &&
      cgr_cuda_step_graph(step, NULL) == CGR_E_INVALID_ARGUMENT)
    a->null_refused++;
  CGR__CHECK(
      cgr_cuda_step_graph(step, a->graphs[bucket_index(padded_batch)][set]));
  a->adopted++;
  return CGR_OK;
}

/* A runtime with buckets {2, 4}, `next` feeding `tokens`, and one graph
 * per bucket and set, built before the capture (as PyTorch's are). */
static cgr_runtime *adopting_runtime(adopter *a) {
  memset(a, 0, sizeof *a);
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = buckets;
  config.bucket_count = BUCKETS;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  int device = -1;
  assert_cgr_ok(rt, cgr_cuda_device(rt, &device));
  assert_int_equal(cudaSetDevice(device), cudaSuccess);
  cgr_slot_desc desc;
  assert_cgr_ok(rt, cgr_slot_desc_init(&desc, "tokens", CGR_SLOT_ROWS, 4, ROW));
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &a->tokens));
  assert_cgr_ok(rt, cgr_slot_desc_init(&desc, "next", CGR_SLOT_OUTPUT, 4, ROW));
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &a->next));
  assert_cgr_ok(rt, cgr_slot_feed(rt, a->next, a->tokens));
  for (int set = 0; set < 2; ++set) {
    assert_cgr_ok(rt,
                  cgr_slot_address(rt, a->tokens, set, 0, &a->tokens_at[set]));
    assert_cgr_ok(rt, cgr_slot_address(rt, a->next, set, 0, &a->next_at[set]));
    for (int b = 0; b < BUCKETS; ++b)
      a->graphs[b][set] = build_graph(a->tokens_at[set], a->next_at[set],
                                      (size_t)buckets[b] * ROW);
  }
  return rt;
}

static void adopter_free(cgr_runtime *rt, adopter *a) {
  cgr_runtime_destroy(rt);
  for (int b = 0; b < BUCKETS; ++b)
    for (int set = 0; set < 2; ++set)
      assert_int_equal(cudaGraphDestroy(a->graphs[b][set]), cudaSuccess);
}

static void assert_step_saw_nothing_wrong(const adopter *a) {
  if (a->unexpected != CGR_OK)
    fail_msg("outside a capture cgr_cuda_step_graph returned %s",
             cgr_status_name(a->unexpected));
  assert_int_equal(a->wrong_addresses, 0);
}

/* A step that ignores a refused cgr_cuda_step_graph and returns CGR_OK
 * fails the capture all the same, with the refusal's message; the
 * runtime can then capture the step that calls it only where it may. */
static void capture_refusals_then_the_step(cgr_runtime *rt, adopter *a) {
  a->probe = 1;
  assert_cgr_status(rt, cgr_capture(rt, adopting_step, a), CGR_E_CAPTURE);
  assert_last_error_contains(rt, "returned CGR_OK after a cgr call in it "
                                 "failed: cgr_cuda_step_graph");
  assert_last_error_contains(rt, "(CGR_E_INVALID_STATE)");
  assert_int_equal(a->eager_refused, 1);
  if (strstr(a->refusal, "cgr_cuda_step_stream") == NULL ||
      strstr(a->refusal, "cgr_cuda_step_graph") == NULL)
    fail_msg("the refusal \"%s\" does not say what to do", a->refusal);
  a->probe = 2;
  assert_cgr_status(rt, cgr_capture(rt, adopting_step, a), CGR_E_CAPTURE);
  assert_last_error_contains(rt, "argument 'graph' is NULL");
  assert_int_equal(a->null_refused, 1);
  a->probe = 0;
  a->adopted = a->eager_runs = 0;
  assert_cgr_ok(rt, cgr_capture(rt, adopting_step, a));
}

/* The next random element (kept small and positive, so MARK is never one
 * of them). */
static int32_t fresh(uint64_t *seed) {
  return (int32_t)test_random_below(seed, 1000000);
}

/* Runs STEPS steps in `mode`; each step's tokens come from the previous
 * step's output on the device (feedback) where the mode allows it, else
 * from the host. Every output is checked against the reference. */
static void run_steps(cgr_runtime *rt, const adopter *a, cgr_replay_mode mode,
                      uint64_t seed) {
  static const uint32_t batches[STEPS] = {4, 4, 2, 2, 4, 2};
  int feeds = mode != CGR_REPLAY_IN_GRAPH && mode != CGR_REPLAY_EAGER;
  int32_t previous[LARGEST * ROW];
  uint32_t previous_batch = 0;
  int previous_was_graph = 0;
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, mode));
  for (int n = 0; n < STEPS; ++n) {
    uint32_t batch_size = batches[n];
    size_t elems = (size_t)batch_size * ROW;
    int32_t tokens[LARGEST * ROW], new_rows[LARGEST * ROW];
    int32_t prev_rows[LARGEST];
    size_t new_elems = 0;
    int fed = feeds && previous_was_graph;
    for (uint32_t r = 0; r < batch_size; ++r) {
      int continues = fed && r < previous_batch;
      prev_rows[r] = continues ? (int32_t)r : -1;
      for (int c = 0; c < ROW; ++c) {
        int32_t value =
            continues ? previous[r * ROW + (uint32_t)c] : fresh(&seed);
        tokens[r * ROW + (uint32_t)c] = value;
        if (!continues)
          new_rows[new_elems++] = value;
      }
    }
    cgr_batch *batch = NULL;
    assert_cgr_ok(rt, cgr_batch_begin(rt, batch_size, &batch));
    if (fed)
      assert_cgr_ok(rt, cgr_batch_feedback(batch, a->tokens, prev_rows,
                                           new_elems > 0 ? new_rows : NULL,
                                           new_elems * 4));
    else
      assert_cgr_ok(rt, cgr_batch_input(batch, a->tokens, CGR_SOURCE_HOST,
                                        tokens, elems * 4));
    cgr_ticket ticket;
    assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
    assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
    void *device_next = NULL;
    int32_t got[LARGEST * ROW], want[LARGEST * ROW];
    assert_cgr_ok(rt, cgr_output(rt, &ticket, a->next, &device_next));
    assert_cgr_ok(rt, cgr_memcpy(rt, got, device_next, elems * 4));
    expected_next(tokens, want, elems);
    for (size_t i = 0; i < elems; ++i)
      if (got[i] != want[i])
        fail_msg("mode %d, step %d (batch %u, set %d, %s): next[%zu] is %d, "
                 "not %d",
                 (int)mode, n, batch_size, ticket.set, fed ? "fed" : "given", i,
                 got[i], want[i]);
    memcpy(previous, got, elems * 4);
    previous_batch = batch_size;
    previous_was_graph = ticket.set >= 0;
  }
}

/* The host backend's step: records what cgr_cuda_step_graph said, then
 * does its work with cgr's own copy. */
typedef struct host_probe {
  cgr_slot in, out;
  int probe; /* 1: try cgr_cuda_step_graph first (and ignore what it says) */
  int runs;
  int unsupported;  /* runs in which a graph was refused as unsupported */
  int null_refused; /* ...and a NULL graph as an invalid argument */
  int null_step_refused;
  char message[CGR__ERROR_MESSAGE_SIZE];
} host_probe;

static cgr_status host_probing_step(cgr_step *step, void *user) {
  host_probe *p = user;
  cgr_runtime *rt = cgr_step_runtime(step);
  /* Never dereferenced: the host backend refuses before it looks. */
  cudaGraph_t not_a_graph = (cudaGraph_t)(uintptr_t)0x1000;
  p->runs++;
  if (!p->probe)
    return cgr_step_memcpy(step, cgr_step_slot(step, p->out),
                           cgr_step_slot(step, p->in),
                           (size_t)cgr_step_padded_batch(step) * 4);
  if (cgr_cuda_step_graph(step, not_a_graph) == CGR_E_UNSUPPORTED) {
    p->unsupported++;
    snprintf(p->message, sizeof p->message, "%s", cgr_last_error(rt));
  }
  if (cgr_cuda_step_graph(step, NULL) == CGR_E_INVALID_ARGUMENT &&
      strstr(cgr_last_error(rt), "graph") != NULL)
    p->null_refused++;
  if (cgr_cuda_step_graph(NULL, not_a_graph) == CGR_E_INVALID_ARGUMENT)
    p->null_step_refused++;
  return cgr_step_memcpy(step, cgr_step_slot(step, p->out),
                         cgr_step_slot(step, p->in),
                         (size_t)cgr_step_padded_batch(step) * 4);
}

/* On the host backend a step may not adopt a graph, captured or not, and
 * says so; a step that ignores the refusal and returns CGR_OK fails all
 * the same (nothing is captured without its work), naming the refusal;
 * the runtime then captures the same step without the call. */
static void step_graph_is_refused_on_host(void) {
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = buckets;
  config.bucket_count = BUCKETS;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  host_probe p;
  memset(&p, 0, sizeof p);
  cgr_slot_desc desc;
  assert_cgr_ok(rt, cgr_slot_desc_init(&desc, "in", CGR_SLOT_ROWS, 4, 1));
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &p.in));
  assert_cgr_ok(rt, cgr_slot_desc_init(&desc, "out", CGR_SLOT_OUTPUT, 4, 1));
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &p.out));
  p.probe = 1;
  assert_cgr_status(rt, cgr_capture(rt, host_probing_step, &p), CGR_E_CAPTURE);
  assert_last_error_contains(rt, "returned CGR_OK after a cgr call in it "
                                 "failed: cgr_cuda_step_graph");
  assert_last_error_contains(rt, "(CGR_E_UNSUPPORTED)");
  assert_int_equal(p.runs, 1); /* the arena's sizing run stops there */
  assert_int_equal(p.unsupported, p.runs);
  assert_int_equal(p.null_refused, p.runs);
  assert_int_equal(p.null_step_refused, p.runs);
  if (strstr(p.message, "cgr_cuda_step_graph") == NULL ||
      strstr(p.message, "host") == NULL)
    fail_msg("the refusal \"%s\" names neither the call nor the backend",
             p.message);
  p.probe = 0;
  assert_cgr_ok(rt, cgr_capture(rt, host_probing_step, &p));
  assert_true(p.runs > 2 * BUCKETS);

  int32_t values[2] = {7, 9};
  cgr_batch *batch = NULL;
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_batch_begin(rt, 2, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, p.in, CGR_SOURCE_HOST, values,
                                    sizeof values));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
  void *device_out = NULL;
  int32_t got[2] = {0, 0};
  assert_cgr_ok(rt, cgr_output(rt, &ticket, p.out, &device_out));
  assert_cgr_ok(rt, cgr_memcpy(rt, got, device_out, sizeof got));
  assert_int_equal(got[0], 7);
  assert_int_equal(got[1], 9);

  /* Below the public call, the backend table's optional slot says the
   * same, and checks its arguments first. */
  cgr__graph *not_a_graph = (cgr__graph *)(uintptr_t)0x1000;
  assert_cgr_status(rt,
                    cgr__be_capture_child_graph(TEST_BE(rt), TEST_MAIN(rt),
                                                NULL),
                    CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(rt,
                    cgr__be_capture_child_graph(TEST_BE(rt), TEST_MAIN(rt),
                                                not_a_graph),
                    CGR_E_UNSUPPORTED);
  assert_last_error_contains(rt, "the host backend cannot add");
  cgr_runtime_destroy(rt);
}

static void test_adopted_graph_replays_in_every_mode(void **state) {
  (void)cgr_test_runtime(state);
  if (cgr_test_backend == CGR_BACKEND_HOST) {
    step_graph_is_refused_on_host();
    return;
  }
  adopter a;
  cgr_runtime *rt = adopting_runtime(&a);
  capture_refusals_then_the_step(rt, &a);
  /* Both sets of both buckets adopted their graph: one child-graph node,
   * then the feedback copy. */
  assert_int_equal(a.adopted, 2 * BUCKETS);
  for (int b = 0; b < BUCKETS; ++b) {
    cgr_bucket_stats stats;
    assert_cgr_ok(rt, cgr_bucket_stats_get(rt, buckets[b], &stats));
    assert_int_equal(stats.nodes[0], 2);
    assert_int_equal(stats.nodes[1], 2);
  }
  /* The warm-ups (and the arena's sizing run) ran the work eagerly. */
  assert_true(a.eager_runs > 0);
  assert_step_saw_nothing_wrong(&a);

  static const cgr_replay_mode modes[] = {CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED,
                                          CGR_REPLAY_DOUBLE_BUFFERED,
                                          CGR_REPLAY_IN_GRAPH,
                                          CGR_REPLAY_EAGER};
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; ++m)
    run_steps(rt, &a, modes[m], 0xADE57 + m);
  /* The in-graph mode captured its variants, adopting the graph again. */
  assert_true(a.adopted > 2 * BUCKETS);
  assert_step_saw_nothing_wrong(&a);
  adopter_free(rt, &a);
}

/* The caller's streams (its own, and the legacy default stream that is
 * PyTorch's default) wait for a ticket's event on the device: held behind
 * the step, they read the step's output, not what was there before. */
static void test_event_wait_orders_the_callers_stream(void **state) {
  cgr_runtime *fixture = cgr_test_runtime(state);
  if (cgr_test_backend == CGR_BACKEND_HOST) {
    /* No CUDA stream to order: the host's caller waits on the host. */
    cgr_event *event = NULL;
    assert_cgr_ok(fixture, cgr_event_create(fixture, &event));
    assert_cgr_status(fixture, cgr_cuda_event_wait(event, NULL),
                      CGR_E_UNSUPPORTED);
    assert_last_error_contains(fixture, "cgr_cuda_event_wait");
    assert_last_error_contains(fixture, "cgr_event_synchronize");
    cgr_event_destroy(event);
    return;
  }
  adopter a;
  cgr_runtime *rt = adopting_runtime(&a);
  assert_cgr_ok(rt, cgr_capture(rt, adopting_step, &a));
  enum { ELEMS = LARGEST * ROW };
  /* A first step, not held: the replay state is made (which synchronizes
   * the main stream) before the stream is held. */
  run_steps(rt, &a, CGR_REPLAY_DOUBLE_BUFFERED, 0xE7E47);
  /* What the output holds before the step: never a value it writes. */
  for (int set = 0; set < 2; ++set)
    assert_int_equal(cudaMemset(a.next_at[set], 0xFF, ELEMS * 4), cudaSuccess);
  assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);

  cudaStream_t mine = NULL;
  int32_t *read_back = NULL; /* pinned: an async copy into pageable memory
                                would wait for the held stream right here */
  assert_int_equal(cudaStreamCreateWithFlags(&mine, cudaStreamNonBlocking),
                   cudaSuccess);
  assert_int_equal(cudaMallocHost((void **)&read_back, 2 * ELEMS * 4),
                   cudaSuccess);
  cgr_event *done = NULL;
  assert_cgr_ok(rt, cgr_event_create(rt, &done));

  test_gate gate;
  test_gate_init(&gate);
  assert_cgr_ok(rt, cgr__be_host_func(TEST_BE(rt), TEST_MAIN(rt),
                                      test_gate_hold_stream, &gate));
  int32_t tokens[ELEMS], want[ELEMS];
  for (int i = 0; i < ELEMS; ++i)
    tokens[i] = 100 + i;
  expected_next(tokens, want, ELEMS);
  cgr_batch *batch = NULL;
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_batch_begin(rt, LARGEST, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, a.tokens, CGR_SOURCE_HOST, tokens,
                                    sizeof tokens));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_cgr_ok(rt, cgr_ticket_record_event(rt, &ticket, done));
  void *device_next = NULL;
  assert_cgr_ok(rt, cgr_output(rt, &ticket, a.next, &device_next));

  cgr_counters before, after;
  assert_cgr_ok(rt, cgr_counters_get(rt, &before));
  assert_cgr_ok(rt, cgr_cuda_event_wait(done, mine));
  assert_cgr_ok(rt, cgr_cuda_event_wait(done, NULL));
  assert_cgr_ok(rt, cgr_counters_get(rt, &after));
  assert_int_equal(after.event_waits - before.event_waits, 2);
  assert_int_equal(cudaMemcpyAsync(read_back, device_next, ELEMS * 4,
                                   cudaMemcpyDeviceToHost, mine),
                   cudaSuccess);
  assert_int_equal(cudaMemcpyAsync(read_back + ELEMS, device_next, ELEMS * 4,
                                   cudaMemcpyDeviceToHost, NULL),
                   cudaSuccess);
  /* Still held: both copies wait for the step. */
  usleep(20000);
  assert_int_equal(cudaStreamQuery(mine), cudaErrorNotReady);
  assert_int_equal(cudaStreamQuery(NULL), cudaErrorNotReady);
  test_gate_open(&gate);
  assert_int_equal(cudaStreamSynchronize(mine), cudaSuccess);
  assert_int_equal(cudaStreamSynchronize(NULL), cudaSuccess);
  for (int i = 0; i < 2 * ELEMS; ++i)
    if (read_back[i] != want[i % ELEMS])
      fail_msg("the %s stream read next[%d] = %d, not %d",
               i < ELEMS ? "caller's own" : "legacy default", i % ELEMS,
               read_back[i], want[i % ELEMS]);

  assert_cgr_ok(rt, cgr_synchronize(rt));
  test_gate_fini(&gate);
  cgr_event_destroy(done);
  assert_int_equal(cudaFreeHost(read_back), cudaSuccess);
  assert_int_equal(cudaStreamDestroy(mine), cudaSuccess);
  adopter_free(rt, &a);
}

static void test_event_wait_refuses_a_null_event(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  assert_int_equal(cgr_cuda_event_wait(NULL, NULL), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "cgr_cuda_event_wait");
  assert_last_error_contains(NULL, "'event'");
  if (cgr_test_backend != CGR_BACKEND_CUDA)
    return;
  /* An event never recorded is complete, as a cudaEvent_t is: the wait
   * holds nothing up. */
  cgr_event *event = NULL;
  assert_cgr_ok(rt, cgr_event_create(rt, &event));
  assert_cgr_ok(rt, cgr_cuda_event_wait(event, NULL));
  assert_int_equal(cudaStreamSynchronize(NULL), cudaSuccess);
  cgr_event_destroy(event);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_adopted_graph_replays_in_every_mode),
    RUNTIME_TEST(test_event_wait_orders_the_callers_stream),
    RUNTIME_TEST(test_event_wait_refuses_a_null_event),
};

CGR_TEST_MAIN(tests)
