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
 *   side    waits graph_done[k] (the graph of step n-2 read set k); the
 *           free part of the copy into set k; then, only when the late
 *           part is not empty, waits graph_done[1-k] (the graph of step
 *           n-1) and runs the late part; records loaded[k]
 *           (= staging_free[k]) after both
 *   main    waits loaded[k]; launches graph[bucket][k]; records
 *           graph_done[k]
 *
 * The two parts (replay.c, waits_for_previous_graph). What the graph of
 * step n-1, on set 1-k, may touch while step n's copy runs: it reads set
 * 1-k's inputs, writes set 1-k's OUTPUT slots and the scratch arena, and
 * its last nodes (cgr_slot_feed) copy each fed output of set 1-k into rows
 * [0, its bucket) of the fed input of set k (mark_fed). It never touches
 * the other inputs of set k, nor staging. So:
 *
 *   free    host and pinned sources, staged rows and padding fills of
 *           the slots that are not fed: they write set k's unfed inputs
 *           (last read by graph n-2: graph_done[k]) and read staging k
 *           (free once the copy of n-2 ended: the host's staging wait) or
 *           the caller's pinned memory (ordered by the caller's events,
 *           cgr_batch_wait_event, waited for at the head of both
 *           streams). Nothing of graph n-1: they overlap it.
 *   late    every operation on a fed slot, whatever the batch gives it:
 *           gathers of moved rows read graph n-1's fed output of set 1-k
 *           (read after write); new rows, a host input given to a fed
 *           slot and its padding fills write rows graph n-1's feed copy
 *           writes too (write after write: the step's data must land
 *           last). And every device source and gather: cgr.h promises a
 *           DEVICE source is read after the previous step's graph (it may
 *           be that step's output).
 *
 * Both parts read staging k and set k's feedback indices, which the host
 * rewrites only after staging_free[k], recorded after both. Rows a
 * feedback batch keeps in place cost no operation: graph n reads what
 * graph n-1's feed wrote in main-stream order. With no late part (no fed
 * row to gather, copy or pad, no device source or gather: a runtime
 * without feeds, fed from the host) the copy is one launch that waits for
 * graph n-2 only; with only a late part, one launch that waits for both
 * graphs; with both, two launches, counted as such by the backend's
 * counters. Graph n-1 cannot read what the free part writes: it was
 * captured against set 1-k. The plan is validated whole
 * (cgr__copy_plan_finish_split), as the one-launch modes validate it, so
 * splitting it changes no result.
 *
 * In the naive and fused modes the copy runs on the main stream, before the
 * graph, and records staging_free[k]; stream order does the rest.
 */
#ifndef CGR_REPLAY_REPLAY_H
#define CGR_REPLAY_REPLAY_H

#include <stdint.h>
#include <string.h>

#include "capture/capture.h"
#include "kernels/copy_plan.h"

/* cgr_batch.shape: above the cgr__given (1 to 4), an input's source and
 * feedback in place. */
enum { CGR__SHAPE_SOURCE = 8, CGR__SHAPE_IN_PLACE = 32 };

/* The plan memo (plan_memo.c) serves runtimes of at most CGR__MEMO_SLOTS
 * slots, each set remembering CGR__MEMO_ENTRIES plans. */
enum { CGR__MEMO_SLOTS = 16, CGR__MEMO_ENTRIES = 8 };

/* A input slot's traits (cgr__lane, cgr_batch.slot_traits). */
enum {
  CGR__INPUT_PER_TOKEN = 1, /* a row per token */
  CGR__INPUT_PREFIX = 2,
  CGR__INPUT_FED = 4,
  CGR__INPUT_ANY = 8 /* a ROWS or PREFIX slot */
};

typedef enum cgr__given {
  CGR__GIVEN_NONE = 0,
  CGR__GIVEN_INPUT,
  CGR__GIVEN_UNCHANGED,
  CGR__GIVEN_GATHER,
  CGR__GIVEN_FEEDBACK
} cgr__given;

typedef struct cgr__slot_input {
  cgr_source source;
  /* Feedback: every row continues the same row (prev_rows[j] == j), so
   * nothing is copied (cgr_batch_feedback works it out). */
  uint32_t in_place;
  const void *data;
  size_t bytes;
  const void *gather_src;
  const int32_t *gather_index;
  const int32_t *prev_rows; /* feedback: host, batch entries */
  const void *new_rows;     /* feedback: host, one row per -1 */
} cgr__slot_input;

/* cgr_batch.open: CGR__BATCH_OPEN out of validation mode, where a good
 * input call checks that one field for both (batch.c). */
enum { CGR__BATCH_OPEN = 1, CGR__BATCH_OPEN_VALIDATED = 2 };

struct cgr_batch {
  cgr_runtime *rt;
  uint32_t size;
  uint32_t tokens; /* tokens per request */
  uint32_t variant;
  int open; /* 0, or CGR__BATCH_OPEN[_VALIDATED] */
  /* The slots rows: by CGR__INPUT_PER_TOKEN, the batch and its tokens. */
  uint32_t rows[2];
  /* Per slot, what an input call checks in its step path (batch.c):
   * CGR__INPUT_ANY with the slot's CGR__INPUT_* traits for a ROWS or
   * PREFIX slot (0 for the others), and the bytes of a row (a PREFIX
   * slot's: of an entry). Made with the replay state. */
  uint32_t slot_count;
  unsigned char *slot_traits;
  uint64_t *slot_unit;
  cgr__slot_input *inputs; /* one per slot */
  /* Per slot, a cgr__given: how this batch gave it. Bytes apart from
   * the inputs, so that cgr_batch_begin clears them with one memset. */
  unsigned char *given;
  /* Per slot (at least CGR__MEMO_SLOTS bytes), written with `given`: the
   * cgr__given, with an input's cgr_source times CGR__SHAPE_SOURCE and
   * CGR__SHAPE_IN_PLACE for feedback whose rows all stay: what a step's
   * plan depends on in each slot, but for the data (plan_memo.c). Not
   * cleared: a complete batch rewrote every input slot's. */
  unsigned char *shape;
  uint32_t given_count; /* input slots given so far */
  /* The caller's events the streams were made to wait for at
   * cgr_batch_wait_event (at most CGR_BATCH_MAX_EVENTS). */
  int event_count;
  /* Closed by a failed cgr_replay_ahead: it was checked against the
   * staged step, which never ran (replay_pipelined.c, abandon). */
  int dropped;
};

/* One input slot of one buffer set, as a step's loops read it: what the
 * slot's description, its buffer and the set's staging give, worked out
 * once with the replay state (batch.c), in the order of replay->inputs,
 * so that a step reads one record per slot (issue 23). */
typedef struct cgr__lane {
  unsigned char *buffer; /* the slot's buffer in this set */
  unsigned char *staged; /* its region of this set's staging */
  uint64_t unit;         /* a row's bytes (a PREFIX slot: an entry's) */
  uint64_t pad_word;     /* a ROWS slot's pad value, as a FILL word */
  uint32_t slot;         /* its index in cap->slots and in a batch */
  uint32_t row_elems;    /* elements per row */
  uint8_t width;         /* an element's bytes */
  uint8_t traits;        /* the slot's CGR__INPUT_* */
} cgr__lane;

typedef struct cgr__set {
  cgr__event *loaded;       /* the side stream's copy into this set ended */
  cgr__event *graph_done;   /* the graph that last read this set ended */
  cgr__event *staging_free; /* the copy that last read this staging ended */
  /* The event to wait for before the host rewrites this set's staging:
   * staging_free, or graph_done of the other set after a pipelined graph
   * there read it (replay_pipelined.c). */
  cgr__event *staging_reader;
  unsigned char *staging; /* pinned: host sources of this set's steps */
  int32_t *feed_index;    /* pinned: feedback gather indices, per slot */
  /* Per slot, in the slot's rows (a row per token for a slot scaled by
   * token): rows at and past dirty_end hold padding; loaded_size is the
   * live rows the slot was last loaded with (0: unknown). */
  uint32_t *dirty_end;
  uint32_t *loaded_size;
  /* Per input slot: what dirty_end and loaded_size become when the step
   * a plan wrote them for is launched (cgr__replay_commit swaps them in);
   * nothing else reads them. */
  uint32_t *next_dirty;
  uint32_t *next_loaded;
  /* Per slot: the live and padded rows of the full padded image (live
   * rows and padding up to the key's rows) staging holds for the in-graph
   * mode; image_size 0 when another mode has since staged only live rows
   * there. */
  uint32_t *image_size;
  uint32_t *image_padded;
  /* Per input slot, in the order of replay->inputs. */
  cgr__lane *lanes;
  /* The plans of this set's recent steps (CGR__MEMO_ENTRIES, used in
   * turn from memo_next), or NULL where the memo is off (plan_memo.c). */
  struct cgr__plan_memo *memo;
  uint32_t memo_next;
  int memo_last; /* the entry of the set's last step, or -1 */
  /* The bytes every input slot's buffer of this set spans, for the
   * largest key: where every destination of a step's plan lies. */
  uint64_t dst_low, dst_high;
} cgr__set;

typedef struct cgr__replay {
  cgr_batch batch;
  /* A batcher's engine thread owns the runtime (replay/batcher.c): one
   * at a time. */
  int has_batcher;
  uint64_t next_step;
  cgr_replay_mode mode;
  cgr__set sets[CGR__SETS];
  /* The input slots (ROWS, PREFIX) and the fed ones among them, in slot
   * order: the step's loops walk these, not every slot. */
  uint32_t *inputs;
  uint32_t input_count;
  uint32_t *fed_inputs;
  uint32_t fed_count;
  /* cgr__replay_plan's lists of lanes in the two-part modes, made once:
   * the lanes of slots no feed writes (free_count of them), which need
   * not wait for the previous graph unless a batch gives one a gather or
   * a device source; and the fed lanes (late_count), which must, after
   * which a step appends the free lanes its batch made late. */
  uint32_t *free_lanes, *late_lanes;
  uint32_t free_count, late_count;
  uint32_t *moving_lanes;   /* a step's cgr__load.moving, input_count long */
  uint64_t *staging_offset; /* per slot, into each set's staging */
  uint64_t staging_bytes;
  int32_t *zero_index; /* device: zeros, for PREFIX padding from the device */
  uint64_t constant_slots; /* never copied: counted as skipped each step */
  cgr__copy_plan plan;
  cgr_replay_stats stats[CGR_REPLAY_PIPELINED + 1];
  /* CGR_REPLAY_PIPELINED: the staged step (step next_step), loaded or
   * being loaded into set next_step mod 2, waiting for its launch. */
  struct {
    int active;
    uint32_t batch, padded, tokens, variant;
    size_t key;
  } staged;
  /* The last eager step: its buffers hold its outputs until the next
   * replay. */
  int eager_live;
  uint64_t eager_step;
  cgr__eager eager;
  /* Pinned: an eager feedback step's indices and new rows, grown only
   * (replay.c, eager_feed_room). */
  unsigned char *eager_feed;
  uint64_t eager_feed_capacity;
  /* The last ticket issued for each set, and for an eager step (step
   * UINT64_MAX: none yet): every ticket whose outputs are readable is one
   * of them, so cgr_output checks those field by field. */
  cgr_ticket issued[CGR__SETS];
  cgr_ticket issued_eager;
  /* Per set: a failed step whose graph may have run there; tickets of the
   * set's steps before it have expired (their outputs may be its). */
  uint64_t outputs_lost[CGR__SETS];
  /* And their keys (cgr_ticket_key). */
  cgr_key issued_key[CGR__SETS];
  cgr_key issued_eager_key;
  /* Feedback: some slot is fed; the step whose graph last fed (its outputs
   * wait in its set's OUTPUT slots), and its batch size. */
  int has_feeds;
  uint64_t fed_step; /* UINT64_MAX: no graph step to continue from */
  uint32_t fed_batch;
  uint32_t fed_tokens;
  /* Tests only: skip the side stream's wait for the graph that last read
   * the set, to prove the protocol test can fail. */
  int test_drop_set_wait;
} cgr__replay;

/* What one step will do to one buffer set, worked out before anything is
 * launched, so a failure can leave the set's state as it was. */
typedef struct cgr__load {
  int set;
  uint32_t batch;
  uint32_t padded;
  uint32_t tokens; /* tokens per request */
  size_t key;      /* the index of the graphs' key (capture.h) */
  /* The plan's first free_ops operations touch nothing the previous
   * step's graph writes; the rest must run after it (replay.h). */
  size_t free_ops;
  /* The host waited for the set's staging (cgr__replay_staging_write);
   * the caller sets it when it waited itself. */
  int staging_ready;
  /* Both parts non-empty, in the double-buffered or pipelined mode: the
   * plan split at free_ops into two finished views. */
  int split;
  cgr__copy_plan head, tail;
  uint64_t skipped;
  /* The step's finished plan: replay->plan, or a plan the set's memo
   * remembered (plan_memo.c). */
  const cgr__copy_plan *plan;
  /* Every lane took plan_lanes's usual path, or moves (below): the plan
   * may be memoized. */
  int memo_ok;
  /* The lanes of fed ROWS slots whose rows move (feedback not in place),
   * planned after every other lane, so that a remembered plan of the
   * others can take them on (plan_memo.c). */
  const uint32_t *moving;
  uint32_t moving_count;
} cgr__load;

/* One remembered plan (plan_memo.c): the shape it was made for, the
 * finished plan and the state it leads to, and where a step's data goes:
 * a host source's rows and nothing else staged (`staged`, the usual case:
 * the slot's rows into its staging), or per lane (`patches`) staged
 * (STAGE, with `fill` bytes of padding after it in the naive mode), the
 * source of operation copy_op (SRC, pinned), the FILL word of operation
 * fill_op (WORD, a PREFIX slot's last entry). */
enum { CGR__PATCH_STAGE = 1, CGR__PATCH_SRC = 2, CGR__PATCH_WORD = 4 };
typedef struct cgr__memo_patch {
  uint32_t lane;
  uint32_t flags;
  uint32_t copy_op, fill_op;
  uint64_t fill;
} cgr__memo_patch;
typedef struct cgr__memo_stage {
  unsigned char *staged;
  uint32_t slot;
} cgr__memo_stage;

typedef struct cgr__plan_memo {
  int valid;
  /* The entries of the set's steps after this one's, the latest first,
   * or -1. */
  int follow[2];
  cgr_replay_mode mode;
  uint32_t batch, tokens, padded;
  unsigned char shape[CGR__MEMO_SLOTS];
  uint32_t dirty[CGR__MEMO_SLOTS];
  /* The finished plan in memory of its own, which a step of this shape
   * launches in place (cgr__load.plan), and the load's counts. */
  cgr__copy_plan plan;
  size_t free_ops;
  uint64_t skipped;
  int split, staging;
  cgr__copy_plan head, tail;
  uint32_t next_dirty[CGR__MEMO_SLOTS], next_loaded[CGR__MEMO_SLOTS];
  cgr__memo_stage *staged;
  cgr__memo_patch *patches;
  uint32_t staged_count, patch_count;
  /* The lanes whose rows moved: the plan above ends before them (count,
   * tiles, bytes and skipped as they were then) and is not finished; each
   * step plans them anew and finishes (cgr__load.moving). */
  uint32_t *moving;
  uint32_t moving_count;
} cgr__plan_memo;

/* The index of a batch's key in cap->keys (its bucket, tokens, variant). */
static inline size_t cgr__replay_batch_key(const cgr__capture *cap,
                                           const cgr_batch *batch) {
  return cgr__key_index(cap, cap->bucket_of[batch->size],
                        (size_t)cgr__token_index(cap, batch->tokens),
                        batch->variant);
}

/* A load of `batch` into `set`, before planning. Only the fields a plan
 * reads are set: head and tail stay unwritten until a split plan's finish
 * makes them (zeroing two plans would cost more than the rest). */
static inline void cgr__load_init(cgr__load *l, const cgr__capture *cap,
                                  const cgr_batch *batch, int set) {
  l->set = set;
  l->batch = batch->size;
  l->padded = cap->sizes[cap->bucket_of[batch->size]];
  l->tokens = batch->tokens;
  l->key = cgr__replay_batch_key(cap, batch);
  l->free_ops = 0;
  l->staging_ready = 0;
  l->split = 0;
  l->skipped = 0;
}

/* plan.c, shared with replay_pipelined.c. */
/* The plan of one step into replay->plan: the free part first (l->free_ops
 * operations), then the late part; split into l->head and l->tail when
 * both are non-empty in the double-buffered and pipelined modes. */
cgr_status cgr__replay_plan(cgr_runtime *rt, cgr__replay *replay,
                            const cgr__capture *cap, const cgr_batch *batch,
                            cgr__load *l);
/* The set's state as the step just launched left it: the arrays its
 * plan wrote beside the set's (cgr__set.next_dirty) swapped in. */
static inline void cgr__set_commit(cgr__set *set) {
  uint32_t *swap = set->dirty_end;
  set->dirty_end = set->next_dirty;
  set->next_dirty = swap;
  swap = set->loaded_size;
  set->loaded_size = set->next_loaded;
  set->next_loaded = swap;
}
/* After a successful launch: what the set now holds (the state the
 * plan wrote, cgr__set.next_dirty). */
void cgr__replay_commit(cgr__replay *replay, const cgr__load *l);
/* After a failure that may have loaded part of the set: the worst. */
void cgr__replay_forget(const cgr__capture *cap, cgr__replay *replay,
                        const cgr__load *l);
/* plan_memo.c: a step's plan from the plans of the set's recent steps.
 * Made with the replay state out of validation mode, for a runtime of at
 * most CGR__MEMO_SLOTS slots (else the sets' memo stays NULL). */
cgr_status cgr__plan_memo_create(cgr__replay *replay);
void cgr__plan_memo_destroy(cgr__replay *replay);
/* 1 when the set remembers a plan made for this step's shape (the rows,
 * the mode, each slot's shape, the set's padding state): replay->plan and
 * l are then as cgr__replay_plan would have made them, this step's data
 * staged and read (*status says whether that worked). 2 when it does but
 * for the lanes whose rows move, which l->moving lists: the caller plans
 * them and finishes. 0: plan it all. */
int cgr__plan_memo_use(cgr_runtime *rt, cgr__replay *replay,
                       const cgr_batch *batch, cgr__load *l,
                       cgr_status *status);
/* The plan before its moving lanes (cgr__load.moving): what a plan
 * with them remembers. */
typedef struct cgr__plan_mark {
  size_t count;
  uint64_t tile_count, total_bytes, skipped;
} cgr__plan_mark;
/* After cgr__replay_plan planned and finished a plan the memo can redo
 * (l->memo_ok, no caller memory to check): remembers it, up to `mark`
 * when lanes moved; 0 when it could not (the set's last step is then
 * none the memo knows). */
int cgr__plan_memo_keep(cgr__replay *replay, const cgr_batch *batch,
                        const cgr__load *l, uint64_t skipped_before,
                        const cgr__plan_mark *mark);
/* The set's staging images or state changed behind the plans it
 * remembers: forgets them. */
static inline void cgr__plan_memo_forget(cgr__set *set) {
  if (set->memo == NULL)
    return;
  for (int e = 0; e < CGR__MEMO_ENTRIES; ++e)
    set->memo[e].valid = 0;
  set->memo_last = -1;
}

/* A graph of set k (of `padded` requests, q tokens) ran or may have: its
 * feed copies wrote the other set's fed inputs. */
void cgr__replay_mark_fed(const cgr__capture *cap, cgr__replay *replay, int k,
                          uint32_t padded, uint32_t tokens);
/* Lazy capture of a key, without a lock in the steady state. */
cgr_status cgr__replay_ensure_captured(cgr_runtime *rt, const cgr__capture *cap,
                                       size_t key);

/* Waits, on the host, until nothing still reads the set's staging
 * (set->staging_reader): no wait in the steady state. */
cgr_status cgr__replay_staging_ready(cgr_runtime *rt, cgr__set *set);
/* Before the plan's first write to the set's staging (a pageable source,
 * feedback's indices and new rows): waits, once per step, until nothing
 * reads it (cgr__replay_staging_ready). */
static inline cgr_status
cgr__replay_staging_write(cgr_runtime *rt, cgr__set *set, cgr__load *l) {
  if (l->staging_ready)
    return CGR_OK;
  l->staging_ready = 1;
  return cgr__replay_staging_ready(rt, set);
}
/* CGR_OK when every input slot of the batch was given; the message names
 * the first that was not (as `func`). */
cgr_status cgr__replay_batch_complete(cgr_runtime *rt, const cgr__capture *cap,
                                      const cgr__replay *replay,
                                      const cgr_batch *batch, const char *func);
/* 1 for the statuses of a caller's mistake, found before anything was
 * enqueued (cgr_replay, cgr_replay_ahead): nothing to drain or forget. */
static inline int cgr__replay_refused(cgr_status status) {
  return status == CGR_E_INVALID_ARGUMENT || status == CGR_E_INVALID_STATE ||
         status == CGR_E_UNSUPPORTED || status == CGR_E_BATCH_TOO_LARGE;
}
/* The step the open batch will run: next_step, or the one after a staged
 * step (CGR_REPLAY_PIPELINED). */
static inline uint64_t cgr__replay_batch_step(const cgr__replay *replay) {
  return replay->next_step + (replay->staged.active ? 1 : 0);
}
/* "the batch is not open (cgr_batch_begin)", or why a failed launch
 * closed it, as `func`'s CGR_E_INVALID_STATE. */
cgr_status cgr__batch_not_open(cgr_runtime *rt, const cgr_batch *batch,
                               const char *func);
/* Records a successful step's ticket and key for the ticket checks. */
void cgr__replay_issue(cgr__replay *replay, const cgr_ticket *ticket,
                       uint32_t tokens, uint32_t variant);

/* plan.c: a fed slot's rows of this step (cgr_batch_feedback) into the
 * plan, `rows` of them; `in_place` rows that continue the same row cost
 * nothing (a graph step's), otherwise every continued row is gathered. */
cgr_status cgr__plan_feedback(cgr_runtime *rt, cgr__replay *replay,
                              const cgr__capture *cap, size_t index,
                              const cgr__slot_input *input, unsigned char *dst,
                              int32_t *indices, unsigned char *fresh,
                              uint32_t rows, int in_place);
/* replay.c: a step's cost into the current mode's stats (`started` on
 * the host clock, in µs). */
void cgr__replay_account(cgr__replay *replay, uint64_t ops, uint64_t bytes,
                         uint64_t skipped, double started);
/* replay_in_graph.c: a complete, closed batch's step in
 * CGR_REPLAY_IN_GRAPH; issues its ticket. */
cgr_status cgr__replay_in_graph(cgr_runtime *rt, cgr__replay *replay,
                                cgr__capture *cap, cgr_batch *batch,
                                cgr_ticket *ticket, double started);
/* replay_eager.c: a batch's step run eagerly (the batch is complete and
 * closed); issues its ticket. */
cgr_status cgr__replay_eager(cgr_runtime *rt, cgr__replay *replay,
                             const cgr__capture *cap, cgr_batch *batch,
                             cgr_ticket *ticket, double started);

/* The runtime's replay state, made on first use after a capture. */
cgr_status cgr__replay_state(cgr_runtime *rt, cgr__replay **out);

/* Element `index` of a host-visible array of `width` bytes (1, 2, 4 or
 * 8), in its low bytes. */
static inline uint64_t cgr__element(const void *data, uint64_t index,
                                    uint32_t width) {
  uint64_t value = 0;
  memcpy(&value, (const unsigned char *)data + index * width, width);
  return value;
}

/* 1 when the slot is loaded per step (ROWS, PREFIX). */
static inline int cgr__is_input(const cgr__slot *slot) {
  return slot->desc.kind == CGR_SLOT_ROWS || slot->desc.kind == CGR_SLOT_PREFIX;
}
/* The byte count a ROWS/PREFIX slot's input must have for a batch of q
 * tokens per request (cgr__slot_bytes_for, inline for the step's path). */
static inline uint64_t cgr__input_bytes(const cgr__slot *slot,
                                        uint32_t batch_size, uint32_t q) {
  if (slot->desc.kind == CGR_SLOT_PREFIX)
    return ((uint64_t)batch_size + 1) * slot->desc.elem_size;
  return cgr__slot_rows(slot, batch_size, q) * slot->row_bytes;
}

/* ---- staging a host source (the step path, inline) ---------------------- */

/* A host source into staging. A decode step's rows are often a few dozen
 * bytes: up to 128 go as two overlapping fixed-size moves (or bytes, under
 * 4), which the compiler inlines, instead of a call into the library's
 * dispatch. */
static inline void cgr__stage_copy(unsigned char *dst, const void *src,
                                   size_t bytes) {
  const unsigned char *from = src;
  if (bytes < 16) {
    if (bytes >= 8) {
      memcpy(dst, from, 8);
      memcpy(dst + bytes - 8, from + bytes - 8, 8);
    } else if (bytes >= 4) {
      memcpy(dst, from, 4);
      memcpy(dst + bytes - 4, from + bytes - 4, 4);
    } else {
      for (size_t b = 0; b < bytes; ++b)
        dst[b] = from[b];
    }
  } else if (bytes <= 32) {
    memcpy(dst, from, 16);
    memcpy(dst + bytes - 16, from + bytes - 16, 16);
  } else if (bytes > 32 && bytes <= 64) {
    memcpy(dst, from, 32);
    memcpy(dst + bytes - 32, from + bytes - 32, 32);
  } else if (bytes > 64 && bytes <= 128) {
    memcpy(dst, from, 64);
    memcpy(dst + bytes - 64, from + bytes - 64, 64);
  } else {
    memcpy(dst, from, bytes);
  }
}

/* `bytes` of padding into staging: a FILL word (cgr__copy_fill_word), of
 * elements of `width` bytes, from a position that is a multiple of
 * `width`, so that the word's bytes repeat from there in order. */
static inline void cgr__stage_fill(unsigned char *dst, uint64_t word,
                                   uint32_t width, uint64_t bytes) {
  uint64_t at = 0;
  for (; at + 8 <= bytes; at += 8)
    memcpy(dst + at, &word, 8); /* little-endian */
  for (; at < bytes; at += width)
    memcpy(dst + at, &word, width);
}

/* A PREFIX slot's entry `live` of host-visible data, as a FILL word: what
 * its padded entries repeat. */
static inline uint64_t cgr__prefix_word(const void *data, uint32_t live,
                                        uint32_t width) {
  const unsigned char *at =
      (const unsigned char *)data + (uint64_t)live * width;
  uint16_t half;
  uint32_t word;
  uint64_t wide;
  switch (width) {
  case 1:
    return (uint64_t)at[0] * UINT64_C(0x0101010101010101);
  case 2:
    memcpy(&half, at, 2);
    return (uint64_t)half * UINT64_C(0x0001000100010001);
  case 4:
    memcpy(&word, at, 4);
    return (uint64_t)word * UINT64_C(0x0000000100000001);
  default:
    memcpy(&wide, at, 8);
    return wide;
  }
}

#endif /* CGR_REPLAY_REPLAY_H */
