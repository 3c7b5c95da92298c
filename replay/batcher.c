/*
 * The batcher: requests from any thread, batches formed and run by one
 * engine thread, the only thread that touches the runtime.
 *
 * Submitters append handles to one queue under the batcher's lock and
 * never wait on anything else. The engine takes the queue's first live
 * request, gathers more of the same key within the wait window, validates
 * them outside the lock, builds and replays the step, and only then
 * finishes the step before it (at most two steps are in flight: the next
 * one is built and enqueued while the device still runs the last, and
 * cgr_output of a step stays valid until the replay after the next one).
 *
 * A handle has two owners, the caller and the engine; whoever lets go
 * last frees it. Its outcome is written once, under its own lock, after
 * the batcher's counters already say so: a caller that saw every handle
 * end reads counters that add up.
 *
 * Every accepted request ends in exactly one of two hands: the caller's,
 * when cgr_handle_result reads its outcome, or the abandon callback's.
 * Which one is decided under the handle's lock by whichever of the end
 * and the release comes second: the end (handle_end) abandons a request
 * released before it; the release abandons one that ended untaken.
 */
#define _GNU_SOURCE /* pthread_setname_np, clock_gettime, condattr clock */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture/capture.h"
#include "cgr/cgr.h"
#include "replay/replay.h"
#include "runtime/alloc.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/nvtx.h"
#include "runtime/runtime.h"
#include "runtime/versioned.h"

/* Wait times kept for the percentiles: the last this many requests. */
#define WAIT_SAMPLES 65536u

enum { RUNNING = 0, DRAINING = 1, CANCELLING = 2 };

struct cgr_handle {
  pthread_mutex_t lock;
  pthread_cond_t ended_cond;
  atomic_int ended; /* read without the lock by cgr_handle_poll */
  int released;     /* the caller let go before the end */
  /* cgr_handle_result read the outcome: the request and its result are
   * the caller's, and nothing is abandoned. */
  atomic_int taken;
  /* The batcher's abandon and user, copied: a handle released after
   * cgr_batcher_destroy still abandons its request. */
  cgr_batcher_abandon_fn abandon;
  void *abandon_user;
  cgr_status status;
  void *result;
  void *request;
  uint64_t key;
  uint64_t deadline_us; /* 0: none */
  uint64_t submitted_us;
  cgr_handle *prev, *next; /* in the queue */
};

/* One step's requests, from build to finish. */
typedef struct run {
  cgr_handle **handles;
  void **requests;
  void **results;
  uint32_t count;
  cgr_ticket ticket;
  int active; /* replayed, not yet finished */
} run;

struct cgr_batcher {
  cgr_runtime *rt;
  cgr_batcher_config config; /* resolved */
  pthread_condattr_t monotonic;

  pthread_mutex_t lock; /* the queue, the state, the counters */
  pthread_cond_t wake;  /* to the engine: a request came, or a stop */
  cgr_handle *head, *tail;
  uint32_t queued;
  int state;
  cgr_batcher_stats stats; /* counters only; the rest is derived */
  uint64_t batched;        /* requests that took a batch slot */
  float *waits;            /* WAIT_SAMPLES, a ring */
  uint64_t wait_count;
  char failure[CGR__ERROR_MESSAGE_SIZE];

  pthread_mutex_t join_lock;
  pthread_t thread;
  int joined;

  run runs[2]; /* the engine's */
  int nvtx;
};

/* The batcher whose engine runs on this thread (its callbacks may not
 * stop or destroy it). A thread id cannot say this: a joined engine's id
 * may be reused by another thread. */
static _Thread_local cgr_batcher *engine_of_this_thread;

uint64_t cgr_clock_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static struct timespec timespec_at(uint64_t us) {
  struct timespec t;
  t.tv_sec = (time_t)(us / 1000000u);
  t.tv_nsec = (long)(us % 1000000u) * 1000;
  return t;
}

/* ---- handles ------------------------------------------------------------- */

static void handle_free(cgr_handle *h) {
  pthread_cond_destroy(&h->ended_cond);
  pthread_mutex_destroy(&h->lock);
  cgr__free(h);
}

/* Hands an ended request whose outcome nobody took to abandon, then
 * frees its handle: called once, by whichever of the end and the release
 * came second. */
static void handle_abandon(cgr_handle *h) {
  if (h->abandon != NULL)
    h->abandon(h->abandon_user, h->request, h->status, h->result);
  handle_free(h);
}

/* Writes the outcome and lets the engine's ownership go. The counters
 * were updated before (under the batcher's lock). */
static void handle_end(cgr_handle *h, cgr_status status, void *result) {
  pthread_mutex_lock(&h->lock);
  h->status = status;
  h->result = result;
  atomic_store_explicit(&h->ended, 1, memory_order_release);
  int released = h->released;
  pthread_cond_broadcast(&h->ended_cond);
  pthread_mutex_unlock(&h->lock);
  /* Once unlocked, a handle the caller still holds is the caller's. */
  if (released)
    handle_abandon(h);
}

/* Ends a list of handles (linked through next) with one status. */
static void end_list(cgr_handle *list, cgr_status status) {
  while (list != NULL) {
    cgr_handle *next = list->next;
    handle_end(list, status, NULL);
    list = next;
  }
}

cgr_status cgr_handle_wait(cgr_handle *handle, uint64_t timeout_us) {
  if (handle == NULL)
    return CGR_E_INVALID_ARGUMENT;
  if (atomic_load_explicit(&handle->ended, memory_order_acquire))
    return CGR_OK;
  uint64_t now = cgr_clock_us();
  if (timeout_us > UINT64_MAX - now)
    timeout_us = UINT64_MAX; /* past any clock: forever */
  struct timespec at =
      timespec_at(now + (timeout_us == UINT64_MAX ? 0 : timeout_us));
  cgr_status status = CGR_OK;
  pthread_mutex_lock(&handle->lock);
  while (!atomic_load_explicit(&handle->ended, memory_order_relaxed)) {
    if (timeout_us == UINT64_MAX) {
      pthread_cond_wait(&handle->ended_cond, &handle->lock);
    } else if (pthread_cond_timedwait(&handle->ended_cond, &handle->lock,
                                      &at) == ETIMEDOUT) {
      if (!atomic_load_explicit(&handle->ended, memory_order_relaxed))
        status = CGR_E_NOT_READY;
      break;
    }
  }
  pthread_mutex_unlock(&handle->lock);
  return status;
}

cgr_status cgr_handle_poll(const cgr_handle *handle) {
  if (handle == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return atomic_load_explicit(&handle->ended, memory_order_acquire)
             ? CGR_OK
             : CGR_E_NOT_READY;
}

cgr_status cgr_handle_result(const cgr_handle *handle, void **result) {
  if (result != NULL)
    *result = NULL;
  if (handle == NULL)
    return CGR_E_INVALID_ARGUMENT;
  if (!atomic_load_explicit(&handle->ended, memory_order_acquire))
    return CGR_E_NOT_READY;
  /* The outcome is the caller's from here: release abandons nothing. The
   * handle is const to the caller, whose view (the outcome) this does not
   * change; `taken` is the library's bookkeeping of who owns it. */
  atomic_store_explicit(&((cgr_handle *)handle)->taken, 1,
                        memory_order_relaxed);
  /* Written before `ended` was released and never again. */
  if (result != NULL && handle->status == CGR_OK)
    *result = handle->result;
  return handle->status;
}

void cgr_handle_release(cgr_handle *handle) {
  if (handle == NULL)
    return;
  pthread_mutex_lock(&handle->lock);
  int ended = atomic_load_explicit(&handle->ended, memory_order_relaxed);
  if (!ended)
    handle->released = 1; /* the end abandons it and frees the handle */
  pthread_mutex_unlock(&handle->lock);
  if (!ended)
    return;
  /* It ended before the release: the outcome is the caller's if it was
   * taken, abandon's if not. */
  if (atomic_load_explicit(&handle->taken, memory_order_relaxed))
    handle_free(handle);
  else
    handle_abandon(handle);
}

/* ---- the queue (under the batcher's lock) -------------------------------- */

static void queue_remove(cgr_batcher *b, cgr_handle *h) {
  if (h->prev != NULL)
    h->prev->next = h->next;
  else
    b->head = h->next;
  if (h->next != NULL)
    h->next->prev = h->prev;
  else
    b->tail = h->prev;
  h->prev = h->next = NULL;
  b->queued--;
}

static void push_front(cgr_handle **list, cgr_handle *h) {
  h->next = *list;
  *list = h;
}

/* Detaches the whole queue as a list. */
static cgr_handle *queue_take_all(cgr_batcher *b) {
  cgr_handle *list = b->head;
  for (cgr_handle *h = list; h != NULL; h = h->next)
    h->prev = NULL;
  b->head = b->tail = NULL;
  b->queued = 0;
  return list;
}

static void record_wait(cgr_batcher *b, const cgr_handle *h, uint64_t now) {
  b->waits[b->wait_count % WAIT_SAMPLES] = (float)(now - h->submitted_us);
  b->wait_count++;
}

/* ---- the engine ---------------------------------------------------------- */

/*
 * Takes the next batch into `out` (at most max_batch handles of one key)
 * and returns its size; 0 when there is nothing to run now: the queue is
 * empty and either a step is in flight (`busy`: finish it first) or the
 * batcher stops. Expired requests met on the way end CGR_E_TIMEOUT; on a
 * cancel, queued requests (and any taken for this batch) end
 * CGR_E_CANCELLED.
 */
static uint32_t collect(cgr_batcher *b, cgr_handle **out, int busy) {
  const cgr_batcher_config *c = &b->config;
  for (;;) {
    cgr_handle *expired = NULL, *cancelled = NULL;
    uint32_t count = 0;
    pthread_mutex_lock(&b->lock);
    while (b->head == NULL && !busy && b->state == RUNNING)
      pthread_cond_wait(&b->wake, &b->lock);
    if (b->state == CANCELLING) {
      cancelled = queue_take_all(b);
    } else if (b->head != NULL) {
      CGR__NVTX_PUSH(b->nvtx, CGR__NVTX_BATCH_COLLECT, b->queued);
      uint64_t now = cgr_clock_us(), start = now, key = 0;
      cgr_handle *after = NULL; /* the last request examined and left */
      for (;;) {
        cgr_handle *h = after != NULL ? after->next : b->head;
        while (h != NULL && count < c->max_batch) {
          cgr_handle *next = h->next;
          if (h->deadline_us != 0 && h->deadline_us <= now) {
            queue_remove(b, h);
            push_front(&expired, h);
          } else if (count == 0 || h->key == key) {
            key = h->key;
            queue_remove(b, h);
            out[count++] = h;
          } else {
            after = h;
          }
          h = next;
        }
        if (count == 0 || count == c->max_batch || busy || b->state != RUNNING)
          break;
        uint64_t limit = start + (count == 1 ? c->max_wait_us : c->min_wait_us);
        if (now >= limit)
          break;
        struct timespec at = timespec_at(limit);
        pthread_cond_timedwait(&b->wake, &b->lock, &at);
        now = cgr_clock_us();
      }
      if (b->state == CANCELLING) {
        for (uint32_t i = 0; i < count; ++i)
          push_front(&cancelled, out[i]);
        count = 0;
        for (cgr_handle *rest = queue_take_all(b); rest != NULL;) {
          cgr_handle *next = rest->next;
          push_front(&cancelled, rest);
          rest = next;
        }
      }
      for (uint32_t i = 0; i < count; ++i)
        record_wait(b, out[i], now);
      CGR__NVTX_POP(b->nvtx);
    }
    uint64_t n_expired = 0, n_cancelled = 0;
    for (cgr_handle *h = expired; h != NULL; h = h->next)
      n_expired++;
    for (cgr_handle *h = cancelled; h != NULL; h = h->next)
      n_cancelled++;
    b->stats.timed_out += n_expired;
    b->stats.cancelled += n_cancelled;
    int stopping = b->state != RUNNING;
    pthread_mutex_unlock(&b->lock);

    end_list(expired, CGR_E_TIMEOUT);
    end_list(cancelled, CGR_E_CANCELLED);
    if (count > 0)
      return count;
    if (busy || stopping)
      return 0;
    /* Every request met had expired: look again. */
  }
}

static unsigned size_bin(uint32_t size) {
  unsigned bin = 0;
  while (bin + 1 < CGR_BATCHER_SIZE_BINS && (1u << bin) < size)
    bin++;
  return bin;
}

/* Ends every request of r with `status` (a failed step) and keeps the
 * message. */
static void fail_run(cgr_batcher *b, run *r, cgr_status status,
                     const char *message) {
  pthread_mutex_lock(&b->lock);
  snprintf(b->failure, sizeof b->failure, "%s", message);
  b->stats.failed += r->count;
  pthread_mutex_unlock(&b->lock);
  for (uint32_t i = 0; i < r->count; ++i)
    handle_end(r->handles[i], status, NULL);
  r->count = 0;
  r->active = 0;
}

/* Validates, builds and replays the step of the n handles in r. */
static void start_run(cgr_batcher *b, run *r, uint32_t n) {
  const cgr_batcher_config *c = &b->config;
  uint32_t kept = 0;
  for (uint32_t i = 0; i < n; ++i) {
    cgr_handle *h = r->handles[i];
    cgr_status status = c->validate ? c->validate(c->user, h->request) : CGR_OK;
    if (status == CGR_OK) {
      r->handles[kept++] = h;
      continue;
    }
    pthread_mutex_lock(&b->lock);
    b->stats.invalid++;
    pthread_mutex_unlock(&b->lock);
    handle_end(h, status, NULL);
  }
  r->count = kept;
  r->active = 0;
  if (kept == 0)
    return;
  for (uint32_t i = 0; i < kept; ++i) {
    r->requests[i] = r->handles[i]->request;
    r->results[i] = NULL;
  }
  pthread_mutex_lock(&b->lock);
  b->stats.batches++;
  b->stats.batch_size_bins[size_bin(kept)]++;
  b->batched += kept;
  pthread_mutex_unlock(&b->lock);

  char message[CGR__ERROR_MESSAGE_SIZE];
  cgr_batch *batch = NULL;
  cgr_status status = cgr_batch_begin(b->rt, kept, &batch);
  if (status != CGR_OK) {
    snprintf(message, sizeof message, "cgr_batch_begin(%u rows) failed: %s",
             kept, cgr_last_error(b->rt));
    fail_run(b, r, status, message);
    return;
  }
  status = c->build(c->user, batch, r->requests, kept);
  if (status != CGR_OK) {
    cgr_batch_discard(batch);
    snprintf(message, sizeof message,
             "the build callback failed for a batch of %u: %s", kept,
             cgr_status_name(status));
    fail_run(b, r, status, message);
    return;
  }
  status = cgr_replay(b->rt, batch, &r->ticket);
  if (status != CGR_OK) {
    snprintf(message, sizeof message, "cgr_replay of a batch of %u failed: %s",
             kept, cgr_last_error(b->rt));
    fail_run(b, r, status, message);
    return;
  }
  r->active = 1;
}

/* Waits for r's step and hands its outputs to the finish callback. */
static void finish_run(cgr_batcher *b, run *r) {
  const cgr_batcher_config *c = &b->config;
  char message[CGR__ERROR_MESSAGE_SIZE];
  cgr_status status = cgr_ticket_wait(b->rt, &r->ticket);
  if (status != CGR_OK) {
    snprintf(message, sizeof message, "waiting for step %llu failed: %s",
             (unsigned long long)r->ticket.step, cgr_last_error(b->rt));
    fail_run(b, r, status, message);
    return;
  }
  status =
      c->finish(c->user, b->rt, &r->ticket, r->requests, r->count, r->results);
  if (status != CGR_OK) {
    snprintf(message, sizeof message,
             "the finish callback failed for step %llu (a batch of %u): %s",
             (unsigned long long)r->ticket.step, r->count,
             cgr_status_name(status));
    fail_run(b, r, status, message);
    return;
  }
  pthread_mutex_lock(&b->lock);
  b->stats.completed += r->count;
  pthread_mutex_unlock(&b->lock);
  for (uint32_t i = 0; i < r->count; ++i)
    handle_end(r->handles[i], CGR_OK, r->results[i]);
  r->count = 0;
  r->active = 0;
}

static void *engine_main(void *arg) {
  cgr_batcher *b = arg;
  engine_of_this_thread = b;
  cgr__nvtx_name_thread("cgr batcher");
  run *in_flight = NULL;
  for (;;) {
    run *next = in_flight == &b->runs[0] ? &b->runs[1] : &b->runs[0];
    uint32_t n = collect(b, next->handles, in_flight != NULL);
    if (n == 0) {
      if (in_flight == NULL)
        break; /* stopping, nothing queued, nothing on the device */
      finish_run(b, in_flight);
      in_flight = NULL;
      continue;
    }
    CGR__NVTX_PUSH(b->nvtx, CGR__NVTX_BATCH_RUN, n);
    start_run(b, next, n);
    if (in_flight != NULL)
      finish_run(b, in_flight);
    in_flight = next->active ? next : NULL;
    /* An eager step (over the largest bucket, or the eager mode) has
     * already run, and its outputs last only until the next replay. */
    if (in_flight != NULL && in_flight->ticket.set < 0) {
      finish_run(b, in_flight);
      in_flight = NULL;
    }
    CGR__NVTX_POP(b->nvtx);
  }
  return NULL;
}

/* ---- create, submit, stop ------------------------------------------------ */

cgr_status cgr_batcher_config_init(cgr_batcher_config *config) {
  if (config == NULL)
    return CGR_E_INVALID_ARGUMENT;
  memset(config, 0, sizeof *config);
  config->size = sizeof *config;
  config->version = CGR_BATCHER_CONFIG_VERSION;
  config->max_wait_us = 1000;
  config->min_wait_us = 100;
  config->queue_capacity = 4096;
  return CGR_OK;
}

/* Where each version's fields end (runtime/versioned.h): version 1 ended
 * with `user`. */
static const size_t config_ends[] = {CGR__FIELD_END(cgr_batcher_config, user)};
CGR__VERSIONED_STRUCT(cgr_batcher_config, config_ends,
                      CGR_BATCHER_CONFIG_VERSION);
static const cgr__versions config_versions = {"cgr_batcher_config",
                                              "cgr_batcher_config_init",
                                              sizeof(cgr_batcher_config),
                                              CGR_BATCHER_CONFIG_VERSION,
                                              config_ends};

/* The caller's config over the defaults, checked. */
static cgr_status resolve_config(cgr_runtime *rt, const cgr_batcher_config *in,
                                 cgr_batcher_config *out) {
  cgr__error *err = &rt->error;
  cgr_batcher_config_init(out);
  CGR__CHECK(cgr__versioned_read(&config_versions, in, out, err,
                                 "cgr_batcher_create", "config"));

  cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  if (cap == NULL || cap->step == NULL)
    return cgr__fail(err, CGR_E_INVALID_STATE, "cgr_batcher_create",
                     "the runtime has no captured step: call cgr_capture "
                     "first");
  uint32_t largest = cgr__largest_bucket(cap);
  if (out->max_batch == 0)
    out->max_batch = largest;
  if (out->max_batch > largest && !rt->config.allow_eager)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_batcher_create",
                     "config->max_batch %u is over the largest bucket %u and "
                     "the runtime does not allow eager steps",
                     out->max_batch, largest);
  if (out->build == NULL || out->finish == NULL)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_batcher_create",
                     "invalid argument '%s': the callback is required",
                     out->build == NULL ? "config->build" : "config->finish");
  if (out->min_wait_us > out->max_wait_us)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_batcher_create",
                     "config->min_wait_us %u is over config->max_wait_us %u",
                     out->min_wait_us, out->max_wait_us);
  if (out->queue_capacity == 0)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_batcher_create",
                     "invalid argument 'config->queue_capacity': 0");
  return CGR_OK;
}

/* Frees what create made; the engine thread is not running. */
static void batcher_free(cgr_batcher *b, int locks) {
  for (int k = 0; k < 2; ++k) {
    cgr__free(b->runs[k].handles);
    cgr__free(b->runs[k].requests);
    cgr__free(b->runs[k].results);
  }
  cgr__free(b->waits);
  if (locks) {
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->lock);
    pthread_mutex_destroy(&b->join_lock);
    pthread_condattr_destroy(&b->monotonic);
  }
  cgr__free(b);
}

cgr_status cgr_batcher_create(cgr_runtime *rt, const cgr_batcher_config *config,
                              cgr_batcher **out) {
  if (out != NULL)
    *out = NULL;
  if (rt == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "invalid argument 'rt'");
  CGR__CHECK_ARG(&rt->error, config != NULL, "config");
  CGR__CHECK_ARG(&rt->error, out != NULL, "out");
  cgr_batcher_config resolved;
  CGR__CHECK(resolve_config(rt, config, &resolved));
  cgr__replay *replay = NULL;
  CGR__CHECK(cgr__replay_state(rt, &replay));
  if (replay->has_batcher)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "another batcher owns this runtime: destroy it first");
  if (replay->mode == CGR_REPLAY_PIPELINED)
    return cgr__fail(&rt->error, CGR_E_UNSUPPORTED, __func__,
                     "the runtime's mode is CGR_REPLAY_PIPELINED, which the "
                     "batcher does not run (it replays with cgr_replay): "
                     "choose another mode");

  cgr_batcher *b = cgr__calloc(1, sizeof *b);
  if (b == NULL)
    return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the batcher failed");
  b->rt = rt;
  b->config = resolved;
  b->nvtx = rt->config.nvtx;
  uint32_t n = resolved.max_batch;
  int allocated = 1;
  for (int k = 0; k < 2; ++k) {
    b->runs[k].handles = cgr__calloc(n, sizeof(cgr_handle *));
    b->runs[k].requests = cgr__calloc(n, sizeof(void *));
    b->runs[k].results = cgr__calloc(n, sizeof(void *));
    allocated = allocated && b->runs[k].handles && b->runs[k].requests &&
                b->runs[k].results;
  }
  b->waits = cgr__calloc(WAIT_SAMPLES, sizeof *b->waits);
  if (!allocated || b->waits == NULL) {
    batcher_free(b, 0);
    return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the batcher's buffers (%u requests per "
                     "batch) failed",
                     n);
  }
  if (pthread_condattr_init(&b->monotonic) != 0) {
    batcher_free(b, 0);
    return cgr__fail(&rt->error, CGR_E_SYSTEM, __func__,
                     "pthread_condattr_init failed");
  }
  pthread_condattr_setclock(&b->monotonic, CLOCK_MONOTONIC);
  if (pthread_mutex_init(&b->lock, NULL) != 0 ||
      pthread_mutex_init(&b->join_lock, NULL) != 0 ||
      pthread_cond_init(&b->wake, &b->monotonic) != 0) {
    /* glibc's init of these cannot fail; other libcs' may only on
     * resources, and then nothing here holds any. */
    pthread_condattr_destroy(&b->monotonic);
    batcher_free(b, 0);
    return cgr__fail(&rt->error, CGR_E_SYSTEM, __func__,
                     "initializing the batcher's locks failed");
  }
  cgr_status status = CGR_OK;
  if (cgr__fault_hit(CGR__CALL_THREAD_CREATE)) {
    status = cgr__fail(&rt->error, CGR_E_SYSTEM, __func__,
                       "injected fault in THREAD_CREATE call #%llu (the "
                       "batcher's engine thread)",
                       (unsigned long long)cgr__fault_seen());
  } else {
    int error = pthread_create(&b->thread, NULL, engine_main, b);
    if (error != 0)
      status = cgr__fail(&rt->error, CGR_E_SYSTEM, __func__,
                         "pthread_create for the batcher's engine thread "
                         "failed: %s",
                         strerror(error));
  }
  if (status != CGR_OK) {
    batcher_free(b, 1);
    return status;
  }
  pthread_setname_np(b->thread, "cgr batcher");
  replay->has_batcher = 1;
  *out = b;
  return CGR_OK;
}

cgr_status cgr_batcher_submit(cgr_batcher *batcher, void *request,
                              uint64_t deadline_us, cgr_handle **out) {
  if (out != NULL)
    *out = NULL;
  if (batcher == NULL || out == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr_handle *h = cgr__calloc(1, sizeof *h);
  if (h == NULL)
    return CGR_E_OUT_OF_MEMORY;
  if (pthread_mutex_init(&h->lock, NULL) != 0) {
    cgr__free(h);
    return CGR_E_SYSTEM;
  }
  if (pthread_cond_init(&h->ended_cond, &batcher->monotonic) != 0) {
    pthread_mutex_destroy(&h->lock);
    cgr__free(h);
    return CGR_E_SYSTEM;
  }
  atomic_init(&h->ended, 0);
  atomic_init(&h->taken, 0);
  h->abandon = batcher->config.abandon;
  h->abandon_user = batcher->config.user;
  h->request = request;
  h->deadline_us = deadline_us;
  const cgr_batcher_config *c = &batcher->config;
  h->key = c->key != NULL ? c->key(c->user, request) : 0;
  h->submitted_us = cgr_clock_us();

  cgr_status status = CGR_OK;
  pthread_mutex_lock(&batcher->lock);
  if (batcher->state != RUNNING) {
    batcher->stats.rejected_stopped++;
    status = CGR_E_INVALID_STATE;
  } else if (batcher->queued >= c->queue_capacity) {
    batcher->stats.rejected_busy++;
    status = CGR_E_BUSY;
  } else {
    h->prev = batcher->tail;
    if (batcher->tail != NULL)
      batcher->tail->next = h;
    else
      batcher->head = h;
    batcher->tail = h;
    batcher->queued++;
    if (batcher->queued > batcher->stats.queue_depth_max)
      batcher->stats.queue_depth_max = batcher->queued;
    batcher->stats.submitted++;
    pthread_cond_signal(&batcher->wake);
  }
  pthread_mutex_unlock(&batcher->lock);
  if (status != CGR_OK) {
    handle_free(h);
    return status;
  }
  *out = h;
  return CGR_OK;
}

cgr_status cgr_batcher_stop(cgr_batcher *batcher, cgr_batcher_stop_mode mode) {
  if (batcher == NULL ||
      (mode != CGR_BATCHER_DRAIN && mode != CGR_BATCHER_CANCEL))
    return CGR_E_INVALID_ARGUMENT;
  /* From a callback the engine would wait for itself: misuse. */
  if (engine_of_this_thread == batcher)
    return CGR_E_INVALID_STATE;
  pthread_mutex_lock(&batcher->lock);
  if (mode == CGR_BATCHER_CANCEL)
    batcher->state = CANCELLING;
  else if (batcher->state == RUNNING)
    batcher->state = DRAINING;
  pthread_cond_broadcast(&batcher->wake);
  pthread_mutex_unlock(&batcher->lock);

  pthread_mutex_lock(&batcher->join_lock);
  if (!batcher->joined) {
    pthread_join(batcher->thread, NULL);
    batcher->joined = 1;
  }
  pthread_mutex_unlock(&batcher->join_lock);
  return CGR_OK;
}

void cgr_batcher_destroy(cgr_batcher *batcher) {
  if (batcher == NULL)
    return;
  if (engine_of_this_thread == batcher) {
    cgr__warn(batcher->rt, "cgr_batcher_destroy called from a batcher "
                           "callback: ignored (it would wait for itself)");
    return;
  }
  cgr_batcher_stop(batcher, CGR_BATCHER_CANCEL);
  cgr__replay *replay = batcher->rt->layers[CGR__LAYER_REPLAY].state;
  replay->has_batcher = 0;
  batcher_free(batcher, 1);
}

/* ---- stats --------------------------------------------------------------- */

static int compare_floats(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

cgr_status cgr_batcher_stats_get(cgr_batcher *batcher, cgr_batcher_stats *out) {
  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (batcher == NULL || out == NULL)
    return CGR_E_INVALID_ARGUMENT;
  float *sorted = cgr__malloc(WAIT_SAMPLES * sizeof *sorted);
  if (sorted == NULL)
    return CGR_E_OUT_OF_MEMORY;
  pthread_mutex_lock(&batcher->lock);
  *out = batcher->stats;
  out->queue_depth = batcher->queued;
  uint64_t batched = batcher->batched;
  uint64_t samples =
      batcher->wait_count < WAIT_SAMPLES ? batcher->wait_count : WAIT_SAMPLES;
  memcpy(sorted, batcher->waits, samples * sizeof *sorted);
  pthread_mutex_unlock(&batcher->lock);

  const cgr_batcher_stats *s = out;
  uint64_t ended =
      s->completed + s->timed_out + s->invalid + s->failed + s->cancelled;
  out->pending = s->submitted - ended;
  out->mean_batch = s->batches ? (double)batched / (double)s->batches : 0.0;
  if (samples > 0) {
    qsort(sorted, samples, sizeof *sorted, compare_floats);
    out->wait_us_p50 = sorted[(samples - 1) / 2];
    uint64_t rank = (99 * samples + 99) / 100;
    out->wait_us_p99 = sorted[rank > 0 ? rank - 1 : 0];
  }
  cgr__free(sorted);
  return CGR_OK;
}

cgr_status cgr_batcher_last_failure(cgr_batcher *batcher, char *message,
                                    size_t size) {
  if (batcher == NULL || message == NULL || size == 0)
    return CGR_E_INVALID_ARGUMENT;
  pthread_mutex_lock(&batcher->lock);
  snprintf(message, size, "%s", batcher->failure);
  pthread_mutex_unlock(&batcher->lock);
  return CGR_OK;
}
