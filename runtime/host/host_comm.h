/*
 * The host communicator: the collectives of a group of host-backend
 * runtimes in one process (runtime/collective.h), with NCCL's semantics.
 *
 * Model. One communicator is shared by every rank (each rank's handle is
 * the same pointer). A collective is a host kernel (cgr__host_comm_kernel)
 * on the rank's stream, so it runs in stream order on the stream's worker,
 * and a capture records it as an ordinary kernel node that every replay
 * runs again. The ranks meet in two barriers per collective: at arrival
 * the last rank to come checks that every rank called the same collective
 * and computes the result into a buffer the communicator owns; every rank
 * then copies it out into its recv; at departure no rank leaves before all
 * have copied, so the next collective may reuse the buffer. Because the
 * result is computed before any recv is written, in-place use (send ==
 * recv; for all-gather send == recv + rank * count) is correct.
 *
 * Failure. A rank that waits longer than the timeout for its peers (at
 * either barrier), or a collective whose ranks disagree, aborts the
 * communicator with a message naming the collective (its number, counted
 * from 0 in the communicator), its kind, and the ranks at fault. After an
 * abort every collective returns at once without touching recv, and
 * cgr__host_comm_check reports CGR_E_TIMEOUT with that message.
 */
#ifndef CGR_RUNTIME_HOST_HOST_COMM_H
#define CGR_RUNTIME_HOST_HOST_COMM_H

#include <stdint.h>

#include "runtime/collective.h"
#include "runtime/kernel.h"

typedef struct cgr__host_comm cgr__host_comm;

/* A communicator of `ranks` ranks (1 to CGR_GROUP_MAX_RANKS) whose waits
 * give up after timeout_ms (0: 1 ms). Errors go to err. */
cgr_status cgr__host_comm_create(int ranks, uint32_t timeout_ms,
                                 cgr__error *err, cgr__host_comm **out);

/*
 * Rank `rank` of a communicator across processes of one machine, named by
 * `name` (a POSIX shared-memory name, "/cgr-..."): rank 0 makes it, the
 * others open it once it is there, and every rank waits until all `ranks`
 * joined (CGR_E_TIMEOUT naming the missing ranks after timeout_ms); rank 0
 * then unlinks the name. A rank sends at most CGR__HOST_COMM_SHARED_BYTES
 * per collective (more aborts the communicator, saying so). Collectives,
 * check, abort and destroy work as in one process; an abort is seen by
 * every process; destroy unmaps this process's view only.
 */
#define CGR__HOST_COMM_SHARED_BYTES ((size_t)16 << 20)
cgr_status cgr__host_comm_join(const char *name, int ranks, int rank,
                               uint32_t timeout_ms, cgr__error *err,
                               cgr__host_comm **out);

/* CGR_OK until the communicator aborted; then CGR_E_TIMEOUT with the
 * reason in err, every time. Any thread. */
cgr_status cgr__host_comm_check(cgr__host_comm *comm, cgr__error *err);

/* Aborts (the first reason stays): collectives under way and to come
 * return at once. Any thread. */
void cgr__host_comm_abort(cgr__host_comm *comm, const char *why);

/* Waits for collectives still inside the communicator to leave (an
 * aborted one leaves at once; one under way leaves by its timeout at the
 * latest), then frees it. No collective may be queued on a stream still
 * running. NULL is a no-op. */
void cgr__host_comm_destroy(cgr__host_comm *comm);

/* Runs rank `rank`'s part of collective `c` on the calling thread and
 * returns when the collective completed (CGR_OK) or the communicator
 * aborted (CGR_E_TIMEOUT). What the host kernel does. */
cgr_status cgr__host_comm_run(cgr__host_comm *comm, int rank,
                              const cgr__collective *c);

/* The host kernel that runs a collective; its args are a
 * cgr__host_comm_args, copied by value at launch. */
typedef struct cgr__host_comm_args {
  cgr__host_comm *comm;
  int rank;
  cgr__collective collective;
} cgr__host_comm_args;

extern const cgr__kernel cgr__host_comm_kernel;

/* The number of collectives that completed so far (for tests). */
uint64_t cgr__host_comm_completed(cgr__host_comm *comm);

#endif /* CGR_RUNTIME_HOST_HOST_COMM_H */
