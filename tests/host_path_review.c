/* A review of issue 23's host path (owned copy plans, the inline
 * cgr_batch_input, the given count): with validation off, the refusals
 * the whole check and the checked path make must still be made, through
 * every entry point that plans a load, and a refusal must leave the
 * runtime as it was. */
#include <string.h>

#include "harness.h"
#include "model.h"

/* Replays the batch and checks its outputs against `in`; *ticket is the
 * step's. */
static void replay_checking_outputs(cgr_runtime *rt, const model *m,
                                    cgr_batch *batch, const model_inputs *in,
                                    cgr_ticket *ticket) {
  assert_cgr_ok(rt, cgr_replay(rt, batch, ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, ticket));
  void *out = NULL, *out_pages = NULL;
  assert_cgr_ok(rt, cgr_output(rt, ticket, m->out, &out));
  assert_cgr_ok(rt, cgr_output(rt, ticket, m->out_pages, &out_pages));
  model_check_outputs(rt, out, out_pages, in, ticket->padded_batch, in->rows,
                      NULL);
}

/* Replays `in` with every slot from the host and checks the outputs. */
static void replay_and_check(cgr_runtime *rt, const model *m,
                             const model_inputs *in) {
  cgr_ticket ticket;
  replay_checking_outputs(rt, m, model_begin_batch(rt, m, in, in->rows, -1), in,
                          &ticket);
}

/* A gather whose index array is a destination of the same load (the page
 * table of the set being loaded) reads indices the load rewrites: refused
 * with validation off (an owned plan checks a gather's index as caller
 * memory), in every mode that plans a copy, and the runtime goes on. */
static void
test_unvalidated_gather_index_inside_a_destination_is_refused(void **state) {
  (void)cgr_test_runtime(state);
  static const cgr_replay_mode modes[] = {CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED,
                                          CGR_REPLAY_DOUBLE_BUFFERED};
  for (size_t mode = 0; mode < sizeof modes / sizeof modes[0]; ++mode) {
    model m;
    cgr_runtime *rt = model_unvalidated_runtime(&m, modes[mode]);
    model_inputs in;
    model_make_inputs(&in, 4, 4, 77 + (unsigned)mode);
    void *pages_set0 = NULL, *rows = NULL;
    assert_cgr_ok(rt, cgr_slot_address(rt, m.pages, 0, 0, &pages_set0));
    assert_cgr_ok(rt, cgr_device_alloc(rt, 64 * sizeof(int32_t), &rows));
    cgr_batch *batch = model_begin_batch(rt, &m, &in, 4, m.ids);
    assert_cgr_ok(rt, cgr_batch_gather(batch, m.ids, rows,
                                       (const int32_t *)pages_set0));
    cgr_ticket ticket;
    assert_cgr_status(rt, cgr_replay(rt, batch, &ticket),
                      CGR_E_INVALID_ARGUMENT);
    assert_last_error_contains(rt, "reads index bytes that operation");
    /* Nothing ran: the same step replays whole. */
    replay_and_check(rt, &m, &in);
    model_make_inputs(&in, 3, 3, 99);
    replay_and_check(rt, &m, &in);
    assert_cgr_ok(rt, cgr_device_free(rt, rows));
    cgr_runtime_destroy(rt);
  }
}

/* A PREFIX slot's DEVICE source inside another slot's destination of the
 * same load: refused with validation off. */
static void
test_unvalidated_prefix_device_source_inside_a_destination(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_unvalidated_runtime(&m, CGR_REPLAY_FUSED);
  model_inputs in;
  model_make_inputs(&in, 2, 2, 5);
  void *pages_set0 = NULL;
  assert_cgr_ok(rt, cgr_slot_address(rt, m.pages, 0, 0, &pages_set0));
  cgr_batch *batch = model_begin_batch(rt, &m, &in, 2, m.cu_k);
  assert_cgr_ok(rt, cgr_batch_input(batch, m.cu_k, CGR_SOURCE_DEVICE,
                                    pages_set0, 3 * sizeof(int32_t)));
  cgr_ticket ticket;
  assert_cgr_status(rt, cgr_replay(rt, batch, &ticket), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "reads source bytes that operation");
  replay_and_check(rt, &m, &in);
  cgr_runtime_destroy(rt);
}

/* CGR_REPLAY_PIPELINED, validation off: a next batch whose DEVICE source
 * is a destination of its own load (the other set's input_ids) is refused
 * by cgr_replay_ahead, which launches nothing and keeps the staged step
 * staged; ending the run then gives the staged step's outputs. */
static void
test_unvalidated_pipelined_refusal_keeps_the_staged_step(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_unvalidated_runtime(&m, CGR_REPLAY_PIPELINED);
  model_inputs in0, in1;
  model_make_inputs(&in0, 4, 4, 11);
  model_make_inputs(&in1, 3, 3, 12);
  cgr_batch *batch = model_begin_batch(rt, &m, &in0, 4, -1);
  assert_cgr_ok(rt, cgr_replay_stage(rt, batch));
  void *ids_set1 = NULL;
  assert_cgr_ok(rt, cgr_slot_address(rt, m.ids, 1, 0, &ids_set1));
  batch = model_begin_batch(rt, &m, &in1, 3, m.pos);
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_DEVICE, ids_set1,
                                    3 * sizeof(int32_t)));
  cgr_ticket ticket;
  assert_cgr_status(rt, cgr_replay_ahead(rt, batch, &ticket),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "reads source bytes that operation");
  assert_true(cgr_replay_staged(rt));
  assert_cgr_ok(rt, cgr_replay_ahead(rt, NULL, &ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
  void *out = NULL, *out_pages = NULL;
  assert_cgr_ok(rt, cgr_output(rt, &ticket, m.out, &out));
  assert_cgr_ok(rt, cgr_output(rt, &ticket, m.out_pages, &out_pages));
  model_check_outputs(rt, out, out_pages, &in0, ticket.padded_batch, 4, NULL);
  cgr_runtime_destroy(rt);
}

/* Validation off, cgr_batch_input's inline path: every refusal still takes
 * the checked path, names cgr_batch_input and the problem, and leaves the
 * batch open and the slot not given; the count of given slots is right
 * afterwards (a slot never given is named at the replay). */
static void
test_unvalidated_batch_input_refusals_leave_the_batch_as_it_was(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_unvalidated_runtime(&m, CGR_REPLAY_FUSED);
  model_inputs in;
  model_make_inputs(&in, 2, 2, 21);
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, 2, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, in.ids, 8));
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, in.ids, 8),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "cgr_batch_input");
  assert_last_error_contains(rt, "given twice");
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, in.pos, 12),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "12 bytes given");
  assert_cgr_status(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, NULL, 8),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "data is NULL");
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.pos, (cgr_source)42, in.pos, 8),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "is not a cgr_source");
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.out, CGR_SOURCE_HOST, in.pos, 8),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "an OUTPUT");
  assert_cgr_status(rt, cgr_batch_input(batch, 99, CGR_SOURCE_HOST, in.pos, 8),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "slot 99 is not declared");
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pages, CGR_SOURCE_HOST, in.pages,
                                    2 * 4 * MODEL_PAGES));
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.cu_k, CGR_SOURCE_HOST, in.cu_k, 12));
  cgr_ticket ticket;
  assert_cgr_status(rt, cgr_replay(rt, batch, &ticket), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "slot 'positions' was not given");
  /* Consumed: the inline path refuses a closed batch through the checked
   * one. */
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, in.pos, 8),
                    CGR_E_INVALID_STATE);
  assert_last_error_contains(rt, "not open");
  /* The next batch counts from zero. */
  replay_and_check(rt, &m, &in);
  cgr_runtime_destroy(rt);
}

/* ---- the plan memo (replay/plan_memo.c) --------------------------------- */

/* Gives every input of `in` (rows of it) to a new batch: from `from`,
 * host memory or a pinned copy the caller made, but `pages` unchanged
 * when asked. */
static cgr_batch *give_all(cgr_runtime *rt, const model *m,
                           const model_inputs *from, cgr_source source,
                           int pages_unchanged) {
  uint32_t rows = from->rows;
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, rows, &batch));
  size_t bytes = rows * sizeof(int32_t);
  assert_cgr_ok(rt, cgr_batch_input(batch, m->ids, source, from->ids, bytes));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->pos, source, from->pos, bytes));
  if (pages_unchanged)
    assert_cgr_ok(rt, cgr_batch_unchanged(batch, m->pages));
  else
    assert_cgr_ok(rt, cgr_batch_input(batch, m->pages, source, from->pages,
                                      bytes * MODEL_PAGES));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->cu_k, source, from->cu_k,
                                    bytes + sizeof(int32_t)));
  return batch;
}

/* Reads `count` int32 of slot `slot` in buffer set `set`. */
static void read_slot(cgr_runtime *rt, cgr_slot slot, int set, int32_t *out,
                      size_t count) {
  void *at = NULL;
  assert_cgr_ok(rt, cgr_slot_address(rt, slot, set, 0, &at));
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), out, at,
                                         count * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
}

/* Replays the batch, checks its outputs against `in` and what the set
 * it loaded holds up to the bucket: in's rows (its page table the one an
 * unchanged slot kept), then padding (a PREFIX slot's repeating its last
 * live entry). */
static void replay_batch_and_check(cgr_runtime *rt, const model *m,
                                   cgr_batch *batch, const model_inputs *in) {
  cgr_ticket ticket;
  replay_checking_outputs(rt, m, batch, in, &ticket);
  uint32_t live = in->rows, padded = ticket.padded_batch;
  model_inputs want = *in, got;
  for (uint32_t r = live; r < padded; ++r) {
    want.ids[r] = 0;
    want.pos[r] = MODEL_PAD_POS;
    for (int p = 0; p < MODEL_PAGES; ++p)
      want.pages[r * MODEL_PAGES + p] = MODEL_PAD_PAGE;
    want.cu_k[r + 1] = want.cu_k[live];
  }
  read_slot(rt, m->ids, ticket.set, got.ids, padded);
  read_slot(rt, m->pos, ticket.set, got.pos, padded);
  read_slot(rt, m->pages, ticket.set, got.pages, padded * MODEL_PAGES);
  read_slot(rt, m->cu_k, ticket.set, got.cu_k, padded + 1);
  for (uint32_t r = 0; r < padded; ++r) {
    assert_int_equal(got.ids[r], want.ids[r]);
    assert_int_equal(got.pos[r], want.pos[r]);
    for (int p = 0; p < MODEL_PAGES; ++p)
      assert_int_equal(got.pages[r * MODEL_PAGES + p],
                       want.pages[r * MODEL_PAGES + p]);
    assert_int_equal(got.cu_k[r + 1], want.cu_k[r + 1]);
  }
}

/* Validation off, steps whose shapes repeat (each set plans a shape once,
 * then reuses the plan) with new values at every step: from host and from
 * pinned memory (a pinned source moves between steps of one shape, so the
 * reused plan must read the new one), batches that shrink and grow back
 * (padding the reused plans refill; a shape met again after more rows
 * held data needs more padding than the first time), the page table
 * given unchanged; every step's outputs and the set's rows and padding
 * are right, in every mode that plans a copy. */
static void test_unvalidated_repeated_shapes_match(void **state) {
  (void)cgr_test_runtime(state);
  static const cgr_replay_mode modes[] = {CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED,
                                          CGR_REPLAY_DOUBLE_BUFFERED};
  /* First set 0's steps: 1, 2, 4, 2, 3 rows (2 rows of bucket 2 after 1
   * row, then after 4 rows, which it must refill) and set 1's: 4, 4, 3,
   * 4, 2, from host memory; then steps of 3 rows (bucket 4: padding
   * after the rows, a PREFIX slot's repeating its last entry), from
   * pinned memory, then from the host; last, in each set, steps of 1, 8,
   * 5, 3 rows in turn, where a reused plan for 5 rows leaves rows 5 to 7
   * padding, which the set must know for the step of 3 rows after it. */
  static const uint32_t rows_of[] = {1, 4, 2, 4, 4, 3, 2, 4, 3, 2};
  static const uint32_t last_rows_of[] = {1, 1, 8, 8, 5, 5, 3, 3};
  enum {
    STEPS = 100,
    ROWS_CYCLE = sizeof rows_of / sizeof rows_of[0],
    STEADY = 30,
    HOST_AGAIN = 45,
    LAST = 60,
    LAST_CYCLE = sizeof last_rows_of / sizeof last_rows_of[0]
  };
  for (size_t mode = 0; mode < sizeof modes / sizeof modes[0]; ++mode) {
    model m;
    cgr_runtime *rt = model_unvalidated_runtime(&m, modes[mode]);
    model_inputs *pinned[2] = {NULL, NULL};
    for (int k = 0; k < 2; ++k)
      assert_cgr_ok(rt, cgr_pinned_alloc(rt, sizeof(model_inputs),
                                         (void **)&pinned[k]));
    model_inputs in[STEPS];
    for (int n = 0; n < STEPS; ++n) {
      uint32_t rows = n < STEADY ? rows_of[n % ROWS_CYCLE]
                      : n < LAST ? 3
                                 : last_rows_of[(n - LAST) % LAST_CYCLE];
      model_make_inputs(&in[n], rows, rows, 500 + (unsigned)n);
      /* The set (n mod 2) still holds step n - 2's pages with as many
       * rows: given unchanged every third step, when it can be. */
      int unchanged = n >= 2 && in[n - 2].rows == rows && n % 3 == 0;
      if (unchanged)
        memcpy(in[n].pages, in[n - 2].pages, sizeof in[n].pages);
      cgr_source source =
          n >= STEADY && n < HOST_AGAIN ? CGR_SOURCE_PINNED : CGR_SOURCE_HOST;
      const model_inputs *from = &in[n];
      if (source == CGR_SOURCE_PINNED) {
        /* Two buffers, each set's steps using both in turn: the source's
         * address moves between steps of one shape in one set. */
        *pinned[(n / 2) % 2] = in[n];
        from = pinned[(n / 2) % 2];
      }
      cgr_batch *batch = give_all(rt, &m, from, source, unchanged);
      replay_batch_and_check(rt, &m, batch, &in[n]);
    }
    for (int k = 0; k < 2; ++k)
      assert_cgr_ok(rt, cgr_pinned_free(rt, pinned[k]));
    cgr_runtime_destroy(rt);
  }
}

/* Validation off: a set's reused plan does not clear the in-graph image
 * an in-graph step left in staging, so an in-graph step forgets the set's
 * plans. Fused steps from pinned memory (each set's second one reuses its
 * first one's plan), in-graph steps, fused steps of that shape again
 * (planned anew), then in-graph steps with the page table unchanged:
 * they must copy each set's pages (the last fused step's), not the older
 * image staging still holds. */
static void
test_unvalidated_in_graph_step_forgets_the_sets_plans(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_unvalidated_runtime(&m, CGR_REPLAY_FUSED);
  model_inputs *pinned = NULL;
  assert_cgr_ok(rt,
                cgr_pinned_alloc(rt, sizeof(model_inputs), (void **)&pinned));
  static const struct {
    cgr_replay_mode mode;
    int unchanged;
  } steps[] = {{CGR_REPLAY_FUSED, 0},    {CGR_REPLAY_FUSED, 0},
               {CGR_REPLAY_FUSED, 0},    {CGR_REPLAY_FUSED, 0},
               {CGR_REPLAY_IN_GRAPH, 0}, {CGR_REPLAY_IN_GRAPH, 0},
               {CGR_REPLAY_FUSED, 0},    {CGR_REPLAY_FUSED, 0},
               {CGR_REPLAY_IN_GRAPH, 1}, {CGR_REPLAY_IN_GRAPH, 1}};
  enum { STEPS = sizeof steps / sizeof steps[0] };
  model_inputs in[STEPS];
  for (int n = 0; n < STEPS; ++n) {
    assert_cgr_ok(rt, cgr_set_replay_mode(rt, steps[n].mode));
    model_make_inputs(&in[n], 4, 4, 900 + (unsigned)n);
    if (steps[n].unchanged)
      memcpy(in[n].pages, in[n - 2].pages, sizeof in[n].pages);
    cgr_batch *batch;
    if (steps[n].mode == CGR_REPLAY_FUSED) {
      *pinned = in[n];
      batch = give_all(rt, &m, pinned, CGR_SOURCE_PINNED, 0);
    } else {
      batch = give_all(rt, &m, &in[n], CGR_SOURCE_HOST, steps[n].unchanged);
    }
    replay_batch_and_check(rt, &m, batch, &in[n]);
  }
  assert_cgr_ok(rt, cgr_pinned_free(rt, pinned));
  cgr_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_unvalidated_repeated_shapes_match),
    RUNTIME_TEST(test_unvalidated_in_graph_step_forgets_the_sets_plans),
    RUNTIME_TEST(test_unvalidated_gather_index_inside_a_destination_is_refused),
    RUNTIME_TEST(test_unvalidated_prefix_device_source_inside_a_destination),
    RUNTIME_TEST(test_unvalidated_pipelined_refusal_keeps_the_staged_step),
    RUNTIME_TEST(
        test_unvalidated_batch_input_refusals_leave_the_batch_as_it_was),
};

CGR_TEST_MAIN(tests)
