/* Groups across processes (cgr_group.h, "Across processes") on the host
 * backend, whose communicator then lives in shared memory: 2 and 4
 * processes equal one runtime in every mode, with feedback and lazy
 * capture; a rank with another bucket list or other collectives is
 * refused at capture in every process; in validation mode a batch size
 * that differs between processes is refused before any launch, and the
 * group goes on; a check that fails in one process breaks every process's
 * group at once; a rank that never comes makes create fail naming it; bad
 * configs are refused.
 *
 * Each test starts its ranks as child processes of this binary (fork, then
 * exec of itself with CGR_TEST_WORLD_CHILD naming the scenario: a child
 * never runs cmocka's runner, so a failed check ends it with a nonzero
 * status and its message on stderr), and waits for them. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "group_fixture.h"

static const uint32_t three_buckets[] = {1, 2, 4};

/* ---- the children -------------------------------------------------------- */

static int env_int(const char *name) {
  const char *value = getenv(name);
  return value != NULL ? atoi(value) : 0;
}

static void child_options(toy_options *options) {
  toy_options_init(options);
  options->ranks = 1;
  options->world_ranks = env_int("CGR_TEST_WORLD_RANKS");
  options->world_rank = env_int("CGR_TEST_WORLD_RANK");
  options->id = getenv("CGR_TEST_WORLD_ID");
  options->mode = (cgr_replay_mode)env_int("CGR_TEST_WORLD_MODE");
  options->feedback = env_int("CGR_TEST_WORLD_FEEDBACK");
  options->lazy = env_int("CGR_TEST_WORLD_LAZY");
  options->timeout_ms = 10000;
}

/* Fails the child with a message (its exit status says so). */
static int child_fail(const char *scenario, int rank, const char *what) {
  fprintf(stderr, "child %s, rank %d: %s\n", scenario, rank, what);
  return 1;
}

/* Captures, expecting `want` (or `also`) and `says` in the message. */
static int child_capture(const char *scenario, const toy_options *options,
                         toy_faults *faults, cgr_status want, cgr_status also,
                         const char *says) {
  toy_slots slots;
  cgr_group *group = toy_group(options, &slots);
  cgr_status status = cgr_group_capture(group, toy_step, faults);
  char message[1024];
  snprintf(message, sizeof message, "cgr_group_capture: %s: %s",
           cgr_status_name(status), cgr_group_last_error(group));
  cgr_group_destroy(group);
  if ((status != want && status != also) ||
      (says != NULL && strstr(message, says) == NULL))
    return child_fail(scenario, options->world_rank, message);
  return 0;
}

/* Rank 1 asks for 3 rows where the others ask for 2, then for 2 tokens
 * per request where the others ask for 1: every process's replay refuses
 * both, nothing runs; then a step of 2 rows everywhere runs. */
static int child_batch(const toy_options *given) {
  static const uint32_t tokens[] = {1, 2};
  toy_options copy = *given;
  copy.tokens = tokens;
  copy.token_count = 2;
  const toy_options *options = &copy;
  toy_slots slots;
  cgr_group *group = toy_group(options, &slots);
  cgr_status status = cgr_group_capture(group, toy_step, NULL);
  if (status != CGR_OK)
    return child_fail("batch", options->world_rank,
                      cgr_group_last_error(group));
  cgr_runtime *single = toy_single(options, &slots);
  uint64_t random = 7;
  toy_inputs in;
  toy_make_inputs(&in, options->world_rank == 1 ? 3 : 2, 0, &random);
  cgr_batch *batches[CGR_GROUP_MAX_RANKS] = {NULL};
  status = cgr_group_batch_begin(group, in.batch, batches);
  if (status == CGR_OK) {
    toy_fill(cgr_group_runtime(group, 0), batches[0], &slots, &in);
    cgr_ticket ticket;
    status = cgr_group_replay(group, batches, &ticket);
  }
  char message[1024];
  snprintf(message, sizeof message, "%s: %s", cgr_status_name(status),
           cgr_group_last_error(group));
  int failed = 0;
  if (status != CGR_E_INVALID_ARGUMENT ||
      strstr(message, "a step has one batch size on every rank") == NULL)
    failed = child_fail("batch", options->world_rank, message);
  toy_make_inputs(&in, 2, 0, &random);
  status = cgr_group_batch_begin_key(group, 2, options->world_rank == 1 ? 2 : 1,
                                     0, batches);
  if (status == CGR_OK) {
    toy_fill(cgr_group_runtime(group, 0), batches[0], &slots, &in);
    cgr_ticket ticket;
    status = cgr_group_replay(group, batches, &ticket);
  }
  snprintf(message, sizeof message, "%s: %s", cgr_status_name(status),
           cgr_group_last_error(group));
  if (!failed && (status != CGR_E_INVALID_ARGUMENT ||
                  strstr(message, "a step has one key on every rank") == NULL))
    failed = child_fail("batch", options->world_rank, message);
  /* The group is not broken: the next, agreed step (the same inputs in
   * every process) runs and is right. */
  random = 9;
  toy_make_inputs(&in, 2, 0, &random);
  if (!failed)
    (void)toy_step_both(group, &slots, single, &slots, &in);
  cgr_group_destroy(group);
  cgr_runtime_destroy(single);
  return failed;
}

/* Rank 1 cannot allocate the buffer of the check before the capture (an
 * injected failure): it breaks its group and aborts the communicator, so
 * the other ranks' check ends at once (well within timeout_ms), every
 * group is broken, and rank 1's failure names its cause. */
static int child_gather_fails(const toy_options *options) {
  int rank = options->world_rank;
  if (rank == 1)
    setenv("CGR_FAULT", "DEVICE_ALLOC@cgr_device_alloc:1", 1);
  toy_slots slots;
  cgr_group *group = toy_group(options, &slots);
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  cgr_status status = cgr_group_capture(group, toy_step, NULL);
  clock_gettime(CLOCK_MONOTONIC, &end);
  char message[1024];
  snprintf(message, sizeof message, "%s: %s", cgr_status_name(status),
           cgr_group_last_error(group));
  int failed = 0;
  if (status == CGR_OK || (rank == 1 && strstr(message, "allocating") == NULL))
    failed = child_fail("gather_fails", rank, message);
  if (!failed && end.tv_sec - start.tv_sec > 5)
    failed = child_fail("gather_fails", rank, "the failure took over 5 s");
  if (!failed &&
      cgr_group_set_replay_mode(group, CGR_REPLAY_NAIVE) != CGR_E_INVALID_STATE)
    failed = child_fail("gather_fails", rank, "the group is not broken");
  cgr_group_destroy(group);
  return failed;
}

static int child_main(const char *scenario) {
  cgr_test_backend = CGR_BACKEND_HOST;
  toy_options options;
  child_options(&options);
  int rank = options.world_rank;
  if (strcmp(scenario, "equal") == 0) {
    toy_equivalence(&options, env_int("CGR_TEST_WORLD_STEPS"), 8,
                    (uint64_t)env_int("CGR_TEST_WORLD_SEED"));
    return 0;
  }
  if (strcmp(scenario, "buckets") == 0) {
    if (rank == 1) {
      options.buckets = three_buckets;
      options.bucket_count = 3;
    }
    return child_capture(scenario, &options, NULL, CGR_E_CAPTURE, CGR_E_CAPTURE,
                         "another bucket list");
  }
  if (strcmp(scenario, "keys") == 0) {
    /* The same buckets, but rank 1's second tokens value is another: the
     * key at each index differs, as another bucket list's would. */
    static const uint32_t mine[] = {1, 2}, other[] = {1, 3};
    options.tokens = rank == 1 ? other : mine;
    options.token_count = 2;
    return child_capture(scenario, &options, NULL, CGR_E_CAPTURE, CGR_E_CAPTURE,
                         "another tokens-per-request list");
  }
  if (strcmp(scenario, "collectives") == 0) {
    /* Rank 1 skips its all-gather: its broadcast meets the others'
     * all-gather, which the communicator refuses at once (in the warm-up,
     * or in the comparison after the capture). */
    toy_faults faults;
    toy_faults_init(&faults);
    faults.omit_rank = 1;
    return child_capture(scenario, &options, &faults, CGR_E_TIMEOUT,
                         CGR_E_CAPTURE, "rank 1");
  }
  if (strcmp(scenario, "batch") == 0)
    return child_batch(&options);
  if (strcmp(scenario, "gather_fails") == 0)
    return child_gather_fails(&options);
  if (strcmp(scenario, "alone") == 0) {
    cgr_config runtime;
    cgr_test_config(&runtime);
    cgr_group_config config;
    cgr_group_config_init(&config);
    config.ranks = 1;
    config.runtime = &runtime;
    config.world_ranks = 2;
    config.world_rank = 0;
    config.id = options.id;
    config.timeout_ms = 300;
    cgr_group *group = NULL;
    cgr_status status = cgr_group_create(&config, &group);
    if (status != CGR_E_TIMEOUT ||
        strstr(cgr_group_last_error(NULL), "rank 1 did not join") == NULL)
      return child_fail(scenario, rank, cgr_group_last_error(NULL));
    return group == NULL ? 0 : child_fail(scenario, rank, "a group came back");
  }
  return child_fail(scenario, rank, "no such scenario");
}

/* ---- the parent ---------------------------------------------------------- */

typedef struct world_run {
  const char *scenario;
  int ranks; /* processes started */
  int world; /* the group's ranks */
  cgr_replay_mode mode;
  int feedback, lazy;
  long steps;
} world_run;

/* Starts run->ranks children with a new id and waits for them (at most
 * 60 s: then they are killed); fails naming the first that failed. */
static void run_world(const world_run *run) {
  char id[CGR_GROUP_ID_MAX];
  if (cgr_group_id_create(CGR_BACKEND_HOST, id, sizeof id) != CGR_OK)
    fail_msg("cgr_group_id_create: %s", cgr_group_last_error(NULL));
  assert_int_equal(strncmp(id, "host:/cgr-", 10), 0);
  pid_t pids[CGR_GROUP_MAX_RANKS];
  for (int r = 0; r < run->ranks; ++r) {
    char values[6][64];
    snprintf(values[0], sizeof values[0], "%d", run->world);
    snprintf(values[1], sizeof values[1], "%d", r);
    snprintf(values[2], sizeof values[2], "%d", (int)run->mode);
    snprintf(values[3], sizeof values[3], "%d", run->feedback);
    snprintf(values[4], sizeof values[4], "%d", run->lazy);
    snprintf(values[5], sizeof values[5], "%ld", run->steps);
    fflush(NULL);
    pids[r] = fork();
    assert_true(pids[r] >= 0);
    if (pids[r] == 0) {
      setenv("CGR_TEST_WORLD_CHILD", run->scenario, 1);
      setenv("CGR_TEST_WORLD_ID", id, 1);
      setenv("CGR_TEST_WORLD_RANKS", values[0], 1);
      setenv("CGR_TEST_WORLD_RANK", values[1], 1);
      setenv("CGR_TEST_WORLD_MODE", values[2], 1);
      setenv("CGR_TEST_WORLD_FEEDBACK", values[3], 1);
      setenv("CGR_TEST_WORLD_LAZY", values[4], 1);
      setenv("CGR_TEST_WORLD_STEPS", values[5], 1);
      setenv("CGR_TEST_WORLD_SEED", "11", 1);
      char self[] = "/proc/self/exe";
      char *argv[] = {self, NULL};
      execv(self, argv);
      _exit(126);
    }
  }
  int failed = -1, code = 0;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (int left = run->ranks; left > 0;) {
    int status = 0;
    pid_t done = waitpid(-1, &status, WNOHANG);
    if (done == 0) {
      struct timespec now, pause = {0, 5000000};
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec - start.tv_sec > 60) {
        for (int r = 0; r < run->ranks; ++r)
          kill(pids[r], SIGKILL);
      }
      nanosleep(&pause, NULL);
      continue;
    }
    assert_true(done > 0);
    --left;
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    for (int r = 0; r < run->ranks; ++r)
      if (pids[r] == done && !ok && failed < 0) {
        failed = r;
        code = status;
      }
  }
  if (failed >= 0)
    fail_msg("scenario %s: rank %d's process ended with status %d (its "
             "message is above)",
             run->scenario, failed, code);
}

static void test_world_processes_equal_one_runtime(void **state) {
  (void)state;
  cgr_test_require_host();
  static const cgr_replay_mode modes[] = {CGR_REPLAY_DOUBLE_BUFFERED,
                                          CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED,
                                          CGR_REPLAY_IN_GRAPH,
                                          CGR_REPLAY_EAGER};
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; ++m) {
    world_run run = {"equal", 2, 2, modes[m], 0, 0, 60};
    run_world(&run);
  }
  world_run four = {"equal", 4, 4, CGR_REPLAY_DOUBLE_BUFFERED, 1, 0, 100};
  run_world(&four);
  world_run lazy = {"equal", 2, 2, CGR_REPLAY_FUSED, 1, 1, 100};
  run_world(&lazy);
}

static void test_world_capture_with_other_buckets_is_refused(void **state) {
  (void)state;
  cgr_test_require_host();
  world_run run = {"buckets", 3, 3, CGR_REPLAY_DOUBLE_BUFFERED, 0, 0, 0};
  run_world(&run);
}

static void test_world_capture_with_other_keys_is_refused(void **state) {
  (void)state;
  cgr_test_require_host();
  world_run run = {"keys", 2, 2, CGR_REPLAY_DOUBLE_BUFFERED, 0, 0, 0};
  run_world(&run);
}

static void test_world_capture_with_other_collectives_is_refused(void **state) {
  (void)state;
  cgr_test_require_host();
  world_run run = {"collectives", 2, 2, CGR_REPLAY_DOUBLE_BUFFERED, 0, 0, 0};
  run_world(&run);
}

static void test_world_batch_sizes_that_differ_are_refused(void **state) {
  (void)state;
  cgr_test_require_host();
  world_run run = {"batch", 2, 2, CGR_REPLAY_DOUBLE_BUFFERED, 0, 0, 0};
  run_world(&run);
}

static void test_world_check_that_fails_breaks_every_rank(void **state) {
  (void)state;
  cgr_test_require_host();
  world_run run = {"gather_fails", 3, 3, CGR_REPLAY_DOUBLE_BUFFERED, 0, 0, 0};
  run_world(&run);
}

static void test_world_rank_that_never_joins_is_named(void **state) {
  (void)state;
  cgr_test_require_host();
  world_run run = {"alone", 1, 2, CGR_REPLAY_DOUBLE_BUFFERED, 0, 0, 0};
  run_world(&run);
}

static void test_world_config_is_checked(void **state) {
  (void)state;
  cgr_test_require_host();
  cgr_config runtime;
  cgr_test_config(&runtime);
  char id[CGR_GROUP_ID_MAX];
  assert_int_equal(cgr_group_id_create(CGR_BACKEND_HOST, id, 8),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_group_id_create((cgr_backend_kind)9, id, sizeof id),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_group_id_create(CGR_BACKEND_HOST, id, sizeof id),
                   CGR_OK);
  static const struct {
    int ranks, world_ranks, world_rank;
    const char *id;
    const char *says;
  } cases[] = {
      {2, 2, 0, "host:/x", "a process of a group across processes holds one"},
      {1, 2, 2, "host:/x", "config->world_rank is 2; it must be 0 to 1"},
      {1, 2, -1, "host:/x", "config->world_rank is -1"},
      {1, 9, 0, "host:/x", "config->world_ranks is 9"},
      {1, 2, 0, NULL, "config->id is NULL"},
      {1, 2, 0, "", "config->id is empty"},
      {1, 2, 0, "nccl:00ff", "is not one of the host backend"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    cgr_group_config config;
    cgr_group_config_init(&config);
    config.runtime = &runtime;
    config.ranks = cases[i].ranks;
    config.world_ranks = cases[i].world_ranks;
    config.world_rank = cases[i].world_rank;
    config.id = cases[i].id;
    config.timeout_ms = 200;
    cgr_group *group = (cgr_group *)&config;
    cgr_status status = cgr_group_create(&config, &group);
    assert_int_equal(status, CGR_E_INVALID_ARGUMENT);
    assert_null(group);
    if (strstr(cgr_group_last_error(NULL), cases[i].says) == NULL)
      fail_msg("case %zu: \"%s\" does not say \"%s\"", i,
               cgr_group_last_error(NULL), cases[i].says);
  }
}

int main(int argc, char **argv) {
  const char *scenario = getenv("CGR_TEST_WORLD_CHILD");
  if (scenario != NULL)
    return child_main(scenario);
  const struct CMUnitTest tests[] = {
      HOST_TEST(test_world_config_is_checked),
      HOST_TEST(test_world_processes_equal_one_runtime),
      HOST_TEST(test_world_capture_with_other_buckets_is_refused),
      HOST_TEST(test_world_capture_with_other_keys_is_refused),
      HOST_TEST(test_world_capture_with_other_collectives_is_refused),
      HOST_TEST(test_world_batch_sizes_that_differ_are_refused),
      HOST_TEST(test_world_check_that_fails_breaks_every_rank),
      HOST_TEST(test_world_rank_that_never_joins_is_named),
  };
  return cgr_test_main(argc, argv, __FILE__, tests,
                       sizeof tests / sizeof tests[0]);
}
