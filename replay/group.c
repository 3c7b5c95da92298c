/*
 * Groups: one runtime per rank (per GPU), joined by a communicator
 * (runtime/collective.h), running one step together, tensor-parallel.
 *
 * Like lanes, a rank is a whole runtime, so every guarantee of a single
 * runtime holds per rank. What a group adds is that its ranks must never
 * disagree about the collectives they run: a collective waits for all of
 * its peers. So every call that runs the step for real (a capture's
 * warm-ups, an eager step, a lazy capture's warm-up) runs each rank on a
 * thread of its own and joins them, and a graph replay launches every
 * rank, in rank order, or none. When a rank fails after its peers may
 * have entered a collective, the communicator is aborted so that nothing
 * waits forever, and the group is broken: only destroy is left.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "replay/group.h"

#include "cgr/cgr.h"
#include "runtime/alloc.h"
#include "runtime/collective.h"
#include "runtime/error.h"
#include "runtime/runtime.h"
#include "runtime/versioned.h"

/* ---- config -------------------------------------------------------------- */

/* Where each version's fields end (runtime/versioned.h): version 1 ended
 * with `timeout_ms`, version 2 with `nccl_comms`. */
static const size_t config_ends[] = {CGR__FIELD_END(cgr_group_config,
                                                    timeout_ms),
                                     CGR__FIELD_END(cgr_group_config,
                                                    nccl_comms)};
CGR__VERSIONED_STRUCT(cgr_group_config, config_ends, CGR_GROUP_CONFIG_VERSION);
static const cgr__versions config_versions = {"cgr_group_config",
                                              "cgr_group_config_init",
                                              sizeof(cgr_group_config),
                                              CGR_GROUP_CONFIG_VERSION,
                                              config_ends};

cgr_status cgr_group_config_init(cgr_group_config *config) {
  if (config == NULL)
    return CGR_E_INVALID_ARGUMENT;
  memset(config, 0, sizeof *config);
  config->size = sizeof *config;
  config->version = CGR_GROUP_CONFIG_VERSION;
  config->ranks = 2;
  config->timeout_ms = 30000;
  return CGR_OK;
}

/* ---- broken groups ------------------------------------------------------- */

void cgr__group_break(cgr_group *group, const char *why) {
  if (group->broken)
    return;
  group->broken = 1;
  snprintf(group->broken_why, sizeof group->broken_why, "%s", why);
  if (group->comm != NULL)
    cgr__comm_abort(group->comm, group->broken_why);
}

cgr_status cgr__group_comm_state(cgr_group *group, char *reason, size_t size) {
  reason[0] = '\0';
  cgr__error err;
  cgr_status status = cgr__error_init(&err);
  if (status != CGR_OK) {
    snprintf(reason, size, "initializing an error record failed");
    return status;
  }
  status = cgr__comm_check(group->comm, &err);
  snprintf(reason, size, "%s", err.message);
  cgr__error_fini(&err);
  return status;
}

double cgr__group_now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

cgr_status cgr__group_poll(cgr_group *group, cgr_status (*query)(void *ctx),
                           void *ctx, double deadline_ms) {
  char reason[CGR__ERROR_MESSAGE_SIZE];
  for (long polls = 0;; ++polls) {
    cgr_status status = query(ctx);
    if (status != CGR_E_NOT_READY)
      return status;
    if (cgr__group_comm_state(group, reason, sizeof reason) != CGR_OK ||
        cgr__group_now_ms() > deadline_ms)
      return CGR_E_TIMEOUT;
    if (polls > 1000)
      nanosleep(&(struct timespec){0, 20000}, NULL);
  }
}

cgr_status cgr__group_refuse_broken(cgr_group *group, const char *func) {
  char why[CGR__ERROR_MESSAGE_SIZE];
  snprintf(why, sizeof why, "%s", group->broken_why);
  return cgr__fail(&group->error, CGR_E_INVALID_STATE, func,
                   "the group is broken (only cgr_group_destroy is left): %s",
                   why);
}

/* ---- create and destroy -------------------------------------------------- */

void cgr_group_destroy(cgr_group *group) {
  if (group == NULL)
    return;
  if (group->comm != NULL) {
    /* A broken communicator may have a collective waiting for a peer
     * that will never come: end it before waiting for the streams. */
    cgr__error err;
    int have_err = cgr__error_init(&err) == CGR_OK;
    if (group->broken ||
        (have_err && cgr__comm_check(group->comm, &err) != CGR_OK))
      cgr__comm_abort(group->comm, "cgr_group_destroy: the group is broken");
    if (have_err)
      cgr__error_fini(&err);
  }
  for (int r = 0; r < group->ranks; ++r)
    if (group->rt[r] != NULL)
      (void)cgr_synchronize(group->rt[r]);
  /* The streams are drained: no collective uses the communicator. The
   * runtimes, and with them the graphs that hold its collectives, go
   * first: NCCL (2.26 and later) does not end a communicator while a graph
   * that captured one of its collectives lives. */
  for (int r = 0; r < group->ranks; ++r)
    if (group->rt[r] != NULL)
      group->rt[r]->comm = NULL;
  for (int r = 0; r < group->ranks; ++r)
    cgr_runtime_destroy(group->rt[r]);
  cgr__comm_destroy(group->comm);
  cgr__error_fini(&group->error);
  cgr__free(group);
}

/* Checks the resolved config; the message goes to this thread's
 * create-error. */
static cgr_status check_config(const cgr_group_config *config) {
  if (config->ranks < 1 || config->ranks > CGR_GROUP_MAX_RANKS)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, "cgr_group_create",
                     "config->ranks is %d; it must be 1 to %d", config->ranks,
                     CGR_GROUP_MAX_RANKS);
  if (config->timeout_ms == 0)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, "cgr_group_create",
                     "config->timeout_ms is 0; it must be at least 1");
  if (config->world_ranks < 0 || config->world_ranks > CGR_GROUP_MAX_RANKS)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, "cgr_group_create",
                     "config->world_ranks is %d; it must be 0 (every rank in "
                     "this process) or 1 to %d",
                     config->world_ranks, CGR_GROUP_MAX_RANKS);
  if (config->nccl_comms != NULL) {
    if (config->world_ranks != 0 || config->id != NULL)
      return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, "cgr_group_create",
                       "config->nccl_comms is given with world_ranks %d and "
                       "id %s: the communicators say the ranks (leave 0 and "
                       "NULL)",
                       config->world_ranks,
                       config->id != NULL ? "set" : "NULL");
    for (int r = 0; r < config->ranks; ++r)
      if (config->nccl_comms[r] == NULL)
        return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, "cgr_group_create",
                         "config->nccl_comms[%d] is NULL", r);
  }
  if (config->world_ranks > 0) {
    if (config->ranks != 1)
      return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, "cgr_group_create",
                       "config->ranks is %d with world_ranks %d: a process "
                       "of a group across processes holds one rank",
                       config->ranks, config->world_ranks);
    if (config->world_rank < 0 || config->world_rank >= config->world_ranks)
      return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, "cgr_group_create",
                       "config->world_rank is %d; it must be 0 to %d",
                       config->world_rank, config->world_ranks - 1);
    if (config->id == NULL || config->id[0] == '\0')
      return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, "cgr_group_create",
                       "config->id is %s: a group across processes needs "
                       "cgr_group_id_create's id, the same in every process",
                       config->id == NULL ? "NULL" : "empty");
    if (strlen(config->id) >= CGR_GROUP_ID_MAX)
      return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, "cgr_group_create",
                       "config->id is %zu characters long, more than an id "
                       "holds (%d): not cgr_group_id_create's",
                       strlen(config->id), CGR_GROUP_ID_MAX - 1);
  }
  for (int r = 0; config->devices != NULL && r < config->ranks; ++r)
    for (int q = 0; q < r; ++q)
      if (config->devices[q] == config->devices[r])
        return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, "cgr_group_create",
                         "config->devices gives device %d twice (ranks %d "
                         "and %d): a group has one rank per device",
                         config->devices[r], q, r);
  return CGR_OK;
}

/* Makes every rank's runtime from `base`: the backend rank 0 resolved to
 * for all (so AUTO cannot pick two), and a device per rank on CUDA. */
static cgr_status create_runtimes(cgr_group *group, const cgr_config *base,
                                  const int *devices) {
  cgr_config config = *base;
  for (int r = 0; r < group->ranks; ++r) {
    /* Across processes the process's device is the caller's choice. */
    int own = group->world || (group->adopted && group->ranks == 1);
    config.device = devices != NULL ? devices[r] : own ? base->device : r;
    cgr_status status = cgr_runtime_create(&config, &group->rt[r]);
    if (status != CGR_OK) {
      char why[CGR__ERROR_MESSAGE_SIZE];
      snprintf(why, sizeof why, "%s", cgr_last_error(NULL));
      return cgr__fail(NULL, status, "cgr_group_create",
                       "rank %d: cgr_runtime_create failed: %s", r, why);
    }
    config.backend = cgr_backend(group->rt[r]);
    group->rt[r]->rank = group->first_rank + r;
  }
  if (cgr_backend(group->rt[0]) != CGR_BACKEND_CUDA)
    return CGR_OK;
  /* CGR_DEVICE wins over config->device: it may have put ranks together. */
  int ordinal[CGR_GROUP_MAX_RANKS];
  for (int r = 0; r < group->ranks; ++r) {
    cgr_device_info info;
    cgr_status status = cgr_device_info_get(group->rt[r], &info);
    if (status != CGR_OK)
      return cgr__fail(NULL, status, "cgr_group_create",
                       "rank %d: cgr_device_info_get failed: %s", r,
                       cgr_last_error(group->rt[r]));
    ordinal[r] = info.ordinal;
    for (int q = 0; q < r; ++q)
      if (ordinal[q] == ordinal[r])
        return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, "cgr_group_create",
                         "ranks %d and %d are both on device %d (is "
                         "CGR_DEVICE set?): a group has one rank per device",
                         q, r, ordinal[r]);
  }
  return CGR_OK;
}

/* The caller's communicators (config->nccl_comms): the ranks they say
 * become the group's. */
static cgr_status adopt_comm(cgr_group *group, void *const *comms) {
  cgr__error err;
  CGR__CHECK(cgr__error_init(&err));
  int first = 0, world = 0;
  cgr_status status = cgr__comm_adopt(group->rt, group->ranks, comms, &err,
                                      &first, &world, &group->comm);
  if (status != CGR_OK)
    cgr__fail(NULL, status, "cgr_group_create",
              "adopting config->nccl_comms failed: %s", err.message);
  cgr__error_fini(&err);
  CGR__CHECK(status);
  group->world = world > group->ranks;
  group->world_ranks = world;
  group->first_rank = first;
  for (int r = 0; r < group->ranks; ++r) {
    group->rt[r]->comm = group->comm;
    group->rt[r]->rank = first + r;
  }
  return CGR_OK;
}

static cgr_status create_comm(cgr_group *group) {
  cgr__error err;
  CGR__CHECK(cgr__error_init(&err));
  cgr_status status =
      group->world
          ? cgr__comm_join(group->rt[0], group->first_rank, group->world_ranks,
                           group->id, group->config.timeout_ms, &err,
                           &group->comm)
          : cgr__comm_create(group->rt, group->ranks, group->config.timeout_ms,
                             &err, &group->comm);
  if (status != CGR_OK)
    cgr__fail(NULL, status, "cgr_group_create", "%s of %d ranks failed: %s",
              group->world ? "joining the communicator"
                           : "creating the communicator",
              group->world_ranks, err.message);
  cgr__error_fini(&err);
  if (status != CGR_OK)
    return status;
  for (int r = 0; r < group->ranks; ++r) {
    group->rt[r]->comm = group->comm;
    group->rt[r]->rank = group->first_rank + r;
  }
  return CGR_OK;
}

cgr_status cgr_group_create(const cgr_group_config *config, cgr_group **out) {
  if (out != NULL)
    *out = NULL;
  if (config == NULL || out == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument '%s'",
                     config == NULL ? "config" : "out");
  cgr_group_config resolved;
  cgr_group_config_init(&resolved);
  CGR__CHECK(cgr__versioned_read(&config_versions, config, &resolved, NULL,
                                 __func__, "config"));
  CGR__CHECK(check_config(&resolved));
  /* The runtime config by the same rule: an older caller's is shorter
   * than a cgr_config, and only its own size may be read. */
  cgr_config base;
  cgr_config_init(&base);
  if (resolved.runtime != NULL)
    CGR__CHECK(cgr__versioned_read(&cgr__config_versions, resolved.runtime,
                                   &base, NULL, __func__, "config->runtime"));
  if (base.replay_mode == CGR_REPLAY_PIPELINED)
    return cgr__fail(NULL, CGR_E_UNSUPPORTED, __func__,
                     "config->runtime->replay_mode is CGR_REPLAY_PIPELINED, "
                     "which groups do not run yet: choose another mode");

  cgr_group *group = cgr__calloc(1, sizeof *group);
  if (group == NULL)
    return cgr__fail(NULL, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the group failed");
  cgr_status status = cgr__error_init(&group->error);
  if (status != CGR_OK) {
    cgr__free(group);
    return cgr__fail(NULL, status, __func__, "initializing a lock failed");
  }
  group->ranks = resolved.ranks;
  group->world = resolved.world_ranks > 0;
  group->world_ranks = group->world ? resolved.world_ranks : resolved.ranks;
  group->first_rank = group->world ? resolved.world_rank : 0;
  if (group->world)
    snprintf(group->id, sizeof group->id, "%s", resolved.id);
  group->config = resolved;
  group->config.runtime = NULL;
  group->config.devices = NULL;
  group->config.id = NULL;
  group->config.nccl_comms = NULL;
  group->adopted = resolved.nccl_comms != NULL;
  status = create_runtimes(group, &base, resolved.devices);
  if (status == CGR_OK)
    status = group->adopted ? adopt_comm(group, resolved.nccl_comms)
                            : create_comm(group);
  if (status != CGR_OK) {
    cgr_group_destroy(group);
    return status;
  }
  group->mode = group->rt[0]->config.replay_mode;
  *out = group;
  return CGR_OK;
}

int cgr_group_ranks(const cgr_group *group) {
  return group != NULL ? group->ranks : 0;
}

int cgr_group_world_ranks(const cgr_group *group) {
  return group != NULL ? group->world_ranks : 0;
}

int cgr_group_rank(const cgr_group *group, int local) {
  return group != NULL && local >= 0 && local < group->ranks
             ? group->first_rank + local
             : -1;
}

cgr_runtime *cgr_group_runtime(cgr_group *group, int rank) {
  return group != NULL && rank >= 0 && rank < group->ranks ? group->rt[rank]
                                                           : NULL;
}

const char *cgr_group_last_error(const cgr_group *group) {
  return group != NULL ? group->error.message : cgr__thread_error_message();
}

/* ---- slots and modes ----------------------------------------------------- */

cgr_status cgr_group_slot_declare(cgr_group *group, const cgr_slot_desc *desc,
                                  cgr_slot *out) {
  if (out != NULL)
    *out = -1;
  GROUP_ENTER(group);
  if (out == NULL)
    return cgr__fail(&group->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument 'out'");
  cgr_slot first = -1;
  for (int r = 0; r < group->ranks; ++r) {
    cgr_slot slot = -1;
    cgr_status status = cgr_slot_declare(group->rt[r], desc, &slot);
    if (status != CGR_OK && r == 0)
      return cgr__fail(&group->error, status, __func__,
                       "rank 0: cgr_slot_declare failed: %s",
                       cgr_last_error(group->rt[0]));
    /* Rank 0 took the desc: a later rank that fails differs by more than
     * the desc, and the ranks' slots no longer match. */
    if (status != CGR_OK)
      return GROUP_BREAK_FAIL(group, status, __func__,
                              "rank %d: cgr_slot_declare failed after rank 0 "
                              "declared the slot: %s",
                              r, cgr_last_error(group->rt[r]));
    if (r == 0)
      first = slot;
    else if (slot != first)
      return GROUP_BREAK_FAIL(group, CGR_E_INTERNAL, __func__,
                              "rank %d declared slot %d where rank 0 declared "
                              "slot %d",
                              r, (int)slot, (int)first);
  }
  *out = first;
  return CGR_OK;
}

cgr_status cgr_group_slot_feed(cgr_group *group, cgr_slot output,
                               cgr_slot input) {
  GROUP_ENTER(group);
  for (int r = 0; r < group->ranks; ++r) {
    cgr_status status = cgr_slot_feed(group->rt[r], output, input);
    if (status != CGR_OK && r == 0)
      return cgr__fail(&group->error, status, __func__,
                       "rank 0: cgr_slot_feed failed: %s",
                       cgr_last_error(group->rt[0]));
    if (status != CGR_OK)
      return GROUP_BREAK_FAIL(group, status, __func__,
                              "rank %d: cgr_slot_feed failed after rank 0 "
                              "took the feed: %s",
                              r, cgr_last_error(group->rt[r]));
  }
  return CGR_OK;
}

cgr_status cgr_group_set_replay_mode(cgr_group *group, cgr_replay_mode mode) {
  GROUP_ENTER(group);
  if (mode == CGR_REPLAY_PIPELINED)
    return cgr__fail(&group->error, CGR_E_UNSUPPORTED, __func__,
                     "groups do not run CGR_REPLAY_PIPELINED yet: choose "
                     "another mode");
  for (int r = 0; r < group->ranks; ++r) {
    cgr_status status = cgr_set_replay_mode(group->rt[r], mode);
    if (status == CGR_OK)
      continue;
    cgr__fail(&group->error, status, __func__,
              "rank %d: cgr_set_replay_mode failed: %s", r,
              cgr_last_error(group->rt[r]));
    /* All ranks or none: the ones switched go back. */
    for (int q = 0; q < r; ++q)
      (void)cgr_set_replay_mode(group->rt[q], group->mode);
    return status;
  }
  group->mode = mode;
  return CGR_OK;
}

/* ---- batches ----------------------------------------------------------- */

cgr_status cgr_group_batch_begin(cgr_group *group, uint32_t batch_size,
                                 cgr_batch **batches) {
  if (group != NULL && batches != NULL)
    memset(batches, 0, (size_t)group->ranks * sizeof *batches);
  GROUP_ENTER(group);
  return cgr_group_batch_begin_key(group, batch_size,
                                   group->rt[0]->config.tokens_per_request[0],
                                   0, batches);
}

cgr_status cgr_group_batch_begin_key(cgr_group *group, uint32_t batch_size,
                                     uint32_t tokens_per_request,
                                     uint32_t variant, cgr_batch **batches) {
  if (group != NULL && batches != NULL)
    memset(batches, 0, (size_t)group->ranks * sizeof *batches);
  GROUP_ENTER(group);
  if (batches == NULL)
    return cgr__fail(&group->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument 'batches'");
  for (int r = 0; r < group->ranks; ++r) {
    cgr_status status =
        cgr_batch_begin_key(group->rt[r], batch_size, tokens_per_request,
                            variant, &batches[r]);
    if (status == CGR_OK)
      continue;
    cgr__fail(&group->error, status, __func__,
              "rank %d: cgr_batch_begin failed: %s", r,
              cgr_last_error(group->rt[r]));
    for (int q = 0; q < r; ++q) {
      cgr_batch_discard(batches[q]);
      batches[q] = NULL;
    }
    batches[r] = NULL;
    return status;
  }
  return CGR_OK;
}

void cgr_group_batch_discard(cgr_group *group, cgr_batch **batches) {
  if (group == NULL || batches == NULL)
    return;
  for (int r = 0; r < group->ranks; ++r)
    cgr_batch_discard(batches[r]);
}
