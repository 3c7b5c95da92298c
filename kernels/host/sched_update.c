/* Host twins of kernels/sched_update.cu: the reference the GPU is tested
 * against. The same expression as the device, item by item. */
#include "kernels/sched_update.h"

void cgr__host_sched_update(const void *args) {
  const cgr__sched_update_args *u = args;
  for (int64_t j = 0; j < u->count; ++j)
    u->x[j] = u->a * u->x[j] + u->b * u->eps[j];
}

void cgr__host_sched_update_batched(const void *args) {
  const cgr__sched_update_batched_args *u = args;
  for (int64_t i = 0; i < u->items; ++i) {
    float a = u->a[i], b = u->b[i];
    float *x = u->x + i * u->item_elems;
    const float *eps = u->eps + i * u->item_elems;
    for (int64_t j = 0; j < u->item_elems; ++j)
      x[j] = a * x[j] + b * eps[j];
  }
}
