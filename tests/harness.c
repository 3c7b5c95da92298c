#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

cgr_backend_kind cgr_test_backend = CGR_BACKEND_HOST;

static int backend_usable = 1;
static char backend_why[256] = "";
static int skipped;
static int filtered; /* --test given: this run is one test */

static void usage(const char *program) {
  fprintf(stderr, "usage: %s [--backend host|cuda] [--test NAME]\n", program);
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
  int failed = _cmocka_run_group_tests(group, tests, count, NULL, NULL);
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
