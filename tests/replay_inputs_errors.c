/* cgr_replay_inputs' refusals: bad arguments, bad entries, bad wait events
 * and a batch the caller already opened. Each refusal names the entry,
 * zeroes the ticket, leaves no batch open and replays nothing. */
#include <string.h>

#include "replay_inputs_fixture.h"

/* A ticket no call would issue: a refusal must zero it. */
static void spoil(cgr_ticket *ticket) { memset(ticket, 0xAB, sizeof *ticket); }

static void assert_zero_ticket(const cgr_ticket *ticket) {
  cgr_ticket zero;
  memset(&zero, 0, sizeof zero);
  assert_memory_equal(ticket, &zero, sizeof zero);
}

/* The last error is cgr_replay_inputs' and says each of `needles`. */
static void assert_refusal_says(cgr_runtime *rt, const char *const *needles,
                                size_t count) {
  const char *message = cgr_last_error(rt);
  if (strncmp(message, "cgr_replay_inputs: ", 19) != 0)
    fail_msg("last error \"%s\" does not start with cgr_replay_inputs",
             message);
  for (size_t i = 0; i < count; ++i)
    assert_last_error_contains(rt, needles[i]);
}

#define ASSERT_REFUSAL_SAYS(rt, ...)                                           \
  do {                                                                         \
    const char *const needles_[] = {__VA_ARGS__};                              \
    assert_refusal_says((rt), needles_, sizeof needles_ / sizeof *needles_);   \
  } while (0)

/* Nothing was replayed and no batch is open: the step count is as it was,
 * and a batch can be opened (and is discarded again). */
static void assert_nothing_changed(side *s, uint64_t steps) {
  cgr_replay_stats stats;
  assert_cgr_ok(s->rt, cgr_replay_stats_get(s->rt, CGR_REPLAY_DOUBLE_BUFFERED,
                                            &stats));
  assert_int_equal(stats.steps, steps);
  cgr_batch *batch = NULL;
  assert_cgr_ok(s->rt, cgr_batch_begin(s->rt, ROWS, &batch));
  cgr_batch_discard(batch);
}

/* A refused call: `want`, and *ticket zeroed. */
#define ASSERT_REFUSED(rt, want, call, ticket)                                 \
  do {                                                                         \
    spoil(ticket);                                                             \
    assert_cgr_status((rt), (call), (want));                                   \
    assert_zero_ticket(ticket);                                                \
  } while (0)

typedef struct refusals {
  side s;
  cgr_runtime *other;
  cgr_event *mine, *theirs;
  model_inputs in0, in1, in2;
  cgr_ticket t0, t1;
} refusals;

/* Two good steps (sets 0 and 1), so that after the refusals a third can
 * mark slots unchanged and continue the ids: it works only if nothing the
 * refusals touched changed. */
static void refusals_open(refusals *f) {
  tables t;
  tables_make(&t, 5);
  side_open(&f->s, CGR_REPLAY_DOUBLE_BUFFERED, &t);
  cgr_config config;
  cgr_test_config(&config);
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &f->other));
  assert_cgr_ok(f->s.rt, cgr_event_create(f->s.rt, &f->mine));
  assert_cgr_ok(f->other, cgr_event_create(f->other, &f->theirs));
  cgr_input entries[4];
  model_make_inputs(&f->in0, ROWS, ROWS, 90);
  host_entries(&f->s.m, &f->in0, entries);
  assert_cgr_ok(f->s.rt, cgr_replay_inputs(f->s.rt, ROWS, entries, 4, NULL, 0,
                                           NULL, &f->t0));
  model_make_inputs(&f->in1, ROWS, ROWS, 91);
  host_entries(&f->s.m, &f->in1, entries);
  assert_cgr_ok(f->s.rt, cgr_replay_inputs(f->s.rt, ROWS, entries, 4, NULL, 0,
                                           NULL, &f->t1));
  check_step(&f->s, &f->t1, &f->in1);
}

/* The step after the refusals: step 2, on set 0, with positions, pages
 * and cu_seqlens_k unchanged since step 0 and ids continuing step 1's. */
static void refusals_close(refusals *f) {
  cgr_runtime *rt = f->s.rt;
  model_inputs in2 = f->in0;
  int32_t same_rows[ROWS] = {0, 1, 2};
  for (uint32_t j = 0; j < ROWS; ++j)
    in2.ids[j] = model_expected_out(&f->in1, f->t1.padded_batch, j);
  const cgr_input entries[4] = {
      {.slot = f->s.m.ids, .kind = CGR_INPUT_FEEDBACK, .rows = same_rows},
      {.slot = f->s.m.pos, .kind = CGR_INPUT_UNCHANGED},
      {.slot = f->s.m.pages, .kind = CGR_INPUT_UNCHANGED},
      {.slot = f->s.m.cu_k, .kind = CGR_INPUT_UNCHANGED},
  };
  cgr_ticket t2;
  assert_cgr_ok(rt,
                cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 0, NULL, &t2));
  assert_int_equal(t2.step, 2);
  assert_int_equal(t2.set, 0);
  check_step(&f->s, &t2, &in2);
  cgr_event_destroy(f->mine);
  cgr_event_destroy(f->theirs);
  cgr_runtime_destroy(f->other);
  side_close(&f->s);
}

static void test_bad_arguments_are_refused_before_any_batch(void **state) {
  (void)state;
  cgr_test_require_backend();
  refusals f;
  refusals_open(&f);
  side *s = &f.s;
  cgr_runtime *rt = s->rt;
  cgr_input entries[4];
  model_make_inputs(&f.in2, ROWS, ROWS, 92);
  host_entries(&s->m, &f.in2, entries);
  cgr_ticket ticket;

  assert_int_equal(cgr_replay_inputs(NULL, ROWS, entries, 4, NULL, 0, NULL,
                                     &ticket),
                   CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(rt,
                    cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 0, NULL,
                                      NULL),
                    CGR_E_INVALID_ARGUMENT);
  ASSERT_REFUSAL_SAYS(rt, "'ticket' is NULL");
  assert_nothing_changed(s, 2);

  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, NULL, 4, NULL, 0, NULL, &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "'inputs' is NULL", "count is 4");
  assert_nothing_changed(s, 2);

  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 1, NULL,
                                   &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "'wait_events' is NULL", "wait_count is 1");
  assert_nothing_changed(s, 2);

  /* done_event of another runtime: refused before the replay, though
   * every entry was good. */
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 0, f.theirs,
                                   &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "done_event", "another runtime");
  assert_nothing_changed(s, 2);

  /* A batch size of 0: cgr_batch_begin's refusal, named. */
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, 0, entries, 4, NULL, 0, NULL, &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "cgr_batch_begin", "batch_size");
  assert_nothing_changed(s, 2);
  refusals_close(&f);
}

static void test_bad_entries_are_named_and_discard_the_batch(void **state) {
  (void)state;
  cgr_test_require_backend();
  refusals f;
  refusals_open(&f);
  side *s = &f.s;
  cgr_runtime *rt = s->rt;
  model_make_inputs(&f.in2, ROWS, ROWS, 93);
  cgr_input good[4], entries[4];
  host_entries(&s->m, &f.in2, good);
  cgr_ticket ticket;

  /* A kind that is not a cgr_input_kind, either side of the range. */
  memcpy(entries, good, sizeof entries);
  entries[2].kind = (cgr_input_kind)7;
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 0, NULL,
                                   &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "inputs[2]", "kind 7 is not a cgr_input_kind");
  assert_nothing_changed(s, 2);
  entries[2].kind = (cgr_input_kind)-1;
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 0, NULL,
                                   &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "inputs[2]", "kind -1 is not a cgr_input_kind");
  assert_nothing_changed(s, 2);

  /* A slot given twice: the second entry is the one named. */
  memcpy(entries, good, sizeof entries);
  entries[1] = good[0];
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 0, NULL,
                                   &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "inputs[1]: cgr_batch_input: ",
                      "slot 'input_ids' is given twice");
  assert_nothing_changed(s, 2);

  /* A slot never declared, and one that takes no input. */
  memcpy(entries, good, sizeof entries);
  entries[3].slot = 99;
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 0, NULL,
                                   &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "inputs[3]", "slot 99 is not declared");
  assert_nothing_changed(s, 2);
  entries[3] = (cgr_input){.slot = s->m.out, .kind = CGR_INPUT_UNCHANGED};
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 0, NULL,
                                   &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "inputs[3]: cgr_batch_unchanged: ", "OUTPUT");
  assert_nothing_changed(s, 2);

  /* The wrong byte count, and a gather from host memory. */
  memcpy(entries, good, sizeof entries);
  entries[0].bytes += 4;
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 0, NULL,
                                   &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "inputs[0]: cgr_batch_input: ", "16 bytes given");
  assert_nothing_changed(s, 2);
  memcpy(entries, good, sizeof entries);
  int32_t host_index[ROWS] = {0, 1, 2};
  entries[2] = (cgr_input){.slot = s->m.pages,
                           .kind = CGR_INPUT_GATHER,
                           .data = s->table_pages,
                           .rows = host_index};
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 0, NULL,
                                   &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "inputs[2]: cgr_batch_gather: ",
                      "row_index is not device memory");
  assert_nothing_changed(s, 2);

  /* A slot no entry gives: cgr_replay's refusal, named. */
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, good, 3, NULL, 0, NULL, &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "cgr_replay: ", "slot 'cu_seqlens_k' was not given");
  assert_nothing_changed(s, 2);
  /* No entries at all is a batch with nothing given, too. */
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, NULL, 0, NULL, 0, NULL, &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "cgr_replay: ", "was not given");
  assert_nothing_changed(s, 2);
  refusals_close(&f);
}

static void test_bad_wait_events_are_named_and_discard_the_batch(void **state) {
  (void)state;
  cgr_test_require_backend();
  refusals f;
  refusals_open(&f);
  side *s = &f.s;
  cgr_runtime *rt = s->rt;
  model_make_inputs(&f.in2, ROWS, ROWS, 94);
  cgr_input entries[4];
  host_entries(&s->m, &f.in2, entries);
  cgr_ticket ticket;

  cgr_event *const foreign[2] = {f.mine, f.theirs};
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, entries, 4, foreign, 2, NULL,
                                   &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "wait_events[1]: cgr_batch_wait_event: ",
                      "an event of another runtime");
  assert_nothing_changed(s, 2);

  cgr_event *const missing[1] = {NULL};
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, entries, 4, missing, 1, NULL,
                                   &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "wait_events[0]", "'event' is NULL");
  assert_nothing_changed(s, 2);

  cgr_event *too_many[CGR_BATCH_MAX_EVENTS + 1];
  for (size_t i = 0; i <= CGR_BATCH_MAX_EVENTS; ++i)
    too_many[i] = f.mine;
  ASSERT_REFUSED(rt, CGR_E_INVALID_ARGUMENT,
                 cgr_replay_inputs(rt, ROWS, entries, 4, too_many,
                                   CGR_BATCH_MAX_EVENTS + 1, NULL, &ticket),
                 &ticket);
  ASSERT_REFUSAL_SAYS(rt, "wait_events[8]", "at most 8");
  assert_nothing_changed(s, 2);
  refusals_close(&f);
}

/* A batch the caller opened itself is no batch of this call's: the call
 * is refused and that batch stays open, whole. */
static void test_a_batch_already_open_is_left_alone(void **state) {
  (void)state;
  cgr_test_require_backend();
  tables t;
  tables_make(&t, 6);
  side s;
  side_open(&s, CGR_REPLAY_FUSED, &t);
  cgr_runtime *rt = s.rt;
  model_inputs in;
  model_make_inputs(&in, ROWS, ROWS, 100);
  cgr_input entries[4];
  host_entries(&s.m, &in, entries);
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, ROWS, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, s.m.ids, CGR_SOURCE_HOST, in.ids,
                                    ROWS * 4));
  cgr_ticket ticket;
  spoil(&ticket);
  assert_cgr_status(rt,
                    cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 0, NULL,
                                      &ticket),
                    CGR_E_INVALID_STATE);
  assert_zero_ticket(&ticket);
  ASSERT_REFUSAL_SAYS(rt, "cgr_batch_begin: ", "already open");
  for (int i = 1; i < 4; ++i)
    assert_cgr_ok(rt, cgr_batch_input(batch, entries[i].slot, entries[i].source,
                                      entries[i].data, entries[i].bytes));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_int_equal(ticket.step, 0);
  check_step(&s, &ticket, &in);
  side_close(&s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bad_arguments_are_refused_before_any_batch),
    cmocka_unit_test(test_bad_entries_are_named_and_discard_the_batch),
    cmocka_unit_test(test_bad_wait_events_are_named_and_discard_the_batch),
    cmocka_unit_test(test_a_batch_already_open_is_left_alone),
};

CGR_TEST_MAIN(tests)
