#include "fault_sweep_engine.h"

#include <stdio.h>
#include <string.h>

enum { SWEEP_LIMIT = 2000 };

const uint32_t sweep_buckets[] = {1, 2, 4, 8};

static const char *const mode_names[] = {"immediate", "asynchronous",
                                         "deferred"};

/* The sites an operation calls, each once per kind. */
typedef struct site_list {
  cgr__fault_site_hits sites[CGR__FAULT_MAX_SITES];
  size_t count;
} site_list;

/* Adds the sites counted since arming that the list lacks. */
static void collect_sites(site_list *list) {
  static cgr__fault_site_hits seen[CGR__FAULT_MAX_SITES];
  size_t count = cgr__fault_sites(seen, CGR__FAULT_MAX_SITES);
  assert_true(count <= CGR__FAULT_MAX_SITES);
  for (size_t i = 0; i < count; ++i) {
    size_t j = 0;
    while (j < list->count && (list->sites[j].call != seen[i].call ||
                               strcmp(list->sites[j].func, seen[i].func) != 0))
      j++;
    if (j == list->count)
      list->sites[list->count++] = seen[i];
  }
}

/* One run with the nth call of a site faulted in `mode`. Returns 0 once
 * the site has no nth call. */
static int fault_once(const sweep_operation *op, void *ctx, site_list *list,
                      const cgr__fault_site_hits *site, uint64_t nth,
                      cgr__fault_mode mode, sweep_result *result) {
  const char *kind = cgr__call_name(site->call);
  cgr__fault_plan plan = {.call = site->call,
                          .site = site->func,
                          .nth = nth,
                          .mode = mode};
  op->setup(ctx);
  assert_true(cgr__fault_arm_plans(&plan, 1));
  cgr_status status = op->run(ctx);
  int fired = cgr__fault_fired();
  uint64_t raised = cgr__fault_raised();
  collect_sites(list);
  cgr__fault_disarm();
  if (!fired) {
    if (status != CGR_OK)
      fail_msg("%s failed without a fault (%s call %llu of %s armed, %s): "
               "%s",
               op->name, kind, (unsigned long long)nth, site->func,
               mode_names[mode], cgr_status_name(status));
    op->teardown(ctx);
    return 0;
  }
  result->faults[mode]++;
  if (mode == CGR__FAULT_ASYNC && raised > 0) {
    /* The work ran and lost the device: the operation said so. */
    result->raised++;
    if (status != CGR_E_DEVICE_LOST)
      fail_msg("%s returned %s although %s call %llu of %s lost the device",
               op->name, cgr_status_name(status), kind, (unsigned long long)nth,
               site->func);
    op->check_lost(ctx);
  } else if (mode == CGR__FAULT_ASYNC) {
    /* The faulty work never ran (a graph never launched): no fault. */
    if (status != CGR_OK)
      fail_msg("%s returned %s although the faulty work of %s call %llu of "
               "%s never ran",
               op->name, cgr_status_name(status), kind, (unsigned long long)nth,
               site->func);
  } else {
    /* A failed call is never absorbed silently, nor taken for a loss. */
    if (status == CGR_OK)
      fail_msg("%s succeeded although %s call %llu of %s failed (%s)%s",
               op->name, kind, (unsigned long long)nth, site->func,
               mode_names[mode],
               cgr__fault_left_count() > 0 ? ": its error is still left" : "");
    if (status == CGR_E_DEVICE_LOST)
      fail_msg("%s lost the device for %s call %llu of %s (%s)", op->name, kind,
               (unsigned long long)nth, site->func, mode_names[mode]);
    op->check_usable(ctx);
  }
  op->teardown(ctx);
  /* Errors left behind are reported or go with their runtime. */
  assert_int_equal(cgr__fault_left_count(), 0);
  if (nth > SWEEP_LIMIT)
    fail_msg("%s: more than %d calls of %s at %s: a loop that never ends?",
             op->name, SWEEP_LIMIT, kind, site->func);
  return 1;
}

sweep_result sweep(const sweep_operation *op, void *ctx, unsigned modes) {
  sweep_result result;
  memset(&result, 0, sizeof result);
  static site_list list;
  list.count = 0;
  /* The sites of a run without a fault. */
  op->setup(ctx);
  assert_true(cgr__fault_arm_plans(NULL, 0));
  cgr_status status = op->run(ctx);
  collect_sites(&list);
  cgr__fault_disarm();
  if (status != CGR_OK)
    fail_msg("%s failed without a fault: %s", op->name,
             cgr_status_name(status));
  op->teardown(ctx);

  for (int mode = 0; mode < 3; ++mode) {
    if (!(modes & (1u << mode)))
      continue;
    /* The list grows while it is walked: error paths call new sites. */
    for (size_t i = 0; i < list.count; ++i) {
      cgr__fault_site_hits site = list.sites[i];
      /* A kernel's run on a worker: ASYNC faults cover it at launch. */
      if (site.call == CGR__CALL_DEVICE_FAULT ||
          !cgr__fault_mode_fits(site.call, (cgr__fault_mode)mode))
        continue;
      for (uint64_t nth = 1; fault_once(op, ctx, &list, &site, nth,
                                        (cgr__fault_mode)mode, &result);
           ++nth)
        ;
    }
  }
  result.sites = (unsigned)list.count;
  printf("%s: %u sites; %u immediate, %u asynchronous (%u lost the "
         "device), %u deferred faults, each surfaced cleanly\n",
         op->name, result.sites, result.faults[0], result.faults[1],
         result.raised, result.faults[2]);
  return result;
}

/* ---- the model's step ---------------------------------------------------- */

cgr_status sweep_host_step(cgr_runtime *rt, const model *m,
                           const model_inputs *in, cgr_ticket *ticket) {
  cgr_batch *batch = NULL;
  uint32_t rows = in->rows;
  CGR__CHECK(cgr_batch_begin(rt, rows, &batch));
  struct {
    cgr_slot slot;
    const void *data;
    size_t bytes;
  } inputs[] = {
      {m->ids, in->ids, rows * 4},
      {m->pos, in->pos, rows * 4},
      {m->pages, in->pages, rows * 4 * MODEL_PAGES},
      {m->cu_k, in->cu_k, (rows + 1) * 4},
  };
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; ++i) {
    cgr_status status = cgr_batch_input(batch, inputs[i].slot, CGR_SOURCE_HOST,
                                        inputs[i].data, inputs[i].bytes);
    if (status != CGR_OK) {
      cgr_batch_discard(batch);
      return status;
    }
  }
  CGR__CHECK(cgr_replay(rt, batch, ticket));
  return cgr_ticket_wait(rt, ticket);
}

void sweep_check_step(cgr_runtime *rt, const model *m, const model_inputs *in,
                      const cgr_ticket *ticket) {
  void *out = NULL, *out_pages = NULL;
  assert_cgr_ok(rt, cgr_output(rt, ticket, m->out, &out));
  assert_cgr_ok(rt, cgr_output(rt, ticket, m->out_pages, &out_pages));
  model_check_outputs(rt, out, out_pages, in, ticket->padded_batch,
                      ticket->batch_size, NULL);
}

void sweep_check_runtime_lost(cgr_runtime *rt) {
  assert_cgr_status(rt, cgr_synchronize(rt), CGR_E_DEVICE_LOST);
  if (strstr(cgr_last_error(rt), "the device was lost") == NULL)
    fail_msg("the message does not name the loss: %s", cgr_last_error(rt));
  cgr_batch *batch = NULL;
  cgr_status status = cgr_batch_begin(rt, 1, &batch);
  /* A runtime that never captured refuses the batch first. */
  if (status != CGR_E_INVALID_STATE)
    assert_cgr_status(rt, status, CGR_E_DEVICE_LOST);
  assert_null(batch);
}
