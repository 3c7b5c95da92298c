/* The public CUDA interop (<cgr/cgr_cuda.h>): the native handles behind a
 * runtime that runs on the CUDA backend. (cgr_cuda_step_graph lives with
 * the step, in capture/step.c.) */
#include "cgr/cgr_cuda.h"

#include "runtime/backend.h"
#include "runtime/runtime.h"

/* The interop calls take a const runtime but may have to leave a message.
 * The message buffer is guarded by its own lock and is not part of the
 * runtime's observable state, so writing it through a const runtime is
 * what cgr_last_error() readers expect. */
static cgr__error *error_of(const cgr_runtime *rt) {
  return (cgr__error *)&rt->error;
}

static cgr_status require_cuda(const cgr_runtime *rt, const char *func) {
  if (rt->kind != CGR_BACKEND_CUDA)
    return cgr__fail(error_of(rt), CGR_E_UNSUPPORTED, func,
                     "the runtime runs on the %s backend, which has no CUDA "
                     "handles",
                     cgr_backend_name(rt));
  return CGR_OK;
}

cgr_status cgr_cuda_stream(cgr_runtime *rt, cgr_stream_role role,
                           cudaStream_t *out) {
  if (out != NULL)
    *out = NULL;
  /* Without a runtime there is nowhere to keep a message: the thread's slot
   * belongs to cgr_runtime_create. */
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  if (out == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'out' is NULL");
  if (role != CGR_STREAM_MAIN && role != CGR_STREAM_SIDE)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'role' is %d, not a cgr_stream_role", (int)role);
  CGR__CHECK(require_cuda(rt, __func__));
  void *native = cgr__be_stream_native(&rt->backend, rt->streams[role]);
  if (native == NULL)
    return cgr__fail(&rt->error, CGR_E_INTERNAL, __func__,
                     "the CUDA runtime has no %s stream",
                     role == CGR_STREAM_MAIN ? "main" : "side");
  *out = (cudaStream_t)native;
  return CGR_OK;
}

cgr_status cgr_cuda_device(const cgr_runtime *rt, int *out) {
  if (out != NULL)
    *out = -1;
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  if (out == NULL)
    return cgr__fail(error_of(rt), CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'out' is NULL");
  CGR__CHECK(require_cuda(rt, __func__));
  *out = rt->config.device;
  return CGR_OK;
}

cgr_status cgr_cuda_step_stream(const cgr_step *step, cudaStream_t *out) {
  if (out != NULL)
    *out = NULL;
  if (step == NULL || out == NULL)
    return CGR_E_INVALID_ARGUMENT;
  /* The step always runs on the main stream. */
  return cgr_cuda_stream(cgr_step_runtime(step), CGR_STREAM_MAIN, out);
}
