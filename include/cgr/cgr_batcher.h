/*
 * cgr batcher: any thread submits requests, one engine thread batches and
 * replays them on a captured runtime.
 *
 * Included by <cgr/cgr.h>; include that. Threading, errors and ownership
 * are as described at the top of <cgr/cgr.h>, except where a function
 * below says otherwise.
 */
#ifndef CGR_CGR_BATCHER_H
#define CGR_CGR_BATCHER_H

#include "cgr/cgr.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Batcher: any thread submits, one engine thread owns the device            */
/* ------------------------------------------------------------------------ */

/*
 * A batcher owns a captured runtime and one engine thread. Any thread
 * submits requests (opaque pointers the caller owns); the engine thread
 * collects them into batches within a wait window, turns each batch into a
 * step through the caller's `build` callback, replays it, and hands the
 * step's outputs to the caller's `finish` callback, which writes one result
 * per request. Every device call happens on the engine thread: while a
 * batcher lives, no other thread may use its runtime.
 *
 * Every accepted request ends exactly once, with one of:
 *   CGR_OK           its result (from `finish`);
 *   CGR_E_TIMEOUT    its deadline passed before it was taken into a batch
 *                    (an expired request never takes a batch slot);
 *   its validation status, when `validate` rejects it (it fails alone,
 *                    never its batch);
 *   the status of a failed step (build, replay, wait or finish): every
 *                    request of that batch, and only those;
 *   CGR_E_CANCELLED  cgr_batcher_stop(CGR_BATCHER_CANCEL) came first.
 *
 * An ended request then lands in exactly one of two hands: the caller's,
 * when cgr_handle_result reads how it ended (the request, and for CGR_OK
 * the result `finish` made, are then the caller's to free), or the
 * `abandon` callback's, when its handle is released without that: before
 * the end, or after it untaken. Whichever way release and the end
 * interleave, one of the two happens, once.
 */
typedef struct cgr_batcher cgr_batcher;
/* One submitted request's ticket to its outcome. */
typedef struct cgr_handle cgr_handle;

/* Microseconds on the monotonic clock deadlines are measured in
 * (CLOCK_MONOTONIC). Any thread. */
CGR_API uint64_t cgr_clock_us(void);

/* Requests with different keys never share a batch. Called once per
 * cgr_batcher_submit call (a refused submit included), on the submitting
 * thread, outside the batcher's lock. */
typedef uint64_t (*cgr_batcher_key_fn)(void *user, const void *request);

/* CGR_OK to accept the request into a batch; any other status ends the
 * request alone with that status (engine thread, before the batch is
 * built). */
typedef cgr_status (*cgr_batcher_validate_fn)(void *user, const void *request);

/* Fills `batch` (begun with `count` rows) from the requests, row i from
 * requests[i], with cgr_batch_input and friends. A status other than
 * CGR_OK fails the batch (engine thread). The batch is replayed after
 * build returns, so data given as CGR_SOURCE_HOST must outlive the call:
 * a buffer in `user` that every build reuses will do, build's own stack
 * will not (cgr_replay stages host data, and the next build comes after
 * it). */
typedef cgr_status (*cgr_batcher_build_fn)(void *user, cgr_batch *batch,
                                           void *const *requests,
                                           uint32_t count);

/* The step of `ticket` has finished: read its outputs (cgr_output) and
 * set results[i] for requests[i] (initially NULL). The outputs stay valid
 * during the call. A status other than CGR_OK fails the batch and its
 * results are dropped: the callback frees what it made (engine thread). */
typedef cgr_status (*cgr_batcher_finish_fn)(void *user, cgr_runtime *rt,
                                            const cgr_ticket *ticket,
                                            void *const *requests,
                                            uint32_t count, void **results);

/* A request ended and its handle was released without cgr_handle_result
 * taking its outcome: this callback owns the request and its result (NULL
 * unless status is CGR_OK) and frees them. Called once per such request:
 * on the engine or stopping thread when the handle was released before
 * the end, inside cgr_handle_release (the releasing thread, even after
 * cgr_batcher_destroy) when it was released after. Without an abandon
 * callback, take every outcome before releasing, or it is lost. */
typedef void (*cgr_batcher_abandon_fn)(void *user, void *request,
                                       cgr_status status, void *result);

/* Bumped when fields are appended to cgr_batcher_config. Version 1 ends
 * with `user`. */
#define CGR_BATCHER_CONFIG_VERSION 1

/* Read by the rule of every versioned struct (top of <cgr/cgr.h>): a size
 * past this library's struct, or short of its version's fields, is
 * refused with CGR_E_VERSION. */
typedef struct cgr_batcher_config {
  size_t size;      /* sizeof(cgr_batcher_config), set by init */
  uint32_t version; /* CGR_BATCHER_CONFIG_VERSION, set by init */
  /* Requests per batch at most; 0 (default): the largest bucket. Over the
   * largest bucket only when the runtime's cgr_config.allow_eager is 1
   * (those steps run eagerly). */
  uint32_t max_batch;
  /* The wait window, from the moment the engine takes a batch's first
   * request: while the batch holds one request the engine waits up to
   * max_wait_us for more (default 1000); once it holds two or more, only
   * until min_wait_us (default 100) have passed. A full batch, a stop, or
   * a step still running on the device (the queue then fills while the
   * device works) closes the batch at once. min_wait_us <= max_wait_us. */
  uint32_t max_wait_us;
  uint32_t min_wait_us;
  /* Requests queued at most; a submit beyond answers CGR_E_BUSY at once
   * (default 4096). */
  uint32_t queue_capacity;
  cgr_batcher_key_fn key;           /* optional: one key for all */
  cgr_batcher_validate_fn validate; /* optional: all valid */
  cgr_batcher_build_fn build;       /* required */
  cgr_batcher_finish_fn finish;     /* required */
  cgr_batcher_abandon_fn abandon;   /* optional */
  void *user;                       /* passed to every callback */
} cgr_batcher_config;

/* Fills *config with the defaults, size and version.
 * CGR_E_INVALID_ARGUMENT on NULL. Any thread. */
CGR_API cgr_status cgr_batcher_config_init(cgr_batcher_config *config);

/*
 * Starts a batcher on `rt`, whose step must be captured (cgr_capture; a
 * lazy capture is fine). From here until cgr_batcher_destroy the runtime
 * belongs to the engine thread. Errors: CGR_E_INVALID_ARGUMENT naming the
 * field (NULL, no build or finish, min_wait_us over max_wait_us, max_batch
 * over the largest bucket without allow_eager, queue_capacity 0),
 * CGR_E_VERSION (size or version, by the rule of versioned structs at the
 * top of <cgr/cgr.h>), CGR_E_INVALID_STATE (nothing captured,
 * or another batcher owns the runtime), CGR_E_UNSUPPORTED (the runtime's
 * mode is CGR_REPLAY_PIPELINED), CGR_E_OUT_OF_MEMORY, CGR_E_SYSTEM
 * (the thread). The message is in
 * cgr_last_error(rt). On failure nothing was started. Not thread-safe with
 * other calls on rt.
 */
CGR_API cgr_status cgr_batcher_create(cgr_runtime *rt,
                                      const cgr_batcher_config *config,
                                      cgr_batcher **out);

/*
 * Queues `request` (the caller's; it must stay valid until the request
 * ends) to end by `deadline_us` (cgr_clock_us() time; 0: none) and returns
 * its handle in *out. Never blocks: a full queue answers CGR_E_BUSY at
 * once. Errors: CGR_E_INVALID_ARGUMENT (NULL), CGR_E_BUSY,
 * CGR_E_INVALID_STATE (stopping or stopped), CGR_E_OUT_OF_MEMORY. On an
 * error the request was not accepted and *out is NULL. Any thread.
 */
CGR_API cgr_status cgr_batcher_submit(cgr_batcher *batcher, void *request,
                                      uint64_t deadline_us, cgr_handle **out);

/* Waits until the request has ended, at most timeout_us (UINT64_MAX:
 * forever). CGR_OK once it ended (read how with cgr_handle_result),
 * CGR_E_NOT_READY when the time ran out first, CGR_E_INVALID_ARGUMENT on
 * NULL. Any thread. */
CGR_API cgr_status cgr_handle_wait(cgr_handle *handle, uint64_t timeout_us);

/* CGR_OK when the request has ended, CGR_E_NOT_READY if not. Never
 * blocks. Any thread. */
CGR_API cgr_status cgr_handle_poll(const cgr_handle *handle);

/* How the request ended: returns its status (see cgr_batcher) and, for
 * CGR_OK, sets *result (may be NULL) to what `finish` made for it. Once
 * it returns the end, the outcome is taken: the request and its result
 * are the caller's (passing NULL forgoes the result pointer, not the
 * ownership), and releasing the handle abandons nothing. It may be called
 * again, with the same answer. CGR_E_NOT_READY when it has not ended yet.
 * Any thread, before the release. */
CGR_API cgr_status cgr_handle_result(const cgr_handle *handle, void **result);

/* Frees the handle. Before the request ended, it means "no longer
 * interested": the request still runs, and when it ends the abandon
 * callback gets it. After it ended with its outcome not taken
 * (cgr_handle_result), the abandon callback gets it here, before the
 * release returns. NULL is a no-op. Valid after cgr_batcher_destroy.
 * Any thread, once per handle. */
CGR_API void cgr_handle_release(cgr_handle *handle);

typedef enum cgr_batcher_stop_mode {
  CGR_BATCHER_DRAIN = 0, /* run every queued request, then stop */
  CGR_BATCHER_CANCEL = 1 /* end queued requests with CGR_E_CANCELLED */
} cgr_batcher_stop_mode;

/* Stops accepting requests, ends the queued ones as `mode` says (steps
 * already on the device finish normally), and joins the engine thread.
 * Returns once every accepted request has ended. A second stop is a no-op
 * (CANCEL after DRAIN from another thread cancels what is still queued).
 * CGR_E_INVALID_ARGUMENT for NULL or a bad mode; CGR_E_INVALID_STATE from
 * a callback (the engine thread would wait for itself; nothing stops). Any
 * other thread. */
CGR_API cgr_status cgr_batcher_stop(cgr_batcher *batcher,
                                    cgr_batcher_stop_mode mode);

/* Stops (CANCEL) if still running, then frees the batcher; the runtime is
 * the caller's again. Handles stay valid until released. NULL is a no-op;
 * from a callback it is ignored with a warning (it would wait for
 * itself). */
CGR_API void cgr_batcher_destroy(cgr_batcher *batcher);

/* Batch sizes by powers of two: bin k counts the batches of size in
 * (2^(k-1), 2^k], bin 0 those of size 1. */
#define CGR_BATCHER_SIZE_BINS 16

typedef struct cgr_batcher_stats {
  uint64_t submitted; /* accepted */
  uint64_t completed; /* ended CGR_OK */
  uint64_t timed_out;
  uint64_t invalid; /* ended by validation */
  uint64_t failed;  /* ended by a failed step */
  uint64_t cancelled;
  uint64_t pending;          /* accepted, not ended: queued or in a step */
  uint64_t rejected_busy;    /* submits answered CGR_E_BUSY */
  uint64_t rejected_stopped; /* submits after stop */
  uint64_t batches;          /* steps run (failed ones included) */
  uint64_t batch_size_bins[CGR_BATCHER_SIZE_BINS];
  double mean_batch;        /* requests per batch */
  uint32_t queue_depth;     /* queued now */
  uint32_t queue_depth_max; /* most ever queued */
  /* Submit to batch start, over the last 65,536 requests that started. */
  double wait_us_p50;
  double wait_us_p99;
} cgr_batcher_stats;

/* A consistent snapshot: submitted = completed + timed_out + invalid +
 * failed + cancelled + pending. Each call sorts the wait samples (up to
 * 65,536: a few milliseconds), so poll it at a human pace, not per
 * request. CGR_E_INVALID_ARGUMENT on NULL; CGR_E_OUT_OF_MEMORY. Any
 * thread. */
CGR_API cgr_status cgr_batcher_stats_get(cgr_batcher *batcher,
                                         cgr_batcher_stats *out);

/* The message of the last failed step (names the callback or the cgr call
 * and its error), "" if none; copied into `message` (cut to `size`).
 * CGR_E_INVALID_ARGUMENT on NULL. Any thread. */
CGR_API cgr_status cgr_batcher_last_failure(cgr_batcher *batcher, char *message,
                                            size_t size);

#ifdef __cplusplus
}
#endif

#endif /* CGR_CGR_BATCHER_H */
