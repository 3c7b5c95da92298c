/*
 * A group's communicator (runtime/collective.h), made and ended by backend:
 * the host communicator on the host backend, NCCL on CUDA.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getpid */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/alloc.h"
#include "runtime/collective.h"
#include "runtime/cuda/cuda_nccl.h"
#include "runtime/host/host_comm.h"
#include "runtime/runtime.h"

size_t cgr__dtype_size(cgr_dtype dtype) {
  switch (dtype) {
  case CGR_DTYPE_INT8:
  case CGR_DTYPE_UINT8:
    return 1;
  case CGR_DTYPE_FLOAT16:
  case CGR_DTYPE_BFLOAT16:
    return 2;
  case CGR_DTYPE_INT32:
  case CGR_DTYPE_UINT32:
  case CGR_DTYPE_FLOAT32:
    return 4;
  case CGR_DTYPE_INT64:
  case CGR_DTYPE_UINT64:
  case CGR_DTYPE_FLOAT64:
    return 8;
  default:
    return 0;
  }
}

cgr_status cgr__comm_create(cgr_runtime *const *rts, int ranks,
                            uint32_t timeout_ms, cgr__error *err,
                            cgr__comm **out) {
  if (out == NULL)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'out' is NULL");
  *out = NULL;
  if (rts == NULL)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'rts' is NULL");
  if (ranks < 1 || ranks > CGR_GROUP_MAX_RANKS)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'ranks' is %d: 1 to %d", ranks,
                     CGR_GROUP_MAX_RANKS);
  for (int r = 0; r < ranks; ++r) {
    if (rts[r] == NULL)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                       "the runtime of rank %d is NULL", r);
    if (rts[r]->kind != rts[0]->kind)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                       "rank %d runs on the %s backend, rank 0 on the %s: "
                       "a group is of one backend",
                       r, cgr_backend_name(rts[r]), cgr_backend_name(rts[0]));
  }
  cgr__comm *comm = cgr__calloc(1, sizeof *comm);
  if (comm == NULL)
    return cgr__fail(err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the communicator failed");
  comm->kind = rts[0]->kind;
  comm->ranks = ranks;
  atomic_init(&comm->aborted, 0);
  atomic_init(&comm->reason_ready, 0);
  cgr_status status = CGR_OK;
  if (comm->kind == CGR_BACKEND_HOST) {
    cgr__host_comm *host = NULL;
    status = cgr__host_comm_create(ranks, timeout_ms, err, &host);
    for (int r = 0; r < ranks && status == CGR_OK; ++r)
      comm->handles[r] = host;
  } else {
    /* A build without NCCL links stubs that say why (cuda_nccl_absent.c). */
    status = cgr__nccl_comm_create(rts, ranks, err, comm->handles);
  }
  if (status != CGR_OK) {
    cgr__free(comm);
    return status;
  }
  *out = comm;
  return CGR_OK;
}

cgr_status cgr__comm_check(cgr__comm *comm, cgr__error *err) {
  if (comm == NULL)
    return CGR_OK;
  if (comm->kind == CGR_BACKEND_HOST)
    return cgr__host_comm_check(comm->handles[comm->local], err);
  if (atomic_load_explicit(&comm->aborted, memory_order_acquire))
    return cgr__fail(err, CGR_E_TIMEOUT, "collective", "%s",
                     atomic_load_explicit(&comm->reason_ready,
                                          memory_order_acquire)
                         ? comm->reason
                         : "the communicator was aborted");
  return cgr__nccl_comm_check(comm->handles, comm->ranks, err);
}

void cgr__comm_abort(cgr__comm *comm, const char *why) {
  if (comm == NULL)
    return;
  if (why == NULL)
    why = "the communicator was aborted";
  if (comm->kind == CGR_BACKEND_HOST) {
    cgr__host_comm_abort(comm->handles[comm->local], why);
    return;
  }
  /* NCCL keeps no reason of ours, and an aborted ncclComm_t is gone: the
   * reason stays here, and only the first abort reaches NCCL. */
  int expected = 0;
  if (!atomic_compare_exchange_strong(&comm->aborted, &expected, 1))
    return;
  snprintf(comm->reason, sizeof comm->reason, "%s", why);
  atomic_store_explicit(&comm->reason_ready, 1, memory_order_release);
  cgr__nccl_comm_abort(comm->handles, comm->ranks);
}

void cgr__comm_destroy(cgr__comm *comm) {
  if (comm == NULL)
    return;
  if (comm->kind == CGR_BACKEND_HOST) {
    cgr__host_comm_destroy(comm->handles[comm->local]);
  } else if (!atomic_load(&comm->aborted) && !comm->borrowed) {
    /* An aborted ncclComm_t is already freed; a borrowed one is the
     * caller's. */
    cgr__nccl_comm_destroy(comm->handles, comm->ranks);
  }
  cgr__free(comm);
}

/* ---- across processes ---------------------------------------------------- */

#define HOST_PREFIX "host:"
#define NCCL_PREFIX "nccl:"

cgr_status cgr__comm_id_create(cgr_backend_kind kind, char *out, size_t size,
                               cgr__error *err) {
  if (out == NULL || size < CGR_GROUP_ID_MAX)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_group_id_create",
                     "argument '%s' %s", out == NULL ? "out" : "size",
                     out == NULL ? "is NULL"
                                 : "is under CGR_GROUP_ID_MAX bytes");
  out[0] = '\0';
  if (kind == CGR_BACKEND_HOST) {
    /* Unique on the machine: the process, the clock, a counter. */
    static _Atomic uint64_t made;
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    snprintf(out, size, HOST_PREFIX "/cgr-%ld-%llx-%llx", (long)getpid(),
             (unsigned long long)t.tv_sec * 1000000000ull +
                 (unsigned long long)t.tv_nsec,
             (unsigned long long)atomic_fetch_add(&made, 1));
    return CGR_OK;
  }
  char hex[2 * 128 + 1];
  CGR__CHECK(cgr__nccl_unique_id(hex, sizeof hex, err));
  snprintf(out, size, NCCL_PREFIX "%s", hex);
  return CGR_OK;
}

cgr_status cgr__comm_join(cgr_runtime *rt, int rank, int ranks, const char *id,
                          uint32_t timeout_ms, cgr__error *err,
                          cgr__comm **out) {
  *out = NULL;
  if (ranks < 1 || ranks > CGR_GROUP_MAX_RANKS || rank < 0 || rank >= ranks)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "rank %d of %d: 1 to %d ranks", rank, ranks,
                     CGR_GROUP_MAX_RANKS);
  int host = rt->kind == CGR_BACKEND_HOST;
  const char *prefix = host ? HOST_PREFIX : NCCL_PREFIX;
  if (strncmp(id, prefix, strlen(prefix)) != 0)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "the id '%.40s%s' is not one of the %s backend (it "
                     "starts '%s'): make it with cgr_group_id_create for the "
                     "backend every process runs",
                     id, strlen(id) > 40 ? "..." : "", cgr_backend_name(rt),
                     prefix);
  cgr__comm *comm = cgr__calloc(1, sizeof *comm);
  if (comm == NULL)
    return cgr__fail(err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the communicator failed");
  comm->kind = rt->kind;
  comm->ranks = ranks;
  comm->local = rank;
  atomic_init(&comm->aborted, 0);
  atomic_init(&comm->reason_ready, 0);
  const char *rest = id + strlen(prefix);
  cgr_status status;
  if (host) {
    cgr__host_comm *joined = NULL;
    status = cgr__host_comm_join(rest, ranks, rank, timeout_ms, err, &joined);
    comm->handles[rank] = joined;
  } else {
    status = cgr__nccl_comm_init_rank(rt, rest, rank, ranks, err,
                                      &comm->handles[rank]);
  }
  if (status != CGR_OK) {
    cgr__free(comm);
    return status;
  }
  *out = comm;
  return CGR_OK;
}

cgr_status cgr__comm_adopt(cgr_runtime *const *rts, int ranks,
                           void *const *comms, cgr__error *err, int *first,
                           int *world, cgr__comm **out) {
  *out = NULL;
  for (int r = 0; r < ranks; ++r)
    if (rts[r]->kind != CGR_BACKEND_CUDA)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                       "rank %d runs on the %s backend: NCCL communicators "
                       "need CUDA runtimes",
                       r, cgr_backend_name(rts[r]));
  int count = 0, rank0 = 0;
  for (int r = 0; r < ranks; ++r) {
    int rank = 0, ranks_of = 0, device = 0;
    CGR__CHECK(cgr__nccl_comm_info(comms[r], &rank, &ranks_of, &device, err));
    if (r == 0) {
      count = ranks_of;
      rank0 = rank;
    }
    if (ranks_of != count || ranks_of < ranks || ranks_of > CGR_GROUP_MAX_RANKS)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                       "nccl_comms[%d] counts %d ranks (nccl_comms[0] %d): "
                       "one group of %d to %d ranks",
                       r, ranks_of, count, ranks, CGR_GROUP_MAX_RANKS);
    if (ranks > 1 && (count != ranks || rank != r))
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                       "nccl_comms[%d] is rank %d of %d: with several ranks "
                       "here the group's every rank is here, rank r being "
                       "nccl_comms[r]",
                       r, rank, ranks_of);
    if (device != rts[r]->config.device)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                       "nccl_comms[%d] is on CUDA device %d, its rank's "
                       "runtime on device %d: give devices[] (or the "
                       "runtime config's device) to match",
                       r, device, rts[r]->config.device);
  }
  cgr__comm *comm = cgr__calloc(1, sizeof *comm);
  if (comm == NULL)
    return cgr__fail(err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the communicator failed");
  comm->kind = CGR_BACKEND_CUDA;
  comm->ranks = count;
  comm->local = rank0;
  comm->borrowed = 1;
  atomic_init(&comm->aborted, 0);
  atomic_init(&comm->reason_ready, 0);
  for (int r = 0; r < ranks; ++r)
    comm->handles[rank0 + r] = comms[r];
  *first = rank0;
  *world = count;
  *out = comm;
  return CGR_OK;
}
