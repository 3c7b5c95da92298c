/*
 * Groups (include/cgr/cgr_group.h), inside the library: the group object
 * and how a call breaks it, shared by replay/group.c (create, slots,
 * batches) and replay/group_run.c (the calls that run the ranks' steps).
 */
#ifndef CGR_REPLAY_GROUP_H
#define CGR_REPLAY_GROUP_H

#include "cgr/cgr.h"
#include "runtime/collective.h"
#include "runtime/error.h"

struct cgr_group {
  int ranks;
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

/* The refusal of every call on a broken group (CGR_E_INVALID_STATE). */
cgr_status cgr__group_refuse_broken(cgr_group *group, const char *func);

/* Fails with `status`, then breaks the group with that message. */
#define GROUP_BREAK_FAIL(group, status, ...)                                   \
  (cgr__fail(&(group)->error, (status), __VA_ARGS__),                          \
   cgr__group_break((group), (group)->error.message), (status))

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
