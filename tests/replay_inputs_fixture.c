/* The cgr_replay_inputs tests' shared fixture (replay_inputs_fixture.h). */
#include <string.h>

#include "replay_inputs_fixture.h"

static const uint32_t buckets[] = {1, 2, 4, 8};
enum {
  BUCKETS = 4,
  SLOT_BYTES = (MAX_ROWS + 1) * MODEL_PAGES * sizeof(int32_t)
};

uint32_t below(uint64_t *state, uint32_t bound) {
  return (uint32_t)test_random_below(state, bound);
}

void tables_make(tables *t, uint64_t seed) {
  for (int r = 0; r < TABLE_ROWS; ++r) {
    t->ids[r] = (int32_t)below(&seed, 50000);
    for (int p = 0; p < MODEL_PAGES; ++p)
      t->pages[r * MODEL_PAGES + p] = (int32_t)below(&seed, MODEL_PAGE_LIMIT);
  }
}

void side_open(side *s, cgr_replay_mode mode, const tables *t) {
  memset(s, 0, sizeof *s);
  s->rt = model_runtime(buckets, BUCKETS, 1, &s->m);
  cgr_runtime *rt = s->rt;
  assert_cgr_ok(rt, cgr_slot_feed(rt, s->m.out, s->m.ids));
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, mode));
  assert_cgr_ok(rt, cgr_capture(rt, model_step, &s->m));
  for (int k = 0; k < 2; ++k)
    for (int i = 0; i < 4; ++i) {
      assert_cgr_ok(rt, cgr_pinned_alloc(rt, SLOT_BYTES,
                                         (void **)&s->pinned[k][i]));
      assert_cgr_ok(rt, cgr_device_alloc(rt, SLOT_BYTES,
                                         (void **)&s->device[k][i]));
      assert_cgr_ok(rt, cgr_device_alloc(rt, MAX_ROWS * sizeof(int32_t),
                                         (void **)&s->index[k][i]));
    }
  assert_cgr_ok(rt,
                cgr_device_alloc(rt, sizeof t->ids, (void **)&s->table_ids));
  assert_cgr_ok(rt, cgr_device_alloc(rt, sizeof t->pages,
                                     (void **)&s->table_pages));
  assert_cgr_ok(rt, cgr_memcpy(rt, s->table_ids, t->ids, sizeof t->ids));
  assert_cgr_ok(rt, cgr_memcpy(rt, s->table_pages, t->pages, sizeof t->pages));
}

void side_close(side *s) {
  cgr_runtime *rt = s->rt;
  assert_cgr_ok(rt, cgr_synchronize(rt));
  for (int k = 0; k < 2; ++k)
    for (int i = 0; i < 4; ++i) {
      assert_cgr_ok(rt, cgr_pinned_free(rt, s->pinned[k][i]));
      assert_cgr_ok(rt, cgr_device_free(rt, s->device[k][i]));
      assert_cgr_ok(rt, cgr_device_free(rt, s->index[k][i]));
    }
  assert_cgr_ok(rt, cgr_device_free(rt, s->table_ids));
  assert_cgr_ok(rt, cgr_device_free(rt, s->table_pages));
  cgr_runtime_destroy(rt);
}

size_t slot_bytes(int slot, uint32_t rows) {
  size_t bytes[4] = {rows * 4, rows * 4, rows * 4 * MODEL_PAGES,
                     (rows + 1) * 4};
  return bytes[slot];
}

void read_outputs(side *s, const cgr_ticket *ticket, int32_t *out,
                  int32_t *out_pages) {
  void *address = NULL;
  size_t rows = ticket->padded_batch;
  assert_cgr_ok(s->rt, cgr_ticket_wait(s->rt, ticket));
  assert_cgr_ok(s->rt, cgr_output(s->rt, ticket, s->m.out, &address));
  assert_cgr_ok(s->rt, cgr_memcpy(s->rt, out, address, rows * 4));
  assert_cgr_ok(s->rt, cgr_output(s->rt, ticket, s->m.out_pages, &address));
  assert_cgr_ok(s->rt,
                cgr_memcpy(s->rt, out_pages, address, rows * 4 * MODEL_PAGES));
}

void host_entries(const model *m, const model_inputs *in, cgr_input *out) {
  const cgr_slot slots[4] = {m->ids, m->pos, m->pages, m->cu_k};
  const int32_t *data[4] = {in->ids, in->pos, in->pages, in->cu_k};
  for (int i = 0; i < 4; ++i)
    out[i] = (cgr_input){.slot = slots[i],
                         .kind = CGR_INPUT_DATA,
                         .source = CGR_SOURCE_HOST,
                         .data = data[i],
                         .bytes = slot_bytes(i, in->rows)};
}

void check_step(side *s, const cgr_ticket *ticket, const model_inputs *in) {
  int32_t out[MAX_ROWS], pages[MAX_ROWS * MODEL_PAGES];
  read_outputs(s, ticket, out, pages);
  for (uint32_t r = 0; r < ticket->batch_size; ++r) {
    assert_int_equal(out[r], model_expected_out(in, ticket->padded_batch, r));
    for (int k = 0; k < MODEL_PAGES; ++k)
      assert_int_equal(pages[r * MODEL_PAGES + k],
                       2 * in->pages[r * MODEL_PAGES + k]);
  }
}
