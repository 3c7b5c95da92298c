/* Ordering with the caller's work (issue 17, item 1): a batch's step reads
 * its inputs only after an event the caller's work completes, and an event
 * completes with a ticket's step, without the host waiting either way. On
 * the host backend the caller's work is a thread of the test that writes a
 * device source and then signals; a step that read it early would read the
 * old values (and ThreadSanitizer would see the race). */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "model.h"

static const uint32_t buckets[] = {2, 4};
enum { ROWS = 3 };

/* The caller's producer: once the test opens its gate, writes the new
 * positions into the device source and signals the event. */
typedef struct producer {
  cgr_runtime *rt;
  cgr_event *event;
  int32_t *device_pos;
  int32_t pos[ROWS];
  test_gate go;
  atomic_int written;
} producer;

static void *produce(void *arg) {
  producer *p = arg;
  (void)test_gate_wait(&p->go, 10000);
  /* The host backend's device memory is host memory: the caller's "kernel"
   * writes it directly, as its own stream's work would on a GPU. */
  memcpy(p->device_pos, p->pos, sizeof p->pos);
  atomic_store(&p->written, 1);
  if (cgr_event_signal_host(p->event) != CGR_OK)
    atomic_store(&p->written, -1);
  return NULL;
}

/* A batch of ROWS with every input but positions given from the host. */
static cgr_batch *begin_rows(cgr_runtime *rt, const model *m,
                             const model_inputs *in) {
  return model_begin_batch(rt, m, in, ROWS, m->pos);
}

static void check_out(cgr_runtime *rt, const model *m, const model_inputs *in,
                      const cgr_ticket *ticket) {
  int32_t *out = NULL, got[ROWS];
  assert_cgr_ok(rt, cgr_output(rt, ticket, m->out, (void **)&out));
  assert_cgr_ok(rt, cgr_memcpy(rt, got, out, sizeof got));
  for (uint32_t r = 0; r < ROWS; ++r)
    assert_int_equal(got[r], model_expected_out(in, ticket->padded_batch, r));
}

/* In every mode: the replay returns at once, the step waits for the
 * caller's signal, and reads what the caller wrote before it. */
static void test_batch_reads_inputs_after_the_callers_event(void **state) {
  (void)state;
  cgr_test_require_backend();
  cgr_test_require_host();
  const cgr_replay_mode modes[] = {CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED,
                                   CGR_REPLAY_DOUBLE_BUFFERED,
                                   CGR_REPLAY_EAGER};
  for (size_t k = 0; k < sizeof modes / sizeof modes[0]; ++k) {
    model m;
    cgr_runtime *rt = model_captured_runtime(buckets, 2, 1, &m);
    assert_cgr_ok(rt, cgr_set_replay_mode(rt, modes[k]));
    model_inputs in;
    model_make_inputs(&in, ROWS, ROWS, 40 + (unsigned)k);
    producer p = {.rt = rt};
    memcpy(p.pos, in.pos, sizeof p.pos);
    assert_cgr_ok(rt,
                  cgr_device_alloc(rt, sizeof p.pos, (void **)&p.device_pos));
    /* Stale values the step must never see. */
    int32_t stale[ROWS] = {-5000, -5000, -5000};
    assert_cgr_ok(rt, cgr_memcpy(rt, p.device_pos, stale, sizeof stale));
    assert_cgr_ok(rt, cgr_event_create(rt, &p.event));
    assert_cgr_ok(rt, cgr_event_record_host(p.event));
    assert_int_equal(cgr_event_query(p.event), CGR_E_NOT_READY);

    cgr_batch *batch = begin_rows(rt, &m, &in);
    assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_DEVICE,
                                      p.device_pos, sizeof p.pos));
    assert_cgr_ok(rt, cgr_batch_wait_event(batch, p.event));
    test_gate_init(&p.go);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, produce, &p), 0);
    cgr_ticket ticket;
    if (modes[k] == CGR_REPLAY_EAGER) {
      /* An eager step is synchronous: it returns after the signal. */
      test_gate_open(&p.go);
      assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
      assert_int_equal(atomic_load(&p.written), 1);
    } else {
      assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
      /* The host did not wait: the producer is still held at its gate. */
      assert_int_equal(atomic_load(&p.written), 0);
      assert_int_equal(cgr_ticket_query(rt, &ticket), CGR_E_NOT_READY);
      test_gate_open(&p.go);
    }
    assert_int_equal(pthread_join(thread, NULL), 0);
    test_gate_fini(&p.go);
    assert_int_equal(atomic_load(&p.written), 1);
    assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
    check_out(rt, &m, &in, &ticket);
    cgr_event_destroy(p.event);
    assert_cgr_ok(rt, cgr_device_free(rt, p.device_pos));
    cgr_runtime_destroy(rt);
  }
}

/* The other way: an event that completes with the step, for the caller's
 * own work that reads the outputs. */
static void test_ticket_event_completes_with_its_step(void **state) {
  (void)state;
  cgr_test_require_backend();
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, 2, 1, &m);
  model_inputs in;
  model_make_inputs(&in, ROWS, ROWS, 50);
  cgr_event *done = NULL;
  assert_cgr_ok(rt, cgr_event_create(rt, &done));
  assert_cgr_ok(rt, cgr_event_query(done)); /* never recorded: complete */
  cgr_batch *batch = begin_rows(rt, &m, &in);
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, in.pos,
                                    ROWS * sizeof(int32_t)));
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_cgr_ok(rt, cgr_ticket_record_event(rt, &ticket, done));
  assert_cgr_ok(rt, cgr_event_synchronize(done));
  /* The step is done once its event is: no ticket wait needed. */
  assert_cgr_ok(rt, cgr_ticket_query(rt, &ticket));
  check_out(rt, &m, &in, &ticket);
  cgr_event_destroy(done);
  cgr_runtime_destroy(rt);
}

static void test_events_refuse_misuse(void **state) {
  (void)state;
  cgr_test_require_backend();
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, 2, 1, &m);
  cgr_runtime *other = NULL;
  cgr_config config;
  cgr_test_config(&config);
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &other));
  cgr_event *mine = NULL, *theirs = NULL;
  assert_cgr_ok(rt, cgr_event_create(rt, &mine));
  assert_cgr_ok(other, cgr_event_create(other, &theirs));
  assert_int_equal(cgr_event_create(rt, NULL), CGR_E_INVALID_ARGUMENT);
  model_inputs in;
  model_make_inputs(&in, ROWS, ROWS, 60);
  cgr_batch *batch = begin_rows(rt, &m, &in);
  assert_cgr_status(rt, cgr_batch_wait_event(batch, theirs),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "another runtime");
  assert_cgr_status(rt, cgr_batch_wait_event(batch, NULL),
                    CGR_E_INVALID_ARGUMENT);
  for (int i = 0; i < CGR_BATCH_MAX_EVENTS; ++i)
    assert_cgr_ok(rt, cgr_batch_wait_event(batch, mine));
  assert_cgr_status(rt, cgr_batch_wait_event(batch, mine),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(rt, "at most 8");
  /* The refusals left the batch open and whole. */
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, in.pos,
                                    ROWS * sizeof(int32_t)));
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
  check_out(rt, &m, &in, &ticket);
  /* A ticket of another runtime's events, and an expired ticket. */
  assert_cgr_status(rt, cgr_ticket_record_event(rt, &ticket, theirs),
                    CGR_E_INVALID_ARGUMENT);
  for (int i = 0; i < 2; ++i) {
    cgr_ticket later;
    batch = begin_rows(rt, &m, &in);
    assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, in.pos,
                                      ROWS * sizeof(int32_t)));
    assert_cgr_ok(rt, cgr_replay(rt, batch, &later));
    assert_cgr_ok(rt, cgr_ticket_wait(rt, &later));
  }
  assert_cgr_status(rt, cgr_ticket_record_event(rt, &ticket, mine),
                    CGR_E_INVALID_STATE);
  /* Host records: the host backend has them, CUDA does not. */
  if (cgr_backend(rt) == CGR_BACKEND_HOST) {
    assert_cgr_status(rt, cgr_event_signal_host(mine), CGR_E_INVALID_STATE);
    assert_last_error_contains(rt, "no host record to signal");
  } else {
    assert_cgr_status(rt, cgr_event_record_host(mine), CGR_E_UNSUPPORTED);
  }
  cgr_event_destroy(mine);
  cgr_event_destroy(theirs);
  cgr_event_destroy(NULL);
  cgr_runtime_destroy(other);
  cgr_runtime_destroy(rt);
}

/* A wait takes the event's latest record as of the cgr_batch_wait_event
 * call, as cudaStreamWaitEvent does: a record made after it (for the next
 * step, say) does not hold this batch's step back. */
static void test_batch_waits_for_the_record_as_of_the_call(void **state) {
  (void)state;
  cgr_test_require_backend();
  cgr_test_require_host();
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, 2, 1, &m);
  model_inputs in;
  model_make_inputs(&in, ROWS, ROWS, 70);
  cgr_event *event = NULL;
  assert_cgr_ok(rt, cgr_event_create(rt, &event));
  cgr_batch *batch = begin_rows(rt, &m, &in);
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, in.pos,
                                    ROWS * sizeof(int32_t)));
  /* Never recorded, so complete as of this call. */
  assert_cgr_ok(rt, cgr_batch_wait_event(batch, event));
  assert_cgr_ok(rt, cgr_event_record_host(event)); /* pending from here */
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  /* The step must finish while the later record is still pending. */
  cgr_status status = CGR_E_NOT_READY;
  for (int i = 0; i < 5000 && status == CGR_E_NOT_READY; ++i) {
    status = cgr_ticket_query(rt, &ticket);
    if (status == CGR_E_NOT_READY)
      nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
  }
  assert_int_equal(cgr_event_query(event), CGR_E_NOT_READY);
  assert_cgr_ok(rt, cgr_event_signal_host(event));
  assert_cgr_ok(rt, status);
  check_out(rt, &m, &in, &ticket);
  cgr_event_destroy(event);
  cgr_runtime_destroy(rt);
}

/* Like cudaEventDestroy, destroying an event a batch waits for leaves the
 * wait as it was: the batch keeps nothing of the event (AddressSanitizer
 * sees it if it does). */
static void test_event_destroyed_under_an_open_batch(void **state) {
  (void)state;
  cgr_test_require_backend();
  model m;
  cgr_runtime *rt = model_captured_runtime(buckets, 2, 1, &m);
  model_inputs in;
  model_make_inputs(&in, ROWS, ROWS, 80);
  cgr_event *event = NULL;
  assert_cgr_ok(rt, cgr_event_create(rt, &event));
  cgr_batch *batch = begin_rows(rt, &m, &in);
  assert_cgr_ok(rt, cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, in.pos,
                                    ROWS * sizeof(int32_t)));
  assert_cgr_ok(rt, cgr_batch_wait_event(batch, event));
  cgr_event_destroy(event);
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
  check_out(rt, &m, &in, &ticket);
  cgr_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
    HOST_TEST(test_batch_reads_inputs_after_the_callers_event),
    cmocka_unit_test(test_ticket_event_completes_with_its_step),
    cmocka_unit_test(test_events_refuse_misuse),
    HOST_TEST(test_batch_waits_for_the_record_as_of_the_call),
    cmocka_unit_test(test_event_destroyed_under_an_open_batch),
};

CGR_TEST_MAIN(tests)
