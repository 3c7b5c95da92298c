/*
 * The copy plan: a compact list of COPY, FILL and GATHER operations that the
 * fused copy kernel executes in one launch.
 *
 *   COPY    dst[0, bytes) <- src[0, bytes)
 *   FILL    dst[0, bytes) <- a 1, 2, 4 or 8-byte pattern repeated (padding
 *           rows); bytes must be a multiple of the pattern's size
 *   GATHER  dst row j <- src row index[j], for j in [0, rows), each row
 *           row_bytes long (the request set changed and the data is still on
 *           the device); index is int32 and lives in memory the device reads
 *
 * Sizes are 64-bit everywhere. Sources may be device memory or pinned host
 * memory (read through unified addressing). The builder validates each
 * operation as it is added and the whole plan when it is finished, and names
 * the bad operation in its message.
 *
 * The plan is cut into tiles of a fixed number of destination bytes, and
 * each tile is one unit of work (one CUDA block, one host loop iteration).
 * The cut lives here, in copy_tiles.h, and both backends use it, so a host
 * run exercises the very tiling the GPU runs.
 *
 * A plan is owned by one thread at a time.
 */
#ifndef CGR_KERNELS_COPY_PLAN_H
#define CGR_KERNELS_COPY_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/copy_tiles.h"
#include "runtime/error.h"

/* Foreign operations an owned plan lists before it checks them all. */
enum { CGR__COPY_PLAN_FOREIGN = 8 };

typedef struct cgr__copy_plan {
  cgr__copy_desc *ops; /* in the kernel's format, in the order added */
  size_t count;
  size_t capacity;
  uint64_t total_bytes; /* destination bytes over all operations */
  uint64_t tile_count;
  int finished; /* cgr__copy_plan_finish succeeded since the last change */
  /* The plan's own memory (grown by cgr__copy_plan_grow) keeps a fused
   * copy's argument header just before ops[0]: the launch writes the
   * header there and passes the arguments in place, with no copy
   * (fused_copy.c). Not in views or plans whose ops the caller set. */
  int headed;
  /* Tiles are numbered as operations are appended, as one launch from
   * the operation numbered_from on: 0, or the cut of cgr__copy_plan_cut
   * (SIZE_MAX once finish has renumbered them: a later finish does it
   * again). Finish keeps that numbering when it holds: one launch of at
   * most CGR__FUSED_COPY_LARGE operations and 2^32 tiles per part.
   * cut_tiles and cut_bytes: the tiles and bytes before the cut. */
  size_t numbered_from;
  uint64_t cut_tiles;
  uint64_t cut_bytes;
  /* Finish's overlap check works here (scratch_capacity entries, grown
   * only), so a plan reused step after step allocates nothing. */
  void *scratch;
  size_t scratch_capacity;
  /* Set by a builder whose destinations are disjoint by construction and
   * whose own reads touch none of them (the replay path, out of
   * validation mode): finish then checks only the reads of the
   * operations marked foreign (cgr__copy_plan_mark_foreign), in O(ops)
   * each, instead of sorting every range. Kept by clear. */
  int owned;
  size_t foreign[CGR__COPY_PLAN_FOREIGN];
  size_t foreign_count; /* past CGR__COPY_PLAN_FOREIGN: check everything */
  /* An owned plan's builder may bound every destination it will add in
   * [dst_low, dst_high) (the replay: one buffer set's slots), so that
   * finish passes a foreign read outside it without walking the plan;
   * dst_high 0: not bounded. Kept by clear. */
  uint64_t dst_low;
  uint64_t dst_high;
} cgr__copy_plan;

/* An empty plan; needs no cleanup until an operation is added. */
void cgr__copy_plan_init(cgr__copy_plan *plan);

/* Frees the plan's memory; the plan is empty and usable again. */
void cgr__copy_plan_release(cgr__copy_plan *plan);

/* Forgets every operation but keeps the memory (the replay path reuses one
 * plan per step without allocating). */
void cgr__copy_plan_clear(cgr__copy_plan *plan);

/* Grows the operation array (doubling, 64 at first); `func` names
 * the caller in the message. */
cgr_status cgr__copy_plan_grow(cgr__copy_plan *plan, cgr__error *err,
                               const char *func);

/* Appends a checked operation (a zero-byte one moves nothing: dropped),
 * its first tile numbered within its launch. */
static inline cgr_status cgr__copy_plan_push(cgr__copy_plan *plan,
                                             const cgr__copy_desc *desc,
                                             cgr__error *err,
                                             const char *func) {
  if (desc->bytes == 0)
    return CGR_OK;
  if (plan->count == plan->capacity) {
    cgr_status status = cgr__copy_plan_grow(plan, err, func);
    if (status != CGR_OK)
      return status;
  }
  cgr__copy_desc *op = &plan->ops[plan->count++];
  *op = *desc;
  op->tile_begin = (uint32_t)(plan->tile_count - plan->cut_tiles);
  plan->tile_count += cgr__copy_tiles_for(desc->bytes);
  plan->total_bytes += desc->bytes;
  plan->finished = 0;
  return CGR_OK;
}

/* Starts a new launch's numbering at the next operation: the cut the
 * replay will pass to cgr__copy_plan_finish_split. */
static inline void cgr__copy_plan_cut(cgr__copy_plan *plan) {
  if (plan->numbered_from != SIZE_MAX)
    plan->numbered_from = plan->count;
  plan->cut_tiles = plan->tile_count;
  plan->cut_bytes = plan->total_bytes;
}

/* In an owned plan: operation i reads caller memory (a COPY source, a
 * GATHER index), which finish checks against every destination; and
 * every operation added since the plan had `before`. */
static inline void cgr__copy_plan_mark_one_foreign(cgr__copy_plan *plan,
                                                   size_t i) {
  if (plan->foreign_count < CGR__COPY_PLAN_FOREIGN)
    plan->foreign[plan->foreign_count] = i;
  plan->foreign_count++;
}
static inline void cgr__copy_plan_mark_foreign(cgr__copy_plan *plan,
                                               size_t before) {
  for (size_t i = before; i < plan->count; ++i)
    cgr__copy_plan_mark_one_foreign(plan, i);
}

/*
 * Appending. Each returns CGR_E_INVALID_ARGUMENT naming the operation (its
 * index in the plan) and the bad field for a NULL pointer, a size whose end
 * overflows the address space, a pattern size other than 1, 2, 4 or 8, or
 * a length that is not a multiple of it, a gather index array that is not
 * 4-byte aligned; CGR_E_OUT_OF_MEMORY when the plan
 * cannot grow. A zero-byte operation (or a gather of zero rows) is checked
 * the same way and then dropped: it moves nothing and costs no tile.
 */
cgr_status cgr__copy_plan_copy_failed(cgr__copy_plan *plan, void *dst,
                                      const void *src, uint64_t bytes,
                                      cgr__error *err);
static inline cgr_status cgr__copy_plan_copy(cgr__copy_plan *plan, void *dst,
                                             const void *src, uint64_t bytes,
                                             cgr__error *err) {
  uint64_t d = (uint64_t)(uintptr_t)dst, s = (uint64_t)(uintptr_t)src;
  if (dst == NULL || src == NULL || bytes > UINT64_MAX - d ||
      bytes > UINT64_MAX - s)
    return cgr__copy_plan_copy_failed(plan, dst, src, bytes, err);
  cgr__copy_desc desc = {.dst = d,
                         .src = s,
                         .bytes = bytes,
                         .kind = CGR__COPY_OP_COPY};
  return cgr__copy_plan_push(plan, &desc, err, "cgr__copy_plan_copy");
}
cgr_status cgr__copy_plan_fill(cgr__copy_plan *plan, void *dst,
                               uint64_t pattern, unsigned pattern_size,
                               uint64_t bytes, cgr__error *err);

/* The low `pattern_size` bytes of `pattern` (1, 2, 4 or 8) repeated to 8
 * bytes in memory order (little-endian, as on x86-64, Arm64 and every
 * CUDA GPU): a FILL's source word. */
static inline uint64_t cgr__copy_fill_word(uint64_t pattern,
                                           unsigned pattern_size) {
  switch (pattern_size) {
  case 1:
    return (pattern & 0xFF) * UINT64_C(0x0101010101010101);
  case 2:
    return (pattern & 0xFFFF) * UINT64_C(0x0001000100010001);
  case 4:
    return (pattern & 0xFFFFFFFF) * UINT64_C(0x0000000100000001);
  default:
    return pattern;
  }
}

/* A COPY that cgr builds itself between its own buffers (the replay's
 * staging to a slot's buffer): neither range is NULL or wraps, so it is
 * appended as cgr__copy_plan_push would, without the checks or a
 * descriptor built on the side. */
static inline cgr_status cgr__copy_plan_copy_own(cgr__copy_plan *plan,
                                                 void *dst, const void *src,
                                                 uint64_t bytes,
                                                 cgr__error *err) {
  if (bytes == 0)
    return CGR_OK;
  if (plan->count == plan->capacity) {
    cgr_status status = cgr__copy_plan_grow(plan, err, "cgr__copy_plan_copy");
    if (status != CGR_OK)
      return status;
  }
  cgr__copy_desc *op = &plan->ops[plan->count++];
  op->dst = (uint64_t)(uintptr_t)dst;
  op->src = (uint64_t)(uintptr_t)src;
  op->index = 0;
  op->bytes = bytes;
  op->row_bytes = 0;
  op->tile_begin = (uint32_t)(plan->tile_count - plan->cut_tiles);
  op->kind = CGR__COPY_OP_COPY;
  op->pattern_size = 0;
  op->reserved = 0;
  plan->tile_count += cgr__copy_tiles_for(bytes);
  plan->total_bytes += bytes;
  plan->finished = 0;
  return CGR_OK;
}

/* A FILL that cgr builds itself (padding of its own buffers), whose word
 * is cgr__copy_fill_word's: dst is not NULL, pattern_size is 1, 2, 4 or
 * 8 and divides bytes, and the range does not wrap. The replay's step
 * path appends it without cgr__copy_plan_fill's checks. */
static inline cgr_status cgr__copy_plan_fill_own(cgr__copy_plan *plan,
                                                 void *dst, uint64_t word,
                                                 unsigned pattern_size,
                                                 uint64_t bytes,
                                                 cgr__error *err) {
  cgr__copy_desc desc = {.dst = (uint64_t)(uintptr_t)dst,
                         .src = word,
                         .bytes = bytes,
                         .kind = CGR__COPY_OP_FILL,
                         .pattern_size = (uint8_t)pattern_size};
  return cgr__copy_plan_push(plan, &desc, err, "cgr__copy_plan_fill");
}
cgr_status cgr__copy_plan_gather(cgr__copy_plan *plan, void *dst,
                                 const void *src, const int32_t *index,
                                 uint64_t rows, uint64_t row_bytes,
                                 cgr__error *err);

/* A GATHER that cgr builds itself between its own buffers, through an
 * index array of its own (the replay's feedback): no pointer is NULL,
 * the index array is 4-byte aligned, row_bytes is not 0 and no range
 * wraps, so it is appended without cgr__copy_plan_gather's checks. */
static inline cgr_status
cgr__copy_plan_gather_own(cgr__copy_plan *plan, void *dst, const void *src,
                          const int32_t *index, uint64_t rows,
                          uint64_t row_bytes, cgr__error *err) {
  cgr__copy_desc desc = {.dst = (uint64_t)(uintptr_t)dst,
                         .src = (uint64_t)(uintptr_t)src,
                         .index = (uint64_t)(uintptr_t)index,
                         .bytes = rows * row_bytes,
                         .row_bytes = row_bytes,
                         .kind = CGR__COPY_OP_GATHER};
  return cgr__copy_plan_push(plan, &desc, err, "cgr__copy_plan_gather");
}

/*
 * Validates the plan as a whole and assigns tiles. Rejects, with
 * CGR_E_INVALID_ARGUMENT naming both operations, destination ranges that
 * overlap inside the plan, and a COPY source or a GATHER index array that
 * overlaps any destination: the kernel runs operations in parallel, in no
 * order. (GATHER's source rows depend on the index values and are not
 * checked; the indices must name rows that exist.) Must succeed before the
 * plan is launched; adding an operation undoes it.
 */
cgr_status cgr__copy_plan_finish(cgr__copy_plan *plan, cgr__error *err);

/*
 * Finishes the plan for two launches apart, in an order the caller sets
 * (two streams, or an event wait between them): operations [0, cut) and
 * [cut, count), with tiles numbered per part. Overlaps are checked over
 * the whole plan, as cgr__copy_plan_finish checks them, so a batch the
 * one-launch modes refuse is refused here too, and the split changes no
 * result. *head and *tail become finished views of the two parts: they
 * borrow the plan's memory, are valid until the plan changes, and are
 * only launched (never added to, cleared or released). The plan itself
 * stays unfinished: launch the parts. CGR_E_INVALID_ARGUMENT for a cut
 * past the end, and as cgr__copy_plan_finish; the views are empty then.
 */
cgr_status cgr__copy_plan_finish_split(cgr__copy_plan *plan, size_t cut,
                                       cgr__copy_plan *head,
                                       cgr__copy_plan *tail, cgr__error *err);

/* The number of launches cgr__fused_copy_launch makes for this plan. */
size_t cgr__copy_plan_launches(const cgr__copy_plan *plan);

#endif /* CGR_KERNELS_COPY_PLAN_H */
