#include "bench_replay_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const replay_method_names[REPLAY_METHOD_COUNT] = {
    "floor",     "naive",      "fused",       "double",        "ingraph",
    "pipelined", "fused_feed", "double_feed", "pipelined_feed"};

const char *const replay_source_names[REPLAY_SOURCE_COUNT] = {"host", "pinned"};

int replay_report_open(replay_report *report, const bench_options *options,
                       long steps, int warmup, const int *sources) {
  memset(report, 0, sizeof *report);
  report->steps = steps;
  report->warmup = warmup;
  bench_meta meta;
  if (bench_meta_probe("bench_replay", options->backend, "replay", &meta) != 0)
    return -1;
  report->cuda = meta.cuda;
  snprintf(report->backend_name, sizeof report->backend_name, "%s",
           meta.backend_name);
  bench_print_start(&meta, options);
  if (bench_output_open(&report->out, "bench_replay", options) != 0)
    return -1;
  char names[64] = "";
  size_t used = 0;
  for (int s = 0; s < REPLAY_SOURCE_COUNT; ++s)
    if (sources[s])
      used += (size_t)snprintf(names + used, sizeof names - used, "%s\"%s\"",
                               used > 0 ? "," : "", replay_source_names[s]);
  char line[2048];
  snprintf(line, sizeof line,
           "{%s,\"grid\":\"%s\",\"steps\":%ld,\"warmup\":%d,"
           "\"sources\":[%s],\"max_steps_in_flight\":2,"
           "\"backend_reason\":%s%s}",
           meta.fields, bench_grid_name(options->grid), steps, warmup, names,
           meta.reason_json, meta.note);
  bench_emit(&report->out, line);
  return 0;
}

static void emit_row(replay_report *report, const replay_row *r) {
  char line[1024];
  snprintf(line, sizeof line,
           "{\"bench\":\"replay\",\"backend\":\"%s\",\"timing\":\"%s\","
           "\"mode\":\"%s\",\"source\":\"%s\",\"bucket\":%u,"
           "\"pages_per_row\":%u,\"kernels\":%u,\"steps\":%ld,\"warmup\":%d,"
           "\"host_us_median\":%.3f,\"host_us_p99\":%.3f,"
           "\"prepare_us_median\":%.3f,\"gpu_step_us\":%.3f,"
           "\"ratio_to_floor\":%.3f,\"ratio_to_naive\":%.3f,"
           "\"launches_per_step\":%.2f,\"bytes_per_step\":%.0f,"
           "\"graphs_per_step\":%.2f,\"kernels_per_step\":%.2f,"
           "\"copies_per_step\":%.2f,\"memsets_per_step\":%.2f,"
           "\"events_per_step\":%.2f,\"syncs_per_step\":%.2f}",
           report->backend_name, report->cuda ? "gpu" : "cpu",
           replay_method_names[r->method], replay_source_names[r->source],
           r->shape.bucket, r->shape.width, r->shape.kernels, report->steps,
           report->warmup, r->res.host_median, r->res.host_p99,
           r->res.prepare_median, r->res.gpu_step_us, r->ratio_floor,
           r->ratio_naive, r->res.launches_per_step, r->res.bytes_per_step,
           r->res.calls.graphs, r->res.calls.kernels, r->res.calls.copies,
           r->res.calls.memsets, r->res.calls.events, r->res.calls.syncs);
  bench_emit(&report->out, line);
}

int replay_report_add(replay_report *report, const replay_row *row) {
  emit_row(report, row);
  if (report->row_count == report->row_capacity) {
    size_t capacity = report->row_capacity ? report->row_capacity * 2 : 64;
    replay_row *rows = realloc(report->rows, capacity * sizeof *rows);
    if (rows == NULL) {
      fprintf(stderr, "bench_replay: out of host memory (table)\n");
      return -1;
    }
    report->rows = rows;
    report->row_capacity = capacity;
  }
  report->rows[report->row_count++] = *row;
  return 0;
}

static int same_shape(const replay_shape *a, const replay_shape *b) {
  return a->bucket == b->bucket && a->width == b->width &&
         a->kernels == b->kernels;
}

void replay_report_print(const replay_report *report) {
  char device_step[32];
  bench_device_header(device_step, sizeof device_step, "gpu_step_us",
                      report->cuda);
  const char *const names[] = {"mode",
                               "source",
                               "host_us_median",
                               "host_us_p99",
                               "prepare_us_median",
                               "ratio_to_floor",
                               "ratio_to_naive",
                               device_step,
                               "launches_per_step",
                               "graphs_per_step",
                               "kernels_per_step",
                               "copies_per_step",
                               "events_per_step"};
  bench_columns columns;
  bench_columns_init(&columns, 13, names, 14); /* "pipelined_feed" */
  for (size_t i = 0; i < report->row_count; ++i) {
    const replay_row *r = &report->rows[i];
    if (i == 0 || !same_shape(&r->shape, &report->rows[i - 1].shape)) {
      printf("\nbucket %u, pages_per_row %u, kernels %u\n", r->shape.bucket,
             r->shape.width, r->shape.kernels);
      bench_columns_header(&columns);
    }
    bench_cell_text(&columns, 0, replay_method_names[r->method]);
    bench_cell_text(&columns, 1, replay_source_names[r->source]);
    bench_cell_number(&columns, 2, r->res.host_median, 2);
    bench_cell_number(&columns, 3, r->res.host_p99, 2);
    bench_cell_number(&columns, 4, r->res.prepare_median, 2);
    bench_cell_number(&columns, 5, r->ratio_floor, 2);
    bench_cell_number(&columns, 6, r->ratio_naive, 2);
    bench_cell_number(&columns, 7, r->res.gpu_step_us, 2);
    bench_cell_number(&columns, 8, r->res.launches_per_step, 1);
    bench_cell_number(&columns, 9, r->res.calls.graphs, 1);
    bench_cell_number(&columns, 10, r->res.calls.kernels, 1);
    bench_cell_number(&columns, 11, r->res.calls.copies, 1);
    bench_cell_number(&columns, 12, r->res.calls.events, 1);
    bench_row_end();
  }
  printf("\nsource: where the step's inputs lie: host = pageable memory "
         "(CGR_SOURCE_HOST: cgr stages it with the CPU), pinned = "
         "page-locked memory (CGR_SOURCE_PINNED: the device's copy reads it, "
         "except ingraph's, which reads cgr's staging); a floor row only "
         "loaded its inputs from it, once, untimed\n"
         "host_us_median, host_us_p99: CLOCK_MONOTONIC time of one step's "
         "cgr_batch_begin + cgr_batch_input + cgr_replay (pipelined: of the "
         "next step's batch + cgr_replay_ahead; floor: its bare graph "
         "launch), over %ld steps\n"
         "prepare_us_median: the cgr_batch_* part of it; ratio_to_floor, "
         "ratio_to_naive: host_us_median over the floor's, over naive's, "
         "of the same source\n"
         "gpu_step_us: the device's timing events around the %ld "
         "back-to-back steps (two in flight), per step%s\n"
         "launches_per_step: kernels + copies + memsets + graph launches; "
         "graphs_per_step, kernels_per_step, copies_per_step, "
         "events_per_step (event records + stream waits): the backend calls "
         "of one timed step (cgr_counters_get around the step's cgr calls; "
         "the floor: around its launch)\n"
         "pipelined: CGR_REPLAY_PIPELINED with its one-step lookahead: "
         "cgr_replay_stage for the first step, then per step the batch of "
         "step n + 1 and cgr_replay_ahead, which launches step n (whose "
         "graph loads step n + 1's inputs in a branch beside the step); a "
         "run ends with cgr_replay_ahead(NULL), untimed\n"
         "fused_feed, double_feed, pipelined_feed: fused, double and "
         "pipelined on a runtime of their "
         "own whose step also writes next_ids = input_ids + 1 (one more "
         "kernel), which the graph's last node copies into the other "
         "set's input_ids (cgr_slot_feed, as cgr-decode's step does); "
         "input_ids then comes by cgr_batch_feedback: rows in place for "
         "three steps of four, and on the fourth row 0 leaves, the rest "
         "move up and a new row joins (a gather and a copy that must wait "
         "for the previous graph); their ratios divide by the plain "
         "floor's and naive's\n",
         report->steps, report->steps,
         report->cuda ? ""
                      : "; (cpu): the host backend's events, on CPU threads");
}

int replay_report_close(replay_report *report) {
  int rc = bench_output_close(&report->out);
  free(report->rows);
  report->rows = NULL;
  report->row_count = report->row_capacity = 0;
  return rc;
}
