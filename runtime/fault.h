/*
 * Fault injection: fail the Nth call of a given kind, so tests reach every
 * error path (and ASan proves none of them leaks).
 *
 * The plan is process-wide and counts calls from every runtime and thread:
 * tests arm it, make one call (create, capture, ...), and disarm it. Calls
 * are counted only while a plan is armed, so an unarmed process pays one
 * relaxed atomic load per call.
 */
#ifndef CGR_RUNTIME_FAULT_H
#define CGR_RUNTIME_FAULT_H

#include <stdint.h>

#include "runtime/backend.h"

/* Fail the nth (1-based) call of kind `call` from now on. Replaces any
 * earlier plan and resets the count. */
void cgr__fault_arm(cgr__call call, uint64_t nth);

/* Fail every call of kind `call` from the nth on (a device that stays out of
 * memory, a driver that stays broken). */
void cgr__fault_arm_sticky(cgr__call call, uint64_t nth);

void cgr__fault_disarm(void);

/* How many calls of the armed kind were seen since arming. */
uint64_t cgr__fault_seen(void);

/* 1 once the armed fault has fired. */
int cgr__fault_fired(void);

/* Called at each injectable site: 1 means "fail this call now". */
int cgr__fault_hit(cgr__call call);

/* The status an injected fault of this kind returns. */
cgr_status cgr__fault_status(cgr__call call);

#endif /* CGR_RUNTIME_FAULT_H */
