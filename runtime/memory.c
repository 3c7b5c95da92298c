/*
 * Memory on the runtime's device, the same way on both backends: device
 * and page-locked allocations, and a synchronous copy in any direction.
 * Portable code (and cgr's tests) build device sources and gather tables
 * and read outputs with these instead of cudaMalloc or malloc.
 */
#include "cgr/cgr.h"

#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/runtime.h"

static cgr_status check_alloc_args(cgr_runtime *rt, size_t bytes, void **out,
                                   const char *func) {
  if (out != NULL)
    *out = NULL;
  if (rt == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'rt' is NULL");
  if (out == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'out' is NULL");
  if (bytes == 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'bytes' is 0");
  return CGR_OK;
}

cgr_status cgr_device_alloc(cgr_runtime *rt, size_t bytes, void **out) {
  CGR__CHECK(check_alloc_args(rt, bytes, out, __func__));
  return cgr__be_device_alloc(&rt->backend, bytes, out);
}

cgr_status cgr_pinned_alloc(cgr_runtime *rt, size_t bytes, void **out) {
  CGR__CHECK(check_alloc_args(rt, bytes, out, __func__));
  return cgr__be_pinned_alloc(&rt->backend, bytes, out);
}

/* Frees ptr if it is memory of `kind`, else names what it is. */
static cgr_status free_of_kind(cgr_runtime *rt, void *ptr,
                               cgr__memory_kind kind, const char *func) {
  if (rt == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'rt' is NULL");
  if (ptr == NULL)
    return CGR_OK;
  /* On a lost device freeing is all that is left: it is not refused. */
  if (!cgr__be_lost(&rt->backend)) {
    cgr__memory_kind found = CGR__MEMORY_OTHER;
    CGR__CHECK(cgr__be_memory_kind(&rt->backend, ptr, 1, &found));
    if (found != kind)
      return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                       "argument 'ptr' (%p) is %s, not %s", ptr,
                       cgr__memory_kind_name(found),
                       cgr__memory_kind_name(kind));
  }
  if (kind == CGR__MEMORY_DEVICE)
    cgr__be_device_free(&rt->backend, ptr);
  else
    cgr__be_pinned_free(&rt->backend, ptr);
  return CGR_OK;
}

cgr_status cgr_device_free(cgr_runtime *rt, void *ptr) {
  return free_of_kind(rt, ptr, CGR__MEMORY_DEVICE, __func__);
}

cgr_status cgr_pinned_free(cgr_runtime *rt, void *ptr) {
  return free_of_kind(rt, ptr, CGR__MEMORY_PINNED, __func__);
}

cgr_status cgr_memcpy(cgr_runtime *rt, void *dst, const void *src,
                      size_t bytes) {
  if (rt == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'rt' is NULL");
  if (bytes == 0)
    return CGR_OK;
  if (dst == NULL || src == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument '%s' is NULL", dst == NULL ? "dst" : "src");
  /* A stream of its own, made at the first copy: never the legacy default
   * stream (which would wait for other libraries' work), and never cgr's
   * main or side stream (which would wait for graphs in flight). */
  if (rt->copy_stream == NULL)
    CGR__CHECK(cgr__be_stream_create(&rt->backend, CGR_PRIORITY_NORMAL,
                                     "cgr copy", &rt->copy_stream));
  CGR__CHECK(
      cgr__be_memcpy_async(&rt->backend, rt->copy_stream, dst, src, bytes));
  return cgr__be_stream_synchronize(&rt->backend, rt->copy_stream);
}
