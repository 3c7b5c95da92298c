#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Set by CMake for the build tree; the environment overrides them where the
 * binaries run from a copy. */
#ifndef CGR_TEST_DEFAULT_SOURCE_DIR
#error "CGR_TEST_DEFAULT_SOURCE_DIR must name the source tree"
#endif
#ifndef CGR_TEST_DEFAULT_PYTHON
#define CGR_TEST_DEFAULT_PYTHON "" /* CMake found no Python 3 */
#endif

cgr_backend_kind cgr_test_backend = CGR_BACKEND_HOST;

static int backend_usable = 1;
static char backend_why[256] = "";
static int skipped;
static int filtered; /* --test given: this run is one test */

static void usage(const char *program) {
  fprintf(stderr, "usage: %s [--backend host|cuda] [--test NAME]\n", program);
}

/* Stands in for the test named by CGR_TEST_FORCE_SKIP: a skip counted like
 * any other, so `--test NAME` exits 77. */
static void forced_skip(void **state) {
  (void)state;
  char why[256];
  snprintf(why, sizeof why, "by CGR_TEST_FORCE_SKIP=%s",
           getenv("CGR_TEST_FORCE_SKIP"));
  cgr_test_skip(why);
}

/* The group to run: `tests`, or a copy (in *copy, to free) in which the
 * test named by CGR_TEST_FORCE_SKIP only skips. NULL when out of memory. */
static const struct CMUnitTest *with_forced_skip(const struct CMUnitTest *tests,
                                                 size_t count,
                                                 struct CMUnitTest **copy) {
  *copy = NULL;
  const char *name = getenv("CGR_TEST_FORCE_SKIP");
  if (name == NULL || name[0] == '\0')
    return tests;
  *copy = malloc(count * sizeof **copy);
  if (*copy == NULL)
    return NULL;
  memcpy(*copy, tests, count * sizeof **copy);
  for (size_t i = 0; i < count; ++i) {
    if (strcmp((*copy)[i].name, name) != 0)
      continue;
    (*copy)[i].test_func = forced_skip;
    (*copy)[i].setup_func = NULL;
    (*copy)[i].teardown_func = NULL;
  }
  return *copy;
}

int cgr_test_main(int argc, char **argv, const char *group,
                  const struct CMUnitTest *tests, size_t count) {
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
      const char *name = argv[++i];
      if (strcmp(name, "host") == 0) {
        cgr_test_backend = CGR_BACKEND_HOST;
      } else if (strcmp(name, "cuda") == 0) {
        cgr_test_backend = CGR_BACKEND_CUDA;
      } else {
        usage(argv[0]);
        return 2;
      }
    } else if (strcmp(argv[i], "--test") == 0 && i + 1 < argc) {
      cmocka_set_test_filter(argv[++i]);
      filtered = 1;
    } else {
      usage(argv[0]);
      return 2;
    }
  }
  if (cgr_test_backend == CGR_BACKEND_CUDA) {
    backend_usable =
        cgr__cuda_probe(0, backend_why, sizeof backend_why) == CGR_OK;
    printf("backend: cuda (%s)\n", backend_usable ? backend_why : "unusable");
    if (!backend_usable)
      printf("skipping CUDA tests: %s\n", backend_why);
  } else {
    printf("backend: host\n");
  }
  struct CMUnitTest *copy = NULL;
  const struct CMUnitTest *run = with_forced_skip(tests, count, &copy);
  if (run == NULL) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  int failed = _cmocka_run_group_tests(group, run, count, NULL, NULL);
  free(copy);
  if (failed != 0)
    return 1;
  /* Nothing ran but skips: tell CTest so, never report a pass. */
  if (skipped > 0 && (filtered || !backend_usable))
    return 77;
  return 0;
}

void cgr_test_config(cgr_config *config) {
  cgr_config_init(config);
  config->backend = cgr_test_backend;
  config->validate = 1;
}

void cgr_test_skip(const char *why) {
  printf("skipped: %s\n", why);
  skipped++;
  skip();
}

void cgr_test_require_backend(void) {
  if (!backend_usable)
    cgr_test_skip(backend_why);
}

void cgr_test_require_host(void) {
  if (cgr_test_backend != CGR_BACKEND_HOST)
    cgr_test_skip("this test forces host-backend behavior");
}

/* root + "/" + relative into out, or the test fails. */
static const char *join_path(char *out, size_t size, const char *root,
                             const char *relative) {
  int length = snprintf(out, size, "%s/%s", root, relative);
  if (length < 0 || (size_t)length >= size)
    fail_msg("the path %s/%s does not fit in %zu bytes", root, relative, size);
  return out;
}

const char *cgr_test_build_path(char *out, size_t size, const char *relative) {
  const char *root = getenv("CGR_TEST_BUILD_DIR");
  if (root != NULL && root[0] != '\0')
    return join_path(out, size, root, relative);
  /* <build>/tests/test_NAME: the build tree is two levels up. */
  char exe[PATH_MAX];
  ssize_t length = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (length <= 0)
    fail_msg("cannot read /proc/self/exe (%s): set CGR_TEST_BUILD_DIR",
             strerror(errno));
  exe[length] = '\0';
  for (int level = 0; level < 2; ++level) {
    char *slash = strrchr(exe, '/');
    if (slash == NULL || slash == exe)
      fail_msg("no build tree above %s: set CGR_TEST_BUILD_DIR", exe);
    *slash = '\0';
  }
  return join_path(out, size, exe, relative);
}

const char *cgr_test_source_path(char *out, size_t size, const char *relative) {
  const char *root = getenv("CGR_TEST_SOURCE_DIR");
  if (root == NULL || root[0] == '\0')
    root = CGR_TEST_DEFAULT_SOURCE_DIR;
  return join_path(out, size, root, relative);
}

const char *cgr_test_python(void) {
  const char *python = getenv("CGR_TEST_PYTHON");
  if (python == NULL || python[0] == '\0')
    python = CGR_TEST_DEFAULT_PYTHON;
  return python[0] != '\0' ? python : NULL;
}

int cgr_test_setup_runtime(void **state) {
  *state = NULL;
  if (!backend_usable)
    return 0;
  cgr_config config;
  cgr_test_config(&config);
  cgr_runtime *rt = NULL;
  cgr_status status = cgr_runtime_create(&config, &rt);
  if (status != CGR_OK) {
    fprintf(stderr, "cgr_runtime_create: %s: %s\n", cgr_status_name(status),
            cgr_last_error(NULL));
    return -1;
  }
  *state = rt;
  return 0;
}

cgr_runtime *cgr_test_runtime(void **state) {
  cgr_test_require_backend();
  if (*state == NULL)
    fail_msg("the runtime fixture is missing");
  return *state;
}

int cgr_test_teardown_runtime(void **state) {
  cgr_runtime_destroy(*state);
  *state = NULL;
  return 0;
}

void test_gate_init(test_gate *gate) {
  pthread_mutex_init(&gate->lock, NULL);
  pthread_cond_init(&gate->cond, NULL);
  gate->open = 0;
}

void test_gate_fini(test_gate *gate) {
  pthread_cond_destroy(&gate->cond);
  pthread_mutex_destroy(&gate->lock);
}

void test_gate_open(test_gate *gate) {
  pthread_mutex_lock(&gate->lock);
  gate->open = 1;
  pthread_cond_broadcast(&gate->cond);
  pthread_mutex_unlock(&gate->lock);
}

double test_now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int test_gate_wait(test_gate *gate, int timeout_ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&gate->lock);
  int error = 0;
  while (!gate->open && error != ETIMEDOUT)
    error = pthread_cond_timedwait(&gate->cond, &gate->lock, &deadline);
  int open = gate->open;
  pthread_mutex_unlock(&gate->lock);
  return open;
}

void test_gate_hold_stream(void *gate) { (void)test_gate_wait(gate, 10000); }

uint64_t test_random(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * UINT64_C(2685821657736338717);
}

uint64_t test_random_below(uint64_t *state, uint64_t bound) {
  return bound == 0 ? 0 : test_random(state) % bound;
}

uint32_t test_bucket_of(const uint32_t *buckets, size_t count, uint32_t b) {
  for (size_t i = 0; i < count; ++i)
    if (buckets[i] >= b)
      return buckets[i];
  fail_msg("batch %u has no bucket", b);
  return 0;
}
