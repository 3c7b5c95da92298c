/*
 * cgr lanes: a step's requests split into micro-batches that replay at once,
 * one runtime per lane.
 *
 * Included by <cgr/cgr.h>; include that. Threading, errors and ownership
 * are as described at the top of <cgr/cgr.h>, except where a function
 * below says otherwise.
 */
#ifndef CGR_CGR_LANES_H
#define CGR_CGR_LANES_H

#include "cgr/cgr.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Lanes: micro-batches replayed concurrently                                */
/* ------------------------------------------------------------------------ */

/*
 * A step's requests can be split into micro-batches that run at once on
 * separate lanes. A lane is a runtime of its own: its own streams (the
 * main stream's priority per lane), buffer sets, scratch arena and graphs,
 * on the same device; lanes share no writable memory. The caller splits
 * the requests (cgr_split), fills one batch per lane on that lane's
 * runtime, and replays them together (cgr_lanes_replay). Whether two lanes
 * beat one depends on the step: profiles/bench_lanes measures it.
 */
typedef struct cgr_lanes cgr_lanes;

#define CGR_MAX_LANES 8

typedef enum cgr_split_policy {
  /* Request i to lane i mod lanes. */
  CGR_SPLIT_ROUND_ROBIN = 0,
  /* Context (prefill) and generation requests never share a lane: with
   * both present, the lanes are divided between the two phases in
   * proportion to their request counts (at least one lane each, context
   * first), and each phase alternates over its own lanes; with one phase
   * present it alternates over all lanes. */
  CGR_SPLIT_BY_PHASE = 1,
  /* Greedy: requests by decreasing work (ties in request order), each to
   * the lane with the least work so far (ties to the lowest lane). The
   * heaviest lane carries at most the optimum plus the largest request. */
  CGR_SPLIT_BALANCED = 2
} cgr_split_policy;

typedef enum cgr_phase {
  CGR_PHASE_GENERATION = 0, /* one token per step (decode) */
  CGR_PHASE_CONTEXT = 1     /* a prompt (prefill) */
} cgr_phase;

/* One request, as the splitter sees it. */
typedef struct cgr_split_item {
  cgr_phase phase;
  uint64_t tokens;     /* tokens this step processes for it */
  const void *request; /* the caller's, for the work estimator */
} cgr_split_item;

/* The work a request costs (CGR_SPLIT_BALANCED); default: its tokens. */
typedef uint64_t (*cgr_work_fn)(void *user, const cgr_split_item *item);

typedef struct cgr_split_config {
  cgr_split_policy policy;
  uint32_t lanes; /* 1 to CGR_MAX_LANES */
  /* Fewer requests than this run on lane 0 alone. Default (0): 2. */
  uint32_t min_requests_for_parallel;
  cgr_work_fn work; /* NULL: tokens */
  void *work_user;
} cgr_split_config;

/*
 * Assigns each of `count` items a lane: lane_of[i] in [0, lanes).
 * Deterministic. Errors: CGR_E_INVALID_ARGUMENT (NULL with count > 0, a
 * policy or lane count out of range, a phase that is not one).
 * CGR_E_OUT_OF_MEMORY (balanced keeps an order of count entries). Any
 * thread.
 */
CGR_API cgr_status cgr_split(const cgr_split_config *config,
                             const cgr_split_item *items, uint32_t count,
                             uint32_t *lane_of);

/* Prepares a lane's runtime before its capture: declares the slots and
 * makes what the lane's step reads (its weights view, its caches), handed
 * back as *lane_user for the step. Runs on the creating thread. */
typedef cgr_status (*cgr_lane_setup_fn)(void *user, cgr_runtime *rt,
                                        uint32_t lane, void **lane_user);

/* Frees what setup made, after the lane's runtime is destroyed. */
typedef void (*cgr_lane_teardown_fn)(void *user, uint32_t lane,
                                     void *lane_user);

/* Bumped when fields are appended to cgr_lanes_config. Version 1 ends
 * with `user`. */
#define CGR_LANES_CONFIG_VERSION 1

/* Read by the rule of every versioned struct (top of <cgr/cgr.h>), and so
 * is the cgr_config `runtime` points to: a size past this library's
 * struct, or short of its version's fields, is refused with
 * CGR_E_VERSION. */
typedef struct cgr_lanes_config {
  size_t size;      /* set by cgr_lanes_config_init */
  uint32_t version; /* set by cgr_lanes_config_init */
  uint32_t lanes;   /* default 2, at most CGR_MAX_LANES */
  /* Every lane's runtime config (NULL: cgr_config_init's defaults); each
   * lane's main stream then gets lane_priority[lane] (default: the
   * config's main_stream_priority). */
  const cgr_config *runtime;
  cgr_stream_priority lane_priority[CGR_MAX_LANES];
  int lane_priority_set;         /* 1: use lane_priority */
  cgr_lane_setup_fn setup;       /* required */
  cgr_lane_teardown_fn teardown; /* optional */
  cgr_step_fn step;              /* required: captured on every lane */
  void *user;
} cgr_lanes_config;

/* Defaults, size and version. CGR_E_INVALID_ARGUMENT on NULL. Any thread. */
CGR_API cgr_status cgr_lanes_config_init(cgr_lanes_config *config);

/*
 * Creates the lanes: per lane a runtime, setup, cgr_capture of the step
 * with the lane's user. Errors: CGR_E_INVALID_ARGUMENT (NULL, no setup or
 * step, lanes 0 or over CGR_MAX_LANES), CGR_E_UNSUPPORTED (the runtime
 * config's mode is CGR_REPLAY_PIPELINED), CGR_E_VERSION (config's or
 * config->runtime's size or version, by the rule of versioned structs at
 * the top of <cgr/cgr.h>), and whatever a lane's create, setup or capture
 * returns; the message (in cgr_last_error(NULL)) names the lane. On
 * failure everything made is destroyed.
 */
CGR_API cgr_status cgr_lanes_create(const cgr_lanes_config *config,
                                    cgr_lanes **out);

/* Destroys every lane (runtime first, then teardown). NULL: no-op. */
CGR_API void cgr_lanes_destroy(cgr_lanes *lanes);

/* The number of lanes; 0 for NULL. */
CGR_API uint32_t cgr_lanes_count(const cgr_lanes *lanes);

/* Lane `lane`'s runtime (fill its batch there, read its outputs there) and
 * the user its setup made; NULL when lane is out of range. */
CGR_API cgr_runtime *cgr_lanes_runtime(const cgr_lanes *lanes, uint32_t lane);
CGR_API void *cgr_lanes_user(const cgr_lanes *lanes, uint32_t lane);

/* The device memory a lane holds for cgr (its slots and scratch arena;
 * graphs excluded, and what setup allocated). */
CGR_API cgr_status cgr_lanes_memory(const cgr_lanes *lanes, uint32_t lane,
                                    uint64_t *bytes);

/*
 * Replays batches[lane] on every lane that has one (NULL: the lane sits
 * this step out, and tickets[lane].batch_size is 0). Graph steps are
 * launched first, in lane order, and return at once, so the lanes' steps
 * run concurrently on the device; then the eager ones (a lane in
 * CGR_REPLAY_EAGER, or a batch over its largest bucket), which block the
 * host while they run, beside the graphs already launched: a prefill next
 * to decode steps. With `wait`, returns once every lane's step has
 * finished (synchronous); otherwise at once, with one ticket per lane
 * (asynchronous: cgr_lanes_wait, or cgr_ticket_wait on the lane's
 * runtime). On a failure every batch is consumed (the rest discarded),
 * lanes already launched keep running, and the status is the failing
 * lane's; cgr_last_error(NULL) names the lane and the call (the lane's
 * runtime keeps its own message too). Not thread-safe with other calls on
 * the lanes' runtimes.
 */
CGR_API cgr_status cgr_lanes_replay(cgr_lanes *lanes, cgr_batch *const *batches,
                                    cgr_ticket *tickets, int wait);

/* Waits for every lane's ticket (a batch_size of 0: none). */
CGR_API cgr_status cgr_lanes_wait(cgr_lanes *lanes, const cgr_ticket *tickets);

#ifdef __cplusplus
}
#endif

#endif /* CGR_CGR_LANES_H */
