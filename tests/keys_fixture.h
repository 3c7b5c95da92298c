/*
 * The keyed test step and its closed form, shared by tests/keys.c and
 * tests/keys_pipelined.c (keys.c's header comment has the form).
 */
#ifndef CGR_TESTS_KEYS_FIXTURE_H
#define CGR_TESTS_KEYS_FIXTURE_H

#include "harness.h"

static const uint32_t buckets[] = {1, 2, 4, 8};
static const uint32_t tokens[] = {1, 3, 4};
static const char *const variants[] = {"base", "double", "wide"};
enum {
  BUCKETS = 4,
  TOKENS = 3,
  VARIANTS = 3,
  LARGEST = 8,
  MOST_TOKENS = 4,
  MAX_BATCH = 11, /* past the largest bucket: eager fallbacks */
  MAX_ROWS = MAX_BATCH * MOST_TOKENS,
  PAD_POS = 7
};

typedef struct keyed {
  cgr_slot ids, pos, lens, cu_k, cu_q, tok, bias, out, out_req;
  int feed; /* out feeds ids */
} keyed;

/* One step's inputs on the host, and what its ids were. */
typedef struct step_inputs {
  uint32_t batch, q, variant;
  int32_t ids[MAX_ROWS], pos[MAX_ROWS], lens[MAX_BATCH];
  int32_t cu_k[MAX_BATCH + 1];
} step_inputs;

/* The keyed fill of `bias` (a cgr_slot_fill_key_fn). */
void bias_fill(void *user, const cgr_key *key, void *dst, uint64_t elems);
/* A runtime on the backend under test with the keyed step captured (or
 * registered, when lazy); `feed` feeds out into ids. */
cgr_runtime *keyed_runtime(keyed *m, cgr_replay_mode mode, int lazy, int feed);
/* The closed form of a token row's out and a request's out_req. */
int32_t expected_out(const step_inputs *in, uint32_t padded, uint32_t t);
int32_t expected_req(const step_inputs *in, uint32_t r);
/* Reads the ticket's outputs and checks every live row, and the padded
 * token rows of its set (no later load may have reached the set); keeps
 * out[]. */
void check_step(cgr_runtime *rt, const keyed *m, const cgr_ticket *t,
                const step_inputs *in, int32_t *out_copy);

#endif /* CGR_TESTS_KEYS_FIXTURE_H */
