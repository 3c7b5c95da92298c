/* The fault sweep of a step (tests/fault_sweep_engine.h has the method):
 * for every call site a step reaches, in every replay mode and through
 * every input path (host data; a capture before it; a lazy capture inside
 * the replay; feedback from the previous step; device sources and a
 * gather), each way a call can fail there (at once, on the device, or by
 * an error a later call reports) surfaces as a status; the step then
 * works again with the right outputs, or, after a device loss, every
 * later call says so and destroy works. Host backend only. */
#include <string.h>

#include "fault_sweep_engine.h"

typedef enum step_path {
  PATH_HOST,     /* a warm runtime, host inputs */
  PATH_CAPTURE,  /* run = cgr_capture, then the step */
  PATH_LAZY,     /* lazy capture: the replay captures the bucket */
  PATH_FEEDBACK, /* ids fed from the previous step's output */
  PATH_DEVICE,   /* ids gathered, pos and cu_k from device memory */
  PATH_KEYS      /* run = cgr_capture of 2 tokens values x 2 variants */
} step_path;

enum { GATHER_ROWS = 8, FEED_ROWS = 4 };

typedef struct step_ctx {
  step_path path;
  cgr_replay_mode mode;
  model m;
  cgr_runtime *rt;
  model_inputs in; /* what the swept step sees, ids included */
  cgr_ticket ticket;
  model_inputs first; /* feedback: the step before */
  cgr_ticket first_ticket;
  int32_t gather_rows[GATHER_ROWS]; /* device: on the host */
  int32_t *device_rows, *device_index, *device_pos, *device_cu_k;
} step_ctx;

static const int32_t gather_index[SWEEP_ROWS] = {5, 0, 3};
static const int32_t feed_prev_rows[FEED_ROWS] = {0, 2, -1, 1};

/* ---- the paths' steps ---------------------------------------------------- */

/* The step before a feedback step: host inputs, waited for. */
static cgr_status feed_first(step_ctx *c, unsigned seed) {
  model_make_inputs(&c->first, SWEEP_ROWS, SWEEP_ROWS, seed);
  return sweep_host_step(c->rt, &c->m, &c->first, &c->first_ticket);
}

/* Four rows after feed_first's three: one in place, two moved, one new. */
static cgr_status feed_step(step_ctx *c, unsigned seed) {
  model_make_inputs(&c->in, FEED_ROWS, FEED_ROWS, seed);
  int32_t fresh = 4242 + (int32_t)seed;
  for (uint32_t j = 0; j < FEED_ROWS; ++j)
    c->in.ids[j] =
        feed_prev_rows[j] < 0
            ? fresh
            : model_expected_out(&c->first, c->first_ticket.padded_batch,
                                 (uint32_t)feed_prev_rows[j]);
  cgr_batch *batch = NULL;
  CGR__CHECK(cgr_batch_begin(c->rt, FEED_ROWS, &batch));
  cgr_status status =
      cgr_batch_feedback(batch, c->m.ids, feed_prev_rows, &fresh, sizeof fresh);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, c->m.pos, CGR_SOURCE_HOST, c->in.pos,
                             FEED_ROWS * 4);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, c->m.pages, CGR_SOURCE_HOST, c->in.pages,
                             FEED_ROWS * 4 * MODEL_PAGES);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, c->m.cu_k, CGR_SOURCE_HOST, c->in.cu_k,
                             (FEED_ROWS + 1) * 4);
  if (status != CGR_OK) {
    cgr_batch_discard(batch);
    return status;
  }
  CGR__CHECK(cgr_replay(c->rt, batch, &c->ticket));
  return cgr_ticket_wait(c->rt, &c->ticket);
}

/* ids gathered from device rows, pos and cu_k device sources (cu_k's
 * padding gathered from its last entry), pages from the host. */
static cgr_status device_step(step_ctx *c) {
  for (uint32_t j = 0; j < SWEEP_ROWS; ++j)
    c->in.ids[j] = c->gather_rows[gather_index[j]];
  cgr_batch *batch = NULL;
  CGR__CHECK(cgr_batch_begin(c->rt, SWEEP_ROWS, &batch));
  cgr_status status =
      cgr_batch_gather(batch, c->m.ids, c->device_rows, c->device_index);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, c->m.pos, CGR_SOURCE_DEVICE, c->device_pos,
                             SWEEP_ROWS * 4);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, c->m.cu_k, CGR_SOURCE_DEVICE,
                             c->device_cu_k, (SWEEP_ROWS + 1) * 4);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, c->m.pages, CGR_SOURCE_HOST, c->in.pages,
                             SWEEP_ROWS * 4 * MODEL_PAGES);
  if (status != CGR_OK) {
    cgr_batch_discard(batch);
    return status;
  }
  CGR__CHECK(cgr_replay(c->rt, batch, &c->ticket));
  return cgr_ticket_wait(c->rt, &c->ticket);
}

/* Device memory holding `bytes` of `data`. */
static void *device_copy(cgr_runtime *rt, const void *data, size_t bytes) {
  void *device = NULL;
  assert_cgr_ok(rt, cgr_device_alloc(rt, bytes, &device));
  assert_cgr_ok(rt, cgr_memcpy(rt, device, data, bytes));
  return device;
}

/* ---- the operation ------------------------------------------------------- */

static cgr_runtime *path_runtime(step_ctx *c) {
  if (c->path != PATH_LAZY && c->path != PATH_FEEDBACK && c->path != PATH_KEYS)
    return model_runtime(sweep_buckets, SWEEP_BUCKETS, 1, &c->m);
  /* Keys: the model ignores them, and the swept step is of the first
   * tokens value, whose constants are the model's. */
  static const uint32_t tokens[] = {1, 2};
  static const char *const variants[] = {"a", "b"};
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = sweep_buckets;
  config.bucket_count = SWEEP_BUCKETS;
  config.lazy_capture = c->path == PATH_LAZY;
  if (c->path == PATH_KEYS) {
    config.tokens_per_request = tokens;
    config.tokens_per_request_count = 2;
    config.variants = variants;
    config.variant_count = 2;
  }
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  model_declare(rt, &c->m);
  if (c->path == PATH_FEEDBACK)
    assert_cgr_ok(rt, cgr_slot_feed(rt, c->m.out, c->m.ids));
  return rt;
}

static void step_setup(void *ctx) {
  step_ctx *c = ctx;
  memset(&c->m, 0, sizeof c->m);
  c->rt = path_runtime(c);
  assert_cgr_ok(c->rt, cgr_set_replay_mode(c->rt, c->mode));
  if (c->path != PATH_CAPTURE && c->path != PATH_KEYS)
    assert_cgr_ok(c->rt, cgr_capture(c->rt, model_step, &c->m));
  model_make_inputs(&c->in, SWEEP_ROWS, SWEEP_ROWS, 7);
  if (c->path == PATH_HOST || c->path == PATH_DEVICE) {
    /* A step before the swept one: the sets and staging are warm, as in
     * a serving loop. */
    assert_cgr_ok(c->rt, sweep_host_step(c->rt, &c->m, &c->in, &c->ticket));
    model_make_inputs(&c->in, SWEEP_ROWS, SWEEP_ROWS, 8);
  }
  if (c->path == PATH_FEEDBACK)
    assert_cgr_ok(c->rt, feed_first(c, 7));
  if (c->path == PATH_DEVICE) {
    for (int r = 0; r < GATHER_ROWS; ++r)
      c->gather_rows[r] = 100 + 7 * r;
    c->device_rows = device_copy(c->rt, c->gather_rows, sizeof c->gather_rows);
    c->device_index = device_copy(c->rt, gather_index, sizeof gather_index);
    c->device_pos = device_copy(c->rt, c->in.pos, SWEEP_ROWS * 4);
    c->device_cu_k = device_copy(c->rt, c->in.cu_k, (SWEEP_ROWS + 1) * 4);
  }
}

static cgr_status step_run(void *ctx) {
  step_ctx *c = ctx;
  switch (c->path) {
  case PATH_CAPTURE:
  case PATH_KEYS:
    CGR__CHECK(cgr_capture(c->rt, model_step, &c->m));
    break;
  case PATH_FEEDBACK:
    return feed_step(c, 8);
  case PATH_DEVICE:
    return device_step(c);
  case PATH_HOST:
  case PATH_LAZY:
    break;
  }
  return sweep_host_step(c->rt, &c->m, &c->in, &c->ticket);
}

static void step_check_usable(void *ctx) {
  step_ctx *c = ctx;
  /* A failed capture destroyed what it built: capture again. */
  cgr_capture_stats stats;
  assert_cgr_ok(c->rt, cgr_capture_stats_get(c->rt, &stats));
  if ((c->path == PATH_CAPTURE || c->path == PATH_KEYS) &&
      stats.keys_captured == 0)
    assert_cgr_ok(c->rt, cgr_capture(c->rt, model_step, &c->m));
  switch (c->path) {
  case PATH_FEEDBACK:
    /* A failed step leaves nothing to feed from: a step with host ids
     * first, as after any failure. */
    assert_cgr_ok(c->rt, feed_first(c, 9));
    assert_cgr_ok(c->rt, feed_step(c, 10));
    break;
  case PATH_DEVICE:
    assert_cgr_ok(c->rt, device_step(c));
    break;
  default:
    model_make_inputs(&c->in, SWEEP_ROWS, SWEEP_ROWS, 9);
    assert_cgr_ok(c->rt, sweep_host_step(c->rt, &c->m, &c->in, &c->ticket));
    break;
  }
  sweep_check_step(c->rt, &c->m, &c->in, &c->ticket);
}

static void step_check_lost(void *ctx) {
  step_ctx *c = ctx;
  sweep_check_runtime_lost(c->rt);
}

static void step_teardown(void *ctx) {
  step_ctx *c = ctx;
  void *device[] = {c->device_rows, c->device_index, c->device_pos,
                    c->device_cu_k};
  for (size_t i = 0; i < sizeof device / sizeof device[0]; ++i)
    if (device[i] != NULL)
      assert_cgr_ok(c->rt, cgr_device_free(c->rt, device[i]));
  c->device_rows = c->device_index = c->device_pos = c->device_cu_k = NULL;
  cgr_runtime_destroy(c->rt);
  c->rt = NULL;
}

static void sweep_path(step_path path, cgr_replay_mode mode, const char *name) {
  cgr_test_require_host();
  static step_ctx c;
  memset(&c, 0, sizeof c);
  c.path = path;
  c.mode = mode;
  sweep_operation op = {
      name,         step_setup, step_run, step_check_usable, step_check_lost,
      step_teardown};
  sweep_result result = sweep(&op, &c, SWEEP_ALL);
  /* The sweep reached sites, and faulted each way. */
  assert_true(result.faults[CGR__FAULT_NOW] > 0);
  assert_true(result.faults[CGR__FAULT_ASYNC] > 0);
  assert_true(result.raised > 0);
  assert_true(result.faults[CGR__FAULT_DEFERRED] > 0);
}

/* ---- the tests ----------------------------------------------------------- */

static void test_every_fault_in_capture_leaves_it_usable(void **state) {
  (void)state;
  sweep_path(PATH_CAPTURE, CGR_REPLAY_DOUBLE_BUFFERED, "capture and a step");
}

static void test_every_fault_in_a_keyed_capture_leaves_it_usable(void **state) {
  (void)state;
  sweep_path(PATH_KEYS, CGR_REPLAY_DOUBLE_BUFFERED,
             "a capture of every key and a step");
}

static void test_every_fault_in_a_naive_step_leaves_it_usable(void **state) {
  (void)state;
  sweep_path(PATH_HOST, CGR_REPLAY_NAIVE, "a naive step");
}

static void test_every_fault_in_a_fused_step_leaves_it_usable(void **state) {
  (void)state;
  sweep_path(PATH_HOST, CGR_REPLAY_FUSED, "a fused step");
}

static void
test_every_fault_in_a_double_buffered_step_leaves_it_usable(void **state) {
  (void)state;
  sweep_path(PATH_HOST, CGR_REPLAY_DOUBLE_BUFFERED, "a double-buffered step");
}

static void
test_every_fault_in_an_in_graph_step_leaves_it_usable(void **state) {
  (void)state;
  sweep_path(PATH_HOST, CGR_REPLAY_IN_GRAPH, "an in-graph step");
}

static void test_every_fault_in_an_eager_step_leaves_it_usable(void **state) {
  (void)state;
  sweep_path(PATH_HOST, CGR_REPLAY_EAGER, "an eager step");
}

static void test_every_fault_in_a_lazy_capture_through_replay_leaves_it_usable(
    void **state) {
  (void)state;
  sweep_path(PATH_LAZY, CGR_REPLAY_DOUBLE_BUFFERED,
             "a lazy capture through replay");
}

static void
test_every_fault_in_a_lazy_in_graph_capture_leaves_it_usable(void **state) {
  (void)state;
  sweep_path(PATH_LAZY, CGR_REPLAY_IN_GRAPH,
             "a lazy in-graph capture through replay");
}

static void
test_every_fault_in_a_naive_feedback_step_leaves_it_usable(void **state) {
  (void)state;
  sweep_path(PATH_FEEDBACK, CGR_REPLAY_NAIVE, "a naive feedback step");
}

static void
test_every_fault_in_a_double_buffered_feedback_step_leaves_it_usable(
    void **state) {
  (void)state;
  sweep_path(PATH_FEEDBACK, CGR_REPLAY_DOUBLE_BUFFERED,
             "a double-buffered feedback step");
}

static void
test_every_fault_in_a_fused_step_from_device_inputs_leaves_it_usable(
    void **state) {
  (void)state;
  sweep_path(PATH_DEVICE, CGR_REPLAY_FUSED,
             "a fused step from device inputs and a gather");
}

static void
test_every_fault_in_a_double_buffered_step_from_device_inputs_leaves_it_usable(
    void **state) {
  (void)state;
  sweep_path(PATH_DEVICE, CGR_REPLAY_DOUBLE_BUFFERED,
             "a double-buffered step from device inputs and a gather");
}

static void
test_every_fault_in_an_eager_step_from_device_inputs_leaves_it_usable(
    void **state) {
  (void)state;
  sweep_path(PATH_DEVICE, CGR_REPLAY_EAGER,
             "an eager step from device inputs and a gather");
}

static const struct CMUnitTest tests[] = {
    HOST_TEST(test_every_fault_in_capture_leaves_it_usable),
    HOST_TEST(test_every_fault_in_a_keyed_capture_leaves_it_usable),
    HOST_TEST(test_every_fault_in_a_naive_step_leaves_it_usable),
    HOST_TEST(test_every_fault_in_a_fused_step_leaves_it_usable),
    HOST_TEST(test_every_fault_in_a_double_buffered_step_leaves_it_usable),
    HOST_TEST(test_every_fault_in_an_in_graph_step_leaves_it_usable),
    HOST_TEST(test_every_fault_in_an_eager_step_leaves_it_usable),
    HOST_TEST(
        test_every_fault_in_a_lazy_capture_through_replay_leaves_it_usable),
    HOST_TEST(test_every_fault_in_a_lazy_in_graph_capture_leaves_it_usable),
    HOST_TEST(test_every_fault_in_a_naive_feedback_step_leaves_it_usable),
    HOST_TEST(
        test_every_fault_in_a_double_buffered_feedback_step_leaves_it_usable),
    HOST_TEST(
        test_every_fault_in_a_fused_step_from_device_inputs_leaves_it_usable),
    HOST_TEST(
        test_every_fault_in_a_double_buffered_step_from_device_inputs_leaves_it_usable),
    HOST_TEST(
        test_every_fault_in_an_eager_step_from_device_inputs_leaves_it_usable),
};

CGR_TEST_MAIN(tests)
