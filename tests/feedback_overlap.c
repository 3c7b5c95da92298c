/*
 * Double buffering with feedback (issue 17, item 7): while step n's graph
 * runs, step n + 1's load into the other set runs too, except the part
 * that reads or writes what step n's graph writes (fed rows, device
 * sources), which waits for it. Proved on the host backend's streams: the
 * model's graph holds at its first node while a test gate is closed, and
 * every fused copy the side stream runs writes, when it has run, which
 * slots it wrote into an order log; the test adds the moment it opens the
 * gate. Host-only: the forced interleaving needs host streams.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "kernels/fused_copy.h"
#include "model.h"

static const uint32_t buckets[] = {4, 8};
enum { BUCKETS = 2, LARGEST = 8, LOG_SIZE = 64, GATE_OPENED = -1 };

/* ---- the order log --------------------------------------------------------
 */

/* The input slots a copy may write, in bit order. */
enum { LOG_IDS, LOG_POS, LOG_PAGES, LOG_CU_K, LOG_SLOTS };
#define BIT(slot) (1 << (slot))

/* What the side stream ran, in order: per fused copy the slots it wrote
 * (a bit mask), GATE_OPENED where the test opened the gate. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int entries[LOG_SIZE];
  int count;
  /* Each input slot's buffer in each set: [begin, end). */
  uintptr_t begin[LOG_SLOTS][2], end[LOG_SLOTS][2];
} order = {.lock = PTHREAD_MUTEX_INITIALIZER,
           .changed = PTHREAD_COND_INITIALIZER};

static void log_entry(int entry) {
  pthread_mutex_lock(&order.lock);
  if (order.count < LOG_SIZE)
    order.entries[order.count++] = entry;
  pthread_cond_broadcast(&order.changed);
  pthread_mutex_unlock(&order.lock);
}

static void log_clear(void) {
  pthread_mutex_lock(&order.lock);
  order.count = 0;
  pthread_mutex_unlock(&order.lock);
}

/* A copy of the log so far: its entry count. */
static int log_snapshot(int *entries) {
  pthread_mutex_lock(&order.lock);
  int count = order.count;
  memcpy(entries, order.entries, sizeof order.entries);
  pthread_mutex_unlock(&order.lock);
  return count;
}

/* Waits up to `ms` for the log to hold `count` entries; the count then. */
static int log_wait(int count, int ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += ms / 1000;
  deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&order.lock);
  while (order.count < count &&
         pthread_cond_timedwait(&order.changed, &order.lock, &deadline) == 0)
    ;
  int now = order.count;
  pthread_mutex_unlock(&order.lock);
  return now;
}

/* "pos+pages", "gate", ...: one entry, for messages. */
static void describe(int entry, char *out, size_t size) {
  static const char *const names[LOG_SLOTS] = {"ids", "pos", "pages", "cu_k"};
  if (entry == GATE_OPENED) {
    snprintf(out, size, "gate");
    return;
  }
  size_t used = 0;
  out[0] = '\0';
  for (int s = 0; s < LOG_SLOTS; ++s)
    if (entry & BIT(s))
      used += (size_t)snprintf(out + used, size - used, "%s%s", used ? "+" : "",
                               names[s]);
  if (used == 0)
    snprintf(out, size, "nothing");
}

/* Fails unless the log holds exactly `want` (count entries). */
static void expect_log(const int *got, int got_count, const int *want,
                       int count, const char *when) {
  int same = got_count == count;
  for (int i = 0; same && i < count; ++i)
    same = got[i] == want[i];
  if (same)
    return;
  char text[2][512] = {"", ""};
  for (int list = 0; list < 2; ++list) {
    const int *entries = list ? want : got;
    int n = list ? count : got_count;
    size_t used = 0;
    for (int i = 0; i < n && used < sizeof text[list]; ++i) {
      char one[64];
      describe(entries[i], one, sizeof one);
      used += (size_t)snprintf(text[list] + used, sizeof text[list] - used,
                               "%s[%s]", i ? " " : "", one);
    }
  }
  fail_msg("%s: the side stream ran %s, expected %s", when,
           got_count ? text[0] : "nothing", text[1]);
}

/* ---- a fused copy that writes the log -------------------------------------
 */

/* The slots a fused copy's operations write. */
static int written_slots(const void *args) {
  const cgr__fused_copy_header *header = args;
  const cgr__copy_desc *ops =
      (const cgr__copy_desc *)((const unsigned char *)args +
                               offsetof(cgr__fused_copy_args_small, ops));
  int mask = 0;
  for (uint32_t i = 0; i < header->op_count; ++i)
    for (int s = 0; s < LOG_SLOTS; ++s)
      for (int k = 0; k < 2; ++k)
        if (ops[i].dst >= order.begin[s][k] && ops[i].dst < order.end[s][k])
          mask |= BIT(s);
  return mask;
}

static void logged_fused_copy(const void *args) {
  cgr__host_fused_copy(args);
  log_entry(written_slots(args));
}

static const cgr__kernel *const fused_copies[3] = {
    &cgr__kernel_fused_copy_small, &cgr__kernel_fused_copy_medium,
    &cgr__kernel_fused_copy_large};
static cgr__kernel logged_copies[3];
static const cgr__backend_ops *real_ops;
static cgr__backend_ops logging_ops;

/* Side-stream fused copies run logged_fused_copy instead. */
static cgr_status logging_kernel_launch(void *ctx, cgr__stream *stream,
                                        const cgr__kernel *kernel,
                                        const void *args) {
  for (int i = 0; i < 3; ++i)
    if (kernel == fused_copies[i])
      kernel = &logged_copies[i];
  return real_ops->kernel_launch(ctx, stream, kernel, args);
}

/* From now on the runtime's fused copies write the log (it must be idle:
 * nothing is read from the table while it changes). */
static void start_logging(cgr_runtime *rt, const model *m) {
  const cgr_slot slots[LOG_SLOTS] = {m->ids, m->pos, m->pages, m->cu_k};
  const uint64_t row_bytes[LOG_SLOTS] = {4, 4, 4 * MODEL_PAGES, 4};
  for (int s = 0; s < LOG_SLOTS; ++s)
    for (int k = 0; k < 2; ++k) {
      void *address = NULL;
      assert_cgr_ok(rt, cgr_slot_address(rt, slots[s], k, 0, &address));
      order.begin[s][k] = (uintptr_t)address;
      order.end[s][k] = (uintptr_t)address + row_bytes[s] * (LARGEST + 1);
    }
  for (int i = 0; i < 3; ++i) {
    logged_copies[i] = *fused_copies[i];
    logged_copies[i].host_run = logged_fused_copy;
  }
  assert_cgr_ok(rt, cgr_synchronize(rt));
  real_ops = TEST_BE(rt)->ops;
  logging_ops = *real_ops;
  logging_ops.kernel_launch = logging_kernel_launch;
  TEST_BE(rt)->ops = &logging_ops;
  log_clear();
}

static void stop_logging(cgr_runtime *rt) {
  assert_cgr_ok(rt, cgr_synchronize(rt));
  TEST_BE(rt)->ops = real_ops;
}

/* ---- steps ----------------------------------------------------------------
 */

static cgr_runtime *feeding_runtime(model *m) {
  cgr_runtime *rt = model_runtime(buckets, BUCKETS, 0, m);
  assert_cgr_ok(rt, cgr_slot_feed(rt, m->out, m->ids));
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, CGR_REPLAY_DOUBLE_BUFFERED));
  assert_cgr_ok(rt, cgr_capture(rt, model_step, m));
  return rt;
}

/* A step: what it reads, and its ticket. */
typedef struct step {
  model_inputs in; /* ids and pos included, however they were given */
  cgr_ticket ticket;
} step;

/* Replays a step of `s->in.rows` rows. ids: by feedback (prev_rows, fresh
 * rows) when prev_rows is not NULL, else from the host; pos from
 * `device_pos` (device memory) when not NULL. The kernel launches
 * cgr_replay made go to *launches when not NULL. */

static void run_step(cgr_runtime *rt, const model *m, step *s,
                     const int32_t *prev_rows, const int32_t *fresh,
                     uint32_t fresh_count, const void *device_pos,
                     uint64_t *launches) {
  uint32_t rows = s->in.rows;
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, rows, &batch));
  if (prev_rows != NULL)
    assert_cgr_ok(rt, cgr_batch_feedback(batch, m->ids, prev_rows, fresh,
                                         fresh_count * sizeof(int32_t)));
  else
    assert_cgr_ok(rt, cgr_batch_input(batch, m->ids, CGR_SOURCE_HOST, s->in.ids,
                                      rows * 4));
  if (device_pos != NULL)
    assert_cgr_ok(rt, cgr_batch_input(batch, m->pos, CGR_SOURCE_DEVICE,
                                      device_pos, rows * 4));
  else
    assert_cgr_ok(rt, cgr_batch_input(batch, m->pos, CGR_SOURCE_HOST, s->in.pos,
                                      rows * 4));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->pages, CGR_SOURCE_HOST,
                                    s->in.pages, rows * 4 * MODEL_PAGES));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->cu_k, CGR_SOURCE_HOST, s->in.cu_k,
                                    (rows + 1) * 4));
  cgr_counters before, after;
  assert_cgr_ok(rt, cgr_counters_get(rt, &before));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &s->ticket));
  assert_cgr_ok(rt, cgr_counters_get(rt, &after));
  if (launches != NULL)
    *launches = after.kernel_launches - before.kernel_launches;
}

static void check_step(cgr_runtime *rt, const model *m, const step *s) {
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &s->ticket));
  void *out = NULL, *out_pages = NULL;
  assert_cgr_ok(rt, cgr_output(rt, &s->ticket, m->out, &out));
  assert_cgr_ok(rt, cgr_output(rt, &s->ticket, m->out_pages, &out_pages));
  model_check_outputs(rt, out, out_pages, &s->in, s->ticket.padded_batch,
                      s->ticket.batch_size, NULL);
}

/* What row j of the step after `s` reads as ids when it continues row
 * prev_rows[j] (the previous step's out), or a fresh row. */
static void continue_ids(const step *s, const int32_t *prev_rows,
                         const int32_t *fresh, step *next) {
  uint32_t used = 0;
  for (uint32_t j = 0; j < next->in.rows; ++j)
    next->in.ids[j] = prev_rows[j] < 0
                          ? fresh[used++]
                          : model_expected_out(&s->in, s->ticket.padded_batch,
                                               (uint32_t)prev_rows[j]);
}

/* Runs step `held` with its graph held at its first node, waits until the
 * side stream has loaded it, and clears the log. */
static void run_held(cgr_runtime *rt, model *m, test_gate *gate, step *held,
                     const int32_t *prev_rows) {
  __atomic_store_n(&m->hold, gate, __ATOMIC_RELEASE);
  run_step(rt, m, held, prev_rows, NULL, 0, NULL, NULL);
  /* Its load waits for nothing held (the graph before it has ended). */
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_SIDE(rt)));
  log_clear();
}

/*
 * After the next step was replayed behind the held one: lets the part of
 * its load that need not wait run (up to 2 s; the gate holds 10 s), then
 * opens the gate and waits for everything. *held_count and held get the
 * log as it was while the graph was held.
 */
static void release_after_free_part(cgr_runtime *rt, test_gate *gate, int *held,
                                    int *held_count) {
  (void)log_wait(1, 2000);
  /* Room for a wrongly unordered part to run too. */
  usleep(20000);
  *held_count = log_snapshot(held);
  log_entry(GATE_OPENED);
  test_gate_open(gate);
  assert_cgr_ok(rt, cgr_synchronize(rt));
}

/* ---- the tests ------------------------------------------------------------
 */

/*
 * Step 1's graph is held. Step 2 continues it by feedback with rows that
 * moved and a new one: its pos, pages and cu_k are loaded into set 0 while
 * step 1's graph is held, and only its ids (a gather from step 1's out and
 * a copy of the new row, into rows step 1's graph also writes) wait for
 * it: two fused copies. Then step 3 is held and step 4 keeps every row in
 * place: no fed row to load, one fused copy, and all of it runs while
 * step 3's graph is held.
 */
static void test_only_the_fed_part_of_the_load_waits(void **state) {
  cgr_test_require_host();
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = feeding_runtime(&m);
  test_gate gate;
  test_gate_init(&gate);
  step s[5];
  static const int32_t in_place[4] = {0, 1, 2, 3};
  static const int32_t moved[4] = {1, 0, -1, 2};
  static const int32_t fresh[1] = {4242};
  for (int n = 0; n < 5; ++n)
    model_make_inputs(&s[n].in, 4, 4, 100 + (unsigned)n);
  run_step(rt, &m, &s[0], NULL, NULL, 0, NULL, NULL);
  start_logging(rt, &m);

  continue_ids(&s[0], in_place, NULL, &s[1]);
  run_held(rt, &m, &gate, &s[1], in_place);
  continue_ids(&s[1], moved, fresh, &s[2]);
  uint64_t launches = 0;
  run_step(rt, &m, &s[2], moved, fresh, 1, NULL, &launches);
  int held[LOG_SIZE], held_count, all[LOG_SIZE];
  release_after_free_part(rt, &gate, held, &held_count);
  int all_count = log_snapshot(all);
  const int free_part = BIT(LOG_POS) | BIT(LOG_PAGES) | BIT(LOG_CU_K);
  const int while_held[] = {free_part};
  const int in_order[] = {free_part, GATE_OPENED, BIT(LOG_IDS)};
  expect_log(held, held_count, while_held, 1,
             "step 2, while step 1's graph was held");
  expect_log(all, all_count, in_order, 3, "step 2, in all");
  assert_int_equal(launches, 2);
  check_step(rt, &m, &s[1]);
  check_step(rt, &m, &s[2]);

  test_gate_fini(&gate);
  test_gate_init(&gate);
  continue_ids(&s[2], in_place, NULL, &s[3]);
  run_held(rt, &m, &gate, &s[3], in_place);
  continue_ids(&s[3], in_place, NULL, &s[4]);
  run_step(rt, &m, &s[4], in_place, NULL, 0, NULL, &launches);
  release_after_free_part(rt, &gate, held, &held_count);
  all_count = log_snapshot(all);
  const int whole[] = {free_part};
  const int then_gate[] = {free_part, GATE_OPENED};
  expect_log(held, held_count, whole, 1,
             "step 4 (rows in place), while step 3's graph was held");
  expect_log(all, all_count, then_gate, 2, "step 4, in all");
  assert_int_equal(launches, 1);
  check_step(rt, &m, &s[3]);
  check_step(rt, &m, &s[4]);

  stop_logging(rt);
  test_gate_fini(&gate);
  cgr_runtime_destroy(rt);
}

/*
 * A CGR_SOURCE_DEVICE input may be the previous step's output (cgr.h): it
 * is read after that step's graph, so with feedback it goes in the part
 * that waits. Step 2's pos is step 1's out, read while step 1's graph is
 * held: only pages and cu_k are loaded then.
 */
static void test_a_device_source_waits_for_the_previous_graph(void **state) {
  cgr_test_require_host();
  (void)cgr_test_runtime(state);
  model m;
  cgr_runtime *rt = feeding_runtime(&m);
  test_gate gate;
  test_gate_init(&gate);
  step s[3];
  static const int32_t in_place[4] = {0, 1, 2, 3};
  for (int n = 0; n < 3; ++n)
    model_make_inputs(&s[n].in, 4, 4, 200 + (unsigned)n);
  run_step(rt, &m, &s[0], NULL, NULL, 0, NULL, NULL);
  start_logging(rt, &m);

  continue_ids(&s[0], in_place, NULL, &s[1]);
  run_held(rt, &m, &gate, &s[1], in_place);
  void *previous_out = NULL;
  assert_cgr_ok(rt, cgr_output(rt, &s[1].ticket, m.out, &previous_out));
  continue_ids(&s[1], in_place, NULL, &s[2]);
  for (uint32_t j = 0; j < 4; ++j)
    s[2].in.pos[j] = model_expected_out(&s[1].in, 4, j);
  uint64_t launches = 0;
  run_step(rt, &m, &s[2], in_place, NULL, 0, previous_out, &launches);
  int held[LOG_SIZE], held_count, all[LOG_SIZE];
  release_after_free_part(rt, &gate, held, &held_count);
  int all_count = log_snapshot(all);
  const int free_part = BIT(LOG_PAGES) | BIT(LOG_CU_K);
  const int while_held[] = {free_part};
  const int in_order[] = {free_part, GATE_OPENED, BIT(LOG_POS)};
  expect_log(held, held_count, while_held, 1,
             "step 2, while step 1's graph was held");
  expect_log(all, all_count, in_order, 3, "step 2, in all");
  assert_int_equal(launches, 2);
  check_step(rt, &m, &s[1]);
  check_step(rt, &m, &s[2]);

  stop_logging(rt);
  test_gate_fini(&gate);
  cgr_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
    HOST_RUNTIME_TEST(test_only_the_fed_part_of_the_load_waits),
    HOST_RUNTIME_TEST(test_a_device_source_waits_for_the_previous_graph),
};

CGR_TEST_MAIN(tests)
