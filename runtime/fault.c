#include "runtime/fault.h"

#include <stdatomic.h>

static _Atomic int armed;
static _Atomic int armed_call;
static _Atomic int sticky;
static _Atomic int fired;
static _Atomic uint64_t target;
static _Atomic uint64_t seen;

void cgr__fault_arm(cgr__call call, uint64_t nth) {
  atomic_store(&armed, 0);
  atomic_store(&armed_call, (int)call);
  atomic_store(&target, nth);
  atomic_store(&seen, 0);
  atomic_store(&fired, 0);
  atomic_store(&sticky, 0);
  atomic_store(&armed, 1);
}

void cgr__fault_arm_sticky(cgr__call call, uint64_t nth) {
  cgr__fault_arm(call, nth);
  atomic_store(&sticky, 1);
}

void cgr__fault_disarm(void) { atomic_store(&armed, 0); }

uint64_t cgr__fault_seen(void) { return atomic_load(&seen); }

int cgr__fault_fired(void) { return atomic_load(&fired); }

int cgr__fault_hit(cgr__call call) {
  if (!atomic_load_explicit(&armed, memory_order_relaxed))
    return 0;
  if (atomic_load(&armed_call) != (int)call)
    return 0;
  uint64_t n = atomic_fetch_add(&seen, 1) + 1;
  uint64_t want = atomic_load(&target);
  if (n == want || (atomic_load(&sticky) && n > want)) {
    atomic_store(&fired, 1);
    return 1;
  }
  return 0;
}

cgr_status cgr__fault_status(cgr__call call) {
  switch (call) {
#define CGR__CALL_STATUS_(name, fault_status)                                  \
  case CGR__CALL_##name:                                                       \
    return fault_status;
    CGR__CALL_LIST(CGR__CALL_STATUS_)
#undef CGR__CALL_STATUS_
  default:
    return CGR_E_INTERNAL;
  }
}
