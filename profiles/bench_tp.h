/*
 * bench_tp's two halves: the groups and their steps (bench_tp_group.c),
 * and the runs, the table and the JSON lines (bench_tp.c). See the top of
 * bench_tp.c for what it measures.
 */
#ifndef CGR_PROFILES_BENCH_TP_H
#define CGR_PROFILES_BENCH_TP_H

#include <stdint.h>

#include "cgr/cgr.h"

/* The synthetic decode step: `layers` layers of a row-parallel MLP (each
 * rank holds mlp / ranks of its columns), the embedding of `vocab` tokens
 * before them and an argmax over the hidden state after them. */
typedef struct tp_shape {
  int32_t layers, hidden, mlp, vocab;
  int ranks;
  uint32_t sizes[8]; /* the batch sizes measured, ascending: the buckets */
  size_t size_count;
} tp_shape;

/* What an outside step's next cgr step runs (outside.phase). */
typedef enum tp_phase {
  TP_PHASE_LAYER,       /* a graph piece: one layer's compute */
  TP_PHASE_REDUCE,      /* eager: the layer's all-reduce */
  TP_PHASE_REDUCE_LAST, /* eager: the last all-reduce, the argmax, and the
                           next step's embedding */
  TP_PHASE_EMBED        /* eager: the first step's embedding */
} tp_phase;

/* Each rank's weights, and for the outside group the activations its
 * pieces hand each other (device memory of the rank's runtime). */
typedef struct tp_rank {
  float *table, *norm, *up, *down;
  float *hidden, *partial; /* outside only */
} tp_rank;

/* One group: "inside" (one graph per step, all-reduces captured in it) or
 * "outside" (a graph per layer's compute, the all-reduces eager). */
typedef struct tp_group {
  const char *name;
  int outside;
  const tp_shape *shape;
  cgr_group *group;
  cgr_slot tok, next;
  tp_rank rank[CGR_GROUP_MAX_RANKS];
  tp_phase phase;     /* outside: read by the step at each eager run */
  uint32_t loaded[2]; /* outside: the batch size each set's tok holds */
  uint64_t next_step; /* outside: the group's next step number */
} tp_group;

/* Creates the group, its weights (the same on both groups, rank by rank)
 * and captures its step. Returns 0, or -1 after a message on stderr, or
 * TP_NOT_RUN when this build or machine cannot make a group (a CUDA build
 * whose NCCL cannot be loaded); the group is then for tp_group_close all
 * the same. */
enum { TP_NOT_RUN = -77 };
int tp_group_open(tp_group *g, const tp_shape *shape, cgr_backend_kind backend,
                  int outside);
void tp_group_close(tp_group *g);

/* The token of row `row` in step `step`. */
int32_t tp_token(const tp_shape *shape, long step, uint32_t row);

/* Inside: one step of `batch` rows, the tokens of `step`. */
int tp_inside_step(tp_group *g, uint32_t batch, long step, cgr_ticket *ticket);

/* Outside: the embedding of step 0's tokens, before the first step. */
int tp_outside_prime(tp_group *g, uint32_t batch);

/* Outside: one step: per layer a graph replay of its compute, then an
 * eager replay of its all-reduce; the last also embeds the tokens of
 * step + 1. *ticket is the last eager step's, whose `next` output holds
 * the step's argmax. */
int tp_outside_step(tp_group *g, uint32_t batch, long step, cgr_ticket *ticket);

/* Rank 0's `next` output of the ticket's step, `batch` ids, into out. */
int tp_read_next(tp_group *g, const cgr_ticket *ticket, uint32_t batch,
                 int32_t *out);

/* "bench_tp: WHAT failed: STATUS: the group's message"; returns -1. */
int tp_fail_group(cgr_group *group, cgr_status status, const char *what);

#define TP_CHECK_GROUP(group, call, what)                                      \
  do {                                                                         \
    cgr_status tp_status_ = (call);                                            \
    if (tp_status_ != CGR_OK)                                                  \
      return tp_fail_group((group), tp_status_, (what));                       \
  } while (0)

#endif /* CGR_PROFILES_BENCH_TP_H */
