/*
 * Fault injection: make chosen calls fail the ways CUDA fails, so tests
 * reach every error path (and ASan proves none of them leaks).
 *
 * A plan names a kind of call (cgr__call), optionally the site that makes
 * it (the calling function, runtime/site.h), which hit to fault (1-based:
 * the plan counts the calls it matches), and how the call fails:
 *
 *   NOW       the call fails at once with the status a real failure of its
 *             kind returns (cgr__fault_status): a cudaMalloc that runs
 *             out, a launch CUDA refuses. Every kind.
 *   ASYNC     the call succeeds; its work faults on the device when it
 *             runs (an illegal address in a copy or a kernel): the device
 *             is lost for every runtime on it, and a later call (a sync,
 *             an event query, the next replay, a ticket wait) reports
 *             CGR_E_DEVICE_LOST naming where it surfaced. Work captured
 *             into a graph faults each time the graph runs. COPY, MEMSET,
 *             KERNEL_LAUNCH, GRAPH_LAUNCH.
 *   DEFERRED  the call succeeds and leaves a non-sticky error behind, as
 *             an asynchronous CUDA error that is not sticky: the same
 *             runtime's next call that launches or waits for work returns
 *             CGR_E_CUDA once, and then everything works. The call's work
 *             itself runs. Those kinds and HOST_FUNC, EVENT_RECORD,
 *             EVENT_WAIT.
 *
 * A plan without a site counts every call of its kind, from every runtime
 * and thread. A plan with a site counts only that site's calls, which is
 * what makes a plan reproducible where threads interleave (the batcher's
 * engine thread beside the caller's, the host backend's workers): a
 * function's calls come in program order, unless two threads run it at
 * once (lanes run on the caller's thread; a DEVICE_FAULT site is a
 * kernel, which runs on its stream's worker).
 *
 * Plans are process-wide. Tests arm them, make one call (create, capture,
 * a step), and disarm; CGR_FAULT (runtime/env.c, README.md) arms them for a
 * whole program. Calls are counted only while armed, so an unarmed process
 * pays one relaxed atomic load per call.
 */
#ifndef CGR_RUNTIME_FAULT_H
#define CGR_RUNTIME_FAULT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/backend.h"
#include "runtime/site.h"

typedef enum cgr__fault_mode {
  CGR__FAULT_NOW = 0,
  CGR__FAULT_ASYNC,
  CGR__FAULT_DEFERRED
} cgr__fault_mode;

enum {
  CGR__FAULT_MAX_PLANS = 8,  /* armed at once */
  CGR__FAULT_SITE_NAME = 64, /* a site's name, NUL included */
  CGR__FAULT_MAX_SITES = 512 /* distinct sites counted while armed */
};

typedef struct cgr__fault_plan {
  cgr__call call;
  const char *site; /* a function's name (copied at arming); NULL: any */
  uint64_t nth;     /* the 1-based hit of what the plan counts */
  int sticky;       /* NOW only: that hit and every later one */
  cgr__fault_mode mode;
} cgr__fault_plan;

/* Where an injected fault struck: what its message names. */
typedef struct cgr__fault_at {
  cgr__call call;
  cgr__fault_mode mode;
  cgr__site site;
  uint64_t hit;      /* the plan's count: the call's number */
  uint64_t site_hit; /* the site's own count (what `KIND@site:N` names) */
} cgr__fault_at;

/* 1 when `mode` can fault a call of kind `call` (the list above). */
int cgr__fault_mode_fits(cgr__call call, cgr__fault_mode mode);

/* ---- arming (tests, and CGR_FAULT) ------------------------------------- */

/* Arms `count` plans, replacing any earlier ones, and resets every count
 * and site. count 0 arms no fault but counts sites (cgr__fault_sites).
 * Returns 0, arming nothing, when count is over CGR__FAULT_MAX_PLANS, an
 * nth is 0, a site name is too long, or a mode does not fit its kind. */
int cgr__fault_arm_plans(const cgr__fault_plan *plans, size_t count);

/* Fail the nth call of kind `call` from now on, at once (a plan of every
 * site, mode NOW). */
void cgr__fault_arm(cgr__call call, uint64_t nth);

/* Fail every call of kind `call` from the nth on (a device that stays out
 * of memory, a driver that stays broken). */
void cgr__fault_arm_sticky(cgr__call call, uint64_t nth);

/* Arms the plans CGR_FAULT's syntax describes: a comma-separated list of
 * KIND[@SITE]:N[+][:now|:async|:deferred], the kind as cgr__call_name
 * spells it (any case), N from 1, `+` for sticky. Returns 1, or 0 with
 * why (arming nothing, leaving earlier plans as they were). */
int cgr__fault_arm_text(const char *text, char *why, size_t why_size);

/* Stops faulting and counting. Errors already left behind (DEFERRED)
 * stay until reported or their runtime is destroyed. */
void cgr__fault_disarm(void);

/* How many calls the first plan matched since arming. */
uint64_t cgr__fault_seen(void);

/* 1 once any armed plan has fired. */
int cgr__fault_fired(void);

/* 1 and where the last fault since arming struck, else 0. */
int cgr__fault_last(cgr__fault_at *out);

/* How many device faults ASYNC work raised since arming (work that never
 * ran, such as a kernel in a graph never launched, raised none). */
uint64_t cgr__fault_raised(void);

/* The sites counted since arming, in the order first seen: up to
 * `capacity` into out; returns how many there are. */
typedef struct cgr__fault_site_hits {
  cgr__call call;
  char func[CGR__FAULT_SITE_NAME];
  uint64_t hits;
} cgr__fault_site_hits;
size_t cgr__fault_sites(cgr__fault_site_hits *out, size_t capacity);

/* "COPY call #7 (hit #2 of site run_naive, replay/replay.c:193)". */
void cgr__fault_describe(const cgr__fault_at *at, char *out, size_t size);

/* The status an injected NOW fault of this kind returns. */
cgr_status cgr__fault_status(cgr__call call);

/* ---- at the injectable sites -------------------------------------------- */

/* cgr__fault_idle is in backend.h, whose step calls read it inline. */

/* The dispatch point: 1 when a plan fires on this call, with *at. */
int cgr__fault_check(cgr__call call, cgr__site site, cgr__fault_at *at);

/* Sites that can only fail now (allocations, thread creation, a kernel's
 * run on a host worker): 1 means "fail this call now". */
int cgr__fault_hit_at(cgr__call call, cgr__site site);
#define cgr__fault_hit(call) cgr__fault_hit_at((call), CGR__SITE)

/*
 * ASYNC: the work of the call this thread is making carries the fault.
 * The dispatch point begins the carry around the backend call; a backend
 * that can fault its own work (the host backend) takes it for the op it
 * enqueues, and raises it when the op runs. cgr__fault_carry_end returns 1
 * when nothing took it (a backend that cannot: the dispatch point then
 * loses the runtime's device itself).
 */
void cgr__fault_carry_begin(const cgr__fault_at *at);
int cgr__fault_carry_take(cgr__fault_at *out);
int cgr__fault_carry_end(void);

/* Why the device faulted, for carried work described by `what` ("kernel
 * 'add_i32'", "a copy of 64 bytes"); counts it in cgr__fault_raised. */
void cgr__fault_raise(const cgr__fault_at *at, const char *what, char *out,
                      size_t size);

/*
 * DEFERRED: errors left behind, one list for the process, each kept for
 * its owner (a backend) until the owner's next call that reports it takes
 * it, or the owner goes (forget, at the backend's destroy).
 */
void cgr__fault_leave(const void *owner, const cgr__fault_at *at);
int cgr__fault_take_left(const void *owner, cgr__fault_at *out);
void cgr__fault_forget(const void *owner);
/* Errors left behind and not reported yet, all owners. */
size_t cgr__fault_left_count(void);

#endif /* CGR_RUNTIME_FAULT_H */
