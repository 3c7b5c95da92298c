/* What the lanes tests (tests/lanes*.c) share: cgr_split with its answer
 * checked, lanes of the test model (their setup, step and teardown, with
 * an optional rendezvous node), requests split into one batch per lane,
 * and each request's answer read back from its lane.
 *
 * Everything here runs on the test thread and asserts, except the
 * rendezvous node, which runs on a stream's worker thread and only
 * records. */
#ifndef CGR_TESTS_LANES_FIXTURE_H
#define CGR_TESTS_LANES_FIXTURE_H

#include <stdatomic.h>
#include <stdint.h>

#include "harness.h"
#include "model.h"

/* LARGEST: the lanes' largest bucket. NO_LANE: not a lane. */
enum { LARGEST = 32, NO_LANE = 999 };

/* Uniform in [0, bound): test_random_below for 32-bit bounds. */
uint32_t below(uint64_t *state, uint32_t bound);

/* cgr_split, failing the test unless it succeeds and puts every request
 * on one of the config's lanes. */
void split(const cgr_split_config *config, const cgr_split_item *items,
           uint32_t count, uint32_t *lane_of);

/* ---- lanes of the test model --------------------------------------------- */

/* Every lane's step ends with a host function that, while armed, waits
 * until all `expected` lanes have reached it. Lanes that ran one after
 * the other never meet: the first times out. The warm-up runs of
 * cgr_lanes_create execute host functions too, so it starts disarmed. */
typedef struct rendezvous {
  atomic_int armed;
  atomic_uint arrived;
  atomic_uint met;
  atomic_uint timed_out;
  uint32_t expected;
  int timeout_ms;
} rendezvous;

/* Resets the counts and arms the node for `expected` lanes, each waiting
 * at most timeout_ms for the others. */
void rendezvous_arm(rendezvous *r, uint32_t expected, int timeout_ms);

/* What a lane's setup makes: the model's slots on its runtime. */
typedef struct lane_state {
  model m;
  uint32_t lane;
  rendezvous *meet; /* NULL: no rendezvous node */
} lane_state;

/* The user of every callback; setup and teardown run on the thread that
 * creates and destroys the lanes. */
typedef struct lanes_fixture {
  uint32_t fail_setup_lane;   /* NO_LANE: none fails */
  uint32_t fail_capture_lane; /* its step refuses bucket 4, set 0 */
  rendezvous *meet;
  int setups[CGR_MAX_LANES];
  int teardowns[CGR_MAX_LANES];
  int wrong_user;
} lanes_fixture;

/* A fixture where nothing fails; `meet` (or NULL) ends every lane's step. */
void fixture_init(lanes_fixture *f, rendezvous *meet);

/* A config for `count` lanes of the test model on the lanes' buckets, with
 * the fixture's callbacks; `runtime` is the lanes' runtime config. */
void lanes_config(cgr_lanes_config *config, cgr_config *runtime,
                  lanes_fixture *f, uint32_t count);

/* `count` lanes created from lanes_config's config. */
cgr_lanes *lanes_open(lanes_fixture *f, uint32_t count);

/* Destroys the lanes; every setup was torn down once. */
void lanes_close(cgr_lanes *lanes, lanes_fixture *f);

/* What the lane's setup made. */
lane_state *lane_state_of(cgr_lanes *lanes, uint32_t lane);

/* ---- requests, batches and answers --------------------------------------- */

/* One request of a step, as the test model sees it. */
typedef struct request {
  int32_t id, pos, len;
  int32_t pages[MODEL_PAGES];
  cgr_phase phase;
} request;

/* `count` random requests, about a third of them context. */
void make_requests(request *r, uint32_t count, uint64_t *seed);

/* One lane's rows: its requests in request order. */
typedef struct lane_rows {
  uint32_t request[MODEL_MAX_ROWS]; /* the request of each row */
  model_inputs in;
} lane_rows;

/* The rows of the requests lane_of puts on `lane`. */
void lane_rows_build(lane_rows *rows, const request *requests, uint32_t count,
                     const uint32_t *lane_of, uint32_t lane);

/* Opens and fills the lane's batch; NULL for a lane without rows. Every
 * input is given unless `skip` names one (a batch the replay refuses). */
cgr_batch *lane_batch(cgr_runtime *rt, const model *m, const lane_rows *rows,
                      cgr_slot skip);

/* A request's answer with the row's position terms taken out: what must
 * not depend on the lane, the row or the bucket. */
typedef struct answer {
  int seen;
  int32_t value; /* ids + pos */
  int32_t pages[MODEL_PAGES];
} answer;

/* Checks a finished lane step against its own inputs (the closed form)
 * and files each row's answer under its request. */
void collect_answers(cgr_runtime *rt, const model *m, const cgr_ticket *ticket,
                     const lane_rows *rows, answer *answers);

/* The requests split by `policy` over `lanes` lanes (their tokens: len). */
void split_requests(const request *requests, uint32_t count,
                    cgr_split_policy policy, uint32_t lanes, uint32_t *lane_of);

/* Fills every lane with its round-robin share of `count` requests. */
void fill_round_robin(cgr_lanes *lanes, const request *requests, uint32_t count,
                      lane_rows *rows, cgr_batch **batches);

/* Checks every lane's finished step (collect_answers on each). */
void check_lanes(cgr_lanes *lanes, const lane_rows *rows,
                 cgr_batch *const *batches, const cgr_ticket *tickets,
                 uint32_t count);

#endif /* CGR_TESTS_LANES_FIXTURE_H */
