/* The copy plan builder: validation, and the assignment of tiles. */
#include "kernels/copy_plan.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/alloc.h"

void cgr__copy_plan_init(cgr__copy_plan *plan) {
  memset(plan, 0, sizeof *plan);
}

/* The header a headed plan keeps before ops[0] (fused_copy.c). */
enum { HEADER_BYTES = offsetof(cgr__fused_copy_args_small, ops) };

void cgr__copy_plan_release(cgr__copy_plan *plan) {
  int owned = plan->owned;
  if (plan->headed)
    cgr__free((unsigned char *)plan->ops - HEADER_BYTES);
  else
    cgr__free(plan->ops);
  cgr__free(plan->scratch);
  cgr__copy_plan_init(plan);
  plan->owned = owned;
}

void cgr__copy_plan_clear(cgr__copy_plan *plan) {
  plan->count = 0;
  plan->foreign_count = 0;
  plan->total_bytes = 0;
  plan->tile_count = 0;
  plan->finished = 0;
  plan->numbered_from = 0;
  plan->cut_tiles = 0;
  plan->cut_bytes = 0;
}

/* [address, address + bytes) must not wrap around the address space. */
static int range_overflows(const void *address, uint64_t bytes) {
  return bytes > UINT64_MAX - (uint64_t)(uintptr_t)address;
}

static cgr_status bad_op(const cgr__copy_plan *plan, cgr__error *err,
                         const char *func, const char *kind,
                         const char *problem) {
  return cgr__fail(err, CGR_E_INVALID_ARGUMENT, func,
                   "copy plan operation %zu (%s): %s", plan->count, kind,
                   problem);
}

cgr_status cgr__copy_plan_grow(cgr__copy_plan *plan, cgr__error *err,
                               const char *func) {
  /* A plan the caller pointed at its own array is never grown here. */
  if (plan->ops != NULL && !plan->headed)
    return cgr__fail(err, CGR_E_INVALID_STATE, func,
                     "the copy plan's operations are not its own");
  /* 64 first: a medium launch's descriptors fit in place. Zeroed, as the
   * descriptors past the count travel with a launch in place. */
  size_t capacity = plan->capacity ? plan->capacity * 2 : 64;
  unsigned char *memory =
      cgr__calloc(1, HEADER_BYTES + capacity * sizeof(cgr__copy_desc));
  if (memory == NULL)
    return cgr__fail(err, CGR_E_OUT_OF_MEMORY, func,
                     "growing a copy plan to %zu operations failed", capacity);
  cgr__copy_desc *ops = (cgr__copy_desc *)(void *)(memory + HEADER_BYTES);
  if (plan->count > 0)
    memcpy(ops, plan->ops, plan->count * sizeof *ops);
  if (plan->ops != NULL)
    cgr__free((unsigned char *)plan->ops - HEADER_BYTES);
  plan->ops = ops;
  plan->capacity = capacity;
  plan->headed = 1;
  return CGR_OK;
}

/* Why a COPY was refused (cgr__copy_plan_copy checks, inline). */
cgr_status cgr__copy_plan_copy_failed(cgr__copy_plan *plan, void *dst,
                                      const void *src, uint64_t bytes,
                                      cgr__error *err) {
  const char *func = "cgr__copy_plan_copy";
  if (dst == NULL)
    return bad_op(plan, err, func, "COPY", "dst is NULL");
  if (src == NULL)
    return bad_op(plan, err, func, "COPY", "src is NULL");
  if (range_overflows(dst, bytes) || range_overflows(src, bytes))
    return bad_op(plan, err, func, "COPY", "bytes overflows the address space");
  return CGR_OK;
}

cgr_status cgr__copy_plan_fill(cgr__copy_plan *plan, void *dst,
                               uint64_t pattern, unsigned pattern_size,
                               uint64_t bytes, cgr__error *err) {
  if (dst == NULL)
    return bad_op(plan, err, __func__, "FILL", "dst is NULL");
  if (pattern_size != 1 && pattern_size != 2 && pattern_size != 4 &&
      pattern_size != 8)
    return bad_op(plan, err, __func__, "FILL",
                  "pattern_size is not 1, 2, 4 or 8");
  if (bytes % pattern_size != 0)
    return bad_op(plan, err, __func__, "FILL",
                  "bytes is not a multiple of pattern_size");
  if (range_overflows(dst, bytes))
    return bad_op(plan, err, __func__, "FILL",
                  "bytes overflows the address space");
  return cgr__copy_plan_fill_own(plan, dst,
                                 cgr__copy_fill_word(pattern, pattern_size),
                                 pattern_size, bytes, err);
}

cgr_status cgr__copy_plan_gather(cgr__copy_plan *plan, void *dst,
                                 const void *src, const int32_t *index,
                                 uint64_t rows, uint64_t row_bytes,
                                 cgr__error *err) {
  if (dst == NULL)
    return bad_op(plan, err, __func__, "GATHER", "dst is NULL");
  if (src == NULL)
    return bad_op(plan, err, __func__, "GATHER", "src is NULL");
  if (index == NULL)
    return bad_op(plan, err, __func__, "GATHER", "index is NULL");
  /* Both executors load the indices as int32: a misaligned array is a
   * misaligned-address fault on the GPU and undefined behavior on the host
   * (found by fuzz/copy_plan.c). */
  if ((uintptr_t)index % sizeof(int32_t) != 0)
    return bad_op(plan, err, __func__, "GATHER",
                  "index is not aligned to 4 bytes");
  if (row_bytes == 0 && rows > 0)
    return bad_op(plan, err, __func__, "GATHER", "row_bytes is 0");
  if (row_bytes != 0 && rows > UINT64_MAX / row_bytes)
    return bad_op(plan, err, __func__, "GATHER",
                  "rows * row_bytes overflows 64 bits");
  uint64_t bytes = rows * row_bytes;
  if (range_overflows(dst, bytes))
    return bad_op(plan, err, __func__, "GATHER",
                  "rows * row_bytes overflows the address space");
  /* The index array is a range too: if its end wrapped, finish would check
   * a wrapped range for overlap (found by fuzz/copy_plan.c). */
  if (rows > UINT64_MAX / sizeof(int32_t) ||
      range_overflows(index, rows * sizeof(int32_t)))
    return bad_op(plan, err, __func__, "GATHER",
                  "rows of int32 indices overflow the address space");
  cgr__copy_desc desc = {.dst = (uint64_t)(uintptr_t)dst,
                         .src = (uint64_t)(uintptr_t)src,
                         .index = (uint64_t)(uintptr_t)index,
                         .bytes = bytes,
                         .row_bytes = row_bytes,
                         .kind = CGR__COPY_OP_GATHER};
  return cgr__copy_plan_push(plan, &desc, err, __func__);
}

/* ---- finishing ----------------------------------------------------------- */

typedef struct dst_range {
  uint64_t begin;
  uint64_t end;
  size_t op;
} dst_range;

static int by_begin(const void *a, const void *b) {
  const dst_range *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  return x->op < y->op ? -1 : (x->op > y->op);
}

static const char *kind_name(uint8_t kind) {
  switch (kind) {
  case CGR__COPY_OP_COPY:
    return "COPY";
  case CGR__COPY_OP_FILL:
    return "FILL";
  default:
    return "GATHER";
  }
}

/* The destination range that overlaps [begin, end), if any: ranges are
 * sorted and disjoint, so only the last one starting before `end` can. */
static const dst_range *overlapping(const dst_range *ranges, size_t count,
                                    uint64_t begin, uint64_t end) {
  size_t low = 0, high = count;
  while (low < high) {
    size_t mid = low + (high - low) / 2;
    if (ranges[mid].begin < end)
      low = mid + 1;
    else
      high = mid;
  }
  if (low == 0 || begin == end)
    return NULL;
  return ranges[low - 1].end > begin ? &ranges[low - 1] : NULL;
}

/* What an operation reads besides GATHER's source rows (whose extent
 * depends on the indices): COPY's source, GATHER's index array. */
static int read_range(const cgr__copy_desc *op, uint64_t *begin,
                      uint64_t *end) {
  if (op->kind == CGR__COPY_OP_COPY) {
    *begin = op->src;
    *end = op->src + op->bytes;
    return 1;
  }
  if (op->kind == CGR__COPY_OP_GATHER) {
    *begin = op->index;
    *end = op->index + op->bytes / op->row_bytes * sizeof(int32_t);
    return 1;
  }
  return 0;
}

/* Plans of a decode step have a few operations: an insertion sort beats
 * qsort's setup there (and allocates nothing). */
enum { INSERTION_SORT_MAX = 24 };

static void sort_ranges(dst_range *ranges, size_t count) {
  if (count > INSERTION_SORT_MAX) {
    qsort(ranges, count, sizeof *ranges, by_begin);
    return;
  }
  for (size_t i = 1; i < count; ++i) {
    dst_range moving = ranges[i];
    size_t j = i;
    for (; j > 0 && by_begin(&ranges[j - 1], &moving) > 0; --j)
      ranges[j] = ranges[j - 1];
    ranges[j] = moving;
  }
}

/* The plan's scratch, at least `count` ranges long (grown only). */
static dst_range *scratch_ranges(cgr__copy_plan *plan, size_t count) {
  if (plan->scratch_capacity < count) {
    size_t capacity = count > plan->capacity ? count : plan->capacity;
    dst_range *grown = cgr__malloc(capacity * sizeof *grown);
    if (grown == NULL)
      return NULL;
    cgr__free(plan->scratch);
    plan->scratch = grown;
    plan->scratch_capacity = capacity;
  }
  return plan->scratch;
}

/*
 * Destinations are written in parallel and in no order: two operations that
 * write the same byte leave whichever came last, which is no result at all,
 * and an operation that reads bytes another one writes reads them before or
 * after, by chance. Sorting the destinations by start finds any overlap
 * between neighbours; each read range is then looked up among them.
 */
static cgr_status read_overlaps(const cgr__copy_plan *plan, size_t i,
                                size_t other, cgr__error *err) {
  return cgr__fail(
      err, CGR_E_INVALID_ARGUMENT, "cgr__copy_plan_finish",
      "copy plan operation %zu (%s) reads %s bytes that operation %zu "
      "(%s) writes",
      i, kind_name(plan->ops[i].kind),
      plan->ops[i].kind == CGR__COPY_OP_COPY ? "source" : "index", other,
      kind_name(plan->ops[other].kind));
}

/* An owned plan: only the foreign operations' reads can overlap a
 * destination; each is compared with every one, in O(ops). */
static cgr_status check_foreign(const cgr__copy_plan *plan, cgr__error *err) {
  if (plan->foreign_count == 0)
    return CGR_OK;
  /* The span of every destination first: a read outside it (caller
   * memory apart from cgr's buffers, the usual case) needs no walk. The
   * builder's bound, if it gave one, else the plan's own span. */
  uint64_t low = plan->dst_low, high = plan->dst_high;
  if (high == 0) {
    low = UINT64_MAX;
    for (size_t j = 0; j < plan->count; ++j) {
      const cgr__copy_desc *op = &plan->ops[j];
      low = op->dst < low ? op->dst : low;
      high = op->dst + op->bytes > high ? op->dst + op->bytes : high;
    }
  }
  for (size_t f = 0; f < plan->foreign_count; ++f) {
    size_t i = plan->foreign[f];
    uint64_t begin, end;
    if (!read_range(&plan->ops[i], &begin, &end) || begin == end ||
        end <= low || begin >= high)
      continue;
    for (size_t j = 0; j < plan->count; ++j) {
      const cgr__copy_desc *op = &plan->ops[j];
      if (op->dst < end && begin < op->dst + op->bytes)
        return read_overlaps(plan, i, j, err);
    }
  }
  return CGR_OK;
}

static cgr_status check_overlaps(cgr__copy_plan *plan, cgr__error *err) {
  if (plan->count == 0)
    return CGR_OK;
  if (plan->owned && plan->foreign_count <= CGR__COPY_PLAN_FOREIGN)
    return check_foreign(plan, err);
  dst_range *ranges = scratch_ranges(plan, plan->count);
  if (ranges == NULL)
    return cgr__fail(err, CGR_E_OUT_OF_MEMORY, "cgr__copy_plan_finish",
                     "checking %zu operations for overlap ran out of memory",
                     plan->count);
  for (size_t i = 0; i < plan->count; ++i)
    ranges[i] =
        (dst_range){plan->ops[i].dst, plan->ops[i].dst + plan->ops[i].bytes, i};
  sort_ranges(ranges, plan->count);
  /* The furthest end so far: an operation may overlap one that started
   * several ranges earlier. */
  size_t reaching = 0;
  for (size_t i = 1; i < plan->count; ++i) {
    if (ranges[i].begin < ranges[reaching].end) {
      size_t first = ranges[reaching].op, second = ranges[i].op;
      if (first > second) {
        size_t swap = first;
        first = second;
        second = swap;
      }
      return cgr__fail(
          err, CGR_E_INVALID_ARGUMENT, "cgr__copy_plan_finish",
          "copy plan operations %zu (%s) and %zu (%s) write overlapping "
          "destination bytes",
          first, kind_name(plan->ops[first].kind), second,
          kind_name(plan->ops[second].kind));
    }
    if (ranges[i].end > ranges[reaching].end)
      reaching = i;
  }
  for (size_t i = 0; i < plan->count; ++i) {
    uint64_t begin, end;
    if (!read_range(&plan->ops[i], &begin, &end))
      continue;
    const dst_range *hit = overlapping(ranges, plan->count, begin, end);
    if (hit != NULL)
      return read_overlaps(plan, i, hit->op, err);
  }
  return CGR_OK;
}

/* Numbers the tiles of operations [first, first + count) as one launch
 * (chunks of CGR__FUSED_COPY_LARGE) and returns their total in *tiles. */
static cgr_status number_tiles(cgr__copy_plan *plan, size_t first, size_t count,
                               uint64_t *tiles, cgr__error *err) {
  /* Tiles are numbered per launch: an operation's tile_begin counts from
   * the first operation of its chunk of CGR__FUSED_COPY_LARGE. */
  uint64_t total = 0, in_launch = 0;
  for (size_t i = 0; i < count; ++i) {
    if (i % CGR__FUSED_COPY_LARGE == 0)
      in_launch = 0;
    cgr__copy_desc *op = &plan->ops[first + i];
    uint64_t op_tiles = cgr__copy_tiles_for(op->bytes);
    if (in_launch + op_tiles > UINT32_MAX)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr__copy_plan_finish",
                       "copy plan operation %zu: a launch would need more "
                       "than 2^32 tiles of %llu bytes",
                       first + i, (unsigned long long)CGR__COPY_TILE_BYTES);
    op->tile_begin = (uint32_t)in_launch;
    in_launch += op_tiles;
    total += op_tiles;
  }
  *tiles = total;
  return CGR_OK;
}

/* Whether `count` operations of `tiles` tiles go in one launch. */
static int one_launch(size_t count, uint64_t tiles) {
  return count <= CGR__FUSED_COPY_LARGE && tiles <= UINT32_MAX;
}

cgr_status cgr__copy_plan_finish(cgr__copy_plan *plan, cgr__error *err) {
  plan->finished = 0;
  /* An owned plan with no foreign read has nothing to check. */
  if (!plan->owned || plan->foreign_count > 0)
    CGR__CHECK(check_overlaps(plan, err));
  /* Appending numbered the tiles for one launch, unless a cut restarted
   * them before the last operation, or the plan needs several launches,
   * or one would pass 2^32 tiles (which number_tiles names). */
  if ((plan->numbered_from != 0 && plan->numbered_from < plan->count) ||
      plan->numbered_from == SIZE_MAX ||
      !one_launch(plan->count, plan->tile_count)) {
    CGR__CHECK(number_tiles(plan, 0, plan->count, &plan->tile_count, err));
    /* Appending's count no longer matches: a later finish renumbers. */
    plan->numbered_from = SIZE_MAX;
  }
  plan->finished = 1;
  return CGR_OK;
}

/* A finished view of operations [first, first + count) of `plan`, whose
 * tiles number_tiles counted as one launch. */
static void view(const cgr__copy_plan *plan, size_t first, size_t count,
                 uint64_t tiles, uint64_t bytes, cgr__copy_plan *out) {
  /* Written whole, the other fields zero as an empty plan's. */
  *out = (cgr__copy_plan){
      .ops = count > 0 ? plan->ops + first : NULL,
      .count = count,
      /* The head's memory runs on to the plan's capacity (fused_copy.c
       * reads that far when it launches in place). */
      .capacity = first == 0 ? plan->capacity : count,
      .total_bytes = bytes,
      .tile_count = tiles,
      .finished = 1,
      /* A view over the head may launch in place (the header before its
       * first operation is the plan's); a tail's would overwrite the
       * head. */
      .headed = first == 0 && plan->headed};
}

cgr_status cgr__copy_plan_finish_split(cgr__copy_plan *plan, size_t cut,
                                       cgr__copy_plan *head,
                                       cgr__copy_plan *tail, cgr__error *err) {
  plan->finished = 0;
  cgr_status status =
      cut > plan->count ? cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                                    "cut %zu is past the plan's %zu operations",
                                    cut, plan->count)
                        : check_overlaps(plan, err);
  if (status != CGR_OK) {
    /* Empty views of a plan refused. */
    cgr__copy_plan_init(head);
    cgr__copy_plan_init(tail);
    return status;
  }
  if (plan->numbered_from == cut && one_launch(cut, plan->cut_tiles) &&
      one_launch(plan->count - cut, plan->tile_count - plan->cut_tiles)) {
    /* Appending numbered both parts (cgr__copy_plan_cut at `cut`). */
    view(plan, 0, cut, plan->cut_tiles, plan->cut_bytes, head);
    view(plan, cut, plan->count - cut, plan->tile_count - plan->cut_tiles,
         plan->total_bytes - plan->cut_bytes, tail);
    return CGR_OK;
  }
  uint64_t head_tiles = 0, tail_tiles = 0;
  status = number_tiles(plan, 0, cut, &head_tiles, err);
  if (status == CGR_OK)
    status = number_tiles(plan, cut, plan->count - cut, &tail_tiles, err);
  if (status != CGR_OK) {
    cgr__copy_plan_init(head);
    cgr__copy_plan_init(tail);
    return status;
  }
  plan->tile_count = head_tiles + tail_tiles;
  plan->numbered_from = SIZE_MAX; /* as in cgr__copy_plan_finish */
  uint64_t head_bytes = 0;
  for (size_t i = 0; i < cut; ++i)
    head_bytes += plan->ops[i].bytes;
  view(plan, 0, cut, head_tiles, head_bytes, head);
  view(plan, cut, plan->count - cut, tail_tiles, plan->total_bytes - head_bytes,
       tail);
  return CGR_OK;
}

size_t cgr__copy_plan_launches(const cgr__copy_plan *plan) {
  return (plan->count + CGR__FUSED_COPY_LARGE - 1) / CGR__FUSED_COPY_LARGE;
}
