/* Memory on the runtime's device, the same way on both backends (issue
 * 17, items 2, 5 and 10): the public allocation and copy helpers; in
 * validation mode a PINNED source must be page-locked and a DEVICE source
 * must lie wholly in one allocation, since a GPU faults on the first and
 * reads past the end on the second; and the runtimes of one device share
 * it: its memory, its loss, and cudaFree's wait for all of its work. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "model.h"
#include "runtime/fault.h"
#include "runtime/host/host.h"

static const uint32_t buckets[] = {2, 4};

static void test_memory_helpers_copy_both_ways(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  int32_t in[64], back[64];
  for (int i = 0; i < 64; ++i)
    in[i] = i * 7 - 3;
  void *device = NULL, *pinned = NULL, *other = NULL;
  assert_cgr_ok(rt, cgr_device_alloc(rt, sizeof in, &device));
  assert_cgr_ok(rt, cgr_device_alloc(rt, sizeof in, &other));
  assert_cgr_ok(rt, cgr_pinned_alloc(rt, sizeof in, &pinned));
  assert_cgr_ok(rt, cgr_memcpy(rt, device, in, sizeof in));
  assert_cgr_ok(rt, cgr_memcpy(rt, other, device, sizeof in));
  assert_cgr_ok(rt, cgr_memcpy(rt, pinned, other, sizeof in));
  memcpy(back, pinned, sizeof back);
  assert_memory_equal(back, in, sizeof in);
  assert_cgr_ok(rt, cgr_memcpy(rt, back, device, 0)); /* a no-op */
  assert_cgr_ok(rt, cgr_device_free(rt, device));
  assert_cgr_ok(rt, cgr_device_free(rt, other));
  assert_cgr_ok(rt, cgr_pinned_free(rt, pinned));
  assert_cgr_ok(rt, cgr_device_free(rt, NULL));
}

static void test_memory_helpers_refuse_bad_arguments(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  void *ptr = &ptr;
  assert_int_equal(cgr_device_alloc(NULL, 8, &ptr), CGR_E_INVALID_ARGUMENT);
  assert_null(ptr);
  assert_cgr_status(rt, cgr_device_alloc(rt, 0, &ptr), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "'bytes' is 0");
  assert_cgr_status(rt, cgr_pinned_alloc(rt, 8, NULL), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "'out' is NULL");
  int32_t host[4] = {0};
  assert_cgr_status(rt, cgr_memcpy(rt, NULL, host, 4), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "'dst' is NULL");
  /* Freeing what is not of the kind is refused, naming what it is. */
  assert_cgr_status(rt, cgr_device_free(rt, host), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "neither device nor page-locked memory");
  void *pinned = NULL;
  assert_cgr_ok(rt, cgr_pinned_alloc(rt, 16, &pinned));
  assert_cgr_status(rt, cgr_device_free(rt, pinned), CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "is page-locked host memory, not device");
  assert_cgr_ok(rt, cgr_pinned_free(rt, pinned));
}

/* Both outputs of a step of 2 live rows, read with cgr_memcpy. */
static void expect_outputs(cgr_runtime *rt, const model *m,
                           const model_inputs *in, const cgr_ticket *ticket) {
  int32_t *out = NULL, got[2];
  assert_cgr_ok(rt, cgr_output(rt, ticket, m->out, (void **)&out));
  assert_cgr_ok(rt, cgr_memcpy(rt, got, out, sizeof got));
  for (uint32_t r = 0; r < 2; ++r)
    assert_int_equal(got[r], model_expected_out(in, ticket->padded_batch, r));
}

/* Replays `in` (2 rows) from host memory. */
static cgr_status replay_from_host(cgr_runtime *rt, const model *m,
                                   const model_inputs *in, cgr_ticket *ticket) {
  cgr_batch *batch = model_begin_batch(rt, m, in, 2, m->pos);
  assert_cgr_ok(rt, cgr_batch_input(batch, m->pos, CGR_SOURCE_HOST, in->pos,
                                    2 * sizeof(int32_t)));
  return cgr_replay(rt, batch, ticket);
}

static void test_pinned_source_must_be_page_locked(void **state) {
  (void)state;
  cgr_test_require_backend();
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, 2, 0, &m);
  model_inputs in;
  model_make_inputs(&in, 2, 2, 11);
  cgr_batch *batch = model_begin_batch(rt, &m, &in, 2, m.pos);
  /* Pageable memory as PINNED: a GPU's copy would fault on it and lose the
   * device. Refused at the call; the batch stays open. */
  int32_t pageable[2] = {in.pos[0], in.pos[1]};
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.pos, CGR_SOURCE_PINNED, pageable,
                                    sizeof pageable),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "slot 'positions': a CGR_SOURCE_PINNED "
                                 "source must lie wholly in page-locked");
  int32_t *pinned = NULL;
  assert_cgr_ok(rt, cgr_pinned_alloc(rt, sizeof pageable, (void **)&pinned));
  memcpy(pinned, pageable, sizeof pageable);
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_PINNED, pinned,
                                    sizeof pageable));
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
  expect_outputs(rt, &m, &in, &ticket);
  assert_cgr_ok(rt, cgr_pinned_free(rt, pinned));
  cgr_runtime_destroy(rt);
}

static void test_device_source_must_lie_in_one_allocation(void **state) {
  (void)state;
  cgr_test_require_backend();
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, 2, 0, &m);
  model_inputs in;
  model_make_inputs(&in, 2, 2, 12);
  int32_t *device = NULL;
  assert_cgr_ok(rt, cgr_device_alloc(rt, 16, (void **)&device));
  cgr_batch *batch = model_begin_batch(rt, &m, &in, 2, m.pos);
  /* 8 bytes from offset 12 of a 16-byte allocation: the first byte is
   * device memory, the last is past the end. */
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.pos, CGR_SOURCE_DEVICE,
                                    (char *)device + 12, 8),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "must lie wholly in device memory");
  /* Host memory as DEVICE is refused the same way. */
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.pos, CGR_SOURCE_DEVICE, in.pos, 8),
                    CGR_E_INVALID_ARGUMENT);
  /* The last 8 bytes of the allocation are fine. */
  assert_cgr_ok(rt, cgr_memcpy(rt, device + 2, in.pos, 8));
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_DEVICE, device + 2,
                                    8));
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
  expect_outputs(rt, &m, &in, &ticket);
  assert_cgr_ok(rt, cgr_device_free(rt, device));
  cgr_runtime_destroy(rt);
}

/* Two runtimes of one device are like two lanes: memory from one is device
 * memory for the other, as it is on a GPU. */
static void test_runtimes_of_one_device_share_its_memory(void **state) {
  (void)state;
  cgr_test_require_backend();
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, 2, 0, &m);
  cgr_runtime *other = NULL;
  cgr_config config;
  cgr_test_config(&config);
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &other));
  model_inputs in;
  model_make_inputs(&in, 2, 2, 13);
  int32_t *device = NULL;
  assert_cgr_ok(other, cgr_device_alloc(other, 8, (void **)&device));
  assert_cgr_ok(other, cgr_memcpy(other, device, in.pos, 8));
  cgr_batch *batch = model_begin_batch(rt, &m, &in, 2, m.pos);
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.pos, CGR_SOURCE_DEVICE, device, 8));
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
  /* Freed through the runtime that did not allocate it. */
  assert_cgr_ok(rt, cgr_device_free(rt, device));
  cgr_runtime_destroy(other);
  cgr_runtime_destroy(rt);
}

/* Replays `rows` rows of `in` from host memory. */
static cgr_status replay_rows(cgr_runtime *rt, const model *m,
                              const model_inputs *in, uint32_t rows,
                              cgr_ticket *ticket) {
  return cgr_replay(rt, model_begin_batch(rt, m, in, rows, -1), ticket);
}

/* An eager step (over the largest bucket, or CGR_REPLAY_EAGER) allocates
 * nothing after the first of its size: on CUDA a free per step would wait
 * for the whole device and serialize every other lane (issue 17, item 6). */
static void test_eager_steps_allocate_nothing_after_the_first(void **state) {
  (void)state;
  cgr_test_require_backend();
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, 2, 1, &m);
  cgr_ticket ticket;
  model_inputs in;
  model_make_inputs(&in, 6, 6, 20);
  assert_cgr_ok(rt, replay_rows(rt, &m, &in, 6, &ticket));
  assert_int_equal(ticket.set, -1); /* eager: 6 is over the largest bucket */
  cgr_counters first, later;
  assert_cgr_ok(rt, cgr_counters_get(rt, &first));
  const uint32_t sizes[] = {6, 6, 5, 6, 3};
  for (unsigned i = 0; i < 5; ++i) {
    if (i == 4)
      assert_cgr_ok(rt, cgr_set_replay_mode(rt, CGR_REPLAY_EAGER));
    model_make_inputs(&in, sizes[i], sizes[i], 21 + i);
    assert_cgr_ok(rt, replay_rows(rt, &m, &in, sizes[i], &ticket));
    assert_int_equal(ticket.set, -1);
    int32_t *out = NULL, got[6];
    assert_cgr_ok(rt, cgr_output(rt, &ticket, m.out, (void **)&out));
    assert_cgr_ok(rt, cgr_memcpy(rt, got, out, sizes[i] * sizeof(int32_t)));
    for (uint32_t r = 0; r < sizes[i]; ++r)
      assert_int_equal(got[r], model_expected_out(&in, sizes[i], r));
  }
  assert_cgr_ok(rt, cgr_counters_get(rt, &later));
  assert_int_equal(later.device_allocs, first.device_allocs);
  assert_int_equal(later.pinned_allocs, first.pinned_allocs);
  /* A larger eager batch grows the cache once, then allocates no more. */
  model_make_inputs(&in, 9, 9, 30);
  assert_cgr_ok(rt, replay_rows(rt, &m, &in, 9, &ticket));
  assert_cgr_ok(rt, cgr_counters_get(rt, &first));
  assert_true(first.device_allocs > later.device_allocs);
  assert_cgr_ok(rt, replay_rows(rt, &m, &in, 9, &ticket));
  assert_cgr_ok(rt, cgr_counters_get(rt, &later));
  assert_int_equal(later.device_allocs, first.device_allocs);
  cgr_runtime_destroy(rt);
}

/* An eager step of `in->rows` rows whose ids continue the graph step of
 * `previous` (its 4 rows reversed, then new rows): feedback into an eager
 * step. */
static void eager_feedback_step(cgr_runtime *rt, const model *m,
                                const model_inputs *previous, uint32_t padded,
                                model_inputs *in, cgr_ticket *ticket) {
  int32_t prev_rows[MODEL_MAX_ROWS], fresh[MODEL_MAX_ROWS];
  uint32_t rows = in->rows, fresh_count = 0;
  for (uint32_t j = 0; j < rows; ++j) {
    prev_rows[j] = j < 4 ? (int32_t)(3 - j) : -1;
    in->ids[j] =
        j < 4 ? model_expected_out(previous, padded, 3 - j) : 1000 + (int32_t)j;
    if (j >= 4)
      fresh[fresh_count++] = in->ids[j];
  }
  size_t bytes = rows * sizeof(int32_t);
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, rows, &batch));
  assert_cgr_ok(rt, cgr_batch_feedback(batch, m->ids, prev_rows, fresh,
                                       fresh_count * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->pos, CGR_SOURCE_HOST, in->pos,
                                    bytes));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->pages, CGR_SOURCE_HOST, in->pages,
                                    bytes * MODEL_PAGES));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->cu_k, CGR_SOURCE_HOST, in->cu_k,
                                    bytes + sizeof(int32_t)));
  assert_cgr_ok(rt, cgr_replay(rt, batch, ticket));
}

/* The same with feedback into the eager step: its gather indices and new
 * rows go to pinned memory the runtime keeps and grows only, so after the
 * first eager step of a size, neither device nor pinned memory is
 * allocated (issue 17, item 6). */
static void
test_eager_feedback_steps_allocate_nothing_after_the_first(void **state) {
  (void)state;
  cgr_test_require_backend();
  model m;
  cgr_runtime *rt = model_runtime(buckets, 2, 1, &m);
  assert_cgr_ok(rt, cgr_slot_feed(rt, m.out, m.ids));
  assert_cgr_ok(rt, cgr_capture(rt, model_step, &m));
  cgr_counters first, later;
  const uint32_t sizes[] = {6, 6, 5, 6, 6};
  for (unsigned i = 0; i < 5; ++i) {
    /* A graph step of 4 rows, then the eager step that continues it. */
    model_inputs graph_in, in;
    cgr_ticket graph_ticket, ticket;
    model_make_inputs(&graph_in, 4, 4, 40 + i);
    assert_cgr_ok(rt, replay_rows(rt, &m, &graph_in, 4, &graph_ticket));
    assert_true(graph_ticket.set >= 0);
    model_make_inputs(&in, sizes[i], sizes[i], 50 + i);
    eager_feedback_step(rt, &m, &graph_in, graph_ticket.padded_batch, &in,
                        &ticket);
    assert_int_equal(ticket.set, -1);
    int32_t *out = NULL, got[6];
    assert_cgr_ok(rt, cgr_output(rt, &ticket, m.out, (void **)&out));
    assert_cgr_ok(rt, cgr_memcpy(rt, got, out, sizes[i] * sizeof(int32_t)));
    for (uint32_t r = 0; r < sizes[i]; ++r)
      assert_int_equal(got[r], model_expected_out(&in, sizes[i], r));
    if (i == 0)
      assert_cgr_ok(rt, cgr_counters_get(rt, &first));
  }
  assert_cgr_ok(rt, cgr_counters_get(rt, &later));
  assert_int_equal(later.device_allocs, first.device_allocs);
  assert_int_equal(later.pinned_allocs, first.pinned_allocs);
  cgr_runtime_destroy(rt);
}

/* ---- host backend: one device state, as CUDA has one context ------------ */

static atomic_int slow_work_done;

static void slow_work(void *user) {
  (void)user;
  struct timespec pause = {0, 100 * 1000 * 1000};
  nanosleep(&pause, NULL);
  atomic_store(&slow_work_done, 1);
}

/* cudaFree waits for all work on the device, every runtime's: a freed
 * buffer while another lane still runs costs that lane's time. */
static void
test_device_free_waits_for_every_runtime_of_the_device(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr_test_require_host();
  cgr_runtime *other = NULL;
  cgr_config config;
  cgr_test_config(&config);
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &other));
  void *device = NULL;
  assert_cgr_ok(rt, cgr_device_alloc(rt, 64, &device));
  atomic_store(&slow_work_done, 0);
  assert_cgr_ok(other, cgr__be_host_func(TEST_BE(other), TEST_MAIN(other),
                                         slow_work, NULL));
  assert_cgr_ok(rt, cgr_device_free(rt, device));
  assert_int_equal(atomic_load(&slow_work_done), 1);
  cgr_runtime_destroy(other);
}

/* A fault in one runtime's kernel loses the device for every runtime on
 * it, as a sticky CUDA error loses the shared context. */
static void test_a_fault_in_one_runtime_loses_every_runtime(void **state) {
  (void)state;
  cgr_test_require_backend();
  cgr_test_require_host();
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, 2, 0, &m);
  cgr_runtime *other = NULL;
  cgr_config config;
  cgr_test_config(&config);
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &other));
  model_inputs in;
  model_make_inputs(&in, 2, 2, 14);
  cgr__fault_arm(CGR__CALL_DEVICE_FAULT, 1);
  cgr_ticket ticket;
  cgr_status replayed = replay_from_host(rt, &m, &in, &ticket);
  cgr_status waited =
      replayed == CGR_OK ? cgr_ticket_wait(rt, &ticket) : replayed;
  cgr__fault_disarm();
  assert_int_equal(waited, CGR_E_DEVICE_LOST);
  /* The other runtime never launched the faulting kernel, and is lost too. */
  void *device = NULL;
  assert_cgr_status(other, cgr_device_alloc(other, 8, &device),
                    CGR_E_DEVICE_LOST);
  assert_last_error_contains(other, "raised a device fault");
  assert_cgr_status(other, cgr_synchronize(other), CGR_E_DEVICE_LOST);
  cgr_runtime_destroy(other);
  cgr_runtime_destroy(rt);
  /* With every runtime of the lost device gone, the next one starts on a
   * fresh device (as after a CUDA process restart). */
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &other));
  assert_cgr_ok(other, cgr_device_alloc(other, 8, &device));
  assert_cgr_ok(other, cgr_device_free(other, device));
  cgr_runtime_destroy(other);
}

/* Host backend: each device ordinal is a device of its own, as GPUs are:
 * another ordinal's memory is not this device's, and a fault on one
 * device leaves the other alive (the ranks of a group rely on it). */
static void test_other_ordinals_are_other_devices(void **state) {
  (void)state;
  cgr_test_require_backend();
  cgr_test_require_host();
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, 2, 0, &m);
  cgr_runtime *other = NULL;
  cgr_config config;
  cgr_test_config(&config);
  config.device = 1;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &other));
  int32_t *device = NULL;
  assert_cgr_ok(other, cgr_device_alloc(other, 8, (void **)&device));
  assert_cgr_status(rt, cgr_device_free(rt, device), CGR_E_INVALID_ARGUMENT);
  model_inputs in;
  model_make_inputs(&in, 2, 2, 15);
  cgr_batch *batch = model_begin_batch(rt, &m, &in, 2, m.pos);
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.pos, CGR_SOURCE_DEVICE, device, 8),
                    CGR_E_INVALID_ARGUMENT);
  cgr_batch_discard(batch);
  cgr__fault_arm(CGR__CALL_DEVICE_FAULT, 1);
  cgr_ticket ticket;
  cgr_status replayed = replay_from_host(rt, &m, &in, &ticket);
  cgr_status waited =
      replayed == CGR_OK ? cgr_ticket_wait(rt, &ticket) : replayed;
  cgr__fault_disarm();
  assert_int_equal(waited, CGR_E_DEVICE_LOST);
  assert_cgr_ok(other, cgr_synchronize(other));
  assert_cgr_ok(other, cgr_device_free(other, device));
  config.device = CGR__HOST_MAX_DEVICES;
  cgr_runtime *refused = NULL;
  assert_cgr_status(NULL, cgr_runtime_create(&config, &refused),
                    CGR_E_INVALID_ARGUMENT);
  cgr_runtime_destroy(other);
  cgr_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_memory_helpers_copy_both_ways),
    RUNTIME_TEST(test_memory_helpers_refuse_bad_arguments),
    cmocka_unit_test(test_pinned_source_must_be_page_locked),
    cmocka_unit_test(test_device_source_must_lie_in_one_allocation),
    cmocka_unit_test(test_runtimes_of_one_device_share_its_memory),
    cmocka_unit_test(test_eager_steps_allocate_nothing_after_the_first),
    cmocka_unit_test(
        test_eager_feedback_steps_allocate_nothing_after_the_first),
    HOST_RUNTIME_TEST(test_device_free_waits_for_every_runtime_of_the_device),
    HOST_TEST(test_a_fault_in_one_runtime_loses_every_runtime),
    HOST_TEST(test_other_ordinals_are_other_devices),
};

CGR_TEST_MAIN(tests)
