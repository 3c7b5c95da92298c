/*
 * replay/: batches, the four replay modes, the padding state of each buffer
 * set, and the event protocol of double buffering. Internal; the public face
 * is in cgr.h.
 *
 * The protocol, for step n on buffer set k = n mod 2 (double-buffered):
 *
 *   host    waits staging_free[k] (only if the copy of step n-2 is still
 *           running: counted as a synchronization), writes host sources
 *           into pinned staging k
 *   side    waits graph_done[k] (the graph of step n-2 read set k), and
 *           graph_done[1-k] when a source lives on the device (step n-1 may
 *           have written it); one fused copy into set k; records loaded[k]
 *           (= staging_free[k])
 *   main    waits loaded[k]; launches graph[bucket][k]; records
 *           graph_done[k]
 *
 * In the naive and fused modes the copy runs on the main stream, before the
 * graph, and records staging_free[k]; stream order does the rest.
 */
#ifndef CGR_REPLAY_REPLAY_H
#define CGR_REPLAY_REPLAY_H

#include <stdint.h>

#include "capture/capture.h"
#include "kernels/copy_plan.h"

typedef enum cgr__given {
  CGR__GIVEN_NONE = 0,
  CGR__GIVEN_INPUT,
  CGR__GIVEN_UNCHANGED,
  CGR__GIVEN_GATHER,
  CGR__GIVEN_FEEDBACK
} cgr__given;

typedef struct cgr__slot_input {
  cgr__given given;
  cgr_source source;
  const void *data;
  size_t bytes;
  const void *gather_src;
  const int32_t *gather_index;
  const int32_t *prev_rows; /* feedback: host, batch entries */
  const void *new_rows;     /* feedback: host, one row per -1 */
} cgr__slot_input;

struct cgr_batch {
  cgr_runtime *rt;
  uint32_t size;
  int open;
  cgr__slot_input *inputs; /* one per slot */
  /* The caller's events the step's reads wait for (cgr_batch_wait_event). */
  cgr__event *events[CGR_BATCH_MAX_EVENTS];
  int event_count;
};

/* Makes every stream of the step wait for the batch's events (batch.c). */
cgr_status cgr__batch_wait_events(cgr_runtime *rt, const cgr_batch *batch);

typedef struct cgr__set {
  cgr__event *loaded;       /* the side stream's copy into this set ended */
  cgr__event *graph_done;   /* the graph that last read this set ended */
  cgr__event *staging_free; /* the copy that last read this staging ended */
  unsigned char *staging;   /* pinned: host sources of this set's steps */
  int32_t *feed_index;      /* pinned: feedback gather indices, per slot */
  /* Per slot: rows at and past dirty_end hold padding; loaded_size is the
   * batch size the slot was last loaded with (0: unknown). */
  uint32_t *dirty_end;
  uint32_t *loaded_size;
  /* Per slot: the batch size whose full padded image (live rows and
   * padding up to its bucket) staging holds for the in-graph mode; 0 when
   * another mode has since staged only live rows there. */
  uint32_t *image_size;
} cgr__set;

typedef struct cgr__replay {
  cgr_batch batch;
  /* A batcher's engine thread owns the runtime (replay/batcher.c): one
   * at a time. */
  int has_batcher;
  uint64_t next_step;
  cgr_replay_mode mode;
  cgr__set sets[2];
  uint64_t *staging_offset; /* per slot, into each set's staging */
  uint64_t staging_bytes;
  int32_t *zero_index; /* device: zeros, for PREFIX padding from the device */
  uint64_t constant_slots; /* never copied: counted as skipped each step */
  cgr__copy_plan plan;
  cgr_replay_stats stats[5];
  /* The last eager step: its buffers hold its outputs until the next
   * replay. */
  int eager_live;
  uint64_t eager_step;
  cgr__eager eager;
  /* The last ticket issued for each set, and for an eager step (step
   * UINT64_MAX: none yet): every ticket whose outputs are readable is one
   * of them, so cgr_output checks those field by field. */
  cgr_ticket issued[2];
  cgr_ticket issued_eager;
  /* Feedback: some slot is fed; the step whose graph last fed (its outputs
   * wait in its set's OUTPUT slots), and its batch size. */
  int has_feeds;
  uint64_t fed_step; /* UINT64_MAX: no graph step to continue from */
  uint32_t fed_batch;
  /* Tests only: skip the side stream's wait for the graph that last read
   * the set, to prove the protocol test can fail. */
  int test_drop_set_wait;
} cgr__replay;

/* The runtime's replay state, made on first use after a capture. */
cgr_status cgr__replay_state(cgr_runtime *rt, cgr__replay **out);

/* batch.c: the byte count a ROWS/PREFIX slot's input must have. */
uint64_t cgr__input_bytes(const cgr__slot *slot, uint32_t batch_size);
/* 1 when the slot is loaded per step (ROWS, PREFIX). */
int cgr__is_input(const cgr__slot *slot);

#endif /* CGR_REPLAY_REPLAY_H */
