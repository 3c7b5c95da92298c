/*
 * The fault sweep's engine, shared by its binaries (fault_sweep.c: steps
 * in every mode and input path; fault_sweep_threads.c: the batcher and
 * lanes).
 *
 * An operation is swept site by site: a first run lists the sites it
 * calls (cgr__fault_sites), and then, for each site and each way a call
 * can fail there (immediately, asynchronously on the device, or by an
 * error a later call reports), the sweep faults the site's 1st, 2nd, ...
 * call until the fault no longer fires. Sites first met on an error path
 * join the list. Counting per site keeps each run's fault on the same call
 * however the batcher's engine thread and the caller's interleave, and a
 * new call site is covered without editing a test.
 *
 * Each fault must surface as a status, never a crash, hang or leak (the
 * asan preset): after an immediate or deferred failure the operation runs
 * again and computes the right outputs; after a device loss every later
 * call says CGR_E_DEVICE_LOST and destroy works. Host backend only: a lost
 * device must be a fresh one once the operation's runtimes are destroyed,
 * so sweep tests hold no fixture runtime (HOST_TEST).
 */
#ifndef CGR_TESTS_FAULT_SWEEP_ENGINE_H
#define CGR_TESTS_FAULT_SWEEP_ENGINE_H

#include "model.h"
#include "runtime/fault.h"

/* One operation under test: `run` is what the sweep faults; the others
 * run unarmed around it. */
typedef struct sweep_operation {
  const char *name;
  void (*setup)(void *ctx);
  cgr_status (*run)(void *ctx);
  /* After an immediate or deferred failure: run works again, with the
   * right outputs. */
  void (*check_usable)(void *ctx);
  /* After a device loss: every call says CGR_E_DEVICE_LOST. */
  void (*check_lost)(void *ctx);
  /* Destroys every runtime the operation made (the device must come back
   * fresh). */
  void (*teardown)(void *ctx);
} sweep_operation;

/* Which ways of failing to sweep (bits of 1 << cgr__fault_mode). */
enum {
  SWEEP_NOW = 1 << CGR__FAULT_NOW,
  SWEEP_ASYNC = 1 << CGR__FAULT_ASYNC,
  SWEEP_DEFERRED = 1 << CGR__FAULT_DEFERRED,
  SWEEP_ALL = SWEEP_NOW | SWEEP_ASYNC | SWEEP_DEFERRED
};

typedef struct sweep_result {
  unsigned sites;
  unsigned faults[3]; /* per mode: faults that fired */
  unsigned raised;    /* ASYNC faults whose work ran and lost the device */
} sweep_result;

/* Sweeps `op` in the modes `modes`; prints and returns what fired. */
sweep_result sweep(const sweep_operation *op, void *ctx, unsigned modes);

/* ---- the model's step, for the operations ------------------------------ */

enum { SWEEP_ROWS = 3 };

extern const uint32_t sweep_buckets[];
enum { SWEEP_BUCKETS = 4 };

/* A step of `in->rows` rows from host inputs, and its wait. */
cgr_status sweep_host_step(cgr_runtime *rt, const model *m,
                           const model_inputs *in, cgr_ticket *ticket);

/* Checks a completed step's outputs against its inputs. */
void sweep_check_step(cgr_runtime *rt, const model *m, const model_inputs *in,
                      const cgr_ticket *ticket);

/* What every runtime says once its device is lost. */
void sweep_check_runtime_lost(cgr_runtime *rt);

#endif /* CGR_TESTS_FAULT_SWEEP_ENGINE_H */
