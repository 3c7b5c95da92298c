/*
 * Collectives between the ranks of a group (include/cgr/cgr_group.h), seen
 * from inside the library. A step's collective (capture/step.c) becomes a
 * backend op on the step's stream with the rank's communicator; the
 * communicator of a group is made and ended here (runtime/comm.c), by
 * backend: NCCL on CUDA (runtime/cuda/cuda_nccl.c, loaded with dlopen so
 * no build of libcgr needs libnccl at load time), a host communicator on
 * the host backend (runtime/host/host_comm.c). Nothing above runtime/
 * calls NCCL.
 */
#ifndef CGR_RUNTIME_COLLECTIVE_H
#define CGR_RUNTIME_COLLECTIVE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cgr/cgr.h"
#include "runtime/error.h"

typedef enum cgr__coll_kind {
  CGR__COLL_ALL_REDUCE,
  CGR__COLL_ALL_GATHER,
  CGR__COLL_BROADCAST
} cgr__coll_kind;

/* One collective call, as a step made it (arguments checked). */
typedef struct cgr__collective {
  cgr__coll_kind kind;
  const void *send;
  void *recv;
  size_t count; /* elements of send (per rank for all-gather) */
  cgr_dtype dtype;
  cgr_reduce_op op; /* all-reduce */
  int root;         /* broadcast */
} cgr__collective;

/* Bytes of one element; 0 for a value that is not a cgr_dtype. */
size_t cgr__dtype_size(cgr_dtype dtype);

/*
 * A group's communicator: one per rank (the rank's handle: the same host
 * communicator for every rank, or rank r's ncclComm_t), owned by the
 * group. The backend op `collective` (runtime/backend.h) takes the
 * rank's handle.
 */
typedef struct cgr__comm {
  cgr_backend_kind kind;
  int ranks;
  /* A rank this process holds (0 in one process): the host
   * communicator's handle is handles[local]. Across processes only
   * handles[local] is set. */
  int local;
  /* The caller's communicators (CUDA): never destroyed here, only aborted
   * when the group breaks. */
  int borrowed;
  void *handles[CGR_GROUP_MAX_RANKS];
  /* Set by cgr__comm_abort on CUDA (the first reason stays): from then on
   * cgr__comm_check reports the reason without asking NCCL, and destroy
   * does not end the handles again. The host communicator keeps its own. */
  _Atomic int aborted;
  _Atomic int reason_ready;
  char reason[CGR__ERROR_MESSAGE_SIZE];
} cgr__comm;

/*
 * Makes the communicator of `ranks` runtimes, rank r being rts[r] (all of
 * one backend). Host: a host communicator whose collectives give up after
 * timeout_ms. CUDA: ncclCommInitAll over the runtimes' devices (NCCL
 * loaded at this call; CGR_E_UNSUPPORTED with the reason when the build
 * or the machine has none). Errors go to err.
 */
cgr_status cgr__comm_create(cgr_runtime *const *rts, int ranks,
                            uint32_t timeout_ms, cgr__error *err,
                            cgr__comm **out);

/*
 * Joins rank `rank` of a group of `ranks` ranks across processes, held by
 * rt, through `id` (cgr_group_id_create's text: "host:" a shared-memory
 * name, or "nccl:" NCCL's unique id in hex, which must match rt's
 * backend). Host: cgr__host_comm_join; CUDA: ncclCommInitRank on rt's
 * device. Returns once every rank joined. Errors go to err.
 */
cgr_status cgr__comm_join(cgr_runtime *rt, int rank, int ranks, const char *id,
                          uint32_t timeout_ms, cgr__error *err,
                          cgr__comm **out);

/*
 * The caller's NCCL communicators for the `ranks` CUDA runtimes rts (the
 * ranks of this process): asks each for its rank, count and device
 * (ncclCommUserRank, ncclCommCount, ncclCommCuDevice) and checks that they
 * make a group: one count, and either every rank here (rank r is rts[r],
 * count == ranks) or one rank here of a group across processes; each on
 * its runtime's device. *first is this process's first rank, *world the
 * count. The communicator it makes borrows them. Errors go to err.
 */
cgr_status cgr__comm_adopt(cgr_runtime *const *rts, int ranks,
                           void *const *comms, cgr__error *err, int *first,
                           int *world, cgr__comm **out);

/* A new id for `kind` (CUDA or host) into out (size bytes, at least
 * CGR_GROUP_ID_MAX). Errors go to err. */
cgr_status cgr__comm_id_create(cgr_backend_kind kind, char *out, size_t size,
                               cgr__error *err);

/*
 * CGR_OK while every collective so far completed; once one could not (a
 * host collective that timed out, an asynchronous NCCL error),
 * CGR_E_TIMEOUT (or CGR_E_CUDA) with the reason in err, every time.
 */
cgr_status cgr__comm_check(cgr__comm *comm, cgr__error *err);

/* Ends the collectives under way or to come: they return at once (their
 * results are garbage) and cgr__comm_check reports `why`. Any thread. */
void cgr__comm_abort(cgr__comm *comm, const char *why);

/* Frees the communicator; the ranks' streams are drained (or the comm was
 * aborted). NULL is a no-op. */
void cgr__comm_destroy(cgr__comm *comm);

/* The CUDA side of these (NCCL, or stubs that say why there is none) is
 * declared in runtime/cuda/cuda_nccl.h; runtime/comm.c alone calls it. */

#endif /* CGR_RUNTIME_COLLECTIVE_H */
