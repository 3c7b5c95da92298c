#include "model.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/basic.h"

static void bias_fill(void *user, uint32_t padded_batch, void *dst,
                      uint64_t elems) {
  (void)user;
  int32_t *values = dst;
  for (uint64_t i = 0; i < elems; ++i)
    values[i] = (int32_t)(padded_batch * 100 + i);
}

static cgr_status add(cgr_step *step, void *dst, const void *a, const void *b,
                      uint64_t count) {
  cgr__add_i32_args args = {dst, a, b, (int64_t)count};
  return cgr_step_launch(step, &cgr__kernel_add_i32, &args);
}

/* A host node at the head of every graph: holds the graph while a test's
 * gate is set, so tests can order work around a running graph. */
static void hold_if_asked(void *user) {
  model *m = user;
  test_gate *gate = __atomic_exchange_n(&m->hold, NULL, __ATOMIC_ACQ_REL);
  if (gate != NULL)
    (void)test_gate_wait(gate, 10000);
}

cgr_status model_step(cgr_step *step, void *user) {
  model *m = user;
  m->runs++;
  uint32_t bs = cgr_step_padded_batch(step);
  if (bs == m->fail_bucket && cgr_step_buffer_set(step) == m->fail_set &&
      cgr_step_is_capturing(step))
    return cgr__fail(&cgr_step_runtime(step)->error, CGR_E_INVALID_ARGUMENT,
                     "model_step", "the test's step refuses bucket %u", bs);
  CGR__CHECK(cgr_step_host_func(step, hold_if_asked, m));
  uint64_t scratch_bytes = (uint64_t)bs * sizeof(int32_t);
  if (m->smaller_needs_more)
    scratch_bytes = (uint64_t)(1024 / bs) * 1024;
  int32_t *s1 = NULL, *s2 = NULL;
  CGR__CHECK(cgr_step_scratch(step, scratch_bytes, 256, (void **)&s1));
  CGR__CHECK(cgr_step_scratch(step, bs * sizeof(int32_t), 64, (void **)&s2));
  int32_t *ids = cgr_step_slot(step, m->ids);
  int32_t *pos = cgr_step_slot(step, m->pos);
  int32_t *pages = cgr_step_slot(step, m->pages);
  int32_t *cu_k = cgr_step_slot(step, m->cu_k);
  int32_t *cu_q = cgr_step_slot(step, m->cu_q);
  int32_t *bias = cgr_step_slot(step, m->bias);
  int32_t *out = cgr_step_slot(step, m->out);
  int32_t *out_pages = cgr_step_slot(step, m->out_pages);
  CGR__CHECK(add(step, s1, ids, pos, bs));
  CGR__CHECK(add(step, s2, s1, cu_k + 1, bs));
  if (m->sync_during_capture && cgr_step_is_capturing(step)) {
    cgr_status status = cgr_synchronize(cgr_step_runtime(step));
    if (m->sync_during_capture == 1)
      CGR__CHECK(status);
  }
  CGR__CHECK(add(step, s1, s2, cu_q, bs));
  CGR__CHECK(add(step, out, s1, bias, bs));
  return add(step, out_pages, pages, pages, (uint64_t)bs * MODEL_PAGES);
}

cgr_status model_try_declare(cgr_runtime *rt, model *m) {
  memset(m, 0, sizeof *m);
  struct {
    const char *name;
    cgr_slot_kind kind;
    uint64_t row_elems;
    cgr_slot *out;
  } slots[] = {
      {"input_ids", CGR_SLOT_ROWS, 1, &m->ids},
      {"positions", CGR_SLOT_ROWS, 1, &m->pos},
      {"page_table", CGR_SLOT_ROWS, MODEL_PAGES, &m->pages},
      {"cu_seqlens_k", CGR_SLOT_PREFIX, 1, &m->cu_k},
      {"cu_seqlens_q", CGR_SLOT_CONSTANT, 1, &m->cu_q},
      {"bias", CGR_SLOT_CONSTANT, 1, &m->bias},
      {"out", CGR_SLOT_OUTPUT, 1, &m->out},
      {"out_pages", CGR_SLOT_OUTPUT, MODEL_PAGES, &m->out_pages},
  };
  for (size_t i = 0; i < sizeof slots / sizeof slots[0]; ++i) {
    cgr_slot_desc d;
    cgr_slot_desc_init(&d, slots[i].name, slots[i].kind, 4, slots[i].row_elems);
    if (slots[i].out == &m->pos)
      d.pad_value = MODEL_PAD_POS;
    if (slots[i].out == &m->pages) {
      d.pad_value = (uint32_t)MODEL_PAD_PAGE;
      d.valid_min = 0;
      d.valid_max = MODEL_PAGE_LIMIT - 1;
    }
    if (slots[i].out == &m->cu_q)
      d.extra_elems = 1;
    if (slots[i].out == &m->bias)
      d.fill = bias_fill;
    cgr_status status = cgr_slot_declare(rt, &d, slots[i].out);
    if (status != CGR_OK)
      return status;
  }
  return CGR_OK;
}

void model_declare(cgr_runtime *rt, model *m) {
  assert_cgr_ok(rt, model_try_declare(rt, m));
}

/* A runtime of `config` with these buckets, the model declared. */
static cgr_runtime *declared_runtime(cgr_config *config,
                                     const uint32_t *buckets, size_t n,
                                     model *m) {
  config->buckets = buckets;
  config->bucket_count = n;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(config, &rt));
  model_declare(rt, m);
  return rt;
}

cgr_runtime *model_runtime(const uint32_t *buckets, size_t n, int allow_eager,
                           model *m) {
  return model_runtime_validating(buckets, n, allow_eager, 1, m);
}

cgr_runtime *model_runtime_validating(const uint32_t *buckets, size_t n,
                                      int allow_eager, int validate, model *m) {
  cgr_config config;
  cgr_test_config(&config);
  config.allow_eager = allow_eager;
  config.validate = validate;
  return declared_runtime(&config, buckets, n, m);
}

cgr_runtime *model_captured_runtime(const uint32_t *buckets, size_t n,
                                    int allow_eager, model *m) {
  cgr_runtime *rt = model_runtime(buckets, n, allow_eager, m);
  assert_cgr_ok(rt, cgr_capture(rt, model_step, m));
  return rt;
}

cgr_runtime *model_unvalidated_runtime(model *m, cgr_replay_mode mode) {
  static const uint32_t buckets[] = {1, 2, 4, 8};
  cgr_config config;
  cgr_test_config(&config);
  config.validate = 0;
  cgr_runtime *rt = declared_runtime(&config, buckets, 4, m);
  assert_cgr_ok(rt, cgr_capture(rt, model_step, m));
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, mode));
  return rt;
}

void model_make_inputs(model_inputs *in, uint32_t live, uint32_t rows,
                       unsigned seed) {
  srand(seed);
  in->rows = rows;
  in->cu_k[0] = 0;
  for (uint32_t r = 0; r < rows; ++r) {
    int is_live = r < live;
    in->ids[r] = is_live ? rand() % 50000 : 0;
    in->pos[r] = is_live ? rand() % 4096 : MODEL_PAD_POS;
    for (int p = 0; p < MODEL_PAGES; ++p)
      in->pages[r * MODEL_PAGES + p] =
          is_live ? rand() % MODEL_PAGE_LIMIT : MODEL_PAD_PAGE;
    in->cu_k[r + 1] = in->cu_k[r] + (is_live ? 1 + rand() % 60 : 0);
  }
}

int32_t model_expected_out(const model_inputs *in, uint32_t padded_batch,
                           uint32_t r) {
  return in->ids[r] + in->pos[r] + in->cu_k[r + 1] + (int32_t)r +
         (int32_t)(padded_batch * 100 + r);
}

void model_check_outputs(cgr_runtime *rt, const void *out,
                         const void *out_pages, const model_inputs *in,
                         uint32_t padded_batch, uint32_t live,
                         int32_t *out_copy) {
  int32_t got[MODEL_MAX_ROWS], got_pages[MODEL_MAX_ROWS * MODEL_PAGES];
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), got, out,
                                         live * 4));
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), got_pages,
                                         out_pages, live * 4 * MODEL_PAGES));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
  for (uint32_t r = 0; r < live; ++r) {
    if (got[r] != model_expected_out(in, padded_batch, r))
      fail_msg("bucket %u: out[%u] = %d, expected %d", padded_batch, r, got[r],
               model_expected_out(in, padded_batch, r));
    for (int p = 0; p < MODEL_PAGES; ++p)
      if (got_pages[r * MODEL_PAGES + p] != 2 * in->pages[r * MODEL_PAGES + p])
        fail_msg("bucket %u: out_pages[%u][%d] = %d, expected %d", padded_batch,
                 r, p, got_pages[r * MODEL_PAGES + p],
                 2 * in->pages[r * MODEL_PAGES + p]);
  }
  if (out_copy != NULL)
    memcpy(out_copy, got, live * 4);
}

cgr_batch *model_begin_batch(cgr_runtime *rt, const model *m,
                             const model_inputs *in, uint32_t rows,
                             cgr_slot skip) {
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, rows, &batch));
  size_t bytes = rows * sizeof(int32_t);
  const struct {
    cgr_slot slot;
    const void *data;
    size_t bytes;
  } given[] = {{m->ids, in->ids, bytes},
               {m->pos, in->pos, bytes},
               {m->pages, in->pages, bytes * MODEL_PAGES},
               {m->cu_k, in->cu_k, bytes + sizeof(int32_t)}};
  for (size_t i = 0; i < sizeof given / sizeof given[0]; ++i)
    if (given[i].slot != skip)
      assert_cgr_ok(rt, cgr_batch_input(batch, given[i].slot, CGR_SOURCE_HOST,
                                        given[i].data, given[i].bytes));
  return batch;
}
