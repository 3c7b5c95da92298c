/*
 * Lanes: one runtime per lane on the same device, so lanes share no
 * writable memory and their steps run at once on their own streams; and
 * the splitter that assigns a step's requests to lanes.
 *
 * A lane being a whole runtime keeps every guarantee of a single runtime
 * (buffer sets, padding state, the double-buffering protocol) per lane
 * without a line of new synchronization: the only thing lanes add is the
 * order in which the host launches them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"
#include "cgr/cgr.h"
#include "replay/replay.h"
#include "runtime/alloc.h"
#include "runtime/error.h"
#include "runtime/runtime.h"
#include "runtime/versioned.h"

struct cgr_lanes {
  uint32_t count;
  cgr_lanes_config config;
  cgr_runtime *rt[CGR_MAX_LANES];
  void *user[CGR_MAX_LANES];
  int has_user[CGR_MAX_LANES];
};

/* ---- the splitter -------------------------------------------------------- */

static void split_round_robin(uint32_t count, uint32_t lanes,
                              uint32_t *lane_of) {
  for (uint32_t i = 0; i < count; ++i)
    lane_of[i] = i % lanes;
}

/* Context and generation requests on separate lanes. */
static void split_by_phase(const cgr_split_item *items, uint32_t count,
                           uint32_t lanes, uint32_t *lane_of) {
  uint32_t context = 0;
  for (uint32_t i = 0; i < count; ++i)
    context += items[i].phase == CGR_PHASE_CONTEXT;
  uint32_t generation = count - context;
  if (context == 0 || generation == 0 || lanes == 1) {
    split_round_robin(count, lanes, lane_of);
    return;
  }
  /* Lanes in proportion to the requests (rounded), at least one each. */
  uint32_t context_lanes =
      (uint32_t)(((uint64_t)lanes * context + count / 2) / count);
  if (context_lanes < 1)
    context_lanes = 1;
  if (context_lanes > lanes - 1)
    context_lanes = lanes - 1;
  uint32_t next_context = 0, next_generation = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (items[i].phase == CGR_PHASE_CONTEXT)
      lane_of[i] = next_context++ % context_lanes;
    else
      lane_of[i] = context_lanes + next_generation++ % (lanes - context_lanes);
  }
}

typedef struct weighted {
  uint64_t work;
  uint32_t index;
} weighted;

static int heavier_first(const void *a, const void *b) {
  const weighted *x = a, *y = b;
  if (x->work != y->work)
    return x->work > y->work ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

static cgr_status split_balanced(const cgr_split_config *config,
                                 const cgr_split_item *items, uint32_t count,
                                 uint32_t *lane_of) {
  weighted *order = cgr__malloc((size_t)count * sizeof *order);
  if (order == NULL)
    return cgr__fail(NULL, CGR_E_OUT_OF_MEMORY, "cgr_split",
                     "allocating the order of %u requests failed", count);
  for (uint32_t i = 0; i < count; ++i) {
    order[i].index = i;
    order[i].work = config->work ? config->work(config->work_user, &items[i])
                                 : items[i].tokens;
  }
  qsort(order, count, sizeof *order, heavier_first);
  uint64_t load[CGR_MAX_LANES] = {0};
  for (uint32_t k = 0; k < count; ++k) {
    uint32_t lightest = 0;
    for (uint32_t lane = 1; lane < config->lanes; ++lane)
      if (load[lane] < load[lightest])
        lightest = lane;
    load[lightest] += order[k].work;
    lane_of[order[k].index] = lightest;
  }
  cgr__free(order);
  return CGR_OK;
}

cgr_status cgr_split(const cgr_split_config *config,
                     const cgr_split_item *items, uint32_t count,
                     uint32_t *lane_of) {
  if (config == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument 'config'");
  if (count > 0 && (items == NULL || lane_of == NULL))
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument '%s'",
                     items == NULL ? "items" : "lane_of");
  if (config->lanes < 1 || config->lanes > CGR_MAX_LANES)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "config->lanes is %u; it must be 1 to %d", config->lanes,
                     CGR_MAX_LANES);
  if (config->policy != CGR_SPLIT_ROUND_ROBIN &&
      config->policy != CGR_SPLIT_BY_PHASE &&
      config->policy != CGR_SPLIT_BALANCED)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "config->policy %d is not a cgr_split_policy",
                     (int)config->policy);
  for (uint32_t i = 0; i < count; ++i)
    if (items[i].phase != CGR_PHASE_CONTEXT &&
        items[i].phase != CGR_PHASE_GENERATION)
      return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                       "items[%u].phase %d is not a cgr_phase", i,
                       (int)items[i].phase);
  uint32_t minimum =
      config->min_requests_for_parallel ? config->min_requests_for_parallel : 2;
  if (count < minimum || config->lanes == 1) {
    for (uint32_t i = 0; i < count; ++i)
      lane_of[i] = 0;
    return CGR_OK;
  }
  switch (config->policy) {
  case CGR_SPLIT_ROUND_ROBIN:
    split_round_robin(count, config->lanes, lane_of);
    return CGR_OK;
  case CGR_SPLIT_BY_PHASE:
    split_by_phase(items, count, config->lanes, lane_of);
    return CGR_OK;
  case CGR_SPLIT_BALANCED:
    return split_balanced(config, items, count, lane_of);
  }
  return CGR_E_INTERNAL;
}

/* ---- lanes --------------------------------------------------------------- */

/* Where each version's fields end (runtime/versioned.h): version 1 ended
 * with `user`. */
static const size_t config_ends[] = {CGR__FIELD_END(cgr_lanes_config, user)};
CGR__VERSIONED_STRUCT(cgr_lanes_config, config_ends, CGR_LANES_CONFIG_VERSION);
static const cgr__versions config_versions = {"cgr_lanes_config",
                                              "cgr_lanes_config_init",
                                              sizeof(cgr_lanes_config),
                                              CGR_LANES_CONFIG_VERSION,
                                              config_ends};

cgr_status cgr_lanes_config_init(cgr_lanes_config *config) {
  if (config == NULL)
    return CGR_E_INVALID_ARGUMENT;
  memset(config, 0, sizeof *config);
  config->size = sizeof *config;
  config->version = CGR_LANES_CONFIG_VERSION;
  config->lanes = 2;
  return CGR_OK;
}

void cgr_lanes_destroy(cgr_lanes *lanes) {
  if (lanes == NULL)
    return;
  for (uint32_t i = 0; i < lanes->count; ++i) {
    /* The graphs read what setup made: the runtime goes first. */
    cgr_runtime_destroy(lanes->rt[i]);
    if (lanes->has_user[i] && lanes->config.teardown != NULL)
      lanes->config.teardown(lanes->config.user, i, lanes->user[i]);
  }
  cgr__free(lanes);
}

/* Makes lane i: its runtime, setup, capture. On failure `why` says what
 * failed, naming the lane. */
static cgr_status lane_open(cgr_lanes *lanes, uint32_t i,
                            const cgr_config *base, char *why, size_t size) {
  const cgr_lanes_config *c = &lanes->config;
  cgr_config config = *base;
  if (c->lane_priority_set)
    config.main_stream_priority = c->lane_priority[i];
  cgr_status status = cgr_runtime_create(&config, &lanes->rt[i]);
  if (status != CGR_OK) {
    snprintf(why, size, "lane %u: cgr_runtime_create failed: %s", i,
             cgr_last_error(NULL));
    return status;
  }
  lanes->count = i + 1;
  cgr_runtime *rt = lanes->rt[i];
  status = c->setup(c->user, rt, i, &lanes->user[i]);
  if (status != CGR_OK) {
    snprintf(why, size, "lane %u: the setup callback failed: %s (%s)", i,
             cgr_status_name(status), cgr_last_error(rt));
    return status;
  }
  lanes->has_user[i] = 1;
  status = cgr_capture(rt, c->step, lanes->user[i]);
  if (status != CGR_OK)
    snprintf(why, size, "lane %u: cgr_capture failed: %s", i,
             cgr_last_error(rt));
  return status;
}

cgr_status cgr_lanes_create(const cgr_lanes_config *config, cgr_lanes **out) {
  if (out != NULL)
    *out = NULL;
  if (config == NULL || out == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument '%s'",
                     config == NULL ? "config" : "out");
  cgr_lanes_config resolved;
  cgr_lanes_config_init(&resolved);
  CGR__CHECK(cgr__versioned_read(&config_versions, config, &resolved, NULL,
                                 __func__, "config"));
  if (resolved.lanes < 1 || resolved.lanes > CGR_MAX_LANES)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "config->lanes is %u; it must be 1 to %d", resolved.lanes,
                     CGR_MAX_LANES);
  if (resolved.setup == NULL || resolved.step == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument '%s': the callback is required",
                     resolved.setup == NULL ? "config->setup" : "config->step");
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
                     "which lanes do not run (each lane replays with "
                     "cgr_replay): choose another mode");

  cgr_lanes *lanes = cgr__calloc(1, sizeof *lanes);
  if (lanes == NULL)
    return cgr__fail(NULL, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the lanes failed");
  lanes->config = resolved;
  for (uint32_t i = 0; i < resolved.lanes; ++i) {
    char why[CGR__ERROR_MESSAGE_SIZE];
    cgr_status status = lane_open(lanes, i, &base, why, sizeof why);
    if (status != CGR_OK) {
      cgr_lanes_destroy(lanes);
      return cgr__fail(NULL, status, __func__, "%s", why);
    }
  }
  *out = lanes;
  return CGR_OK;
}

uint32_t cgr_lanes_count(const cgr_lanes *lanes) {
  return lanes != NULL ? lanes->count : 0;
}

cgr_runtime *cgr_lanes_runtime(const cgr_lanes *lanes, uint32_t lane) {
  return lanes != NULL && lane < lanes->count ? lanes->rt[lane] : NULL;
}

void *cgr_lanes_user(const cgr_lanes *lanes, uint32_t lane) {
  return lanes != NULL && lane < lanes->count ? lanes->user[lane] : NULL;
}

cgr_status cgr_lanes_memory(const cgr_lanes *lanes, uint32_t lane,
                            uint64_t *bytes) {
  if (bytes != NULL)
    *bytes = 0;
  if (lanes == NULL || bytes == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument '%s'",
                     lanes == NULL ? "lanes" : "bytes");
  if (lane >= lanes->count)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "lane %u is out of range: there are %u lanes", lane,
                     lanes->count);
  cgr_capture_stats stats;
  CGR__CHECK(cgr_capture_stats_get(lanes->rt[lane], &stats));
  *bytes = stats.arena_bytes + stats.slot_bytes;
  return CGR_OK;
}

cgr_status cgr_lanes_wait(cgr_lanes *lanes, const cgr_ticket *tickets) {
  if (lanes == NULL || tickets == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument '%s'",
                     lanes == NULL ? "lanes" : "tickets");
  cgr_status first = CGR_OK;
  for (uint32_t i = 0; i < lanes->count; ++i) {
    if (tickets[i].batch_size == 0)
      continue;
    cgr_status status = cgr_ticket_wait(lanes->rt[i], &tickets[i]);
    if (status != CGR_OK && first == CGR_OK)
      first = cgr__fail(NULL, status, __func__,
                        "lane %u: cgr_ticket_wait failed: %s", i,
                        cgr_last_error(lanes->rt[i]));
  }
  return first;
}

/* 1 when the batch will run eagerly (and block the host while it runs):
 * the eager mode, or a batch over the largest bucket. */
static int runs_eagerly(cgr_runtime *rt, const cgr_batch *batch) {
  const cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  const cgr__replay *replay = rt->layers[CGR__LAYER_REPLAY].state;
  if (replay != NULL && replay->mode == CGR_REPLAY_EAGER)
    return 1;
  return cap != NULL && cap->step != NULL &&
         batch->size > cgr__largest_bucket(cap);
}

cgr_status cgr_lanes_replay(cgr_lanes *lanes, cgr_batch *const *batches,
                            cgr_ticket *tickets, int wait) {
  if (lanes == NULL || batches == NULL || tickets == NULL) {
    if (lanes != NULL && batches != NULL)
      for (uint32_t i = 0; i < lanes->count; ++i)
        cgr_batch_discard(batches[i]);
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument '%s'",
                     lanes == NULL     ? "lanes"
                     : batches == NULL ? "batches"
                                       : "tickets");
  }
  memset(tickets, 0, lanes->count * sizeof *tickets);
  /* Graph lanes first, eager ones after: an eager step blocks the host,
   * and the graphs launched before it run beside it (a prefill next to
   * decode steps). */
  int eager[CGR_MAX_LANES] = {0};
  for (uint32_t i = 0; i < lanes->count; ++i)
    eager[i] = batches[i] != NULL && runs_eagerly(lanes->rt[i], batches[i]);
  cgr_status status = CGR_OK;
  for (int pass = 0; pass < 2; ++pass) {
    for (uint32_t i = 0; i < lanes->count; ++i) {
      if (batches[i] == NULL || eager[i] != pass)
        continue;
      if (status != CGR_OK) {
        cgr_batch_discard(batches[i]); /* nothing half-done: consumed */
        continue;
      }
      status = cgr_replay(lanes->rt[i], batches[i], &tickets[i]);
      if (status != CGR_OK) {
        /* cgr_replay keeps a batch it refused as not its runtime's. */
        cgr_batch_discard(batches[i]);
        memset(&tickets[i], 0, sizeof tickets[i]);
        char why[CGR__ERROR_MESSAGE_SIZE];
        snprintf(why, sizeof why, "%s", cgr_last_error(lanes->rt[i]));
        cgr__fail(NULL, status, __func__, "lane %u: cgr_replay failed: %s", i,
                  why);
      }
    }
  }
  if (status != CGR_OK || !wait)
    return status;
  return cgr_lanes_wait(lanes, tickets);
}
