/* The batcher tests' shared fixture (batcher_fixture.h): the tallies,
 * the callbacks, and the fixture's runtime, stream and batcher. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batcher_fixture.h"

const uint32_t buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

const char *const callback_names[CALLBACK_COUNT] = {"key", "validate", "build",
                                                    "finish", "abandon"};

/* ---- problems and tallies ------------------------------------------------ */

void note_problem(fixture *fx, const char *format, ...) {
  pthread_mutex_lock(&fx->lock);
  if (atomic_fetch_add(&fx->problems, 1) == 0) {
    va_list args;
    va_start(args, format);
    vsnprintf(fx->problem, sizeof fx->problem, format, args);
    va_end(args);
  }
  pthread_mutex_unlock(&fx->lock);
}

void expect_no_problems(fixture *fx) {
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

/* ---- the callbacks ------------------------------------------------------- */

static uint64_t key_value(const request *r) {
  return (uint64_t)(uint32_t)r->id % 3u;
}

uint64_t key_of(void *user, const void *request_ptr) {
  fixture *fx = user;
  record_thread(fx, CALLBACK_KEY);
  atomic_fetch_add(&fx->key_calls, 1);
  return key_value(request_ptr);
}

cgr_status validate_id(void *user, const void *request_ptr) {
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

/* ---- the fixture --------------------------------------------------------- */

void fixture_init(fixture *fx, uint32_t tallies) {
  memset(fx, 0, sizeof *fx);
  pthread_mutex_init(&fx->lock, NULL);
  fx->test_thread = pthread_self();
  fx->tallies = calloc(tallies, sizeof *fx->tallies);
  assert_non_null(fx->tallies);
  fx->tally_count = tallies;
}

/* A captured model runtime and the test's readback stream. */
void fixture_open(fixture *fx, const uint32_t *list, size_t n, int allow_eager,
                  uint32_t tallies) {
  fixture_init(fx, tallies);
  fx->rt = model_captured_runtime(list, n, allow_eager, &fx->m);
  assert_cgr_ok(fx->rt,
                cgr__be_stream_create(TEST_BE(fx->rt), CGR_PRIORITY_NORMAL,
                                      "readback", &fx->readback));
}

/* The same with lazy capture: buckets are captured by the engine's
 * replays. */
void fixture_open_lazy(fixture *fx, uint32_t tallies) {
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

void fixture_config(fixture *fx, cgr_batcher_config *config) {
  assert_cgr_ok(fx->rt, cgr_batcher_config_init(config));
  config->build = build_rows;
  config->finish = finish_rows;
  config->abandon = abandon_request;
  config->user = fx;
}

void fixture_start(fixture *fx, const cgr_batcher_config *config) {
  assert_cgr_ok(fx->rt, cgr_batcher_create(fx->rt, config, &fx->batcher));
  assert_non_null(fx->batcher);
}

/* The batcher first: its engine thread uses the stream and the runtime. */
void fixture_close(fixture *fx) {
  cgr_batcher_destroy(fx->batcher);
  fx->batcher = NULL;
  if (fx->readback != NULL)
    cgr__be_stream_destroy(TEST_BE(fx->rt), fx->readback);
  cgr_runtime_destroy(fx->rt);
  free(fx->tallies);
  pthread_mutex_destroy(&fx->lock);
}

void request_init(request *r, uint32_t index, int32_t id) {
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

cgr_handle *submit_ok(fixture *fx, request *r, uint64_t deadline_us) {
  cgr_handle *h = NULL;
  assert_cgr_ok(fx->rt, cgr_batcher_submit(fx->batcher, r, deadline_us, &h));
  assert_non_null(h);
  return h;
}

/* Waits until the request has ended (failing the test when it never does)
 * and returns how it ended. */
cgr_status end_of(cgr_handle *h) {
  cgr_status waited = cgr_handle_wait(h, END_WAIT_US);
  if (waited != CGR_OK)
    fail_msg("a request did not end within %llu s: cgr_handle_wait says %s",
             (unsigned long long)(END_WAIT_US / 1000000),
             cgr_status_name(waited));
  return cgr_handle_result(h, NULL);
}

/* The request ended CGR_OK with its own answer, built and finished once. */
void expect_answered(fixture *fx, const request *r, cgr_handle *h) {
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
void expect_ended_unseen(fixture *fx, const request *r, cgr_handle *h,
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

void stats_of(fixture *fx, cgr_batcher_stats *stats) {
  assert_cgr_ok(fx->rt, cgr_batcher_stats_get(fx->batcher, stats));
}

/* What every snapshot must satisfy. */
void expect_consistent(const cgr_batcher_stats *s) {
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

void sleep_ms(int ms) { usleep((useconds_t)ms * 1000); }

/* Holds the engine thread inside build: sets the gate, submits `plug`,
 * and waits until its build waits at the gate. Everything submitted until
 * the gate opens stays queued. */
cgr_handle *hold_engine(fixture *fx, test_gate *gate, request *plug) {
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

/* The opener's thread. */
static void *open_later(void *arg) {
  opener *o = arg;
  sleep_ms(o->delay_ms);
  test_gate_open(o->gate);
  return NULL;
}

void opener_start(opener *o, test_gate *gate, int delay_ms) {
  o->gate = gate;
  o->delay_ms = delay_ms;
  assert_int_equal(pthread_create(&o->thread, NULL, open_later, o), 0);
}

void opener_join(opener *o) { pthread_join(o->thread, NULL); }
