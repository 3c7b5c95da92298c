/* The keyed test step (keys_fixture.h). */
#include <string.h>

#include "kernels/basic.h"
#include "keys_fixture.h"

void bias_fill(void *user, const cgr_key *key, void *dst, uint64_t elems) {
  (void)user;
  int32_t *values = dst;
  for (uint64_t i = 0; i < elems; ++i)
    values[i] =
        (int32_t)(key->padded_batch * 1000 + key->tokens_per_request * 100 + i);
}

static cgr_status add(cgr_step *step, void *dst, const void *a, const void *b,
                      uint64_t count) {
  cgr__add_i32_args args = {dst, a, b, (int64_t)count};
  return cgr_step_launch(step, &cgr__kernel_add_i32, &args);
}

static cgr_status keyed_step(cgr_step *step, void *user) {
  keyed *m = user;
  uint32_t bs = cgr_step_padded_batch(step);
  uint32_t q = cgr_step_tokens_per_request(step);
  uint32_t v = cgr_step_variant(step);
  uint64_t rows = (uint64_t)bs * q;
  int32_t *s1 = NULL, *s2 = NULL;
  CGR__CHECK(
      cgr_step_scratch(step, rows * 4 * (v == 2 ? 3 : 1), 256, (void **)&s1));
  CGR__CHECK(cgr_step_scratch(step, bs * 4, 256, (void **)&s2));
  int32_t *ids = cgr_step_slot(step, m->ids);
  CGR__CHECK(add(step, s1, ids, cgr_step_slot(step, m->pos), rows));
  if (v == 1)
    CGR__CHECK(add(step, s1, s1, ids, rows));
  CGR__CHECK(add(step, s1, s1, cgr_step_slot(step, m->tok), rows));
  CGR__CHECK(add(step, cgr_step_slot(step, m->out), s1,
                 cgr_step_slot(step, m->bias), rows));
  int32_t *cu_k = cgr_step_slot(step, m->cu_k);
  CGR__CHECK(add(step, s2, cgr_step_slot(step, m->lens), cu_k + 1, bs));
  return add(step, cgr_step_slot(step, m->out_req), s2,
             cgr_step_slot(step, m->cu_q), bs);
}

static cgr_slot declare(cgr_runtime *rt, const char *name, cgr_slot_kind kind,
                        cgr_slot_scale scale, int64_t pad) {
  cgr_slot_desc desc;
  cgr_slot_desc_init(&desc, name, kind, 4, 1);
  desc.scale = scale;
  desc.pad_value = (uint64_t)pad;
  cgr_slot slot = -1;
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &slot));
  return slot;
}

cgr_runtime *keyed_runtime(keyed *m, cgr_replay_mode mode, int lazy, int feed) {
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = buckets;
  config.bucket_count = BUCKETS;
  config.tokens_per_request = tokens;
  config.tokens_per_request_count = TOKENS;
  config.variants = variants;
  config.variant_count = VARIANTS;
  config.replay_mode = mode;
  config.lazy_capture = lazy;
  config.log = NULL;
  cgr_runtime *rt = NULL;
  if (cgr_runtime_create(&config, &rt) != CGR_OK)
    fail_msg("cgr_runtime_create: %s", cgr_last_error(NULL));
  memset(m, 0, sizeof *m);
  m->feed = feed;
  m->ids = declare(rt, "ids", CGR_SLOT_ROWS, CGR_SCALE_TOKEN, 0);
  m->pos = declare(rt, "pos", CGR_SLOT_ROWS, CGR_SCALE_TOKEN, PAD_POS);
  m->lens = declare(rt, "lens", CGR_SLOT_ROWS, CGR_SCALE_REQUEST, 0);
  m->cu_k = declare(rt, "cu_k", CGR_SLOT_PREFIX, CGR_SCALE_REQUEST, 0);
  cgr_slot_desc desc;
  cgr_slot_desc_init(&desc, "cu_q", CGR_SLOT_CONSTANT, 4, 1);
  desc.extra_elems = 1;
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &m->cu_q));
  cgr_slot_desc_init(&desc, "tok", CGR_SLOT_CONSTANT, 4, 1);
  desc.scale = CGR_SCALE_TOKEN;
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &m->tok));
  cgr_slot_desc_init(&desc, "bias", CGR_SLOT_CONSTANT, 4, 1);
  desc.scale = CGR_SCALE_TOKEN;
  desc.fill_key = bias_fill;
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &m->bias));
  m->out = declare(rt, "out", CGR_SLOT_OUTPUT, CGR_SCALE_TOKEN, 0);
  m->out_req = declare(rt, "out_req", CGR_SLOT_OUTPUT, CGR_SCALE_REQUEST, 0);
  if (feed)
    assert_cgr_ok(rt, cgr_slot_feed(rt, m->out, m->ids));
  assert_cgr_ok(rt, cgr_capture(rt, keyed_step, m));
  return rt;
}

int32_t expected_out(const step_inputs *in, uint32_t padded, uint32_t t) {
  return in->ids[t] * (in->variant == 1 ? 2 : 1) + in->pos[t] + (int32_t)t +
         (int32_t)(padded * 1000 + in->q * 100 + t);
}

int32_t expected_req(const step_inputs *in, uint32_t r) {
  return in->lens[r] + in->cu_k[r + 1] + (int32_t)(r * in->q);
}

/* Reads the ticket's outputs and checks every live row; keeps out[]. */
void check_step(cgr_runtime *rt, const keyed *m, const cgr_ticket *t,
                const step_inputs *in, int32_t *out_copy) {
  assert_cgr_ok(rt, cgr_ticket_wait(rt, t));
  assert_int_equal(t->batch_size, in->batch);
  void *out = NULL, *out_req = NULL;
  assert_cgr_ok(rt, cgr_output(rt, t, m->out, &out));
  assert_cgr_ok(rt, cgr_output(rt, t, m->out_req, &out_req));
  uint32_t rows = in->batch * in->q;
  int32_t got[MAX_ROWS], got_req[MAX_BATCH];
  assert_cgr_ok(rt, cgr_memcpy(rt, got, out, rows * 4));
  assert_cgr_ok(rt, cgr_memcpy(rt, got_req, out_req, in->batch * 4));
  for (uint32_t i = 0; i < rows; ++i)
    if (got[i] != expected_out(in, t->padded_batch, i))
      fail_msg("step %llu (batch %u, q %u, variant %u, bucket %u): out[%u] "
               "is %d, expected %d",
               (unsigned long long)t->step, in->batch, in->q, in->variant,
               t->padded_batch, i, got[i],
               expected_out(in, t->padded_batch, i));
  for (uint32_t r = 0; r < in->batch; ++r)
    if (got_req[r] != expected_req(in, r))
      fail_msg("step %llu (batch %u, q %u): out_req[%u] is %d, expected %d",
               (unsigned long long)t->step, in->batch, in->q, r, got_req[r],
               expected_req(in, r));
  memcpy(out_copy, got, rows * 4);
  /* A graph step's padded token rows held padding: pos the pad, ids 0
   * (the step's feed copy wrote the other set's ids, not these). */
  if (t->set < 0)
    return;
  uint32_t padded_rows = t->padded_batch * in->q;
  void *pos = NULL, *ids = NULL;
  int32_t got_pos[LARGEST * MOST_TOKENS], got_ids[LARGEST * MOST_TOKENS];
  assert_cgr_ok(rt, cgr_slot_address(rt, m->pos, t->set, 0, &pos));
  assert_cgr_ok(rt, cgr_slot_address(rt, m->ids, t->set, 0, &ids));
  assert_cgr_ok(rt, cgr_memcpy(rt, got_pos, pos, padded_rows * 4));
  assert_cgr_ok(rt, cgr_memcpy(rt, got_ids, ids, padded_rows * 4));
  for (uint32_t i = rows; i < padded_rows; ++i)
    if (got_pos[i] != PAD_POS || got_ids[i] != 0)
      fail_msg("step %llu (batch %u, q %u, bucket %u): padded token row %u "
               "holds pos %d, ids %d",
               (unsigned long long)t->step, in->batch, in->q, t->padded_batch,
               i, got_pos[i], got_ids[i]);
}
