/*
 * What the replay tests share (tests/replay.c, tests/pipelined.c): sources
 * of every kind for the test model's inputs, giving a slot its data from
 * any of them, and checks of a step's outputs and padding against the
 * model's closed form and an eager run.
 */
#ifndef CGR_TESTS_REPLAY_FIXTURE_H
#define CGR_TESTS_REPLAY_FIXTURE_H

#include "harness.h"
#include "model.h"

enum { LARGEST = 32, MAX_BATCH = 40, TABLE_ROWS = 64 };

/* Sources the test owns: per parity, pinned and device copies of each
 * input, and device tables to gather from. */
typedef struct sources {
  int32_t *pinned[2][4];
  int32_t *device[2][4];
  int32_t *table;       /* device: TABLE_ROWS rows of MODEL_PAGES */
  int32_t *table_ids;   /* device: TABLE_ROWS ids */
  int32_t *index[2][4]; /* device: row indices, per parity and slot */
  int32_t host_table[TABLE_ROWS * MODEL_PAGES];
  int32_t host_table_ids[TABLE_ROWS];
  /* Pageable copies handed to the engine, scribbled over after each
   * replay: the engine must have staged them. */
  int32_t pageable[4][(MAX_BATCH + 1) * MODEL_PAGES];
} sources;

/* One step in flight: its inputs, for checking its outputs later. */
typedef struct step_record {
  cgr_ticket ticket;
  model_inputs in;
} step_record;

/* What each buffer set was last loaded with, to use "unchanged". */
typedef struct set_memory {
  uint32_t size[4]; /* 0: unknown */
  int in_graph;     /* the set was last loaded in the in-graph mode */
  model_inputs in;
} set_memory;

typedef enum choice { HOST, PINNED, DEVICE, UNCHANGED, GATHER } choice;

/* The test model on a CGR_REPLAY_PIPELINED runtime with these buckets,
 * captured (registered only, when lazy); `feed` feeds out into ids. */
cgr_runtime *pipelined_runtime(model *m, const uint32_t *buckets, size_t count,
                               int lazy, int feed);
/* Steps per random sequence: CGR_TEST_STEPS overrides (the tsan preset
 * runs fewer). */
int steps_to_run(int otherwise);
uint32_t below(uint64_t *state, uint32_t bound);
void sources_create(cgr_runtime *rt, sources *s, uint64_t *seed);
void sources_destroy(cgr_runtime *rt, sources *s);
/* Gives one slot's data for this step, and records what the step will see
 * in `in`. Slot i: 0 ids, 1 pos, 2 pages, 3 cu_k. */
void give(cgr_runtime *rt, cgr_batch *batch, const model *m, sources *s,
          int parity, int slot, choice how, model_inputs *in,
          const set_memory *memory, uint64_t *seed);
/* The padding rows of the ticket's set hold their declared values. */
void check_padding(cgr_runtime *rt, const model *m, const step_record *r);
/* Waits for the step; its outputs are right. */
void check_outputs(cgr_runtime *rt, const model *m, const step_record *r);
/* Waits for the step; its outputs and its set's padding are right (no
 * later load may have reached the set). */
void check_step(cgr_runtime *rt, const model *m, const step_record *r);
/* An eager run of the same step on the same rows agrees with the replay. */
void check_against_eager(cgr_runtime *rt, const model *m, const step_record *r);
/* Batch sizes that grow, shrink and jump across buckets (and past the
 * largest, into the eager fallback). */
uint32_t next_batch(uint32_t current, uint64_t *seed);

#endif /* CGR_TESTS_REPLAY_FIXTURE_H */
