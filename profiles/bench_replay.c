/*
 * bench_replay: what one decode step costs the host in each replay mode,
 * against the floor of a bare graph launch.
 *
 * The step is synthetic but has the metadata a serving engine passes:
 * input_ids, positions, seq_lens, out_loc (ROWS, int32), cu_seqlens_k
 * (PREFIX), cu_seqlens_q (CONSTANT, 0..bs), a page_table of W int32 pages
 * per row (ROWS), and an OUTPUT `out` (one int32 per row). Its graph has G
 * small kernels over a scratch buffer of padded_batch ints: an arange
 * (ones), then adds that read input_ids + positions, seq_lens, out_loc,
 * cu_seqlens_k, cu_seqlens_q and the last page_table row, G - 8 filler
 * adds, and a last add that writes `out`. Every row's `out` depends on
 * its row of every input and the first min(bs, W) rows on the last
 * page_table row (the end of the largest copy), so a wrong copy shows.
 *
 * Each configuration (bucket, pages per row W, kernels G) gets its own
 * runtime with that one bucket, captured once (and a second one whose
 * input_ids is fed, for the _feed methods). Every step is a full batch
 * (batch = bucket) with new values (four sets of values in turn), so
 * nothing is skipped but the constant. The values lie in host memory of
 * the kind --source picks, and with `both` (the default) every method
 * runs once per source, on the same runtime:
 *
 *   host     pageable arrays (CGR_SOURCE_HOST): cgr stages them into its
 *            pinned staging with the CPU, then copies from there
 *   pinned   page-locked arrays (CGR_SOURCE_PINNED, cgr__be_pinned_alloc):
 *            the device's copy reads them directly; the way
 *            peers/torch_replay.py's `torch` method feeds PyTorch, so
 *            these are the rows to compare it with
 *
 * Methods, run in this order for each source:
 *
 *   floor    cgr__be_graph_launch of the captured exec of set n mod 2, its
 *            inputs already in place (loaded once by two replays from the
 *            source: its time does not depend on it)
 *   naive    CGR_REPLAY_NAIVE: a copy per slot, then the graph
 *   fused    CGR_REPLAY_FUSED: one fused copy, then the graph
 *   double   CGR_REPLAY_DOUBLE_BUFFERED: the copy on the side stream
 *   ingraph  CGR_REPLAY_IN_GRAPH: the copy is the graph's first node
 *            (it reads cgr's staging, so the CPU copies a pinned source
 *            there too)
 *   pipelined
 *            CGR_REPLAY_PIPELINED, driven with its one-step lookahead:
 *            step 0 staged (cgr_replay_stage, in the warm-up), then per
 *            step the batch of step n + 1 and cgr_replay_ahead, which
 *            launches step n, whose graph loads step n + 1's inputs in a
 *            branch beside the step; after the timed steps,
 *            cgr_replay_ahead(NULL) launches the last staged step and
 *            ends the run (its output is the one checked)
 *   fused_feed, double_feed, pipelined_feed
 *            CGR_REPLAY_FUSED, CGR_REPLAY_DOUBLE_BUFFERED and
 *            CGR_REPLAY_PIPELINED (as above) on a second
 *            runtime of the configuration whose step also writes an
 *            OUTPUT next_ids = input_ids + 1 (one more kernel) and feeds
 *            it into input_ids (cgr_slot_feed: the graph ends with a copy
 *            into the other set's input_ids), as cgr-decode's step feeds
 *            its sampled tokens. After a method's first step, input_ids
 *            comes by cgr_batch_feedback: every row in place for three
 *            steps of four (nothing to copy: the graph wrote them), and on
 *            the fourth, row 0 leaves, the others move up one and a new
 *            row joins at the end (a gather from the previous step's
 *            next_ids and a copy of the new row, which both wait for the
 *            previous graph). The other inputs come from the source as
 *            above. In double_feed only that fed part of the load waits
 *            for the previous step's graph; the rest overlaps it. In
 *            pipelined_feed the fed part (the gather, the new row) runs
 *            inside step n's graph after the step, the rest beside it.
 *
 * Per method: a warm-up, then `steps` steps back to back. host_us is the
 * CLOCK_MONOTONIC time of cgr_batch_begin + cgr_batch_input (prepare_us)
 * + cgr_replay for one step (pipelined: the next step's batch calls +
 * cgr_replay_ahead; the floor: its graph launch), as median and p99. The
 * backend calls of each timed step (cgr_counters_get before and after its
 * cgr calls, outside the timed part: the benchmark's own events are not
 * counted) give graphs, kernels, copies, memsets, events (records +
 * waits) and host waits per step; the pipelined mode asks for 1 graph,
 * no kernel or copy of its own, and 1 event record. Before each step,
 * outside the timed part, the loop waits for an event it recorded on the
 * main stream after step n - 2: two steps stay in flight, enough for the
 * copy of one to overlap the graph of the other, and host_us is the
 * host's own cost, never time spent blocked on a device that runs behind
 * (the engine's staging wait, inside cgr_replay, then finds staging
 * free). gpu_step_us is the time between two timing events on the main
 * stream, one before the first timed step and one after the last,
 * divided by the steps: when the host is slower than the device this is
 * the host's pace, not the graph's length. The output of each method's
 * last step is checked against the host's own sum (exit 1 on a
 * mismatch).
 *
 * On the host backend the "device" is CPU threads: every number is a CPU
 * timing ("timing":"cpu") and means nothing next to a GPU's.
 *
 * Output (bench_replay_report.c): a table, one group of rows per
 * configuration, its headers the JSON fields; --json: JSON lines on
 * stdout instead; --out FILE: JSON lines to FILE as well.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "bench_replay.h"
#include "capture/capture.h"
#include "cgr/cgr.h"
#include "kernels/basic.h"
#include "runtime/backend.h"
#include "runtime/runtime.h"

static const cgr_replay_mode method_modes[REPLAY_METHOD_COUNT] = {
    CGR_REPLAY_NAIVE, /* unused: the floor bypasses the engine */
    CGR_REPLAY_NAIVE,           CGR_REPLAY_FUSED,
    CGR_REPLAY_DOUBLE_BUFFERED, CGR_REPLAY_IN_GRAPH,
    CGR_REPLAY_PIPELINED,       CGR_REPLAY_FUSED,
    CGR_REPLAY_DOUBLE_BUFFERED, CGR_REPLAY_PIPELINED};

/* The methods that run on the fed runtime. */
static int method_is_fed(replay_method m) {
  return m == REPLAY_FUSED_FEED || m == REPLAY_DOUBLE_FEED ||
         m == REPLAY_PIPELINED_FEED;
}

/* ---- running the methods ------------------------------------------------- */

/* Adds to *spent what the backend was asked between two snapshots. */
static void count_calls(const cgr_counters *before, const cgr_counters *after,
                        cgr_counters *spent) {
  spent->graph_launches += after->graph_launches - before->graph_launches;
  spent->kernel_launches += after->kernel_launches - before->kernel_launches;
  spent->copies += after->copies - before->copies;
  spent->memsets += after->memsets - before->memsets;
  spent->event_records += after->event_records - before->event_records;
  spent->event_waits += after->event_waits - before->event_waits;
  spent->synchronizations += after->synchronizations - before->synchronizations;
}

/* The calls of `steps` timed steps, per step, and the launches they add
 * up to. */
static void calls_per_step(const cgr_counters *spent, long steps,
                           replay_result *res) {
  double n = (double)steps;
  res->calls.graphs = (double)spent->graph_launches / n;
  res->calls.kernels = (double)spent->kernel_launches / n;
  res->calls.copies = (double)spent->copies / n;
  res->calls.memsets = (double)spent->memsets / n;
  res->calls.events = (double)(spent->event_records + spent->event_waits) / n;
  res->calls.syncs = (double)spent->synchronizations / n;
  res->launches_per_step = res->calls.graphs + res->calls.kernels +
                           res->calls.copies + res->calls.memsets;
}

/* Step n of a method: its batch, then cgr_replay. With `ahead` (the
 * pipelined mode, step n staged before) the batch is step n + 1's and
 * cgr_replay_ahead launches step n and stages it. *prepare_us and
 * *host_us get the host time of the batch calls and of the whole step;
 * `spent`, when not NULL, the backend calls of the step's cgr calls
 * (the snapshots are taken outside the timed part; the batch calls ask
 * the backend nothing, so these are the replay call's). */
static int replay_step(workload *w, long n, int ahead, double *prepare_us,
                       double *host_us, cgr_ticket *ticket,
                       cgr_counters *spent) {
  cgr_counters before, after;
  if (spent != NULL)
    CHECK(w->rt, cgr_counters_get(w->rt, &before), "cgr_counters_get");
  double t0 = bench_now_us();
  cgr_batch *batch = NULL;
  cgr_status status = workload_batch(w, ahead ? n + 1 : n, &batch);
  double t1 = bench_now_us();
  if (status != CGR_OK)
    return replay_fail_call(w->rt, status, "filling the batch");
  status = ahead ? cgr_replay_ahead(w->rt, batch, ticket)
                 : cgr_replay(w->rt, batch, ticket);
  double t2 = bench_now_us();
  if (status != CGR_OK)
    return replay_fail_call(w->rt, status,
                            ahead ? "cgr_replay_ahead" : "cgr_replay");
  if (spent != NULL) {
    CHECK(w->rt, cgr_counters_get(w->rt, &after), "cgr_counters_get");
    count_calls(&before, &after, spent);
  }
  *prepare_us = t1 - t0;
  *host_us = t2 - t0;
  return 0;
}

/* The pipelined mode's first step: staged, not launched (its inputs load
 * with one fused copy; the graph of step n loads step n + 1's). */
static int stage_first(workload *w) {
  cgr_batch *batch = NULL;
  cgr_status status = workload_batch(w, 0, &batch);
  if (status != CGR_OK)
    return replay_fail_call(w->rt, status, "filling the batch");
  CHECK(w->rt, cgr_replay_stage(w->rt, batch), "cgr_replay_stage");
  return 0;
}

/* `out` as the device holds it at `device` equals `want`. */
static int check_output(workload *w, const void *device, const int32_t *want,
                        const char *name) {
  uint32_t bs = w->shape.bucket;
  CHECK(w->rt,
        cgr__be_memcpy_async(w->be, w->main_stream, w->readback, device,
                             bs * sizeof(int32_t)),
        "reading the output back");
  CHECK(w->rt, cgr__be_stream_synchronize(w->be, w->main_stream),
        "synchronizing the read-back");
  for (uint32_t i = 0; i < bs; ++i) {
    if (w->readback[i] != want[i]) {
      fprintf(stderr,
              "bench_replay: WRONG RESULT: bucket %u, %u pages per row, %u "
              "kernels, %s: out[%u] is %d, expected %d\n",
              bs, w->shape.width, w->shape.kernels, name, i, w->readback[i],
              want[i]);
      return -1;
    }
  }
  return 0;
}

/* The timing events around the timed steps: steps per gpu_step_us. */
static int gpu_time(bench *b, workload *w, double *out) {
  CHECK(w->rt, cgr__be_event_synchronize(w->be, w->end),
        "synchronizing the end event");
  float ms = 0.0f;
  CHECK(w->rt, cgr__be_event_elapsed_ms(w->be, w->start, w->end, &ms),
        "reading the timing events");
  *out = (double)ms * 1e3 / (double)b->opt.steps;
  return 0;
}

/* Untimed, before step n: waits for the event recorded after step n - 2
 * (set k) if it has not passed yet, so at most two steps are in flight.
 * It blocks rather than polls: on the host backend a polling thread takes
 * a CPU from the stream workers it waits for. */
static int wait_step_before_last(workload *w, int k) {
  cgr_status status = cgr__be_event_query(w->be, w->launched[k]);
  if (status == CGR_E_NOT_READY)
    status = cgr__be_event_synchronize(w->be, w->launched[k]);
  CHECK(w->rt, status, "waiting for step n - 2");
  return 0;
}

/* Bare graph launches of the captured execs, set n mod 2, the inputs
 * loaded once before by two replays. */
static int run_floor(bench *b, workload *w, replay_result *res) {
  cgr_ticket tickets[2];
  double unused_prepare, unused_host;
  CHECK(w->rt, cgr_set_replay_mode(w->rt, CGR_REPLAY_FUSED),
        "cgr_set_replay_mode");
  for (int v = 0; v < 2; ++v) {
    if (replay_step(w, v, 0, &unused_prepare, &unused_host, &tickets[v],
                    NULL) != 0)
      return -1;
    w->set_variant[tickets[v].set] = v;
  }
  CHECK(w->rt, cgr_synchronize(w->rt), "cgr_synchronize");

  cgr_counters before, after, spent;
  memset(&spent, 0, sizeof spent);
  long total = b->warmup + b->opt.steps;
  int last = 0;
  for (long n = 0; n < total; ++n) {
    int k = (int)(n % 2);
    long timed = n - b->warmup;
    if (timed == 0)
      CHECK(w->rt, cgr__be_event_record(w->be, w->start, w->main_stream),
            "recording the start event");
    if (n >= 2 && wait_step_before_last(w, k) != 0)
      return -1;
    CHECK(w->rt, cgr_counters_get(w->rt, &before), "cgr_counters_get");
    double t0 = bench_now_us();
    cgr_status status =
        cgr__be_graph_launch(w->be, w->execs[k], w->main_stream);
    double t1 = bench_now_us();
    CHECK(w->rt, status, "the floor's graph launch");
    CHECK(w->rt, cgr_counters_get(w->rt, &after), "cgr_counters_get");
    if (timed >= 0)
      count_calls(&before, &after, &spent);
    CHECK(w->rt, cgr__be_event_record(w->be, w->launched[k], w->main_stream),
          "recording the floor's event");
    if (timed >= 0) {
      b->host_us[timed] = t1 - t0;
      b->prepare_us[timed] = 0.0;
    }
    last = k;
  }
  CHECK(w->rt, cgr__be_event_record(w->be, w->end, w->main_stream),
        "recording the end event");
  if (gpu_time(b, w, &res->gpu_step_us) != 0)
    return -1;
  /* The launch alone: 1 graph, no event (the floor's are the bench's). */
  calls_per_step(&spent, b->opt.steps, res);
  res->bytes_per_step = 0.0;

  void *out = NULL;
  CHECK(w->rt, cgr_slot_address(w->rt, w->out, last, 0, &out),
        "cgr_slot_address");
  return check_output(w, out,
                      w->expected +
                          (size_t)w->set_variant[last] * w->shape.bucket,
                      "floor");
}

/* Replays in one mode. The pipelined mode stages step 0 first, launches
 * step n while it stages step n + 1, and ends the run with one more step
 * (cgr_replay_ahead(NULL), after the timed ones): its output is the one
 * checked. */
static int run_mode(bench *b, workload *w, replay_method m,
                    replay_result *res) {
  cgr_replay_mode mode = method_modes[m];
  int ahead = mode == CGR_REPLAY_PIPELINED;
  CHECK(w->rt, cgr_set_replay_mode(w->rt, mode), "cgr_set_replay_mode");
  cgr_counters spent;
  memset(&spent, 0, sizeof spent);
  cgr_replay_stats stats_before, stats_after;
  cgr_ticket tickets[2];
  long total = b->warmup + b->opt.steps;
  if (ahead && stage_first(w) != 0)
    return -1;
  for (long n = 0; n < total; ++n) {
    long timed = n - b->warmup;
    if (timed == 0) {
      CHECK(w->rt, cgr_replay_stats_get(w->rt, mode, &stats_before),
            "cgr_replay_stats_get");
      CHECK(w->rt, cgr__be_event_record(w->be, w->start, w->main_stream),
            "recording the start event");
    }
    int k = (int)(n % 2);
    if (n >= 2 && wait_step_before_last(w, k) != 0)
      return -1;
    double prepare = 0.0, host = 0.0;
    if (replay_step(w, n, ahead, &prepare, &host, &tickets[k],
                    timed >= 0 ? &spent : NULL) != 0)
      return -1;
    if (w->fed)
      workload_fed_reference(w, n); /* untimed */
    /* Untimed, after all the step put on the main stream (the in-graph
     * mode's staging_free record included): what step n + 2 waits for. */
    CHECK(w->rt, cgr__be_event_record(w->be, w->launched[k], w->main_stream),
          "recording the step's event");
    if (timed >= 0) {
      b->host_us[timed] = host;
      b->prepare_us[timed] = prepare;
    }
  }
  CHECK(w->rt, cgr__be_event_record(w->be, w->end, w->main_stream),
        "recording the end event");
  CHECK(w->rt, cgr_replay_stats_get(w->rt, mode, &stats_after),
        "cgr_replay_stats_get");
  if (gpu_time(b, w, &res->gpu_step_us) != 0)
    return -1;
  calls_per_step(&spent, b->opt.steps, res);
  /* The pipelined mode: the plans of steps warmup + 1 .. total, each
   * staged by a timed step. */
  res->bytes_per_step =
      (double)(stats_after.bytes_copied - stats_before.bytes_copied) /
      (double)b->opt.steps;

  long last_step = total - 1;
  if (ahead) {
    /* The run's end: the last staged step launches, nothing is staged. */
    last_step = total;
    CHECK(w->rt, cgr_replay_ahead(w->rt, NULL, &tickets[total % 2]),
          "cgr_replay_ahead(NULL)");
    if (w->fed)
      workload_fed_reference(w, total);
  }
  const cgr_ticket *last = &tickets[last_step % 2];
  CHECK(w->rt, cgr_ticket_wait(w->rt, last), "cgr_ticket_wait");
  void *out = NULL;
  CHECK(w->rt, cgr_output(w->rt, last, w->out, &out), "cgr_output");
  const int32_t *want =
      w->fed ? w->fed_expected
             : w->expected + (size_t)(last_step % VARIANTS) * w->shape.bucket;
  if (check_output(w, out, want, replay_method_names[m]) != 0)
    return -1;
  CHECK(w->rt, cgr_synchronize(w->rt), "cgr_synchronize");
  return 0;
}

/* ---- the grid ------------------------------------------------------------ */

/* Every method with the inputs from `source` (the _feed ones on the fed
 * workload); a row for each. */
static int run_source(bench *b, workload *plain, workload *fed,
                      replay_source source) {
  replay_result results[REPLAY_METHOD_COUNT];
  memset(results, 0, sizeof results);
  plain->source = fed->source = source;
  for (int m = 0; m < REPLAY_METHOD_COUNT; ++m) {
    replay_result *res = &results[m];
    workload *w = method_is_fed((replay_method)m) ? fed : plain;
    int rc = m == REPLAY_FLOOR ? run_floor(b, w, res)
                               : run_mode(b, w, (replay_method)m, res);
    if (rc != 0)
      return -1;
    bench_percentiles(b->host_us, b->opt.steps, b->sorted, &res->host_median,
                      99, &res->host_p99);
    bench_percentiles(b->prepare_us, b->opt.steps, b->sorted,
                      &res->prepare_median, 99, NULL);
  }
  double floor_us = results[REPLAY_FLOOR].host_median;
  double naive_us = results[REPLAY_NAIVE].host_median;
  for (int m = 0; m < REPLAY_METHOD_COUNT; ++m) {
    replay_row r = {.shape = plain->shape,
                    .source = source,
                    .method = (replay_method)m,
                    .res = results[m]};
    r.ratio_floor = floor_us > 0 ? results[m].host_median / floor_us : 0.0;
    r.ratio_naive = naive_us > 0 ? results[m].host_median / naive_us : 0.0;
    if (replay_report_add(&b->report, &r) != 0)
      return -1;
  }
  return 0;
}

/* Two runtimes and captures for the configuration, plain and fed; each
 * source in turn. */
static int run_config(bench *b, replay_shape s) {
  workload plain, fed;
  int rc = workload_open(b, &plain, s, 0);
  if (rc == 0)
    rc = workload_open(b, &fed, s, 1);
  else
    memset(&fed, 0, sizeof fed);
  for (int src = 0; src < REPLAY_SOURCE_COUNT && rc == 0; ++src)
    if (b->opt.sources[src])
      rc = run_source(b, &plain, &fed, (replay_source)src);
  workload_release(&fed);
  workload_release(&plain);
  return rc;
}

static int run_grid(bench *b) {
  for (size_t i = 0; i < b->bucket_count; ++i)
    for (size_t j = 0; j < b->width_count; ++j)
      for (size_t k = 0; k < b->kernel_count; ++k) {
        replay_shape s = {b->buckets[i], b->widths[j], b->kernels[k]};
        if (run_config(b, s) != 0)
          return -1;
      }
  return 0;
}

static void choose_grid(bench *b) {
  static const uint32_t full_buckets[] = {1, 8, 64, 256};
  static const uint32_t full_widths[] = {16, 128, 2048};
  static const uint32_t full_kernels[] = {8, 64, 512};
  static const uint32_t quick_buckets[] = {1, 64};
  static const uint32_t quick_widths[] = {16, 128};
  static const uint32_t quick_kernels[] = {8, 64};
  static const uint32_t smoke_buckets[] = {8};
  static const uint32_t smoke_widths[] = {16};
  static const uint32_t smoke_kernels[] = {8};
  long steps = 10000;
  switch (b->opt.common.grid) {
  case BENCH_GRID_FULL:
    b->buckets = full_buckets, b->bucket_count = 4;
    b->widths = full_widths, b->width_count = 3;
    b->kernels = full_kernels, b->kernel_count = 3;
    b->warmup = 200;
    break;
  case BENCH_GRID_QUICK:
    b->buckets = quick_buckets, b->bucket_count = 2;
    b->widths = quick_widths, b->width_count = 2;
    b->kernels = quick_kernels, b->kernel_count = 2;
    b->warmup = 50;
    steps = 300;
    break;
  case BENCH_GRID_SMOKE:
    b->buckets = smoke_buckets, b->bucket_count = 1;
    b->widths = smoke_widths, b->width_count = 1;
    b->kernels = smoke_kernels, b->kernel_count = 1;
    b->warmup = 10;
    steps = 50;
    break;
  }
  if (!b->opt.steps_given)
    b->opt.steps = steps;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *to) {
  fprintf(to,
          "usage: bench_replay [--backend auto|cuda|host] "
          "[--source host|pinned|both]\n"
          "                    [--steps N] [--quick] [--smoke] [--json] "
          "[--out FILE]\n"
          "\n"
          "Per-step host time, device step time and backend calls of each "
          "replay mode\n"
          "(naive, fused, double, ingraph, pipelined; fused_feed, "
          "double_feed and\n"
          "pipelined_feed with a fed input_ids) against a bare graph launch "
          "(floor), over\n"
          "buckets {1, 8, 64, 256} x pages per row {16, 128, 2048} x graph "
          "kernels\n"
          "{8, 64, 512}, with the inputs in pageable and in pinned host "
          "memory.\n"
          "\n"
          "  --steps N      timed steps per configuration and mode (default "
          "10000)\n"
          "  --source S     where the inputs lie: host (pageable, "
          "CGR_SOURCE_HOST),\n"
          "                 pinned (page-locked, CGR_SOURCE_PINNED: what "
          "peers/\n"
          "                 torch_replay.py's torch method copies from) or "
          "both\n"
          "                 (default): every method once per source\n");
  bench_usage_common(to,
                     "buckets {1, 64}, pages {16, 128}, kernels {8, 64}, "
                     "300 steps",
                     "one configuration (8, 16, 8), 50 steps (the tests)");
}

/* --source host|pinned|both. */
static int parse_source(const bench_arg *arg, options *opt) {
  int host = strcmp(arg->value, "host") == 0;
  int pinned = strcmp(arg->value, "pinned") == 0;
  if (strcmp(arg->value, "both") == 0)
    host = pinned = 1;
  if (!host && !pinned) {
    fprintf(stderr, "%s: --source must be host, pinned or both, not '%s'\n",
            arg->program, arg->value);
    return BENCH_ARG_USAGE;
  }
  opt->sources[REPLAY_SOURCE_HOST] = host;
  opt->sources[REPLAY_SOURCE_PINNED] = pinned;
  return BENCH_ARG_OK;
}

/* bench_replay's own options: --steps N, --source S. */
static int parse_option(const bench_arg *arg, void *user) {
  options *opt = user;
  if (strcmp(arg->name, "--source") == 0)
    return parse_source(arg, opt);
  if (strcmp(arg->name, "--steps") != 0)
    return BENCH_ARG_UNKNOWN;
  opt->steps_given = 1;
  return bench_parse_long(arg, 1, MAX_STEPS, &opt->steps);
}

static int bench_open(bench *b) {
  choose_grid(b);
  size_t n = (size_t)b->opt.steps;
  b->host_us = malloc(n * sizeof *b->host_us);
  b->prepare_us = malloc(n * sizeof *b->prepare_us);
  b->sorted = malloc(n * sizeof *b->sorted);
  if (!b->host_us || !b->prepare_us || !b->sorted) {
    fprintf(stderr, "bench_replay: out of host memory (samples)\n");
    return -1;
  }
  return replay_report_open(&b->report, &b->opt.common, b->opt.steps, b->warmup,
                            b->opt.sources);
}

static int bench_close(bench *b) {
  int rc = replay_report_close(&b->report);
  free(b->host_us);
  free(b->prepare_us);
  free(b->sorted);
  return rc;
}

int main(int argc, char **argv) {
  bench b;
  memset(&b, 0, sizeof b);
  b.opt.sources[REPLAY_SOURCE_HOST] = b.opt.sources[REPLAY_SOURCE_PINNED] = 1;
  static const char *const valued[] = {"--steps", "--source", NULL};
  const bench_cli cli = {.program = "bench_replay",
                         .valued = valued,
                         .usage = usage,
                         .own_option = parse_option};
  int exit_code = bench_parse_args(&cli, argc, argv, &b.opt.common, &b.opt);
  if (exit_code >= 0)
    return exit_code;
  double began = bench_now_us();
  int rc = bench_open(&b);
  if (rc == 0)
    rc = run_grid(&b);
  if (rc == 0 && !b.opt.common.json) {
    replay_report_print(&b.report);
    bench_print_end(b.report.cuda,
                    "double is slowest here because each step hands work "
                    "between CPU threads (the side stream is a second "
                    "worker)",
                    began);
  }
  if (bench_close(&b) != 0)
    rc = -1;
  return rc == 0 ? 0 : 1;
}
