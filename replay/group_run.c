/*
 * The group calls that run the ranks' steps: capture, replay and the wait
 * for a ticket (the group object is in replay/group.h, its creation in
 * replay/group.c).
 *
 * A collective waits for all of its peers, so a call that runs the step
 * for real (a capture's warm-ups, an eager step, a lazy capture's
 * warm-up) runs each rank on a thread of its own and joins them; a graph
 * replay returns without waiting, so the ranks are launched in rank
 * order, all or (when rank 0 refuses) none, from the caller's thread on
 * the host backend and from a thread per rank on CUDA (NCCL's rule for
 * several GPUs in one process, runtime/cuda/cuda_nccl.c).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "capture/capture.h"
#include "cgr/cgr.h"
#include "replay/group.h"
#include "replay/replay.h"
#include "runtime/collective.h"
#include "runtime/error.h"
#include "runtime/runtime.h"

/* ---- ranks side by side -------------------------------------------------- */

/*
 * One rank's part of a call that runs ranks on threads of their own.
 * A rank that fails while a peer still runs aborts the communicator: the
 * peer may wait in a collective this rank will never reach.
 */
typedef struct rank_job {
  struct rank_run *run;
  int rank;
  cgr_status status;
  char message[CGR__ERROR_MESSAGE_SIZE];
  cgr_ticket ticket;
  cgr_batch *batch;
} rank_job;

typedef struct rank_run {
  cgr_group *group;
  cgr_status (*work)(cgr_runtime *rt, rank_job *job);
  cgr_step_fn step; /* capture */
  void *user;
  pthread_mutex_t lock;
  int running;       /* ranks not finished */
  int first_failure; /* the rank that failed first; -1: none */
  int comm_failed;   /* a collective had failed before that failure */
  int aborted;       /* this run aborted the communicator */
  rank_job jobs[CGR_GROUP_MAX_RANKS];
} rank_run;

static void rank_finished(rank_run *run, rank_job *job) {
  cgr_group *group = run->group;
  pthread_mutex_lock(&run->lock);
  run->running--;
  if (job->status != CGR_OK && run->first_failure < 0) {
    run->first_failure = job->rank;
    cgr__error err;
    if (cgr__error_init(&err) == CGR_OK) {
      run->comm_failed = cgr__comm_check(group->comm, &err) != CGR_OK;
      cgr__error_fini(&err);
    }
    if (!run->comm_failed && run->running > 0) {
      char why[CGR__ERROR_MESSAGE_SIZE];
      snprintf(why, sizeof why, "rank %d failed: %.460s",
               group->first_rank + job->rank, job->message);
      cgr__comm_abort(group->comm, why);
      run->aborted = 1;
    }
  }
  pthread_mutex_unlock(&run->lock);
}

static void *rank_thread(void *arg) {
  rank_job *job = arg;
  rank_run *run = job->run;
  cgr_runtime *rt = run->group->rt[job->rank];
  job->status = run->work(rt, job);
  if (job->status != CGR_OK)
    snprintf(job->message, sizeof job->message, "%s", cgr_last_error(rt));
  rank_finished(run, job);
  return NULL;
}

/* Runs run->work for every rank at once and joins them. CGR_E_SYSTEM (the
 * group broken) when a thread could not start; otherwise the jobs say. */
static cgr_status run_ranks(rank_run *run, const char *func) {
  cgr_group *group = run->group;
  pthread_t threads[CGR_GROUP_MAX_RANKS];
  int started = 0;
  if (pthread_mutex_init(&run->lock, NULL) != 0)
    return cgr__fail(&group->error, CGR_E_SYSTEM, func,
                     "initializing a lock failed");
  run->running = group->ranks;
  run->first_failure = -1;
  int failed_start = 0;
  for (int r = 0; r < group->ranks; ++r) {
    run->jobs[r].run = run;
    run->jobs[r].rank = r;
    run->jobs[r].status = CGR_OK;
    run->jobs[r].message[0] = '\0';
  }
  for (; started < group->ranks; ++started)
    if (pthread_create(&threads[started], NULL, rank_thread,
                       &run->jobs[started]) != 0) {
      failed_start = 1;
      break;
    }
  if (failed_start)
    cgr__comm_abort(group->comm, "a rank's thread could not start");
  for (int r = 0; r < started; ++r)
    pthread_join(threads[r], NULL);
  pthread_mutex_destroy(&run->lock);
  if (failed_start)
    return GROUP_BREAK_FAIL(group, CGR_E_SYSTEM, func,
                            "rank %d: pthread_create failed", started);
  return CGR_OK;
}

/*
 * After run_ranks: the group's status. A collective that could not meet
 * its peers is CGR_E_TIMEOUT; a rank's own failure is its status naming
 * it (`what` is the call the rank made). Either breaks the group when
 * some rank may have left a collective behind.
 */
static cgr_status run_outcome(rank_run *run, const char *func,
                              const char *what) {
  cgr_group *group = run->group;
  char reason[CGR__ERROR_MESSAGE_SIZE];
  cgr_status comm = cgr__group_comm_state(group, reason, sizeof reason);
  if (comm != CGR_OK && (!run->aborted || run->comm_failed)) {
    char first[48] = "";
    if (run->first_failure >= 0)
      snprintf(first, sizeof first, " (rank %d failed first)",
               group->first_rank + run->first_failure);
    return GROUP_BREAK_FAIL(group, CGR_E_TIMEOUT, func,
                            "a collective could not complete%s: %s", first,
                            reason);
  }
  if (run->first_failure < 0)
    return CGR_OK;
  const rank_job *job = &run->jobs[run->first_failure];
  if (run->aborted)
    return GROUP_BREAK_FAIL(group, job->status, func, "rank %d: %s failed: %s",
                            group->first_rank + job->rank, what, job->message);
  return cgr__fail(&group->error, job->status, func, "rank %d: %s failed: %s",
                   group->first_rank + job->rank, what, job->message);
}

/* ---- capture ------------------------------------------------------------- */

static cgr_status capture_work(cgr_runtime *rt, rank_job *job) {
  return cgr_capture(rt, job->run->step, job->run->user);
}

/* Every rank captured the same collectives for key `key`'s two
 * sets as rank 0, or CGR_E_CAPTURE naming the first rank that did not. */
static cgr_status compare_key(cgr_group *group, size_t key, const char *func) {
  const cgr__capture *cap = group->rt[0]->layers[CGR__LAYER_CAPTURE].state;
  uint32_t padded_batch = cgr__key_at(cap, key).padded_batch;
  for (int set = 0; set < CGR__SETS; ++set) {
    uint64_t sig0 = 0;
    uint32_t count0 = 0;
    for (int r = 0; r < group->ranks; ++r) {
      uint64_t sig = 0;
      uint32_t count = 0;
      cgr_status status =
          cgr__capture_collectives(group->rt[r], key, set, &sig, &count);
      if (status != CGR_OK)
        return cgr__fail(&group->error, status, func,
                         "rank %d: reading the collectives of bucket %u set "
                         "%d failed: %s",
                         r, padded_batch, set, cgr_last_error(group->rt[r]));
      if (r == 0) {
        sig0 = sig;
        count0 = count;
      } else if (sig != sig0 || count != count0) {
        return cgr__fail(&group->error, CGR_E_CAPTURE, func,
                         "rank %d captured other collectives than rank 0 in "
                         "bucket %u, set %d (%u collectives, signature "
                         "%016llx; rank 0: %u, %016llx): every rank must "
                         "call the same collectives in the same order",
                         r, padded_batch, set, count, (unsigned long long)sig,
                         count0, (unsigned long long)sig0);
      }
    }
  }
  return CGR_OK;
}

/* Compares every key rank 0 has captured, largest first (the order of
 * capture). */
static cgr_status compare_captures(cgr_group *group, const char *func) {
  const cgr__capture *cap = group->rt[0]->layers[CGR__LAYER_CAPTURE].state;
  for (size_t i = cap->key_count; i-- > 0;)
    if (cap->keys[i].stats.captured)
      CGR__CHECK(compare_key(group, i, func));
  return CGR_OK;
}

cgr_status cgr_group_capture(cgr_group *group, cgr_step_fn step, void *user) {
  GROUP_ENTER(group);
  if (step == NULL)
    return cgr__fail(&group->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument 'step'");
  if (group->captured)
    return cgr__fail(&group->error, CGR_E_INVALID_STATE, __func__,
                     "this group has already captured its step");
  /* Across processes, a rank with other buckets would capture other
   * graphs first: its warm-ups' collectives would meet the wrong peers. */
  CGR__CHECK(cgr__group_world_compare_buckets(group, __func__));
  rank_run run;
  memset(&run, 0, sizeof run);
  run.group = group;
  run.work = capture_work;
  run.step = step;
  run.user = user;
  CGR__CHECK(run_ranks(&run, __func__));
  CGR__CHECK(run_outcome(&run, __func__, "cgr_capture"));
  group->captured = 1;
  /* The graphs of ranks that disagree would wait in each other's
   * collectives at every replay, and a runtime captures once. */
  cgr_status status = compare_captures(group, __func__);
  if (status != CGR_OK)
    cgr__group_break(group, group->error.message);
  /* Across processes, the others' captures too (breaks on a mismatch). */
  if (status == CGR_OK)
    status = cgr__group_world_compare_captures(group, __func__);
  return status;
}

/* ---- replay and tickets ----------------------------------------------------
 */

/* A batch the ranks' replays would refuse alike, refused before any rank
 * launches (so a misuse does not break the group): not rank r's open
 * batch, another size than rank 0's, an input slot not given. */
static cgr_status check_batches(cgr_group *group, cgr_batch **batches,
                                const char *func) {
  for (int r = 0; r < group->ranks; ++r) {
    const cgr_batch *batch = batches[r];
    if (batch == NULL || batch->rt != group->rt[r] || !batch->open)
      return cgr__fail(&group->error, CGR_E_INVALID_ARGUMENT, func,
                       "rank %d: batches[%d] is not an open batch of rank "
                       "%d's runtime (cgr_group_batch_begin)",
                       r, r, r);
    if (batch->size != batches[0]->size)
      return cgr__fail(&group->error, CGR_E_INVALID_ARGUMENT, func,
                       "rank %d: its batch has %u rows and rank 0's %u: a "
                       "step has one batch size on every rank",
                       r, batch->size, batches[0]->size);
    if (batch->tokens != batches[0]->tokens ||
        batch->variant != batches[0]->variant)
      return cgr__fail(&group->error, CGR_E_INVALID_ARGUMENT, func,
                       "rank %d: its batch has %u tokens per request and "
                       "variant %u, rank 0's %u and %u: a step has one key on "
                       "every rank",
                       r, batch->tokens, batch->variant, batches[0]->tokens,
                       batches[0]->variant);
    const cgr__capture *cap = group->rt[r]->layers[CGR__LAYER_CAPTURE].state;
    for (size_t i = 0; cap != NULL && i < cap->slot_count; ++i)
      if (cgr__is_input(&cap->slots[i]) && batch->given[i] == CGR__GIVEN_NONE)
        return cgr__fail(&group->error, CGR_E_INVALID_ARGUMENT, func,
                         "rank %d: slot '%s' was not given in this batch "
                         "(input, unchanged, gather or feedback)",
                         r, cap->slots[i].name);
  }
  return CGR_OK;
}

/*
 * 1 when rank 0's replay of the batch runs the step for real and waits
 * for it, so that its collectives wait for the other ranks' replays: an
 * eager step (the eager mode, a batch over the largest bucket), or a
 * bucket not captured yet (lazy capture: its warm-up). *lazy is then 1
 * for the latter, the key's index in *key.
 */
static int runs_step(cgr_group *group, const cgr_batch *batch, int *lazy,
                     size_t *key) {
  cgr_runtime *rt = group->rt[0];
  const cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  const cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  *lazy = 0;
  *key = 0;
  if (replay != NULL && replay->mode == CGR_REPLAY_EAGER)
    return 1;
  if (cap == NULL || batch->size > cgr__largest_bucket(cap))
    return 1;
  *key = cgr__key_index(cap, cap->bucket_of[batch->size],
                        (size_t)cgr__token_index(cap, batch->tokens),
                        batch->variant);
  *lazy = !cap->keys[*key].stats.captured;
  return *lazy;
}

static cgr_status replay_work(cgr_runtime *rt, rank_job *job) {
  return cgr_replay(rt, job->batch, &job->ticket);
}

/* Every rank at once, on threads of its own. */
static cgr_status replay_threads(cgr_group *group, cgr_batch **batches,
                                 cgr_ticket *tickets, const char *func) {
  rank_run run;
  memset(&run, 0, sizeof run);
  run.group = group;
  run.work = replay_work;
  for (int r = 0; r < group->ranks; ++r)
    run.jobs[r].batch = batches[r];
  cgr_status status = run_ranks(&run, func);
  for (int r = 0; r < group->ranks; ++r)
    cgr_batch_discard(batches[r]); /* a rank that never started */
  CGR__CHECK(status);
  status = run_outcome(&run, func, "cgr_replay");
  /* Some rank's step ran and another's did not: their next collectives
   * would pair the wrong calls. */
  if (status != CGR_OK && !group->broken)
    for (int r = 0; r < group->ranks; ++r)
      if (run.jobs[r].status == CGR_OK)
        cgr__group_break(group, group->error.message);
  for (int r = 0; r < group->ranks; ++r)
    tickets[r] = run.jobs[r].ticket;
  return status;
}

/* Rank by rank, in rank order: each replay returns without waiting. */
static cgr_status replay_in_order(cgr_group *group, cgr_batch **batches,
                                  cgr_ticket *tickets, const char *func) {
  for (int r = 0; r < group->ranks; ++r) {
    cgr_status status = cgr_replay(group->rt[r], batches[r], &tickets[r]);
    if (status == CGR_OK)
      continue;
    char why[CGR__ERROR_MESSAGE_SIZE];
    snprintf(why, sizeof why, "%s", cgr_last_error(group->rt[r]));
    for (int q = r; q < group->ranks; ++q)
      cgr_batch_discard(batches[q]);
    if (r == 0)
      return cgr__fail(&group->error, status, func,
                       "rank 0: cgr_replay failed: %s", why);
    return GROUP_BREAK_FAIL(group, status, func,
                            "rank %d: cgr_replay failed after ranks 0 to %d "
                            "launched the step: %s",
                            r, r - 1, why);
  }
  return CGR_OK;
}

cgr_status cgr_group_replay(cgr_group *group, cgr_batch **batches,
                            cgr_ticket *ticket) {
  if (ticket != NULL)
    memset(ticket, 0, sizeof *ticket);
  if (group != NULL && batches != NULL && (group->broken || ticket == NULL))
    cgr_group_batch_discard(group, batches);
  GROUP_ENTER(group);
  if (batches == NULL || ticket == NULL)
    return cgr__fail(&group->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument '%s'",
                     batches == NULL ? "batches" : "ticket");
  cgr_status status = check_batches(group, batches, __func__);
  if (status == CGR_OK)
    status = cgr__group_world_check_batch(group, batches[0], __func__);
  if (status != CGR_OK) {
    cgr_group_batch_discard(group, batches);
    return status;
  }
  int lazy = 0;
  size_t key = 0;
  cgr_ticket tickets[CGR_GROUP_MAX_RANKS];
  memset(tickets, 0, sizeof tickets);
  /* NCCL: with several GPUs in one process a graph launch may block until
   * its peers' launches come, so one thread launching every rank's graph
   * can deadlock. On CUDA several ranks here launch from threads of their
   * own (a thread each per step: one process per GPU costs less). */
  int threads = runs_step(group, batches[0], &lazy, &key) ||
                (group->ranks > 1 && group->rt[0]->kind == CGR_BACKEND_CUDA);
  status = threads ? replay_threads(group, batches, tickets, __func__)
                   : replay_in_order(group, batches, tickets, __func__);
  CGR__CHECK(status);
  for (int r = 1; r < group->ranks; ++r)
    if (memcmp(&tickets[r], &tickets[0], sizeof tickets[0]) != 0)
      return GROUP_BREAK_FAIL(group, CGR_E_INTERNAL, __func__,
                              "rank %d's ticket (step %llu, set %d) differs "
                              "from rank 0's (step %llu, set %d)",
                              r, (unsigned long long)tickets[r].step,
                              tickets[r].set,
                              (unsigned long long)tickets[0].step,
                              tickets[0].set);
  /* A bucket this replay captured (lazy capture) is compared as
   * cgr_group_capture compares them. */
  if (lazy) {
    status = compare_key(group, key, __func__);
    if (status == CGR_OK)
      status = cgr__group_world_compare_captures(group, __func__);
    if (status != CGR_OK) {
      cgr__group_break(group, group->error.message);
      return status;
    }
  }
  *ticket = tickets[0];
  return CGR_OK;
}

/* A ticket of one rank, for cgr__group_poll. */
typedef struct ticket_query {
  cgr_runtime *rt;
  const cgr_ticket *ticket;
} ticket_query;

static cgr_status query_ticket(void *ctx) {
  const ticket_query *q = ctx;
  return cgr_ticket_query(q->rt, q->ticket);
}

cgr_status cgr_group_ticket_wait(cgr_group *group, const cgr_ticket *ticket) {
  GROUP_ENTER(group);
  if (ticket == NULL)
    return cgr__fail(&group->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument 'ticket'");
  cgr_status first = CGR_OK;
  double deadline = cgr__group_now_ms() + group->config.timeout_ms;
  for (int r = 0; r < group->ranks; ++r) {
    cgr_status status = CGR_OK;
    /* The host communicator times out by itself; NCCL does not. */
    if (group->rt[r]->kind == CGR_BACKEND_CUDA) {
      ticket_query q = {group->rt[r], ticket};
      status = cgr__group_poll(group, query_ticket, &q, deadline);
      if (status == CGR_E_TIMEOUT) {
        char why[CGR__ERROR_MESSAGE_SIZE];
        snprintf(why, sizeof why,
                 "rank %d: step %llu did not finish within %u ms "
                 "(timeout_ms): a collective of it waits for a peer that "
                 "never came, or NCCL reported an error; the communicator "
                 "was aborted",
                 group->first_rank + r, (unsigned long long)ticket->step,
                 group->config.timeout_ms);
        cgr__comm_abort(group->comm, why);
        /* The stuck kernels end: the stream drains. */
        (void)cgr_ticket_wait(group->rt[r], ticket);
      }
    }
    if (status == CGR_OK)
      status = cgr_ticket_wait(group->rt[r], ticket);
    if (status != CGR_OK && first == CGR_OK)
      first = cgr__fail(&group->error, status, __func__,
                        "rank %d: cgr_ticket_wait failed: %s",
                        group->first_rank + r, cgr_last_error(group->rt[r]));
  }
  char reason[CGR__ERROR_MESSAGE_SIZE];
  if (cgr__group_comm_state(group, reason, sizeof reason) != CGR_OK)
    return GROUP_BREAK_FAIL(group, CGR_E_TIMEOUT, __func__,
                            "a collective of step %llu could not complete: %s",
                            (unsigned long long)ticket->step, reason);
  return first;
}
