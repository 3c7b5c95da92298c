/*
 * The fused copy's descriptor format and its tiling, shared by the CUDA
 * kernel (compiled as C++ by nvcc), the host executor and the plan builder.
 * Everything here is plain data and inline functions that compile for the
 * host and the device alike.
 *
 * Tiling. Every operation's destination is cut into tiles of
 * CGR__COPY_TILE_BYTES (the last one shorter). Tiles are numbered through
 * the launch in operation order; an operation's first tile is its
 * `tile_begin`. Tile t belongs to the last operation whose tile_begin <= t.
 * A tile is the unit of work: one CUDA block, one iteration on the host.
 */
#ifndef CGR_KERNELS_COPY_TILES_H
#define CGR_KERNELS_COPY_TILES_H

#include <stddef.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define CGR__HD static __host__ __device__ __forceinline__
#else
#define CGR__HD static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* 16 KiB: 256 threads move it in four 16-byte steps each, enough work per
 * block to hide its scheduling, small enough that a plan of a few rows
 * still spreads over many SMs. */
#define CGR__COPY_TILE_BYTES ((uint64_t)16384)

enum cgr__copy_kind {
  CGR__COPY_OP_COPY = 0,
  CGR__COPY_OP_FILL = 1,
  CGR__COPY_OP_GATHER = 2
};

/* One operation, as the kernel reads it (48 bytes). */
typedef struct cgr__copy_desc {
  uint64_t dst;
  /* COPY, GATHER: the source. FILL: the pattern repeated to fill 8 bytes,
   * so destination byte k is byte k % 8 of it in memory order. */
  uint64_t src;
  uint64_t index;       /* GATHER: int32 row indices, one per row */
  uint64_t bytes;       /* destination bytes (GATHER: rows * row_bytes) */
  uint64_t row_bytes;   /* GATHER */
  uint32_t tile_begin;  /* first tile, counted from the start of its launch */
  uint8_t kind;         /* enum cgr__copy_kind */
  uint8_t pattern_size; /* FILL: 1, 2, 4 or 8 */
  uint16_t reserved;
} cgr__copy_desc;

/*
 * Launch arguments: a header and the descriptors, passed by value (CUDA
 * allows 32,764 bytes of kernel parameters). Three capacities, so a small
 * plan does not pay for copying a 32 KB parameter block at every launch.
 */
#define CGR__FUSED_COPY_HEADER                                                 \
  uint32_t op_count;                                                           \
  uint32_t tile_count;                                                         \
  uint64_t reserved

#define CGR__FUSED_COPY_SMALL 8
#define CGR__FUSED_COPY_MEDIUM 64
#define CGR__FUSED_COPY_LARGE 680

typedef struct cgr__fused_copy_args_small {
  CGR__FUSED_COPY_HEADER;
  cgr__copy_desc ops[CGR__FUSED_COPY_SMALL];
} cgr__fused_copy_args_small;

typedef struct cgr__fused_copy_args_medium {
  CGR__FUSED_COPY_HEADER;
  cgr__copy_desc ops[CGR__FUSED_COPY_MEDIUM];
} cgr__fused_copy_args_medium;

typedef struct cgr__fused_copy_args_large {
  CGR__FUSED_COPY_HEADER;
  cgr__copy_desc ops[CGR__FUSED_COPY_LARGE];
} cgr__fused_copy_args_large;

/* The header alone: every args struct starts with it. */
typedef struct cgr__fused_copy_header {
  CGR__FUSED_COPY_HEADER;
} cgr__fused_copy_header;

/*
 * The plan area: a plan in memory the device reads when a kernel runs
 * (pinned host memory, through unified addressing), for the plan_load
 * kernel, whose launch passes only the area's address and so may be
 * captured into a graph once and executes whatever plan the area holds at
 * each replay. Layout: the header above, then `capacity` descriptors from
 * byte CGR__PLAN_AREA_OPS_OFFSET, the area itself aligned to
 * CGR__PLAN_AREA_ALIGN (so every descriptor is 16-byte aligned, as 48 is a
 * multiple of 16). It is the layout of the by-value argument structs with
 * a capacity of the caller's choosing, so the host executor reads both
 * through one path. Tiles are numbered through the whole area (one
 * launch), however many operations it holds.
 */
#define CGR__PLAN_AREA_OPS_OFFSET ((uint64_t)sizeof(cgr__fused_copy_header))
#define CGR__PLAN_AREA_ALIGN 16

/* Bytes of a plan area for `capacity` descriptors; UINT64_MAX when that
 * does not fit 64 bits. */
CGR__HD uint64_t cgr__plan_area_bytes(size_t capacity) {
  const uint64_t desc = sizeof(cgr__copy_desc);
  if ((uint64_t)capacity > (UINT64_MAX - CGR__PLAN_AREA_OPS_OFFSET) / desc)
    return UINT64_MAX;
  return CGR__PLAN_AREA_OPS_OFFSET + (uint64_t)capacity * desc;
}

/* The area's descriptors. */
CGR__HD const cgr__copy_desc *cgr__plan_area_ops(const void *area) {
  return (const cgr__copy_desc *)((const unsigned char *)area +
                                  CGR__PLAN_AREA_OPS_OFFSET);
}

/* The plan_load kernel's arguments: a graph node's fixed parameters. */
typedef struct cgr__plan_load_args {
  uint64_t area; /* the plan area's address */
  uint32_t grid; /* blocks to launch (the host executor ignores it) */
  uint32_t reserved;
} cgr__plan_load_args;

/* The operation that owns tile `tile` (binary search over tile_begin). */
CGR__HD uint32_t cgr__copy_tile_op(const cgr__copy_desc *ops, uint32_t op_count,
                                   uint32_t tile) {
  uint32_t low = 0, high = op_count - 1;
  while (low < high) {
    uint32_t mid = low + (high - low + 1) / 2;
    if (ops[mid].tile_begin <= tile)
      low = mid;
    else
      high = mid - 1;
  }
  return low;
}

/* The destination byte range [*begin, *end) of tile `tile` within its
 * operation `op`. */
CGR__HD void cgr__copy_tile_range(const cgr__copy_desc *op, uint32_t tile,
                                  uint64_t *begin, uint64_t *end) {
  uint64_t first = (uint64_t)(tile - op->tile_begin) * CGR__COPY_TILE_BYTES;
  uint64_t last = first + CGR__COPY_TILE_BYTES;
  *begin = first;
  *end = last < op->bytes ? last : op->bytes;
}

/* Tiles an operation of `bytes` needs. */
CGR__HD uint64_t cgr__copy_tiles_for(uint64_t bytes) {
  return (bytes + CGR__COPY_TILE_BYTES - 1) / CGR__COPY_TILE_BYTES;
}

/* The 8 pattern bytes rotated so that byte 0 is the one destination offset
 * `offset` must hold: a 16-byte aligned store at that offset writes this
 * twice (8 divides 16). */
CGR__HD uint64_t cgr__copy_fill_word_at(uint64_t pattern8, uint64_t offset) {
  unsigned shift = (unsigned)(offset % 8) * 8;
  return shift == 0 ? pattern8
                    : (pattern8 >> shift) | (pattern8 << (64 - shift));
}

#ifdef __cplusplus
}
#endif

#endif /* CGR_KERNELS_COPY_TILES_H */
