/*
 * A step-shaped test model: inputs of every slot kind, two outputs, scratch,
 * built from the library's kernels so it runs on both backends. Its outputs
 * have a closed form (model_expected_out), and tests/step_capture.c proves
 * that form equal to an eager run of the step.
 *
 *   out[r]          = ids[r] + pos[r] + cu_k[r + 1] + cu_q[r] + bias[r]
 *   out_pages[r][p] = 2 * pages[r][p]
 *
 * with cu_q = 0..bs (arange) and bias[r] = bs * 100 + r (a user fill).
 */
#ifndef CGR_TESTS_MODEL_H
#define CGR_TESTS_MODEL_H

#include "harness.h"

enum {
  MODEL_PAGES = 4,
  MODEL_PAD_POS = 7,
  MODEL_PAD_PAGE = -1,
  MODEL_MAX_ROWS = 256,
  MODEL_SLOTS = 8,
  MODEL_PAGE_LIMIT = 1000
};

typedef struct model {
  cgr_slot ids, pos, pages, cu_k, cu_q, bias, out, out_pages;
  /* Test switches. */
  int sync_during_capture; /* 1: return its error, 2: ignore it */
  uint32_t fail_bucket;    /* the step fails for this bucket... */
  int fail_set;            /* ...and set */
  int smaller_needs_more;  /* smaller buckets ask for more scratch */
  test_gate *hold;         /* when set, the next graph run waits on it */
  int runs;                /* how often the step function ran */
} model;

/* Declares the model's slots on rt (page ids checked in [0, 999] in
 * validation mode). */
void model_declare(cgr_runtime *rt, model *m);
/* The same, returning the first failure instead of failing the test (for
 * callbacks, and for fault injection). */
cgr_status model_try_declare(cgr_runtime *rt, model *m);

/* The step function (cgr_step_fn); user is the model. */
cgr_status model_step(cgr_step *step, void *user);

/* A runtime on the backend under test with these buckets and the model
 * declared. */
cgr_runtime *model_runtime(const uint32_t *buckets, size_t n, int allow_eager,
                           model *m);
/* The same with config->validate `validate` (model_runtime's is 1: the
 * default config's 0 runs the step path's unchecked fast paths). */
cgr_runtime *model_runtime_validating(const uint32_t *buckets, size_t n,
                                      int allow_eager, int validate, model *m);

/* The same, with the model's step captured. */
cgr_runtime *model_captured_runtime(const uint32_t *buckets, size_t n,
                                    int allow_eager, model *m);

/* model_captured_runtime with buckets 1, 2, 4, 8, validation off (the
 * replay's owned plans, issue 23) and the replay mode `mode`. */
cgr_runtime *model_unvalidated_runtime(model *m, cgr_replay_mode mode);

/* One step's inputs on the host: `rows` rows, the first `live` random (from
 * seed), the rest padding. */
typedef struct model_inputs {
  uint32_t rows;
  int32_t ids[MODEL_MAX_ROWS], pos[MODEL_MAX_ROWS];
  int32_t pages[MODEL_MAX_ROWS * MODEL_PAGES];
  int32_t cu_k[MODEL_MAX_ROWS + 1];
} model_inputs;

void model_make_inputs(model_inputs *in, uint32_t live, uint32_t rows,
                       unsigned seed);

int32_t model_expected_out(const model_inputs *in, uint32_t padded_batch,
                           uint32_t row);

/* Opens a batch of `rows` rows and gives every input slot of the model
 * from `in` in host memory, except `skip` (-1: none), which the caller
 * gives. */
cgr_batch *model_begin_batch(cgr_runtime *rt, const model *m,
                             const model_inputs *in, uint32_t rows,
                             cgr_slot skip);

/* Checks `live` rows of both outputs (device addresses) against the inputs;
 * copies out[] into out_copy when not NULL. */
void model_check_outputs(cgr_runtime *rt, const void *out,
                         const void *out_pages, const model_inputs *in,
                         uint32_t padded_batch, uint32_t live,
                         int32_t *out_copy);

#endif /* CGR_TESTS_MODEL_H */
