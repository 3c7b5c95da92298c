/* The lanes tests' shared fixture (lanes_fixture.h). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lanes_fixture.h"

uint32_t below(uint64_t *state, uint32_t bound) {
  return (uint32_t)test_random_below(state, bound);
}

void split(const cgr_split_config *config, const cgr_split_item *items,
           uint32_t count, uint32_t *lane_of) {
  for (uint32_t i = 0; i < count; ++i)
    lane_of[i] = NO_LANE;
  assert_cgr_ok(NULL, cgr_split(config, items, count, lane_of));
  for (uint32_t i = 0; i < count; ++i)
    if (lane_of[i] >= config->lanes)
      fail_msg("lane_of[%u] = %u with %u lanes", i, lane_of[i], config->lanes);
}

/* ---- lanes of the test model --------------------------------------------- */

/* The lanes' buckets: 1 to LARGEST. */
static const uint32_t buckets[] = {1, 2, 4, 8, 16, 32};
enum { BUCKETS = 6 };

void rendezvous_arm(rendezvous *r, uint32_t expected, int timeout_ms) {
  atomic_store(&r->arrived, 0);
  atomic_store(&r->met, 0);
  atomic_store(&r->timed_out, 0);
  r->expected = expected;
  r->timeout_ms = timeout_ms;
  atomic_store(&r->armed, 1); /* publishes the fields above */
}

/* Runs on a stream's worker thread: records, never asserts. */
static void rendezvous_arrive(void *user) {
  rendezvous *r = user;
  if (!atomic_load(&r->armed))
    return;
  atomic_fetch_add(&r->arrived, 1);
  double deadline = test_now_ms() + r->timeout_ms;
  while (atomic_load(&r->arrived) < r->expected) {
    if (test_now_ms() > deadline) {
      atomic_fetch_add(&r->timed_out, 1);
      return;
    }
    struct timespec pause = {0, 50000};
    nanosleep(&pause, NULL);
  }
  atomic_fetch_add(&r->met, 1);
}

static cgr_status lane_setup(void *user, cgr_runtime *rt, uint32_t lane,
                             void **lane_user) {
  lanes_fixture *f = user;
  f->setups[lane]++;
  if (lane == f->fail_setup_lane)
    return CGR_E_DEVICE_OUT_OF_MEMORY;
  lane_state *s = calloc(1, sizeof *s);
  if (s == NULL)
    return CGR_E_OUT_OF_MEMORY;
  model_declare(rt, &s->m);
  s->lane = lane;
  s->meet = f->meet;
  if (lane == f->fail_capture_lane) {
    s->m.fail_bucket = 4;
    s->m.fail_set = 0;
  }
  *lane_user = s;
  return CGR_OK;
}

static void lane_teardown(void *user, uint32_t lane, void *lane_user) {
  lanes_fixture *f = user;
  lane_state *s = lane_user;
  f->teardowns[lane]++;
  f->wrong_user += s == NULL || s->lane != lane;
  free(s);
}

static cgr_status lane_step(cgr_step *step, void *user) {
  lane_state *s = user;
  CGR__CHECK(model_step(step, &s->m));
  if (s->meet != NULL)
    CGR__CHECK(cgr_step_host_func(step, rendezvous_arrive, s->meet));
  return CGR_OK;
}

void fixture_init(lanes_fixture *f, rendezvous *meet) {
  memset(f, 0, sizeof *f);
  f->fail_setup_lane = NO_LANE;
  f->fail_capture_lane = NO_LANE;
  f->meet = meet;
}

void lanes_config(cgr_lanes_config *config, cgr_config *runtime,
                  lanes_fixture *f, uint32_t count) {
  cgr_test_config(runtime);
  runtime->buckets = buckets;
  runtime->bucket_count = BUCKETS;
  assert_cgr_ok(NULL, cgr_lanes_config_init(config));
  config->lanes = count;
  config->runtime = runtime;
  config->setup = lane_setup;
  config->teardown = lane_teardown;
  config->step = lane_step;
  config->user = f;
}

cgr_lanes *lanes_open(lanes_fixture *f, uint32_t count) {
  cgr_config runtime;
  cgr_lanes_config config;
  lanes_config(&config, &runtime, f, count);
  cgr_lanes *lanes = NULL;
  assert_cgr_ok(NULL, cgr_lanes_create(&config, &lanes));
  assert_int_equal(cgr_lanes_count(lanes), count);
  return lanes;
}

/* Destroys the lanes; every setup was torn down once. */
void lanes_close(cgr_lanes *lanes, lanes_fixture *f) {
  uint32_t count = cgr_lanes_count(lanes);
  cgr_lanes_destroy(lanes);
  for (uint32_t lane = 0; lane < count; ++lane)
    assert_int_equal(f->teardowns[lane], 1);
  assert_int_equal(f->wrong_user, 0);
}

lane_state *lane_state_of(cgr_lanes *lanes, uint32_t lane) {
  lane_state *s = cgr_lanes_user(lanes, lane);
  assert_non_null(s);
  return s;
}

/* ---- requests, batches and answers --------------------------------------- */

void make_requests(request *r, uint32_t count, uint64_t *seed) {
  for (uint32_t i = 0; i < count; ++i) {
    r[i].id = (int32_t)below(seed, 50000);
    r[i].pos = (int32_t)below(seed, 4096);
    r[i].len = 1 + (int32_t)below(seed, 60);
    for (int p = 0; p < MODEL_PAGES; ++p)
      r[i].pages[p] = (int32_t)below(seed, MODEL_PAGE_LIMIT);
    r[i].phase = below(seed, 3) == 0 ? CGR_PHASE_CONTEXT : CGR_PHASE_GENERATION;
  }
}

void lane_rows_build(lane_rows *rows, const request *requests, uint32_t count,
                     const uint32_t *lane_of, uint32_t lane) {
  uint32_t n = 0;
  rows->in.cu_k[0] = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (lane_of[i] != lane)
      continue;
    assert_true(n < MODEL_MAX_ROWS);
    rows->request[n] = i;
    rows->in.ids[n] = requests[i].id;
    rows->in.pos[n] = requests[i].pos;
    memcpy(&rows->in.pages[n * MODEL_PAGES], requests[i].pages,
           sizeof requests[i].pages);
    rows->in.cu_k[n + 1] = rows->in.cu_k[n] + requests[i].len;
    n++;
  }
  rows->in.rows = n;
}

/* Opens and fills the lane's batch; NULL for a lane without rows. Every
 * input is given unless `skip` names one (a batch the replay refuses). */
cgr_batch *lane_batch(cgr_runtime *rt, const model *m, const lane_rows *rows,
                      cgr_slot skip) {
  uint32_t b = rows->in.rows;
  if (b == 0)
    return NULL;
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, b, &batch));
  const cgr_slot slots[4] = {m->ids, m->pos, m->pages, m->cu_k};
  const int32_t *data[4] = {rows->in.ids, rows->in.pos, rows->in.pages,
                            rows->in.cu_k};
  const size_t bytes[4] = {b * 4, b * 4, b * 4 * MODEL_PAGES, (b + 1) * 4};
  for (int i = 0; i < 4; ++i)
    if (slots[i] != skip)
      assert_cgr_ok(rt, cgr_batch_input(batch, slots[i], CGR_SOURCE_HOST,
                                        data[i], bytes[i]));
  return batch;
}

static void read_device(cgr_runtime *rt, void *dst, const void *src,
                        size_t bytes) {
  assert_cgr_ok(rt, cgr__be_memcpy_async(TEST_BE(rt), TEST_MAIN(rt), dst, src,
                                         bytes));
  assert_cgr_ok(rt, cgr__be_stream_synchronize(TEST_BE(rt), TEST_MAIN(rt)));
}

/* Checks a finished lane step against its own inputs (the closed form)
 * and files each row's answer under its request. */
void collect_answers(cgr_runtime *rt, const model *m, const cgr_ticket *ticket,
                     const lane_rows *rows, answer *answers) {
  uint32_t b = rows->in.rows;
  assert_int_equal(ticket->batch_size, b);
  void *out = NULL, *out_pages = NULL;
  assert_cgr_ok(rt, cgr_output(rt, ticket, m->out, &out));
  assert_cgr_ok(rt, cgr_output(rt, ticket, m->out_pages, &out_pages));
  int32_t values[MODEL_MAX_ROWS];
  static int32_t pages[MODEL_MAX_ROWS * MODEL_PAGES];
  model_check_outputs(rt, out, out_pages, &rows->in, ticket->padded_batch, b,
                      values);
  read_device(rt, pages, out_pages, (size_t)b * MODEL_PAGES * 4);
  for (uint32_t r = 0; r < b; ++r) {
    answer *a = &answers[rows->request[r]];
    assert_int_equal(a->seen, 0);
    a->seen = 1;
    a->value = values[r] - rows->in.cu_k[r + 1] - (int32_t)r -
               (int32_t)(ticket->padded_batch * 100 + r);
    memcpy(a->pages, &pages[r * MODEL_PAGES], sizeof a->pages);
  }
}

void split_requests(const request *requests, uint32_t count,
                    cgr_split_policy policy, uint32_t lanes,
                    uint32_t *lane_of) {
  static cgr_split_item items[MODEL_MAX_ROWS];
  for (uint32_t i = 0; i < count; ++i)
    items[i] = (cgr_split_item){requests[i].phase, (uint64_t)requests[i].len,
                                &requests[i]};
  cgr_split_config config = {.policy = policy, .lanes = lanes};
  split(&config, items, count, lane_of);
}

/* Fills every lane with its round-robin share of `count` requests. */
void fill_round_robin(cgr_lanes *lanes, const request *requests, uint32_t count,
                      lane_rows *rows, cgr_batch **batches) {
  uint32_t n = cgr_lanes_count(lanes);
  uint32_t lane_of[MODEL_MAX_ROWS];
  split_requests(requests, count, CGR_SPLIT_ROUND_ROBIN, n, lane_of);
  for (uint32_t lane = 0; lane < n; ++lane) {
    lane_rows_build(&rows[lane], requests, count, lane_of, lane);
    batches[lane] =
        lane_batch(cgr_lanes_runtime(lanes, lane),
                   &lane_state_of(lanes, lane)->m, &rows[lane], (cgr_slot)-1);
  }
}

void check_lanes(cgr_lanes *lanes, const lane_rows *rows,
                 cgr_batch *const *batches, const cgr_ticket *tickets,
                 uint32_t count) {
  static answer answers[MODEL_MAX_ROWS];
  memset(answers, 0, count * sizeof *answers);
  for (uint32_t lane = 0; lane < cgr_lanes_count(lanes); ++lane)
    if (batches[lane] != NULL)
      collect_answers(cgr_lanes_runtime(lanes, lane),
                      &lane_state_of(lanes, lane)->m, &tickets[lane],
                      &rows[lane], answers);
}
