/*
 * cgr groups: one decode step replayed tensor-parallel by several runtimes,
 * one per GPU, with collectives inside the step's graphs.
 *
 * Included by <cgr/cgr.h>; include that. Threading, errors and ownership
 * are as described at the top of <cgr/cgr.h>, except where a function
 * below says otherwise.
 */
#ifndef CGR_CGR_GROUP_H
#define CGR_CGR_GROUP_H

#include "cgr/cgr.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Collectives inside a step                                                 */
/* ------------------------------------------------------------------------ */

/* Element types of a collective. */
typedef enum cgr_dtype {
  CGR_DTYPE_INT8 = 0,
  CGR_DTYPE_UINT8 = 1,
  CGR_DTYPE_INT32 = 2,
  CGR_DTYPE_UINT32 = 3,
  CGR_DTYPE_INT64 = 4,
  CGR_DTYPE_UINT64 = 5,
  CGR_DTYPE_FLOAT16 = 6,
  CGR_DTYPE_BFLOAT16 = 7,
  CGR_DTYPE_FLOAT32 = 8,
  CGR_DTYPE_FLOAT64 = 9
} cgr_dtype;

typedef enum cgr_reduce_op {
  CGR_REDUCE_SUM = 0,
  CGR_REDUCE_PROD = 1,
  CGR_REDUCE_MAX = 2,
  CGR_REDUCE_MIN = 3
} cgr_reduce_op;

/* The step's rank in its group (0 for a runtime outside a group), and the
 * group's rank count (1 outside a group). */
CGR_API int cgr_step_rank(const cgr_step *step);
CGR_API int cgr_step_ranks(const cgr_step *step);

/*
 * Collectives a step enqueues on its stream, captured into its graphs like
 * any other work: every rank of the group must call the same collectives,
 * with the same counts, types and order, in every run of the step. On
 * CUDA they are NCCL's (ncclAllReduce, ncclAllGather, ncclBroadcast on the
 * step's stream, with the rank's communicator); on the host backend, the
 * group's host communicator, with the same semantics. send and recv are
 * device memory of the rank's runtime (slots or scratch); send == recv is
 * allowed (in place; for all-gather, send must then be recv + rank *
 * count elements). In a runtime outside a group (one rank) each is a copy
 * of send into recv (or nothing, in place).
 *
 *   all_reduce  recv[i] = op over the ranks of send[i], i < count
 *   all_gather  recv[r * count + i] = rank r's send[i]
 *   broadcast   recv[i] = rank root's send[i]
 *
 * Errors: CGR_E_INVALID_ARGUMENT (NULL, count 0, a dtype, op or root out of
 * range), CGR_E_CUDA (NCCL's error string in the message). A failure fails
 * the step's run as every cgr_step_* call does.
 */
CGR_API cgr_status cgr_step_all_reduce(cgr_step *step, const void *send,
                                       void *recv, size_t count,
                                       cgr_dtype dtype, cgr_reduce_op op);
CGR_API cgr_status cgr_step_all_gather(cgr_step *step, const void *send,
                                       void *recv, size_t count,
                                       cgr_dtype dtype);
CGR_API cgr_status cgr_step_broadcast(cgr_step *step, const void *send,
                                      void *recv, size_t count, cgr_dtype dtype,
                                      int root);

/* ------------------------------------------------------------------------ */
/* Groups                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A group is `ranks` runtimes in this process, one per device, that run one
 * step together: created with the same configuration (buckets, replay
 * mode, ...), the same slots, the same step. Captures run on all ranks at
 * once, in the same order on each (every bucket, largest first, then set 0
 * and 1), so their warm-ups' collectives meet and every rank captures the
 * same collectives; a step's batch size, and so its bucket, is the same on
 * every rank; one replay call launches every rank's graph and returns one
 * ticket, valid on every rank.
 *
 * A collective that cannot complete (a rank failed before it, or called
 * another collective) does not hang forever. On the host backend it ends
 * after cgr_group_config.timeout_ms wherever it waits. On CUDA NCCL gives
 * up on nothing by itself: cgr aborts the communicator (ncclCommAbort,
 * which ends the stuck kernels) when a rank fails while others run, and
 * cgr_group_ticket_wait gives up after timeout_ms; a warm-up or an eager
 * step (which cgr_group_capture and cgr_group_replay wait for) whose
 * collective never completes, with no rank failing, blocks as NCCL blocks.
 * The call that meets the failure returns CGR_E_TIMEOUT naming the rank,
 * and the group is broken: every later call but cgr_group_destroy returns
 * CGR_E_INVALID_STATE with that message.
 */
typedef struct cgr_group cgr_group;

#define CGR_GROUP_MAX_RANKS 8
#define CGR_GROUP_CONFIG_VERSION 2

/* Read by the rule of every versioned struct (top of <cgr/cgr.h>), and so
 * is the cgr_config `runtime` points to. */
typedef struct cgr_group_config {
  size_t size;      /* set by cgr_group_config_init */
  uint32_t version; /* set by cgr_group_config_init */
  int ranks;        /* 1 to CGR_GROUP_MAX_RANKS; default 2 */
  /* Every rank's runtime config (NULL: cgr_config_init's defaults). On
   * CUDA rank r runs on devices[r] (NULL: device r). */
  const cgr_config *runtime;
  const int *devices;
  /* How long a collective waits for the other ranks before the group
   * breaks (host backend; on CUDA how long cgr_group_ticket_wait waits),
   * and how long processes wait for each other to join. Default 30000 ms;
   * 0 is refused. */
  uint32_t timeout_ms;
  /* Version 2. One rank per process: this process holds rank world_rank
   * of a group of world_ranks ranks (ranks must then be 1), joined through
   * `id`, cgr_group_id_create's text, the same in every process. 0 (the
   * default): every rank of the group is in this process. On CUDA the
   * rank runs on devices[0] when given, else on runtime->device (or
   * CGR_DEVICE, which wins). */
  int world_ranks;
  int world_rank;
  const char *id;
  /* Version 2. CUDA: the caller's own NCCL communicators (ncclComm_t, as
   * void *), nccl_comms[r] for this process's rank r, instead of ones cgr
   * makes (world_ranks and id must then be 0 and NULL: the communicators
   * say the ranks, through ncclCommUserRank and ncclCommCount). Either
   * every rank of the group is in this process (a communicator per rank,
   * ncclCommInitAll's), or ranks is 1 and the communicator spans
   * processes. Each rank's runtime must be on its communicator's device
   * (ncclCommCuDevice): devices[r], else device r (runtime->device with
   * one rank). cgr never destroys them, and they must outlive the group;
   * but a group that breaks aborts them (ncclCommAbort, which frees
   * them): after a broken group the caller must not use or destroy them.
   * Every collective cgr issues on them is a step's, a warm-up's or a
   * check's, in the order the group's calls make them: the caller's own
   * collectives on the same communicator must not interleave with the
   * group's calls. */
  void *const *nccl_comms;
} cgr_group_config;

/* Defaults, size and version. CGR_E_INVALID_ARGUMENT on NULL. Any thread. */
CGR_API cgr_status cgr_group_config_init(cgr_group_config *config);

/*
 * Creates the group: its runtimes, and the communicator that joins them
 * (on CUDA ncclCommInitAll over the devices; on the host backend a host
 * communicator). Errors: those of cgr_runtime_create (naming the rank),
 * CGR_E_INVALID_ARGUMENT (NULL, ranks out of range, timeout_ms 0, a device
 * given twice),
 * CGR_E_UNSUPPORTED (a CUDA group, one rank included, in a build without
 * NCCL or where libnccl cannot be loaded: the message says which; the
 * runtime config's mode CGR_REPLAY_PIPELINED, which groups do not run
 * yet), CGR_E_CUDA (NCCL's initialization). Nothing is left on failure.
 */
CGR_API cgr_status cgr_group_create(const cgr_group_config *config,
                                    cgr_group **out);

/* Waits for every rank's work, then frees the runtimes and the
 * communicator. NULL is a no-op. */
CGR_API void cgr_group_destroy(cgr_group *group);

/* The number of ranks in this process (0 for NULL): 1 in a group of one
 * rank per process. */
CGR_API int cgr_group_ranks(const cgr_group *group);

/* The group's rank count across every process (cgr_group_ranks for a
 * group in one process; 0 for NULL). */
CGR_API int cgr_group_world_ranks(const cgr_group *group);

/* The rank in the whole group of this process's rank `local` (0 to
 * cgr_group_ranks - 1): `local` itself in one process, world_rank across
 * processes; -1 for NULL or out of range. cgr_step_rank gives the same. */
CGR_API int cgr_group_rank(const cgr_group *group, int local);

/* Rank `rank`'s runtime, owned by the group (NULL out of range): for its
 * slots' addresses, outputs, memory helpers, stats. Do not capture or
 * replay it alone, nor destroy it. */
CGR_API cgr_runtime *cgr_group_runtime(cgr_group *group, int rank);

/* Declares the slot on every rank (the same index everywhere); a CONSTANT
 * slot's fill is called for each rank, and is not told which: data that
 * differs per rank (a weight shard) is written by the step, which knows
 * its rank (cgr_step_rank). Errors as cgr_slot_declare, naming
 * the rank. Ranks are checked alike, so only rank 0 can refuse a desc;
 * should a later rank fail (out of device memory), the group breaks. */
CGR_API cgr_status cgr_group_slot_declare(cgr_group *group,
                                          const cgr_slot_desc *desc,
                                          cgr_slot *out);
/* cgr_slot_feed on every rank. */
CGR_API cgr_status cgr_group_slot_feed(cgr_group *group, cgr_slot output,
                                       cgr_slot input);

/*
 * Registers the step and captures it on every rank at once (one thread per
 * rank, each running cgr_capture on its runtime): the step function is
 * called for every rank (cgr_step_rank says which), possibly from several
 * threads at once. After the captures, the ranks' collectives per bucket
 * and set are compared: a rank whose collectives differ is refused
 * (CGR_E_CAPTURE naming the rank, the bucket and the set). Errors: those of
 * cgr_capture naming the rank (the group breaks when that rank failed
 * while others still ran: they may wait in a collective it never reached,
 * so the communicator is aborted); a collective that could not meet its
 * peers in a warm-up, CGR_E_TIMEOUT (the group breaks). A refused
 * comparison breaks the group too: a runtime captures once.
 */
CGR_API cgr_status cgr_group_capture(cgr_group *group, cgr_step_fn step,
                                     void *user);

/*
 * The next step's batches, one per rank, all of `batch_size` rows:
 * batches[r] is rank r's, to fill with the cgr_batch_* calls (each rank's
 * inputs may differ). Errors as cgr_batch_begin, naming the rank; no batch
 * stays open on failure.
 */
CGR_API cgr_status cgr_group_batch_begin(cgr_group *group, uint32_t batch_size,
                                         cgr_batch **batches);

/* The same for a key's tokens per request and variant (cgr_batch_begin_key
 * on every rank): a step has one key on every rank, which cgr_group_replay
 * checks in one process and validation mode checks across processes. */
CGR_API cgr_status cgr_group_batch_begin_key(cgr_group *group,
                                             uint32_t batch_size,
                                             uint32_t tokens_per_request,
                                             uint32_t variant,
                                             cgr_batch **batches);

/* Discards every rank's batch. */
CGR_API void cgr_group_batch_discard(cgr_group *group, cgr_batch **batches);

/*
 * Replays every rank's batch (as cgr_replay, all ranks at once: an eager
 * step runs every rank in a thread of its own, since its collectives wait
 * for their peers) and returns the group's ticket, the same on every rank.
 * On failure of one rank's replay the other ranks' batches are discarded
 * before any launch where possible; a rank that fails after others
 * launched breaks the group (their collectives cannot meet).
 */
CGR_API cgr_status cgr_group_replay(cgr_group *group, cgr_batch **batches,
                                    cgr_ticket *ticket);

/* Waits for the ticket's step on every rank; CGR_E_TIMEOUT when a
 * collective of it could not complete (the group breaks). On CUDA it polls
 * the step and gives up after timeout_ms, aborting the communicator. */
CGR_API cgr_status cgr_group_ticket_wait(cgr_group *group,
                                         const cgr_ticket *ticket);

/* cgr_set_replay_mode on every rank; CGR_E_UNSUPPORTED for
 * CGR_REPLAY_PIPELINED, which groups do not run yet. */
CGR_API cgr_status cgr_group_set_replay_mode(cgr_group *group,
                                             cgr_replay_mode mode);

/* ------------------------------------------------------------------------ */
/* Across processes                                                          */
/* ------------------------------------------------------------------------ */

/*
 * One process per GPU, on one machine or several: each process creates the
 * group with ranks 1, world_ranks and its world_rank, and the same id,
 * made once by one process (or a launcher) and handed to the others as
 * text: a file, an environment variable (scripts/tp_launch.sh and
 * docs/tensor-parallel.md show both). cgr_group_create returns once every
 * rank joined (or fails after timeout_ms naming the ranks missing).
 *
 * Every process calls the same group calls in the same order with the
 * same config (buckets, replay mode, validation); a step's batch size is
 * the callers' to agree on (their scheduler's decision). What cgr checks
 * across processes, through the communicator: after a capture (and a lazy
 * capture), every rank's bucket list and collectives (CGR_E_CAPTURE naming
 * the rank; the group breaks); in validation mode (cgr_config.validate),
 * every replay's batch size before any rank launches (CGR_E_INVALID_ARGUMENT
 * naming the rank, in every process alike; nothing is launched and the
 * group stays usable). Without validation a disagreeing batch size is not
 * seen: the ranks' graphs then wait for each other's collectives until the
 * host backend's timeout, or on CUDA cgr_group_ticket_wait's (which aborts
 * the communicator).
 */

/* Room for an id, its NUL included. */
#define CGR_GROUP_ID_MAX 320

/*
 * Makes a new group id into out (size at least CGR_GROUP_ID_MAX), for
 * one group: "nccl:" and NCCL's unique id in hex on CUDA (ncclGetUniqueId:
 * it names this machine's address, so make it where rank 0 runs; ranks on
 * other machines reach it through NCCL's bootstrap, NCCL_SOCKET_IFNAME);
 * "host:" and a shared-memory name on the host backend (the processes of
 * one machine). backend: CGR_BACKEND_CUDA, CGR_BACKEND_HOST, or
 * CGR_BACKEND_AUTO for the backend cgr_runtime_create would pick here.
 * On CUDA the process that makes the id must live until every rank has
 * joined: NCCL's bootstrap root runs in it (an id made by a process that
 * has exited cannot be joined). Make it in rank 0's process and hand it
 * out from there (cgr-decode --group-id-file shows how).
 * Errors: CGR_E_INVALID_ARGUMENT (NULL, size too small), CGR_E_UNSUPPORTED
 * (CUDA without NCCL), CGR_E_CUDA (ncclGetUniqueId failed), those of
 * cgr_runtime_create (AUTO). Any thread; the message is this thread's
 * (cgr_group_last_error(NULL)).
 */
CGR_API cgr_status cgr_group_id_create(cgr_backend_kind backend, char *out,
                                       size_t size);

/* The message of the group's last failure ("" when none); with group NULL,
 * this thread's last failed cgr_group_create (as cgr_last_error(NULL)). */
CGR_API const char *cgr_group_last_error(const cgr_group *group);

#ifdef __cplusplus
}
#endif

#endif /* CGR_CGR_GROUP_H */
