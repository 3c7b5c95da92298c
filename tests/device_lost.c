/* A device that faults inside a replayed step (an illegal address on a
 * GPU, the injected DEVICE_FAULT on the host backend) is reported with the
 * step it surfaced in; every later call says CGR_E_DEVICE_LOST at once
 * instead of hanging or crashing; destroy still works (the asan preset
 * checks it leaks nothing). The device is shared, as a CUDA context is:
 * a fault in one runtime loses every runtime of the device, lanes and the
 * runtime a batcher serves included. */
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

/* The runtime config of every faulty runtime: validation on, buckets. */
static void faulty_config(cgr_config *config) {
  cgr_test_config(config);
  config->buckets = buckets;
  config->bucket_count = BUCKETS;
}

static cgr_status faulty_declare(faulty *f) {
  cgr_slot_desc d;
  cgr_slot_desc_init(&d, "input_ids", CGR_SLOT_ROWS, 4, 1);
  CGR__CHECK(cgr_slot_declare(f->rt, &d, &f->ids));
  cgr_slot_desc_init(&d, "out", CGR_SLOT_OUTPUT, 4, 1);
  return cgr_slot_declare(f->rt, &d, &f->out);
}

/* A trap flag on `owner`'s device, cleared (the trap stays harmless). */
static int32_t *flag_alloc(cgr_runtime *owner) {
  int32_t *armed = NULL;
  assert_cgr_ok(owner, cgr__be_device_alloc(TEST_BE(owner), sizeof(int32_t),
                                            (void **)&armed));
  assert_cgr_ok(owner, cgr__be_memset_async(TEST_BE(owner), TEST_MAIN(owner),
                                            armed, 0, sizeof(int32_t)));
  assert_cgr_ok(owner, cgr_synchronize(owner));
  return armed;
}

static void faulty_open(faulty *f) {
  memset(f, 0, sizeof *f);
  cgr_config config;
  faulty_config(&config);
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &f->rt));
  assert_cgr_ok(f->rt, faulty_declare(f));
  f->armed = flag_alloc(f->rt);
  assert_cgr_ok(f->rt, cgr_capture(f->rt, faulty_step, f));
}

/* Destroy still works; the flag's memory goes first, as a user would. */
static void faulty_close(faulty *f) {
  cgr__be_device_free(TEST_BE(f->rt), f->armed);
  cgr_runtime_destroy(f->rt);
}

/* Makes the next kernel fault: the injected fault on the host backend (the
 * next kernel of any runtime), the armed trap of `armed` on CUDA. */
static void arm_fault(cgr_runtime *rt, int32_t *armed) {
  if (cgr_test_backend == CGR_BACKEND_HOST) {
    cgr__fault_arm(CGR__CALL_DEVICE_FAULT, 1);
    return;
  }
  static const int32_t one = 1;
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), armed,
                                         &one, sizeof one));
  assert_cgr_ok(rt, cgr_synchronize(rt));
}

/* Opens a batch of ROWS rows on f's runtime, its ids given. */
static cgr_status batch_rows(faulty *f, cgr_batch **out) {
  static const int32_t ids[ROWS] = {1, 2, 3};
  cgr_batch *batch = NULL;
  *out = NULL;
  CGR__CHECK(cgr_batch_begin(f->rt, ROWS, &batch));
  cgr_status status =
      cgr_batch_input(batch, f->ids, CGR_SOURCE_HOST, ids, sizeof ids);
  if (status != CGR_OK) {
    cgr_batch_discard(batch);
    return status;
  }
  *out = batch;
  return CGR_OK;
}

static cgr_status replay_rows(faulty *f, cgr_ticket *ticket) {
  cgr_batch *batch = NULL;
  CGR__CHECK(batch_rows(f, &batch));
  return cgr_replay(f->rt, batch, ticket);
}

/* A step on f that faults: CGR_E_DEVICE_LOST, from the replay or its wait,
 * whichever looks first. */
static cgr_status replay_faulting_step(faulty *f) {
  arm_fault(f->rt, f->armed);
  cgr_ticket bad;
  cgr_status status = replay_rows(f, &bad);
  if (status == CGR_OK)
    status = cgr_ticket_wait(f->rt, &bad);
  cgr__fault_disarm();
  return status;
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

  cgr_status status = replay_faulting_step(&f);
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

  faulty_close(&f);
}

/* A device lost while a step is captured (other work of the device faults
 * before the capture ends: on CUDA, a graph replayed earlier) is
 * CGR_E_DEVICE_LOST, named as the loss, not CGR_E_CAPTURE: neither the step
 * nor the capture did anything wrong, and the runtime is gone for good.
 * Host backend: it makes the fault happen inside the capture. */
typedef struct losing {
  faulty f;
  faulty other;
  int captures;
} losing;

static cgr_status losing_step(cgr_step *step, void *user) {
  losing *l = user;
  CGR__CHECK(faulty_step(step, &l->f));
  if (!cgr_step_is_capturing(step) || l->captures++ > 0)
    return CGR_OK;
  /* Eager work of another runtime of the device faults, and the step ends
   * once the device knows it. */
  cgr__fault_arm(CGR__CALL_DEVICE_FAULT, 1);
  cgr__add_i32_args add = {l->other.armed, l->other.armed, l->other.armed, 1};
  CGR__CHECK(cgr__be_kernel_launch(TEST_BE(l->other.rt), TEST_MAIN(l->other.rt),
                                   &cgr__kernel_add_i32, &add));
  uint64_t began = cgr_clock_us();
  while (!cgr__be_lost(TEST_BE(l->other.rt)))
    if (cgr_clock_us() - began > LAST_WAIT_US)
      fail_msg("the injected fault never came");
  return CGR_OK;
}

static void test_a_device_lost_during_a_capture_says_so(void **state) {
  (void)cgr_test_runtime(state);
  cgr_test_require_host();
  static losing l;
  memset(&l, 0, sizeof l);
  faulty_open(&l.other);
  cgr_config config;
  faulty_config(&config);
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &l.f.rt));
  assert_cgr_ok(l.f.rt, faulty_declare(&l.f));
  l.f.armed = flag_alloc(l.f.rt);

  assert_cgr_status(l.f.rt, cgr_capture(l.f.rt, losing_step, &l),
                    CGR_E_DEVICE_LOST);
  cgr__fault_disarm();
  assert_int_equal(l.captures, 1);
  assert_error_mentions(l.f.rt, "raised a device fault");
  assert_cgr_status(l.f.rt, cgr_synchronize(l.f.rt), CGR_E_DEVICE_LOST);
  faulty_close(&l.f);
  faulty_close(&l.other);
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

/* A batcher serving f, its first request answered. */
static cgr_batcher *batcher_open(batch_user *u) {
  cgr_runtime *rt = u->f->rt;
  cgr_batcher_config config;
  assert_cgr_ok(rt, cgr_batcher_config_init(&config));
  config.build = build;
  config.finish = finish;
  config.user = u;
  config.max_batch = 4;
  cgr_batcher *batcher = NULL;
  assert_cgr_ok(rt, cgr_batcher_create(rt, &config, &batcher));
  static int32_t first = 1;
  cgr_handle *h = NULL;
  assert_cgr_ok(rt, cgr_batcher_submit(batcher, &first, 0, &h));
  assert_cgr_ok(rt, cgr_handle_wait(h, LAST_WAIT_US));
  assert_cgr_ok(rt, cgr_handle_result(h, NULL));
  cgr_handle_release(h);
  return batcher;
}

/* Every request submitted from now on ends with CGR_E_DEVICE_LOST, and the
 * batcher's last failure names the loss. */
static void expect_requests_end_lost(cgr_runtime *rt, cgr_batcher *batcher) {
  static int32_t values[5] = {2, 3, 4, 5, 6};
  for (int i = 0; i < 5; ++i) {
    cgr_handle *h = NULL;
    assert_cgr_ok(rt, cgr_batcher_submit(batcher, &values[i], 0, &h));
    if (cgr_handle_wait(h, LAST_WAIT_US) != CGR_OK)
      fail_msg("request %d did not end after the device was lost", i);
    assert_int_equal(cgr_handle_result(h, NULL), CGR_E_DEVICE_LOST);
    cgr_handle_release(h);
  }
  char failure[512];
  assert_cgr_ok(rt, cgr_batcher_last_failure(batcher, failure, sizeof failure));
  if (strstr(failure, "the device was lost") == NULL &&
      strstr(failure, "device fault") == NULL &&
      strstr(failure, "IllegalAddress") == NULL)
    fail_msg("the batcher's last failure does not name the loss: %s", failure);
}

static void test_a_lost_device_ends_every_batcher_request(void **state) {
  (void)cgr_test_runtime(state);
  faulty f;
  faulty_open(&f);
  batch_user u = {.f = &f};
  cgr_batcher *batcher = batcher_open(&u);
  /* The batcher's own next step faults. */
  arm_fault(f.rt, f.armed);
  expect_requests_end_lost(f.rt, batcher);
  cgr__fault_disarm();
  assert_cgr_ok(f.rt, cgr_batcher_stop(batcher, CGR_BATCHER_DRAIN));
  cgr_batcher_destroy(batcher);
  faulty_close(&f);
}

static void
test_a_fault_on_another_runtime_ends_every_batcher_request(void **state) {
  (void)cgr_test_runtime(state);
  faulty served, other;
  faulty_open(&served);
  faulty_open(&other);
  batch_user u = {.f = &served};
  cgr_batcher *batcher = batcher_open(&u);
  /* A step of another runtime of the device faults while the batcher
   * idles: the device is lost for the batcher's runtime too. */
  assert_cgr_status(other.rt, replay_faulting_step(&other), CGR_E_DEVICE_LOST);
  expect_requests_end_lost(served.rt, batcher);
  assert_cgr_ok(served.rt, cgr_batcher_stop(batcher, CGR_BATCHER_DRAIN));
  cgr_batcher_destroy(batcher);
  faulty_close(&other);
  faulty_close(&served);
}

/* Lanes whose step is faulty_step. The trap flags are allocated on another
 * runtime of the device (the fixture's), as memory must outlive the lanes'
 * runtimes that read it: cgr_lanes_destroy destroys them before teardown. */
enum { LANES = 2 };

typedef struct faulty_lanes {
  faulty lane[LANES];
  int32_t *armed[LANES];
  int teardowns;
  int wrong_user;
} faulty_lanes;

static cgr_status lane_setup(void *user, cgr_runtime *rt, uint32_t lane,
                             void **lane_user) {
  faulty_lanes *l = user;
  faulty *f = &l->lane[lane];
  f->rt = rt;
  f->armed = l->armed[lane];
  *lane_user = f;
  return faulty_declare(f);
}

static void lane_teardown(void *user, uint32_t lane, void *lane_user) {
  faulty_lanes *l = user;
  l->teardowns++;
  l->wrong_user += lane_user != &l->lane[lane];
}

static cgr_lanes *faulty_lanes_open(faulty_lanes *l, cgr_runtime *owner) {
  memset(l, 0, sizeof *l);
  for (int lane = 0; lane < LANES; ++lane)
    l->armed[lane] = flag_alloc(owner);
  cgr_config runtime;
  faulty_config(&runtime);
  cgr_lanes_config config;
  assert_cgr_ok(NULL, cgr_lanes_config_init(&config));
  config.lanes = LANES;
  config.runtime = &runtime;
  config.setup = lane_setup;
  config.teardown = lane_teardown;
  config.step = faulty_step;
  config.user = l;
  cgr_lanes *lanes = NULL;
  assert_cgr_ok(NULL, cgr_lanes_create(&config, &lanes));
  return lanes;
}

/* Every call of a lost runtime fails at once, naming the loss; a ticket
 * it issued before the loss too. */
static void expect_runtime_lost(cgr_runtime *rt, const cgr_ticket *before) {
  /* First a call that reaches the device: on CUDA the sticky error
   * surfaces in this runtime there. */
  assert_cgr_status(rt, cgr_synchronize(rt), CGR_E_DEVICE_LOST);
  assert_error_mentions(rt, "the device was lost");
  cgr_batch *batch = NULL;
  assert_cgr_status(rt, cgr_batch_begin(rt, ROWS, &batch), CGR_E_DEVICE_LOST);
  assert_null(batch);
  if (before != NULL)
    assert_cgr_status(rt, cgr_ticket_wait(rt, before), CGR_E_DEVICE_LOST);
}

static void test_a_fault_on_one_lane_loses_every_lane(void **state) {
  cgr_runtime *owner = cgr_test_runtime(state);
  faulty_lanes l;
  cgr_lanes *lanes = faulty_lanes_open(&l, owner);

  /* Both lanes step together. */
  cgr_batch *batches[LANES];
  cgr_ticket good[LANES];
  for (int lane = 0; lane < LANES; ++lane)
    assert_cgr_ok(l.lane[lane].rt, batch_rows(&l.lane[lane], &batches[lane]));
  assert_cgr_ok(NULL, cgr_lanes_replay(lanes, batches, good, 1));

  /* A step on lane 0 alone faults. */
  arm_fault(l.lane[0].rt, l.armed[0]);
  cgr_batch *lane0_only[LANES] = {NULL};
  assert_cgr_ok(l.lane[0].rt, batch_rows(&l.lane[0], &lane0_only[0]));
  cgr_ticket bad[LANES];
  cgr_status status = cgr_lanes_replay(lanes, lane0_only, bad, 1);
  cgr__fault_disarm();
  assert_cgr_status(NULL, status, CGR_E_DEVICE_LOST);
  assert_error_mentions(NULL, "lane 0");

  /* Every lane is lost, the one that never ran the fault as well, and so
   * is every other runtime of the device; nothing waits. */
  uint64_t began = cgr_clock_us();
  for (uint32_t lane = 0; lane < LANES; ++lane)
    expect_runtime_lost(cgr_lanes_runtime(lanes, lane), &good[lane]);
  assert_cgr_status(NULL, cgr_lanes_wait(lanes, good), CGR_E_DEVICE_LOST);
  expect_runtime_lost(owner, NULL);
  if (cgr_clock_us() - began > LAST_WAIT_US)
    fail_msg("calls after the loss took %llu us: something waited",
             (unsigned long long)(cgr_clock_us() - began));

  /* Destroying the lanes still works, and tears every lane down once. */
  cgr_lanes_destroy(lanes);
  assert_int_equal(l.teardowns, LANES);
  assert_int_equal(l.wrong_user, 0);
  for (int lane = 0; lane < LANES; ++lane)
    cgr__be_device_free(TEST_BE(owner), l.armed[lane]);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_a_faulting_step_loses_the_device_and_says_so),
    HOST_RUNTIME_TEST(test_a_device_lost_during_a_capture_says_so),
    RUNTIME_TEST(test_a_lost_device_ends_every_batcher_request),
    RUNTIME_TEST(test_a_fault_on_another_runtime_ends_every_batcher_request),
    RUNTIME_TEST(test_a_fault_on_one_lane_loses_every_lane),
};

CGR_TEST_MAIN(tests)
