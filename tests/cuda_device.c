/*
 * CUDA rules that need a device, modelled on the host backend where that
 * is cheap:
 *
 * - A launch's status is the launch's own. The example model's launchers
 *   (examples/decode/kernels.cu, compiled into this test) run in this
 *   program's CUDA runtime, so an error the program left behind there
 *   must neither fail the launch nor be taken from the program.
 *   cgr's own launchers run in cgr's private CUDA runtime (libcgr carries
 *   its own, see CMakeLists.txt's prelink), where this program's errors
 *   never show: the check on them guards that separation.
 * - A device the build has no code for is refused at create, naming its
 *   compute capability and the build's architectures; AUTO then falls
 *   back to the host backend saying so.
 */
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "harness.h"
#include "kernels.h"
#include "kernels/basic.h"
#include "runtime/backend.h"
#include "runtime/cuda/cuda_errors.h"
#include "runtime/cuda/device_code.h"

enum { ROWS = 3, HIDDEN = 40, VOCAB = 5 };

/* The error leave_an_error_behind left. */
static cudaError_t left_behind = cudaSuccess;

/* Leaves an error behind in this program's CUDA runtime (CUDA only): an
 * allocation no device can satisfy (cudaErrorMemoryAllocation), an error
 * that is not sticky. */
static void leave_an_error_behind(void) {
  if (cgr_test_backend != CGR_BACKEND_CUDA)
    return;
  void *huge = NULL;
  left_behind = cudaMalloc(&huge, (size_t)1 << 62);
  assert_int_not_equal(left_behind, cudaSuccess);
  assert_null(huge);
  if (cgr__cuda_error_is_sticky((int)left_behind))
    fail_msg("cudaMalloc left a sticky error: %s",
             cudaGetErrorName(left_behind));
}

/* The error is still there for the program to find, once (CUDA only). */
static void error_is_still_behind(void) {
  if (cgr_test_backend != CGR_BACKEND_CUDA)
    return;
  cudaError_t found = cudaGetLastError();
  if (found != left_behind)
    fail_msg("the program's last CUDA error is %s, not the %s it left",
             cudaGetErrorName(found), cudaGetErrorName(left_behind));
  assert_int_equal(cudaGetLastError(), cudaSuccess);
}

static void test_launch_status_is_the_launchs_own(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cgr__backend *be = TEST_BE(rt);
  int32_t ids[ROWS] = {4, 0, 2};
  float table[VOCAB * HIDDEN];
  for (int i = 0; i < VOCAB * HIDDEN; ++i)
    table[i] = (float)i;
  int32_t *device_ids = NULL;
  float *device_table = NULL;
  float *device_h = NULL;
  assert_cgr_ok(rt, cgr__be_device_alloc(be, sizeof ids, (void **)&device_ids));
  assert_cgr_ok(rt,
                cgr__be_device_alloc(be, sizeof table, (void **)&device_table));
  assert_cgr_ok(rt, cgr__be_device_alloc(be, ROWS * HIDDEN * sizeof(float),
                                         (void **)&device_h));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), device_ids, ids,
                                         sizeof ids));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), device_table, table,
                                         sizeof table));

  /* On every backend, a failed call of cgr's own comes first: a later
   * launch does not report it. */
  assert_cgr_status(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), NULL, ids, 4),
                    CGR_E_INVALID_ARGUMENT);
  leave_an_error_behind();
  dec_embed_args embed = {.ids = device_ids,
                          .table = device_table,
                          .h = device_h,
                          .rows = ROWS,
                          .hidden = HIDDEN,
                          .vocab = VOCAB};
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt), &dec_kernel_embed,
                                          &embed));
  error_is_still_behind();

  /* cgr's own kernel, in cgr's own runtime. */
  leave_an_error_behind();
  cgr__arange_i32_args arange = {device_ids, ROWS, 7, 0};
  assert_cgr_ok(rt, cgr__be_kernel_launch(be, TEST_MAIN(rt),
                                          &cgr__kernel_arange_i32, &arange));
  error_is_still_behind();

  float h[ROWS * HIDDEN];
  int32_t after[ROWS];
  assert_cgr_ok(rt,
                cgr__be_memcpy_async(be, TEST_MAIN(rt), h, device_h, sizeof h));
  assert_cgr_ok(rt, cgr__be_memcpy_async(be, TEST_MAIN(rt), after, device_ids,
                                         sizeof after));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(be, TEST_MAIN(rt)));
  for (int r = 0; r < ROWS; ++r) {
    for (int c = 0; c < HIDDEN; ++c)
      assert_true(h[r * HIDDEN + c] == table[ids[r] * HIDDEN + c]);
    assert_int_equal(after[r], 7);
  }
  cgr__be_device_free(be, device_ids);
  cgr__be_device_free(be, device_table);
  cgr__be_device_free(be, device_h);
}

/* Creates a runtime on `backend` with CGR_BACKEND unset for the call, so
 * the config decides. */
static cgr_status create_on(cgr_backend_kind backend, cgr_runtime **out) {
  const char *env = getenv("CGR_BACKEND");
  char *saved = env != NULL ? strdup(env) : NULL;
  unsetenv("CGR_BACKEND");
  cgr_config config;
  cgr_test_config(&config);
  config.backend = backend;
  cgr_status status = cgr_runtime_create(&config, out);
  if (saved != NULL) {
    setenv("CGR_BACKEND", saved, 1);
    free(saved);
  }
  return status;
}

/* No device has compute capability 1.0: code for it runs nowhere. */
#define NO_DEVICE_RUNS "10-real"

static void test_device_without_code_is_refused_at_create(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  char cuda_why[256] = "";
  int cuda_usable = cgr__cuda_probe(0, cuda_why, sizeof cuda_why) == CGR_OK;
  char capability[32] = "";
  if (cuda_usable && cgr_test_backend == CGR_BACKEND_CUDA) {
    cgr_device_info info;
    assert_cgr_ok(rt, cgr_device_info_get(rt, &info));
    snprintf(capability, sizeof capability, "compute capability %d.%d",
             info.compute_major, info.compute_minor);
    /* The build has code for the device the fixture runs on, and CUDA
     * agrees (the check create makes once the context exists). */
    assert_int_equal(cgr__cuda_code_fits(cgr__cuda_architectures(),
                                         info.compute_major,
                                         info.compute_minor),
                     1);
    assert_int_equal(cgr__cuda_code_check(), cudaSuccess);
  }

  cgr__cuda_set_architectures_for_test(NO_DEVICE_RUNS);
  cgr_runtime *refused = NULL;
  cgr_status status = create_on(CGR_BACKEND_CUDA, &refused);
  char message[512];
  snprintf(message, sizeof message, "%s", cgr_last_error(NULL));
  cgr_runtime *fallback = NULL;
  cgr_status auto_status = create_on(CGR_BACKEND_AUTO, &fallback);
  cgr__cuda_set_architectures_for_test(NULL);

  assert_int_equal(status, CGR_E_NO_DEVICE);
  assert_null(refused);
  assert_cgr_ok(NULL, auto_status);
  assert_int_equal(cgr_backend(fallback), CGR_BACKEND_HOST);
  const char *reason = cgr_backend_reason(fallback);
  if (cuda_usable) {
    /* A device is there: refused for its code, by its capability. */
    const char *texts[] = {message, reason};
    for (int i = 0; i < 2; ++i) {
      if (strstr(texts[i], NO_DEVICE_RUNS) == NULL ||
          strstr(texts[i], "compute capability") == NULL ||
          (capability[0] != '\0' && strstr(texts[i], capability) == NULL))
        fail_msg("\"%s\" does not name the device's compute capability "
                 "(%s) and the build's architectures (%s)",
                 texts[i], capability, NO_DEVICE_RUNS);
    }
  } else {
    printf("no usable CUDA device (%s): the refusal comes earlier\n", cuda_why);
  }
  cgr_runtime_destroy(fallback);

  /* The real list again: the device is usable as before. */
  if (cuda_usable && cgr_test_backend == CGR_BACKEND_CUDA) {
    cgr_runtime *again = NULL;
    assert_cgr_ok(NULL, create_on(CGR_BACKEND_CUDA, &again));
    cgr_runtime_destroy(again);
  }
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_launch_status_is_the_launchs_own),
    RUNTIME_TEST(test_device_without_code_is_refused_at_create),
};

CGR_TEST_MAIN(tests)
