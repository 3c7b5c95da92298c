/*
 * NCCL on the CUDA backend (runtime/cuda/cuda_nccl.c): the loader, the
 * checks made before NCCL is called, and, on a GPU, a one-rank
 * communicator whose collectives run on a runtime's stream, eagerly and
 * inside a captured graph; and a one-rank group (in this process, and a
 * world of one process joined through an id) captured and replayed in
 * every mode.
 *
 * Most of it needs no GPU: libnccl.so loads (and answers ncclGetVersion)
 * on a machine without one, so the host tests load the real library when
 * the machine has it. In a build without the NCCL path every entry point
 * must say so (CGR_E_UNSUPPORTED), and the tests check that instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "runtime/backend.h"
#include "runtime/cuda/cuda_nccl.h"

#if defined(CGR_HAVE_NCCL)
enum { HAVE_NCCL = 1 };
#else
enum { HAVE_NCCL = 0 };
#endif

enum { COUNT = 1024 };

/* Fails unless `text` contains `needle`. */
static void expect_words(const char *text, const char *needle) {
  if (strstr(text, needle) == NULL)
    fail_msg("\"%s\" does not mention \"%s\"", text, needle);
}

/* What every entry point of a build without NCCL says. */
static void expect_no_nccl_in_this_build(cgr_status status, const char *text) {
  assert_int_equal(status, CGR_E_UNSUPPORTED);
  if (strstr(text, "no NCCL") == NULL && strstr(text, "no CUDA") == NULL)
    fail_msg("\"%s\" does not say that the build has no NCCL", text);
}

static void test_missing_library_is_unsupported_naming_its_path(void **state) {
  (void)state;
  const char *missing = "/nonexistent/cgr-test/libnccl.so.2";
  char why[CGR__ERROR_MESSAGE_SIZE];
  int version = -1;
  assert_int_equal(setenv("CGR_NCCL_LIBRARY", missing, 1), 0);
  cgr_status status = cgr__nccl_library_probe(NULL, &version, why, sizeof why);
  assert_int_equal(unsetenv("CGR_NCCL_LIBRARY"), 0);
  assert_int_equal(version, 0);
  if (!HAVE_NCCL) {
    expect_no_nccl_in_this_build(status, why);
    return;
  }
  assert_int_equal(status, CGR_E_UNSUPPORTED);
  expect_words(why, missing);
  expect_words(why, "CGR_NCCL_LIBRARY");
  /* The same path given directly says the same. */
  assert_int_equal(cgr__nccl_library_probe(missing, &version, why, sizeof why),
                   CGR_E_UNSUPPORTED);
  expect_words(why, missing);
}

static void
test_library_without_nccl_is_refused_naming_the_symbol(void **state) {
  (void)state;
  char why[CGR__ERROR_MESSAGE_SIZE];
  int version = -1;
  /* A library every machine has, with no NCCL in it. */
  cgr_status status =
      cgr__nccl_library_probe("libc.so.6", &version, why, sizeof why);
  assert_int_equal(version, 0);
  if (!HAVE_NCCL) {
    expect_no_nccl_in_this_build(status, why);
    return;
  }
  assert_int_equal(status, CGR_E_UNSUPPORTED);
  expect_words(why, "libc.so.6");
  expect_words(why, "ncclGetVersion is missing");
}

static void test_installed_library_loads_and_reports_its_version(void **state) {
  (void)state;
  cgr__error err;
  assert_int_equal(cgr__error_init(&err), CGR_OK);
  int version = -1;
  if (!HAVE_NCCL) {
    cgr_status status = cgr__nccl_library(&err, &version);
    assert_int_equal(version, 0);
    expect_no_nccl_in_this_build(status, err.message);
    cgr__error_fini(&err);
    return;
  }
  char why[CGR__ERROR_MESSAGE_SIZE];
  if (cgr__nccl_library_probe(NULL, &version, why, sizeof why) != CGR_OK) {
    cgr__error_fini(&err);
    cgr_test_skip(why);
    return;
  }
  int probed = version;
  assert_true(probed >= 21000);
  assert_int_equal(probed / 10000, 2);
  /* The process's library is the one the probe found, and stays. */
  for (int i = 0; i < 2; i++) {
    version = -1;
    if (cgr__nccl_library(&err, &version) != CGR_OK)
      fail_msg("cgr__nccl_library: %s", err.message);
    assert_int_equal(version, probed);
  }
  cgr__error_fini(&err);
}

static void test_comm_create_refuses_bad_arguments(void **state) {
  (void)state;
  cgr__error err;
  assert_int_equal(cgr__error_init(&err), CGR_OK);
  void *handles[CGR_GROUP_MAX_RANKS + 1];
  cgr_runtime *rts[CGR_GROUP_MAX_RANKS + 1] = {0};
  cgr_status want = HAVE_NCCL ? CGR_E_INVALID_ARGUMENT : CGR_E_UNSUPPORTED;
  const int bad_ranks[] = {0, -1, CGR_GROUP_MAX_RANKS + 1};
  for (size_t i = 0; i < sizeof bad_ranks / sizeof bad_ranks[0]; i++) {
    handles[0] = (void *)&err;
    assert_int_equal(cgr__nccl_comm_create(rts, bad_ranks[i], &err, handles),
                     want);
  }
  /* A missing runtime is named by its rank; every handle is NULL. */
  for (int r = 0; r < 2; r++)
    handles[r] = (void *)&err;
  assert_int_equal(cgr__nccl_comm_create(rts, 2, &err, handles), want);
  assert_null(handles[0]);
  assert_null(handles[1]);
  if (HAVE_NCCL)
    expect_words(err.message, "rank 0 has no runtime");
  assert_int_equal(cgr__nccl_comm_create(NULL, 1, &err, handles), want);
  assert_int_equal(cgr__nccl_comm_check(NULL, 1, &err),
                   HAVE_NCCL ? CGR_E_INVALID_ARGUMENT : CGR_E_UNSUPPORTED);
  /* Ending nothing is a no-op. */
  void *none[2] = {NULL, NULL};
  cgr__nccl_comm_abort(none, 2);
  cgr__nccl_comm_destroy(none, 2);
  cgr__nccl_comm_destroy(NULL, 2);
  cgr__error_fini(&err);
}

/* A valid all-reduce of float32 over n elements. */
static cgr__collective all_reduce_of(const void *send, void *recv, size_t n) {
  cgr__collective c = {.kind = CGR__COLL_ALL_REDUCE,
                       .send = send,
                       .recv = recv,
                       .count = n,
                       .dtype = CGR_DTYPE_FLOAT32,
                       .op = CGR_REDUCE_SUM,
                       .root = 0};
  return c;
}

/* Every check the op makes before it calls NCCL, on a handle NCCL never
 * sees: no GPU, and no library, needed. */
static void test_collective_refuses_what_nccl_has_no_value_for(void **state) {
  (void)state;
  cgr__error err;
  assert_int_equal(cgr__error_init(&err), CGR_OK);
  float data[4] = {0};
  void *fake = (void *)data; /* never dereferenced: refused first */
  struct {
    cgr__collective c;
    void *handle;
    cgr_status want;
    const char *words;
  } cases[6];
  for (size_t i = 0; i < 6; i++) {
    cases[i].c = all_reduce_of(data, data, 4);
    cases[i].handle = fake;
    cases[i].want = CGR_E_INVALID_ARGUMENT;
  }
  cases[0].c.dtype = (cgr_dtype)99;
  cases[0].words = "dtype 99";
  cases[1].c.op = (cgr_reduce_op)99;
  cases[1].words = "op 99";
  cases[2].c.kind = CGR__COLL_BROADCAST;
  cases[2].c.root = 2;
  cases[2].words = "root 2 is not a rank of 2";
  cases[3].c.kind = CGR__COLL_BROADCAST;
  cases[3].c.root = -1;
  cases[3].words = "root -1";
  cases[4].c.kind = (cgr__coll_kind)7;
  cases[4].words = "kind 7";
  cases[5].handle = NULL;
  cases[5].want = CGR_E_INVALID_STATE;
  cases[5].words = "rank 1 of 2 on CUDA device 3 has no NCCL communicator";
  for (size_t i = 0; i < 6; i++) {
    cgr_status status =
        cgr__nccl_collective(3, &err, NULL, cases[i].handle, 1, 2, &cases[i].c);
    if (!HAVE_NCCL) {
      expect_no_nccl_in_this_build(status, err.message);
      continue;
    }
    if (status != cases[i].want)
      fail_msg("case %zu: %s, expected %s (%s)", i, cgr_status_name(status),
               cgr_status_name(cases[i].want), err.message);
    expect_words(err.message, cases[i].words);
  }
  cgr__error_fini(&err);
}

/* ---- a one-rank communicator on the runtime under test ---------------- */

/* The rank's collective, through the backend table's op (cuda_backend.c
 * hands it to cgr__nccl_collective). */
static cgr_status enqueue(cgr_runtime *rt, void *handle,
                          const cgr__collective *c) {
  return cgr__be_collective(TEST_BE(rt), TEST_MAIN(rt), handle, 0, 1, c);
}

static void fill(float *values, size_t n, float base) {
  for (size_t i = 0; i < n; i++)
    values[i] = base + (float)i * 0.5f;
}

/* Copies n floats of device memory back and compares them with want. */
static void expect_device(cgr_runtime *rt, const float *device,
                          const float *want, size_t n, const char *what) {
  float *host = calloc(n, sizeof *host);
  assert_non_null(host);
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), host,
                                         device, n * sizeof *host));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
  for (size_t i = 0; i < n; i++)
    if (memcmp(&host[i], &want[i], sizeof want[i]) != 0)
      fail_msg("%s: element %zu is %g, expected %g", what, i, (double)host[i],
               (double)want[i]);
  free(host);
}

/* Makes the one-rank communicator, or says why the test cannot. */
static void *one_rank_comm(cgr_runtime *rt) {
  void *handles[1] = {NULL};
  cgr_runtime *rts[1] = {rt};
  cgr_status status = cgr__nccl_comm_create(rts, 1, &rt->error, handles);
  if (cgr_test_backend == CGR_BACKEND_HOST || !HAVE_NCCL) {
    /* The host backend has no device for NCCL; a build without NCCL has
     * no NCCL at all. Both refuse clearly. */
    if (!HAVE_NCCL) {
      expect_no_nccl_in_this_build(status, cgr_last_error(rt));
    } else {
      assert_int_equal(status, CGR_E_INVALID_ARGUMENT);
      assert_last_error_contains(rt, "rank 0 runs on the host backend");
    }
    assert_null(handles[0]);
    return NULL;
  }
  if (status == CGR_E_UNSUPPORTED)
    cgr_test_skip(cgr_last_error(rt)); /* no libnccl on this machine */
  assert_cgr_ok(rt, status);
  assert_non_null(handles[0]);
  return handles[0];
}

static void test_one_rank_collectives_run_on_the_runtime_stream(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  void *comm = one_rank_comm(rt);
  if (comm == NULL)
    return;
  cgr__backend *be = TEST_BE(rt);
  float want[COUNT], zero[COUNT] = {0};
  float *send = NULL, *recv = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, sizeof want, (void **)&send));
  assert_cgr_ok(rt, cgr__be_device_alloc(be, sizeof want, (void **)&recv));
  fill(want, COUNT, 1.0f);
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), send, want,
                                         sizeof want));

  /* One rank: every collective is a copy of send into recv. */
  cgr__collective c = all_reduce_of(send, recv, COUNT);
  const cgr__coll_kind kinds[] = {CGR__COLL_ALL_REDUCE, CGR__COLL_ALL_GATHER,
                                  CGR__COLL_BROADCAST};
  for (size_t k = 0; k < 3; k++) {
    assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), recv, zero,
                                           sizeof zero));
    c.kind = kinds[k];
    assert_cgr_ok(rt, enqueue(rt, comm, &c));
    expect_device(rt, recv, want, COUNT, "an eager collective");
  }
  /* bfloat16 and in place: half the floats' bytes as COUNT bfloat16. */
  c = all_reduce_of(send, send, COUNT);
  c.dtype = CGR_DTYPE_BFLOAT16;
  c.op = CGR_REDUCE_MAX;
  assert_cgr_ok(rt, enqueue(rt, comm, &c));
  expect_device(rt, send, want, COUNT, "an in-place bfloat16 all-reduce");

  /* Captured: the all-reduce is a node of the graph, and each launch
   * reduces what send holds then. */
  cgr__graph *graph = NULL;
  cgr__graph_exec *exec = NULL;
  c = all_reduce_of(send, recv, COUNT);
  assert_cgr_ok(rt, cgr__be_capture_begin(be, TEST_MAIN(rt)));
  cgr_status captured = enqueue(rt, comm, &c);
  cgr_status ended = cgr__be_capture_end(be, TEST_MAIN(rt), &graph);
  assert_cgr_ok(rt, captured);
  assert_cgr_ok(rt, ended);
  size_t nodes = 0;
  assert_cgr_ok(rt, cgr__be_graph_node_count(be, graph, &nodes));
  assert_true(nodes >= 1);
  assert_cgr_ok(rt, cgr__be_graph_instantiate(be, graph, TEST_MAIN(rt), &exec));
  for (int launch = 0; launch < 3; launch++) {
    fill(want, COUNT, (float)(10 * launch));
    assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), send, want,
                                           sizeof want));
    assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), recv, zero,
                                           sizeof zero));
    assert_cgr_ok(rt, cgr__be_graph_launch(be, exec, TEST_MAIN(rt)));
    expect_device(rt, recv, want, COUNT, "a replayed all-reduce");
  }
  /* Eager again on the same communicator, after the graph's launches. */
  assert_cgr_ok(rt, enqueue(rt, comm, &c));
  expect_device(rt, recv, want, COUNT, "an eager all-reduce after replays");

  void *handles[1] = {comm};
  assert_cgr_ok(rt, cgr__nccl_comm_check(handles, 1, &rt->error));
  cgr__be_graph_exec_destroy(be, exec);
  cgr__be_graph_destroy(be, graph);
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
  cgr__nccl_comm_destroy(handles, 1);
  cgr__be_device_free(be, send);
  cgr__be_device_free(be, recv);
}

/* ---- a one-rank group ----------------------------------------------------
 */

enum { GROUP_COLS = 16 };

typedef struct one_rank_step {
  cgr_slot x, sum, gathered;
} one_rank_step;

/* On one rank an all-reduce and an all-gather are copies of x. */
static cgr_status one_rank_step_fn(cgr_step *step, void *user) {
  const one_rank_step *s = user;
  size_t count = (size_t)cgr_step_padded_batch(step) * GROUP_COLS;
  cgr_status status = cgr_step_all_reduce(step, cgr_step_slot(step, s->x),
                                          cgr_step_slot(step, s->sum), count,
                                          CGR_DTYPE_FLOAT32, CGR_REDUCE_SUM);
  if (status == CGR_OK)
    status = cgr_step_all_gather(step, cgr_step_slot(step, s->x),
                                 cgr_step_slot(step, s->gathered), count,
                                 CGR_DTYPE_FLOAT32);
  return status;
}

/* Makes a one-rank group (world 1: of one process, through an id; 2: on
 * the caller's communicator `comm`); NULL when this build or machine has
 * no NCCL for it (said, or skipped). */
static cgr_group *one_rank_group(int world, char *id, void *comm) {
  static const uint32_t buckets[] = {1, 2, 4};
  cgr_config runtime;
  cgr_test_config(&runtime);
  runtime.buckets = buckets;
  runtime.bucket_count = 3;
  cgr_group_config config;
  cgr_group_config_init(&config);
  config.ranks = 1;
  config.runtime = &runtime;
  cgr_status status = CGR_OK;
  void *comms[1] = {comm};
  if (world == 2)
    config.nccl_comms = comms;
  if (world == 1) {
    status = cgr_group_id_create(cgr_test_backend, id, CGR_GROUP_ID_MAX);
    config.world_ranks = 1;
    config.world_rank = 0;
    config.id = id;
  }
  cgr_group *group = NULL;
  if (status == CGR_OK)
    status = cgr_group_create(&config, &group);
  if (cgr_test_backend == CGR_BACKEND_CUDA && !HAVE_NCCL) {
    expect_no_nccl_in_this_build(status, cgr_group_last_error(NULL));
    return NULL;
  }
  if (status == CGR_E_UNSUPPORTED && cgr_test_backend == CGR_BACKEND_CUDA) {
    cgr_test_skip(cgr_group_last_error(NULL)); /* no libnccl here */
    return NULL;
  }
  if (status != CGR_OK)
    fail_msg("one-rank group (world %d): %s: %s", world,
             cgr_status_name(status), cgr_group_last_error(NULL));
  return group;
}

/* A group of one rank, in this process and as a world of one process
 * (ncclGetUniqueId and ncclCommInitRank on CUDA, the shared-memory
 * communicator on the host backend), captured and replayed in every mode;
 * then destroyed, graphs before the communicator (NCCL 2.26 and later
 * would wait forever the other way round). On CUDA this is the one-rank
 * NCCL group of the GPU run: one GPU suffices. */
static void test_one_rank_group_captures_and_replays(void **state) {
  static const cgr_replay_mode modes[] = {CGR_REPLAY_DOUBLE_BUFFERED,
                                          CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED,
                                          CGR_REPLAY_IN_GRAPH,
                                          CGR_REPLAY_EAGER};
  cgr_runtime *test_rt = cgr_test_runtime(state);
  for (int world = 0; world < 3; ++world) {
    char id[CGR_GROUP_ID_MAX] = "";
    /* The caller's own communicator: CUDA only (one_rank_comm checks the
     * host backend's refusal). */
    void *comm = world == 2 ? one_rank_comm(test_rt) : NULL;
    if (world == 2 && comm == NULL)
      return;
    cgr_group *group = one_rank_group(world, id, comm);
    if (group == NULL)
      return;
    cgr_runtime *rt = cgr_group_runtime(group, 0);
    assert_int_equal(cgr_group_world_ranks(group), 1);
    assert_int_equal(cgr_group_rank(group, 0), 0);
    one_rank_step s;
    cgr_slot_desc desc;
    cgr_slot_desc_init(&desc, "x", CGR_SLOT_ROWS, 4, GROUP_COLS);
    assert_int_equal(cgr_group_slot_declare(group, &desc, &s.x), CGR_OK);
    cgr_slot_desc_init(&desc, "sum", CGR_SLOT_OUTPUT, 4, GROUP_COLS);
    assert_int_equal(cgr_group_slot_declare(group, &desc, &s.sum), CGR_OK);
    cgr_slot_desc_init(&desc, "gathered", CGR_SLOT_OUTPUT, 4, GROUP_COLS);
    assert_int_equal(cgr_group_slot_declare(group, &desc, &s.gathered), CGR_OK);
    cgr_status status = cgr_group_capture(group, one_rank_step_fn, &s);
    if (status != CGR_OK)
      fail_msg("cgr_group_capture: %s: %s", cgr_status_name(status),
               cgr_group_last_error(group));
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; ++m) {
      assert_int_equal(cgr_group_set_replay_mode(group, modes[m]), CGR_OK);
      for (uint32_t k = 0; k < 6; ++k) {
        uint32_t rows = 1 + k % 4;
        float x[4 * GROUP_COLS], got[4 * GROUP_COLS];
        for (uint32_t i = 0; i < rows * GROUP_COLS; ++i)
          x[i] = (float)(1000 * m + 100 * k + i);
        cgr_batch *batches[CGR_GROUP_MAX_RANKS] = {NULL};
        assert_int_equal(cgr_group_batch_begin(group, rows, batches), CGR_OK);
        assert_cgr_ok(rt, cgr_batch_input(batches[0], s.x, CGR_SOURCE_HOST, x,
                                          rows * GROUP_COLS * 4));
        cgr_ticket ticket;
        status = cgr_group_replay(group, batches, &ticket);
        if (status == CGR_OK)
          status = cgr_group_ticket_wait(group, &ticket);
        if (status != CGR_OK)
          fail_msg("world %d, mode %d, step %u: %s: %s", world, (int)modes[m],
                   k, cgr_status_name(status), cgr_group_last_error(group));
        const cgr_slot outs[2] = {s.sum, s.gathered};
        for (int o = 0; o < 2; ++o) {
          void *device = NULL;
          assert_cgr_ok(rt, cgr_output(rt, &ticket, outs[o], &device));
          assert_cgr_ok(rt, cgr_memcpy(rt, got, device, rows * GROUP_COLS * 4));
          if (memcmp(got, x, rows * GROUP_COLS * 4) != 0)
            fail_msg("world %d, mode %d, step %u: the %s differs from x", world,
                     (int)modes[m], k, o == 0 ? "all-reduce" : "all-gather");
        }
      }
    }
    cgr_group_destroy(group);
    /* The group borrowed it: the caller still owns it. */
    if (comm != NULL)
      cgr__nccl_comm_destroy(&comm, 1);
  }
}

/* The caller's communicators are checked before any NCCL call: a host
 * runtime is refused without reading them, and so are a NULL one and one
 * given with world_ranks or an id. */
static void test_group_refuses_bad_nccl_comms(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr_config runtime;
  cgr_test_config(&runtime);
  int not_a_comm = 0;
  void *comms[2] = {&not_a_comm, NULL};
  static const struct {
    int ranks, world_ranks;
    const char *id;
    const char *says;
  } cases[] = {
      {1, 0, NULL, "NCCL communicators need CUDA runtimes"},
      {2, 0, NULL, "config->nccl_comms[1] is NULL"},
      {1, 2, NULL, "the communicators say the ranks"},
      {1, 0, "host:/x", "the communicators say the ranks"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    cgr_group_config config;
    cgr_group_config_init(&config);
    config.runtime = &runtime;
    config.ranks = cases[i].ranks;
    config.world_ranks = cases[i].world_ranks;
    config.id = cases[i].id;
    config.nccl_comms = comms;
    cgr_group *group = NULL;
    assert_int_equal(cgr_group_create(&config, &group), CGR_E_INVALID_ARGUMENT);
    assert_null(group);
    expect_words(cgr_group_last_error(NULL), cases[i].says);
  }
}

static const struct CMUnitTest tests[] = {
    HOST_TEST(test_missing_library_is_unsupported_naming_its_path),
    HOST_TEST(test_library_without_nccl_is_refused_naming_the_symbol),
    HOST_TEST(test_installed_library_loads_and_reports_its_version),
    HOST_TEST(test_comm_create_refuses_bad_arguments),
    HOST_TEST(test_collective_refuses_what_nccl_has_no_value_for),
    RUNTIME_TEST(test_one_rank_collectives_run_on_the_runtime_stream),
    RUNTIME_TEST(test_one_rank_group_captures_and_replays),
    HOST_TEST(test_group_refuses_bad_nccl_comms),
};

CGR_TEST_MAIN(tests)
