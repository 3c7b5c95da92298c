/* Capturing a step: every bucket and both buffer sets replay like an eager
 * run; padding holds its declared values; one arena serves all buckets;
 * failures anywhere in capture leave a runtime that captures again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/capture.h"
#include "harness.h"
#include "kernels/basic.h"
#include "model.h"
#include "runtime/fault.h"

static const uint32_t small_buckets[] = {1, 2, 4, 8, 16, 24};

/* ---- inputs and the expected outputs ------------------------------------ */

static void upload(cgr_runtime *rt, void *const *slot_of, const model *m,
                   const model_inputs *in) {
  cgr__backend *be = TEST_BE(rt);
  cgr__stream *s = TEST_MAIN(rt);
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, s, slot_of[m->ids], in->ids,
                                         in->rows * 4));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, s, slot_of[m->pos], in->pos,
                                         in->rows * 4));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, s, slot_of[m->pages], in->pages,
                                         in->rows * 4 * MODEL_PAGES));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, s, slot_of[m->cu_k], in->cu_k,
                                         (in->rows + 1) * 4));
}

static void check_outputs(cgr_runtime *rt, void *const *slot_of, const model *m,
                          const model_inputs *in, uint32_t padded_batch,
                          uint32_t live, int32_t *out_copy) {
  model_check_outputs(rt, slot_of[m->out], slot_of[m->out_pages], in,
                      padded_batch, live, out_copy);
}

/* The slot addresses of (bucket, set), as the captured graph sees them. */
static void graph_slots(cgr_runtime *rt, uint32_t padded_batch, int set,
                        void **slot_of, size_t count) {
  for (size_t i = 0; i < count; ++i)
    assert_cgr_ok(rt, cgr_slot_address(rt, (cgr_slot)i, set, padded_batch,
                                       &slot_of[i]));
}

static cgr__graph_exec *exec_of(cgr_runtime *rt, uint32_t padded_batch,
                                int set) {
  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  long index = cgr__bucket_index(cap, padded_batch);
  assert_true(index >= 0);
  return cap->keys[cgr__key_index(cap, (size_t)index, 0, 0)].execs[set];
}

/* Replays (bucket, set) for `live` rows and checks it against the formula
 * and against an eager run of the same step on the same live rows. */
static void replay_and_check(cgr_runtime *rt, const model *m,
                             uint32_t padded_batch, int set, uint32_t live,
                             unsigned seed) {
  void *slot_of[8];
  model_inputs in;
  int32_t graphed[256], eager_out[256];
  graph_slots(rt, padded_batch, set, slot_of, 8);
  model_make_inputs(&in, live, padded_batch, seed);
  upload(rt, slot_of, m, &in);
  assert_cgr_ok(rt, cgr__be_graph_launch(TEST_BE(rt),
                                         exec_of(rt, padded_batch, set),
                                         TEST_MAIN(rt)));
  check_outputs(rt, slot_of, m, &in, padded_batch, live, graphed);

  /* The eager reference: the same step, no graph, slots of `live` rows.
   * Its constants are for padded batch `live`, so compare the parts that
   * do not depend on the bucket. */
  cgr__eager eager;
  assert_cgr_ok(rt, cgr__eager_begin(rt, live, 1, 0, 1, &eager));
  void *eager_of[8];
  for (int i = 0; i < 8; ++i)
    eager_of[i] = cgr__eager_slot(&eager, (cgr_slot)i);
  model_inputs live_in;
  model_make_inputs(&live_in, live, live, seed);
  upload(rt, eager_of, m, &live_in);
  assert_cgr_ok(rt, cgr__eager_run(rt, &eager));
  check_outputs(rt, eager_of, m, &live_in, live, live, eager_out);
  for (uint32_t r = 0; r < live; ++r)
    assert_int_equal(graphed[r] - (int32_t)(padded_batch * 100),
                     eager_out[r] - (int32_t)(live * 100));
  cgr__eager_end(rt, &eager);
}

/* ---- tests --------------------------------------------------------------- */

static void test_every_bucket_and_set_replays_like_eager(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(small_buckets, 6, 1, &m);
  unsigned seed = 1;
  uint32_t previous = 0;
  for (size_t b = 0; b < 6; ++b) {
    uint32_t bucket = small_buckets[b];
    for (int set = 0; set < 2; ++set)
      for (uint32_t live = previous + 1; live <= bucket; ++live)
        replay_and_check(rt, &m, bucket, set, live, seed++);
    previous = bucket;
  }
  cgr_runtime_destroy(rt);
}

static void test_inputs_hold_padding_after_capture(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(small_buckets, 6, 1, &m);
  for (int set = 0; set < 2; ++set) {
    void *slot_of[8];
    graph_slots(rt, 24, set, slot_of, 8);
    int32_t ids[24], pos[24], pages[24 * MODEL_PAGES], cu_k[25];
    cgr__backend *be = TEST_BE(rt);
    assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), ids,
                                           slot_of[m.ids], sizeof ids));
    assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), pos,
                                           slot_of[m.pos], sizeof pos));
    assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), pages,
                                           slot_of[m.pages], sizeof pages));
    assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), cu_k,
                                           slot_of[m.cu_k], sizeof cu_k));
    assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
    /* Capture and warm-up read the inputs but never write them. */
    for (int r = 0; r < 24; ++r) {
      assert_int_equal(ids[r], 0);
      assert_int_equal(pos[r], MODEL_PAD_POS);
      for (int p = 0; p < MODEL_PAGES; ++p)
        assert_int_equal(pages[r * MODEL_PAGES + p], MODEL_PAD_PAGE);
    }
    for (int r = 0; r <= 24; ++r)
      assert_int_equal(cu_k[r], 0);
  }
  /* Each bucket's constant is its own: cu_seqlens_q = 0..bs. */
  for (size_t b = 0; b < 6; ++b) {
    void *address = NULL;
    int32_t cu_q[25];
    assert_cgr_ok(rt,
                  cgr_slot_address(rt, m.cu_q, 0, small_buckets[b], &address));
    assert_cgr_ok(rt,
                  cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), cu_q,
                                       address, (small_buckets[b] + 1) * 4));
    assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
    for (uint32_t i = 0; i <= small_buckets[b]; ++i)
      assert_int_equal(cu_q[i], (int32_t)i);
  }
  cgr_runtime_destroy(rt);
}

static void test_arena_peak_is_the_largest_bucket_not_the_sum(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(small_buckets, 6, 1, &m);
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  uint64_t sum = 0, largest_need = 0;
  for (size_t b = 0; b < 6; ++b) {
    cgr_bucket_stats bucket;
    assert_cgr_ok(rt, cgr_bucket_stats_get(rt, small_buckets[b], &bucket));
    assert_int_equal(bucket.captured, 1);
    /* s1 at 0, s2 at the next 64-byte boundary. */
    uint64_t need =
        (small_buckets[b] * 4 + 63) / 64 * 64 + small_buckets[b] * 4;
    assert_int_equal(bucket.scratch_bytes, need);
    sum += need;
    if (need > largest_need)
      largest_need = need;
  }
  assert_int_equal(stats.arena_peak, largest_need);
  assert_int_equal(stats.arena_bytes, largest_need);
  assert_true(stats.arena_peak < sum);
  assert_int_equal(stats.buckets, 6);
  assert_int_equal(stats.buckets_captured, 6);
  assert_int_equal(stats.graphs, 12);
  cgr_runtime_destroy(rt);
}

static void test_capture_counts_graphs_and_nodes(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_runtime(small_buckets, 6, 1, &m);
  assert_cgr_ok(rt, cgr_counters_reset(rt));
  assert_cgr_ok(rt, cgr_capture(rt, model_step, &m));
  cgr_counters counters;
  assert_cgr_ok(rt, cgr_counters_get(rt, &counters));
  assert_int_equal(counters.captures, 12);
  assert_int_equal(counters.graph_instantiates, 12);
  assert_int_equal(counters.graph_launches, 0);
  /* Sizing run + a warm-up and a capture per bucket and set. */
  assert_int_equal(m.runs, 1 + 6 * 2 * 2);
  for (size_t b = 0; b < 6; ++b) {
    cgr_bucket_stats bucket;
    assert_cgr_ok(rt, cgr_bucket_stats_get(rt, small_buckets[b], &bucket));
    for (int set = 0; set < 2; ++set) {
      /* The hold host node and five kernels. */
      assert_int_equal(bucket.nodes[set], 6);
      assert_true(bucket.capture_ms[set] >= 0.0);
      assert_true(bucket.instantiate_ms[set] >= 0.0);
    }
  }
  cgr_runtime_destroy(rt);
}

/* Expects cgr_capture to fail with CGR_E_CAPTURE, leave nothing captured,
 * and a runtime that captures the fixed step afterwards. */
static void expect_capture_error_then_recover(cgr_runtime *rt, model *m,
                                              const char *says) {
  assert_cgr_status(rt, cgr_capture(rt, model_step, m), CGR_E_CAPTURE);
  assert_last_error_contains(rt, says);
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.buckets_captured, 0);
  assert_int_equal(stats.arena_bytes, 0);
  m->sync_during_capture = 0;
  m->fail_bucket = 0;
  assert_cgr_ok(rt, cgr_capture(rt, model_step, m));
  replay_and_check(rt, m, 4, 1, 3, 77);
}

static void test_step_that_synchronizes_is_a_capture_error(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  for (int mode = 1; mode <= 2; ++mode) {
    cgr_runtime *rt = model_runtime(small_buckets, 6, 1, &m);
    /* 1: the step returns the failed synchronize's status; 2: it ignores
     * it, and the invalidated capture reports it at its end. */
    m.sync_during_capture = mode;
    expect_capture_error_then_recover(rt, &m, "bucket 24, set 0");
    cgr_runtime_destroy(rt);
  }
}

static void test_step_error_aborts_capture_naming_bucket(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_runtime(small_buckets, 6, 1, &m);
  m.fail_bucket = 4;
  m.fail_set = 1;
  expect_capture_error_then_recover(rt, &m, "bucket 4, set 1");
  cgr_runtime_destroy(rt);
}

static void
test_smaller_bucket_needing_more_scratch_fails_clearly(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_runtime(small_buckets, 6, 1, &m);
  m.smaller_needs_more = 1;
  assert_cgr_status(rt, cgr_capture(rt, model_step, &m), CGR_E_CAPTURE);
  assert_last_error_contains(rt, "needs more scratch than the arena holds");
  assert_last_error_contains(rt, "bucket 16");
  cgr_runtime_destroy(rt);
}

static void
test_capture_faults_leave_a_runtime_that_captures_again(void **state) {
  cgr_test_require_host();
  (void)cgr_test_runtime(state);
  static const uint32_t buckets[] = {1, 2, 4};
  static const cgr__call kinds[] = {
      CGR__CALL_HOST_ALLOC,    CGR__CALL_DEVICE_ALLOC,
      CGR__CALL_KERNEL_LAUNCH, CGR__CALL_CAPTURE_BEGIN,
      CGR__CALL_CAPTURE_END,   CGR__CALL_GRAPH_INSTANTIATE,
      CGR__CALL_COPY,          CGR__CALL_SYNCHRONIZE,
  };
  int failures = 0;
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; ++k) {
    for (uint64_t nth = 1;; ++nth) {
      model m;
      cgr_runtime *rt = model_runtime(buckets, 3, 1, &m);
      cgr__fault_arm(kinds[k], nth);
      cgr_status status = cgr_capture(rt, model_step, &m);
      int fired = cgr__fault_fired();
      cgr__fault_disarm();
      if (!fired) {
        assert_cgr_ok(rt, status);
        cgr_runtime_destroy(rt);
        break;
      }
      if (status == CGR_OK)
        fail_msg("capture succeeded although %s call #%llu failed",
                 cgr__call_name(kinds[k]), (unsigned long long)nth);
      failures++;
      cgr_capture_stats stats;
      assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
      assert_int_equal(stats.buckets_captured, 0);
      assert_int_equal(stats.arena_bytes, 0);
      /* The same runtime captures cleanly afterwards, and replays right. */
      assert_cgr_ok(rt, cgr_capture(rt, model_step, &m));
      replay_and_check(rt, &m, 4, 0, 3, (unsigned)nth);
      cgr_runtime_destroy(rt);
      assert_true(nth < 500);
    }
  }
  assert_true(failures > 50);
}

static int log_calls;
static char last_log[512];

static void count_log(void *user, const char *message) {
  (void)user;
  log_calls++;
  snprintf(last_log, sizeof last_log, "%s", message);
}

static void test_eager_fallback_is_counted_and_logged_once(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = small_buckets;
  config.bucket_count = 6;
  config.log = count_log;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  model_declare(rt, &m);
  assert_cgr_ok(rt, cgr_capture(rt, model_step, &m));
  log_calls = 0;
  for (uint32_t batch = 25; batch <= 40; batch += 5) {
    cgr__eager eager;
    assert_cgr_ok(rt, cgr__eager_begin(rt, batch, 1, 0, 1, &eager));
    void *slot_of[8];
    for (int i = 0; i < 8; ++i)
      slot_of[i] = cgr__eager_slot(&eager, (cgr_slot)i);
    model_inputs in;
    model_make_inputs(&in, batch, batch, batch);
    upload(rt, slot_of, &m, &in);
    assert_cgr_ok(rt, cgr__eager_run(rt, &eager));
    check_outputs(rt, slot_of, &m, &in, batch, batch, NULL);
    cgr__eager_end(rt, &eager);
  }
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.eager_runs, 4);
  assert_int_equal(log_calls, 1);
  assert_non_null(strstr(last_log, "batch 25 is larger than the largest "
                                   "bucket (24)"));
  cgr_runtime_destroy(rt);
}

static void test_eager_fallback_refused_when_not_allowed(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(small_buckets, 6, 0, &m);
  cgr__eager eager;
  assert_cgr_status(rt, cgr__eager_begin(rt, 25, 1, 0, 1, &eager),
                    CGR_E_BATCH_TOO_LARGE);
  assert_last_error_contains(rt, "allow_eager is 0");
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.eager_runs, 0);
  cgr_runtime_destroy(rt);
}

static void test_lazy_capture_captures_on_first_use(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = small_buckets;
  config.bucket_count = 6;
  config.lazy_capture = 1;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  model_declare(rt, &m);
  assert_cgr_ok(rt, cgr_capture(rt, model_step, &m));
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.buckets_captured, 0);
  assert_true(stats.arena_bytes > 0); /* sized up front all the same */
  assert_cgr_ok(rt, cgr_capture_bucket(rt, 8));
  assert_cgr_ok(rt, cgr_capture_bucket(rt, 8)); /* once is enough */
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.buckets_captured, 1);
  replay_and_check(rt, &m, 8, 1, 6, 5);
  assert_cgr_status(rt, cgr_capture_bucket(rt, 9), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "9 is not a bucket");
  cgr_runtime_destroy(rt);
}

static void test_capture_misuse_is_rejected(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_runtime(small_buckets, 6, 1, &m);
  assert_cgr_status(rt, cgr_capture_bucket(rt, 4), CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "call cgr_capture() first");
  assert_cgr_status(rt, cgr_capture(rt, NULL, NULL), CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(rt, cgr_graph_dump(rt, 4, 0, "/tmp/x.dot"),
                    CGR_E_INVALID_STATE);
  assert_cgr_ok(rt, cgr_capture(rt, model_step, &m));
  assert_cgr_status(rt, cgr_capture(rt, model_step, &m), CGR_E_INVALID_STATE);
  cgr_slot_desc d;
  cgr_slot late;
  cgr_slot_desc_init(&d, "late", CGR_SLOT_ROWS, 4, 1);
  assert_cgr_status(rt, cgr_slot_declare(rt, &d, &late), CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "after cgr_capture()");
  cgr_runtime_destroy(rt);
}

static void test_graph_dump_writes_dot(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(small_buckets, 6, 1, &m);
  char path[] = "/tmp/cgr_graph_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_cgr_ok(rt, cgr_graph_dump(rt, 16, 1, path));
  FILE *file = fopen(path, "r");
  assert_non_null(file);
  char text[16384];
  size_t n = fread(text, 1, sizeof text - 1, file);
  text[n] = '\0';
  fclose(file);
  remove(path);
  assert_non_null(strstr(text, "digraph"));
  if (cgr_test_backend == CGR_BACKEND_HOST) {
    assert_non_null(strstr(text, "6 nodes"));
    assert_non_null(strstr(text, "kernel add_i32"));
  }
  assert_cgr_status(rt, cgr_graph_dump(rt, 16, 1, "/nonexistent/dir/g.dot"),
                    cgr_test_backend == CGR_BACKEND_HOST ? CGR_E_SYSTEM
                                                         : CGR_E_CUDA);
  cgr_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_every_bucket_and_set_replays_like_eager),
    RUNTIME_TEST(test_inputs_hold_padding_after_capture),
    RUNTIME_TEST(test_arena_peak_is_the_largest_bucket_not_the_sum),
    RUNTIME_TEST(test_capture_counts_graphs_and_nodes),
    RUNTIME_TEST(test_step_that_synchronizes_is_a_capture_error),
    RUNTIME_TEST(test_step_error_aborts_capture_naming_bucket),
    RUNTIME_TEST(test_smaller_bucket_needing_more_scratch_fails_clearly),
    HOST_RUNTIME_TEST(test_capture_faults_leave_a_runtime_that_captures_again),
    RUNTIME_TEST(test_eager_fallback_is_counted_and_logged_once),
    RUNTIME_TEST(test_eager_fallback_refused_when_not_allowed),
    RUNTIME_TEST(test_lazy_capture_captures_on_first_use),
    RUNTIME_TEST(test_capture_misuse_is_rejected),
    RUNTIME_TEST(test_graph_dump_writes_dot),
};

CGR_TEST_MAIN(tests)
