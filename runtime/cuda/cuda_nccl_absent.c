/*
 * The NCCL entry points of a build without the NCCL path
 * (runtime/cuda/cuda_nccl.h): CGR_WITH_NCCL=OFF, no nccl.h at configure
 * time, or no CUDA backend at all. They exist so runtime/comm.c and the
 * CUDA backend need no #ifdef; each says why it cannot work.
 */
#include "runtime/cuda/cuda_nccl.h"

#include <stdio.h>

#if defined(CGR_HAVE_CUDA)
#define NO_NCCL_REASON                                                         \
  "this build of cgr has no NCCL (built with CGR_WITH_NCCL=OFF, or nccl.h "    \
  "was not found at configure time): a CUDA group needs NCCL, even of one "    \
  "rank"
#else
#define NO_NCCL_REASON                                                         \
  "this build of cgr has no CUDA backend, and so no NCCL (built with "         \
  "CGR_WITH_CUDA=OFF or no toolkit)"
#endif

cgr_status cgr__nccl_comm_create(cgr_runtime *const *rts, int ranks,
                                 cgr__error *err, void **handles) {
  (void)rts;
  if (handles != NULL)
    for (int r = 0; r < ranks && r < CGR_GROUP_MAX_RANKS; r++)
      handles[r] = NULL;
  return cgr__fail(err, CGR_E_UNSUPPORTED, __func__, "%s", NO_NCCL_REASON);
}

cgr_status cgr__nccl_unique_id(char *hex, size_t size, cgr__error *err) {
  if (hex != NULL && size > 0)
    hex[0] = '\0';
  return cgr__fail(err, CGR_E_UNSUPPORTED, "cgr_group_id_create", "%s",
                   NO_NCCL_REASON);
}

cgr_status cgr__nccl_comm_init_rank(cgr_runtime *rt, const char *hex, int rank,
                                    int ranks, cgr__error *err, void **handle) {
  (void)rt;
  (void)hex;
  (void)rank;
  (void)ranks;
  if (handle != NULL)
    *handle = NULL;
  return cgr__fail(err, CGR_E_UNSUPPORTED, __func__, "%s", NO_NCCL_REASON);
}

cgr_status cgr__nccl_comm_info(void *handle, int *rank, int *ranks, int *device,
                               cgr__error *err) {
  (void)handle;
  *rank = *ranks = *device = 0;
  return cgr__fail(err, CGR_E_UNSUPPORTED, __func__, "%s", NO_NCCL_REASON);
}

cgr_status cgr__nccl_comm_check(void *const *handles, int ranks,
                                cgr__error *err) {
  (void)handles;
  (void)ranks;
  return cgr__fail(err, CGR_E_UNSUPPORTED, __func__, "%s", NO_NCCL_REASON);
}

/* No handle was ever made: nothing to end. */
void cgr__nccl_comm_abort(void *const *handles, int ranks) {
  (void)handles;
  (void)ranks;
}

void cgr__nccl_comm_destroy(void *const *handles, int ranks) {
  (void)handles;
  (void)ranks;
}

cgr_status cgr__nccl_collective(int device, cgr__error *err, void *stream,
                                void *handle, int rank, int ranks,
                                const cgr__collective *c) {
  (void)device;
  (void)stream;
  (void)handle;
  (void)rank;
  (void)ranks;
  (void)c;
  return cgr__fail(err, CGR_E_UNSUPPORTED, __func__, "%s", NO_NCCL_REASON);
}

cgr_status cgr__nccl_library(cgr__error *err, int *version) {
  if (version != NULL)
    *version = 0;
  return cgr__fail(err, CGR_E_UNSUPPORTED, __func__, "%s", NO_NCCL_REASON);
}

cgr_status cgr__nccl_library_probe(const char *path, int *version, char *why,
                                   size_t why_size) {
  (void)path;
  if (version != NULL)
    *version = 0;
  if (why != NULL && why_size > 0)
    snprintf(why, why_size, "%s", NO_NCCL_REASON);
  return CGR_E_UNSUPPORTED;
}
