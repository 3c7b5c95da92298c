/*
 * The reduction an all-reduce of the host communicator computes
 * (runtime/host/host_comm.c), element by element.
 */
#ifndef CGR_RUNTIME_HOST_HOST_REDUCE_H
#define CGR_RUNTIME_HOST_HOST_REDUCE_H

#include <stddef.h>

#include "cgr/cgr.h"

/*
 * out[i] = op over in[0][i], ..., in[ranks - 1][i], i < count, of `dtype`
 * (ranks at most CGR_GROUP_MAX_RANKS). The ranks' values combine
 * pairwise, neighbours first: ((r0 op r1) op (r2 op r3)) op ..., with a
 * rank left without a partner carried up unchanged. NCCL picks its own
 * order (ring or tree), so no rank count is promised more than this: the
 * result is the same on every rank and from run to run, and it is the sum
 * a caller gets by splitting a sum of 8 blocks, combined the same way,
 * over 1, 2, 4 or 8 ranks (the example model's tensor-parallel layers rely
 * on it, examples/decode/kernels.h). Loads and stores go through memcpy:
 * a slot need not be aligned for its type. Integer sums and products wrap;
 * float16 and bfloat16 are reduced in float32 and rounded once, to nearest
 * with ties to even.
 */
void cgr__host_reduce(void *out, const void *const *in, int ranks, size_t count,
                      cgr_dtype dtype, cgr_reduce_op op);

#endif /* CGR_RUNTIME_HOST_HOST_REDUCE_H */
