/* A review of issue 23's host path (owned copy plans, the inline
 * cgr_batch_input, the given count): with validation off, the refusals
 * the whole check and the checked path make must still be made, through
 * every entry point that plans a load, and a refusal must leave the
 * runtime as it was. */
#include <string.h>

#include "harness.h"
#include "model.h"

/* Replays `in` with every slot from the host and checks the outputs. */
static void replay_and_check(cgr_runtime *rt, const model *m,
                             const model_inputs *in) {
  cgr_batch *batch = model_begin_batch(rt, m, in, in->rows, -1);
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
  void *out = NULL, *out_pages = NULL;
  assert_cgr_ok(rt, cgr_output(rt, &ticket, m->out, &out));
  assert_cgr_ok(rt, cgr_output(rt, &ticket, m->out_pages, &out_pages));
  model_check_outputs(rt, out, out_pages, in, ticket.padded_batch, in->rows,
                      NULL);
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

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_unvalidated_gather_index_inside_a_destination_is_refused),
    RUNTIME_TEST(test_unvalidated_prefix_device_source_inside_a_destination),
    RUNTIME_TEST(test_unvalidated_pipelined_refusal_keeps_the_staged_step),
    RUNTIME_TEST(
        test_unvalidated_batch_input_refusals_leave_the_batch_as_it_was),
};

CGR_TEST_MAIN(tests)
