/* What the group tests (tests/group*.c) share: a tensor-parallel toy step
 * and the same step on a single runtime, the reference a group must equal.
 *
 * The toy step, on rank r of R (R = 1 outside a group), for each row b of
 * the padded batch (HIDDEN = 8 columns, shard S = HIDDEN / R):
 *
 *   partial[b][j] = sum over i of rank r's shard of (x[b][i] + tok[b]) *
 *                   W(i, j)                       a row-parallel product
 *   all_reduce(partial, SUM)                      the whole product
 *   shard[b][k]   = partial[b][r * S + k] mod 1009
 *   all_gather(shard)                             rank-major, then
 *   out[b][j]     = gathered[j / S][b][j % S]     the whole row again
 *   next[b]       = sum of out[b][j] mod 1000
 *   broadcast(next, root 0)
 *
 * in int32, so the ranks' sums equal one runtime's exactly. `next` may
 * feed `tok` (cgr_group_slot_feed). The kernels are host-only: the tests
 * are HOST_TESTs. */
#ifndef CGR_TESTS_GROUP_FIXTURE_H
#define CGR_TESTS_GROUP_FIXTURE_H

#include <stdint.h>

#include "harness.h"

enum { HIDDEN = 8, GROUP_MAX_BATCH = 64 };

/* The step's user: every rank reads it (from several threads), and the
 * faults it can inject. */
typedef struct toy_faults {
  int omit_rank;           /* this rank skips its all-gather; -1: none */
  int omit_only_capturing; /* ... only while capturing */
  int fail_rank;           /* this rank's step fails; -1: none */
  uint32_t fail_over;      /* ... when its padded batch exceeds this */
} toy_faults;

typedef struct toy_slots {
  cgr_slot tok, x, out, next;
} toy_slots;

typedef struct toy_options {
  int ranks;
  cgr_replay_mode mode;
  int lazy;
  int feedback; /* next feeds tok */
  uint32_t timeout_ms;
  const uint32_t *buckets;
  size_t bucket_count;
  /* Across processes: this process is rank world_rank of world_ranks
   * (ranks 1), joined by id; world_ranks 0: every rank here. */
  int world_ranks, world_rank;
  const char *id;
  /* Keys (NULL: the defaults): the toy ignores them, so every key's
   * outputs are one runtime's. */
  const uint32_t *tokens;
  size_t token_count;
  const char *const *variants;
  size_t variant_count;
} toy_options;

/* Defaults: 2 ranks, double-buffered, buckets 1, 2, 4, 8. */
void toy_options_init(toy_options *options);
void toy_faults_init(toy_faults *faults);

cgr_status toy_step(cgr_step *step, void *user);

/* A group with the toy's slots declared (not captured). */
cgr_group *toy_group(const toy_options *options, toy_slots *slots);
/* A runtime with the same, captured. */
cgr_runtime *toy_single(const toy_options *options, toy_slots *slots);

/* One step's inputs. */
typedef struct toy_inputs {
  uint32_t batch;
  int32_t tok[GROUP_MAX_BATCH];
  int32_t x[GROUP_MAX_BATCH * HIDDEN];
  /* Feedback: row j continues prev_rows[j] (-1: a new row from tok). */
  int use_feedback;
  int32_t prev_rows[GROUP_MAX_BATCH];
  int32_t new_tok[GROUP_MAX_BATCH];
  uint32_t new_count;
  /* The step's key: 0 tokens for the default (cgr_group_batch_begin). */
  uint32_t tokens, variant;
} toy_inputs;

/* Random inputs for `batch` rows; with `feedback`, rows continue rows of
 * a previous batch of prev_batch rows (prev_batch 0: no feedback). */
void toy_make_inputs(toy_inputs *in, uint32_t batch, uint32_t prev_batch,
                     uint64_t *random);

/* Fills a batch of rt with `in`. */
void toy_fill(cgr_runtime *rt, cgr_batch *batch, const toy_slots *slots,
              const toy_inputs *in);

/* Reads the ticket's out and next rows (waits for nothing). */
void toy_read(cgr_runtime *rt, const cgr_ticket *ticket, const toy_slots *slots,
              uint32_t batch, int32_t *out, int32_t *next);

/* One step of a group and of the single runtime on the same inputs,
 * outputs compared on every rank. Returns the group's ticket. */
cgr_ticket toy_step_both(cgr_group *group, const toy_slots *group_slots,
                         cgr_runtime *single, const toy_slots *single_slots,
                         const toy_inputs *in);

/* `steps` steps of random batch sizes from 1 to max_batch, compared. */
void toy_equivalence(const toy_options *options, long steps, uint32_t max_batch,
                     uint64_t seed);

#endif /* CGR_TESTS_GROUP_FIXTURE_H */
