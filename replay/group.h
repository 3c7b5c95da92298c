/*
 * Groups (include/cgr/cgr_group.h), inside the library: the group object
 * and how a call breaks it, shared by replay/group.c (create, slots,
 * batches) and replay/group_run.c (the calls that run the ranks' steps).
 */
#ifndef CGR_REPLAY_GROUP_H
#define CGR_REPLAY_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include "cgr/cgr.h"
#include "runtime/collective.h"
#include "runtime/error.h"

struct cgr_group {
  int ranks;       /* in this process */
  int world_ranks; /* across processes: ranks when world is 0 */
  int first_rank;  /* the group rank of rt[0] */
  int world;       /* ranks in other processes too */
  int adopted;     /* the caller's NCCL communicators (config.nccl_comms) */
  char id[CGR_GROUP_ID_MAX];
  cgr_group_config config; /* resolved; runtime and devices not kept */
  cgr_replay_mode mode;    /* every rank's, between calls */
  int captured;
  cgr_runtime *rt[CGR_GROUP_MAX_RANKS];
  cgr__comm *comm;
  cgr__error error;
  /* Once set, every call but destroy refuses with broken_why. */
  int broken;
  char broken_why[CGR__ERROR_MESSAGE_SIZE];
};

/* Breaks the group with `why` (a complete message): the communicator is
 * aborted, so that a collective still waiting for a peer returns. */
void cgr__group_break(cgr_group *group, const char *why);

/* CGR_OK while every collective so far completed; otherwise the
 * communicator's failure, its reason in `reason` (size bytes, always
 * terminated). */
cgr_status cgr__group_comm_state(cgr_group *group, char *reason, size_t size);

/* Now on CLOCK_MONOTONIC, in ms: the clock of cgr__group_poll's deadline. */
double cgr__group_now_ms(void);

/*
 * Polls query(ctx) (spinning first, then sleeping 20 us at a time) until
 * it returns anything but CGR_E_NOT_READY, and returns that; CGR_E_TIMEOUT
 * once `deadline_ms` passed or the communicator failed. NCCL waits for a
 * peer forever and gives up on nothing by itself, so a group's waits on
 * CUDA poll instead of blocking.
 */
cgr_status cgr__group_poll(cgr_group *group, cgr_status (*query)(void *ctx),
                           void *ctx, double deadline_ms);

/* The refusal of every call on a broken group (CGR_E_INVALID_STATE). */
cgr_status cgr__group_refuse_broken(cgr_group *group, const char *func);

/* Fails with `status`, then breaks the group with that message. */
#define GROUP_BREAK_FAIL(group, status, ...)                                   \
  (cgr__fail(&(group)->error, (status), __VA_ARGS__),                          \
   cgr__group_break((group), (group)->error.message), (status))

/*
 * Across processes (replay/group_world.c): every rank's `count` values
 * (count <= 4), gathered through the communicator, eagerly, on rank 0's
 * main stream, waited for by polling (at most timeout_ms): all[r * count
 * + i] is rank r's value i. Every process must call it at the same point.
 * A gather that cannot run or finish breaks the group (the communicator
 * aborted, so the peers' gathers end too).
 */
cgr_status cgr__group_world_gather(cgr_group *group, const uint64_t *mine,
                                   size_t count, uint64_t *all,
                                   const char *func);

/* Across processes, before a capture: every rank's bucket list equals
 * this process's, or CGR_E_CAPTURE naming a rank that differs (nothing is
 * captured, the group is not broken). CGR_OK at once in one process. */
cgr_status cgr__group_world_compare_buckets(cgr_group *group, const char *func);

/* Across processes: every rank's buckets and captured collectives equal
 * this process's, or CGR_E_CAPTURE naming a rank that differs (the group
 * breaks). CGR_OK at once in one process. */
cgr_status cgr__group_world_compare_captures(cgr_group *group,
                                             const char *func);

/* Across processes in validation mode: every rank's batch has the size,
 * tokens per request and variant of `batch`, or CGR_E_INVALID_ARGUMENT
 * naming a rank with another. CGR_OK at once in one process or without
 * validation. */
cgr_status cgr__group_world_check_batch(cgr_group *group,
                                        const cgr_batch *batch,
                                        const char *func);

/* NULL and broken groups, the start of every call. */
#define GROUP_ENTER(group)                                                     \
  do {                                                                         \
    if ((group) == NULL)                                                       \
      return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,                 \
                       "invalid argument 'group'");                            \
    if ((group)->broken)                                                       \
      return cgr__group_refuse_broken((group), __func__);                      \
  } while (0)

#endif /* CGR_REPLAY_GROUP_H */
