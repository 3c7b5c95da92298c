/*
 * capture/: buckets, keys, slots, the scratch arena, the step, and one
 * graph per (key, buffer set), a key being (bucket, tokens per request,
 * variant). Internal; the public face is in cgr.h.
 *
 * The state hangs off the runtime (rt->layers[CGR__LAYER_CAPTURE]) and is
 * made on first use. Everything here reaches the device through the backend
 * table only.
 */
#ifndef CGR_CAPTURE_CAPTURE_H
#define CGR_CAPTURE_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "cgr/cgr.h"
#include "kernels/copy_plan.h"
#include "runtime/backend.h"
#include "runtime/runtime.h"

#define CGR__SLOT_NAME_MAX 63

/* Buffer sets: each has its own slot buffers and its own graph per bucket,
 * so one step's inputs load while the other set's graph replays; step k
 * uses set k % CGR__SETS (cgr_ticket.set). */
#define CGR__SETS 2

typedef struct cgr__slot {
  char name[CGR__SLOT_NAME_MAX + 1];
  cgr_slot_desc desc; /* desc.name points at name */
  uint64_t row_bytes; /* elem_size * row_elems */
  /* ROWS, PREFIX, OUTPUT: one buffer per set, sized for the largest key.
   * CONSTANT: one buffer per bucket and tokens value (constant_buffers,
   * cgr__constant_index), shared by both sets and every variant: it is
   * written at capture and only read after. */
  void *buffers[CGR__SETS];
  void **constant_buffers;
  uint64_t bytes; /* device bytes this slot holds in all */
  /* ROWS input fed by this OUTPUT slot (cgr_slot_feed); -1 when none. */
  int32_t fed_by;
} cgr__slot;

/* The graphs of one key. */
typedef struct cgr__keyed {
  cgr__graph *graphs[CGR__SETS]; /* kept for cgr_graph_dump */
  cgr__graph_exec *execs[CGR__SETS];
  /* The in-graph mode's variants: the input copy is their first node.
   * Captured on first use. */
  cgr__graph *in_graphs[CGR__SETS];
  cgr__graph_exec *in_graph_execs[CGR__SETS];
  /* The pipelined mode's variants, [set][full]: the step on `set` with
   * the load of the other set in a branch beside it (capture.c,
   * cgr__capture_pipelined). Captured on first use. */
  cgr__graph *pipe_graphs[CGR__SETS][2];
  cgr__graph_exec *pipe_execs[CGR__SETS][2];
  cgr_key_stats stats;
  /* The collectives each set's captured run called (cgr_step's), for a
   * group to compare its ranks. */
  uint64_t collective_sig[CGR__SETS];
  uint32_t collectives[CGR__SETS];
} cgr__keyed;

typedef enum cgr__scratch_mode {
  /* Carve from the shared arena: warm-up and capture. */
  CGR__SCRATCH_ARENA,
  /* One device allocation per request, freed after the run: the sizing
   * run, and eager runs, whose needs the arena was not sized for. */
  CGR__SCRATCH_OWN
} cgr__scratch_mode;

/*
 * Device memory every eager run reuses, grown only when a run needs more:
 * an eager step allocates nothing after the first of its size. That
 * matters on CUDA, where cudaFree waits for the whole device, so an eager
 * lane that allocated and freed per step would serialize every other lane.
 */
typedef struct cgr__eager_cache {
  void **slot_buffers; /* per slot; the eager run's slot addresses */
  uint64_t *slot_capacity;
  size_t slot_count;
  void **scratch; /* the run's k-th scratch request */
  uint64_t *scratch_capacity;
  size_t scratch_count;
  uint32_t constants_batch;  /* the batch the constants hold; 0: none */
  uint32_t constants_tokens; /* and its tokens per request */
} cgr__eager_cache;

/* Frees the cache's memory (the runtime's streams are drained). */
void cgr__eager_cache_free(cgr_runtime *rt, cgr__eager_cache *cache);
/* The cache's scratch buffer `index`, at least `bytes` long (grown, by a
 * free and a new allocation, only when it is shorter). */
cgr_status cgr__eager_scratch(cgr_runtime *rt, cgr__eager_cache *cache,
                              size_t index, uint64_t bytes, void **out);

struct cgr_step {
  cgr_runtime *rt;
  uint32_t padded_batch;
  uint32_t tokens; /* tokens per request of the run's key */
  uint32_t variant;
  int set;
  int capturing;
  void *const *slot_addresses; /* one per slot, for this run */
  size_t slot_count;
  cgr__scratch_mode scratch_mode;
  uint64_t scratch_used; /* arena offset / bytes the requests would take */
  void **own;            /* CGR__SCRATCH_OWN allocations */
  size_t own_count, own_capacity;
  /* Eager runs: OWN scratch comes from (and stays in) this cache. */
  cgr__eager_cache *eager_cache;
  /* The first failure of a cgr_step_* call in this run: a step that
   * ignores it and returns CGR_OK still fails (cgr__step_run), so a
   * capture never silently lacks work. */
  cgr_status failed;
  char failed_message[CGR__ERROR_MESSAGE_SIZE]; /* what that call said */
  /* The collectives this run called, in order: how many, and a hash over
   * each one's kind, count, dtype, op and root (0 when none). */
  uint64_t collective_sig;
  uint32_t collectives;
};

typedef struct cgr__capture {
  uint32_t *sizes; /* bucket sizes, ascending */
  size_t bucket_count;
  uint16_t *bucket_of; /* batch -> bucket index, for 1..largest */
  /* Tokens per request (rt->config's list) and variants; token_of maps a
   * value to its index, -1 for one not in the list. */
  const uint32_t *tokens;
  size_t token_count;
  int8_t token_of[CGR_MAX_TOKENS_PER_REQUEST + 1];
  uint32_t variant_count;
  /* One per key, at cgr__key_index: bucket_count * token_count *
   * variant_count. */
  cgr__keyed *keys;
  size_t key_count;

  cgr__slot *slots;
  size_t slot_count, slot_capacity;

  cgr_step_fn step; /* registered by cgr_capture; NULL before */
  void *user;

  void *arena;          /* the allocation */
  void *arena_base;     /* its aligned start, where offsets count from */
  uint64_t arena_bytes; /* usable from arena_base */
  uint64_t arena_peak;
  uint64_t slot_bytes;
  uint64_t eager_runs;
  int eager_logged;
  cgr__eager_cache eager_cache;
  /* 1 once a replay has loaded a buffer set. From then on a capture
   * (lazy, or cgr_capture_bucket) runs no warm-up: the step has already
   * run (sizing the arena at registration, at the least), and a warm-up
   * in the sets would overwrite outputs a caller may still read and rows
   * a fed slot is about to continue. */
  int sets_live;
  /* CGR_REPLAY_PIPELINED: per buffer set, the pinned plan areas (free,
   * late; kernels/fused_copy.h) that the loads into that set read when
   * they run, inside graphs of the other set; made with the fork and join
   * events of those captures at the first pipelined capture, and kept
   * while any graph may read them. */
  void *pipe_areas[CGR__SETS][2];
  size_t pipe_capacity; /* descriptors per area: the largest plan's */
  uint32_t pipe_grid;   /* blocks of each load, fixed at capture */
  cgr__event *pipe_fork, *pipe_join;
  /* Tests only: capture the late load in the branch, unordered with the
   * step, to prove the pipelined protocol test can fail. */
  int test_pipe_unordered;
} cgr__capture;

/* The runtime's capture state, made on first use (CGR_E_OUT_OF_MEMORY). */
cgr_status cgr__capture_state(cgr_runtime *rt, cgr__capture **out);

/* The largest bucket. */
static inline uint32_t cgr__largest_bucket(const cgr__capture *cap) {
  return cap->sizes[cap->bucket_count - 1];
}

/* The largest tokens per request. */
static inline uint32_t cgr__largest_tokens(const cgr__capture *cap) {
  return cap->tokens[cap->token_count - 1];
}

/* The index of bucket `padded_batch`, or -1 when it is not a bucket. */
long cgr__bucket_index(const cgr__capture *cap, uint32_t padded_batch);

/* The index of tokens-per-request value q, or -1 when it is not one. */
static inline long cgr__token_index(const cgr__capture *cap, uint32_t q) {
  return q >= 1 && q <= CGR_MAX_TOKENS_PER_REQUEST ? cap->token_of[q] : -1;
}

/* A key's place in cap->keys, from the indices of its parts. */
static inline size_t cgr__key_index(const cgr__capture *cap, size_t bucket,
                                    size_t token, uint32_t variant) {
  return (bucket * cap->token_count + token) * cap->variant_count + variant;
}

/* A CONSTANT slot's buffer of (bucket, tokens value): variants share it. */
static inline size_t cgr__constant_index(const cgr__capture *cap,
                                         size_t key_index) {
  return key_index / cap->variant_count;
}

/* The key at an index of cap->keys. */
static inline cgr_key cgr__key_at(const cgr__capture *cap, size_t index) {
  size_t per_bucket = cap->token_count * cap->variant_count;
  cgr_key key = {cap->sizes[index / per_bucket],
                 cap->tokens[index % per_bucket / cap->variant_count],
                 (uint32_t)(index % cap->variant_count)};
  return key;
}

/* The index of `key` in cap->keys, or CGR_E_INVALID_ARGUMENT with a
 * message naming the field that is not the runtime's (as `func`). */
cgr_status cgr__key_find(cgr_runtime *rt, const cgr__capture *cap,
                         const cgr_key *key, const char *func, size_t *index);

/* "1, 4" : the tokens-per-request values, for messages. */
void cgr__tokens_list(const cgr__capture *cap, char *out, size_t size);

/* Rows a slot has for `requests` requests of q tokens: requests, or
 * requests * q for a slot scaled by token. */
static inline uint64_t cgr__slot_rows(const cgr__slot *slot, uint32_t requests,
                                      uint32_t q) {
  return slot->desc.scale == CGR_SCALE_TOKEN ? (uint64_t)requests * q
                                             : requests;
}

/* buckets.c */
cgr_status cgr__buckets_build(cgr_runtime *rt, cgr__capture *cap);
void cgr__buckets_free(cgr__capture *cap);

/* slots.c */
void cgr__slots_free(cgr_runtime *rt, cgr__capture *cap);
/* Elements of a CONSTANT slot for a padded batch of q tokens per request. */
uint64_t cgr__constant_elems(const cgr__slot *slot, uint32_t padded_batch,
                             uint32_t q);
/* Writes a CONSTANT slot's content for a key (its variant is not read)
 * into `device` (sized for it), through a host image; synchronous. */
cgr_status cgr__constant_upload(cgr_runtime *rt, const cgr__slot *slot,
                                const cgr_key *key, void *device);
/* Bytes a ROWS / OUTPUT / PREFIX / CONSTANT slot needs for `requests`
 * requests of q tokens each. */
uint64_t cgr__slot_bytes_for(const cgr__slot *slot, uint32_t requests,
                             uint32_t q);

/* step.c: running the user's step. */
void cgr__step_init(cgr_step *step, cgr_runtime *rt, const cgr_key *key,
                    int set, void *const *slot_addresses, size_t slot_count,
                    cgr__scratch_mode mode);
/* Runs the user's step once; the message of a failure is in rt->error. */
cgr_status cgr__step_run(cgr__capture *cap, cgr_step *step);
/* Frees CGR__SCRATCH_OWN allocations; the caller has synchronized. */
void cgr__step_release(cgr_step *step);
/* The allocation an arena of `used` usable bytes needs (alignment slack
 * included), and the aligned base inside such an allocation. */
uint64_t cgr__arena_bytes_for(uint64_t used);
void *cgr__arena_base(void *allocation);

/*
 * The in-graph form of a captured (key, set): `prologue` (a finished plan
 * that loads the set's inputs from pinned staging) captured as the
 * graph's first node, then the step. Captured once and kept; later calls
 * return the same exec (the prologue's addresses must not change).
 */
cgr_status cgr__capture_in_graph(cgr_runtime *rt, size_t key, int set,
                                 const cgr__copy_plan *prologue,
                                 cgr__graph_exec **out);

/*
 * The pipelined form of a captured (key, set): the step on `set` (and its
 * feed copies) on the main stream, and beside it, forked onto the side
 * stream, a load that runs the plan in cap->pipe_areas[1 - set][0];
 * `full` adds, after both, a load of the plan in pipe_areas[1 - set][1]
 * (the part that must follow the step: replay.h). Captured once per
 * (key, set, full) and kept. Makes the areas on first use.
 */
cgr_status cgr__capture_pipelined(cgr_runtime *rt, size_t key, int set,
                                  int full, cgr__graph_exec **out);

/* The pipelined mode's plan areas and events, made where they are not yet
 * (CGR_E_OUT_OF_MEMORY, or the status of a failed allocation). */
cgr_status cgr__pipe_areas(cgr_runtime *rt, cgr__capture *cap);

/* Captures key `index` (both sets) where it is not yet. */
cgr_status cgr__capture_key_index(cgr_runtime *rt, size_t index);

/*
 * The collectives the captured run of (key `index`, set) called: their
 * signature and number (capture.h, cgr_step). CGR_E_INVALID_ARGUMENT (not
 * a key, set not 0 or 1, NULL), CGR_E_INVALID_STATE (the key is not
 * captured).
 */
cgr_status cgr__capture_collectives(cgr_runtime *rt, size_t index, int set,
                                    uint64_t *sig, uint32_t *count);

/*
 * eager.c: a run of the step without a graph, on slot buffers and scratch
 * of the batch's own size, from the runtime's eager cache. Begin (grows
 * the slots if needed, fills constants, applies the allow_eager policy to
 * a batch over the largest bucket), write the inputs into
 * cgr__eager_slot(), run (synchronous), read the outputs, end. The outputs
 * stay until the next begin: one eager run at a time per runtime.
 */
typedef struct cgr__eager {
  uint32_t batch;
  uint32_t tokens; /* tokens per request */
  uint32_t variant;
  void *const *addresses;
  size_t slot_count;
} cgr__eager;

/* `fallback`: the run stands in for a graph (a batch over the largest
 * bucket): the allow_eager policy applies, and it is counted and logged. */
cgr_status cgr__eager_begin(cgr_runtime *rt, uint32_t batch, uint32_t tokens,
                            uint32_t variant, int fallback, cgr__eager *eager);
void *cgr__eager_slot(const cgr__eager *eager, cgr_slot slot);
cgr_status cgr__eager_run(cgr_runtime *rt, cgr__eager *eager);
void cgr__eager_end(cgr_runtime *rt, cgr__eager *eager);

#endif /* CGR_CAPTURE_CAPTURE_H */
