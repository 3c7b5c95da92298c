/*
 * The fused copy on the CPU: the same tiles as the CUDA kernel, in tile
 * order, each moved with memcpy, from the by-value arguments or from a plan
 * area (plan_load). The host backend runs it as the kernel's twin; tests
 * compare it and the GPU against a plain reference.
 */
#include <stddef.h>
#include <string.h>

#include "kernels/fused_copy.h"

static void copy_range(const cgr__copy_desc *op, uint64_t begin, uint64_t end) {
  memcpy((unsigned char *)(uintptr_t)op->dst + begin,
         (const unsigned char *)(uintptr_t)op->src + begin, end - begin);
}

static void fill_range(const cgr__copy_desc *op, uint64_t begin, uint64_t end) {
  unsigned char *dst = (unsigned char *)(uintptr_t)op->dst;
  /* Offsets begin, begin + 8, ... all start the same rotation: build 256
   * bytes of it once, then copy those. */
  uint64_t word = cgr__copy_fill_word_at(op->src, begin);
  unsigned char block[256];
  for (size_t i = 0; i < sizeof block; i += 8)
    memcpy(block + i, &word, 8);
  for (uint64_t offset = begin; offset < end; offset += sizeof block) {
    uint64_t n = end - offset < sizeof block ? end - offset : sizeof block;
    memcpy(dst + offset, block, n);
  }
}

static void gather_range(const cgr__copy_desc *op, uint64_t begin,
                         uint64_t end) {
  unsigned char *dst = (unsigned char *)(uintptr_t)op->dst;
  const unsigned char *src = (const unsigned char *)(uintptr_t)op->src;
  const int32_t *index = (const int32_t *)(uintptr_t)op->index;
  uint64_t offset = begin;
  while (offset < end) {
    uint64_t row = offset / op->row_bytes;
    uint64_t within = offset % op->row_bytes;
    uint64_t n = op->row_bytes - within;
    if (n > end - offset)
      n = end - offset;
    memcpy(dst + offset,
           src + (uint64_t)(int64_t)index[row] * op->row_bytes + within, n);
    offset += n;
  }
}

/* Every tile of a header and its descriptors, in tile order: the by-value
 * arguments and the plan area share this layout. */
static void run_tiles(const cgr__fused_copy_header *header,
                      const cgr__copy_desc *ops) {
  const uint32_t op_count = header->op_count;
  const uint32_t tile_count = header->tile_count;
  for (uint32_t tile = 0; tile < tile_count; ++tile) {
    const cgr__copy_desc *op = &ops[cgr__copy_tile_op(ops, op_count, tile)];
    uint64_t begin, end;
    cgr__copy_tile_range(op, tile, &begin, &end);
    switch (op->kind) {
    case CGR__COPY_OP_COPY:
      copy_range(op, begin, end);
      break;
    case CGR__COPY_OP_FILL:
      fill_range(op, begin, end);
      break;
    case CGR__COPY_OP_GATHER:
      gather_range(op, begin, end);
      break;
    }
  }
}

void cgr__host_fused_copy(const void *args) {
  run_tiles(args, (const cgr__copy_desc *)((const unsigned char *)args +
                                           offsetof(cgr__fused_copy_args_small,
                                                    ops)));
}

/* The area is read here, when the worker runs the kernel: a replayed graph
 * runs the plan written before that replay. */
void cgr__host_plan_load(const void *args) {
  const cgr__plan_load_args *load = args;
  const void *area = (const void *)(uintptr_t)load->area;
  run_tiles(area, cgr__plan_area_ops(area));
}
