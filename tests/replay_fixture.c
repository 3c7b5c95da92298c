/* The replay tests' shared fixture (replay_fixture.h). */
#include <stdlib.h>
#include <string.h>

#include "replay/replay.h"
#include "replay_fixture.h"

int steps_to_run(int otherwise) {
  const char *text = getenv("CGR_TEST_STEPS");
  int steps = text ? atoi(text) : 0;
  return steps > 0 ? steps : otherwise;
}

uint32_t below(uint64_t *state, uint32_t bound) {
  return (uint32_t)test_random_below(state, bound);
}

void sources_create(cgr_runtime *rt, sources *s, uint64_t *seed) {
  cgr__backend *be = TEST_BE(rt);
  size_t bytes = (MAX_BATCH + 1) * MODEL_PAGES * sizeof(int32_t);
  for (int k = 0; k < 2; ++k) {
    for (int i = 0; i < 4; ++i) {
      assert_cgr_ok(rt,
                    cgr__be_pinned_alloc(be, bytes, (void **)&s->pinned[k][i]));
      assert_cgr_ok(rt,
                    cgr__be_device_alloc(be, bytes, (void **)&s->device[k][i]));
    }
    for (int i = 0; i < 4; ++i)
      assert_cgr_ok(rt, cgr__be_device_alloc(be, MAX_BATCH * sizeof(int32_t),
                                             (void **)&s->index[k][i]));
  }
  for (int r = 0; r < TABLE_ROWS; ++r) {
    s->host_table_ids[r] = (int32_t)below(seed, 50000);
    for (int p = 0; p < MODEL_PAGES; ++p)
      s->host_table[r * MODEL_PAGES + p] =
          (int32_t)below(seed, MODEL_PAGE_LIMIT);
  }
  assert_cgr_ok(rt, cgr__be_device_alloc(be, sizeof s->host_table,
                                         (void **)&s->table));
  assert_cgr_ok(rt, cgr__be_device_alloc(be, sizeof s->host_table_ids,
                                         (void **)&s->table_ids));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), s->table,
                                         s->host_table, sizeof s->host_table));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), s->table_ids,
                                         s->host_table_ids,
                                         sizeof s->host_table_ids));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
}

void sources_destroy(cgr_runtime *rt, sources *s) {
  cgr__backend *be = TEST_BE(rt);
  assert_cgr_ok(rt, cgr_synchronize(rt));
  for (int k = 0; k < 2; ++k) {
    for (int i = 0; i < 4; ++i) {
      cgr__be_pinned_free(be, s->pinned[k][i]);
      cgr__be_device_free(be, s->device[k][i]);
    }
    for (int i = 0; i < 4; ++i)
      cgr__be_device_free(be, s->index[k][i]);
  }
  cgr__be_device_free(be, s->table);
  cgr__be_device_free(be, s->table_ids);
}

void give(cgr_runtime *rt, cgr_batch *batch, const model *m, sources *s,
          int parity, int slot, choice how, model_inputs *in,
          const set_memory *memory, uint64_t *seed) {
  cgr__backend *be = TEST_BE(rt);
  const cgr_slot ids[4] = {m->ids, m->pos, m->pages, m->cu_k};
  uint32_t b = in->rows;
  int32_t *data[4] = {in->ids, in->pos, in->pages, in->cu_k};
  size_t bytes[4] = {b * 4, b * 4, b * 4 * MODEL_PAGES, (b + 1) * 4};
  switch (how) {
  case UNCHANGED:
    memcpy(data[slot],
           slot == 0   ? memory->in.ids
           : slot == 1 ? memory->in.pos
           : slot == 2 ? memory->in.pages
                       : memory->in.cu_k,
           bytes[slot]);
    assert_cgr_ok(rt, cgr_batch_unchanged(batch, ids[slot]));
    return;
  case GATHER: {
    int32_t index[MAX_BATCH];
    for (uint32_t j = 0; j < b; ++j) {
      index[j] = (int32_t)below(seed, TABLE_ROWS);
      if (slot == 0)
        in->ids[j] = s->host_table_ids[index[j]];
      else
        memcpy(&in->pages[j * MODEL_PAGES],
               &s->host_table[index[j] * MODEL_PAGES],
               MODEL_PAGES * sizeof(int32_t));
    }
    assert_cgr_ok(rt,
                  cgr__be_memcpy_async(be, TEST_MAIN(rt),
                                       s->index[parity][slot], index, b * 4));
    assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
    assert_cgr_ok(rt, cgr_batch_gather(batch, ids[slot],
                                       slot == 0 ? s->table_ids : s->table,
                                       s->index[parity][slot]));
    return;
  }
  case PINNED:
    memcpy(s->pinned[parity][slot], data[slot], bytes[slot]);
    assert_cgr_ok(rt, cgr_batch_input(batch, ids[slot], CGR_SOURCE_PINNED,
                                      s->pinned[parity][slot], bytes[slot]));
    return;
  case DEVICE:
    /* Written and finished before the replay: the engine reads device
     * sources behind its own events only. */
    assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt),
                                           s->device[parity][slot], data[slot],
                                           bytes[slot]));
    assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
    assert_cgr_ok(rt, cgr_batch_input(batch, ids[slot], CGR_SOURCE_DEVICE,
                                      s->device[parity][slot], bytes[slot]));
    return;
  case HOST:
    memcpy(s->pageable[slot], data[slot], bytes[slot]);
    assert_cgr_ok(rt, cgr_batch_input(batch, ids[slot], CGR_SOURCE_HOST,
                                      s->pageable[slot], bytes[slot]));
    return;
  }
}

void check_padding(cgr_runtime *rt, const model *m, const step_record *r) {
  if (r->ticket.set < 0)
    return;
  uint32_t b = r->ticket.batch_size, bs = r->ticket.padded_batch;
  if (b == bs)
    return;
  int32_t rows[LARGEST * MODEL_PAGES + 1];
  void *address = NULL;
  const struct {
    cgr_slot slot;
    int width;
    int32_t pad;
  } checks[3] = {{m->ids, 1, 0},
                 {m->pos, 1, MODEL_PAD_POS},
                 {m->pages, MODEL_PAGES, MODEL_PAD_PAGE}};
  for (int c = 0; c < 3; ++c) {
    assert_cgr_ok(rt, cgr_slot_address(rt, checks[c].slot, r->ticket.set, 0,
                                       &address));
    assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), rows,
                                           address, bs * checks[c].width * 4));
    assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
    for (uint32_t e = b * checks[c].width; e < bs * checks[c].width; ++e)
      if (rows[e] != checks[c].pad)
        fail_msg("step %llu: padded element %u of slot %d holds %d, not the "
                 "pad %d",
                 (unsigned long long)r->ticket.step, e, c, rows[e],
                 checks[c].pad);
  }
  assert_cgr_ok(rt, cgr_slot_address(rt, m->cu_k, r->ticket.set, 0, &address));
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), rows,
                                         address, (bs + 1) * 4));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
  for (uint32_t e = b + 1; e <= bs; ++e)
    assert_int_equal(rows[e], r->in.cu_k[b]);
}

void check_outputs(cgr_runtime *rt, const model *m, const step_record *r) {
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &r->ticket));
  assert_cgr_ok(rt, cgr_ticket_query(rt, &r->ticket));
  void *out = NULL, *out_pages = NULL;
  assert_cgr_ok(rt, cgr_output(rt, &r->ticket, m->out, &out));
  assert_cgr_ok(rt, cgr_output(rt, &r->ticket, m->out_pages, &out_pages));
  model_check_outputs(rt, out, out_pages, &r->in, r->ticket.padded_batch,
                      r->ticket.batch_size, NULL);
}

void check_step(cgr_runtime *rt, const model *m, const step_record *r) {
  check_outputs(rt, m, r);
  check_padding(rt, m, r);
}

/* An eager run of the same step on the same rows must agree with the
 * replay (constants differ by bucket: compare what does not). */
void check_against_eager(cgr_runtime *rt, const model *m,
                         const step_record *r) {
  uint32_t b = r->ticket.batch_size;
  int32_t replayed[MODEL_MAX_ROWS], eager_out[MODEL_MAX_ROWS];
  void *out = NULL, *out_pages = NULL;
  assert_cgr_ok(rt, cgr_output(rt, &r->ticket, m->out, &out));
  assert_cgr_ok(rt, cgr_output(rt, &r->ticket, m->out_pages, &out_pages));
  model_check_outputs(rt, out, out_pages, &r->in, r->ticket.padded_batch, b,
                      replayed);
  cgr__eager eager;
  assert_cgr_ok(rt, cgr__eager_begin(rt, b, 1, 0, 1, &eager));
  const cgr_slot slots[4] = {m->ids, m->pos, m->pages, m->cu_k};
  const int32_t *data[4] = {r->in.ids, r->in.pos, r->in.pages, r->in.cu_k};
  size_t bytes[4] = {b * 4, b * 4, b * 4 * MODEL_PAGES, (b + 1) * 4};
  for (int i = 0; i < 4; ++i)
    assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt),
                                           cgr__eager_slot(&eager, slots[i]),
                                           data[i], bytes[i]));
  assert_cgr_ok(rt, cgr__eager_run(rt, &eager));
  model_check_outputs(rt, cgr__eager_slot(&eager, m->out),
                      cgr__eager_slot(&eager, m->out_pages), &r->in, b, b,
                      eager_out);
  for (uint32_t i = 0; i < b; ++i)
    assert_int_equal(replayed[i] - (int32_t)(r->ticket.padded_batch * 100),
                     eager_out[i] - (int32_t)(b * 100));
  cgr__eager_end(rt, &eager);
}

uint32_t next_batch(uint32_t current, uint64_t *seed) {
  uint32_t roll = below(seed, 100);
  if (roll < 10)
    return 1 + below(seed, MAX_BATCH);
  if (roll < 55)
    current += 1 + below(seed, 3);
  else if (current > 3)
    current -= 1 + below(seed, 3);
  if (current < 1)
    current = 1;
  if (current > MAX_BATCH)
    current = MAX_BATCH - below(seed, 8);
  return current;
}

cgr_runtime *pipelined_runtime(model *m, const uint32_t *buckets, size_t count,
                               int lazy, int feed) {
  memset(m, 0, sizeof *m);
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = buckets;
  config.bucket_count = count;
  config.lazy_capture = lazy;
  config.replay_mode = CGR_REPLAY_PIPELINED;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  model_declare(rt, m);
  if (feed)
    assert_cgr_ok(rt, cgr_slot_feed(rt, m->out, m->ids));
  assert_cgr_ok(rt, cgr_capture(rt, model_step, m));
  return rt;
}
