/*
 * The fused multi-tensor copy: one kernel launch executes a whole copy plan
 * (COPY, FILL, GATHER; see copy_plan.h). Registered as three cgr__kernel
 * definitions, one per argument capacity (8, 64 and 680 operations), each
 * with a CUDA launcher and the same host executor.
 *
 * A second entry point, plan_load, runs the same tiles from a plan area
 * (copy_tiles.h) that it reads when it executes: its launch can be captured
 * into a graph once and told a new plan before every replay.
 */
#ifndef CGR_KERNELS_FUSED_COPY_H
#define CGR_KERNELS_FUSED_COPY_H

#include "kernels/copy_plan.h"
#include "runtime/backend.h"

/*
 * Enqueues a finished plan on stream: one launch for up to
 * CGR__FUSED_COPY_LARGE operations, one more per further 680. An empty plan
 * launches nothing. CGR_E_INVALID_STATE when the plan is not finished;
 * otherwise the status of the launch. Kernel arguments are copied at launch,
 * so the plan may be changed as soon as this returns. A plan of its own
 * memory (copy_plan.h, `headed`) of up to 64 operations is passed in
 * place: the launch writes the argument header into the bytes the plan
 * keeps before ops[0], and nothing else of the plan changes.
 */
cgr_status cgr__fused_copy_launch(cgr__backend *be, cgr__stream *stream,
                                  const cgr__copy_plan *plan);

/*
 * Grid cap of cgr__plan_load_grid. An H100 or H200 (132 SMs) holds 4 blocks
 * of plan_load per SM (64 registers x 256 threads of the 65,536 registers;
 * docs/kernels.md), 528 in all: 1,024 is about two waves there and one on
 * a GPU twice its size, so a plan of many tiles still fills the device,
 * while a plan of few tiles pays for at most 1,024 blocks that each read
 * the 16-byte header across PCIe and exit. More blocks would only queue.
 */
#define CGR__PLAN_LOAD_MAX_GRID 1024u

/*
 * Writes a finished plan, or a finished view from
 * cgr__copy_plan_finish_split, into the plan area `area` of `capacity`
 * descriptors (cgr__plan_area_bytes(capacity) bytes, 16-byte aligned,
 * pinned so the device reads it): the descriptors first, then the header's
 * counts. Tiles are renumbered through the whole area, as one launch. An
 * empty plan writes op_count 0 and tile_count 0. The plan may change as
 * soon as this returns. The caller orders the write with the device: no
 * plan_load launch that reads the area may be running.
 *
 * Errors (the area is then untouched): CGR_E_INVALID_STATE when the plan
 * is not finished; CGR_E_INVALID_ARGUMENT for a NULL or misaligned area or
 * a NULL plan, and, naming both numbers, a plan of more operations than
 * `capacity` or of more tiles than fit uint32_t.
 */
cgr_status cgr__plan_area_write(void *area, size_t capacity,
                                const cgr__copy_plan *plan, cgr__error *err);

/*
 * Enqueues one plan_load launch of `grid` blocks on stream: it executes
 * the plan `area` holds when the kernel runs, not when it is launched, so
 * that a launch captured into a graph executes the plan written before
 * each replay. The grid-stride loop over tiles covers a plan of any size
 * with any grid (cgr__plan_load_grid picks one). CGR_E_INVALID_ARGUMENT
 * for a NULL or misaligned area, grid 0 or a grid over 2^31 - 1 (CUDA's
 * limit); otherwise the status of the launch (be->error names it).
 */
cgr_status cgr__plan_load_launch(cgr__backend *be, cgr__stream *stream,
                                 const void *area, uint32_t grid);

/* The grid to launch (or capture) for plans of at most `tile_bound` tiles:
 * tile_bound clamped to [1, CGR__PLAN_LOAD_MAX_GRID]. */
uint32_t cgr__plan_load_grid(uint64_t tile_bound);

extern const cgr__kernel cgr__kernel_fused_copy_small;
extern const cgr__kernel cgr__kernel_fused_copy_medium;
extern const cgr__kernel cgr__kernel_fused_copy_large;

/* Arguments: cgr__plan_load_args (copy_tiles.h). */
extern const cgr__kernel cgr__kernel_plan_load;

/* CUDA launchers (kernels/fused_copy.cu); each returns a cudaError_t. */
int cgr__cuda_launch_fused_copy_small(void *cuda_stream, const void *args);
int cgr__cuda_launch_fused_copy_medium(void *cuda_stream, const void *args);
int cgr__cuda_launch_fused_copy_large(void *cuda_stream, const void *args);
int cgr__cuda_launch_plan_load(void *cuda_stream, const void *args);

/* The host executors (kernels/host/fused_copy.c). cgr__host_fused_copy
 * runs every tile of any of the three argument structs, in tile order;
 * cgr__host_plan_load runs every tile of the plan area its arguments name,
 * the same way (the grid does not matter on the host). */
void cgr__host_fused_copy(const void *args);
void cgr__host_plan_load(const void *args);

#endif /* CGR_KERNELS_FUSED_COPY_H */
