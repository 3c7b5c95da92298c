/* A device that faults inside a replayed step (an illegal address on a
 * GPU, the injected DEVICE_FAULT on the host backend) is reported with the
 * step it surfaced in; every later call says CGR_E_DEVICE_LOST at once
 * instead of hanging or crashing; destroy still works (the asan preset
 * checks it leaks nothing). */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "kernels/basic.h"
#include "kernels/trap.h"
#include "runtime/fault.h"

static const uint32_t buckets[] = {1, 2, 4};
enum { BUCKETS = 3, ROWS = 3, LAST_WAIT_US = 5000000 };

typedef struct faulty {
  cgr_runtime *rt;
  cgr_slot ids, out;
  int32_t *armed; /* device: the trap kernel faults when nonzero */
} faulty;

/* out = ids + ids, then the trap kernel (harmless until armed). */
static cgr_status faulty_step(cgr_step *step, void *user) {
  faulty *f = user;
  uint32_t bs = cgr_step_padded_batch(step);
  int32_t *ids = cgr_step_slot(step, f->ids);
  int32_t *out = cgr_step_slot(step, f->out);
  cgr__add_i32_args add = {out, ids, ids, bs};
  CGR__CHECK(cgr_step_launch(step, &cgr__kernel_add_i32, &add));
  cgr__trap_args trap = {f->armed, (int32_t *)(uintptr_t)0x10};
  return cgr_step_launch(step, &cgr__kernel_trap, &trap);
}

static void faulty_open(faulty *f) {
  memset(f, 0, sizeof *f);
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = buckets;
  config.bucket_count = BUCKETS;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &f->rt));
  cgr_slot_desc d;
  cgr_slot_desc_init(&d, "input_ids", CGR_SLOT_ROWS, 4, 1);
  assert_cgr_ok(f->rt, cgr_slot_declare(f->rt, &d, &f->ids));
  cgr_slot_desc_init(&d, "out", CGR_SLOT_OUTPUT, 4, 1);
  assert_cgr_ok(f->rt, cgr_slot_declare(f->rt, &d, &f->out));
  assert_cgr_ok(f->rt, cgr__be_device_alloc(TEST_BE(f->rt), sizeof(int32_t),
                                            (void **)&f->armed));
  assert_cgr_ok(f->rt, cgr__be_memset_async(TEST_BE(f->rt), TEST_MAIN(f->rt),
                                            f->armed, 0, sizeof(int32_t)));
  assert_cgr_ok(f->rt, cgr_synchronize(f->rt));
  assert_cgr_ok(f->rt, cgr_capture(f->rt, faulty_step, f));
}

/* Makes the next kernel fault: the injected fault on the host backend,
 * the armed trap on CUDA. */
static void arm_fault(faulty *f) {
  if (cgr_test_backend == CGR_BACKEND_HOST) {
    cgr__fault_arm(CGR__CALL_DEVICE_FAULT, 1);
    return;
  }
  static const int32_t one = 1;
  assert_cgr_ok(f->rt, cgr__be_memcpy_async(TEST_BE(f->rt), TEST_MAIN(f->rt),
                                            f->armed, &one, sizeof one));
  assert_cgr_ok(f->rt, cgr_synchronize(f->rt));
}

static cgr_status replay_rows(faulty *f, cgr_ticket *ticket) {
  int32_t ids[ROWS] = {1, 2, 3};
  cgr_batch *batch = NULL;
  cgr_status status = cgr_batch_begin(f->rt, ROWS, &batch);
  if (status != CGR_OK)
    return status;
  status = cgr_batch_input(batch, f->ids, CGR_SOURCE_HOST, ids, sizeof ids);
  if (status != CGR_OK) {
    cgr_batch_discard(batch);
    return status;
  }
  return cgr_replay(f->rt, batch, ticket);
}

static void assert_error_mentions(cgr_runtime *rt, const char *needle) {
  if (strstr(cgr_last_error(rt), needle) == NULL)
    fail_msg("the message lacks \"%s\": %s", needle, cgr_last_error(rt));
}

static void test_a_faulting_step_loses_the_device_and_says_so(void **state) {
  (void)cgr_test_runtime(state);
  faulty f;
  faulty_open(&f);
  cgr_ticket good;
  assert_cgr_ok(f.rt, replay_rows(&f, &good));
  assert_cgr_ok(f.rt, cgr_ticket_wait(f.rt, &good));

  arm_fault(&f);
  cgr_ticket bad;
  cgr_status status = replay_rows(&f, &bad);
  if (status == CGR_OK)
    status = cgr_ticket_wait(f.rt, &bad);
  cgr__fault_disarm();
  assert_cgr_status(f.rt, status, CGR_E_DEVICE_LOST);
  /* With context: the step (the fault surfaces in the replay or in the
   * wait, whichever looks first), and what the device did. */
  assert_error_mentions(f.rt, "step 1 (batch 3");
  assert_error_mentions(f.rt, cgr_test_backend == CGR_BACKEND_HOST
                                  ? "raised a device fault"
                                  : "cudaErrorIllegalAddress");

  /* Every later call fails at once, naming the loss, and nothing hangs. */
  uint64_t began = cgr_clock_us();
  assert_cgr_status(f.rt, cgr_synchronize(f.rt), CGR_E_DEVICE_LOST);
  assert_error_mentions(f.rt, "the device was lost");
  cgr_batch *batch = NULL;
  assert_cgr_status(f.rt, cgr_batch_begin(f.rt, ROWS, &batch),
                    CGR_E_DEVICE_LOST);
  assert_null(batch);
  assert_cgr_status(f.rt, cgr_ticket_wait(f.rt, &good), CGR_E_DEVICE_LOST);
  if (cgr_clock_us() - began > LAST_WAIT_US)
    fail_msg("calls after the loss took %llu us: something waited",
             (unsigned long long)(cgr_clock_us() - began));

  /* Destroy still works; the armed flag's memory goes with the runtime's
   * backend (freed first, as a user would). */
  cgr__be_device_free(TEST_BE(f.rt), f.armed);
  cgr_runtime_destroy(f.rt);
}

/* The batcher's requests end with the loss, before and after it: none
 * hangs, stop and destroy work. */
typedef struct batch_user {
  faulty *f;
  int32_t ids[8];
} batch_user;

static cgr_status build(void *user, cgr_batch *batch, void *const *requests,
                        uint32_t count) {
  batch_user *u = user;
  for (uint32_t i = 0; i < count; ++i)
    u->ids[i] = *(const int32_t *)requests[i];
  return cgr_batch_input(batch, u->f->ids, CGR_SOURCE_HOST, u->ids,
                         count * sizeof(int32_t));
}

static cgr_status finish(void *user, cgr_runtime *rt, const cgr_ticket *ticket,
                         void *const *requests, uint32_t count,
                         void **results) {
  (void)user, (void)rt, (void)ticket;
  for (uint32_t i = 0; i < count; ++i)
    results[i] = requests[i];
  return CGR_OK;
}

static void test_a_lost_device_ends_every_batcher_request(void **state) {
  (void)cgr_test_runtime(state);
  faulty f;
  faulty_open(&f);
  batch_user u = {.f = &f};
  cgr_batcher_config config;
  assert_cgr_ok(f.rt, cgr_batcher_config_init(&config));
  config.build = build;
  config.finish = finish;
  config.user = &u;
  config.max_batch = 4;
  cgr_batcher *batcher = NULL;
  assert_cgr_ok(f.rt, cgr_batcher_create(f.rt, &config, &batcher));
  int32_t values[6] = {1, 2, 3, 4, 5, 6};
  cgr_handle *h = NULL;
  assert_cgr_ok(f.rt, cgr_batcher_submit(batcher, &values[0], 0, &h));
  assert_cgr_ok(f.rt, cgr_handle_wait(h, LAST_WAIT_US));
  assert_cgr_ok(f.rt, cgr_handle_result(h, NULL));
  cgr_handle_release(h);

  arm_fault(&f);
  for (int i = 1; i < 6; ++i) {
    assert_cgr_ok(f.rt, cgr_batcher_submit(batcher, &values[i], 0, &h));
    if (cgr_handle_wait(h, LAST_WAIT_US) != CGR_OK)
      fail_msg("request %d did not end after the device was lost", i);
    assert_int_equal(cgr_handle_result(h, NULL), CGR_E_DEVICE_LOST);
    cgr_handle_release(h);
  }
  cgr__fault_disarm();
  char failure[512];
  assert_cgr_ok(f.rt,
                cgr_batcher_last_failure(batcher, failure, sizeof failure));
  if (strstr(failure, "the device was lost") == NULL &&
      strstr(failure, "device fault") == NULL &&
      strstr(failure, "IllegalAddress") == NULL)
    fail_msg("the batcher's last failure does not name the loss: %s", failure);
  assert_cgr_ok(f.rt, cgr_batcher_stop(batcher, CGR_BATCHER_DRAIN));
  cgr_batcher_destroy(batcher);
  cgr__be_device_free(TEST_BE(f.rt), f.armed);
  cgr_runtime_destroy(f.rt);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_a_faulting_step_loses_the_device_and_says_so),
    RUNTIME_TEST(test_a_lost_device_ends_every_batcher_request),
};

CGR_TEST_MAIN(tests)
