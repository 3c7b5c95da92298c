/* The batch boundary: what cgr_batch_* and cgr_replay accept and refuse,
 * and when. A refusal comes at the call that can be fixed (the batch stays
 * open, so the caller can give the data another way), a consumed batch is
 * closed whatever the outcome, slots validate what they are given however
 * it arrives, and tickets are checked field by field. */
#include <string.h>

#include "harness.h"
#include "model.h"

static const uint32_t buckets[] = {1, 2, 4, 8};
enum { BUCKETS = 4, LARGEST = 8 };

/* Gives every input slot of the model its rows from the host, but `skip`
 * (-1: none). */
static void give_all_but(cgr_runtime *rt, cgr_batch *batch, const model *m,
                         const model_inputs *in, cgr_slot skip) {
  uint32_t b = in->rows;
  if (skip != m->ids)
    assert_cgr_ok(rt, cgr_batch_input(batch, m->ids, CGR_SOURCE_HOST, in->ids,
                                      b * 4));
  if (skip != m->pos)
    assert_cgr_ok(rt, cgr_batch_input(batch, m->pos, CGR_SOURCE_HOST, in->pos,
                                      b * 4));
  if (skip != m->pages)
    assert_cgr_ok(rt, cgr_batch_input(batch, m->pages, CGR_SOURCE_HOST,
                                      in->pages, b * 4 * MODEL_PAGES));
  if (skip != m->cu_k)
    assert_cgr_ok(rt, cgr_batch_input(batch, m->cu_k, CGR_SOURCE_HOST, in->cu_k,
                                      (b + 1) * 4));
}

/* One step with every input from the host. */
static cgr_ticket replay_from_host(cgr_runtime *rt, const model *m,
                                   const model_inputs *in) {
  cgr_batch *batch = NULL;
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_batch_begin(rt, in->rows, &batch));
  give_all_but(rt, batch, m, in, -1);
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  return ticket;
}

/* The ticket's outputs are the model's for `in`. */
static void check_outputs(cgr_runtime *rt, const model *m,
                          const cgr_ticket *ticket, const model_inputs *in) {
  assert_cgr_ok(rt, cgr_ticket_wait(rt, ticket));
  void *out = NULL, *out_pages = NULL;
  assert_cgr_ok(rt, cgr_output(rt, ticket, m->out, &out));
  assert_cgr_ok(rt, cgr_output(rt, ticket, m->out_pages, &out_pages));
  model_check_outputs(rt, out, out_pages, in, ticket->padded_batch,
                      ticket->batch_size, NULL);
}

/* Reads `count` int32 elements of a slot in a buffer set. */
static void read_set(cgr_runtime *rt, cgr_slot slot, int set, int32_t *dst,
                     size_t count) {
  void *address = NULL;
  assert_cgr_ok(rt, cgr_slot_address(rt, slot, set, 0, &address));
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), dst,
                                         address, count * 4));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
}

/* ---- unchanged ----------------------------------------------------------- */

static void
test_unchanged_after_another_batch_size_is_refused_at_the_call(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, BUCKETS, 1, &m);
  model_inputs three, two;
  model_make_inputs(&three, 3, 3, 11);
  model_make_inputs(&two, 2, 2, 12);
  (void)replay_from_host(rt, &m, &three); /* set 0 */
  (void)replay_from_host(rt, &m, &three); /* set 1 */

  /* Step 2 loads set 0, which last held 3 rows of cu_k. */
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, 2, &batch));
  assert_cgr_status(rt, cgr_batch_unchanged(batch, m.cu_k),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "cgr_batch_unchanged");
  assert_last_error_contains(rt,
                             "buffer set 0 was last loaded with 3 rows, not 2");
  /* The batch is open and the slot not given: the caller falls back to
   * giving its data. */
  give_all_but(rt, batch, &m, &two, -1);
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_int_equal(ticket.step, 2);
  check_outputs(rt, &m, &ticket, &two);
  cgr_runtime_destroy(rt);
}

static void
test_unchanged_of_a_set_never_loaded_is_refused_at_the_call(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, BUCKETS, 1, &m);
  model_inputs in;
  model_make_inputs(&in, 3, 3, 13);
  (void)replay_from_host(rt, &m, &in); /* set 0; set 1 never loaded */
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, 3, &batch));
  assert_cgr_status(rt, cgr_batch_unchanged(batch, m.pos),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "buffer set 1 holds no load of it");
  give_all_but(rt, batch, &m, &in, -1);
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  check_outputs(rt, &m, &ticket, &in);
  cgr_runtime_destroy(rt);
}

static void
test_unchanged_in_an_eager_step_is_refused_at_the_call(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, BUCKETS, 1, &m);
  model_inputs in, big;
  model_make_inputs(&in, 3, 3, 14);
  model_make_inputs(&big, LARGEST + 1, LARGEST + 1, 15);
  (void)replay_from_host(rt, &m, &in);
  (void)replay_from_host(rt, &m, &in);
  /* Set 0 holds 3 rows, but the eager mode does not use the sets. */
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, CGR_REPLAY_EAGER));
  cgr_batch *batch = NULL;
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_batch_begin(rt, 3, &batch));
  assert_cgr_status(rt, cgr_batch_unchanged(batch, m.cu_k),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "runs eagerly");
  give_all_but(rt, batch, &m, &in, -1);
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_int_equal(ticket.set, -1);
  check_outputs(rt, &m, &ticket, &in);
  /* A batch over the largest bucket, in a graph mode. */
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, CGR_REPLAY_FUSED));
  assert_cgr_ok(rt, cgr_batch_begin(rt, LARGEST + 1, &batch));
  assert_cgr_status(rt, cgr_batch_unchanged(batch, m.pos),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "runs eagerly");
  give_all_but(rt, batch, &m, &big, -1);
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_int_equal(ticket.set, -1);
  check_outputs(rt, &m, &ticket, &big);
  cgr_runtime_destroy(rt);
}

static void
test_unchanged_right_after_switching_to_in_graph_mode_replays(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, BUCKETS, 1, &m);
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, CGR_REPLAY_FUSED));
  model_inputs first;
  model_make_inputs(&first, 3, 3, 16);
  (void)replay_from_host(rt, &m, &first); /* set 0 */
  (void)replay_from_host(rt, &m, &first); /* set 1 */
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, CGR_REPLAY_IN_GRAPH));

  /* Each set in turn, right after the switch: cu_k and pages unchanged,
   * the rest new. The set's staging holds no in-graph image of them. */
  cgr_ticket tickets[4];
  model_inputs seen[4];
  for (int n = 0; n < 4; ++n) {
    model_make_inputs(&seen[n], 3, 3, 17 + (unsigned)n);
    memcpy(seen[n].cu_k, first.cu_k, sizeof first.cu_k);
    memcpy(seen[n].pages, first.pages, sizeof first.pages);
    cgr_batch *batch = NULL;
    assert_cgr_ok(rt, cgr_batch_begin(rt, 3, &batch));
    assert_cgr_ok(rt, cgr_batch_unchanged(batch, m.cu_k));
    assert_cgr_ok(rt, cgr_batch_unchanged(batch, m.pages));
    assert_cgr_ok(rt, cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST,
                                      seen[n].ids, 12));
    assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST,
                                      seen[n].pos, 12));
    assert_cgr_ok(rt, cgr_replay(rt, batch, &tickets[n]));
    assert_int_equal(tickets[n].set, n % 2);
    check_outputs(rt, &m, &tickets[n], &seen[n]);
    /* The set's padding (row 3 of bucket 4) is as a load leaves it. */
    int32_t pos[4], cu_k[5], pages[4 * MODEL_PAGES];
    read_set(rt, m.pos, n % 2, pos, 4);
    read_set(rt, m.cu_k, n % 2, cu_k, 5);
    read_set(rt, m.pages, n % 2, pages, 4 * MODEL_PAGES);
    assert_int_equal(pos[3], MODEL_PAD_POS);
    assert_int_equal(cu_k[4], first.cu_k[3]);
    for (int p = 0; p < MODEL_PAGES; ++p)
      assert_int_equal(pages[3 * MODEL_PAGES + p], MODEL_PAD_PAGE);
  }
  cgr_runtime_destroy(rt);
}

/* ---- validation of every way in ----------------------------------------- */

/* A runtime whose step copies input_ids (range [0, 49999]) into out, which
 * feeds input_ids. */
typedef struct echo {
  cgr_slot ids, out;
} echo;

static cgr_status echo_step(cgr_step *step, void *user) {
  const echo *e = user;
  return cgr_step_memcpy(step, cgr_step_slot(step, e->out),
                         cgr_step_slot(step, e->ids),
                         (size_t)cgr_step_padded_batch(step) * 4);
}

static cgr_runtime *echo_runtime(echo *e) {
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = buckets;
  config.bucket_count = BUCKETS;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  cgr_slot_desc desc;
  assert_cgr_ok(rt,
                cgr_slot_desc_init(&desc, "input_ids", CGR_SLOT_ROWS, 4, 1));
  desc.valid_min = 0;
  desc.valid_max = 49999;
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &e->ids));
  assert_cgr_ok(rt, cgr_slot_desc_init(&desc, "out", CGR_SLOT_OUTPUT, 4, 1));
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &e->out));
  assert_cgr_ok(rt, cgr_slot_feed(rt, e->out, e->ids));
  assert_cgr_ok(rt, cgr_capture(rt, echo_step, e));
  return rt;
}

static void
test_feedback_new_rows_outside_the_slot_range_are_refused(void **state) {
  (void)cgr_test_runtime(state);
  echo e;
  cgr_runtime *rt = echo_runtime(&e);
  cgr_batch *batch = NULL;
  cgr_ticket ticket;
  int32_t ids[2] = {1, 2};
  assert_cgr_ok(rt, cgr_batch_begin(rt, 2, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, e.ids, CGR_SOURCE_HOST, ids, 8));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));

  /* Row 0 continues, row 1 is a new request whose token is past the
   * vocabulary: cgr_batch_input would refuse it, so feedback must. */
  int32_t prev_rows[2] = {0, -1};
  int32_t bad[1] = {50005}, good[1] = {49999};
  assert_cgr_ok(rt, cgr_batch_begin(rt, 2, &batch));
  assert_cgr_status(rt, cgr_batch_feedback(batch, e.ids, prev_rows, bad, 4),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "cgr_batch_feedback");
  assert_last_error_contains(rt, "element 0 is 50005, outside [0, 49999]");
  /* The batch is open and the slot not given. */
  assert_cgr_ok(rt, cgr_batch_feedback(batch, e.ids, prev_rows, good, 4));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
  void *out = NULL;
  int32_t got[2];
  assert_cgr_ok(rt, cgr_output(rt, &ticket, e.out, &out));
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), got, out,
                                         sizeof got));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
  assert_int_equal(got[0], 1);
  assert_int_equal(got[1], 49999);
  cgr_runtime_destroy(rt);
}

/* Slots of every width, unsigned, and one signed, on a runtime whose step
 * only writes its output. */
enum { W_U8, W_U16, W_U16_SMALL, W_U32, W_U64, W_I16, W_OUT, W_SLOTS };

static cgr_status widths_step(cgr_step *step, void *user) {
  const cgr_slot *slots = user;
  return cgr_step_memset(step, cgr_step_slot(step, slots[W_OUT]), 0,
                         (size_t)cgr_step_padded_batch(step) * 4);
}

static cgr_runtime *widths_runtime(cgr_slot *slots) {
  static const struct {
    const char *name;
    uint32_t elem_size;
    int elem_unsigned;
    int64_t valid_min, valid_max;
  } specs[W_OUT] = {
      {"u8", 1, 1, 1, 255},
      {"u16", 2, 1, 0, 65535},
      {"u16_small", 2, 1, 0, 1000},
      {"u32", 4, 1, 0, 4294967295},
      /* Past INT64_MAX: the bounds hold uint64_t values. */
      {"u64", 8, 1, 10, (int64_t)(UINT64_C(1) << 63 | 5)},
      {"i16", 2, 0, -5, 5},
  };
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = buckets;
  config.bucket_count = BUCKETS;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  cgr_slot_desc desc;
  for (int i = 0; i < W_OUT; ++i) {
    assert_cgr_ok(rt, cgr_slot_desc_init(&desc, specs[i].name, CGR_SLOT_ROWS,
                                         specs[i].elem_size, 1));
    desc.elem_unsigned = specs[i].elem_unsigned;
    desc.valid_min = specs[i].valid_min;
    desc.valid_max = specs[i].valid_max;
    assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &slots[i]));
  }
  assert_cgr_ok(rt, cgr_slot_desc_init(&desc, "out", CGR_SLOT_OUTPUT, 4, 1));
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &slots[W_OUT]));
  assert_cgr_ok(rt, cgr_capture(rt, widths_step, slots));
  return rt;
}

/* One element for slot `slot` of a batch of 1: its status. */
static cgr_status give_one(cgr_runtime *rt, cgr_slot slot, uint32_t width,
                           uint64_t value) {
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, 1, &batch));
  unsigned char bytes[8];
  memcpy(bytes, &value, width); /* little-endian: the low `width` bytes */
  cgr_status status =
      cgr_batch_input(batch, slot, CGR_SOURCE_HOST, bytes, width);
  cgr_batch_discard(batch);
  return status;
}

static void test_unsigned_slots_validate_elements_as_unsigned_for_every_width(
    void **state) {
  (void)cgr_test_runtime(state);
  cgr_slot s[W_SLOTS];
  cgr_runtime *rt = widths_runtime(s);
  /* The top of each unsigned range, which reads negative when signed. */
  assert_cgr_ok(rt, give_one(rt, s[W_U8], 1, 255));
  assert_cgr_ok(rt, give_one(rt, s[W_U16], 2, 65535));
  assert_cgr_ok(rt, give_one(rt, s[W_U32], 4, 4294967295u));
  assert_cgr_ok(rt, give_one(rt, s[W_U64], 8, UINT64_C(1) << 63));
  assert_cgr_ok(rt, give_one(rt, s[W_U64], 8, UINT64_C(1) << 63 | 5));
  /* And below or above it. */
  assert_cgr_status(rt, give_one(rt, s[W_U8], 1, 0), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "element 0 is 0, outside [1, 255]");
  assert_cgr_status(rt, give_one(rt, s[W_U16_SMALL], 2, 65535),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "element 0 is 65535, outside [0, 1000]");
  assert_cgr_ok(rt, give_one(rt, s[W_U16_SMALL], 2, 1000));
  assert_cgr_status(rt, give_one(rt, s[W_U64], 8, 5), CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(rt, give_one(rt, s[W_U64], 8, UINT64_C(1) << 63 | 6),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "element 0 is 9223372036854775814, outside "
                                 "[10, 9223372036854775813]");
  cgr_runtime_destroy(rt);
}

static void test_slot_desc_init_defaults_to_signed_elements(void **state) {
  (void)cgr_test_runtime(state);
  cgr_slot_desc desc;
  memset(&desc, 0xAB, sizeof desc);
  assert_cgr_ok(NULL, cgr_slot_desc_init(&desc, "x", CGR_SLOT_ROWS, 2, 1));
  assert_int_equal(desc.elem_unsigned, 0);
  cgr_slot s[W_SLOTS];
  cgr_runtime *rt = widths_runtime(s);
  assert_cgr_ok(rt, give_one(rt, s[W_I16], 2, 0xFFFF)); /* -1 */
  assert_cgr_status(rt, give_one(rt, s[W_I16], 2, 0x8000),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "element 0 is -32768, outside [-5, 5]");
  cgr_runtime_destroy(rt);
}

static void
test_slot_declare_refuses_elem_unsigned_other_than_0_or_1(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr_slot_desc desc;
  cgr_slot slot;
  assert_cgr_ok(rt, cgr_slot_desc_init(&desc, "ids", CGR_SLOT_ROWS, 4, 1));
  desc.elem_unsigned = 2;
  assert_cgr_status(rt, cgr_slot_declare(rt, &desc, &slot),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "desc->elem_unsigned is 2, must be 0 or 1");
  desc.elem_unsigned = 1;
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &slot));
}

/* ---- replay and tickets -------------------------------------------------- */

static void
test_replay_without_a_ticket_consumes_the_batch_and_names_ticket(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, BUCKETS, 1, &m);
  model_inputs in;
  model_make_inputs(&in, 3, 3, 21);
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, 3, &batch));
  give_all_but(rt, batch, &m, &in, -1);
  assert_cgr_status(rt, cgr_replay(rt, batch, NULL), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "argument 'ticket' is NULL");
  /* Consumed: closed, and the next batch opens. */
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, in.ids, 12),
                    CGR_E_INVALID_STATE);
  cgr_ticket ticket = replay_from_host(rt, &m, &in);
  assert_int_equal(ticket.step, 0); /* the refused one did not count */
  check_outputs(rt, &m, &ticket, &in);
  cgr_runtime_destroy(rt);
}

/* The ticket is refused by all three ticket calls. */
static void assert_ticket_refused(cgr_runtime *rt, const model *m,
                                  const cgr_ticket *ticket) {
  void *out = (void *)1;
  assert_cgr_status(rt, cgr_output(rt, ticket, m->out, &out),
                    CGR_E_INVALID_ARGUMENT);
  assert_null(out);
  assert_last_error_contains(rt, "not issued by this runtime");
  assert_cgr_status(rt, cgr_ticket_wait(rt, ticket), CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(rt, cgr_ticket_query(rt, ticket), CGR_E_INVALID_ARGUMENT);
}

static void
test_forged_tickets_are_refused_by_output_wait_and_query(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, BUCKETS, 1, &m);
  model_inputs three, five, big;
  model_make_inputs(&three, 3, 3, 31);
  model_make_inputs(&five, 5, 5, 32);
  model_make_inputs(&big, LARGEST + 1, LARGEST + 1, 33);
  cgr_ticket old = replay_from_host(rt, &m, &three);   /* step 0, set 0 */
  cgr_ticket eager = replay_from_host(rt, &m, &big);   /* step 1, eager */
  cgr_ticket first = replay_from_host(rt, &m, &three); /* step 2, set 0 */
  cgr_ticket last = replay_from_host(rt, &m, &five);   /* step 3, set 1 */
  assert_int_equal(first.set, 0);
  assert_int_equal(last.set, 1);

  /* Live tickets: any field changed is a ticket never issued. */
  cgr_ticket forged = last;
  forged.set = 0; /* the other set's outputs */
  assert_ticket_refused(rt, &m, &forged);
  forged = last;
  forged.set = -1;
  assert_ticket_refused(rt, &m, &forged);
  forged = last;
  forged.batch_size = 6; /* same bucket, another batch */
  assert_ticket_refused(rt, &m, &forged);
  forged = last;
  forged.padded_batch = 5; /* not its bucket */
  assert_ticket_refused(rt, &m, &forged);
  forged = first;
  forged.step = last.step; /* another step's ticket, set 0 */
  assert_ticket_refused(rt, &m, &forged);
  /* Expired tickets: what could never have been issued. */
  forged = old;
  forged.set = 1; /* step 0 ran on set 0, if on a set at all */
  assert_ticket_refused(rt, &m, &forged);
  forged = old;
  forged.padded_batch = 8; /* 3 rows go to bucket 4 */
  assert_ticket_refused(rt, &m, &forged);
  forged = eager;
  forged.padded_batch = LARGEST; /* an eager step's is its batch */
  assert_ticket_refused(rt, &m, &forged);
  forged = eager;
  forged.batch_size = 0;
  assert_ticket_refused(rt, &m, &forged);

  /* The real ones still answer. */
  check_outputs(rt, &m, &first, &three);
  check_outputs(rt, &m, &last, &five);
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &old));
  assert_cgr_ok(rt, cgr_ticket_query(rt, &eager));
  void *out = NULL;
  assert_cgr_status(rt, cgr_output(rt, &old, m.out, &out), CGR_E_INVALID_STATE);
  cgr_runtime_destroy(rt);
}

/* ---- eager steps --------------------------------------------------------- */

static void
test_eager_mode_runs_a_batch_over_the_largest_bucket_without_allow_eager(
    void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, BUCKETS, 0, &m);
  cgr_batch *batch = NULL;
  assert_cgr_status(rt, cgr_batch_begin(rt, LARGEST + 1, &batch),
                    CGR_E_BATCH_TOO_LARGE);
  /* The eager mode is no fallback: allow_eager does not apply. */
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, CGR_REPLAY_EAGER));
  model_inputs big;
  model_make_inputs(&big, LARGEST + 1, LARGEST + 1, 41);
  cgr_ticket ticket = replay_from_host(rt, &m, &big);
  assert_int_equal(ticket.set, -1);
  assert_int_equal(ticket.padded_batch, LARGEST + 1);
  check_outputs(rt, &m, &ticket, &big);
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.eager_runs, 0);
  cgr_runtime_destroy(rt);
}

static void
test_eager_outputs_expire_one_replay_before_graph_outputs(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, BUCKETS, 1, &m);
  model_inputs in;
  model_make_inputs(&in, 3, 3, 42);
  void *out = NULL;
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, CGR_REPLAY_EAGER));
  cgr_ticket eager = replay_from_host(rt, &m, &in);
  assert_cgr_ok(rt, cgr_output(rt, &eager, m.out, &out));
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, CGR_REPLAY_FUSED));
  cgr_ticket graph = replay_from_host(rt, &m, &in);
  /* An eager step's outputs end at the next replay... */
  assert_cgr_status(rt, cgr_output(rt, &eager, m.out, &out),
                    CGR_E_INVALID_STATE);
  assert_cgr_ok(rt, cgr_output(rt, &graph, m.out, &out));
  /* ...a graph step's at the one after. */
  (void)replay_from_host(rt, &m, &in);
  check_outputs(rt, &m, &graph, &in);
  (void)replay_from_host(rt, &m, &in);
  assert_cgr_status(rt, cgr_output(rt, &graph, m.out, &out),
                    CGR_E_INVALID_STATE);
  cgr_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(
        test_unchanged_after_another_batch_size_is_refused_at_the_call),
    RUNTIME_TEST(test_unchanged_of_a_set_never_loaded_is_refused_at_the_call),
    RUNTIME_TEST(test_unchanged_in_an_eager_step_is_refused_at_the_call),
    RUNTIME_TEST(test_unchanged_right_after_switching_to_in_graph_mode_replays),
    RUNTIME_TEST(test_feedback_new_rows_outside_the_slot_range_are_refused),
    RUNTIME_TEST(
        test_unsigned_slots_validate_elements_as_unsigned_for_every_width),
    RUNTIME_TEST(test_slot_desc_init_defaults_to_signed_elements),
    RUNTIME_TEST(test_slot_declare_refuses_elem_unsigned_other_than_0_or_1),
    RUNTIME_TEST(
        test_replay_without_a_ticket_consumes_the_batch_and_names_ticket),
    RUNTIME_TEST(test_forged_tickets_are_refused_by_output_wait_and_query),
    RUNTIME_TEST(
        test_eager_mode_runs_a_batch_over_the_largest_bucket_without_allow_eager),
    RUNTIME_TEST(test_eager_outputs_expire_one_replay_before_graph_outputs),
};

CGR_TEST_MAIN(tests)
