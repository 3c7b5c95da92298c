/* Fuzz regressions: every file of fuzz/corpus/ (seeds, and the inputs of
 * crashes found by fuzzing) replayed through the fuzz targets' own
 * decoders, which trap on any broken invariant; and each bug fuzzing
 * found, as the call sequence that showed it. Runs on every test run, with
 * any compiler: the decoders are plain C (fuzz/README.md). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The decoders, compiled into this test; their libFuzzer entry points are
 * left out (CGR_FUZZ_MAIN is not defined). Before harness.h, whose cmocka
 * macros are not theirs. */
#include "fuzz/batch.c"
#include "fuzz/batch_model.c"
#include "fuzz/copy_plan.c"
#include "fuzz/slots_buckets.c"

#include "harness.h"

/* ---- the corpus ---------------------------------------------------------- */

/* fuzz/corpus/<target>: beside this file's folder, or CGR_FUZZ_CORPUS. */
static void corpus_folder(const char *target, char *path, size_t size) {
  const char *root = getenv("CGR_FUZZ_CORPUS");
  if (root != NULL) {
    snprintf(path, size, "%s/%s", root, target);
    return;
  }
  /* CMake compiles sources by absolute path: __FILE__ is
   * <source>/tests/fuzz_regressions.c. */
  const char *file = __FILE__;
  const char *slash = strrchr(file, '/');
  int tests = slash == NULL ? 0 : (int)(slash - file);
  snprintf(path, size, "%.*s/../fuzz/corpus/%s", tests, file, target);
}

static unsigned char *read_input(const char *path, size_t *size) {
  FILE *file = fopen(path, "rb");
  if (file == NULL)
    fail_msg("cannot open %s: %s", path, strerror(errno));
  size_t capacity = 4096, used = 0;
  unsigned char *data = malloc(capacity);
  assert_non_null(data);
  size_t got;
  while ((got = fread(data + used, 1, capacity - used, file)) > 0) {
    used += got;
    if (used == capacity) {
      capacity *= 2;
      data = realloc(data, capacity);
      assert_non_null(data);
    }
  }
  fclose(file);
  *size = used;
  return data;
}

/* Replays every file of the target's corpus; the decoder traps on the
 * first broken invariant and names it on stderr. */
static void replay_corpus(const char *target,
                          int (*one)(const uint8_t *, size_t)) {
  char folder[4096];
  corpus_folder(target, folder, sizeof folder);
  DIR *dir = opendir(folder);
  if (dir == NULL)
    fail_msg("cannot open the corpus %s: %s (set CGR_FUZZ_CORPUS to "
             "fuzz/corpus)",
             folder, strerror(errno));
  int replayed = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] == '.')
      continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", folder, entry->d_name);
    size_t size = 0;
    unsigned char *data = read_input(path, &size);
    printf("%s/%s (%zu bytes)\n", target, entry->d_name, size);
    fflush(stdout);
    assert_int_equal(one(data, size), 0);
    free(data);
    replayed++;
  }
  closedir(dir);
  if (replayed == 0)
    fail_msg("the corpus %s is empty", folder);
}

static void test_copy_plan_corpus_replays_clean(void **state) {
  (void)state;
  replay_corpus("copy_plan", fuzz_copy_plan_one);
  fuzz_copy_plan_release();
}

static void test_slots_buckets_corpus_replays_clean(void **state) {
  (void)state;
  replay_corpus("slots_buckets", fuzz_slots_buckets_one);
}

static void test_batch_corpus_replays_clean(void **state) {
  (void)state;
  replay_corpus("batch", fuzz_batch_one);
  fuzz_batch_release();
}

/* ---- bugs fuzzing found -------------------------------------------------- */

/* fuzz/copy_plan.c: a GATHER whose int32 index array was not 4-byte
 * aligned was accepted, and the host executor then loaded the indices
 * misaligned (UBSan: "load of misaligned address"; on a GPU, a
 * misaligned-address fault). Now refused when the operation is added. */
static void test_copy_plan_refuses_a_misaligned_gather_index(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  int32_t storage[8] = {0, 1, 2, 3, 0, 0, 0, 0};
  unsigned char dst[64], src[64];
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  const int32_t *misaligned =
      (const int32_t *)(const void *)((const unsigned char *)storage + 1);
  assert_cgr_status(rt,
                    cgr__copy_plan_gather(&plan, dst, src, misaligned, 4, 4,
                                          &rt->error),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "copy plan operation 0 (GATHER)");
  assert_last_error_contains(rt, "aligned");
  assert_int_equal(plan.count, 0);
  /* Zero rows are no exception: the pointer is checked first. */
  assert_cgr_status(rt,
                    cgr__copy_plan_gather(&plan, dst, src, misaligned, 0, 4,
                                          &rt->error),
                    CGR_E_INVALID_ARGUMENT);
  /* The aligned array is accepted, and runs. */
  for (int i = 0; i < 64; ++i)
    src[i] = (unsigned char)i;
  assert_cgr_ok(rt, cgr__copy_plan_gather(&plan, dst, src, storage, 4, 4,
                                          &rt->error));
  assert_cgr_ok(rt, cgr__copy_plan_finish(&plan, &rt->error));
  assert_cgr_ok(rt, cgr__fused_copy_launch(TEST_BE(rt), TEST_MAIN(rt), &plan));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
  assert_memory_equal(dst, src, 16);
  cgr__copy_plan_release(&plan);
}

/* fuzz/copy_plan.c: a GATHER whose index array [index, index + 4 rows)
 * wraps around the address space was accepted (only the destination's
 * end was checked), so finish compared a wrapped range for overlap. Now
 * refused like every other range that overflows. */
static void test_copy_plan_refuses_an_index_array_that_wraps(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  unsigned char dst[8], src[8];
  cgr__copy_plan plan;
  cgr__copy_plan_init(&plan);
  /* 16 bytes below the top, 4-byte aligned: 8 rows need 32 bytes. */
  const int32_t *near_top = (const int32_t *)(uintptr_t)(UINTPTR_MAX - 15);
  assert_cgr_status(rt,
                    cgr__copy_plan_gather(&plan, dst, src, near_top, 8, 1,
                                          &rt->error),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "indices overflow the address space");
  assert_int_equal(plan.count, 0);
  /* Three rows end below the top: that fits. */
  assert_cgr_ok(rt, cgr__copy_plan_gather(&plan, dst, src, near_top, 3, 1,
                                          &rt->error));
  assert_int_equal(plan.count, 1);
  cgr__copy_plan_release(&plan);
}

/* out = input_ids + input_ids, a step fed by its own output. */
typedef struct doubling {
  cgr_slot ids, out;
} doubling;

static cgr_status doubling_step(cgr_step *step, void *user) {
  const doubling *d = user;
  int32_t *ids = cgr_step_slot(step, d->ids);
  cgr__add_i32_args args = {cgr_step_slot(step, d->out), ids, ids,
                            (int64_t)cgr_step_padded_batch(step)};
  return cgr_step_launch(step, &cgr__kernel_add_i32, &args);
}

/* fuzz/batch.c: feedback into a batch over the largest bucket (an eager
 * step) with more new rows than the largest bucket holds wrote them past
 * input_ids' region of the set's pinned staging (ASan: heap-buffer-
 * overflow in plan_feedback, replay/replay.c); moved rows' indices overrun
 * feed_index the same way. Fixed: an eager step's feedback now gets
 * pinned memory of its own. */
static void test_feedback_into_an_eager_step_stays_in_bounds(void **state) {
  (void)state;
  enum { EAGER_ROWS = 70 };
  static const uint32_t buckets[] = {1, 2};
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = buckets;
  config.bucket_count = 2;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  doubling d;
  cgr_slot_desc desc;
  cgr_slot_desc_init(&desc, "input_ids", CGR_SLOT_ROWS, 4, 1);
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &d.ids));
  cgr_slot_desc_init(&desc, "out", CGR_SLOT_OUTPUT, 4, 1);
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &d.out));
  assert_cgr_ok(rt, cgr_slot_feed(rt, d.out, d.ids));
  assert_cgr_ok(rt, cgr_capture(rt, doubling_step, &d));

  /* A graph step of 2 rows: out = {2, 4}. */
  int32_t ids[2] = {1, 2};
  cgr_batch *batch = NULL;
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_batch_begin(rt, 2, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, d.ids, CGR_SOURCE_HOST, ids,
                                    sizeof ids));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_int_equal(ticket.set, 0);

  /* An eager step of 70 rows continuing both (swapped), 68 new. */
  int32_t prev_rows[EAGER_ROWS], new_rows[EAGER_ROWS - 2];
  prev_rows[0] = 1;
  prev_rows[1] = 0;
  for (int j = 2; j < EAGER_ROWS; ++j) {
    prev_rows[j] = -1;
    new_rows[j - 2] = 100 + j;
  }
  assert_cgr_ok(rt, cgr_batch_begin(rt, EAGER_ROWS, &batch));
  assert_cgr_ok(rt, cgr_batch_feedback(batch, d.ids, prev_rows, new_rows,
                                       sizeof new_rows));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_int_equal(ticket.set, -1);
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
  void *out = NULL;
  assert_cgr_ok(rt, cgr_output(rt, &ticket, d.out, &out));
  int32_t got[EAGER_ROWS];
  memcpy(got, out, sizeof got); /* host backend: device memory is host's */
  assert_int_equal(got[0], 2 * 4);
  assert_int_equal(got[1], 2 * 2);
  for (int j = 2; j < EAGER_ROWS; ++j)
    assert_int_equal(got[j], 2 * (100 + j));
  cgr_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_copy_plan_corpus_replays_clean),
    cmocka_unit_test(test_slots_buckets_corpus_replays_clean),
    cmocka_unit_test(test_batch_corpus_replays_clean),
    RUNTIME_TEST(test_copy_plan_refuses_a_misaligned_gather_index),
    RUNTIME_TEST(test_copy_plan_refuses_an_index_array_that_wraps),
    cmocka_unit_test(test_feedback_into_an_eager_step_stays_in_bounds),
};

CGR_TEST_MAIN(tests)
