/* What the cgr_replay_inputs tests (tests/replay_inputs*.c) share: a
 * runtime with the test model captured and the memory its entries point
 * at (pinned, device and gather sources), the gather tables, host entries
 * for a whole step, and the checks of a step's outputs.
 *
 * Everything here runs on the test thread and asserts. */
#ifndef CGR_TESTS_REPLAY_INPUTS_FIXTURE_H
#define CGR_TESTS_REPLAY_INPUTS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "model.h"

/* LARGEST: the largest bucket. ROWS: the batch of the step-by-step tests
 * and the refusals. */
enum {
  LARGEST = 8,
  MAX_ROWS = 12, /* the eager mode runs batches past the largest bucket */
  TABLE_ROWS = 32,
  ROWS = 3
};

/* Uniform in [0, bound): test_random_below for 32-bit bounds. */
uint32_t below(uint64_t *state, uint32_t bound);

/* Rows the gather entries read: the same on every runtime. */
typedef struct tables {
  int32_t ids[TABLE_ROWS];
  int32_t pages[TABLE_ROWS * MODEL_PAGES];
} tables;

/* Fills the tables from `seed`. */
void tables_make(tables *t, uint64_t seed);

/* One runtime with the model (input_ids fed by out) and the memory its
 * entries point at: per step parity, pinned and device copies of each
 * input and device gather indices; the gather tables on its device. */
typedef struct side {
  model m;
  cgr_runtime *rt;
  int32_t *pinned[2][4];
  int32_t *device[2][4];
  int32_t *index[2][4];
  int32_t *table_ids, *table_pages;
  /* Pageable sources, scribbled over after each replay: the runtime must
   * have staged them by then. */
  int32_t pageable[4][(MAX_ROWS + 1) * MODEL_PAGES];
} side;

/* Captures the model in `mode` and allocates the side's memory, with the
 * tables copied to its device. */
void side_open(side *s, cgr_replay_mode mode, const tables *t);

/* Waits for the side's work, frees its memory and destroys its runtime. */
void side_close(side *s);

/* The bytes slot `slot` (0 ids, 1 pos, 2 pages, 3 cu_k) takes for `rows`
 * rows. */
size_t slot_bytes(int slot, uint32_t rows);

/* Every padded row of out and out_pages, as the ticket's step wrote them. */
void read_outputs(side *s, const cgr_ticket *ticket, int32_t *out,
                  int32_t *out_pages);

/* Every input of a step of ROWS rows from the host: four entries. */
void host_entries(const model *m, const model_inputs *in, cgr_input *out);

/* The ticket's step wrote the model's outputs for `in` in its live rows. */
void check_step(side *s, const cgr_ticket *ticket, const model_inputs *in);

#endif
