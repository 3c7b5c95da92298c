/* Collectives in a step: outside a group each is a copy, checks its
 * arguments, and leaves a signature of its collectives per captured bucket
 * and set; ranks of real host runtimes joined by hand capture and replay
 * their collectives in every mode. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"
#include "harness.h"
#include "runtime/collective.h"

/* ---- the step API outside a group ---------------------------------------- */

static const uint32_t buckets[] = {2, 4};
enum { ELEMS = 3 }; /* per row */

typedef struct copy_step {
  cgr_slot x, sum, gathered, broadcast;
  int extra; /* another all-reduce, of a different count, at the end */
} copy_step;

static cgr_status copy_step_fn(cgr_step *step, void *user) {
  copy_step *s = user;
  size_t count = (size_t)cgr_step_padded_batch(step) * ELEMS;
  void *x = cgr_step_slot(step, s->x);
  void *sum = cgr_step_slot(step, s->sum);
  void *gathered = cgr_step_slot(step, s->gathered);
  void *broadcast = cgr_step_slot(step, s->broadcast);
  CGR__CHECK(cgr_step_all_reduce(step, x, sum, count, CGR_DTYPE_INT32,
                                 CGR_REDUCE_SUM));
  /* In place: nothing to do with one rank. */
  CGR__CHECK(cgr_step_all_reduce(step, sum, sum, count, CGR_DTYPE_INT32,
                                 CGR_REDUCE_MAX));
  CGR__CHECK(cgr_step_all_gather(step, x, gathered, count, CGR_DTYPE_FLOAT32));
  CGR__CHECK(
      cgr_step_broadcast(step, x, broadcast, count, CGR_DTYPE_UINT32, 0));
  CGR__CHECK(cgr_step_broadcast(step, broadcast, broadcast, count,
                                CGR_DTYPE_UINT32, 0));
  if (s->extra) {
    void *scratch = NULL;
    CGR__CHECK(cgr_step_scratch(step, 64, 0, &scratch));
    CGR__CHECK(cgr_step_all_reduce(step, x, scratch, s->extra, CGR_DTYPE_INT8,
                                   CGR_REDUCE_SUM));
  }
  return CGR_OK;
}

static cgr_runtime *copy_runtime(copy_step *s, int extra) {
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = buckets;
  config.bucket_count = 2;
  cgr_runtime *rt = NULL;
  cgr_status status = cgr_runtime_create(&config, &rt);
  if (status != CGR_OK)
    fail_msg("cgr_runtime_create: %s", cgr_last_error(NULL));
  memset(s, 0, sizeof *s);
  s->extra = extra;
  cgr_slot_desc desc;
  cgr_slot_desc_init(&desc, "x", CGR_SLOT_ROWS, 4, ELEMS);
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &s->x));
  const char *names[3] = {"sum", "gathered", "broadcast"};
  cgr_slot *outs[3] = {&s->sum, &s->gathered, &s->broadcast};
  for (int i = 0; i < 3; ++i) {
    cgr_slot_desc_init(&desc, names[i], CGR_SLOT_OUTPUT, 4, ELEMS);
    assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, outs[i]));
  }
  assert_cgr_ok(rt, cgr_capture(rt, copy_step_fn, s));
  return rt;
}

static void test_step_collectives_outside_a_group_copy(void **state) {
  (void)cgr_test_runtime(state);
  copy_step s;
  cgr_runtime *rt = copy_runtime(&s, 0);
  static const cgr_replay_mode modes[] = {CGR_REPLAY_DOUBLE_BUFFERED,
                                          CGR_REPLAY_NAIVE, CGR_REPLAY_IN_GRAPH,
                                          CGR_REPLAY_EAGER};
  int32_t step_number = 0;
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; ++m) {
    assert_cgr_ok(rt, cgr_set_replay_mode(rt, modes[m]));
    for (uint32_t batch = 1; batch <= 4; ++batch, ++step_number) {
      int32_t x[4 * ELEMS];
      for (uint32_t i = 0; i < batch * ELEMS; ++i)
        x[i] = step_number * 100 + (int32_t)i;
      cgr_batch *b = NULL;
      assert_cgr_ok(rt, cgr_batch_begin(rt, batch, &b));
      assert_cgr_ok(rt, cgr_batch_input(b, s.x, CGR_SOURCE_HOST, x,
                                        batch * ELEMS * sizeof x[0]));
      cgr_ticket ticket;
      assert_cgr_ok(rt, cgr_replay(rt, b, &ticket));
      assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
      cgr_slot outs[3] = {s.sum, s.gathered, s.broadcast};
      for (int o = 0; o < 3; ++o) {
        void *device = NULL;
        int32_t got[4 * ELEMS];
        assert_cgr_ok(rt, cgr_output(rt, &ticket, outs[o], &device));
        assert_cgr_ok(rt, cgr_memcpy(rt, got, device,
                                     batch * ELEMS * sizeof got[0]));
        for (uint32_t i = 0; i < batch * ELEMS; ++i)
          if (got[i] != x[i])
            fail_msg("mode %d, batch %u, output %d, element %u: %d, not %d",
                     (int)modes[m], batch, o, i, got[i], x[i]);
      }
    }
  }
  assert_int_equal(cgr_step_rank(NULL), 0);
  assert_int_equal(cgr_step_ranks(NULL), 1);
  cgr_runtime_destroy(rt);
}

/* A step that tries every bad argument once, keeping what each said. */
enum { BAD_CALLS = 10 };
typedef struct bad_step {
  cgr_slot x, y;
  int ran;
  cgr_status statuses[BAD_CALLS];
  char messages[BAD_CALLS][CGR__ERROR_MESSAGE_SIZE];
} bad_step;

static cgr_status bad_step_fn(cgr_step *step, void *user) {
  bad_step *s = user;
  cgr_runtime *rt = cgr_step_runtime(step);
  if (s->ran++)
    return CGR_OK;
  unsigned char *x = cgr_step_slot(step, s->x);
  unsigned char *y = cgr_step_slot(step, s->y);
  int host_memory[8];
  cgr_status st[BAD_CALLS] = {
      cgr_step_all_reduce(step, NULL, y, 4, CGR_DTYPE_INT32, CGR_REDUCE_SUM),
      cgr_step_all_reduce(step, x, NULL, 4, CGR_DTYPE_INT32, CGR_REDUCE_SUM),
      cgr_step_all_reduce(step, x, y, 0, CGR_DTYPE_INT32, CGR_REDUCE_SUM),
      cgr_step_all_reduce(step, x, y, 4, (cgr_dtype)10, CGR_REDUCE_SUM),
      cgr_step_all_reduce(step, x, y, 4, CGR_DTYPE_INT32, (cgr_reduce_op)4),
      cgr_step_broadcast(step, x, y, 4, CGR_DTYPE_INT32, 1),
      cgr_step_broadcast(step, x, y, 4, CGR_DTYPE_INT32, -1),
      cgr_step_all_gather(step, x + 4, x, 4, CGR_DTYPE_INT32),
      cgr_step_all_reduce(step, host_memory, y, 4, CGR_DTYPE_INT32,
                          CGR_REDUCE_SUM),
      cgr_step_all_gather(step, x, y, SIZE_MAX / 2, CGR_DTYPE_INT32),
  };
  for (int i = 0; i < BAD_CALLS; ++i)
    s->statuses[i] = st[i];
  (void)rt;
  return CGR_OK;
}

/* The messages are read by the calls' own runtime: each bad call left its
 * message in rt's error, which the next call overwrote, so this test runs
 * them again one at a time through a fresh step. */
typedef struct one_bad {
  cgr_slot x, y;
  int which;
  cgr_status status;
  char message[CGR__ERROR_MESSAGE_SIZE];
} one_bad;

static cgr_status one_bad_fn(cgr_step *step, void *user) {
  one_bad *s = user;
  unsigned char *x = cgr_step_slot(step, s->x);
  unsigned char *y = cgr_step_slot(step, s->y);
  int host_memory[8];
  switch (s->which) {
  case 0:
    s->status =
        cgr_step_all_reduce(step, NULL, y, 4, CGR_DTYPE_INT32, CGR_REDUCE_SUM);
    break;
  case 1:
    s->status =
        cgr_step_all_reduce(step, x, NULL, 4, CGR_DTYPE_INT32, CGR_REDUCE_SUM);
    break;
  case 2:
    s->status =
        cgr_step_all_reduce(step, x, y, 0, CGR_DTYPE_INT32, CGR_REDUCE_SUM);
    break;
  case 3:
    s->status =
        cgr_step_all_reduce(step, x, y, 4, (cgr_dtype)10, CGR_REDUCE_SUM);
    break;
  case 4:
    s->status =
        cgr_step_all_reduce(step, x, y, 4, CGR_DTYPE_INT32, (cgr_reduce_op)4);
    break;
  case 5:
    s->status = cgr_step_broadcast(step, x, y, 4, CGR_DTYPE_INT32, 1);
    break;
  case 6:
    s->status = cgr_step_broadcast(step, x, y, 4, CGR_DTYPE_INT32, -1);
    break;
  case 7:
    s->status = cgr_step_all_gather(step, x + 4, x, 4, CGR_DTYPE_INT32);
    break;
  case 8:
    s->status = cgr_step_all_reduce(step, host_memory, y, 4, CGR_DTYPE_INT32,
                                    CGR_REDUCE_SUM);
    break;
  default:
    s->status = cgr_step_all_gather(step, x, y, SIZE_MAX / 2, CGR_DTYPE_INT32);
    break;
  }
  snprintf(s->message, sizeof s->message, "%s",
           cgr_last_error(cgr_step_runtime(step)));
  /* Ignore the failure: the run fails all the same. */
  return CGR_OK;
}

static cgr_runtime *two_slot_runtime(cgr_slot *x, cgr_slot *y) {
  cgr_config config;
  cgr_test_config(&config);
  config.buckets = buckets;
  config.bucket_count = 2;
  cgr_runtime *rt = NULL;
  if (cgr_runtime_create(&config, &rt) != CGR_OK)
    fail_msg("cgr_runtime_create: %s", cgr_last_error(NULL));
  cgr_slot_desc desc;
  cgr_slot_desc_init(&desc, "x", CGR_SLOT_ROWS, 4, 8);
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, x));
  cgr_slot_desc_init(&desc, "y", CGR_SLOT_OUTPUT, 4, 8);
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, y));
  return rt;
}

static void test_step_collective_arguments_are_checked(void **state) {
  (void)cgr_test_runtime(state);
  static const char *const needles[BAD_CALLS] = {
      "argument 'send' is NULL", "argument 'recv' is NULL",
      "argument 'count' is 0",   "argument 'dtype' is 10",
      "argument 'op' is 4",      "argument 'root' is 1",
      "argument 'root' is -1",   "argument 'send' overlaps 'recv'",
      "argument 'send'",         "argument 'count' is",
  };
  for (int which = 0; which < BAD_CALLS; ++which) {
    one_bad s;
    memset(&s, 0, sizeof s);
    s.which = which;
    cgr_runtime *rt = two_slot_runtime(&s.x, &s.y);
    assert_cgr_status(rt, cgr_capture(rt, one_bad_fn, &s), CGR_E_CAPTURE);
    assert_int_equal(s.status, CGR_E_INVALID_ARGUMENT);
    if (strstr(s.message, needles[which]) == NULL)
      fail_msg("bad call %d said \"%s\", not \"%s\"", which, s.message,
               needles[which]);
    /* The capture's failure carries the call's message. */
    assert_last_error_contains(rt, needles[which]);
    cgr_runtime_destroy(rt);
  }
  /* All of them in one run: each fails, none crashes. */
  bad_step all;
  memset(&all, 0, sizeof all);
  cgr_runtime *rt = two_slot_runtime(&all.x, &all.y);
  assert_cgr_status(rt, cgr_capture(rt, bad_step_fn, &all), CGR_E_CAPTURE);
  for (int i = 0; i < BAD_CALLS; ++i)
    assert_int_equal(all.statuses[i], CGR_E_INVALID_ARGUMENT);
  cgr_runtime_destroy(rt);
  assert_int_equal(cgr_step_all_reduce(NULL, NULL, NULL, 0, CGR_DTYPE_INT8,
                                       CGR_REDUCE_SUM),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_step_all_gather(NULL, NULL, NULL, 0, CGR_DTYPE_INT8),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_step_broadcast(NULL, NULL, NULL, 0, CGR_DTYPE_INT8, 0),
                   CGR_E_INVALID_ARGUMENT);
}

static void test_capture_keeps_a_signature_of_the_collectives(void **state) {
  (void)cgr_test_runtime(state);
  copy_step a, b, c;
  cgr_runtime *same1 = copy_runtime(&a, 0);
  cgr_runtime *same2 = copy_runtime(&b, 0);
  cgr_runtime *other = copy_runtime(&c, 5);
  for (size_t k = 0; k < 2; ++k) {
    for (int set = 0; set < 2; ++set) {
      uint64_t sig1, sig2, sig3;
      uint32_t n1, n2, n3;
      assert_cgr_ok(same1, cgr__capture_collectives(same1, k, set, &sig1, &n1));
      assert_cgr_ok(same2, cgr__capture_collectives(same2, k, set, &sig2, &n2));
      assert_cgr_ok(other, cgr__capture_collectives(other, k, set, &sig3, &n3));
      assert_int_equal(n1, 5);
      assert_int_equal(n2, 5);
      assert_int_equal(n3, 6);
      assert_true(sig1 != 0);
      assert_true(sig1 == sig2);
      assert_true(sig1 != sig3);
    }
  }
  /* Buckets differ in their counts, so in their signatures. With one key
   * per bucket, the key of bucket k is k. */
  uint64_t small, large;
  uint32_t n;
  assert_cgr_ok(same1, cgr__capture_collectives(same1, 0, 0, &small, &n));
  assert_cgr_ok(same1, cgr__capture_collectives(same1, 1, 0, &large, &n));
  assert_true(small != large);
  assert_cgr_status(same1, cgr__capture_collectives(same1, 2, 0, &small, &n),
                    CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(same1, cgr__capture_collectives(same1, 0, 2, &small, &n),
                    CGR_E_INVALID_ARGUMENT);
  cgr_runtime_destroy(same1);
  cgr_runtime_destroy(same2);
  cgr_runtime_destroy(other);
}

/* ---- ranks of real host runtimes, joined by hand ------------------------- */

enum { TP_RANKS = 3, TP_STEPS = 40 };

/* Rank r's input element i of step k. */
static int32_t tp_input(int k, int rank, uint32_t i) {
  return k * 1000 + rank * 100 + (int32_t)i;
}

/* Runtimes joined by hand (rt->comm, rt->rank) run the host communicator
 * as a kernel of their streams: warm-ups meet, captured graphs replay it,
 * eager steps run it. */
typedef struct tp_step {
  cgr_slot x, sum, gathered, broadcast;
} tp_step;

static cgr_status tp_step_fn(cgr_step *step, void *user) {
  tp_step *s = user;
  size_t count = (size_t)cgr_step_padded_batch(step) * ELEMS;
  unsigned char *x = cgr_step_slot(step, s->x);
  unsigned char *sum = cgr_step_slot(step, s->sum);
  unsigned char *gathered = cgr_step_slot(step, s->gathered);
  unsigned char *broadcast = cgr_step_slot(step, s->broadcast);
  int rank = cgr_step_rank(step);
  CGR__CHECK(cgr_step_all_reduce(step, x, sum, count, CGR_DTYPE_INT32,
                                 CGR_REDUCE_SUM));
  CGR__CHECK(cgr_step_all_reduce(step, sum, sum, count, CGR_DTYPE_INT32,
                                 CGR_REDUCE_MAX));
  /* In place: this rank's part of `gathered` first holds its x. */
  unsigned char *mine = gathered + (size_t)rank * count * 4;
  CGR__CHECK(cgr_step_memcpy(step, mine, x, count * 4));
  CGR__CHECK(cgr_step_all_gather(step, mine, gathered, count, CGR_DTYPE_INT32));
  CGR__CHECK(
      cgr_step_broadcast(step, x, broadcast, count, CGR_DTYPE_UINT32, 0));
  return CGR_OK;
}

typedef struct tp_thread {
  pthread_t thread;
  cgr_runtime *rt;
  cgr_replay_mode mode;
  tp_step slots;
  int wrong;
  char first[200];
  cgr_status status;
  char message[CGR__ERROR_MESSAGE_SIZE];
} tp_thread;

static cgr_status tp_thread_run(tp_thread *t) {
  cgr_runtime *rt = t->rt;
  int rank = rt->rank;
  CGR__CHECK(cgr_capture(rt, tp_step_fn, &t->slots));
  CGR__CHECK(cgr_set_replay_mode(rt, t->mode));
  for (int k = 0; k < TP_STEPS; ++k) {
    /* The same on every rank; largest first, so that an eager step never
     * grows its buffers: a free waits for the whole host device, every
     * rank's stream included, and so for the collectives of ranks that
     * wait for this one (cgr__host_device_free). */
    uint32_t batch = 4 - (uint32_t)k % 4;
    int32_t x[4 * ELEMS];
    for (uint32_t i = 0; i < batch * ELEMS; ++i)
      x[i] = tp_input(k, rank, i);
    cgr_batch *b = NULL;
    CGR__CHECK(cgr_batch_begin(rt, batch, &b));
    CGR__CHECK(cgr_batch_input(b, t->slots.x, CGR_SOURCE_HOST, x,
                               batch * ELEMS * sizeof x[0]));
    cgr_ticket ticket;
    CGR__CHECK(cgr_replay(rt, b, &ticket));
    CGR__CHECK(cgr_ticket_wait(rt, &ticket));
    int32_t *sum = NULL, *gathered = NULL, *broadcast = NULL;
    CGR__CHECK(cgr_output(rt, &ticket, t->slots.sum, (void **)&sum));
    CGR__CHECK(cgr_output(rt, &ticket, t->slots.gathered, (void **)&gathered));
    CGR__CHECK(
        cgr_output(rt, &ticket, t->slots.broadcast, (void **)&broadcast));
    size_t padded_count = (size_t)ticket.padded_batch * ELEMS;
    for (uint32_t i = 0; i < batch * ELEMS; ++i) {
      int32_t want_sum = 0;
      for (int r = 0; r < TP_RANKS; ++r)
        want_sum += tp_input(k, r, i);
      int bad = sum[i] != want_sum || broadcast[i] != tp_input(k, 0, i);
      for (int r = 0; r < TP_RANKS; ++r)
        bad |= gathered[(size_t)r * padded_count + i] != tp_input(k, r, i);
      if (bad && t->wrong++ == 0)
        snprintf(t->first, sizeof t->first,
                 "rank %d step %d (mode %d) element %u: sum %d (want %d), "
                 "broadcast %d (want %d)",
                 rank, k, (int)t->mode, i, sum[i], want_sum, broadcast[i],
                 tp_input(k, 0, i));
    }
  }
  return CGR_OK;
}

static void *tp_thread_main(void *arg) {
  tp_thread *t = arg;
  t->status = tp_thread_run(t);
  if (t->status != CGR_OK)
    snprintf(t->message, sizeof t->message, "%s", cgr_last_error(t->rt));
  return NULL;
}

static void run_joined_ranks(cgr_replay_mode mode) {
  tp_thread threads[TP_RANKS];
  cgr_runtime *rts[TP_RANKS];
  memset(threads, 0, sizeof threads);
  for (int r = 0; r < TP_RANKS; ++r) {
    cgr_config config;
    cgr_test_config(&config);
    config.buckets = buckets;
    config.bucket_count = 2;
    if (cgr_runtime_create(&config, &rts[r]) != CGR_OK)
      fail_msg("cgr_runtime_create: %s", cgr_last_error(NULL));
    tp_step *s = &threads[r].slots;
    cgr_slot_desc desc;
    cgr_slot_desc_init(&desc, "x", CGR_SLOT_ROWS, 4, ELEMS);
    assert_cgr_ok(rts[r], cgr_slot_declare(rts[r], &desc, &s->x));
    cgr_slot_desc_init(&desc, "sum", CGR_SLOT_OUTPUT, 4, ELEMS);
    assert_cgr_ok(rts[r], cgr_slot_declare(rts[r], &desc, &s->sum));
    cgr_slot_desc_init(&desc, "gathered", CGR_SLOT_OUTPUT, 4, ELEMS * TP_RANKS);
    assert_cgr_ok(rts[r], cgr_slot_declare(rts[r], &desc, &s->gathered));
    cgr_slot_desc_init(&desc, "broadcast", CGR_SLOT_OUTPUT, 4, ELEMS);
    assert_cgr_ok(rts[r], cgr_slot_declare(rts[r], &desc, &s->broadcast));
  }
  cgr__comm *comm = NULL;
  cgr__error err;
  cgr__error_init(&err);
  if (cgr__comm_create(rts, TP_RANKS, 10000, &err, &comm) != CGR_OK)
    fail_msg("cgr__comm_create: %s", err.message);
  assert_int_equal(comm->kind, CGR_BACKEND_HOST);
  for (int r = 0; r < TP_RANKS; ++r) {
    rts[r]->comm = comm;
    rts[r]->rank = r;
    threads[r].rt = rts[r];
    threads[r].mode = mode;
    assert_int_equal(pthread_create(&threads[r].thread, NULL, tp_thread_main,
                                    &threads[r]),
                     0);
  }
  for (int r = 0; r < TP_RANKS; ++r)
    pthread_join(threads[r].thread, NULL);
  if (cgr__comm_check(comm, &err) != CGR_OK)
    fail_msg("mode %d: the communicator failed: %s", (int)mode, err.message);
  for (int r = 0; r < TP_RANKS; ++r) {
    if (threads[r].status != CGR_OK)
      fail_msg("rank %d: %s: %s", r, cgr_status_name(threads[r].status),
               threads[r].message);
    if (threads[r].wrong)
      fail_msg("%d wrong: %s", threads[r].wrong, threads[r].first);
  }
  assert_int_equal(cgr__comm_check(comm, &err), CGR_OK);
  /* Every rank captured the same collectives. */
  for (size_t k = 0; k < 2; ++k)
    for (int set = 0; set < 2; ++set) {
      uint64_t sig0 = 0, sig;
      uint32_t n0 = 0, n;
      for (int r = 0; r < TP_RANKS; ++r) {
        assert_cgr_ok(rts[r],
                      cgr__capture_collectives(rts[r], k, set, &sig, &n));
        if (r == 0) {
          sig0 = sig;
          n0 = n;
        }
        assert_true(sig == sig0);
        assert_int_equal(n, n0);
      }
      assert_int_equal(n0, 4);
    }
  for (int r = 0; r < TP_RANKS; ++r)
    cgr_runtime_destroy(rts[r]);
  cgr__comm_destroy(comm);
  cgr__error_fini(&err);
}

static void
test_joined_host_runtimes_capture_and_replay_collectives(void **state) {
  (void)state;
  cgr_test_require_host();
  run_joined_ranks(CGR_REPLAY_DOUBLE_BUFFERED);
  run_joined_ranks(CGR_REPLAY_NAIVE);
  run_joined_ranks(CGR_REPLAY_EAGER);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      HOST_TEST(test_joined_host_runtimes_capture_and_replay_collectives),
      RUNTIME_TEST(test_step_collectives_outside_a_group_copy),
      RUNTIME_TEST(test_step_collective_arguments_are_checked),
      RUNTIME_TEST(test_capture_keeps_a_signature_of_the_collectives),
  };
  return cgr_test_main(argc, argv, __FILE__, tests,
                       sizeof tests / sizeof tests[0]);
}
