/* What the batcher tests (tests/batcher*.c) share: requests of the test
 * model whose answers show whose they are, a tally of what the callbacks
 * did with each, the callbacks, and a fixture that owns a captured model
 * runtime, the test's readback stream and the batcher.
 *
 * Callbacks run on the engine thread and cmocka is not thread-safe: they
 * never assert, they record what they saw (counters, a first problem) and
 * the test thread asserts on it once the requests have ended. Every other
 * function here asserts and runs on the test thread unless it says so. */
#ifndef CGR_TESTS_BATCHER_FIXTURE_H
#define CGR_TESTS_BATCHER_FIXTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "model.h"

/* The buckets most tests capture: 1 to LARGEST, powers of two. */
extern const uint32_t buckets[];
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

/* "key", "validate", ...: for messages. */
extern const char *const callback_names[CALLBACK_COUNT];

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

/* Counts a problem and keeps the first one's text: for callbacks and
 * producer threads, which must not assert. Any thread. */
void note_problem(fixture *fx, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Fails the test with the first problem noted, if any. */
void expect_no_problems(fixture *fx);

/* ---- the callbacks a test adds to fixture_config's ----------------------- */

/* key: the request's id modulo 3, counted in key_calls. */
uint64_t key_of(void *user, const void *request_ptr);

/* validate: a negative id is CGR_E_INVALID_ARGUMENT, counted in
 * validations. */
cgr_status validate_id(void *user, const void *request_ptr);

/* ---- the fixture --------------------------------------------------------- */

/* Zeroes the fixture and gives it `tallies` tallies; no runtime yet. */
void fixture_init(fixture *fx, uint32_t tallies);

/* A captured model runtime on buckets `list` (n of them) and the test's
 * readback stream. */
void fixture_open(fixture *fx, const uint32_t *list, size_t n, int allow_eager,
                  uint32_t tallies);

/* The same with lazy capture: buckets are captured by the engine's
 * replays. */
void fixture_open_lazy(fixture *fx, uint32_t tallies);

/* A batcher config with the fixture's build, finish and abandon. */
void fixture_config(fixture *fx, cgr_batcher_config *config);

/* Creates the fixture's batcher from `config`. */
void fixture_start(fixture *fx, const cgr_batcher_config *config);

/* Destroys the batcher (first: its engine thread uses the stream and the
 * runtime), the stream and the runtime. */
void fixture_close(fixture *fx);

/* A request with tally `index` whose fields all derive from `id`. */
void request_init(request *r, uint32_t index, int32_t id);

/* Submits `r`, failing the test unless it is accepted. */
cgr_handle *submit_ok(fixture *fx, request *r, uint64_t deadline_us);

/* Waits until the request has ended (failing the test when it never does)
 * and returns how it ended. */
cgr_status end_of(cgr_handle *h);

/* The request ended CGR_OK with its own answer, built and finished once. */
void expect_answered(fixture *fx, const request *r, cgr_handle *h);

/* The request ended with `want` and no step ever saw it. */
void expect_ended_unseen(fixture *fx, const request *r, cgr_handle *h,
                         cgr_status want);

/* The batcher's counters now. */
void stats_of(fixture *fx, cgr_batcher_stats *stats);

/* What every snapshot must satisfy. */
void expect_consistent(const cgr_batcher_stats *s);

void sleep_ms(int ms);

/* Holds the engine thread inside build: sets the gate, submits `plug`,
 * and waits until its build waits at the gate. Everything submitted until
 * the gate opens stays queued. */
cgr_handle *hold_engine(fixture *fx, test_gate *gate, request *plug);

/* Opens a gate after a delay, from its own thread: for a test thread that
 * blocks in stop or destroy meanwhile. */
typedef struct opener {
  test_gate *gate;
  int delay_ms;
  pthread_t thread;
} opener;

void opener_start(opener *o, test_gate *gate, int delay_ms);
void opener_join(opener *o);

#endif /* CGR_TESTS_BATCHER_FIXTURE_H */
