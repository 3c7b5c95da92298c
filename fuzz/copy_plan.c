/*
 * Fuzz target: the copy-plan builder (kernels/copy_plan.h) and the fused
 * copy's host executor.
 *
 * The input is a list of operations on three host arenas: COPY, FILL and
 * GATHER at random offsets and sizes (overlapping often, touching
 * exactly sometimes), wild operations (NULL, addresses near the top of the
 * address space, sizes that overflow), runs of hundreds of one-to-four-byte
 * fills (plans of several launches), finishes, clears and launches of
 * unfinished plans. The decoder keeps its own model of the plan:
 *
 *   - an append must accept every well-formed operation and reject every
 *     malformed one with CGR_E_INVALID_ARGUMENT and a message, leaving the
 *     plan as it was; accepted ranges never wrap around the address space;
 *   - finish must accept exactly the plans whose destinations are disjoint
 *     and whose COPY sources and GATHER index arrays miss every
 *     destination (an O(n^2) check against the builder's sorted one), and
 *     lay out tiles as copy_tiles.h says;
 *   - a finished plan of in-arena operations, launched on the host
 *     backend, leaves the arenas exactly as a naive memcpy / fill / gather
 *     reference does, every byte outside the destinations untouched;
 *   - launching an unfinished plan is CGR_E_INVALID_STATE.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_targets.h"
#include "kernels/fused_copy.h"
#include "runtime/runtime.h"

enum {
  PLAN_ARENAS = 3,
  /* Not a multiple of the 16 KiB tile: operations end mid-tile. */
  PLAN_ARENA_BYTES = 40000,
  /* Enough for three launches of CGR__FUSED_COPY_LARGE operations. */
  PLAN_MAX_OPS = 1500,
  PLAN_MAX_RUN = 1000
};

/* Where an operation points: an arena and an offset, or (wild) a raw
 * address that is never dereferenced. */
typedef struct plan_place {
  int arena; /* -1: wild */
  uint64_t offset;
  uint64_t address;
} plan_place;

/* The model of one operation the builder accepted. */
typedef struct plan_op {
  uint8_t kind; /* enum cgr__copy_kind */
  int wild;     /* points outside the arenas: never run */
  plan_place dst, src, index;
  uint64_t bytes;     /* destination bytes */
  uint64_t row_bytes; /* GATHER */
  uint64_t pattern;   /* FILL */
  unsigned pattern_size;
} plan_op;

typedef struct plan_session {
  cgr__backend *be;
  cgr__stream *stream;
  cgr__error err;
  cgr__copy_plan plan;
  unsigned char *arena[PLAN_ARENAS];
  unsigned char *snapshot[PLAN_ARENAS];  /* the arenas before a run */
  unsigned char *reference[PLAN_ARENAS]; /* what a run must leave */
  unsigned char written[PLAN_ARENAS][PLAN_ARENA_BYTES]; /* plan_disjoint */
  plan_op ops[PLAN_MAX_OPS];
  size_t count;
  int wild;        /* some accepted operation is wild */
  plan_place last; /* the previous operation's destination end */
} plan_session;

static cgr_runtime *plan_runtime;

static plan_session plan_state;

void fuzz_copy_plan_release(void) {
  cgr_runtime_destroy(plan_runtime);
  plan_runtime = NULL;
  for (int a = 0; a < PLAN_ARENAS; ++a) {
    free(plan_state.arena[a]);
    free(plan_state.snapshot[a]);
    free(plan_state.reference[a]);
    plan_state.arena[a] = plan_state.snapshot[a] = plan_state.reference[a] =
        NULL;
  }
}

/* The host backend's stream runs the launches, as in a replay. */
static void plan_backend(plan_session *s) {
  if (plan_runtime == NULL) {
    cgr_config config;
    cgr_config_init(&config);
    config.backend = CGR_BACKEND_HOST;
    config.validate = 1;
    FUZZ_CHECK_STATUS(NULL, cgr_runtime_create(&config, &plan_runtime), CGR_OK);
  }
  s->be = &plan_runtime->backend;
  s->stream = plan_runtime->streams[CGR_STREAM_MAIN];
}

static void *plan_pointer(const plan_session *s, plan_place place) {
  if (place.arena < 0)
    return (void *)(uintptr_t)place.address;
  return s->arena[place.arena] + place.offset;
}

static uint64_t plan_address(const plan_session *s, plan_place place) {
  return (uint64_t)(uintptr_t)plan_pointer(s, place);
}

/* ---- decoding ------------------------------------------------------------ */

/* A place in an arena, and the bytes from it to the arena's end. Now and
 * then right at, or a few bytes around, the previous destination's end,
 * where off-by-one overlap checks go wrong. */
static plan_place plan_place_in(plan_session *s, fuzz_reader *r,
                                uint64_t *room) {
  uint8_t how = fuzz_u8(r);
  plan_place place = {.arena = how % PLAN_ARENAS};
  if (how >> 6 == 3 && s->last.arena >= 0) {
    int64_t delta = (int64_t)((how >> 2) & 7) - 3;
    int64_t offset = (int64_t)s->last.offset + delta;
    place.arena = s->last.arena;
    place.offset = offset < 0                   ? 0
                   : offset >= PLAN_ARENA_BYTES ? PLAN_ARENA_BYTES - 1
                                                : (uint64_t)offset;
  } else {
    place.offset = fuzz_u16(r) % PLAN_ARENA_BYTES;
  }
  *room = PLAN_ARENA_BYTES - place.offset;
  return place;
}

/* A size up to `room`: mostly small, sometimes past a tile or to the end. */
static uint64_t plan_size(fuzz_reader *r, uint64_t room) {
  uint8_t shape = fuzz_u8(r);
  uint64_t bytes;
  switch (shape & 3) {
  case 0:
    bytes = shape >> 2;
    break;
  case 1:
    bytes = fuzz_u16(r) % 2048;
    break;
  case 2:
    bytes = fuzz_u16(r) % PLAN_ARENA_BYTES;
    break;
  default:
    bytes = room;
    break;
  }
  return bytes < room ? bytes : room;
}

/* A wild address: NULL, near the top of the address space, or an arena
 * address (for the size to be the wild part). */
static plan_place plan_place_wild(plan_session *s, fuzz_reader *r) {
  uint8_t how = fuzz_u8(r);
  plan_place place = {.arena = -1};
  switch (how % 4) {
  case 0:
    place.address = 0;
    break;
  case 1:
    place.address = UINT64_MAX - fuzz_u16(r);
    break;
  case 2:
    place.address = (UINT64_C(1) << 63) + fuzz_u16(r);
    break;
  default:
    place.address = (uint64_t)(uintptr_t)s->arena[how % PLAN_ARENAS];
    break;
  }
  return place;
}

static uint64_t plan_size_wild(fuzz_reader *r) {
  uint8_t how = fuzz_u8(r);
  switch (how % 5) {
  case 0:
    return UINT64_MAX - fuzz_u16(r);
  case 1:
    return UINT64_C(1) << (32 + how % 31);
  case 2:
    return (UINT64_C(1) << 32) * 16384 + fuzz_u16(r);
  case 3:
    return fuzz_u64(r);
  default:
    return fuzz_u16(r);
  }
}

/* ---- appending ----------------------------------------------------------- */

/* [address, address + bytes) does not wrap. */
static int plan_fits(uint64_t address, uint64_t bytes) {
  return bytes <= UINT64_MAX - address;
}

static const char *const plan_kind_names[3] = {"COPY", "FILL", "GATHER"};

static void plan_trace_op(const plan_session *s, const plan_op *op,
                          cgr_status status) {
  fuzz_trace("%s%s dst=%#llx src=%#llx index=%#llx bytes=%llu row=%llu "
             "pattern=%u -> %s",
             op->wild ? "wild " : "", plan_kind_names[op->kind],
             (unsigned long long)plan_address(s, op->dst),
             (unsigned long long)plan_address(s, op->src),
             (unsigned long long)plan_address(s, op->index),
             (unsigned long long)op->bytes, (unsigned long long)op->row_bytes,
             op->pattern_size, cgr_status_name(status));
}

/* After a rejected append: a message, and the plan as it was. */
static void plan_check_rejected(plan_session *s, cgr_status status,
                                size_t count_before) {
  FUZZ_CHECK(status == CGR_E_INVALID_ARGUMENT);
  FUZZ_CHECK(s->err.message[0] != '\0');
  FUZZ_CHECK(strstr(s->err.message, "copy plan operation") != NULL);
  FUZZ_CHECK(s->plan.count == count_before);
}

/* Records an accepted operation in the model (zero bytes: dropped). */
static void plan_accepted(plan_session *s, const plan_op *op) {
  if (op->bytes == 0) {
    FUZZ_CHECK(s->plan.count == s->count);
    return;
  }
  FUZZ_CHECK(s->count < PLAN_MAX_OPS);
  s->ops[s->count++] = *op;
  s->wild |= op->wild;
  FUZZ_CHECK(s->plan.count == s->count);
  FUZZ_CHECK(!s->plan.finished);
  if (op->dst.arena >= 0) {
    s->last = op->dst;
    s->last.offset += op->bytes;
  }
}

static void plan_copy(plan_session *s, const plan_op *op, int valid) {
  size_t before = s->plan.count;
  cgr__error_clear(&s->err);
  cgr_status status =
      cgr__copy_plan_copy(&s->plan, plan_pointer(s, op->dst),
                          plan_pointer(s, op->src), op->bytes, &s->err);
  plan_trace_op(s, op, status);
  if (status != CGR_OK) {
    FUZZ_CHECK(!valid);
    plan_check_rejected(s, status, before);
    return;
  }
  FUZZ_CHECK(valid || op->wild);
  FUZZ_CHECK(plan_address(s, op->dst) != 0 && plan_address(s, op->src) != 0);
  FUZZ_CHECK(plan_fits(plan_address(s, op->dst), op->bytes));
  FUZZ_CHECK(plan_fits(plan_address(s, op->src), op->bytes));
  plan_accepted(s, op);
}

static int plan_pattern_valid(unsigned size) {
  return size == 1 || size == 2 || size == 4 || size == 8;
}

static void plan_fill(plan_session *s, const plan_op *op, int valid) {
  size_t before = s->plan.count;
  cgr__error_clear(&s->err);
  cgr_status status =
      cgr__copy_plan_fill(&s->plan, plan_pointer(s, op->dst), op->pattern,
                          op->pattern_size, op->bytes, &s->err);
  plan_trace_op(s, op, status);
  if (status != CGR_OK) {
    FUZZ_CHECK(!valid);
    plan_check_rejected(s, status, before);
    return;
  }
  FUZZ_CHECK(valid || op->wild);
  FUZZ_CHECK(plan_address(s, op->dst) != 0);
  FUZZ_CHECK(plan_pattern_valid(op->pattern_size));
  FUZZ_CHECK(op->bytes % op->pattern_size == 0);
  FUZZ_CHECK(plan_fits(plan_address(s, op->dst), op->bytes));
  plan_accepted(s, op);
}

static void plan_gather(plan_session *s, const plan_op *op, uint64_t rows,
                        int valid) {
  size_t before = s->plan.count;
  cgr__error_clear(&s->err);
  cgr_status status =
      cgr__copy_plan_gather(&s->plan, plan_pointer(s, op->dst),
                            plan_pointer(s, op->src),
                            (const int32_t *)plan_pointer(s, op->index), rows,
                            op->row_bytes, &s->err);
  plan_trace_op(s, op, status);
  if (status != CGR_OK) {
    FUZZ_CHECK(!valid);
    plan_check_rejected(s, status, before);
    return;
  }
  FUZZ_CHECK(valid || op->wild);
  FUZZ_CHECK(plan_address(s, op->dst) != 0 && plan_address(s, op->src) != 0 &&
             plan_address(s, op->index) != 0);
  FUZZ_CHECK(plan_address(s, op->index) % 4 == 0);
  FUZZ_CHECK(rows == 0 || op->row_bytes != 0);
  FUZZ_CHECK(op->row_bytes == 0 || rows <= UINT64_MAX / op->row_bytes);
  FUZZ_CHECK(plan_fits(plan_address(s, op->dst), op->bytes));
  /* The kernel reads one int32 index per row. */
  FUZZ_CHECK(rows <= UINT64_MAX / 4 &&
             plan_fits(plan_address(s, op->index), rows * 4));
  plan_accepted(s, op);
}

static void decode_copy(plan_session *s, fuzz_reader *r) {
  uint64_t dst_room, src_room;
  plan_op op = {.kind = CGR__COPY_OP_COPY};
  op.dst = plan_place_in(s, r, &dst_room);
  op.src = plan_place_in(s, r, &src_room);
  op.bytes = plan_size(r, dst_room < src_room ? dst_room : src_room);
  plan_copy(s, &op, 1);
}

static void decode_fill(plan_session *s, fuzz_reader *r) {
  static const unsigned sizes[8] = {1, 2, 4, 8, 1, 4, 0, 3};
  uint64_t room;
  plan_op op = {.kind = CGR__COPY_OP_FILL};
  uint8_t how = fuzz_u8(r);
  op.pattern_size = sizes[how & 7];
  op.pattern = fuzz_u64(r);
  op.dst = plan_place_in(s, r, &room);
  op.bytes = plan_size(r, room);
  /* Mostly a whole number of patterns; sometimes not. */
  if ((how & 8) == 0 && plan_pattern_valid(op.pattern_size))
    op.bytes -= op.bytes % op.pattern_size;
  int valid =
      plan_pattern_valid(op.pattern_size) && op.bytes % op.pattern_size == 0;
  plan_fill(s, &op, valid);
}

static void decode_gather(plan_session *s, fuzz_reader *r) {
  uint64_t dst_room, src_room, index_room;
  plan_op op = {.kind = CGR__COPY_OP_GATHER};
  uint8_t how = fuzz_u8(r);
  op.dst = plan_place_in(s, r, &dst_room);
  op.src = plan_place_in(s, r, &src_room);
  op.index = plan_place_in(s, r, &index_room);
  /* int32 indices are 4-byte aligned unless the input says otherwise. */
  if ((how & 1) == 0) {
    index_room += op.index.offset % 4;
    op.index.offset -= op.index.offset % 4;
  }
  op.row_bytes = (how & 2) ? 1 + fuzz_u8(r) % 64 : 1 + fuzz_u16(r) % 3000;
  if ((how & 0x1C) == 0x1C)
    op.row_bytes = 0;
  uint64_t rows = fuzz_u8(r) % 64;
  uint64_t src_rows = op.row_bytes ? src_room / op.row_bytes : 0;
  if (op.row_bytes != 0) {
    if (rows > dst_room / op.row_bytes)
      rows = dst_room / op.row_bytes;
    if (src_rows == 0)
      rows = 0;
  }
  if (rows > index_room / 4)
    rows = index_room / 4;
  op.bytes = rows * op.row_bytes;
  /* Indices of rows that exist (the kernel does not check them). */
  unsigned char *index = plan_pointer(s, op.index);
  for (uint64_t j = 0; j < rows && op.row_bytes != 0; ++j) {
    int32_t row = (int32_t)(fuzz_u16(r) % src_rows);
    memcpy(index + j * 4, &row, 4);
  }
  /* Misaligned indices are refused even for zero rows (the check comes
   * before the size's). */
  int valid = (rows == 0 || op.row_bytes != 0) && op.index.offset % 4 == 0;
  plan_gather(s, &op, rows, valid);
}

/* An operation with a wild address or size: checked, never run. */
static void decode_wild(plan_session *s, fuzz_reader *r) {
  uint8_t how = fuzz_u8(r);
  plan_op op = {.wild = 1};
  op.dst = plan_place_wild(s, r);
  op.src = plan_place_wild(s, r);
  op.index = plan_place_wild(s, r);
  op.bytes = plan_size_wild(r);
  switch (how % 3) {
  case 0:
    op.kind = CGR__COPY_OP_COPY;
    plan_copy(s, &op, 0);
    break;
  case 1:
    op.kind = CGR__COPY_OP_FILL;
    op.pattern_size = 1u << (how / 3 % 4);
    op.pattern = fuzz_u64(r);
    plan_fill(s, &op, 0);
    break;
  default: {
    op.kind = CGR__COPY_OP_GATHER;
    uint64_t rows = plan_size_wild(r);
    op.row_bytes = plan_size_wild(r);
    op.bytes = op.row_bytes != 0 && rows <= UINT64_MAX / op.row_bytes
                   ? rows * op.row_bytes
                   : 0;
    plan_gather(s, &op, rows, 0);
    break;
  }
  }
}

/* A run of tiny fills, one after the other with gaps of 0 to 3 bytes:
 * hundreds of operations, several launches. */
static void decode_run(plan_session *s, fuzz_reader *r) {
  uint64_t room;
  plan_place place = plan_place_in(s, r, &room);
  uint32_t count = 1 + fuzz_u16(r) % PLAN_MAX_RUN;
  uint64_t pattern = fuzz_u64(r);
  for (uint32_t i = 0; i < count && s->count < PLAN_MAX_OPS; ++i) {
    uint64_t bytes = 1 + (pattern >> (i % 61)) % 4;
    uint64_t gap = (pattern >> ((i + 7) % 61)) % 4;
    if (place.offset + bytes > PLAN_ARENA_BYTES)
      break;
    plan_op op = {.kind = CGR__COPY_OP_FILL,
                  .dst = place,
                  .bytes = bytes,
                  .pattern = pattern + i,
                  .pattern_size = 1};
    plan_fill(s, &op, 1);
    place.offset += bytes + gap;
  }
}

/* ---- finishing ----------------------------------------------------------- */

typedef struct plan_range {
  uint64_t begin, end;
} plan_range;

static int plan_overlap(plan_range a, plan_range b) {
  return a.begin < b.end && b.begin < a.end;
}

static plan_range plan_dst_range(const plan_session *s, const plan_op *op) {
  uint64_t begin = plan_address(s, op->dst);
  return (plan_range){begin, begin + op->bytes};
}

/* COPY's source or GATHER's index array; empty for FILL. */
static plan_range plan_read_range(const plan_session *s, const plan_op *op) {
  if (op->kind == CGR__COPY_OP_COPY) {
    uint64_t begin = plan_address(s, op->src);
    return (plan_range){begin, begin + op->bytes};
  }
  if (op->kind == CGR__COPY_OP_GATHER) {
    uint64_t begin = plan_address(s, op->index);
    return (plan_range){begin, begin + op->bytes / op->row_bytes * 4};
  }
  return (plan_range){0, 0};
}

/* What finish must say about a plan of in-arena operations: 1 when no two
 * destinations overlap and no COPY source or index array overlaps any.
 * Pair by pair for small plans; for large ones (pairs would cost more
 * than the plan), by marking every destination byte of the arenas. */
static int plan_disjoint(plan_session *s) {
  if (s->count <= 128) {
    for (size_t i = 0; i < s->count; ++i) {
      plan_range dst = plan_dst_range(s, &s->ops[i]);
      for (size_t j = 0; j < s->count; ++j) {
        if (j > i && plan_overlap(dst, plan_dst_range(s, &s->ops[j])))
          return 0;
        if (plan_overlap(dst, plan_read_range(s, &s->ops[j])))
          return 0;
      }
    }
    return 1;
  }
  for (int a = 0; a < PLAN_ARENAS; ++a)
    memset(s->written[a], 0, PLAN_ARENA_BYTES);
  for (size_t i = 0; i < s->count; ++i) {
    const plan_op *op = &s->ops[i];
    unsigned char *mark = s->written[op->dst.arena] + op->dst.offset;
    if (memchr(mark, 1, op->bytes) != NULL)
      return 0;
    memset(mark, 1, op->bytes);
  }
  for (size_t i = 0; i < s->count; ++i) {
    const plan_op *op = &s->ops[i];
    plan_range read = plan_read_range(s, op);
    const plan_place *from =
        op->kind == CGR__COPY_OP_COPY ? &op->src : &op->index;
    if (read.end > read.begin && memchr(s->written[from->arena] + from->offset,
                                        1, read.end - read.begin) != NULL)
      return 0;
  }
  return 1;
}

/* The layout copy_tiles.h describes: tiles numbered per launch of
 * CGR__FUSED_COPY_LARGE operations, each operation's first tile after the
 * previous one's last. */
static void plan_check_tiles(const plan_session *s) {
  const cgr__copy_plan *plan = &s->plan;
  uint64_t total = 0, bytes = 0, in_launch = 0;
  FUZZ_CHECK(plan->count == s->count);
  for (size_t i = 0; i < plan->count; ++i) {
    const cgr__copy_desc *desc = &plan->ops[i];
    const plan_op *op = &s->ops[i];
    if (i % CGR__FUSED_COPY_LARGE == 0)
      in_launch = 0;
    FUZZ_CHECK(desc->kind == op->kind);
    FUZZ_CHECK(desc->bytes == op->bytes);
    FUZZ_CHECK(desc->dst == plan_address(s, op->dst));
    FUZZ_CHECK(desc->tile_begin == in_launch);
    uint64_t tiles = cgr__copy_tiles_for(desc->bytes);
    FUZZ_CHECK(tiles >= 1);
    in_launch += tiles;
    total += tiles;
    bytes += desc->bytes;
  }
  FUZZ_CHECK(plan->tile_count == total);
  FUZZ_CHECK(plan->total_bytes == bytes);
  FUZZ_CHECK(cgr__copy_plan_launches(plan) ==
             (plan->count + CGR__FUSED_COPY_LARGE - 1) / CGR__FUSED_COPY_LARGE);
}

/* A launch needs more than 2^32 tiles: only wild sizes get there. */
static int plan_too_many_tiles(const plan_session *s) {
  uint64_t in_launch = 0;
  for (size_t i = 0; i < s->count; ++i) {
    if (i % CGR__FUSED_COPY_LARGE == 0)
      in_launch = 0;
    in_launch += cgr__copy_tiles_for(s->ops[i].bytes);
    if (in_launch > UINT32_MAX)
      return 1;
  }
  return 0;
}

/* ---- running ------------------------------------------------------------- */

static int32_t plan_index_at(const plan_session *s, const plan_op *op,
                             uint64_t row) {
  int32_t value;
  memcpy(&value, s->snapshot[op->index.arena] + op->index.offset + row * 4, 4);
  return value;
}

/* The gathers' indices (as the arenas hold them now: a later operation
 * may have written over an earlier one's) name rows inside the arena, and
 * no gathered row overlaps a destination: the builder checks neither (the
 * caller promises both), so a plan that breaks them is not run. */
static int plan_gathers_runnable(const plan_session *s) {
  for (size_t i = 0; i < s->count; ++i) {
    const plan_op *op = &s->ops[i];
    if (op->kind != CGR__COPY_OP_GATHER)
      continue;
    uint64_t src_rows = (PLAN_ARENA_BYTES - op->src.offset) / op->row_bytes;
    for (uint64_t j = 0; j < op->bytes / op->row_bytes; ++j) {
      int32_t row = plan_index_at(s, op, j);
      if (row < 0 || (uint64_t)row >= src_rows)
        return 0;
      uint64_t begin = plan_address(s, op->src) + (uint64_t)row * op->row_bytes;
      plan_range read = {begin, begin + op->row_bytes};
      for (size_t k = 0; k < s->count; ++k)
        if (plan_overlap(read, plan_dst_range(s, &s->ops[k])))
          return 0;
    }
  }
  return 1;
}

/* The reference: each operation on its own, in order, from the snapshot
 * (nothing reads a destination, so order does not matter). */
static void plan_reference(plan_session *s) {
  for (int a = 0; a < PLAN_ARENAS; ++a)
    memcpy(s->reference[a], s->snapshot[a], PLAN_ARENA_BYTES);
  for (size_t i = 0; i < s->count; ++i) {
    const plan_op *op = &s->ops[i];
    unsigned char *dst = s->reference[op->dst.arena] + op->dst.offset;
    if (op->kind == CGR__COPY_OP_COPY) {
      memcpy(dst, s->snapshot[op->src.arena] + op->src.offset, op->bytes);
    } else if (op->kind == CGR__COPY_OP_FILL) {
      for (uint64_t at = 0; at < op->bytes; at += op->pattern_size)
        memcpy(dst + at, &op->pattern, op->pattern_size); /* little-endian */
    } else {
      const unsigned char *src = s->snapshot[op->src.arena] + op->src.offset;
      for (uint64_t j = 0; j < op->bytes / op->row_bytes; ++j)
        memcpy(dst + j * op->row_bytes,
               src + (uint64_t)plan_index_at(s, op, j) * op->row_bytes,
               op->row_bytes);
    }
  }
}

static void plan_run(plan_session *s) {
  for (int a = 0; a < PLAN_ARENAS; ++a)
    memcpy(s->snapshot[a], s->arena[a], PLAN_ARENA_BYTES);
  if (!plan_gathers_runnable(s)) {
    fuzz_trace("not run: a gather's index or row is not one to run");
    return;
  }
  plan_reference(s);
  FUZZ_CHECK_STATUS(plan_runtime,
                    cgr__fused_copy_launch(s->be, s->stream, &s->plan), CGR_OK);
  FUZZ_CHECK_STATUS(plan_runtime, cgr__be_stream_synchronize(s->be, s->stream),
                    CGR_OK);
  for (int a = 0; a < PLAN_ARENAS; ++a)
    FUZZ_CHECK(memcmp(s->arena[a], s->reference[a], PLAN_ARENA_BYTES) == 0);
  fuzz_trace("ran %zu launches: the arenas match the reference",
             cgr__copy_plan_launches(&s->plan));
}

/* Finishes the plan and checks the verdict; runs it when it may; then
 * starts the next plan (clear, or release now and then). */
static void plan_finish(plan_session *s, int release) {
  cgr__error_clear(&s->err);
  cgr_status status = cgr__copy_plan_finish(&s->plan, &s->err);
  fuzz_trace("finish (%zu operations%s) -> %s %s", s->count,
             s->wild ? ", some wild" : "", cgr_status_name(status),
             s->err.message);
  if (s->wild) {
    /* Wild ranges may wrap; only the contract's shape is checked. */
    FUZZ_CHECK(status == CGR_OK || status == CGR_E_INVALID_ARGUMENT);
  } else {
    int disjoint = plan_disjoint(s);
    FUZZ_CHECK(!plan_too_many_tiles(s));
    FUZZ_CHECK((status == CGR_OK) == disjoint);
  }
  if (status == CGR_OK) {
    FUZZ_CHECK(s->plan.finished);
    plan_check_tiles(s);
    if (!s->wild)
      plan_run(s);
  } else {
    FUZZ_CHECK(status == CGR_E_INVALID_ARGUMENT);
    FUZZ_CHECK(!s->plan.finished);
    FUZZ_CHECK(s->err.message[0] != '\0');
    FUZZ_CHECK(strstr(s->err.message, "copy plan operation") != NULL);
  }
  if (release)
    cgr__copy_plan_release(&s->plan);
  else
    cgr__copy_plan_clear(&s->plan);
  FUZZ_CHECK(s->plan.count == 0 && !s->plan.finished);
  s->count = 0;
  s->wild = 0;
}

/* A plan changed since its finish (or never finished) is refused. */
static void plan_launch_unfinished(plan_session *s) {
  if (s->plan.finished)
    return;
  FUZZ_CHECK_STATUS(plan_runtime,
                    cgr__fused_copy_launch(s->be, s->stream, &s->plan),
                    CGR_E_INVALID_STATE);
}

int fuzz_copy_plan_one(const uint8_t *data, size_t size) {
  plan_session *s = &plan_state;
  fuzz_reader r = fuzz_reader_make(data, size);
  plan_backend(s);
  FUZZ_CHECK(cgr__error_init(&s->err) == CGR_OK);
  cgr__copy_plan_init(&s->plan);
  s->count = 0;
  s->wild = 0;
  s->last.arena = -1;
  /* Distinct bytes everywhere, the same for every input (made once: a
   * per-input loop would cost more than the plan). */
  static unsigned char pristine[PLAN_ARENAS][PLAN_ARENA_BYTES];
  static int made;
  if (!made) {
    uint64_t seed = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < sizeof pristine; i += 8) {
      seed ^= seed << 13;
      seed ^= seed >> 7;
      seed ^= seed << 17;
      memcpy(&pristine[0][0] + i, &seed, 8);
    }
    made = 1;
  }
  /* Heap blocks, so ASan's redzones border each arena; kept between
   * inputs (fresh pages per input would cost more than the plan). */
  for (int a = 0; a < PLAN_ARENAS; ++a) {
    if (s->arena[a] == NULL) {
      s->arena[a] = malloc(PLAN_ARENA_BYTES);
      s->snapshot[a] = malloc(PLAN_ARENA_BYTES);
      s->reference[a] = malloc(PLAN_ARENA_BYTES);
      FUZZ_CHECK(s->arena[a] && s->snapshot[a] && s->reference[a]);
    }
    memcpy(s->arena[a], pristine[a], PLAN_ARENA_BYTES);
  }
  while (fuzz_more(&r)) {
    uint8_t op = fuzz_u8(&r);
    switch (op % 16) {
    case 0:
    case 1:
    case 2:
      decode_copy(s, &r);
      break;
    case 3:
    case 4:
    case 5:
      decode_fill(s, &r);
      break;
    case 6:
    case 7:
    case 8:
      decode_gather(s, &r);
      break;
    case 9:
    case 10:
      decode_wild(s, &r);
      break;
    case 11:
      decode_run(s, &r);
      break;
    case 12:
      plan_launch_unfinished(s);
      break;
    default:
      plan_finish(s, op % 16 == 15);
      break;
    }
    if (s->count >= PLAN_MAX_OPS)
      break;
  }
  plan_launch_unfinished(s);
  plan_finish(s, 1);
  cgr__error_fini(&s->err);
  return 0;
}

#ifdef CGR_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return fuzz_copy_plan_one(data, size);
}
#endif
