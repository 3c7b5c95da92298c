/*
 * The per-sample scheduler update x' = a * x + b * eps, the workload of
 * profiles/bench_streams: once per item (one launch each, the item's
 * coefficients by value) and once over all items stored back to back (one
 * launch, the coefficients in device arrays). Each is a cgr__kernel: a CUDA
 * launcher and its host twin under one definition.
 *
 * Both sides compute a * x + b * eps in float and CUDA may contract it into
 * an fma: results agree to the bit only when the products are exact, as
 * they are for the small integers the benchmark checks with.
 */
#ifndef CGR_KERNELS_SCHED_UPDATE_H
#define CGR_KERNELS_SCHED_UPDATE_H

#include <stdint.h>

#include "runtime/kernel.h"

/* x[j] = a * x[j] + b * eps[j] for j in [0, count). */
typedef struct cgr__sched_update_args {
  float *x;
  const float *eps;
  float a;
  float b;
  int64_t count;
} cgr__sched_update_args;

/* x[i * E + j] = a[i] * x[i * E + j] + b[i] * eps[i * E + j] for item i in
 * [0, items) and j in [0, E), E = item_elems. */
typedef struct cgr__sched_update_batched_args {
  float *x;
  const float *eps;
  const float *a;
  const float *b;
  int64_t items;
  int64_t item_elems;
} cgr__sched_update_batched_args;

extern const cgr__kernel cgr__kernel_sched_update;
extern const cgr__kernel cgr__kernel_sched_update_batched;

/* The CUDA launchers (kernels/sched_update.cu); each returns a cudaError_t. */
int cgr__cuda_launch_sched_update(void *cuda_stream, const void *args);
int cgr__cuda_launch_sched_update_batched(void *cuda_stream, const void *args);

/* The host twins (kernels/host/sched_update.c). */
void cgr__host_sched_update(const void *args);
void cgr__host_sched_update_batched(const void *args);

#endif /* CGR_KERNELS_SCHED_UPDATE_H */
