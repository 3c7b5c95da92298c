/* The batcher: 32 threads' requests each answered exactly once with their
 * own result, and counters that add up; the queue-full, deadline,
 * validation, failed-step and stop paths; keys never mixed in a batch; the
 * wait window; argument and state errors; injected faults.
 *
 * Callbacks run on the engine thread and cmocka is not thread-safe: they
 * never assert, they record what they saw (counters, a first problem) and
 * the test thread asserts on it once the requests have ended. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "model.h"
#include "runtime/fault.h"

static const uint32_t buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
enum { BUCKETS = 9, LARGEST = 256 };

/* How long a test waits for a request that must end: far past anything
 * the batcher should take, so a lost request fails instead of hanging. */
#define END_WAIT_US UINT64_C(30000000)

/* ---- requests and what became of them ------------------------------------ */

/* One request: a row of the test model. Its answer is ids + pos as the
 * step's output gives it back, so a result that belongs to another
 * request (or another row) shows. */
typedef struct request {
  uint32_t index; /* its tally in the fixture */
  int32_t id, pos, seq_len;
  int32_t pages[MODEL_PAGES];
  int mark; /* the failing-step tests fail the batch that holds it */
  /* Written by finish on the engine thread; read once the request ended. */
  int32_t answer;
  int pages_ok;
} request;

/* What the callbacks did with one request. */
typedef struct tally {
  atomic_uchar built, finished, abandoned;
  atomic_schar abandon_status;
  atomic_uint batch; /* the build that took it (1, 2, ...); 0: none */
} tally;

/* The callbacks a test can check the threads of. */
typedef enum callback {
  CALLBACK_KEY,
  CALLBACK_VALIDATE,
  CALLBACK_BUILD,
  CALLBACK_FINISH,
  CALLBACK_ABANDON,
  CALLBACK_COUNT
} callback;

static const char *const callback_names[CALLBACK_COUNT] = {"key", "validate",
                                                           "build", "finish",
                                                           "abandon"};

typedef struct fixture {
  cgr_runtime *rt;
  model m;
  cgr__stream *readback; /* the test's own stream for reading outputs */
  cgr_batcher *batcher;
  tally *tallies;
  uint32_t tally_count;
  pthread_t test_thread;

  /* Switches the test sets before it submits. */
  int check_keys;            /* build counts batches of mixed keys */
  cgr_status build_failure;  /* build fails a batch holding a marked one */
  cgr_status finish_failure; /* finish does */
  atomic_int stop_in_finish; /* the next finish calls stop */
  atomic_int stop_in_finish_status; /* what that stop returned */
  _Atomic(test_gate *) build_hold;  /* the next build waits on it */
  atomic_int build_waiting;         /* a build waits at the gate now */

  /* What the callbacks saw. */
  atomic_uint_fast64_t builds, rows_built, finishes, validations, abandons;
  atomic_uint_fast64_t key_mixes, eager_steps, key_calls;
  atomic_uint_fast64_t bins[CGR_BATCHER_SIZE_BINS];

  /* Threads the callbacks ran on (under `lock`). */
  pthread_mutex_t lock;
  int thread_seen[CALLBACK_COUNT];
  pthread_t thread[CALLBACK_COUNT];
  int thread_changed[CALLBACK_COUNT];
  int on_test_thread[CALLBACK_COUNT];

  /* The first thing a callback or a producer found wrong (under `lock`). */
  atomic_int problems;
  char problem[512];

  /* The engine thread's scratch: one batch's rows and outputs. */
  int32_t ids[MODEL_MAX_ROWS], pos[MODEL_MAX_ROWS];
  int32_t pages[MODEL_MAX_ROWS * MODEL_PAGES];
  int32_t cu_k[MODEL_MAX_ROWS + 1];
  int32_t out[MODEL_MAX_ROWS], out_pages[MODEL_MAX_ROWS * MODEL_PAGES];
} fixture;

static void note_problem(fixture *fx, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void note_problem(fixture *fx, const char *format, ...) {
  pthread_mutex_lock(&fx->lock);
  if (atomic_fetch_add(&fx->problems, 1) == 0) {
    va_list args;
    va_start(args, format);
    vsnprintf(fx->problem, sizeof fx->problem, format, args);
    va_end(args);
  }
  pthread_mutex_unlock(&fx->lock);
}

static void expect_no_problems(fixture *fx) {
  pthread_mutex_lock(&fx->lock);
  int problems = atomic_load(&fx->problems);
  char first[sizeof fx->problem];
  memcpy(first, fx->problem, sizeof first);
  pthread_mutex_unlock(&fx->lock);
  if (problems != 0)
    fail_msg("%d problems; the first: %s", problems, first);
}

static void record_thread(fixture *fx, callback which) {
  pthread_t self = pthread_self();
  pthread_mutex_lock(&fx->lock);
  if (!fx->thread_seen[which]) {
    fx->thread_seen[which] = 1;
    fx->thread[which] = self;
  } else if (!pthread_equal(fx->thread[which], self)) {
    fx->thread_changed[which] = 1;
  }
  if (pthread_equal(self, fx->test_thread))
    fx->on_test_thread[which] = 1;
  pthread_mutex_unlock(&fx->lock);
}

static tally *tally_of(fixture *fx, const request *r) {
  if (r->index >= fx->tally_count) {
    note_problem(fx, "a callback got a request with index %u of %u", r->index,
                 fx->tally_count);
    return NULL;
  }
  return &fx->tallies[r->index];
}

static unsigned size_bin(uint32_t size) {
  unsigned bin = 0;
  while (bin + 1 < CGR_BATCHER_SIZE_BINS && (1u << bin) < size)
    bin++;
  return bin;
}

/* ---- the callbacks --------------------------------------------------------
 */

static uint64_t key_value(const request *r) {
  return (uint64_t)(uint32_t)r->id % 3u;
}

static uint64_t key_of(void *user, const void *request_ptr) {
  fixture *fx = user;
  record_thread(fx, CALLBACK_KEY);
  atomic_fetch_add(&fx->key_calls, 1);
  return key_value(request_ptr);
}

static cgr_status validate_id(void *user, const void *request_ptr) {
  fixture *fx = user;
  record_thread(fx, CALLBACK_VALIDATE);
  atomic_fetch_add(&fx->validations, 1);
  const request *r = request_ptr;
  return r->id < 0 ? CGR_E_INVALID_ARGUMENT : CGR_OK;
}

/* Holds the engine thread in build while a test's gate is set. */
static void hold_build_if_asked(fixture *fx) {
  test_gate *gate = atomic_exchange(&fx->build_hold, NULL);
  if (gate == NULL)
    return;
  atomic_store(&fx->build_waiting, 1);
  if (!test_gate_wait(gate, 10000))
    note_problem(fx, "a build waited 10 s at the test's gate");
  atomic_store(&fx->build_waiting, 0);
}

static cgr_status build_rows(void *user, cgr_batch *batch,
                             void *const *requests, uint32_t count) {
  fixture *fx = user;
  record_thread(fx, CALLBACK_BUILD);
  hold_build_if_asked(fx);
  unsigned number = (unsigned)atomic_fetch_add(&fx->builds, 1) + 1;
  atomic_fetch_add(&fx->rows_built, count);
  atomic_fetch_add(&fx->bins[size_bin(count)], 1);
  if (count == 0 || count > MODEL_MAX_ROWS) {
    note_problem(fx, "build got a batch of %u", count);
    return CGR_E_INTERNAL;
  }
  const request *first = requests[0];
  int marked = 0;
  fx->cu_k[0] = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const request *r = requests[i];
    tally *t = tally_of(fx, r);
    if (t == NULL)
      return CGR_E_INTERNAL;
    atomic_fetch_add(&t->built, 1);
    atomic_store(&t->batch, number);
    if (fx->check_keys && key_value(r) != key_value(first))
      atomic_fetch_add(&fx->key_mixes, 1);
    marked |= r->mark;
    fx->ids[i] = r->id;
    fx->pos[i] = r->pos;
    memcpy(&fx->pages[i * MODEL_PAGES], r->pages, sizeof r->pages);
    fx->cu_k[i + 1] = fx->cu_k[i] + r->seq_len;
  }
  if (marked && fx->build_failure != CGR_OK)
    return fx->build_failure;
  const struct {
    cgr_slot slot;
    const int32_t *data;
    size_t bytes;
  } inputs[4] = {
      {fx->m.ids, fx->ids, count * 4},
      {fx->m.pos, fx->pos, count * 4},
      {fx->m.pages, fx->pages, (size_t)count * 4 * MODEL_PAGES},
      {fx->m.cu_k, fx->cu_k, (count + 1) * 4},
  };
  for (int i = 0; i < 4; ++i) {
    cgr_status status = cgr_batch_input(batch, inputs[i].slot, CGR_SOURCE_HOST,
                                        inputs[i].data, inputs[i].bytes);
    if (status != CGR_OK) {
      note_problem(fx, "cgr_batch_input in build: %s: %s",
                   cgr_status_name(status), cgr_last_error(fx->rt));
      return status;
    }
  }
  return CGR_OK;
}

/* Copies `bytes` of the step's output at `device` into `host` through the
 * test's own stream. */
static cgr_status read_back(fixture *fx, cgr_runtime *rt, void *host,
                            const void *device, size_t bytes) {
  cgr_status status =
      cgr__be_memcpy_async(TEST_BE(rt), fx->readback, host, device, bytes);
  if (status == CGR_OK)
    status = cgr__be_stream_synchronize(TEST_BE(rt), fx->readback);
  if (status != CGR_OK) /* a queued copy lands before `host` is reused */
    cgr__be_stream_drain(TEST_BE(rt), fx->readback);
  return status;
}

static cgr_status finish_rows(void *user, cgr_runtime *rt,
                              const cgr_ticket *ticket, void *const *requests,
                              uint32_t count, void **results) {
  fixture *fx = user;
  record_thread(fx, CALLBACK_FINISH);
  atomic_fetch_add(&fx->finishes, 1);
  if (ticket->set < 0)
    atomic_fetch_add(&fx->eager_steps, 1);
  if (count == 0 || count > MODEL_MAX_ROWS || ticket->batch_size != count) {
    note_problem(fx, "finish got %u requests for a step of %u rows", count,
                 ticket->batch_size);
    return CGR_E_INTERNAL;
  }
  int marked = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const request *r = requests[i];
    tally *t = tally_of(fx, r);
    if (t == NULL)
      return CGR_E_INTERNAL;
    atomic_fetch_add(&t->finished, 1);
    marked |= r->mark;
    if (results[i] != NULL)
      note_problem(fx, "finish: results[%u] is not NULL on entry", i);
  }
  void *out = NULL, *out_pages = NULL;
  cgr_status status = cgr_output(rt, ticket, fx->m.out, &out);
  if (status == CGR_OK)
    status = cgr_output(rt, ticket, fx->m.out_pages, &out_pages);
  if (status == CGR_OK)
    status = read_back(fx, rt, fx->out, out, count * 4);
  if (status == CGR_OK)
    status = read_back(fx, rt, fx->out_pages, out_pages,
                       (size_t)count * 4 * MODEL_PAGES);
  if (status != CGR_OK) {
    note_problem(fx, "reading step %llu's outputs: %s: %s",
                 (unsigned long long)ticket->step, cgr_status_name(status),
                 cgr_last_error(rt));
    return status;
  }
  /* out[r] = ids[r] + pos[r] + cu_k[r + 1] + cu_q[r] + bias[r], with
   * cu_q[r] = r and bias[r] = padded_batch * 100 + r: take away what the
   * row and the bucket add, and ids + pos is left. */
  int32_t cu_k = 0;
  for (uint32_t i = 0; i < count; ++i) {
    request *r = requests[i];
    cu_k += r->seq_len;
    r->answer = fx->out[i] - cu_k - 2 * (int32_t)i -
                (int32_t)ticket->padded_batch * 100;
    r->pages_ok = 1;
    for (int p = 0; p < MODEL_PAGES; ++p)
      if (fx->out_pages[i * MODEL_PAGES + p] != 2 * r->pages[p])
        r->pages_ok = 0;
    results[i] = &r->answer;
  }
  if (atomic_exchange(&fx->stop_in_finish, 0))
    atomic_store(&fx->stop_in_finish_status,
                 cgr_batcher_stop(fx->batcher, CGR_BATCHER_DRAIN));
  if (marked && fx->finish_failure != CGR_OK)
    return fx->finish_failure;
  return CGR_OK;
}

static void abandon_request(void *user, void *request_ptr, cgr_status status,
                            void *result) {
  fixture *fx = user;
  record_thread(fx, CALLBACK_ABANDON);
  request *r = request_ptr;
  tally *t = tally_of(fx, r);
  if (t == NULL)
    return;
  if (status == CGR_OK && result != &r->answer)
    note_problem(fx,
                 "abandon: request %d ended CGR_OK with result %p, not "
                 "its answer %p",
                 r->id, result, (void *)&r->answer);
  if (status != CGR_OK && result != NULL)
    note_problem(fx, "abandon: request %d ended %s with a result", r->id,
                 cgr_status_name(status));
  atomic_store(&t->abandon_status, (signed char)status);
  atomic_fetch_add(&fx->abandons, 1);
  atomic_fetch_add(&t->abandoned, 1);
}

/* ---- the fixture ----------------------------------------------------------
 */

static void fixture_init(fixture *fx, uint32_t tallies) {
  memset(fx, 0, sizeof *fx);
  pthread_mutex_init(&fx->lock, NULL);
  fx->test_thread = pthread_self();
  fx->tallies = calloc(tallies, sizeof *fx->tallies);
  assert_non_null(fx->tallies);
  fx->tally_count = tallies;
}

/* A captured model runtime and the test's readback stream. */
static void fixture_open(fixture *fx, const uint32_t *list, size_t n,
                         int allow_eager, uint32_t tallies) {
  fixture_init(fx, tallies);
  fx->rt = model_captured_runtime(list, n, allow_eager, &fx->m);
  assert_cgr_ok(fx->rt,
                cgr__be_stream_create(TEST_BE(fx->rt), CGR_PRIORITY_NORMAL,
                                      "readback", &fx->readback));
}

/* The same with lazy capture: buckets are captured by the engine's
 * replays. */
static void fixture_open_lazy(fixture *fx, uint32_t tallies) {
  fixture_init(fx, tallies);
  cgr_config rt_config;
  cgr_test_config(&rt_config);
  rt_config.buckets = buckets;
  rt_config.bucket_count = BUCKETS;
  rt_config.lazy_capture = 1;
  assert_cgr_ok(NULL, cgr_runtime_create(&rt_config, &fx->rt));
  model_declare(fx->rt, &fx->m);
  assert_cgr_ok(fx->rt, cgr_capture(fx->rt, model_step, &fx->m));
  assert_cgr_ok(fx->rt,
                cgr__be_stream_create(TEST_BE(fx->rt), CGR_PRIORITY_NORMAL,
                                      "readback", &fx->readback));
}

static void fixture_config(fixture *fx, cgr_batcher_config *config) {
  assert_cgr_ok(fx->rt, cgr_batcher_config_init(config));
  config->build = build_rows;
  config->finish = finish_rows;
  config->abandon = abandon_request;
  config->user = fx;
}

static void fixture_start(fixture *fx, const cgr_batcher_config *config) {
  assert_cgr_ok(fx->rt, cgr_batcher_create(fx->rt, config, &fx->batcher));
  assert_non_null(fx->batcher);
}

/* The batcher first: its engine thread uses the stream and the runtime. */
static void fixture_close(fixture *fx) {
  cgr_batcher_destroy(fx->batcher);
  fx->batcher = NULL;
  if (fx->readback != NULL)
    cgr__be_stream_destroy(TEST_BE(fx->rt), fx->readback);
  cgr_runtime_destroy(fx->rt);
  free(fx->tallies);
  pthread_mutex_destroy(&fx->lock);
}

static void request_init(request *r, uint32_t index, int32_t id) {
  memset(r, 0, sizeof *r);
  uint32_t u = (uint32_t)id;
  r->index = index;
  r->id = id;
  r->pos = (int32_t)(u * 7u % 4096u);
  r->seq_len = 1 + (int32_t)(u % 60u);
  for (int p = 0; p < MODEL_PAGES; ++p)
    r->pages[p] = (int32_t)((u + 13u * (uint32_t)p) % MODEL_PAGE_LIMIT);
  r->answer = INT32_MIN;
}

static cgr_handle *submit_ok(fixture *fx, request *r, uint64_t deadline_us) {
  cgr_handle *h = NULL;
  assert_cgr_ok(fx->rt, cgr_batcher_submit(fx->batcher, r, deadline_us, &h));
  assert_non_null(h);
  return h;
}

/* Waits until the request has ended (failing the test when it never does)
 * and returns how it ended. */
static cgr_status end_of(cgr_handle *h) {
  cgr_status waited = cgr_handle_wait(h, END_WAIT_US);
  if (waited != CGR_OK)
    fail_msg("a request did not end within %llu s: cgr_handle_wait says %s",
             (unsigned long long)(END_WAIT_US / 1000000),
             cgr_status_name(waited));
  return cgr_handle_result(h, NULL);
}

/* The request ended CGR_OK with its own answer, built and finished once. */
static void expect_answered(fixture *fx, const request *r, cgr_handle *h) {
  cgr_status status = end_of(h);
  if (status != CGR_OK) {
    char failure[512] = "";
    if (fx->batcher != NULL)
      (void)cgr_batcher_last_failure(fx->batcher, failure, sizeof failure);
    char problem[sizeof fx->problem];
    pthread_mutex_lock(&fx->lock);
    memcpy(problem, fx->problem, sizeof problem);
    pthread_mutex_unlock(&fx->lock);
    fail_msg("request %d ended %s, expected CGR_OK (last failure: \"%s\"; "
             "%d problems, the first: %s)",
             r->id, cgr_status_name(status), failure,
             atomic_load(&fx->problems), problem);
  }
  void *result = NULL;
  assert_int_equal(cgr_handle_result(h, &result), CGR_OK);
  if (result != &r->answer)
    fail_msg("request %d: its result is %p, not its answer %p", r->id, result,
             (const void *)&r->answer);
  if (r->answer != r->id + r->pos)
    fail_msg("request %d: answer %d, expected ids + pos = %d", r->id, r->answer,
             r->id + r->pos);
  if (!r->pages_ok)
    fail_msg("request %d: out_pages is not twice its pages", r->id);
  const tally *t = &fx->tallies[r->index];
  if (atomic_load(&t->built) != 1 || atomic_load(&t->finished) != 1)
    fail_msg("request %d: built %d times, finished %d times", r->id,
             atomic_load(&t->built), atomic_load(&t->finished));
}

/* The request ended with `want` and no step ever saw it. */
static void expect_ended_unseen(fixture *fx, const request *r, cgr_handle *h,
                                cgr_status want) {
  cgr_status status = end_of(h);
  if (status != want)
    fail_msg("request %d ended %s, expected %s", r->id, cgr_status_name(status),
             cgr_status_name(want));
  void *result = &result;
  assert_int_equal(cgr_handle_result(h, &result), want);
  assert_null(result);
  const tally *t = &fx->tallies[r->index];
  if (atomic_load(&t->built) != 0 || atomic_load(&t->finished) != 0)
    fail_msg("request %d ended %s but build saw it %d times, finish %d", r->id,
             cgr_status_name(want), atomic_load(&t->built),
             atomic_load(&t->finished));
}

static void stats_of(fixture *fx, cgr_batcher_stats *stats) {
  assert_cgr_ok(fx->rt, cgr_batcher_stats_get(fx->batcher, stats));
}

/* What every snapshot must satisfy. */
static void expect_consistent(const cgr_batcher_stats *s) {
  uint64_t ended =
      s->completed + s->timed_out + s->invalid + s->failed + s->cancelled;
  if (s->submitted != ended + s->pending)
    fail_msg("submitted %llu != ended %llu + pending %llu",
             (unsigned long long)s->submitted, (unsigned long long)ended,
             (unsigned long long)s->pending);
  uint64_t binned = 0;
  for (int k = 0; k < CGR_BATCHER_SIZE_BINS; ++k)
    binned += s->batch_size_bins[k];
  if (binned != s->batches)
    fail_msg("the size bins hold %llu batches, batches says %llu",
             (unsigned long long)binned, (unsigned long long)s->batches);
  assert_true(s->queue_depth <= s->queue_depth_max);
}

static void sleep_ms(int ms) { usleep((useconds_t)ms * 1000); }

/* Holds the engine thread inside build: sets the gate, submits `plug`,
 * and waits until its build waits at the gate. Everything submitted until
 * the gate opens stays queued. */
static cgr_handle *hold_engine(fixture *fx, test_gate *gate, request *plug) {
  test_gate_init(gate);
  atomic_store(&fx->build_hold, gate);
  cgr_handle *h = submit_ok(fx, plug, 0);
  for (int ms = 0; !atomic_load(&fx->build_waiting); ++ms) {
    if (ms > 10000)
      fail_msg("the engine never built the plug request");
    sleep_ms(1);
  }
  return h;
}

/* Opens a gate after a delay, from its own thread: for a test thread that
 * blocks in stop or destroy meanwhile. */
typedef struct opener {
  test_gate *gate;
  int delay_ms;
  pthread_t thread;
} opener;

static void *open_later(void *arg) {
  opener *o = arg;
  sleep_ms(o->delay_ms);
  test_gate_open(o->gate);
  return NULL;
}

static void opener_start(opener *o, test_gate *gate, int delay_ms) {
  o->gate = gate;
  o->delay_ms = delay_ms;
  assert_int_equal(pthread_create(&o->thread, NULL, open_later, o), 0);
}

static void opener_join(opener *o) { pthread_join(o->thread, NULL); }

/* ---- 32 producers -------------------------------------------------------- */

enum { PRODUCERS = 32, WINDOW = 64 };

/* Requests per producer: CGR_TEST_BATCHER_REQUESTS overrides (the
 * sanitizer presets run fewer). */
static uint32_t requests_per_producer(void) {
  const char *text = getenv("CGR_TEST_BATCHER_REQUESTS");
  if (text != NULL) {
    char *end = NULL;
    long n = strtol(text, &end, 10);
    if (end != text && *end == '\0' && n > 0 && n <= 10000000)
      return (uint32_t)n;
  }
  return 100000;
}

typedef struct producer {
  fixture *fx;
  uint32_t number, count;
  uint64_t busies;
  request window[WINDOW];
  cgr_handle *handles[WINDOW];
} producer;

/* Waits the window's request in `slot`, checks it, releases its handle. */
static void settle(producer *p, uint32_t slot) {
  fixture *fx = p->fx;
  cgr_handle *h = p->handles[slot];
  request *r = &p->window[slot];
  p->handles[slot] = NULL;
  cgr_status status = cgr_handle_wait(h, END_WAIT_US);
  if (status != CGR_OK) {
    note_problem(fx, "producer %u: request %d never ended (%s)", p->number,
                 r->id, cgr_status_name(status));
    return; /* the handle stays: the request may still write into r */
  }
  void *result = NULL;
  status = cgr_handle_result(h, &result);
  if (status != CGR_OK)
    note_problem(fx, "producer %u: request %d ended %s", p->number, r->id,
                 cgr_status_name(status));
  else if (result != &r->answer || r->answer != r->id + r->pos || !r->pages_ok)
    note_problem(fx,
                 "producer %u: request %d got answer %d (expected %d), "
                 "result %p (expected %p), pages %s",
                 p->number, r->id, r->answer, r->id + r->pos, result,
                 (void *)&r->answer, r->pages_ok ? "right" : "wrong");
  cgr_handle_release(h);
}

static void *produce(void *arg) {
  producer *p = arg;
  fixture *fx = p->fx;
  for (uint32_t i = 0; i < p->count; ++i) {
    uint32_t slot = i % WINDOW;
    if (i >= WINDOW)
      settle(p, slot); /* the oldest outstanding request */
    if (p->handles[slot] != NULL)
      return NULL; /* it never ended: reported, and r is not ours */
    uint32_t index = p->number * p->count + i;
    request *r = &p->window[slot];
    request_init(r, index, (int32_t)index);
    cgr_status status;
    for (;;) {
      status = cgr_batcher_submit(fx->batcher, r, 0, &p->handles[slot]);
      if (status != CGR_E_BUSY)
        break;
      p->busies++;
      sched_yield();
    }
    if (status != CGR_OK) {
      note_problem(fx, "producer %u: submit of request %u: %s", p->number, i,
                   cgr_status_name(status));
      return NULL;
    }
  }
  uint32_t outstanding = p->count < WINDOW ? p->count : WINDOW;
  for (uint32_t k = 0; k < outstanding; ++k) {
    uint32_t slot = (p->count + k) % WINDOW;
    if (p->handles[slot] != NULL)
      settle(p, slot);
  }
  return NULL;
}

static void test_batcher_answers_every_request_exactly_once(void **state) {
  (void)cgr_test_runtime(state);
  uint32_t per_producer = requests_per_producer();
  uint64_t total = (uint64_t)PRODUCERS * per_producer;
  assert_true(total <= INT32_MAX);
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, (uint32_t)total);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.max_batch = LARGEST;
  /* Under the 32 x 64 requests outstanding: submits meet a full queue. */
  config.queue_capacity = 1024;
  fixture_start(&fx, &config);

  producer *producers = calloc(PRODUCERS, sizeof *producers);
  pthread_t threads[PRODUCERS];
  assert_non_null(producers);
  double began = (double)cgr_clock_us();
  for (uint32_t i = 0; i < PRODUCERS; ++i) {
    producers[i].fx = &fx;
    producers[i].number = i;
    producers[i].count = per_producer;
    assert_int_equal(pthread_create(&threads[i], NULL, produce, &producers[i]),
                     0);
  }
  /* Meanwhile every snapshot adds up and no counter goes back. */
  cgr_batcher_stats previous, now;
  memset(&previous, 0, sizeof previous);
  uint64_t snapshots = 0;
  for (;;) {
    stats_of(&fx, &now);
    expect_consistent(&now);
    assert_true(now.submitted >= previous.submitted);
    assert_true(now.completed >= previous.completed);
    assert_true(now.batches >= previous.batches);
    assert_true(now.rejected_busy >= previous.rejected_busy);
    assert_true(now.queue_depth <= config.queue_capacity);
    previous = now;
    snapshots++;
    if (now.completed == total || atomic_load(&fx.problems) != 0)
      break;
    sleep_ms(50); /* a snapshot sorts 65,536 wait samples */
  }
  uint64_t busies = 0;
  for (uint32_t i = 0; i < PRODUCERS; ++i) {
    pthread_join(threads[i], NULL);
    busies += producers[i].busies;
  }
  double seconds = ((double)cgr_clock_us() - began) / 1e6;
  free(producers);
  expect_no_problems(&fx);

  for (uint32_t i = 0; i < total; ++i) {
    const tally *t = &fx.tallies[i];
    if (atomic_load(&t->built) != 1 || atomic_load(&t->finished) != 1)
      fail_msg("request %u: built %d times, finished %d times", i,
               atomic_load(&t->built), atomic_load(&t->finished));
  }
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.submitted, total);
  assert_int_equal(s.completed, total);
  assert_int_equal(s.pending, 0);
  assert_int_equal(s.timed_out + s.invalid + s.failed + s.cancelled, 0);
  assert_int_equal(s.rejected_busy, busies);
  assert_int_equal(s.rejected_stopped, 0);
  assert_int_equal(s.queue_depth, 0);
  assert_true(s.queue_depth_max <= config.queue_capacity);
  /* The engine's batches are the ones build saw, bin by bin. */
  assert_int_equal(s.batches, atomic_load(&fx.builds));
  assert_int_equal(atomic_load(&fx.finishes), s.batches);
  assert_int_equal(atomic_load(&fx.rows_built), total);
  for (int k = 0; k < CGR_BATCHER_SIZE_BINS; ++k) {
    assert_int_equal(s.batch_size_bins[k], atomic_load(&fx.bins[k]));
    if (k > 8) /* nothing over max_batch 256 */
      assert_int_equal(s.batch_size_bins[k], 0);
  }
  double batched = s.mean_batch * (double)s.batches;
  if (batched < (double)total - 0.5 - 1e-9 * (double)total ||
      batched > (double)total + 0.5 + 1e-9 * (double)total)
    fail_msg("mean_batch %.6f x %llu batches = %.1f, not the %llu requests",
             s.mean_batch, (unsigned long long)s.batches, batched,
             (unsigned long long)total);
  assert_true(s.wait_us_p50 <= s.wait_us_p99);
  printf("%u producers x %u requests: %.2f s (%.0f requests/s), %llu "
         "batches of %.1f on average, %llu busy answers, %llu snapshots\n",
         PRODUCERS, per_producer, seconds, (double)total / seconds,
         (unsigned long long)s.batches, s.mean_batch,
         (unsigned long long)busies, (unsigned long long)snapshots);
  fixture_close(&fx);
}

/* ---- queue full ---------------------------------------------------------- */

static void test_batcher_full_queue_answers_busy_at_once(void **state) {
  (void)cgr_test_runtime(state);
  enum { CAPACITY = 32, MAX_REQUESTS = 200 };
  static const uint32_t small[] = {1, 2, 4, 8};
  fixture fx;
  fixture_open(&fx, small, 4, 0, MAX_REQUESTS + 1);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.queue_capacity = CAPACITY;
  fixture_start(&fx, &config);

  /* The next graph waits at the gate: the engine soon waits on the
   * device, and nothing leaves the queue. */
  test_gate gate;
  test_gate_init(&gate);
  __atomic_store_n(&fx.m.hold, &gate, __ATOMIC_RELEASE);
  static request requests[MAX_REQUESTS + 1];
  cgr_handle *handles[MAX_REQUESTS + 1];
  uint32_t accepted = 0;
  uint64_t busies = 0;
  cgr_batcher_stats s;
  for (int settled = 0; !settled;) {
    for (;;) {
      if (accepted == MAX_REQUESTS)
        fail_msg("%u requests accepted with the device held and a queue of "
                 "%u",
                 accepted, CAPACITY);
      request_init(&requests[accepted], accepted, (int32_t)accepted);
      cgr_status status = cgr_batcher_submit(fx.batcher, &requests[accepted], 0,
                                             &handles[accepted]);
      if (status == CGR_E_BUSY) {
        assert_null(handles[accepted]);
        busies++;
        break;
      }
      assert_cgr_ok(fx.rt, status);
      accepted++;
    }
    /* The engine may still take a batch before it waits on the device:
     * fill again until the queue stays full. */
    sleep_ms(20);
    stats_of(&fx, &s);
    settled = s.queue_depth == CAPACITY;
  }
  request_init(&requests[accepted], accepted, (int32_t)accepted);
  cgr_handle *h = (cgr_handle *)&h;
  uint64_t t0 = cgr_clock_us();
  cgr_status status =
      cgr_batcher_submit(fx.batcher, &requests[accepted], 0, &h);
  uint64_t took_us = cgr_clock_us() - t0;
  assert_int_equal(status, CGR_E_BUSY);
  busies++;
  assert_null(h);
  if (took_us >= 50000)
    fail_msg("a submit to a full queue took %llu us",
             (unsigned long long)took_us);
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.rejected_busy, busies);
  assert_int_equal(s.submitted, accepted);
  assert_int_equal(s.queue_depth, CAPACITY);
  assert_int_equal(s.queue_depth_max, CAPACITY);

  test_gate_open(&gate);
  for (uint32_t i = 0; i < accepted; ++i) {
    expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  stats_of(&fx, &s);
  assert_int_equal(s.completed, accepted);
  assert_int_equal(s.pending, 0);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* ---- deadlines ----------------------------------------------------------- */

static void test_batcher_expired_requests_end_timeout_unbuilt(void **state) {
  (void)cgr_test_runtime(state);
  enum { EACH = 10, N = 1 + 3 * EACH };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.max_batch = 64;
  fixture_start(&fx, &config);

  request requests[N];
  cgr_handle *handles[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)(1000 + i));
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  /* Interleaved: soon expired, no deadline, a deadline far away. */
  uint64_t now = cgr_clock_us();
  for (uint32_t i = 1; i < N; ++i) {
    uint64_t deadline = i % 3 == 1   ? now + 2000
                        : i % 3 == 2 ? 0
                                     : now + UINT64_C(60000000);
    handles[i] = submit_ok(&fx, &requests[i], deadline);
  }
  sleep_ms(20);
  test_gate_open(&gate);

  expect_answered(&fx, &requests[0], handles[0]);
  for (uint32_t i = 1; i < N; ++i) {
    if (i % 3 == 1)
      expect_ended_unseen(&fx, &requests[i], handles[i], CGR_E_TIMEOUT);
    else
      expect_answered(&fx, &requests[i], handles[i]);
  }
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.timed_out, EACH);
  assert_int_equal(s.completed, N - EACH);
  assert_int_equal(s.pending, 0);
  assert_int_equal(atomic_load(&fx.rows_built), N - EACH);
  for (uint32_t i = 0; i < N; ++i)
    cgr_handle_release(handles[i]);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* ---- validation ---------------------------------------------------------- */

static void test_batcher_invalid_requests_fail_alone(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 101 };
  static const uint32_t small[] = {1, 2, 4, 8, 16};
  fixture fx;
  fixture_open(&fx, small, 5, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.validate = validate_id;
  fixture_start(&fx, &config);

  request requests[N];
  cgr_handle *handles[N];
  request_init(&requests[0], 0, 0);
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  uint32_t invalid = 0;
  for (uint32_t i = 1; i < N; ++i) {
    int bad = i % 3 == 0;
    request_init(&requests[i], i, bad ? -(int32_t)i : (int32_t)i);
    invalid += (uint32_t)bad;
    handles[i] = submit_ok(&fx, &requests[i], 0);
  }
  test_gate_open(&gate);
  for (uint32_t i = 0; i < N; ++i) {
    if (requests[i].id < 0)
      expect_ended_unseen(&fx, &requests[i], handles[i],
                          CGR_E_INVALID_ARGUMENT);
    else
      expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.invalid, invalid);
  assert_int_equal(s.completed, N - invalid);
  assert_int_equal(s.failed, 0);
  assert_int_equal(atomic_load(&fx.validations), N);
  assert_int_equal(atomic_load(&fx.rows_built), N - invalid);
  /* The 100 queued requests went in batches of at most 16 that held
   * invalid ones too: those batches ran with the valid ones alone. */
  assert_true(s.batches >= (N - 1 - invalid + 15) / 16);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* ---- a failed step fails its batch only ---------------------------------- */

/* Requests 5 and 27 of 40 (plus the plug) are marked; the callback named
 * by `in_build` fails the batches that hold them with `failure`. */
static void run_failing_step(int in_build, cgr_status failure) {
  enum { N = 41 };
  static const uint32_t small[] = {1, 2, 4, 8};
  fixture fx;
  fixture_open(&fx, small, 4, 0, N);
  if (in_build)
    fx.build_failure = failure;
  else
    fx.finish_failure = failure;
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);

  request requests[N];
  cgr_handle *handles[N];
  request_init(&requests[0], 0, 0);
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  for (uint32_t i = 1; i < N; ++i) {
    request_init(&requests[i], i, (int32_t)i);
    requests[i].mark = i == 5 || i == 27;
    handles[i] = submit_ok(&fx, &requests[i], 0);
  }
  test_gate_open(&gate);
  for (uint32_t i = 0; i < N; ++i)
    (void)end_of(handles[i]);

  /* The batches build saw the marked requests in. */
  unsigned failed_batches[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    const request *marked = &requests[k == 0 ? 5 : 27];
    failed_batches[k] = atomic_load(&fx.tallies[marked->index].batch);
    assert_true(failed_batches[k] != 0);
  }
  uint64_t failed = 0;
  for (uint32_t i = 0; i < N; ++i) {
    const tally *t = &fx.tallies[requests[i].index];
    unsigned batch = atomic_load(&t->batch);
    if (batch == failed_batches[0] || batch == failed_batches[1]) {
      failed++;
      cgr_status status = cgr_handle_result(handles[i], NULL);
      if (status != failure)
        fail_msg("request %u shared batch %u with a marked request but "
                 "ended %s, not %s",
                 i, batch, cgr_status_name(status), cgr_status_name(failure));
      assert_int_equal(atomic_load(&t->built), 1);
      assert_int_equal(atomic_load(&t->finished), in_build ? 0 : 1);
    } else {
      expect_answered(&fx, &requests[i], handles[i]);
    }
    cgr_handle_release(handles[i]);
  }
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.failed, failed);
  assert_int_equal(s.completed, N - failed);
  assert_int_equal(s.pending, 0);
  char message[512];
  assert_cgr_ok(fx.rt,
                cgr_batcher_last_failure(fx.batcher, message, sizeof message));
  if (strstr(message, in_build ? "build" : "finish") == NULL)
    fail_msg("cgr_batcher_last_failure says \"%s\", which does not name the "
             "%s callback",
             message, in_build ? "build" : "finish");
  /* Cut to the size given, terminated. */
  char short_message[8];
  assert_cgr_ok(fx.rt, cgr_batcher_last_failure(fx.batcher, short_message,
                                                sizeof short_message));
  assert_int_equal(strlen(short_message), sizeof short_message - 1);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

static void test_batcher_failed_finish_fails_its_batch_only(void **state) {
  (void)cgr_test_runtime(state);
  run_failing_step(0, CGR_E_UNSUPPORTED);
}

static void test_batcher_failed_build_fails_its_batch_only(void **state) {
  (void)cgr_test_runtime(state);
  run_failing_step(1, CGR_E_SYSTEM);
}

static void test_batcher_last_failure_is_empty_before_any(void **state) {
  (void)cgr_test_runtime(state);
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, 1);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  char message[64] = "not cleared";
  assert_cgr_ok(fx.rt,
                cgr_batcher_last_failure(fx.batcher, message, sizeof message));
  assert_string_equal(message, "");
  fixture_close(&fx);
}

/* ---- stop ---------------------------------------------------------------- */

enum { STOP_PRODUCERS = 8, STOP_WINDOW = 64, STOP_MAX = 200000 };

/* A producer that submits until the batcher refuses, keeping every
 * handle: what matters is how each one ended. */
typedef struct stopper {
  fixture *fx;
  uint32_t number;
  request *requests; /* STOP_MAX / STOP_PRODUCERS of them */
  cgr_handle **handles;
  uint32_t submitted;
  uint64_t busies, refused;
} stopper;

static void *produce_until_stopped(void *arg) {
  stopper *p = arg;
  fixture *fx = p->fx;
  const uint32_t capacity = STOP_MAX / STOP_PRODUCERS;
  for (uint32_t i = 0; i < capacity; ++i) {
    if (i >= STOP_WINDOW &&
        cgr_handle_wait(p->handles[i - STOP_WINDOW], END_WAIT_US) != CGR_OK) {
      note_problem(fx, "stopper %u: request %u never ended", p->number,
                   i - STOP_WINDOW);
      return NULL;
    }
    uint32_t index = p->number * capacity + i;
    request *r = &p->requests[i];
    request_init(r, index, (int32_t)index);
    cgr_status status;
    for (;;) {
      status = cgr_batcher_submit(fx->batcher, r, 0, &p->handles[i]);
      if (status != CGR_E_BUSY)
        break;
      p->busies++;
      sched_yield();
    }
    if (status == CGR_E_INVALID_STATE) {
      p->refused++;
      if (p->handles[i] != NULL)
        note_problem(fx, "a refused submit left a handle");
      return NULL;
    }
    if (status != CGR_OK) {
      note_problem(fx, "stopper %u: submit: %s", p->number,
                   cgr_status_name(status));
      return NULL;
    }
    p->submitted = i + 1;
  }
  note_problem(fx, "stopper %u: submitted %u requests and never met the stop",
               p->number, capacity);
  return NULL;
}

typedef struct stop_run {
  fixture fx;
  stopper producers[STOP_PRODUCERS];
  pthread_t threads[STOP_PRODUCERS];
  request *requests;
  cgr_handle **handles;
} stop_run;

static void stop_run_start(stop_run *run, uint32_t queue_capacity) {
  fixture_open(&run->fx, buckets, BUCKETS, 0, STOP_MAX);
  cgr_batcher_config config;
  fixture_config(&run->fx, &config);
  config.max_batch = 32;
  config.queue_capacity = queue_capacity;
  fixture_start(&run->fx, &config);
  run->requests = calloc(STOP_MAX, sizeof *run->requests);
  run->handles = calloc(STOP_MAX, sizeof *run->handles);
  assert_non_null(run->requests);
  assert_non_null(run->handles);
  const uint32_t capacity = STOP_MAX / STOP_PRODUCERS;
  for (uint32_t i = 0; i < STOP_PRODUCERS; ++i) {
    stopper *p = &run->producers[i];
    p->fx = &run->fx;
    p->number = i;
    p->requests = run->requests + (size_t)i * capacity;
    p->handles = run->handles + (size_t)i * capacity;
    assert_int_equal(pthread_create(&run->threads[i], NULL,
                                    produce_until_stopped, p),
                     0);
  }
}

/* Joins the producers and checks that every accepted request ended once,
 * CGR_OK with its answer or (when `cancel_allowed`) CGR_E_CANCELLED never
 * seen by a step; returns how many were cancelled. */
static uint64_t stop_run_finish(stop_run *run, int cancel_allowed) {
  fixture *fx = &run->fx;
  uint64_t refused = 0, submitted = 0, busies = 0, ok = 0, cancelled = 0;
  for (uint32_t i = 0; i < STOP_PRODUCERS; ++i) {
    pthread_join(run->threads[i], NULL);
    refused += run->producers[i].refused;
    busies += run->producers[i].busies;
  }
  expect_no_problems(fx);
  /* Refused from now on, and counted. */
  request late;
  request_init(&late, 0, 0);
  cgr_handle *h = (cgr_handle *)&h;
  assert_int_equal(cgr_batcher_submit(fx->batcher, &late, 0, &h),
                   CGR_E_INVALID_STATE);
  assert_null(h);
  refused++;
  /* A second stop is a no-op. */
  assert_cgr_ok(fx->rt, cgr_batcher_stop(fx->batcher, CGR_BATCHER_CANCEL));
  assert_cgr_ok(fx->rt, cgr_batcher_stop(fx->batcher, CGR_BATCHER_DRAIN));

  for (uint32_t k = 0; k < STOP_PRODUCERS; ++k) {
    const stopper *p = &run->producers[k];
    submitted += p->submitted;
    for (uint32_t i = 0; i < p->submitted; ++i) {
      const request *r = &p->requests[i];
      /* stop returned: every accepted request has ended already. */
      assert_int_equal(cgr_handle_poll(p->handles[i]), CGR_OK);
      cgr_status status = cgr_handle_result(p->handles[i], NULL);
      if (status == CGR_OK) {
        expect_answered(fx, r, p->handles[i]);
        ok++;
      } else if (status == CGR_E_CANCELLED && cancel_allowed) {
        expect_ended_unseen(fx, r, p->handles[i], CGR_E_CANCELLED);
        cancelled++;
      } else {
        fail_msg("request %d ended %s", r->id, cgr_status_name(status));
      }
      cgr_handle_release(p->handles[i]);
    }
  }
  cgr_batcher_stats s;
  stats_of(fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.submitted, submitted);
  assert_int_equal(s.completed, ok);
  assert_int_equal(s.cancelled, cancelled);
  assert_int_equal(s.timed_out + s.invalid + s.failed, 0);
  assert_int_equal(s.pending, 0);
  assert_int_equal(s.queue_depth, 0);
  assert_int_equal(s.rejected_stopped, refused);
  assert_int_equal(s.rejected_busy, busies);
  assert_true(refused >= STOP_PRODUCERS);
  printf("stopped after %llu requests: %llu answered, %llu cancelled\n",
         (unsigned long long)submitted, (unsigned long long)ok,
         (unsigned long long)cancelled);
  fixture_close(fx);
  free(run->requests);
  free(run->handles);
  return cancelled;
}

static void test_batcher_stop_cancel_under_load_ends_each_once(void **state) {
  (void)cgr_test_runtime(state);
  stop_run *run = calloc(1, sizeof *run);
  assert_non_null(run);
  /* A queue smaller than the producers' windows: busy answers too. */
  stop_run_start(run, 128);
  cgr_batcher_stats s;
  for (int ms = 0;; ++ms) {
    stats_of(&run->fx, &s);
    if (s.completed >= 2000 || atomic_load(&run->fx.problems) != 0)
      break;
    if (ms > 20000)
      fail_msg("2000 requests did not complete in 20 s");
    sleep_ms(1);
  }
  assert_cgr_ok(run->fx.rt,
                cgr_batcher_stop(run->fx.batcher, CGR_BATCHER_CANCEL));
  (void)stop_run_finish(run, 1);
  free(run);
}

/* With the engine held in a build, the queue fills; stop then ends the
 * queued requests as `mode` says, and the held batch finishes normally. */
static void run_stop_with_a_full_queue(cgr_batcher_stop_mode mode) {
  stop_run *run = calloc(1, sizeof *run);
  assert_non_null(run);
  stop_run_start(run, 4096);
  fixture *fx = &run->fx;
  cgr_batcher_stats s;
  for (int ms = 0;; ++ms) {
    stats_of(fx, &s);
    if (s.completed >= 500 || atomic_load(&fx->problems) != 0)
      break;
    if (ms > 20000)
      fail_msg("500 requests did not complete in 20 s");
    sleep_ms(1);
  }
  test_gate gate;
  test_gate_init(&gate);
  atomic_store(&fx->build_hold, &gate);
  for (int ms = 0; !atomic_load(&fx->build_waiting); ++ms) {
    if (ms > 10000)
      fail_msg("no build reached the gate in 10 s");
    sleep_ms(1);
  }
  for (int ms = 0;; ++ms) {
    stats_of(fx, &s);
    if (s.queue_depth > 0)
      break;
    if (ms > 10000)
      fail_msg("nothing was queued behind the held build in 10 s");
    sleep_ms(1);
  }
  opener o;
  opener_start(&o, &gate, 50);
  assert_cgr_ok(fx->rt, cgr_batcher_stop(fx->batcher, mode));
  opener_join(&o);
  uint64_t cancelled = stop_run_finish(run, mode == CGR_BATCHER_CANCEL);
  if (mode == CGR_BATCHER_CANCEL)
    assert_true(cancelled >= 1);
  else
    assert_int_equal(cancelled, 0);
  test_gate_fini(&gate);
  free(run);
}

static void test_batcher_stop_cancel_cancels_the_queue(void **state) {
  (void)cgr_test_runtime(state);
  run_stop_with_a_full_queue(CGR_BATCHER_CANCEL);
}

static void test_batcher_stop_drain_runs_the_queue(void **state) {
  (void)cgr_test_runtime(state);
  run_stop_with_a_full_queue(CGR_BATCHER_DRAIN);
}

/* stop(DRAIN) from one thread waits for a held engine; stop(CANCEL) from
 * another then cancels what is still queued, and both return. */
typedef struct drainer {
  cgr_batcher *batcher;
  cgr_status status;
  atomic_int returned;
  pthread_t thread;
} drainer;

static void *drain(void *arg) {
  drainer *d = arg;
  d->status = cgr_batcher_stop(d->batcher, CGR_BATCHER_DRAIN);
  atomic_store(&d->returned, 1);
  return NULL;
}

static void
test_batcher_cancel_after_drain_cancels_what_is_queued(void **state) {
  (void)cgr_test_runtime(state);
  /* Up to 5,000 submits 1 ms apart: the drain thread gets 5 s to run,
   * enough on a loaded machine. */
  enum { QUEUED = 8, MAX_N = 1 + QUEUED + 5000 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, MAX_N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  static request requests[MAX_N];
  static cgr_handle *handles[MAX_N];
  for (uint32_t i = 0; i < MAX_N; ++i)
    request_init(&requests[i], i, (int32_t)(50 + i));
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  uint32_t n = 1;
  for (; n < 1 + QUEUED; ++n)
    handles[n] = submit_ok(&fx, &requests[n], 0);
  drainer d;
  memset(&d, 0, sizeof d);
  d.batcher = fx.batcher;
  assert_int_equal(pthread_create(&d.thread, NULL, drain, &d), 0);
  /* Submits go on being accepted until the drain takes effect, then are
   * refused; the accepted ones queue behind the held engine. */
  for (;; ++n) {
    if (n == MAX_N)
      fail_msg("%u submits accepted after stop(DRAIN) was called", n);
    cgr_status status =
        cgr_batcher_submit(fx.batcher, &requests[n], 0, &handles[n]);
    if (status == CGR_E_INVALID_STATE)
      break;
    if (status == CGR_E_BUSY) { /* a full queue: the drain is late */
      --n;
      sleep_ms(1);
      continue;
    }
    assert_cgr_ok(fx.rt, status);
    sleep_ms(1);
  }
  sleep_ms(10);
  assert_int_equal(atomic_load(&d.returned), 0); /* the engine is held */
  opener o;
  opener_start(&o, &gate, 30);
  assert_cgr_ok(fx.rt, cgr_batcher_stop(fx.batcher, CGR_BATCHER_CANCEL));
  opener_join(&o);
  pthread_join(d.thread, NULL);
  assert_cgr_ok(fx.rt, d.status);
  expect_answered(&fx, &requests[0], handles[0]);
  for (uint32_t i = 1; i < n; ++i)
    expect_ended_unseen(&fx, &requests[i], handles[i], CGR_E_CANCELLED);
  for (uint32_t i = 0; i < n; ++i)
    cgr_handle_release(handles[i]);
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.cancelled, n - 1);
  assert_int_equal(s.completed, 1);
  assert_int_equal(s.rejected_stopped, 1);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* stop joins the engine thread: from a callback, on the engine thread
 * itself, it is misuse, answered with a status (and nothing stops). */
static void test_batcher_stop_from_a_callback_is_refused(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 2 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  request requests[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)(70 + i));
  atomic_store(&fx.stop_in_finish_status, 1);
  atomic_store(&fx.stop_in_finish, 1);
  cgr_handle *h = submit_ok(&fx, &requests[0], 0);
  expect_answered(&fx, &requests[0], h);
  cgr_handle_release(h);
  assert_int_equal(atomic_load(&fx.stop_in_finish), 0);
  int status = atomic_load(&fx.stop_in_finish_status);
  if (status != CGR_E_INVALID_STATE)
    fail_msg("cgr_batcher_stop from the finish callback returned %s, not "
             "CGR_E_INVALID_STATE",
             status == 1 ? "nothing" : cgr_status_name((cgr_status)status));
  /* The batcher still runs. */
  h = submit_ok(&fx, &requests[1], 0);
  expect_answered(&fx, &requests[1], h);
  cgr_handle_release(h);
  expect_no_problems(&fx);
  fixture_close(&fx);
}

/* ---- keys ---------------------------------------------------------------- */

static void test_batcher_never_mixes_keys_in_a_batch(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 301 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  fx.check_keys = 1;
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.key = key_of;
  config.max_batch = 32;
  fixture_start(&fx, &config);

  request requests[N];
  cgr_handle *handles[N];
  request_init(&requests[0], 0, 0);
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  /* Keys 1, 2, 0, 1, 2, ... queued together. */
  for (uint32_t i = 1; i < N; ++i) {
    request_init(&requests[i], i, (int32_t)i);
    handles[i] = submit_ok(&fx, &requests[i], 0);
  }
  test_gate_open(&gate);
  for (uint32_t i = 0; i < N; ++i) {
    expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  assert_int_equal(atomic_load(&fx.key_mixes), 0);
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.completed, N);
  /* The 300 queued ones went in full batches of one key each, not one by
   * one. */
  if (s.batches > 1 + 3 * ((N - 1) / 3 / 32 + 1))
    fail_msg("%llu batches for 300 queued requests of 3 keys",
             (unsigned long long)s.batches);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* key runs inside cgr_batcher_submit, on the submitting thread, once per
 * request; validate, build, finish and abandon on the engine thread. */
static void
test_batcher_runs_key_on_the_submitter_the_rest_on_the_engine(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 8 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.key = key_of;
  config.validate = validate_id;
  fixture_start(&fx, &config);
  request requests[N];
  cgr_handle *handles[N];
  request_init(&requests[0], 0, 0);
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  for (uint32_t i = 1; i < N; ++i) {
    request_init(&requests[i], i, (int32_t)i);
    handles[i] = submit_ok(&fx, &requests[i], 0);
  }
  assert_int_equal(atomic_load(&fx.key_calls), N);
  cgr_handle_release(handles[N - 1]); /* abandoned */
  test_gate_open(&gate);
  for (uint32_t i = 0; i + 1 < N; ++i) {
    expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  for (int ms = 0; atomic_load(&fx.tallies[N - 1].abandoned) == 0; ++ms) {
    if (ms > 10000)
      fail_msg("the released request was never abandoned");
    sleep_ms(1);
  }
  assert_int_equal(atomic_load(&fx.key_calls), N);
  int seen[CALLBACK_COUNT], changed[CALLBACK_COUNT], on_test[CALLBACK_COUNT];
  int same_as_build[CALLBACK_COUNT];
  pthread_mutex_lock(&fx.lock);
  for (int c = 0; c < CALLBACK_COUNT; ++c) {
    seen[c] = fx.thread_seen[c];
    changed[c] = fx.thread_changed[c];
    on_test[c] = fx.on_test_thread[c];
    same_as_build[c] = pthread_equal(fx.thread[c], fx.thread[CALLBACK_BUILD]);
  }
  pthread_mutex_unlock(&fx.lock);
  for (int c = 0; c < CALLBACK_COUNT; ++c) {
    const char *name = callback_names[c];
    if (!seen[c])
      fail_msg("the %s callback never ran", name);
    if (changed[c])
      fail_msg("the %s callback ran on more than one thread", name);
    if (c == CALLBACK_KEY) {
      if (!on_test[c] || same_as_build[c])
        fail_msg("the key callback did not run on the submitting thread");
    } else if (on_test[c] || !same_as_build[c]) {
      fail_msg("the %s callback did not run on the engine thread", name);
    }
  }
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* ---- the wait window ----------------------------------------------------- */

static void test_batcher_lone_request_waits_the_window(void **state) {
  (void)cgr_test_runtime(state);
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, 1);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.max_wait_us = 100000;
  fixture_start(&fx, &config);
  request r;
  request_init(&r, 0, 42);
  uint64_t t0 = cgr_clock_us();
  cgr_handle *h = submit_ok(&fx, &r, 0);
  expect_answered(&fx, &r, h);
  uint64_t took_us = cgr_clock_us() - t0;
  if (took_us < 90000)
    fail_msg("a lone request ended after %llu us, inside the 100 ms window",
             (unsigned long long)took_us);
  /* Its wait, submit to batch start, is the window. */
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  if (s.wait_us_p50 < 90000 || s.wait_us_p99 < 90000)
    fail_msg("wait_us_p50 %.0f, p99 %.0f for a request that waited 100 ms",
             s.wait_us_p50, s.wait_us_p99);
  cgr_handle_release(h);
  expect_no_problems(&fx);
  fixture_close(&fx);
}

/* Windows of 60 s that must close early: a request that ends at all
 * within END_WAIT_US (30 s) shows that its window closed (no tight
 * timing). */
static void
test_batcher_full_batch_second_request_or_stop_closes_window(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 7 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  request requests[N];
  cgr_handle *handles[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)i);

  /* min_wait_us = max_wait_us: only a full batch of 4 closes at once. */
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.max_wait_us = 60000000;
  config.min_wait_us = 60000000;
  config.max_batch = 4;
  fixture_start(&fx, &config);
  for (uint32_t i = 0; i < 4; ++i)
    handles[i] = submit_ok(&fx, &requests[i], 0);
  for (uint32_t i = 0; i < 4; ++i)
    expect_answered(&fx, &requests[i], handles[i]);
  /* A lone request, then a drain: its window closes at once. */
  handles[4] = submit_ok(&fx, &requests[4], 0);
  sleep_ms(5);
  assert_cgr_ok(fx.rt, cgr_batcher_stop(fx.batcher, CGR_BATCHER_DRAIN));
  assert_int_equal(cgr_handle_poll(handles[4]), CGR_OK);
  expect_answered(&fx, &requests[4], handles[4]);
  cgr_batcher_destroy(fx.batcher);
  fx.batcher = NULL;

  /* A second request shortens the window to min_wait_us. */
  fixture_config(&fx, &config);
  config.max_wait_us = 60000000;
  config.min_wait_us = 1000;
  fixture_start(&fx, &config);
  for (uint32_t i = 5; i < 7; ++i)
    handles[i] = submit_ok(&fx, &requests[i], 0);
  for (uint32_t i = 5; i < 7; ++i)
    expect_answered(&fx, &requests[i], handles[i]);
  for (uint32_t i = 0; i < N; ++i)
    cgr_handle_release(handles[i]);
  expect_no_problems(&fx);
  fixture_close(&fx);
}

/* ---- eager and lazy ------------------------------------------------------ */

static void
test_batcher_runs_batches_over_the_largest_bucket_eagerly(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 17 };
  static const uint32_t small[] = {1, 2, 4};
  fixture fx;
  fixture_open(&fx, small, 3, 1, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.max_batch = 8;
  fixture_start(&fx, &config);
  request requests[N];
  cgr_handle *handles[N];
  request_init(&requests[0], 0, 0);
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  for (uint32_t i = 1; i < N; ++i) {
    request_init(&requests[i], i, (int32_t)(7 * i));
    handles[i] = submit_ok(&fx, &requests[i], 0);
  }
  test_gate_open(&gate);
  for (uint32_t i = 0; i < N; ++i) {
    expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  assert_true(atomic_load(&fx.eager_steps) >= 1);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

static void test_batcher_runs_on_a_lazily_captured_runtime(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 5 };
  fixture fx;
  fixture_open_lazy(&fx, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  request requests[N];
  cgr_handle *handles[N];
  for (uint32_t i = 0; i < N; ++i) {
    request_init(&requests[i], i, (int32_t)(100 + i));
    handles[i] = submit_ok(&fx, &requests[i], 0);
  }
  for (uint32_t i = 0; i < N; ++i) {
    expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  expect_no_problems(&fx);
  fixture_close(&fx);
}

/* A lazily captured runtime whose buckets are captured on the engine
 * thread while the step before is still unfinished: a bucket's capture
 * (its warm-up runs) must leave that step's outputs alone. */
static void test_batcher_lazy_capture_keeps_the_unfinished_step(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 6 };
  fixture fx;
  fixture_open_lazy(&fx, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  request requests[N];
  cgr_handle *handles[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)(300 + i));
  /* The plug runs alone (bucket 1); the five queued behind it need bucket
   * 8, captured by their replay before the plug's step is finished. */
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  for (uint32_t i = 1; i < N; ++i)
    handles[i] = submit_ok(&fx, &requests[i], 0);
  test_gate_open(&gate);
  for (uint32_t i = 0; i < N; ++i) {
    expect_answered(&fx, &requests[i], handles[i]);
    cgr_handle_release(handles[i]);
  }
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* ---- handles ------------------------------------------------------------- */

static void test_batcher_released_handle_is_abandoned_once(void **state) {
  (void)cgr_test_runtime(state);
  enum { N = 4 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  request requests[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)(10 + i));

  /* Released while queued; it still runs, and abandon gets its answer. */
  test_gate gate;
  cgr_handle *plug = hold_engine(&fx, &gate, &requests[0]);
  cgr_handle *h = submit_ok(&fx, &requests[1], 0);
  assert_int_equal(cgr_handle_poll(h), CGR_E_NOT_READY);
  void *result = &result;
  assert_int_equal(cgr_handle_result(h, &result), CGR_E_NOT_READY);
  assert_int_equal(cgr_handle_wait(h, 1000), CGR_E_NOT_READY);
  cgr_handle_release(h);
  test_gate_open(&gate);
  expect_answered(&fx, &requests[0], plug);
  cgr_handle_release(plug);
  const tally *t = &fx.tallies[1];
  for (int ms = 0; atomic_load(&t->abandoned) == 0; ++ms) {
    if (ms > 10000)
      fail_msg("the released request was never abandoned");
    sleep_ms(1);
  }
  assert_int_equal(atomic_load(&t->abandon_status), CGR_OK);
  assert_int_equal(requests[1].answer, requests[1].id + requests[1].pos);
  test_gate_fini(&gate);

  /* Released while queued, then cancelled by destroy: abandoned with
   * CGR_E_CANCELLED; a handle kept stays valid after destroy. */
  cgr_handle *plug2 = hold_engine(&fx, &gate, &requests[2]);
  h = submit_ok(&fx, &requests[3], 0);
  cgr_handle_release(h);
  opener o;
  opener_start(&o, &gate, 20);
  cgr_batcher_destroy(fx.batcher);
  fx.batcher = NULL;
  opener_join(&o);
  t = &fx.tallies[3];
  assert_int_equal(atomic_load(&t->abandoned), 1);
  assert_int_equal(atomic_load(&t->abandon_status), CGR_E_CANCELLED);
  expect_answered(&fx, &requests[2], plug2);
  cgr_handle_release(plug2);
  assert_int_equal(atomic_load(&fx.abandons), 2);
  assert_int_equal(atomic_load(&fx.tallies[1].abandoned), 1);
  assert_int_equal(atomic_load(&fx.tallies[0].abandoned), 0);
  assert_int_equal(atomic_load(&fx.tallies[2].abandoned), 0);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

/* ---- argument and state errors ------------------------------------------- */

static void expect_create_fails(fixture *fx, const cgr_batcher_config *config,
                                cgr_status want, const char *needle) {
  cgr_batcher *b = (cgr_batcher *)fx;
  assert_cgr_status(fx->rt, cgr_batcher_create(fx->rt, config, &b), want);
  assert_null(b);
  if (needle != NULL)
    assert_last_error_contains(fx->rt, needle);
}

static void test_batcher_rejects_bad_arguments(void **state) {
  (void)cgr_test_runtime(state);
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, 1);
  cgr_batcher_config good, config;
  fixture_config(&fx, &good);
  cgr_batcher *b = (cgr_batcher *)&fx;

  assert_int_equal(cgr_batcher_config_init(NULL), CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_batcher_create(NULL, &good, &b), CGR_E_INVALID_ARGUMENT);
  assert_null(b);
  assert_true(strlen(cgr_last_error(NULL)) > 0);
  expect_create_fails(&fx, NULL, CGR_E_INVALID_ARGUMENT, "config");
  assert_int_equal(cgr_batcher_create(fx.rt, &good, NULL),
                   CGR_E_INVALID_ARGUMENT);
  config = good;
  config.build = NULL;
  expect_create_fails(&fx, &config, CGR_E_INVALID_ARGUMENT, "build");
  config = good;
  config.finish = NULL;
  expect_create_fails(&fx, &config, CGR_E_INVALID_ARGUMENT, "finish");
  config = good;
  config.min_wait_us = config.max_wait_us + 1;
  expect_create_fails(&fx, &config, CGR_E_INVALID_ARGUMENT, "min_wait_us");
  config = good;
  config.queue_capacity = 0;
  expect_create_fails(&fx, &config, CGR_E_INVALID_ARGUMENT, "queue_capacity");
  config = good;
  config.max_batch = LARGEST + 1; /* the runtime allows no eager step */
  expect_create_fails(&fx, &config, CGR_E_INVALID_ARGUMENT, "max_batch");
  config = good;
  config.size = 0;
  expect_create_fails(&fx, &config, CGR_E_VERSION, NULL);
  config = good;
  config.version = 99;
  expect_create_fails(&fx, &config, CGR_E_VERSION, NULL);
  /* Nothing failed for good: the runtime still takes a batcher. */
  fixture_start(&fx, &good);

  request r;
  request_init(&r, 0, 1);
  cgr_handle *h = (cgr_handle *)&h;
  assert_int_equal(cgr_batcher_submit(fx.batcher, &r, 0, NULL),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_batcher_submit(NULL, &r, 0, &h), CGR_E_INVALID_ARGUMENT);
  assert_null(h);
  void *result = &result;
  assert_int_equal(cgr_handle_wait(NULL, 0), CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_handle_poll(NULL), CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_handle_result(NULL, &result), CGR_E_INVALID_ARGUMENT);
  assert_null(result);
  cgr_handle_release(NULL);
  cgr_batcher_stats s;
  assert_int_equal(cgr_batcher_stats_get(NULL, &s), CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_batcher_stats_get(fx.batcher, NULL),
                   CGR_E_INVALID_ARGUMENT);
  char message[16];
  assert_int_equal(cgr_batcher_last_failure(NULL, message, sizeof message),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_batcher_last_failure(fx.batcher, NULL, 16),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_batcher_stop(NULL, CGR_BATCHER_DRAIN),
                   CGR_E_INVALID_ARGUMENT);
  assert_int_equal(cgr_batcher_stop(fx.batcher, (cgr_batcher_stop_mode)7),
                   CGR_E_INVALID_ARGUMENT);
  cgr_batcher_destroy(NULL);

  /* Still running after all that. */
  h = submit_ok(&fx, &r, 0);
  expect_answered(&fx, &r, h);
  cgr_handle_release(h);
  expect_no_problems(&fx);
  fixture_close(&fx);
}

static void test_batcher_needs_a_captured_runtime(void **state) {
  (void)cgr_test_runtime(state);
  fixture fx;
  fixture_init(&fx, 1);
  fx.rt = model_runtime(buckets, BUCKETS, 0, &fx.m);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  expect_create_fails(&fx, &config, CGR_E_INVALID_STATE, NULL);
  fixture_close(&fx);
}

/* One engine thread per runtime: a second batcher is refused while the
 * first lives, and allowed once it is destroyed. */
static void test_batcher_one_runtime_has_one_batcher(void **state) {
  (void)cgr_test_runtime(state);
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, 1);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  cgr_batcher *second = NULL;
  assert_cgr_status(fx.rt, cgr_batcher_create(fx.rt, &config, &second),
                    CGR_E_INVALID_STATE);
  assert_null(second);
  assert_non_null(strstr(cgr_last_error(fx.rt), "another batcher"));
  cgr_batcher_destroy(fx.batcher);
  fx.batcher = NULL;
  fixture_start(&fx, &config);
  fixture_close(&fx);
}

static void
test_batcher_allows_max_batch_over_buckets_with_eager(void **state) {
  (void)cgr_test_runtime(state);
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 1, 1);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  config.max_batch = LARGEST + 1;
  fixture_start(&fx, &config);
  fixture_close(&fx);
}

/* ---- injected faults (host backend) -------------------------------------- */

static void
test_batcher_create_fails_cleanly_at_every_injected_fault(void **state) {
  (void)cgr_test_runtime(state);
  cgr_test_require_host();
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, 1);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  int sites = 0, thread_site = 0;
  for (int call = 0; call < CGR__CALL_COUNT; ++call) {
    for (uint64_t nth = 1;; ++nth) {
      cgr_batcher *b = (cgr_batcher *)&fx;
      cgr__fault_arm((cgr__call)call, nth);
      cgr_status status = cgr_batcher_create(fx.rt, &config, &b);
      int fired = cgr__fault_fired();
      cgr__fault_disarm();
      if (!fired) {
        assert_cgr_ok(fx.rt, status);
        cgr_batcher_destroy(b);
        break;
      }
      sites++;
      thread_site |= call == CGR__CALL_THREAD_CREATE;
      if (status == CGR_OK)
        fail_msg("create succeeded although %s call #%llu failed",
                 cgr__call_name((cgr__call)call), (unsigned long long)nth);
      assert_null(b);
      assert_int_equal(status, cgr__fault_status((cgr__call)call));
      assert_true(strlen(cgr_last_error(fx.rt)) > 0);
      assert_true(nth < 100);
    }
  }
  /* The batcher's memory and its engine thread at least. */
  assert_true(sites >= 2);
  assert_true(thread_site);
  /* And after all that, a batcher that works. */
  fixture_start(&fx, &config);
  request r;
  request_init(&r, 0, 3);
  cgr_handle *h = submit_ok(&fx, &r, 0);
  expect_answered(&fx, &r, h);
  cgr_handle_release(h);
  fixture_close(&fx);
}

static void test_batcher_submit_out_of_memory_leaves_it_working(void **state) {
  (void)cgr_test_runtime(state);
  cgr_test_require_host();
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, 2);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  request requests[2];
  request_init(&requests[0], 0, 5);
  request_init(&requests[1], 1, 6);
  /* The engine is idle: the submit is the only allocation. */
  cgr_handle *h = (cgr_handle *)&h;
  cgr__fault_arm(CGR__CALL_HOST_ALLOC, 1);
  cgr_status status = cgr_batcher_submit(fx.batcher, &requests[0], 0, &h);
  int fired = cgr__fault_fired();
  cgr__fault_disarm();
  assert_true(fired);
  assert_int_equal(status, CGR_E_OUT_OF_MEMORY);
  assert_null(h);
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  assert_int_equal(s.submitted, 0);
  for (int i = 0; i < 2; ++i) {
    h = submit_ok(&fx, &requests[i], 0);
    expect_answered(&fx, &requests[i], h);
    cgr_handle_release(h);
  }
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.submitted, 2);
  assert_int_equal(s.completed, 2);
  expect_no_problems(&fx);
  fixture_close(&fx);
}

static void test_batcher_failed_replay_fails_its_batch_only(void **state) {
  (void)cgr_test_runtime(state);
  cgr_test_require_host();
  enum { N = 7 };
  fixture fx;
  fixture_open(&fx, buckets, BUCKETS, 0, N);
  cgr_batcher_config config;
  fixture_config(&fx, &config);
  fixture_start(&fx, &config);
  request requests[N];
  cgr_handle *handles[N];
  for (uint32_t i = 0; i < N; ++i)
    request_init(&requests[i], i, (int32_t)(20 + i));
  test_gate gate;
  handles[0] = hold_engine(&fx, &gate, &requests[0]);
  for (uint32_t i = 1; i < 5; ++i)
    handles[i] = submit_ok(&fx, &requests[i], 0);
  /* The plug's graph launch is the first, the queued batch's the second. */
  cgr__fault_arm(CGR__CALL_GRAPH_LAUNCH, 2);
  test_gate_open(&gate);
  expect_answered(&fx, &requests[0], handles[0]);
  for (uint32_t i = 1; i < 5; ++i) {
    cgr_status status = end_of(handles[i]);
    if (status != CGR_E_CUDA)
      fail_msg("request %u of the batch whose launch failed ended %s", i,
               cgr_status_name(status));
  }
  int fired = cgr__fault_fired();
  cgr__fault_disarm();
  assert_true(fired);
  char message[512];
  assert_cgr_ok(fx.rt,
                cgr_batcher_last_failure(fx.batcher, message, sizeof message));
  if (strstr(message, "injected fault") == NULL)
    fail_msg("cgr_batcher_last_failure says \"%s\"", message);
  /* The runtime and the batcher go on. */
  for (uint32_t i = 5; i < N; ++i)
    handles[i] = submit_ok(&fx, &requests[i], 0);
  for (uint32_t i = 5; i < N; ++i)
    expect_answered(&fx, &requests[i], handles[i]);
  cgr_batcher_stats s;
  stats_of(&fx, &s);
  expect_consistent(&s);
  assert_int_equal(s.failed, 4);
  assert_int_equal(s.completed, 3);
  for (uint32_t i = 0; i < N; ++i)
    cgr_handle_release(handles[i]);
  expect_no_problems(&fx);
  fixture_close(&fx);
  test_gate_fini(&gate);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_batcher_answers_every_request_exactly_once),
    RUNTIME_TEST(test_batcher_full_queue_answers_busy_at_once),
    RUNTIME_TEST(test_batcher_expired_requests_end_timeout_unbuilt),
    RUNTIME_TEST(test_batcher_invalid_requests_fail_alone),
    RUNTIME_TEST(test_batcher_failed_finish_fails_its_batch_only),
    RUNTIME_TEST(test_batcher_failed_build_fails_its_batch_only),
    RUNTIME_TEST(test_batcher_last_failure_is_empty_before_any),
    RUNTIME_TEST(test_batcher_stop_cancel_under_load_ends_each_once),
    RUNTIME_TEST(test_batcher_stop_cancel_cancels_the_queue),
    RUNTIME_TEST(test_batcher_stop_drain_runs_the_queue),
    RUNTIME_TEST(test_batcher_cancel_after_drain_cancels_what_is_queued),
    RUNTIME_TEST(test_batcher_stop_from_a_callback_is_refused),
    RUNTIME_TEST(test_batcher_never_mixes_keys_in_a_batch),
    RUNTIME_TEST(test_batcher_runs_key_on_the_submitter_the_rest_on_the_engine),
    RUNTIME_TEST(test_batcher_lone_request_waits_the_window),
    RUNTIME_TEST(test_batcher_full_batch_second_request_or_stop_closes_window),
    RUNTIME_TEST(test_batcher_runs_batches_over_the_largest_bucket_eagerly),
    RUNTIME_TEST(test_batcher_runs_on_a_lazily_captured_runtime),
    RUNTIME_TEST(test_batcher_lazy_capture_keeps_the_unfinished_step),
    RUNTIME_TEST(test_batcher_released_handle_is_abandoned_once),
    RUNTIME_TEST(test_batcher_rejects_bad_arguments),
    RUNTIME_TEST(test_batcher_needs_a_captured_runtime),
    RUNTIME_TEST(test_batcher_one_runtime_has_one_batcher),
    RUNTIME_TEST(test_batcher_allows_max_batch_over_buckets_with_eager),
    RUNTIME_TEST(test_batcher_create_fails_cleanly_at_every_injected_fault),
    RUNTIME_TEST(test_batcher_submit_out_of_memory_leaves_it_working),
    RUNTIME_TEST(test_batcher_failed_replay_fails_its_batch_only),
};

CGR_TEST_MAIN(tests)
