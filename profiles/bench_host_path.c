/*
 * bench_host_path: cgr's own work per decode step, made countable. Under
 * callgrind (profiles/bench_host_path.sh, issue 23) only the calls inside
 * bench_host_path_step are counted: instructions retired, which do not
 * depend on how busy the machine is, as a timing does.
 *
 * The runtime is shaped like mini-sglang's decode step: six inputs
 * (input_ids, positions, seq_lens, out_loc: ROWS of one int32; page_table:
 * ROWS of PAGES_PER_ROW int32; cu_seqlens_k: PREFIX), a CONSTANT
 * cu_seqlens_q (0..bs, the built-in fill), an OUTPUT next_ids, fed into
 * input_ids (cgr_slot_feed) in the runs with feedback, and buckets 4 and
 * 8. Its step is a few basic kernels: next_ids = input_ids + positions +
 * seq_lens + out_loc + cu_seqlens_k[1..] + cu_seqlens_q + the page table
 * (its padded rows summed in PAGES_PER_ROW slices of a bucket's length) +
 * 1, so every element of every input reaches a live row of the output.
 *
 * The step sequence is fixed and repeats every PERIOD steps: batch 8,
 * and every fifth step batch 3 (bucket 4, one padded row); new values
 * in every input at every step (VARIANTS sets in turn), but the page
 * table changes every PERIOD steps and is given with
 * cgr_batch_unchanged where the buffer set the step loads holds it
 * already (4 steps of 10). With feedback, input_ids comes by
 * cgr_batch_feedback after the first step: rows in place; on the third
 * step of five, row 0 leaves, the others move up and a new row joins;
 * at the shrink to 3 rows, rows 0, 2 and 4 stay; at the growth back to
 * 8, five new rows join them.
 *
 * Each configuration (mode, feedback, source) gets a runtime of its own:
 * `warmup` steps (every graph, pipelined form and staging buffer made),
 * then `steps` steps, each made by one call of bench_host_path_step:
 * cgr_batch_begin, one call per input slot (input, unchanged or
 * feedback), cgr_replay. The pipelined mode stages the first step with
 * cgr_replay_stage in the warm-up; then each call builds the next step's
 * batch and launches the staged one with cgr_replay_ahead, and
 * cgr_replay_ahead(NULL) ends the run after the counted steps. The
 * values every step reads are made once, before the runs, in pageable or
 * page-locked (cgr_pinned_alloc) memory, and what each step gives which
 * slot is planned before the call. After it the harness waits for the
 * step's ticket, so the device is idle at every call and no call blocks
 * or finds the previous step in flight; it works out next_ids on the host
 * at every step and, every seventh step and the last one, reads it back
 * and compares: a mismatch exits 1. None of that is counted.
 *
 * Output: a table of the configurations (steps, checked steps, the median
 * host time of a step's calls: a CPU timing, which under valgrind means
 * nothing; the script reads only the instruction counts); --json and
 * --out give the same as JSON lines.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "cgr/cgr.h"
#include "kernels/basic.h"

/* The counted function must keep its name and address: not inlined, not
 * cloned under another name (GCC's constprop and isra clones), and not
 * folded with the warm-up's identical twin (GCC's identical code
 * folding: callgrind would see one function under either name). */
#if defined(__clang__)
#define HOST_PATH_NOINLINE __attribute__((noinline))
#else
#define HOST_PATH_NOINLINE __attribute__((noipa))
#endif

#define PROGRAM "bench_host_path"
#define CHECK(rt, call, what) BENCH_CHECK_CALL(PROGRAM, rt, call, what)

enum {
  MAX_BATCH = 8,
  SMALL_BATCH = 3, /* bucket 4: one padded row */
  SMALL_BUCKET = 4,
  PAGES_PER_ROW = 4,
  VARIANTS = 4, /* sets of input values, used in turn */
  PERIOD = 10,  /* the step sequence repeats */
  CHECK_EVERY = 7
};

/* The input slots, in the order a batch gives them. */
enum {
  IN_IDS,
  IN_POSITIONS,
  IN_SEQ_LENS,
  IN_OUT_LOC,
  IN_PAGES,
  IN_CU_K,
  IN_COUNT
};

static const char *const input_names[IN_COUNT] = {"input_ids",  "positions",
                                                  "seq_lens",   "out_loc",
                                                  "page_table", "cu_seqlens_k"};

typedef enum mode_index {
  MODE_NAIVE,
  MODE_FUSED,
  MODE_DOUBLE,
  MODE_INGRAPH,
  MODE_PIPELINED,
  MODE_COUNT
} mode_index;

static const char *const mode_names[MODE_COUNT] = {"naive", "fused", "double",
                                                   "ingraph", "pipelined"};
static const cgr_replay_mode mode_values[MODE_COUNT] = {
    CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED, CGR_REPLAY_DOUBLE_BUFFERED,
    CGR_REPLAY_IN_GRAPH, CGR_REPLAY_PIPELINED};

static const char *const source_names[2] = {"host", "pinned"};

/* ---- the step sequence --------------------------------------------------- */

/* How a step gives one slot. */
typedef enum given { GIVEN_DATA, GIVEN_UNCHANGED, GIVEN_FEEDBACK } given;

/* What one step's calls pass, worked out before the counted call. */
typedef struct step_plan {
  uint32_t batch_size;
  cgr_slot slots[IN_COUNT];
  given how[IN_COUNT];
  cgr_source source;
  const void *data[IN_COUNT]; /* GIVEN_DATA */
  size_t bytes[IN_COUNT];
  const int32_t *prev_rows; /* GIVEN_FEEDBACK: input_ids */
  const int32_t *new_rows;  /* NULL when no row is new */
  size_t new_rows_bytes;
} step_plan;

static const int32_t rows_in_place[MAX_BATCH] = {0, 1, 2, 3, 4, 5, 6, 7};
static const int32_t rows_moved[MAX_BATCH] = {1, 2, 3, 4, 5, 6, 7, -1};
static const int32_t rows_kept[SMALL_BATCH] = {0, 2, 4};
static const int32_t rows_grown[MAX_BATCH] = {0, 1, 2, -1, -1, -1, -1, -1};

static uint32_t batch_of(long n) {
  return n % 5 == 4 ? SMALL_BATCH : MAX_BATCH;
}
static uint32_t bucket_of(uint32_t batch) {
  return batch <= SMALL_BUCKET ? SMALL_BUCKET : MAX_BATCH;
}
static int values_of(long n) { return (int)(n % VARIANTS); }
static int pages_of(long n) { return (int)(n / PERIOD % VARIANTS); }

/* The set step n loads (n mod 2) was last loaded by step n - 2: the page
 * table is unchanged when that step had the same rows and pages. */
static int pages_unchanged(long n) {
  return n >= 2 && batch_of(n) == batch_of(n - 2) &&
         pages_of(n) == pages_of(n - 2);
}

/* Fed step n > 0: which row of step n - 1 each row continues (-1: new). */
static const int32_t *prev_rows_of(long n) {
  if (batch_of(n) == SMALL_BATCH)
    return rows_kept;
  if (batch_of(n - 1) == SMALL_BATCH)
    return rows_grown;
  return n % 5 == 2 ? rows_moved : rows_in_place;
}

/* ---- one configuration --------------------------------------------------- */

typedef struct path_run {
  cgr_runtime *rt;
  mode_index mode;
  int fed;
  int pinned;
  cgr_slot inputs[IN_COUNT];
  cgr_slot cu_q; /* CONSTANT: 0..bs */
  cgr_slot next_ids;
  size_t elems[IN_COUNT];           /* per variant: the largest batch's */
  int32_t *values[IN_COUNT];        /* VARIANTS * elems[i], pageable */
  int32_t *pinned_values[IN_COUNT]; /* the same, page-locked; or NULL */
  int32_t expected[MAX_BATCH]; /* the latest step's next_ids, by the host */
  int32_t readback[MAX_BATCH];
  long checked;
} path_run;

static size_t input_bytes(int input, uint32_t batch) {
  if (input == IN_CU_K)
    return (batch + 1u) * sizeof(int32_t);
  return (size_t)batch * (input == IN_PAGES ? PAGES_PER_ROW : 1) *
         sizeof(int32_t);
}

static void plan_step(const path_run *r, long n, step_plan *plan) {
  uint32_t batch = batch_of(n);
  memset(plan, 0, sizeof *plan);
  plan->batch_size = batch;
  plan->source = r->pinned ? CGR_SOURCE_PINNED : CGR_SOURCE_HOST;
  for (int i = 0; i < IN_COUNT; ++i) {
    int variant = i == IN_PAGES ? pages_of(n) : values_of(n);
    const int32_t *values = r->pinned ? r->pinned_values[i] : r->values[i];
    plan->slots[i] = r->inputs[i];
    plan->how[i] = GIVEN_DATA;
    plan->data[i] = values + (size_t)variant * r->elems[i];
    plan->bytes[i] = input_bytes(i, batch);
  }
  if (pages_unchanged(n))
    plan->how[IN_PAGES] = GIVEN_UNCHANGED;
  if (!r->fed || n == 0)
    return;
  plan->how[IN_IDS] = GIVEN_FEEDBACK;
  plan->prev_rows = prev_rows_of(n);
  uint32_t first_new = 0, new_count = 0;
  for (uint32_t j = 0; j < batch; ++j)
    if (plan->prev_rows[j] < 0 && new_count++ == 0)
      first_new = j;
  if (new_count > 0) {
    plan->new_rows =
        r->values[IN_IDS] + (size_t)values_of(n) * r->elems[IN_IDS] + first_new;
    plan->new_rows_bytes = new_count * sizeof(int32_t);
  }
}

/* ---- the counted calls --------------------------------------------------- */

/* What a step's last call does with its batch. */
typedef enum step_call { CALL_REPLAY, CALL_AHEAD, CALL_STAGE } step_call;

/* A step's public calls: the batch, then the replay. Inlined into the
 * counted function and into the warm-up's, so both run the same code. */
static inline __attribute__((always_inline)) cgr_status
step_calls(cgr_runtime *rt, const step_plan *plan, step_call call,
           cgr_ticket *ticket) {
  cgr_batch *batch = NULL;
  cgr_status status = cgr_batch_begin(rt, plan->batch_size, &batch);
  for (int i = 0; i < IN_COUNT && status == CGR_OK; ++i) {
    if (plan->how[i] == GIVEN_DATA)
      status = cgr_batch_input(batch, plan->slots[i], plan->source,
                               plan->data[i], plan->bytes[i]);
    else if (plan->how[i] == GIVEN_UNCHANGED)
      status = cgr_batch_unchanged(batch, plan->slots[i]);
    else
      status = cgr_batch_feedback(batch, plan->slots[i], plan->prev_rows,
                                  plan->new_rows, plan->new_rows_bytes);
  }
  if (status != CGR_OK) {
    cgr_batch_discard(batch);
    return status;
  }
  if (call == CALL_STAGE)
    return cgr_replay_stage(rt, batch);
  if (call == CALL_AHEAD)
    return cgr_replay_ahead(rt, batch, ticket);
  return cgr_replay(rt, batch, ticket);
}

/* The one function callgrind counts (--toggle-collect): external, so its
 * name is in the symbol table. */
cgr_status bench_host_path_step(cgr_runtime *rt, const step_plan *plan,
                                step_call call, cgr_ticket *ticket);

HOST_PATH_NOINLINE cgr_status bench_host_path_step(cgr_runtime *rt,
                                                   const step_plan *plan,
                                                   step_call call,
                                                   cgr_ticket *ticket) {
  return step_calls(rt, plan, call, ticket);
}

/* The same calls, not counted: the warm-up and the pipelined run's
 * first stage. */
static HOST_PATH_NOINLINE cgr_status warm_up_step(cgr_runtime *rt,
                                                  const step_plan *plan,
                                                  step_call call,
                                                  cgr_ticket *ticket) {
  return step_calls(rt, plan, call, ticket);
}

/* ---- the step and its reference ------------------------------------------ */

static cgr_status add(cgr_step *step, int32_t *dst, const int32_t *a,
                      const int32_t *b, uint32_t count) {
  cgr__add_i32_args args = {dst, a, b, (int64_t)count};
  return cgr_step_launch(step, &cgr__kernel_add_i32, &args);
}

static cgr_status host_path_step(cgr_step *step, void *user) {
  const path_run *r = user;
  uint32_t padded = cgr_step_padded_batch(step);
  int32_t *ones = NULL;
  cgr_status status =
      cgr_step_scratch(step, padded * sizeof(int32_t), 0, (void **)&ones);
  if (status != CGR_OK)
    return status;
  const int32_t *in[IN_COUNT];
  for (int i = 0; i < IN_COUNT; ++i)
    in[i] = cgr_step_slot(step, r->inputs[i]);
  const int32_t *cu_q = cgr_step_slot(step, r->cu_q);
  int32_t *out = cgr_step_slot(step, r->next_ids);
  cgr__arange_i32_args ones_args = {ones, padded, 1, 0};
  status = cgr_step_launch(step, &cgr__kernel_arange_i32, &ones_args);
  if (status == CGR_OK)
    status = add(step, out, in[IN_IDS], ones, padded);
  if (status == CGR_OK)
    status = add(step, out, out, in[IN_POSITIONS], padded);
  if (status == CGR_OK)
    status = add(step, out, out, in[IN_SEQ_LENS], padded);
  if (status == CGR_OK)
    status = add(step, out, out, in[IN_OUT_LOC], padded);
  if (status == CGR_OK)
    status = add(step, out, out, in[IN_CU_K] + 1, padded);
  if (status == CGR_OK)
    status = add(step, out, out, cu_q, padded);
  for (uint32_t c = 0; c < PAGES_PER_ROW && status == CGR_OK; ++c)
    status = add(step, out, out, in[IN_PAGES] + (size_t)c * padded, padded);
  return status;
}

/* next_ids of step n, as the host works it out: the ids the step read
 * (fed: from the previous step's next_ids) plus what the other inputs of
 * its values add, the page table padded to the bucket with zeros. */
static void reference_step(path_run *r, long n) {
  uint32_t batch = batch_of(n), padded = bucket_of(batch);
  size_t v = (size_t)values_of(n);
  const int32_t *fresh = r->values[IN_IDS] + v * r->elems[IN_IDS];
  const int32_t *prev = r->fed && n > 0 ? prev_rows_of(n) : NULL;
  int32_t ids[MAX_BATCH];
  for (uint32_t j = 0; j < batch; ++j)
    ids[j] = prev != NULL && prev[j] >= 0 ? r->expected[prev[j]] : fresh[j];
  const int32_t *pos = r->values[IN_POSITIONS] + v * r->elems[IN_POSITIONS];
  const int32_t *lens = r->values[IN_SEQ_LENS] + v * r->elems[IN_SEQ_LENS];
  const int32_t *loc = r->values[IN_OUT_LOC] + v * r->elems[IN_OUT_LOC];
  const int32_t *cu_k = r->values[IN_CU_K] + v * r->elems[IN_CU_K];
  int32_t pages[MAX_BATCH * PAGES_PER_ROW] = {0};
  memcpy(pages, r->values[IN_PAGES] + (size_t)pages_of(n) * r->elems[IN_PAGES],
         input_bytes(IN_PAGES, batch));
  for (uint32_t i = 0; i < batch; ++i) {
    uint32_t sum = (uint32_t)ids[i] + (uint32_t)pos[i] + (uint32_t)lens[i] +
                   (uint32_t)loc[i] + (uint32_t)cu_k[i + 1] + i + 1u;
    for (uint32_t c = 0; c < PAGES_PER_ROW; ++c)
      sum += (uint32_t)pages[c * padded + i];
    r->expected[i] = (int32_t)sum;
  }
}

/* After step n's call, not counted: waits for it, works out its
 * next_ids, and reads them back to compare every CHECK_EVERY steps and
 * at the `last`. */
static int finish_step(path_run *r, long n, const cgr_ticket *ticket,
                       int last) {
  if (ticket->step != (uint64_t)n) {
    fprintf(stderr, "%s: step %ld got the ticket of step %llu\n", PROGRAM, n,
            (unsigned long long)ticket->step);
    return -1;
  }
  CHECK(r->rt, cgr_ticket_wait(r->rt, ticket), "cgr_ticket_wait");
  reference_step(r, n);
  if (n % CHECK_EVERY != 0 && !last)
    return 0;
  void *device = NULL;
  uint32_t batch = batch_of(n);
  CHECK(r->rt, cgr_output(r->rt, ticket, r->next_ids, &device), "cgr_output");
  CHECK(r->rt, cgr_memcpy(r->rt, r->readback, device, batch * sizeof(int32_t)),
        "reading next_ids back");
  for (uint32_t i = 0; i < batch; ++i)
    if (r->readback[i] != r->expected[i]) {
      fprintf(stderr,
              "%s: WRONG RESULT: %s, feedback %s, %s source, step %ld: "
              "next_ids[%u] is %d, expected %d\n",
              PROGRAM, mode_names[r->mode], r->fed ? "on" : "off",
              source_names[r->pinned], n, i, r->readback[i], r->expected[i]);
      return -1;
    }
  r->checked++;
  return 0;
}

/* ---- opening a configuration --------------------------------------------- */

/* xorshift64: the same values on every run. */
static uint32_t next_random(uint64_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return (uint32_t)(*state >> 32);
}

static int make_values(path_run *r) {
  uint64_t state = UINT64_C(0x9E3779B97F4A7C15);
  for (int i = 0; i < IN_COUNT; ++i) {
    r->elems[i] = input_bytes(i, MAX_BATCH) / sizeof(int32_t);
    r->values[i] = malloc(VARIANTS * r->elems[i] * sizeof(int32_t));
    if (r->values[i] == NULL) {
      fprintf(stderr, "%s: out of host memory\n", PROGRAM);
      return -1;
    }
    for (size_t e = 0; e < VARIANTS * r->elems[i]; ++e)
      r->values[i][e] = (int32_t)(next_random(&state) % 65536);
  }
  for (int v = 0; v < VARIANTS; ++v) { /* cu_seqlens_k: seq_lens' sums */
    int32_t *cu_k = r->values[IN_CU_K] + (size_t)v * r->elems[IN_CU_K];
    const int32_t *lens = r->values[IN_SEQ_LENS] + (size_t)v * MAX_BATCH;
    cu_k[0] = 0;
    for (int j = 0; j < MAX_BATCH; ++j)
      cu_k[j + 1] = cu_k[j] + lens[j];
  }
  if (!r->pinned)
    return 0;
  for (int i = 0; i < IN_COUNT; ++i) {
    size_t bytes = VARIANTS * r->elems[i] * sizeof(int32_t);
    CHECK(r->rt, cgr_pinned_alloc(r->rt, bytes, (void **)&r->pinned_values[i]),
          "cgr_pinned_alloc");
    memcpy(r->pinned_values[i], r->values[i], bytes);
  }
  return 0;
}

static int declare(path_run *r, const char *name, cgr_slot_kind kind,
                   uint64_t row_elems, cgr_slot *out) {
  cgr_slot_desc desc;
  CHECK(r->rt, cgr_slot_desc_init(&desc, name, kind, 4, row_elems),
        "cgr_slot_desc_init");
  if (kind == CGR_SLOT_CONSTANT)
    desc.extra_elems = 1; /* 0..bs: bs + 1 entries */
  CHECK(r->rt, cgr_slot_declare(r->rt, &desc, out), name);
  return 0;
}

/* The runtime, its slots and the capture; then the values. */
static int path_open(path_run *r, cgr_backend_kind backend) {
  static const uint32_t buckets[] = {SMALL_BUCKET, MAX_BATCH};
  cgr_config config;
  CHECK(NULL, cgr_config_init(&config), "cgr_config_init");
  config.backend = backend;
  config.buckets = buckets;
  config.bucket_count = 2;
  config.replay_mode = mode_values[r->mode];
  CHECK(NULL, cgr_runtime_create(&config, &r->rt), "cgr_runtime_create");
  for (int i = 0; i < IN_COUNT; ++i) {
    cgr_slot_kind kind = i == IN_CU_K ? CGR_SLOT_PREFIX : CGR_SLOT_ROWS;
    if (declare(r, input_names[i], kind, i == IN_PAGES ? PAGES_PER_ROW : 1,
                &r->inputs[i]) != 0)
      return -1;
  }
  if (declare(r, "cu_seqlens_q", CGR_SLOT_CONSTANT, 1, &r->cu_q) != 0 ||
      declare(r, "next_ids", CGR_SLOT_OUTPUT, 1, &r->next_ids) != 0)
    return -1;
  if (r->fed)
    CHECK(r->rt, cgr_slot_feed(r->rt, r->next_ids, r->inputs[IN_IDS]),
          "cgr_slot_feed(next_ids, input_ids)");
  CHECK(r->rt, cgr_capture(r->rt, host_path_step, r), "cgr_capture");
  return make_values(r);
}

static void path_close(path_run *r) {
  if (r->rt != NULL)
    cgr_synchronize(r->rt);
  for (int i = 0; i < IN_COUNT; ++i) {
    if (r->pinned_values[i] != NULL)
      cgr_pinned_free(r->rt, r->pinned_values[i]);
    free(r->values[i]);
  }
  cgr_runtime_destroy(r->rt);
  memset(r, 0, sizeof *r);
}

/* ---- running a configuration --------------------------------------------- */

typedef struct options {
  bench_options common;
  int modes[MODE_COUNT]; /* --mode: nonzero for each to run */
  int feedback[2];       /* --feedback: [0] off, [1] on */
  int sources[2];        /* --source: [0] host, [1] pinned */
  long steps, warmup;
  int steps_given, warmup_given;
} options;

/* warmup + steps steps; *median_us gets the counted calls' median. */
static int path_steps(path_run *r, const options *opt, double *samples,
                      double *median_us) {
  step_call call = r->mode == MODE_PIPELINED ? CALL_AHEAD : CALL_REPLAY;
  int ahead = call == CALL_AHEAD;
  long total = opt->warmup + opt->steps;
  step_plan plan;
  cgr_ticket ticket;
  if (ahead) {
    plan_step(r, 0, &plan);
    CHECK(r->rt, warm_up_step(r->rt, &plan, CALL_STAGE, NULL),
          "cgr_replay_stage");
  }
  for (long n = 0; n < total; ++n) {
    plan_step(r, ahead ? n + 1 : n, &plan);
    long counted = n - opt->warmup;
    double began = bench_now_us();
    cgr_status status = counted < 0
                            ? warm_up_step(r->rt, &plan, call, &ticket)
                            : bench_host_path_step(r->rt, &plan, call, &ticket);
    if (counted >= 0)
      samples[counted] = bench_now_us() - began;
    CHECK(r->rt, status, ahead ? "cgr_replay_ahead" : "cgr_replay");
    if (finish_step(r, n, &ticket, !ahead && n + 1 == total) != 0)
      return -1;
  }
  if (ahead) { /* the last staged step, and the end of the run */
    CHECK(r->rt, cgr_replay_ahead(r->rt, NULL, &ticket),
          "cgr_replay_ahead(NULL)");
    if (finish_step(r, total, &ticket, 1) != 0)
      return -1;
  }
  double *scratch = samples + opt->steps;
  bench_percentiles(samples, opt->steps, scratch, median_us, 50, NULL);
  return 0;
}

/* The table's columns: the JSON fields they show. */
static const char *const column_names[] = {"mode",    "feedback",
                                           "source",  "steps",
                                           "checked", "host_us_median"};
enum { COLUMNS = sizeof column_names / sizeof column_names[0] };

/* Where a configuration's results go: the JSON lines and the table. */
typedef struct path_report {
  bench_output out;
  bench_columns columns;
  bench_meta meta;
} path_report;

static int run_one(const options *opt, path_report *report, mode_index mode,
                   int fed, int pinned, double *samples) {
  path_run r;
  memset(&r, 0, sizeof r);
  r.mode = mode;
  r.fed = fed;
  r.pinned = pinned;
  double median_us = 0.0;
  int rc = path_open(&r, opt->common.backend);
  if (rc == 0)
    rc = path_steps(&r, opt, samples, &median_us);
  long checked = r.checked;
  path_close(&r);
  if (rc != 0)
    return -1;
  char line[512];
  snprintf(line, sizeof line,
           "{\"bench\":\"host_path\",\"backend\":\"%s\",\"timing\":\"%s\","
           "\"mode\":\"%s\",\"feedback\":%s,\"source\":\"%s\",\"steps\":%ld,"
           "\"warmup\":%ld,\"checked\":%ld,\"host_us_median\":%.3f}",
           report->meta.backend_name, report->meta.cuda ? "gpu" : "cpu",
           mode_names[mode], fed ? "true" : "false", source_names[pinned],
           opt->steps, opt->warmup, checked, median_us);
  bench_emit(&report->out, line);
  if (opt->common.json)
    return 0;
  const bench_columns *columns = &report->columns;
  bench_cell_text(columns, 0, mode_names[mode]);
  bench_cell_text(columns, 1, fed ? "on" : "off");
  bench_cell_text(columns, 2, source_names[pinned]);
  bench_cell_number(columns, 3, (double)opt->steps, 0);
  bench_cell_number(columns, 4, (double)checked, 0);
  bench_cell_number(columns, 5, median_us, 3);
  bench_row_end();
  return 0;
}

/* Every configuration the options ask for; the in-graph mode has no
 * feedback (cgr_batch_feedback refuses it). */
static int run_all(const options *opt, path_report *report) {
  double *samples = malloc(2 * (size_t)opt->steps * sizeof *samples);
  if (samples == NULL) {
    fprintf(stderr, "%s: out of host memory\n", PROGRAM);
    return -1;
  }
  bench_columns_init(&report->columns, COLUMNS, column_names, 9);
  if (!opt->common.json)
    bench_columns_header(&report->columns);
  int rc = 0;
  for (int m = 0; m < MODE_COUNT && rc == 0; ++m)
    for (int fed = 0; fed < 2 && rc == 0; ++fed)
      for (int pinned = 0; pinned < 2 && rc == 0; ++pinned)
        if (opt->modes[m] && opt->feedback[fed] && opt->sources[pinned] &&
            !(m == MODE_INGRAPH && fed))
          rc = run_one(opt, report, (mode_index)m, fed, pinned, samples);
  free(samples);
  return rc;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *to) {
  fprintf(to,
          "usage: bench_host_path [--mode M] [--feedback F] [--source S]\n"
          "                       [--steps N] [--warmup N] [--backend B] "
          "[--quick] [--smoke]\n"
          "                       [--json] [--out FILE]\n"
          "\n"
          "A fixed sequence of decode steps on a mini-sglang-shaped "
          "runtime, each made\n"
          "by one call of bench_host_path_step, the function "
          "profiles/bench_host_path.sh\n"
          "has callgrind count; outputs checked against the host's sums.\n"
          "\n"
          "  --mode M       naive, fused, double, ingraph, pipelined or all "
          "(default)\n"
          "  --feedback F   on (input_ids fed by next_ids), off, or both "
          "(default;\n"
          "                 ingraph runs without)\n"
          "  --source S     host (pageable), pinned (page-locked) or both "
          "(default)\n"
          "  --steps N      counted steps per configuration (default 2000)\n"
          "  --warmup N     steps before them (default 100)\n");
  bench_usage_common(to, "500 steps after 50", "50 steps after 20 (the tests)");
}

/* "a", "b" or "both" into flags[0], flags[1]. */
static int parse_pair(const bench_arg *arg, const char *a, const char *b,
                      int *flags) {
  int first = strcmp(arg->value, a) == 0, second = strcmp(arg->value, b) == 0;
  if (strcmp(arg->value, "both") == 0)
    first = second = 1;
  if (!first && !second) {
    fprintf(stderr, "%s: %s must be %s, %s or both, not '%s'\n", PROGRAM,
            arg->name, a, b, arg->value);
    return BENCH_ARG_USAGE;
  }
  flags[0] = first;
  flags[1] = second;
  return BENCH_ARG_OK;
}

static int parse_mode(const bench_arg *arg, int *modes) {
  int all = strcmp(arg->value, "all") == 0, found = all;
  for (int m = 0; m < MODE_COUNT; ++m) {
    modes[m] = all || strcmp(arg->value, mode_names[m]) == 0;
    found |= modes[m];
  }
  if (!found) {
    fprintf(stderr,
            "%s: --mode must be naive, fused, double, ingraph, pipelined "
            "or all, not '%s'\n",
            PROGRAM, arg->value);
    return BENCH_ARG_USAGE;
  }
  return BENCH_ARG_OK;
}

static int parse_option(const bench_arg *arg, void *user) {
  options *opt = user;
  if (strcmp(arg->name, "--mode") == 0)
    return parse_mode(arg, opt->modes);
  if (strcmp(arg->name, "--feedback") == 0)
    return parse_pair(arg, "off", "on", opt->feedback);
  if (strcmp(arg->name, "--source") == 0)
    return parse_pair(arg, "host", "pinned", opt->sources);
  if (strcmp(arg->name, "--steps") == 0) {
    opt->steps_given = 1;
    return bench_parse_long(arg, 1, 10000000L, &opt->steps);
  }
  if (strcmp(arg->name, "--warmup") == 0) {
    opt->warmup_given = 1;
    return bench_parse_long(arg, 0, 1000000L, &opt->warmup);
  }
  return BENCH_ARG_UNKNOWN;
}

/* The grid's step counts, where --steps and --warmup leave them. */
static void choose_steps(options *opt) {
  long steps = 2000, warmup = 100;
  if (opt->common.grid == BENCH_GRID_QUICK)
    steps = 500, warmup = 50;
  else if (opt->common.grid == BENCH_GRID_SMOKE)
    steps = 50, warmup = 20;
  if (!opt->steps_given)
    opt->steps = steps;
  if (!opt->warmup_given)
    opt->warmup = warmup;
}

int main(int argc, char **argv) {
  options opt;
  memset(&opt, 0, sizeof opt);
  for (int m = 0; m < MODE_COUNT; ++m)
    opt.modes[m] = 1;
  opt.feedback[0] = opt.feedback[1] = opt.sources[0] = opt.sources[1] = 1;
  static const char *const valued[] = {"--mode",  "--feedback", "--source",
                                       "--steps", "--warmup",   NULL};
  const bench_cli cli = {.program = PROGRAM,
                         .valued = valued,
                         .usage = usage,
                         .own_option = parse_option};
  int exit_code = bench_parse_args(&cli, argc, argv, &opt.common, &opt);
  if (exit_code >= 0)
    return exit_code;
  choose_steps(&opt);
  double began = bench_now_us();
  path_report report;
  memset(&report, 0, sizeof report);
  const bench_meta *meta = &report.meta;
  if (bench_meta_probe(PROGRAM, opt.common.backend, "host_path",
                       &report.meta) != 0)
    return BENCH_EXIT_FAILED;
  bench_print_start(meta, &opt.common);
  if (bench_output_open(&report.out, PROGRAM, &opt.common) != 0)
    return BENCH_EXIT_FAILED;
  char line[2048];
  snprintf(line, sizeof line,
           "{%s,\"grid\":\"%s\",\"steps\":%ld,\"warmup\":%ld,"
           "\"counted_function\":\"bench_host_path_step\","
           "\"backend_reason\":%s%s}",
           meta->fields, bench_grid_name(opt.common.grid), opt.steps,
           opt.warmup, meta->reason_json, meta->note);
  bench_emit(&report.out, line);
  int rc = run_all(&opt, &report);
  if (rc == 0 && !opt.common.json)
    bench_print_end(meta->cuda,
                    "profiles/bench_host_path.sh counts its instructions "
                    "instead",
                    began);
  if (bench_output_close(&report.out) != 0)
    rc = -1;
  return rc == 0 ? BENCH_EXIT_OK : BENCH_EXIT_FAILED;
}
