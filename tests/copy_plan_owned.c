/* Owned copy plans (issue 23): out of validation mode the replay builds
 * every destination itself, and finish checks only the reads of caller
 * memory against them, in O(ops), instead of sorting every range. These
 * tests hold that shortcut to the whole check's answers where it matters:
 * a caller's source or index inside a destination is refused all the
 * same, by the plan and through cgr_replay with validation off; too many
 * foreign operations fall back to the whole check.
 *
 * Then the step path's plan without its per-step passes: appending
 * numbers tiles (per launch of CGR__FUSED_COPY_LARGE operations, from a
 * cut when the replay splits the plan), and a plan's own memory keeps the
 * launch header before its first operation. The numbering is held to a
 * fresh count for any cut, before and after further appends; a launch
 * past 2^32 tiles to finish's refusal; launches in place to the bytes
 * they move, the plan's operations unchanged by them. */
#define _POSIX_C_SOURCE 200809L /* rand_r */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/fused_copy.h"
#include "model.h"

enum { ARENA = 4096 };

static unsigned char dst_arena[ARENA], src_arena[ARENA];
static int32_t index_arena[64];

static void owned_plan(cgr__copy_plan *plan) {
  cgr__copy_plan_init(plan);
  plan->owned = 1;
}

static void assert_error_has(const cgr__error *err, const char *needle) {
  if (strstr(err->message, needle) == NULL)
    fail_msg("the message lacks \"%s\": %s", needle, err->message);
}

/* A foreign COPY reading bytes another operation writes is refused,
 * naming both, as the whole check names them. */
static void test_a_foreign_source_inside_a_destination_is_refused(void **s) {
  (void)s;
  cgr__error err;
  memset(&err, 0, sizeof err);
  cgr__copy_plan plan;
  owned_plan(&plan);
  assert_int_equal(cgr__copy_plan_copy(&plan, dst_arena, src_arena, 64, &err),
                   CGR_OK);
  size_t before = plan.count;
  assert_int_equal(cgr__copy_plan_copy(&plan, dst_arena + 256, dst_arena + 32,
                                       16, &err),
                   CGR_OK);
  cgr__copy_plan_mark_foreign(&plan, before);
  assert_int_equal(cgr__copy_plan_finish(&plan, &err), CGR_E_INVALID_ARGUMENT);
  assert_error_has(&err, "operation 1 (COPY) reads source bytes that "
                         "operation 0 (COPY) writes");
  /* The same read, not marked: the builder vouched for it. */
  cgr__copy_plan_clear(&plan);
  assert_int_equal(cgr__copy_plan_copy(&plan, dst_arena, src_arena, 64, &err),
                   CGR_OK);
  assert_int_equal(cgr__copy_plan_copy(&plan, dst_arena + 256, dst_arena + 32,
                                       16, &err),
                   CGR_OK);
  assert_int_equal(cgr__copy_plan_finish(&plan, &err), CGR_OK);
  cgr__copy_plan_release(&plan);
}

/* A foreign GATHER's index array inside a destination is refused; one
 * outside every destination passes. */
static void test_a_foreign_index_inside_a_destination_is_refused(void **s) {
  (void)s;
  cgr__error err;
  memset(&err, 0, sizeof err);
  cgr__copy_plan plan;
  owned_plan(&plan);
  int32_t *in_dst = (int32_t *)(void *)(dst_arena + 512);
  assert_int_equal(cgr__copy_plan_fill(&plan, dst_arena + 512, 0, 4, 64, &err),
                   CGR_OK);
  assert_int_equal(cgr__copy_plan_gather(&plan, dst_arena, src_arena, in_dst, 4,
                                         16, &err),
                   CGR_OK);
  cgr__copy_plan_mark_foreign(&plan, 1);
  assert_int_equal(cgr__copy_plan_finish(&plan, &err), CGR_E_INVALID_ARGUMENT);
  assert_error_has(&err, "operation 1 (GATHER) reads index bytes that "
                         "operation 0 (FILL) writes");
  cgr__copy_plan_clear(&plan);
  assert_int_equal(plan.foreign_count, 0);
  assert_int_equal(cgr__copy_plan_fill(&plan, dst_arena + 512, 0, 4, 64, &err),
                   CGR_OK);
  assert_int_equal(cgr__copy_plan_gather(&plan, dst_arena, src_arena,
                                         index_arena, 4, 16, &err),
                   CGR_OK);
  cgr__copy_plan_mark_foreign(&plan, 1);
  assert_int_equal(cgr__copy_plan_finish(&plan, &err), CGR_OK);
  assert_int_equal(plan.tile_count, 2);
  cgr__copy_plan_release(&plan);
}

/* A builder's bound on its destinations ([dst_low, dst_high)) lets a
 * foreign read outside it pass unwalked; one inside is walked, and refused
 * where it overlaps a destination, as without the bound. */
static void test_a_bound_on_destinations_keeps_the_check(void **s) {
  (void)s;
  cgr__error err;
  memset(&err, 0, sizeof err);
  cgr__copy_plan plan;
  owned_plan(&plan);
  for (int inside = 0; inside < 3; ++inside) {
    cgr__copy_plan_clear(&plan);
    plan.dst_low = (uint64_t)(uintptr_t)dst_arena;
    plan.dst_high = (uint64_t)(uintptr_t)(dst_arena + ARENA);
    assert_int_equal(cgr__copy_plan_copy(&plan, dst_arena, src_arena, 64, &err),
                     CGR_OK);
    /* Outside the bound; inside it, clear of the destination; over it. */
    const unsigned char *read = inside == 0   ? src_arena
                                : inside == 1 ? dst_arena + 1024
                                              : dst_arena + 32;
    assert_int_equal(cgr__copy_plan_copy(&plan, dst_arena + 256, read, 16,
                                         &err),
                     CGR_OK);
    cgr__copy_plan_mark_foreign(&plan, 1);
    assert_int_equal(cgr__copy_plan_finish(&plan, &err),
                     inside == 2 ? CGR_E_INVALID_ARGUMENT : CGR_OK);
  }
  assert_error_has(&err, "operation 1 (COPY) reads source bytes that "
                         "operation 0 (COPY) writes");
  cgr__copy_plan_release(&plan);
}

/* Past CGR__COPY_PLAN_FOREIGN foreign operations the plan checks every
 * range, destinations included: an overlap of two destinations, which an
 * owned plan otherwise takes on trust, is refused then. */
static void test_too_many_foreign_operations_check_everything(void **s) {
  (void)s;
  cgr__error err;
  memset(&err, 0, sizeof err);
  cgr__copy_plan plan;
  owned_plan(&plan);
  for (int i = 0; i <= CGR__COPY_PLAN_FOREIGN; ++i)
    assert_int_equal(cgr__copy_plan_copy(&plan, dst_arena + 64 * i,
                                         src_arena + 64 * i, 64, &err),
                     CGR_OK);
  cgr__copy_plan_mark_foreign(&plan, 0);
  assert_true(plan.foreign_count > CGR__COPY_PLAN_FOREIGN);
  assert_int_equal(cgr__copy_plan_finish(&plan, &err), CGR_OK);
  assert_int_equal(cgr__copy_plan_copy(&plan, dst_arena + 32, src_arena, 64,
                                       &err),
                   CGR_OK);
  assert_int_equal(cgr__copy_plan_finish(&plan, &err), CGR_E_INVALID_ARGUMENT);
  assert_error_has(&err, "write overlapping destination bytes");
  cgr__copy_plan_release(&plan);
}

/* ---- through cgr_replay, validation off --------------------------------- */

/* Gives the model's inputs from the host but positions, which come from
 * `positions` on the device. */
static cgr_status replay_with_positions(cgr_runtime *rt, const model *m,
                                        const model_inputs *in,
                                        const void *positions,
                                        cgr_ticket *ticket) {
  uint32_t b = in->rows;
  cgr_batch *batch = NULL;
  CGR__CHECK(cgr_batch_begin(rt, b, &batch));
  CGR__CHECK(
      cgr_batch_input(batch, m->ids, CGR_SOURCE_HOST, in->ids, (size_t)b * 4));
  CGR__CHECK(cgr_batch_input(batch, m->pos, CGR_SOURCE_DEVICE, positions,
                             (size_t)b * 4));
  CGR__CHECK(cgr_batch_input(batch, m->pages, CGR_SOURCE_HOST, in->pages,
                             (size_t)b * 4 * MODEL_PAGES));
  CGR__CHECK(cgr_batch_input(batch, m->cu_k, CGR_SOURCE_HOST, in->cu_k,
                             (size_t)(b + 1) * 4));
  return cgr_replay(rt, batch, ticket);
}

/* A DEVICE source that is a slot buffer of the set being loaded (the
 * caller passed cgr_slot_address of the wrong set) would be read while
 * the same plan writes it: refused, with validation off as with it on,
 * and the runtime goes on. */
static void test_replay_refuses_a_source_it_would_overwrite(void **state) {
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = model_unvalidated_runtime(&m, CGR_REPLAY_FUSED);
  model_inputs in;
  model_make_inputs(&in, 4, 4, 31);
  void *ids_set0 = NULL, *ids_set1 = NULL;
  assert_cgr_ok(rt, cgr_slot_address(rt, m.ids, 0, 0, &ids_set0));
  assert_cgr_ok(rt, cgr_slot_address(rt, m.ids, 1, 0, &ids_set1));
  cgr_ticket ticket;
  /* Step 0 loads set 0: its own input_ids are refused as positions. */
  assert_cgr_status(rt, replay_with_positions(rt, &m, &in, ids_set0, &ticket),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "reads source bytes that operation");
  /* Set 1's are another allocation: read, not written, by this step. */
  assert_cgr_ok(rt, replay_with_positions(rt, &m, &in, ids_set1, &ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
  cgr_runtime_destroy(rt);
}

/* ---- owned plans give the same results ------------------------------------
 */

/* A slot's data in the three places a batch can take it from. */
typedef struct placed {
  void *pinned, *device;
} placed;

enum { DIFF_STEPS = 160 };

/* Gives slot `slot` `bytes` of `data` from a random source: the host, a
 * pinned copy or a device copy (not in the in-graph mode). */
static void give_somewhere(cgr_runtime *rt, cgr_batch *batch, cgr_slot slot,
                           const void *data, size_t bytes, const placed *p,
                           int device_ok, unsigned *seed) {
  int where = rand_r(seed) % (device_ok ? 3 : 2);
  if (where == 0) {
    assert_cgr_ok(rt,
                  cgr_batch_input(batch, slot, CGR_SOURCE_HOST, data, bytes));
  } else if (where == 1) {
    memcpy(p->pinned, data, bytes);
    assert_cgr_ok(rt, cgr_batch_input(batch, slot, CGR_SOURCE_PINNED, p->pinned,
                                      bytes));
  } else {
    assert_cgr_ok(rt, cgr_memcpy(rt, p->device, data, bytes));
    assert_cgr_ok(rt, cgr_batch_input(batch, slot, CGR_SOURCE_DEVICE, p->device,
                                      bytes));
  }
}

/* Random batch sizes, sources and unchanged page tables, validation off
 * (owned plans: issue 23): every step's outputs are the model's, in every
 * mode cgr_replay runs. */
static void test_owned_plans_give_the_models_outputs(void **state) {
  (void)cgr_test_runtime(state);
  static const cgr_replay_mode modes[] = {CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED,
                                          CGR_REPLAY_DOUBLE_BUFFERED,
                                          CGR_REPLAY_IN_GRAPH};
  for (size_t mode = 0; mode < sizeof modes / sizeof modes[0]; ++mode) {
    model m;
    cgr_runtime *rt = model_unvalidated_runtime(&m, modes[mode]);
    int device_ok = modes[mode] != CGR_REPLAY_IN_GRAPH;
    placed p[4];
    size_t room = sizeof(int32_t) * MODEL_MAX_ROWS * MODEL_PAGES;
    for (int i = 0; i < 4; ++i) {
      assert_cgr_ok(rt, cgr_pinned_alloc(rt, room, &p[i].pinned));
      assert_cgr_ok(rt, cgr_device_alloc(rt, room, &p[i].device));
    }
    static model_inputs in, last[2];
    unsigned seed = 1234 + (unsigned)mode;
    uint32_t last_rows[2] = {0, 0};
    for (uint64_t n = 0; n < DIFF_STEPS; ++n) {
      int k = (int)(n % 2);
      uint32_t rows = 1 + (uint32_t)(rand_r(&seed) % 8);
      model_make_inputs(&in, rows, rows, (unsigned)rand_r(&seed));
      cgr_batch *batch = NULL;
      assert_cgr_ok(rt, cgr_batch_begin(rt, rows, &batch));
      give_somewhere(rt, batch, m.ids, in.ids, rows * 4, &p[0], device_ok,
                     &seed);
      give_somewhere(rt, batch, m.pos, in.pos, rows * 4, &p[1], device_ok,
                     &seed);
      give_somewhere(rt, batch, m.cu_k, in.cu_k, (rows + 1) * 4, &p[2],
                     device_ok, &seed);
      /* The page table: unchanged where the set holds this batch size's,
       * half the time (the set then keeps what it was last given). */
      if (last_rows[k] == rows && rand_r(&seed) % 2 == 0 &&
          cgr_batch_unchanged(batch, m.pages) == CGR_OK) {
        memcpy(in.pages, last[k].pages, sizeof in.pages);
      } else {
        give_somewhere(rt, batch, m.pages, in.pages,
                       (size_t)rows * 4 * MODEL_PAGES, &p[3], device_ok, &seed);
      }
      cgr_ticket ticket;
      assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
      assert_int_equal(ticket.set, k);
      assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
      void *out = NULL, *out_pages = NULL;
      assert_cgr_ok(rt, cgr_output(rt, &ticket, m.out, &out));
      assert_cgr_ok(rt, cgr_output(rt, &ticket, m.out_pages, &out_pages));
      model_check_outputs(rt, out, out_pages, &in, ticket.padded_batch, rows,
                          NULL);
      last[k] = in;
      last_rows[k] = rows;
    }
    for (int i = 0; i < 4; ++i) {
      assert_cgr_ok(rt, cgr_pinned_free(rt, p[i].pinned));
      assert_cgr_ok(rt, cgr_device_free(rt, p[i].device));
    }
    cgr_runtime_destroy(rt);
  }
}

/* ---- tiles numbered on append, launches in place ------------------------ */

/* The numbering a plan's operations [first, first + count) need as one
 * part: tiles counted from each chunk of CGR__FUSED_COPY_LARGE. Checks
 * every operation's tile_begin and returns the part's tiles. */
static uint64_t check_part(const cgr__copy_plan *plan, size_t first,
                           size_t count) {
  uint64_t total = 0, in_launch = 0;
  for (size_t i = 0; i < count; ++i) {
    if (i % CGR__FUSED_COPY_LARGE == 0)
      in_launch = 0;
    const cgr__copy_desc *op = &plan->ops[first + i];
    if (op->tile_begin != in_launch)
      fail_msg("operation %zu (part from %zu) starts at tile %u, not %llu",
               first + i, first, op->tile_begin, (unsigned long long)in_launch);
    uint64_t tiles =
        (op->bytes + CGR__COPY_TILE_BYTES - 1) / CGR__COPY_TILE_BYTES;
    in_launch += tiles;
    total += tiles;
  }
  return total;
}

static uint64_t bytes_of(const cgr__copy_plan *plan, size_t first,
                         size_t count) {
  uint64_t bytes = 0;
  for (size_t i = 0; i < count; ++i)
    bytes += plan->ops[first + i].bytes;
  return bytes;
}

/* Appends `count` COPY and FILL operations of random sizes, up to 70 KB
 * (several tiles), at disjoint addresses that are never dereferenced:
 * these plans are numbered and finished, not launched. */
static void append_random(cgr__copy_plan *plan, uint64_t *seed, size_t count,
                          uintptr_t *cursor, cgr__error *err) {
  for (size_t i = 0; i < count; ++i) {
    uint64_t bytes = 8 * (1 + test_random_below(seed, 70000 / 8));
    void *dst = (void *)*cursor;
    *cursor += bytes + 64;
    if (test_random_below(seed, 2))
      assert_int_equal(cgr__copy_plan_copy(plan, dst,
                                           (void *)(*cursor + (1u << 30)),
                                           bytes, err),
                       CGR_OK);
    else
      assert_int_equal(cgr__copy_plan_fill(plan, dst, 7, 8, bytes, err),
                       CGR_OK);
  }
}

static void check_split(cgr__copy_plan *plan, size_t cut, cgr__error *err) {
  cgr__copy_plan head, tail;
  assert_int_equal(cgr__copy_plan_finish_split(plan, cut, &head, &tail, err),
                   CGR_OK);
  assert_int_equal(head.count, cut);
  assert_int_equal(tail.count, plan->count - cut);
  assert_int_equal(head.tile_count, check_part(plan, 0, cut));
  assert_int_equal(tail.tile_count, check_part(plan, cut, plan->count - cut));
  assert_int_equal(head.total_bytes, bytes_of(plan, 0, cut));
  assert_int_equal(tail.total_bytes, bytes_of(plan, cut, plan->count - cut));
}

static void check_whole(cgr__copy_plan *plan, cgr__error *err) {
  assert_int_equal(cgr__copy_plan_finish(plan, err), CGR_OK);
  assert_int_equal(plan->tile_count, check_part(plan, 0, plan->count));
  assert_int_equal(plan->total_bytes, bytes_of(plan, 0, plan->count));
}

/* Random plans around the chunk size, cut where the replay cuts them
 * (cgr__copy_plan_cut) and elsewhere, finished whole and in parts, then
 * grown and finished again: every numbering equals a fresh count. */
static void test_numbering_on_append_equals_a_fresh_count(void **state) {
  (void)state;
  cgr__error err;
  memset(&err, 0, sizeof err);
  static const size_t sizes[] = {1, 2, 7, 64, 679, 680, 681, 1361, 2000};
  uint64_t seed = 0x5EED0F7113u;
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; ++s) {
    for (int owned = 0; owned < 2; ++owned) {
      cgr__copy_plan plan;
      cgr__copy_plan_init(&plan);
      plan.owned = owned;
      uintptr_t cursor = 1u << 20;
      size_t total = sizes[s];
      size_t cut = (size_t)test_random_below(&seed, total + 1);
      append_random(&plan, &seed, cut, &cursor, &err);
      cgr__copy_plan_cut(&plan);
      append_random(&plan, &seed, total - cut, &cursor, &err);
      check_split(&plan, cut, &err);
      /* Another cut, then the plan whole, then grown and whole again,
       * then split at its first cut again. */
      check_split(&plan, (size_t)test_random_below(&seed, total + 1), &err);
      check_whole(&plan, &err);
      append_random(&plan, &seed, 1 + (size_t)test_random_below(&seed, 700),
                    &cursor, &err);
      check_whole(&plan, &err);
      check_split(&plan, cut, &err);
      /* Cleared and rebuilt without a cut: numbered for one launch. */
      cgr__copy_plan_clear(&plan);
      append_random(&plan, &seed, total, &cursor, &err);
      check_whole(&plan, &err);
      cgr__copy_plan_release(&plan);
    }
  }
}

/* One launch holds at most 2^32 tiles: an operation past that is refused
 * at finish, naming it, however the plan was cut. */
static void test_a_launch_past_2_32_tiles_is_refused_at_finish(void **state) {
  (void)state;
  cgr__error err;
  memset(&err, 0, sizeof err);
  uint64_t huge = (UINT64_C(1) << 32) * CGR__COPY_TILE_BYTES;
  for (int cut = 0; cut < 2; ++cut) {
    cgr__copy_plan plan;
    cgr__copy_plan_init(&plan);
    plan.owned = 1;
    assert_int_equal(cgr__copy_plan_fill(&plan, (void *)(uintptr_t)0x1000, 0, 8,
                                         64, &err),
                     CGR_OK);
    if (cut)
      cgr__copy_plan_cut(&plan);
    assert_int_equal(cgr__copy_plan_fill(&plan, (void *)(uintptr_t)0x2000, 0, 8,
                                         huge, &err),
                     CGR_OK);
    assert_int_equal(cgr__copy_plan_finish(&plan, &err),
                     CGR_E_INVALID_ARGUMENT);
    if (strstr(err.message, "operation 1: a launch would need more than 2^32 "
                            "tiles") == NULL)
      fail_msg("unexpected message: %s", err.message);
    cgr__copy_plan head, tail;
    assert_int_equal(cgr__copy_plan_finish_split(&plan, 1, &head, &tail, &err),
                     CGR_E_INVALID_ARGUMENT);
    assert_int_equal(plan.finished, 0);
    cgr__copy_plan_release(&plan);
  }
}

enum { ROW = 256, ROWS = 40 };

/* A plan of ROWS copies of ROW bytes, src row i to dst row i, cut after
 * `cut` of them. */
static void build_rows(cgr_runtime *rt, cgr__copy_plan *plan,
                       unsigned char *dst, const unsigned char *src,
                       size_t cut) {
  for (size_t i = 0; i < ROWS; ++i) {
    if (i == cut)
      cgr__copy_plan_cut(plan);
    assert_cgr_ok(rt, cgr__copy_plan_copy(plan, dst + i * ROW, src + i * ROW,
                                          ROW, &rt->error));
  }
}

static void check_rows(cgr_runtime *rt, unsigned char *dst,
                       const unsigned char *expected) {
  unsigned char readback[ROWS * ROW];
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), readback,
                                         dst, sizeof readback));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
  assert_memory_equal(readback, expected, sizeof readback);
}

/* A plan launched in place, whole and as the two parts of a split (the
 * head in place, the tail through a copy: its header would fall on the
 * head's last operation), moves what it says, and the launches leave
 * the plan's operations as they were. */
static void test_launches_in_place_leave_the_plan_unchanged(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  unsigned char *src = NULL, *dst = NULL;
  unsigned char host[ROWS * ROW], zeros[ROWS * ROW];
  for (size_t i = 0; i < sizeof host; ++i)
    host[i] = (unsigned char)(i * 131 + 7);
  memset(zeros, 0, sizeof zeros);
  assert_cgr_ok(rt, cgr__be_device_alloc(be, sizeof host, (void **)&src));
  assert_cgr_ok(rt, cgr__be_device_alloc(be, sizeof host, (void **)&dst));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), src, host,
                                         sizeof host));
  static const size_t cuts[] = {0, 1, 8, 9, 39, ROWS};
  for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; ++c) {
    for (int split = 0; split < 2; ++split) {
      assert_cgr_ok(rt, cgr__be_memset_async(be, TEST_MAIN(rt), dst, 0,
                                             sizeof host));
      cgr__copy_plan plan, head, tail;
      cgr__copy_plan_init(&plan);
      plan.owned = 1;
      build_rows(rt, &plan, dst, src, cuts[c]);
      cgr__copy_desc before[ROWS];
      if (split) {
        assert_cgr_ok(rt, cgr__copy_plan_finish_split(&plan, cuts[c], &head,
                                                      &tail, &rt->error));
        memcpy(before, plan.ops, sizeof before);
        assert_cgr_ok(rt, cgr__fused_copy_launch(be, TEST_MAIN(rt), &head));
        assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
        /* The head alone: its rows, and zeros past them. */
        unsigned char expected[ROWS * ROW];
        memcpy(expected, host, cuts[c] * ROW);
        memcpy(expected + cuts[c] * ROW, zeros, (ROWS - cuts[c]) * ROW);
        check_rows(rt, dst, expected);
        assert_cgr_ok(rt, cgr__fused_copy_launch(be, TEST_MAIN(rt), &tail));
      } else {
        assert_cgr_ok(rt, cgr__copy_plan_finish(&plan, &rt->error));
        memcpy(before, plan.ops, sizeof before);
        assert_cgr_ok(rt, cgr__fused_copy_launch(be, TEST_MAIN(rt), &plan));
      }
      check_rows(rt, dst, host);
      assert_memory_equal(plan.ops, before, sizeof before);
      cgr__copy_plan_release(&plan);
    }
  }
  cgr__be_device_free(be, src);
  cgr__be_device_free(be, dst);
}

static const struct CMUnitTest tests[] = {
    HOST_TEST(test_a_foreign_source_inside_a_destination_is_refused),
    HOST_TEST(test_a_foreign_index_inside_a_destination_is_refused),
    HOST_TEST(test_too_many_foreign_operations_check_everything),
    RUNTIME_TEST(test_replay_refuses_a_source_it_would_overwrite),
    RUNTIME_TEST(test_owned_plans_give_the_models_outputs),
    cmocka_unit_test(test_a_bound_on_destinations_keeps_the_check),
    cmocka_unit_test(test_numbering_on_append_equals_a_fresh_count),
    cmocka_unit_test(test_a_launch_past_2_32_tiles_is_refused_at_finish),
    RUNTIME_TEST(test_launches_in_place_leave_the_plan_unchanged),
};

CGR_TEST_MAIN(tests)
