/*
 * The shared test harness: every test binary's main, backend selection,
 * runtime fixtures, and assertions that print cgr's own error text.
 *
 * A binary runs its tests on one backend, chosen by `--backend host|cuda`
 * (CTest registers each test once per backend, or only for the host when
 * its registration says HOST_TEST or HOST_RUNTIME_TEST). On `cuda` without
 * a usable device, tests call skip() and the binary exits 77, which CTest
 * reports as skipped, never as passed.
 *
 * A test binary runs from its build tree or from a copy of it elsewhere
 * (a bare GPU machine): what it needs at run time it finds through
 * cgr_test_build_path(), cgr_test_source_path() and cgr_test_python(),
 * never through an absolute path fixed at compile time.
 *
 * Environment:
 *   CGR_TEST_BUILD_DIR   the build tree (default: the folder above the
 *                        test binary's own, as binaries live in <build>/tests)
 *   CGR_TEST_SOURCE_DIR  the source tree (default: the configured one)
 *   CGR_TEST_PYTHON      a Python 3 for scripts (default: the configured one)
 *   CGR_TEST_FORCE_SKIP  a test name: that test skips instead of running, so
 *                        `--test NAME` exits 77; for rehearsing how a runner
 *                        treats a skip (a skipped `.cuda` test must fail it)
 */
#ifndef CGR_TESTS_HARNESS_H
#define CGR_TESTS_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cgr/cgr.h"
#include "runtime/runtime.h"

/* The backend this run tests: CGR_BACKEND_HOST or CGR_BACKEND_CUDA. */
extern cgr_backend_kind cgr_test_backend;

/* Parses the arguments, runs the group, and maps "everything skipped" to
 * exit code 77. The test named by $CGR_TEST_FORCE_SKIP, if any, is reported
 * skipped without running (its setup and teardown too). */
int cgr_test_main(int argc, char **argv, const char *group,
                  const struct CMUnitTest *tests, size_t count);

#define CGR_TEST_MAIN(tests)                                                   \
  int main(int argc, char **argv) {                                            \
    return cgr_test_main(argc, argv, __FILE__, (tests),                        \
                         sizeof(tests) / sizeof((tests)[0]));                  \
  }

/* A config for the backend under test, with validation on. */
void cgr_test_config(cgr_config *config);

/* Prints why and skips the current test; counted, so a run whose only test
 * skipped exits 77 (CTest: skipped), never 0 (passed). */
void cgr_test_skip(const char *why);

/* skip() unless the backend under test is usable (CUDA with no device). */
void cgr_test_require_backend(void);

/* skip() unless the backend under test is the host backend: for tests of
 * host-backend behavior (fault injection, forced interleavings). Register
 * such a test with HOST_TEST or HOST_RUNTIME_TEST so that it is never a
 * CUDA test that always skips; the call stays in the test as a guard for
 * a manual `--backend cuda --test NAME`. */
void cgr_test_require_host(void);

/* `relative` under the build tree ($CGR_TEST_BUILD_DIR, else the folder
 * above the one holding this test binary, found through /proc/self/exe),
 * written to out (size bytes); returns out. Fails the test when the path
 * does not fit or the binary's location cannot be read. */
const char *cgr_test_build_path(char *out, size_t size, const char *relative);

/* `relative` under the source tree ($CGR_TEST_SOURCE_DIR, else the source
 * tree CMake configured), written to out (size bytes); returns out. Fails
 * the test when the path does not fit. */
const char *cgr_test_source_path(char *out, size_t size, const char *relative);

/* The Python 3 interpreter for scripts: $CGR_TEST_PYTHON, else the one
 * CMake found at configure time (one with matplotlib where it could);
 * NULL when neither names one. Static storage or the environment's. */
const char *cgr_test_python(void);

/* Fixture: a fresh runtime on the backend under test in *state, or NULL
 * when that backend is unusable (cmocka cannot skip from a setup). */
int cgr_test_setup_runtime(void **state);
int cgr_test_teardown_runtime(void **state);

/* The fixture's runtime; skips the test when the backend is unusable. Every
 * RUNTIME_TEST starts with it. */
cgr_runtime *cgr_test_runtime(void **state);

/* A cmocka test that gets a fresh runtime in *state. */
#define RUNTIME_TEST(name)                                                     \
  cmocka_unit_test_setup_teardown(name, cgr_test_setup_runtime,                \
                                  cgr_test_teardown_runtime)

/* Host-only tests (they call cgr_test_require_host()): cgr_add_test_binary
 * registers a test whose registration starts with HOST_ only as
 * `NAME.TEST.host`, never as a `.cuda` test that could only skip. */
#define HOST_TEST(name) cmocka_unit_test(name)
#define HOST_RUNTIME_TEST(name) RUNTIME_TEST(name)

/* The runtime's backend table, main and side streams (tests reach inside). */
#define TEST_BE(rt) (&(rt)->backend)
#define TEST_MAIN(rt) ((rt)->streams[CGR_STREAM_MAIN])
#define TEST_SIDE(rt) ((rt)->streams[CGR_STREAM_SIDE])

/* Fails the test with cgr_last_error(rt) when expr is not CGR_OK. */
#define assert_cgr_ok(rt, expr)                                                \
  do {                                                                         \
    cgr_status cgr_test_status_ = (expr);                                      \
    if (cgr_test_status_ != CGR_OK)                                            \
      fail_msg("%s returned %s: %s", #expr, cgr_status_name(cgr_test_status_), \
               cgr_last_error(rt));                                            \
  } while (0)

/* Fails unless expr returns `want`; prints the message either way it is
 * wrong. */
#define assert_cgr_status(rt, expr, want)                                      \
  do {                                                                         \
    cgr_status cgr_test_status_ = (expr);                                      \
    if (cgr_test_status_ != (want))                                            \
      fail_msg("%s returned %s, expected %s (last error: %s)", #expr,          \
               cgr_status_name(cgr_test_status_), cgr_status_name(want),       \
               cgr_last_error(rt));                                            \
  } while (0)

/* Fails unless cgr_last_error(rt) contains `needle`. */
#define assert_last_error_contains(rt, needle)                                 \
  do {                                                                         \
    const char *cgr_test_message_ = cgr_last_error(rt);                        \
    if (strstr(cgr_test_message_, (needle)) == NULL)                           \
      fail_msg("last error \"%s\" does not mention \"%s\"", cgr_test_message_, \
               (needle));                                                      \
  } while (0)

/* xorshift64*: fast, seeded, reproducible test data. */
uint64_t test_random(uint64_t *state);
/* Uniform in [0, bound) (0 when bound is 0). */
uint64_t test_random_below(uint64_t *state, uint64_t bound);

/* A one-shot gate a host function can block on, with a timeout so a broken
 * ordering fails the test instead of hanging it. */
typedef struct test_gate {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int open;
} test_gate;

void test_gate_init(test_gate *gate);
void test_gate_fini(test_gate *gate);
void test_gate_open(test_gate *gate);
/* The smallest of `count` ascending buckets that holds batch b (the test
 * fails when none does). */
uint32_t test_bucket_of(const uint32_t *buckets, size_t count, uint32_t b);
/* Milliseconds on the monotonic clock, for tests that time a wait. */
double test_now_ms(void);

/* 1 when the gate opened within timeout_ms, 0 on timeout. */
int test_gate_wait(test_gate *gate, int timeout_ms);
/* A host function (cgr__host_fn) that holds its stream until the gate
 * (user) opens, or 10 s pass: then the test that needed it fails. */
void test_gate_hold_stream(void *gate);

#endif /* CGR_TESTS_HARNESS_H */
