/* The host communicator (runtime/host/host_comm.c) against a reference for
 * every op and type, in place and many in a row; a missing rank or a
 * disagreeing one ends the communicator with a message instead of a hang;
 * a group's communicator (runtime/comm.c) checks its arguments and its
 * abort ends collectives under way with the reason. Across processes:
 * host_comm_processes.c. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"
#include "harness.h"
#include "runtime/collective.h"
#include "runtime/host/host_comm.h"

/* ---- values of every dtype, exact in all of them ------------------------ */

/* Small integers (|v| <= 81) are exact in every dtype, float16 and
 * bfloat16 included, so sums and products of up to 4 ranks' values in
 * [-3, 3] have one right answer. */
static uint16_t small_to_half(double v, int bfloat) {
  if (v == 0)
    return 0;
  uint16_t sign = v < 0 ? 0x8000 : 0;
  int exponent;
  double fraction = frexp(fabs(v), &exponent); /* [0.5, 1) * 2^exponent */
  unsigned mantissa_bits = bfloat ? 7 : 10;
  unsigned bias = bfloat ? 127 : 15;
  unsigned mantissa =
      (unsigned)((fraction * 2 - 1) * (double)(1u << mantissa_bits));
  return (uint16_t)(sign |
                    ((unsigned)(exponent - 1 + (int)bias) << mantissa_bits) |
                    mantissa);
}

static double half_to_small(uint16_t h, int bfloat) {
  unsigned mantissa_bits = bfloat ? 7 : 10;
  int bias = bfloat ? 127 : 15;
  unsigned exponent = (h & 0x7fff) >> mantissa_bits;
  if (exponent == 0)
    return 0;
  double mantissa = 1 + (double)(h & ((1u << mantissa_bits) - 1)) /
                            (double)(1u << mantissa_bits);
  double v = ldexp(mantissa, (int)exponent - bias);
  return (h & 0x8000) ? -v : v;
}

static int is_unsigned(cgr_dtype dtype) {
  return dtype == CGR_DTYPE_UINT8 || dtype == CGR_DTYPE_UINT32 ||
         dtype == CGR_DTYPE_UINT64;
}

static void store(cgr_dtype dtype, void *base, size_t i, double v) {
  unsigned char *p = (unsigned char *)base + i * cgr__dtype_size(dtype);
  switch (dtype) {
  case CGR_DTYPE_INT8: {
    int8_t x = (int8_t)v;
    memcpy(p, &x, sizeof x);
  } break;
  case CGR_DTYPE_UINT8: {
    uint8_t x = (uint8_t)v;
    memcpy(p, &x, sizeof x);
  } break;
  case CGR_DTYPE_INT32: {
    int32_t x = (int32_t)v;
    memcpy(p, &x, sizeof x);
  } break;
  case CGR_DTYPE_UINT32: {
    uint32_t x = (uint32_t)v;
    memcpy(p, &x, sizeof x);
  } break;
  case CGR_DTYPE_INT64: {
    int64_t x = (int64_t)v;
    memcpy(p, &x, sizeof x);
  } break;
  case CGR_DTYPE_UINT64: {
    uint64_t x = (uint64_t)v;
    memcpy(p, &x, sizeof x);
  } break;
  case CGR_DTYPE_FLOAT16:
  case CGR_DTYPE_BFLOAT16: {
    uint16_t x = small_to_half(v, dtype == CGR_DTYPE_BFLOAT16);
    memcpy(p, &x, sizeof x);
  } break;
  case CGR_DTYPE_FLOAT32: {
    float x = (float)v;
    memcpy(p, &x, sizeof x);
  } break;
  default: {
    memcpy(p, &v, sizeof v);
  } break;
  }
}

static double load(cgr_dtype dtype, const void *base, size_t i) {
  const unsigned char *p =
      (const unsigned char *)base + i * cgr__dtype_size(dtype);
  switch (dtype) {
  case CGR_DTYPE_INT8: {
    int8_t x;
    memcpy(&x, p, sizeof x);
    return x;
  }
  case CGR_DTYPE_UINT8: {
    uint8_t x;
    memcpy(&x, p, sizeof x);
    return x;
  }
  case CGR_DTYPE_INT32: {
    int32_t x;
    memcpy(&x, p, sizeof x);
    return x;
  }
  case CGR_DTYPE_UINT32: {
    uint32_t x;
    memcpy(&x, p, sizeof x);
    return x;
  }
  case CGR_DTYPE_INT64: {
    int64_t x;
    memcpy(&x, p, sizeof x);
    return (double)x;
  }
  case CGR_DTYPE_UINT64: {
    uint64_t x;
    memcpy(&x, p, sizeof x);
    return (double)x;
  }
  case CGR_DTYPE_FLOAT16:
  case CGR_DTYPE_BFLOAT16: {
    uint16_t x;
    memcpy(&x, p, sizeof x);
    return half_to_small(x, dtype == CGR_DTYPE_BFLOAT16);
  }
  case CGR_DTYPE_FLOAT32: {
    float x;
    memcpy(&x, p, sizeof x);
    return x;
  }
  default: {
    double x;
    memcpy(&x, p, sizeof x);
    return x;
  }
  }
}

/* Rank `rank`'s element i of call `call`: in [-3, 3], or [0, 3] unsigned. */
static double value_of(int call, int rank, size_t i, cgr_dtype dtype) {
  unsigned mix = (unsigned)(call * 131 + rank * 17 + (int)i * 7) % 7;
  double v = (double)mix - 3;
  return is_unsigned(dtype) ? fabs(v) : v;
}

/* ---- the host communicator on threads ------------------------------------ */

#define MAX_CALLS 512

typedef struct call_spec {
  cgr__coll_kind kind;
  cgr_dtype dtype;
  cgr_reduce_op op;
  int root;
  size_t count;
  int in_place;
} call_spec;

typedef struct comm_run {
  cgr__host_comm *comm;
  int ranks;
  const call_spec *calls;
  int call_count;
  int repeat; /* run the list this many times */
} comm_run;

typedef struct rank_thread {
  pthread_t thread;
  const comm_run *run;
  int rank;
  int failures;    /* statuses other than CGR_OK */
  int wrong;       /* elements unlike the reference */
  char first[160]; /* what the first wrong element was */
} rank_thread;

static double reference(const comm_run *run, int call, const call_spec *c,
                        size_t out_index) {
  switch (c->kind) {
  case CGR__COLL_ALL_GATHER:
    return value_of(call, (int)(out_index / c->count), out_index % c->count,
                    c->dtype);
  case CGR__COLL_BROADCAST:
    return value_of(call, c->root, out_index, c->dtype);
  default:
    break;
  }
  double acc = value_of(call, 0, out_index, c->dtype);
  for (int r = 1; r < run->ranks; ++r) {
    double v = value_of(call, r, out_index, c->dtype);
    switch (c->op) {
    case CGR_REDUCE_SUM:
      acc += v;
      break;
    case CGR_REDUCE_PROD:
      acc *= v;
      break;
    case CGR_REDUCE_MAX:
      acc = v > acc ? v : acc;
      break;
    default:
      acc = v < acc ? v : acc;
      break;
    }
  }
  if (is_unsigned(c->dtype) && acc < 0) /* cannot happen: values are >= 0 */
    acc = -1;
  return acc;
}

static void *rank_main(void *arg) {
  rank_thread *t = arg;
  const comm_run *run = t->run;
  for (int round = 0; round < run->repeat; ++round) {
    for (int k = 0; k < run->call_count; ++k) {
      const call_spec *spec = &run->calls[k];
      size_t elem = cgr__dtype_size(spec->dtype);
      size_t out_count = spec->kind == CGR__COLL_ALL_GATHER
                             ? spec->count * (size_t)run->ranks
                             : spec->count;
      unsigned char *recv = calloc(out_count, elem);
      unsigned char *own_send = NULL;
      unsigned char *send;
      if (spec->in_place)
        send = spec->kind == CGR__COLL_ALL_GATHER
                   ? recv + (size_t)t->rank * spec->count * elem
                   : recv;
      else
        send = own_send = calloc(spec->count, elem);
      int call = round * run->call_count + k;
      for (size_t i = 0; i < spec->count; ++i)
        store(spec->dtype, send, i, value_of(call, t->rank, i, spec->dtype));
      cgr__collective c = {.kind = spec->kind,
                           .send = send,
                           .recv = recv,
                           .count = spec->count,
                           .dtype = spec->dtype,
                           .op = spec->op,
                           .root = spec->root};
      if (cgr__host_comm_run(run->comm, t->rank, &c) != CGR_OK)
        t->failures++;
      for (size_t i = 0; i < out_count; ++i) {
        double want = reference(run, call, spec, i);
        double got = load(spec->dtype, recv, i);
        if (got != want && t->wrong++ == 0)
          snprintf(t->first, sizeof t->first,
                   "call %d (kind %d dtype %d op %d root %d in place %d): "
                   "element %zu is %g, expected %g",
                   k, (int)spec->kind, (int)spec->dtype, (int)spec->op,
                   spec->root, spec->in_place, i, got, want);
      }
      free(own_send);
      free(recv);
    }
  }
  return NULL;
}

/* Runs `ranks` threads through the list; fails the test on any wrong
 * element or failed call. */
static void run_ranks(const comm_run *run) {
  rank_thread threads[CGR_GROUP_MAX_RANKS];
  memset(threads, 0, sizeof threads);
  for (int r = 0; r < run->ranks; ++r) {
    threads[r].run = run;
    threads[r].rank = r;
    assert_int_equal(pthread_create(&threads[r].thread, NULL, rank_main,
                                    &threads[r]),
                     0);
  }
  for (int r = 0; r < run->ranks; ++r)
    pthread_join(threads[r].thread, NULL);
  for (int r = 0; r < run->ranks; ++r) {
    if (threads[r].wrong)
      fail_msg("rank %d of %d: %d wrong elements; first: %s", r, run->ranks,
               threads[r].wrong, threads[r].first);
    assert_int_equal(threads[r].failures, 0);
  }
}

static int every_call(int ranks, call_spec *calls) {
  int n = 0;
  for (int in_place = 0; in_place < 2; ++in_place) {
    for (int dtype = 0; dtype <= CGR_DTYPE_FLOAT64; ++dtype) {
      size_t count = 1 + (size_t)(dtype * 3 + in_place) % 37;
      for (int op = 0; op <= CGR_REDUCE_MIN; ++op)
        calls[n++] = (call_spec){CGR__COLL_ALL_REDUCE,
                                 (cgr_dtype)dtype,
                                 (cgr_reduce_op)op,
                                 0,
                                 count,
                                 in_place};
      calls[n++] = (call_spec){CGR__COLL_ALL_GATHER,
                               (cgr_dtype)dtype,
                               CGR_REDUCE_SUM,
                               0,
                               count,
                               in_place};
      for (int root = 0; root < ranks; ++root)
        calls[n++] = (call_spec){CGR__COLL_BROADCAST,
                                 (cgr_dtype)dtype,
                                 CGR_REDUCE_SUM,
                                 root,
                                 count,
                                 in_place};
    }
  }
  return n;
}

static void test_host_comm_every_op_and_dtype_matches_reference(void **state) {
  (void)state;
  cgr_test_require_host();
  static call_spec calls[MAX_CALLS];
  for (int ranks = 2; ranks <= 4; ++ranks) {
    cgr__host_comm *comm = NULL;
    assert_int_equal(cgr__host_comm_create(ranks, 10000, NULL, &comm), CGR_OK);
    comm_run run = {comm, ranks, calls, every_call(ranks, calls), 1};
    run_ranks(&run);
    cgr__error err;
    cgr__error_init(&err);
    assert_int_equal(cgr__host_comm_check(comm, &err), CGR_OK);
    cgr__error_fini(&err);
    assert_int_equal(cgr__host_comm_completed(comm), (uint64_t)run.call_count);
    cgr__host_comm_destroy(comm);
  }
}

static void test_host_comm_runs_many_collectives_in_a_row(void **state) {
  (void)state;
  cgr_test_require_host();
  static const call_spec calls[] = {
      {CGR__COLL_ALL_REDUCE, CGR_DTYPE_FLOAT32, CGR_REDUCE_SUM, 0, 64, 1},
      {CGR__COLL_ALL_GATHER, CGR_DTYPE_INT32, CGR_REDUCE_SUM, 0, 3, 1},
      {CGR__COLL_BROADCAST, CGR_DTYPE_BFLOAT16, CGR_REDUCE_SUM, 1, 5, 0},
      {CGR__COLL_ALL_REDUCE, CGR_DTYPE_FLOAT16, CGR_REDUCE_MAX, 0, 1, 0},
  };
  cgr__host_comm *comm = NULL;
  assert_int_equal(cgr__host_comm_create(4, 10000, NULL, &comm), CGR_OK);
  comm_run run = {comm, 4, calls, 4, 500};
  run_ranks(&run);
  assert_int_equal(cgr__host_comm_completed(comm), 2000);
  cgr__host_comm_destroy(comm);
}

/* The host kernel, as a stream worker would run it. */
static void *kernel_main(void *args) {
  cgr__host_comm_kernel.host_run(args);
  return NULL;
}

/* float16 and bfloat16 sums are computed in float32 and rounded once, to
 * nearest with ties to even. */
static void test_host_comm_half_sums_round_to_nearest_even(void **state) {
  (void)state;
  cgr_test_require_host();
  /* (rank 0, rank 1, expected) as bits. */
  static const uint16_t half_cases[][3] = {
      {0x6800, 0x3c00, 0x6800}, /* 2048 + 1 = 2049: tie, to even 2048 */
      {0x6801, 0x3c00, 0x6802}, /* 2050 + 1 = 2051: tie, to even 2052 */
      {0x7bff, 0x7bff, 0x7c00}, /* 65504 + 65504: infinity */
      {0x0001, 0x0001, 0x0002}, /* subnormals */
      {0x3c00, 0xbc00, 0x0000}, /* 1 - 1 */
  };
  static const uint16_t bf16_cases[][3] = {
      {0x4380, 0x3f80, 0x4380}, /* 256 + 1 = 257: tie, to even 256 */
      {0x4381, 0x3f80, 0x4382}, /* 258 + 1 = 259: tie, to even 260 */
      {0x3f80, 0x3f80, 0x4000}, /* 1 + 1 = 2 */
  };
  cgr__host_comm *comm = NULL;
  assert_int_equal(cgr__host_comm_create(2, 10000, NULL, &comm), CGR_OK);
  for (int bfloat = 0; bfloat < 2; ++bfloat) {
    size_t n = bfloat ? 3 : 5;
    uint16_t send[2][5], recv[2][5];
    for (size_t i = 0; i < n; ++i)
      for (int r = 0; r < 2; ++r)
        send[r][i] = bfloat ? bf16_cases[i][r] : half_cases[i][r];
    /* Two ranks on two threads: this thread is rank 0, the host kernel
     * on another thread rank 1. */
    cgr__collective theirs = {CGR__COLL_ALL_REDUCE,
                              send[1],
                              recv[1],
                              n,
                              bfloat ? CGR_DTYPE_BFLOAT16 : CGR_DTYPE_FLOAT16,
                              CGR_REDUCE_SUM,
                              0};
    cgr__host_comm_args args = {comm, 1, theirs};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, kernel_main, &args), 0);
    cgr__collective mine = theirs;
    mine.send = send[0];
    mine.recv = recv[0];
    assert_int_equal(cgr__host_comm_run(comm, 0, &mine), CGR_OK);
    pthread_join(thread, NULL);
    for (size_t i = 0; i < n; ++i) {
      uint16_t want = bfloat ? bf16_cases[i][2] : half_cases[i][2];
      assert_int_equal(recv[0][i], want);
      assert_int_equal(recv[1][i], want);
    }
  }
  cgr__host_comm_destroy(comm);
}

/* Four ranks' float32 sums combine pairwise, neighbours first:
 * (1e8 + 1) + (-1e8 + 1) is 0 in float32 (each 1 is lost to rounding),
 * where rank order, ((1e8 + 1) - 1e8) + 1, would give 1. The split of a
 * sum over ranks that the example model's tensor parallelism relies on. */
typedef struct order_rank {
  cgr__host_comm *comm;
  int rank;
  float send, recv;
  cgr_status status;
} order_rank;

static void *order_main(void *arg) {
  order_rank *t = arg;
  cgr__collective c = {CGR__COLL_ALL_REDUCE, &t->send,       &t->recv, 1,
                       CGR_DTYPE_FLOAT32,    CGR_REDUCE_SUM, 0};
  t->status = cgr__host_comm_run(t->comm, t->rank, &c);
  return NULL;
}

static void test_host_comm_sums_ranks_pairwise(void **state) {
  (void)state;
  cgr_test_require_host();
  static const float values[4] = {1e8f, 1.0f, -1e8f, 1.0f};
  cgr__host_comm *comm = NULL;
  assert_int_equal(cgr__host_comm_create(4, 10000, NULL, &comm), CGR_OK);
  order_rank ranks[4];
  pthread_t threads[4];
  for (int r = 0; r < 4; ++r) {
    ranks[r] = (order_rank){comm, r, values[r], -1.0f, CGR_E_INTERNAL};
    assert_int_equal(pthread_create(&threads[r], NULL, order_main, &ranks[r]),
                     0);
  }
  for (int r = 0; r < 4; ++r) {
    pthread_join(threads[r], NULL);
    assert_int_equal(ranks[r].status, CGR_OK);
    assert_true(ranks[r].recv == 0.0f);
  }
  cgr__host_comm_destroy(comm);
}

typedef struct lone_rank {
  cgr__host_comm *comm;
  int rank;
  cgr_reduce_op op;
  cgr__coll_kind kind;
  cgr_status status;
  double waited_ms;
} lone_rank;

static void *lone_main(void *arg) {
  lone_rank *l = arg;
  float data[4] = {1, 2, 3, 4};
  float out[4 * CGR_GROUP_MAX_RANKS];
  cgr__collective c = {.kind = l->kind,
                       .send = data,
                       .recv = out,
                       .count = 4,
                       .dtype = CGR_DTYPE_FLOAT32,
                       .op = l->op};
  double start = test_now_ms();
  l->status = cgr__host_comm_run(l->comm, l->rank, &c);
  l->waited_ms = test_now_ms() - start;
  return NULL;
}

static void test_host_comm_missing_rank_times_out_naming_it(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr__host_comm *comm = NULL;
  assert_int_equal(cgr__host_comm_create(3, 100, NULL, &comm), CGR_OK);
  /* Rank 2 never calls. */
  lone_rank ranks[2] = {{comm, 0, CGR_REDUCE_SUM, CGR__COLL_ALL_REDUCE, 0, 0},
                        {comm, 1, CGR_REDUCE_SUM, CGR__COLL_ALL_REDUCE, 0, 0}};
  pthread_t threads[2];
  for (int r = 0; r < 2; ++r)
    assert_int_equal(pthread_create(&threads[r], NULL, lone_main, &ranks[r]),
                     0);
  for (int r = 0; r < 2; ++r)
    pthread_join(threads[r], NULL);
  for (int r = 0; r < 2; ++r) {
    assert_int_equal(ranks[r].status, CGR_E_TIMEOUT);
    assert_true(ranks[r].waited_ms >= 90);
  }
  cgr__error err;
  cgr__error_init(&err);
  assert_int_equal(cgr__host_comm_check(comm, &err), CGR_E_TIMEOUT);
  const char *needles[] = {"collective #0", "all-reduce (sum) of 4 float32",
                           "100 ms", "rank 2 did not arrive"};
  for (size_t i = 0; i < 4; ++i)
    if (strstr(err.message, needles[i]) == NULL)
      fail_msg("\"%s\" does not mention \"%s\"", err.message, needles[i]);
  /* From now on every collective returns at once, the late rank's too. */
  lone_rank late = {comm, 2, CGR_REDUCE_SUM, CGR__COLL_ALL_REDUCE, 0, 0};
  lone_main(&late);
  assert_int_equal(late.status, CGR_E_TIMEOUT);
  assert_true(late.waited_ms < 50);
  assert_int_equal(cgr__host_comm_check(comm, &err), CGR_E_TIMEOUT);
  cgr__error_fini(&err);
  cgr__host_comm_destroy(comm);
}

static void test_host_comm_ranks_that_disagree_abort_at_once(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr__host_comm *comm = NULL;
  assert_int_equal(cgr__host_comm_create(2, 10000, NULL, &comm), CGR_OK);
  lone_rank ranks[2] = {{comm, 0, CGR_REDUCE_SUM, CGR__COLL_ALL_REDUCE, 0, 0},
                        {comm, 1, CGR_REDUCE_MAX, CGR__COLL_ALL_REDUCE, 0, 0}};
  pthread_t threads[2];
  for (int r = 0; r < 2; ++r)
    assert_int_equal(pthread_create(&threads[r], NULL, lone_main, &ranks[r]),
                     0);
  for (int r = 0; r < 2; ++r)
    pthread_join(threads[r], NULL);
  for (int r = 0; r < 2; ++r) {
    assert_int_equal(ranks[r].status, CGR_E_TIMEOUT);
    assert_true(ranks[r].waited_ms < 5000);
  }
  cgr__error err;
  cgr__error_init(&err);
  assert_int_equal(cgr__host_comm_check(comm, &err), CGR_E_TIMEOUT);
  if (strstr(err.message, "rank 1 called all-reduce (max)") == NULL)
    fail_msg("\"%s\" does not name rank 1's call", err.message);
  cgr__error_fini(&err);
  cgr__host_comm_destroy(comm);
}

/* ---- a group's communicator --------------------------------------------- */

static void test_comm_create_checks_its_arguments(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr__error err;
  cgr__error_init(&err);
  cgr__comm *comm = (cgr__comm *)&err; /* overwritten with NULL */
  cgr_runtime *rts[2] = {NULL, NULL};
  assert_int_equal(cgr__comm_create(rts, 0, 100, &err, &comm),
                   CGR_E_INVALID_ARGUMENT);
  assert_null(comm);
  assert_int_equal(cgr__comm_create(rts, CGR_GROUP_MAX_RANKS + 1, 100, &err,
                                    &comm),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr__comm_create(rts, 2, 100, &err, &comm),
                   CGR_E_INVALID_ARGUMENT);
  assert_non_null(strstr(err.message, "rank 0"));
  assert_int_equal(cgr__comm_check(NULL, &err), CGR_OK);
  cgr__comm_abort(NULL, "nothing");
  cgr__comm_destroy(NULL);
  assert_int_equal(cgr__dtype_size(CGR_DTYPE_BFLOAT16), 2);
  assert_int_equal(cgr__dtype_size(CGR_DTYPE_FLOAT64), 8);
  assert_int_equal(cgr__dtype_size((cgr_dtype)42), 0);
  cgr__error_fini(&err);
}

static void test_comm_abort_ends_collectives_with_the_reason(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr_config config;
  cgr_test_config(&config);
  cgr_runtime *rts[2];
  for (int r = 0; r < 2; ++r)
    if (cgr_runtime_create(&config, &rts[r]) != CGR_OK)
      fail_msg("cgr_runtime_create: %s", cgr_last_error(NULL));
  cgr__error err;
  cgr__error_init(&err);
  cgr__comm *comm = NULL;
  assert_int_equal(cgr__comm_create(rts, 2, 10000, &err, &comm), CGR_OK);
  assert_ptr_equal(comm->handles[0], comm->handles[1]);
  /* Rank 0 waits on its stream for rank 1, which never comes; the abort
   * ends the wait long before the timeout. */
  void *buffer = NULL;
  assert_cgr_ok(rts[0], cgr_device_alloc(rts[0], 16, &buffer));
  cgr__collective c = {.kind = CGR__COLL_ALL_REDUCE,
                       .send = buffer,
                       .recv = buffer,
                       .count = 4,
                       .dtype = CGR_DTYPE_FLOAT32,
                       .op = CGR_REDUCE_SUM};
  uint64_t launches = cgr__be_calls(TEST_BE(rts[0]), CGR__CALL_KERNEL_LAUNCH);
  assert_cgr_ok(rts[0], cgr__be_collective(TEST_BE(rts[0]), TEST_MAIN(rts[0]),
                                           comm->handles[0], 0, 2, &c));
  assert_int_equal(cgr__be_calls(TEST_BE(rts[0]), CGR__CALL_KERNEL_LAUNCH),
                   launches + 1);
  double start = test_now_ms();
  cgr__comm_abort(comm, "rank 1 failed its step");
  assert_cgr_ok(rts[0],
                cgr__be_stream_synchronize(TEST_BE(rts[0]), TEST_MAIN(rts[0])));
  assert_true(test_now_ms() - start < 5000);
  assert_int_equal(cgr__comm_check(comm, &err), CGR_E_TIMEOUT);
  assert_non_null(strstr(err.message, "rank 1 failed its step"));
  /* The op's own argument checks. */
  assert_int_equal(cgr__be_collective(TEST_BE(rts[0]), TEST_MAIN(rts[0]),
                                      comm->handles[0], 2, 2, &c),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr__be_collective(TEST_BE(rts[0]), TEST_MAIN(rts[0]), NULL,
                                      0, 2, &c),
                   CGR_E_INVALID_ARGUMENT);
  assert_cgr_ok(rts[0], cgr_device_free(rts[0], buffer));
  for (int r = 0; r < 2; ++r)
    cgr_runtime_destroy(rts[r]);
  cgr__comm_destroy(comm);
  cgr__error_fini(&err);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      HOST_TEST(test_host_comm_every_op_and_dtype_matches_reference),
      HOST_TEST(test_host_comm_runs_many_collectives_in_a_row),
      HOST_TEST(test_host_comm_half_sums_round_to_nearest_even),
      HOST_TEST(test_host_comm_sums_ranks_pairwise),
      HOST_TEST(test_host_comm_missing_rank_times_out_naming_it),
      HOST_TEST(test_host_comm_ranks_that_disagree_abort_at_once),
      HOST_TEST(test_comm_create_checks_its_arguments),
      HOST_TEST(test_comm_abort_ends_collectives_with_the_reason),
  };
  return cgr_test_main(argc, argv, __FILE__, tests,
                       sizeof tests / sizeof tests[0]);
}
