/*
 * NCCL for the CUDA backend: the communicator of a group's ranks and the
 * backend op that enqueues a step's collective (runtime/collective.h).
 *
 * libnccl is never linked: it is opened with dlopen at the first call that
 * needs it (runtime/cuda/cuda_nccl.c), so a single-GPU build and a machine
 * without NCCL never need it at load time. A build without the NCCL path
 * (CGR_WITH_NCCL=OFF, no nccl.h, or no CUDA backend) has the same entry
 * points in runtime/cuda/cuda_nccl_absent.c, which say why they cannot
 * work (CGR_E_UNSUPPORTED).
 *
 * Nothing here includes a CUDA or NCCL header: a cudaStream_t and an
 * ncclComm_t are pointers, passed as void *.
 */
#ifndef CGR_RUNTIME_CUDA_CUDA_NCCL_H
#define CGR_RUNTIME_CUDA_CUDA_NCCL_H

#include <stddef.h>

#include "cgr/cgr.h"
#include "runtime/collective.h"
#include "runtime/error.h"

/*
 * The communicator of `ranks` CUDA runtimes in this process, rank r on
 * rts[r]'s device (ncclCommInitAll): handles[r] is rank r's ncclComm_t.
 * Errors, in err: CGR_E_INVALID_ARGUMENT (NULL, ranks out of 1 to
 * CGR_GROUP_MAX_RANKS, a runtime that is not on the CUDA backend, two
 * ranks on one device), CGR_E_UNSUPPORTED with the reason when NCCL cannot
 * be loaded (or the build has none), CGR_E_CUDA naming ncclCommInitAll and
 * NCCL's error. Every handle is NULL on failure. Any thread; the caller's
 * current device is kept.
 */
cgr_status cgr__nccl_comm_create(cgr_runtime *const *rts, int ranks,
                                 cgr__error *err, void **handles);

/*
 * CGR_OK while no rank's communicator has an asynchronous error
 * (ncclCommGetAsyncError: ncclSuccess, or ncclInProgress); otherwise
 * CGR_E_CUDA naming the first such rank and NCCL's error. NULL handles
 * are skipped. Any thread, also while collectives are under way: this is
 * the poll of NCCL's abort path.
 */
cgr_status cgr__nccl_comm_check(void *const *handles, int ranks,
                                cgr__error *err);

/* ncclCommAbort on every non-NULL handle: collectives under way or stuck
 * end, and the communicators are freed. The handles are gone afterwards:
 * pass them to nothing else, cgr__nccl_comm_destroy included. Any thread. */
void cgr__nccl_comm_abort(void *const *handles, int ranks);

/* ncclCommDestroy on every non-NULL handle, once the ranks' streams are
 * drained. Never after cgr__nccl_comm_abort (which already freed them). */
void cgr__nccl_comm_destroy(void *const *handles, int ranks);

/* Across processes: NCCL's unique id (ncclGetUniqueId) as 2 *
 * NCCL_UNIQUE_ID_BYTES (256) hex digits into hex (size at least 257);
 * CGR_E_UNSUPPORTED without NCCL, CGR_E_CUDA when NCCL fails. */
cgr_status cgr__nccl_unique_id(char *hex, size_t size, cgr__error *err);

/* Rank `rank` of `ranks`'s communicator from such an id, on rt's device
 * (ncclCommInitRank, which returns once every rank called it), into
 * *handle (NULL on failure). CGR_E_INVALID_ARGUMENT for an id that is not
 * 256 hex digits or a runtime not on CUDA; CGR_E_UNSUPPORTED, CGR_E_CUDA
 * as above. The caller's current device is kept. */
cgr_status cgr__nccl_comm_init_rank(cgr_runtime *rt, const char *hex, int rank,
                                    int ranks, cgr__error *err, void **handle);

/* What a caller's communicator (an ncclComm_t) says of itself: its rank,
 * its rank count and its CUDA device (ncclCommUserRank, ncclCommCount,
 * ncclCommCuDevice). CGR_E_UNSUPPORTED without NCCL, CGR_E_CUDA when NCCL
 * refuses (NCCL's words in err). */
cgr_status cgr__nccl_comm_info(void *handle, int *rank, int *ranks, int *device,
                               cgr__error *err);

/*
 * The CUDA backend's `collective` op (runtime/backend.h), the part that
 * needs no backend context: enqueues c on `stream` (a cudaStream_t) with
 * rank `rank` of `ranks`'s communicator `handle` (an ncclComm_t from
 * cgr__nccl_comm_create): ncclAllReduce, ncclAllGather or ncclBroadcast.
 * The caller (cuda_backend.c) has made `device`, the runtime's, current.
 * Legal during a capture: the collective becomes nodes of the graph.
 * Errors, in err: CGR_E_INVALID_STATE (no communicator),
 * CGR_E_INVALID_ARGUMENT (a dtype, op, kind or root NCCL has no value
 * for), CGR_E_DEVICE_LOST (NCCL failed and the device holds a sticky CUDA
 * error), CGR_E_CUDA (the NCCL call and its error), CGR_E_UNSUPPORTED (no
 * NCCL in this build or on this machine).
 */
cgr_status cgr__nccl_collective(int device, cgr__error *err, void *stream,
                                void *handle, int rank, int ranks,
                                const cgr__collective *c);

/*
 * The NCCL library as loaded once for the process: CGR_OK and its version
 * (NCCL_VERSION_CODE form, 22809 for 2.28.9) in *version, or
 * CGR_E_UNSUPPORTED with the reason in err (the path tried and dlopen's
 * or dlsym's words). Looked for as $CGR_NCCL_LIBRARY when set, otherwise
 * libnccl.so.2, then libnccl.so, through the dynamic loader's search
 * path. The first answer is kept for the life of the process. Any thread.
 */
cgr_status cgr__nccl_library(cgr__error *err, int *version);

/*
 * What loading NCCL from `path` would say, without keeping it: `path`
 * NULL looks where cgr__nccl_library looks. CGR_OK with the version, or
 * CGR_E_UNSUPPORTED with the reason in why (why_size bytes, always
 * terminated). For tests and diagnostics; any thread.
 */
cgr_status cgr__nccl_library_probe(const char *path, int *version, char *why,
                                   size_t why_size);

#endif /* CGR_RUNTIME_CUDA_CUDA_NCCL_H */
