/* <cgr/cgr_cuda.h>: the runtime's native streams, on CUDA; a clear refusal
 * on the host backend. */
#include <cuda_runtime_api.h>

#include "cgr/cgr_cuda.h"
#include "harness.h"
#include "kernels/basic.h"

static void test_cuda_streams_are_native_and_distinct(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cudaStream_t main_stream = NULL, side_stream = NULL;
  if (cgr_test_backend == CGR_BACKEND_HOST) {
    assert_cgr_status(rt, cgr_cuda_stream(rt, CGR_STREAM_MAIN, &main_stream),
                      CGR_E_UNSUPPORTED);
    assert_null(main_stream);
    assert_last_error_contains(rt, "host");
    return;
  }
  assert_cgr_ok(rt, cgr_cuda_stream(rt, CGR_STREAM_MAIN, &main_stream));
  assert_cgr_ok(rt, cgr_cuda_stream(rt, CGR_STREAM_SIDE, &side_stream));
  assert_non_null(main_stream);
  assert_non_null(side_stream);
  assert_ptr_not_equal(main_stream, side_stream);
  /* The user can launch on it directly and cgr's ordering still holds. */
  int32_t *device = NULL;
  int32_t host[16];
  assert_int_equal(cudaMalloc((void **)&device, sizeof host), cudaSuccess);
  cgr__arange_i32_args args = {device, 16, 4, 4};
  assert_int_equal(cgr__cuda_launch_arange_i32(main_stream, &args),
                   cudaSuccess);
  assert_int_equal(cudaMemcpyAsync(host, device, sizeof host,
                                   cudaMemcpyDeviceToHost, main_stream),
                   cudaSuccess);
  assert_cgr_ok(rt, cgr_synchronize(rt));
  for (int i = 0; i < 16; ++i)
    assert_int_equal(host[i], 4 + 4 * i);
  assert_int_equal(cudaFree(device), cudaSuccess);
}

static void test_cuda_interop_rejects_bad_arguments(void **state) {
  cgr_runtime *rt = cgr_test_runtime(state);
  cudaStream_t stream = NULL;
  assert_int_equal(cgr_cuda_stream(NULL, CGR_STREAM_MAIN, &stream),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_cuda_stream(rt, CGR_STREAM_MAIN, NULL),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_cuda_stream(rt, (cgr_stream_role)9, &stream),
                   CGR_E_INVALID_ARGUMENT);
  assert_null(stream);
  int device = 5;
  cgr_status status = cgr_cuda_device(rt, &device);
  if (cgr_test_backend == CGR_BACKEND_CUDA) {
    assert_cgr_ok(rt, status);
    assert_int_equal(device, 0);
  } else {
    assert_int_equal(status, CGR_E_UNSUPPORTED);
    assert_int_equal(device, -1);
  }
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_cuda_streams_are_native_and_distinct),
    RUNTIME_TEST(test_cuda_interop_rejects_bad_arguments),
};

CGR_TEST_MAIN(tests)
