/*
 * The batch fuzz target's shared parts: the slots of its one runtime, the
 * model's state, and the calls between its two files.
 *
 *   batch_model.c  the runtime and its step, the memory batches point at,
 *                  what a replay must answer and the outputs and buffer
 *                  sets it must leave (the reference), checked on every
 *                  replay;
 *   batch.c        the input decoder: each call an input makes, the status
 *                  the model predicts for it, and the driver
 *                  (fuzz_batch_one).
 *
 * tests/fuzz_regressions.c includes both .c files into one translation
 * unit, so a name either file defines stays unique to it.
 */
#ifndef CGR_FUZZ_BATCH_MODEL_H
#define CGR_FUZZ_BATCH_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "cgr/cgr.h"
#include "fuzz/fuzz_targets.h"

enum {
  BT_LARGEST = 8,
  /* Past the largest bucket: eager steps, up to 12 times its size, so an
   * eager step whose rows overran per-set buffers sized for the largest
   * bucket would run past their allocation (rounded up to 256 bytes),
   * where ASan sees it. */
  BT_MAX_BATCH = 100,
  BT_MAX_ROW = 16, /* bytes of the widest row */
  BT_MAX_BYTES = (BT_MAX_BATCH + 1) * BT_MAX_ROW,
  BT_SRC_ROWS = 64, /* rows of a gather source */
  BT_MAX_OPS = 64,
  BT_MAX_ALLOCS = 4 * BT_MAX_OPS, /* three per call at most */
  BT_TRAILER_BATCH = 5,
  BT_TICKETS = 8
};

/* input_ids, the fed slot, is the last input: a write past its region of
 * per-set staging runs off the allocation, where ASan sees it. */
enum {
  BT_POS,
  BT_PAGES,
  BT_FLAGS,
  BT_WIDE,
  BT_CU_K,
  BT_IDS,
  BT_CU_Q,
  BT_OUT,
  BT_OUT_PAGES,
  BT_SLOTS
};

typedef struct bt_spec {
  const char *name;
  cgr_slot_kind kind;
  uint32_t elem_size;
  uint64_t row_elems;
  uint64_t pad_value;
  int64_t valid_min, valid_max; /* checked when max > min */
} bt_spec;

/* In declaration order: a slot's index is its enum value. */
extern const bt_spec bt_specs[BT_SLOTS];

static inline int bt_is_input(int slot) {
  return slot >= 0 && slot < BT_SLOTS &&
         (bt_specs[slot].kind == CGR_SLOT_ROWS ||
          bt_specs[slot].kind == CGR_SLOT_PREFIX);
}

static inline uint64_t bt_row_bytes(int slot) {
  return bt_specs[slot].elem_size * bt_specs[slot].row_elems;
}

/* The bytes a batch of `rows` gives a ROWS or PREFIX slot. */
static inline uint64_t bt_input_bytes(int slot, uint64_t rows) {
  if (bt_specs[slot].kind == CGR_SLOT_PREFIX)
    return (rows + 1) * bt_specs[slot].elem_size;
  return rows * bt_row_bytes(slot);
}

/* ---- the runtime and the model ------------------------------------------- */

typedef enum bt_how {
  BT_NONE = 0,
  BT_INPUT,
  BT_UNCHANGED,
  BT_GATHER,
  BT_FEEDBACK
} bt_how;

/* What a buffer set holds, as far as the model knows. */
typedef struct bt_loaded {
  int valid;
  uint32_t size;
  unsigned char bytes[BT_MAX_BYTES];
} bt_loaded;

typedef struct bt_state {
  cgr_runtime *rt;
  cgr_slot slots[BT_SLOTS];
  cgr_replay_mode mode;
  uint64_t next_step;
  bt_loaded loaded[2][BT_SLOTS];
  /* The previous step was a graph step: its out rows, which feedback
   * continues. */
  int fed_valid;
  uint32_t fed_batch;
  int32_t fed_out[BT_MAX_BATCH];
  /* The last eager step's outputs live until the next replay gets past
   * its batch's checks. */
  int eager_live;
  uint64_t eager_step;
  /* This input's tickets, the last BT_TICKETS of them. */
  cgr_ticket tickets[BT_TICKETS];
  size_t ticket_count;
} bt_state;

/* One open (or closed) batch, with what each slot was given. */
typedef struct bt_batch {
  cgr_batch *handle; /* kept after it closes, for misuse */
  int open;
  uint32_t size;
  bt_how how[BT_SLOTS];
  cgr_source source[BT_SLOTS];
  int misaligned_index[BT_SLOTS];
  unsigned char expect[BT_SLOTS][BT_MAX_BYTES]; /* live bytes, when given */
  void *host[BT_MAX_ALLOCS];
  size_t host_count;
  void *device[BT_MAX_ALLOCS];
  size_t device_count;
  void *pinned[BT_MAX_ALLOCS];
  size_t pinned_count;
} bt_batch;

/* The runtime, its slots declared and its step captured, in
 * double-buffered mode; nothing replayed yet. Traps on failure. */
bt_state *bt_state_create(void);
void bt_state_destroy(bt_state *st);

/* Exactly `bytes` of host memory (ASan sees any read past them), or
 * device memory of the runtime (host memory on the host backend), freed
 * by bt_free_memory once the batch is consumed. */
void *bt_host(bt_batch *b, size_t bytes);
void *bt_device(bt_state *st, bt_batch *b, size_t bytes);
/* Page-locked memory of the runtime: what a PINNED source must lie in. */
void *bt_pinned(bt_state *st, bt_batch *b, size_t bytes);
void bt_free_memory(bt_state *st, bt_batch *b);

/* Every element within the slot's range (or no range). */
int bt_in_range(int slot, const unsigned char *data, uint64_t bytes);

/* The status every input call starts with: the batch open, the slot an
 * input not given yet. CGR_OK when those hold. */
cgr_status bt_slot_verdict(const bt_batch *b, int slot);

/* Traces a batch call and checks its status against the prediction. */
void bt_after(bt_state *st, const bt_batch *b, cgr_status got, cgr_status want,
              const char *call, int slot);

/* Replays the batch, checks the status against the model's prediction
 * and, when it succeeds, the outputs and (on a graph step) the buffer set
 * against the reference; updates the model and frees the batch's memory. */
void bt_replay(bt_state *st, bt_batch *b);

#endif /* CGR_FUZZ_BATCH_MODEL_H */
