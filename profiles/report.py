#!/usr/bin/env python3
"""report.py: turns benchmark results into docs/benchmarks.md and PNG plots.

Usage: profiles/report.py [RESULTS_DIR ...] [--docs DIR] [--no-plots]

Each RESULTS_DIR is a folder of a GPU run (profiles/gpu_run.sh's
results.tar.gz, unpacked by profiles/gpu_unpack.sh) (default: every folder
under profiles/results/, newest first): its machine.txt and the JSON lines
of the benchmarks (replay.jsonl, torch_replay.jsonl, fused_copy.jsonl,
capture.jsonl, streams.jsonl, decode*.jsonl). A file that is missing is
left out; a line that is not JSON stops the report with its file and line.
A replay row's "source" says where its inputs lay (host: pageable, pinned:
page-locked); rows from before bench_replay had --source lack it and are
read as host. The peer's `torch` copies from pinned tensors and is put
beside cgr's pinned rows, `torch_pageable` beside its host rows.

Writes DIR/benchmarks.md (default docs/) and DIR/benchmarks/<folder>-*.png.
Every section names its device, driver, CUDA version and date. Results of
the host backend are CPU timings and are labelled so; the targets of the
issues are held only against GPU results.

Plots need matplotlib (Debian: python3-matplotlib). Without it, or with
--no-plots, the tables are written and the report says the plots are not.

Exit status: 0 written, 1 bad input, 2 bad usage.
"""

import argparse
import json
import os
import re
import sys

from report_plots import Plots

REPLAY_MODES = ["floor", "naive", "fused", "double", "ingraph", "pipelined",
                "fused_feed", "double_feed", "pipelined_feed", "torch_floor",
                "torch", "torch_pageable"]
# bench_replay's modes on a runtime whose input_ids is fed by the step
# (cgr_slot_feed), as cgr-decode's is; results from before they existed
# lack them.
FEED_MODES = ["fused_feed", "double_feed", "pipelined_feed"]
# CGR_REPLAY_PIPELINED, driven with its one-step lookahead
# (cgr_replay_stage, cgr_replay_ahead); results from before it lack them.
PIPELINED_MODES = ["pipelined", "pipelined_feed"]
# What a pipelined step may ask of the backend, from its "*_per_step"
# fields: one graph launch, no kernel, copy or memset of its own, at most
# one event call (records + waits).
PIPELINED_CALLS = {"graphs": (1, 1), "kernels": (0, 0), "copies": (0, 0),
                   "memsets": (0, 0), "events": (0, 1)}
# The pipelined mode's GPU targets: host time per step over a bare graph
# launch (the floor), and GPU step time over the graph alone (us).
PIPELINED_HOST_LIMIT = 1.1
PIPELINED_GPU_EXTRA_US = 0.5
# The per-step backend calls bench_replay reports (cgr_counters around
# the step's cgr calls); results from before it lack them.
CALL_FIELDS = [("graphs", "graphs_per_step"), ("kernels", "kernels_per_step"),
               ("copies", "copies_per_step"), ("memsets", "memsets_per_step"),
               ("events", "events_per_step"), ("host waits", "syncs_per_step")]
# Where a replay row's inputs lay on the host: pageable memory ("host",
# cgr's CGR_SOURCE_HOST) or page-locked ("pinned", CGR_SOURCE_PINNED).
SOURCES = ["host", "pinned"]
# The PyTorch peer's copies: `torch` from pinned tensors, `torch_pageable`
# from pageable ones, so each sits beside cgr's rows of that source.
# `torch_floor` copies nothing: like cgr's floor, it is beside every source.
PEER_SOURCES = {"torch": "pinned", "torch_pageable": "host"}
# The PyTorch peer's rows (peers/torch_replay.py), not bench_replay's.
PEER_MODES = ["torch_floor", "torch", "torch_pageable"]


class BadInput(Exception):
    pass


# ---- reading ----------------------------------------------------------------

def read_jsonl(path):
    """The JSON objects of a JSON-lines file; lines not starting with '{'
    (a table, progress) are skipped."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise BadInput(f"{path}:{number}: not JSON: {e}") from e
    return rows


def read_machine(folder):
    """What machine.txt says: device, driver, CUDA, date (or None)."""
    info = {"device": None, "driver": None, "cuda": None, "date": None}
    path = os.path.join(folder, "machine.txt")
    if not os.path.exists(path):
        return info
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    m = re.search(r"^date: (\S+)", text, re.M)
    if m:
        info["date"] = m.group(1)
    # nvidia-smi --format=csv: a header line, then name, driver, ...
    m = re.search(r"^name, driver_version.*\n([^\n]+)", text, re.M)
    if m:
        fields = [x.strip() for x in m.group(1).split(",")]
        info["device"] = fields[0]
        if len(fields) > 1:
            info["driver"] = fields[1]
    m = re.search(r"release ([0-9.]+)", text)
    if m:
        info["cuda"] = m.group(1)
    return info


class Results:
    """One results folder."""

    def __init__(self, folder):
        self.folder = folder
        self.name = os.path.basename(os.path.normpath(folder))
        self.machine = read_machine(folder)
        self.files = {}
        for kind, pattern in [("replay", r"^replay\.jsonl$"),
                              ("torch", r"^torch_replay\.jsonl$"),
                              ("fused_copy", r"^fused_copy\.jsonl$"),
                              ("capture", r"^capture\.jsonl$"),
                              ("streams", r"^streams\.jsonl$"),
                              ("batcher", r"^batcher\.jsonl$"),
                              ("lanes", r"^lanes\.jsonl$"),
                              ("tp", r"^tp\.jsonl$"),
                              ("decode", r"^decode.*\.jsonl$")]:
            rows = []
            for entry in sorted(os.listdir(folder)):
                if re.match(pattern, entry):
                    rows += read_jsonl(os.path.join(folder, entry))
            self.files[kind] = rows

    def meta(self, kind):
        for row in self.files[kind]:
            if row.get("kind") == "meta":
                return row
        return None

    def rows(self, kind):
        return [r for r in self.files[kind] if "kind" not in r]

    def is_gpu(self):
        for kind in self.files:
            for row in self.files[kind]:
                if row.get("timing") == "gpu":
                    return True
        return False

    def describe(self):
        """Device, driver, CUDA, date: from machine.txt, else the metas."""
        m = dict(self.machine)
        for kind in ("replay", "fused_copy", "capture", "streams", "batcher",
                     "lanes", "tp"):
            meta = self.meta(kind)
            if not meta:
                continue
            m["device"] = m["device"] or meta.get("device")
            if not m["driver"] and meta.get("driver_version"):
                m["driver"] = cuda_version(meta["driver_version"])
            if not m["cuda"] and meta.get("runtime_version"):
                m["cuda"] = cuda_version(meta["runtime_version"])
            m["date"] = m["date"] or meta.get("date")
        return m


def cuda_version(n):
    """13000 -> '13.0' (CUDA's encoding of versions)."""
    return f"{n // 1000}.{(n % 1000) // 10}"


# ---- tables -----------------------------------------------------------------

def fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i else "---" for i in range(len(header)))
             + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(x) for x in row) + " |")
    return "\n".join(lines)


def row_source(r):
    """Where a replay row's inputs lay. Results from before bench_replay
    had --source carry no "source": their inputs were pageable, "host"."""
    return PEER_SOURCES.get(r["mode"]) or r.get("source") or "host"


def replay_configs(rows):
    """The configurations (bucket, pages, kernels), the rows by
    (bucket, pages, kernels, source, mode), the modes present, and the
    sources present (those of cgr's rows and of the peer's copies)."""
    configs = sorted({(r["bucket"], r["pages_per_row"], r["kernels"])
                      for r in rows})
    by = {}
    for r in rows:
        config = (r["bucket"], r["pages_per_row"], r["kernels"])
        if r["mode"] == "torch_floor":
            for source in SOURCES:
                by[config + (source, r["mode"])] = r
        else:
            by[config + (row_source(r), r["mode"])] = r
    modes = [m for m in REPLAY_MODES if any(r["mode"] == m for r in rows)]
    sources = [s for s in SOURCES
               if any(r["mode"] != "torch_floor" and row_source(r) == s
                      for r in rows)]
    return configs, by, modes, sources


def replay_lines(configs, by, modes, sources):
    """(config, source) pairs that have a row of cgr or of the peer's
    copies, in table order."""
    return [(c, s) for c in configs for s in sources
            if any(c + (s, m) in by for m in modes if m != "torch_floor")]


def replay_intro(out, cgr_rows, peer_rows):
    """What the replay tables show, and where the peer's rows stand."""
    out.append("### Replay: host time per step (bench_replay"
               + (", peers/torch_replay.py" if peer_rows else "")
               + ")\n")
    out.append("Median host microseconds of one step (the batch calls and "
               "the replay; floor: a bare graph launch), and in brackets the "
               "ratio to the floor of the same source. b: bucket, w: pages "
               "per row, g: kernels in the graph. source: where the step's "
               "inputs lay on the host: `host` is pageable memory "
               "(CGR_SOURCE_HOST, which cgr stages with the CPU), `pinned` "
               "page-locked memory (CGR_SOURCE_PINNED, which the device's "
               "copy reads).\n")
    cgr_modes = [m for m in REPLAY_MODES if m not in PEER_MODES]
    missing = [m for m in cgr_modes
               if not any(r["mode"] == m for r in cgr_rows)]
    out.append("The rows bench_replay writes, one per configuration, source "
               "and mode: " + ", ".join(f"`{m}`" for m in cgr_modes)
               + (" (these results predate "
                  + ", ".join(f"`{m}`" for m in missing)
                  + ": no column for them)" if missing else "")
               + ".\n")
    if any(r["mode"] in PIPELINED_MODES for r in cgr_rows):
        out.append("`pipelined` is CGR_REPLAY_PIPELINED driven with its "
                   "one-step lookahead: per step the batch of step n + 1 "
                   "and `cgr_replay_ahead`, which launches step n, whose "
                   "graph loads step n + 1's inputs in a branch beside the "
                   "step (the first step staged by `cgr_replay_stage`, the "
                   "run ended by `cgr_replay_ahead(NULL)`, both untimed). "
                   "Its targets on a GPU: host time per step <= "
                   f"{PIPELINED_HOST_LIMIT}x the floor, GPU step time <= "
                   f"the floor's + {PIPELINED_GPU_EXTRA_US} us.\n")
    if any(r["mode"] in FEED_MODES for r in cgr_rows):
        out.append("`fused_feed`, `double_feed` and `pipelined_feed` are "
                   "`fused`, `double` and `pipelined` "
                   "on a runtime whose step feeds its input_ids "
                   "(cgr_slot_feed: one more kernel, and a copy at the "
                   "graph's end), as cgr-decode's does; input_ids comes by "
                   "cgr_batch_feedback, rows in place for three steps of "
                   "four and moved (a gather and a new row) on the fourth. "
                   "In `double_feed` only the fed rows wait for the "
                   "previous graph, so on a GPU its time per step is "
                   "expected near `double`'s, below `fused_feed`'s; ratios are "
                   "to the plain floor.\n")
    if not peer_rows:
        return
    out.append("The PyTorch peer copies its inputs from pinned tensors "
               "(`torch`), so it is compared with cgr's pinned rows: "
               "`torch` stands on the pinned row of each configuration, "
               "`torch_pageable` (the same copies from pageable tensors) "
               "on the host row, and `torch_floor` (g.replay() alone, "
               "no copy) on both, as cgr's floor is.\n")
    if not any(row_source(r) == "pinned" for r in cgr_rows):
        out.append("These results have no cgr rows from pinned memory "
                   "(bench_replay before --source): nothing of cgr's "
                   "stands beside `torch`.\n")


def host_time_cell(r, floor):
    """A row's host median, and its ratio to the floor when there is one."""
    if r is None:
        return "-"
    if floor and floor["host_us_median"] > 0 and r is not floor:
        ratio = r["host_us_median"] / floor["host_us_median"]
        return f"{r['host_us_median']:.2f} ({ratio:.2f}x)"
    return f"{r['host_us_median']:.2f}"


def replay_section(res, out, plots):
    cgr_rows, peer_rows = res.rows("replay"), res.rows("torch")
    rows = cgr_rows + peer_rows
    if not rows:
        return
    configs, by, modes, sources = replay_configs(rows)
    lines = replay_lines(configs, by, modes, sources)
    replay_intro(out, cgr_rows, peer_rows)
    header = ["config", "source"] + modes
    body = [[f"b={c[0]} w={c[1]} g={c[2]}", source]
            + [host_time_cell(by.get(c + (source, m)),
                              by.get(c + (source, "floor"))) for m in modes]
            for c, source in lines]
    out.append(table(header, body) + "\n")
    unit = "GPU" if res.is_gpu() else "CPU"
    out.append(f"{unit} time per step (timing events around back-to-back "
               "steps, microseconds):\n")
    body = [[f"b={c[0]} w={c[1]} g={c[2]}", source]
            + [by[c + (source, m)]["gpu_step_us"]
               if c + (source, m) in by else None for m in modes]
            for c, source in lines]
    out.append(table(header, body) + "\n")
    calls_table(cgr_rows, out)
    if plots is not None:
        # One source, so the bars stay readable: pinned, the peer's, when
        # cgr has such rows.
        source = ("pinned" if any(row_source(r) == "pinned"
                                  for r in cgr_rows) else "host")
        plot_modes = [m for m in modes
                      if PEER_SOURCES.get(m, source) == source]
        name = plots.replay(res, configs, by, plot_modes, source)
        out.append(f"![host time per step, inputs from {source} memory]"
                   f"({name})\n")


def calls_cell(rows, field):
    """One counter of a mode's rows: its value, or min-max when the
    configurations differ."""
    values = sorted({r[field] for r in rows})
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{values[0]:.2f}-{values[-1]:.2f}"


def calls_table(cgr_rows, out):
    """The backend calls per step of each of cgr's modes, over every
    configuration and source (rows that carry them)."""
    counted = [r for r in cgr_rows
               if all(field in r for _, field in CALL_FIELDS)]
    if not counted:
        return
    out.append("Backend calls per step (cgr_counters around one timed "
               "step's cgr calls, the floor's around its launch; min-max "
               "over the configurations and sources where they differ):\n")
    body = []
    for m in REPLAY_MODES:
        rows = [r for r in counted if r["mode"] == m]
        if rows:
            body.append([m] + [calls_cell(rows, field)
                               for _, field in CALL_FIELDS])
    out.append(table(["mode"] + [name for name, _ in CALL_FIELDS], body)
               + "\n")


def pipelined_calls_ok(r):
    """A pipelined row asks the backend for what PIPELINED_CALLS allows."""
    return all(low <= r[f"{name}_per_step"] <= high
               for name, (low, high) in PIPELINED_CALLS.items())


def fused_copy_section(res, out, plots):
    rows = res.rows("fused_copy")
    rows = [r for r in rows if "error" not in r]
    if not rows:
        return
    out.append("### Fused copy (bench_fused_copy)\n")
    out.append("Median device microseconds per plan, bandwidth, and the "
               "fused kernel's speedup over one copy per operation.\n")
    body = []
    for r in rows:
        body.append([r["config"], r["src"], r["ops"], r["bytes_per_op"],
                     r["method"], r["median_us"], r["gbps"],
                     r.get("host_issue_median_us"),
                     r.get("speedup_vs_per_op")])
    out.append(table(["config", "src", "ops", "bytes/op", "method",
                      "median us", "GB/s", "host issue us", "x per-op"],
                     body) + "\n")
    if plots is not None:
        name = plots.fused_copy(res, rows)
        if name:
            out.append(f"![fused copy]({name})\n")


def capture_section(res, out, plots):
    rows = sorted(res.rows("capture"), key=lambda r: r["bucket"])
    total = [r for r in res.files["capture"] if r.get("kind") == "total"]
    if not rows and not total:
        return
    out.append("### Capture (bench_capture)\n")
    meta = res.meta("capture") or {}
    model = meta.get("model", {})
    if model:
        out.append(f"The example model: {model.get('layers')} layers, hidden "
                   f"{model.get('hidden')}, vocab {model.get('vocab')}, "
                   f"{model.get('dtype')} weights.\n")
    if total:
        t = total[0]
        per_graph = t.get("graph_device_bytes_per_graph")
        out.append(
            f"All {t['buckets']} buckets x 2 sets = {t['graphs']} graphs: "
            f"cgr_capture took {t['eager_capture_ms']:.1f} ms. "
            + (f"The graphs hold {t['graph_device_bytes'] / 2**20:.1f} MiB "
               f"of device memory ({per_graph / 2**20:.3f} MiB per graph); "
               f"the arena ({t['arena_bytes'] / 2**20:.2f} MiB) and slots "
               f"({t['slot_bytes'] / 2**20:.2f} MiB) are shared by all.\n"
               if per_graph is not None else
               "Device memory is not measurable on the host backend.\n"))
    body = [[r["bucket"], r["wall_ms"], r["capture_ms"][0], r["capture_ms"][1],
             r["instantiate_ms"][0], r["instantiate_ms"][1], r["nodes"][0],
             None if r["device_bytes"] is None
             else r["device_bytes"] / 2**20] for r in rows]
    out.append(table(["bucket", "wall ms", "capture 0 ms", "capture 1 ms",
                      "instantiate 0 ms", "instantiate 1 ms", "nodes",
                      "device MiB"], body) + "\n")
    if plots is not None and rows:
        name = plots.capture(res, rows)
        out.append(f"![capture time per bucket]({name})\n")


def streams_section(res, out, plots):
    rows = res.rows("streams")
    if not rows:
        return
    out.append("### Independent per-item updates (bench_streams)\n")
    out.append("Device microseconds per round (one update of all N items) "
               "and in brackets the speedup over sequential launches.\n")
    methods = []
    for r in rows:
        if r["method"] not in methods:
            methods.append(r["method"])
    configs = sorted({(r["n"], r["item_elems"]) for r in rows})
    by = {(r["n"], r["item_elems"], r["method"]): r for r in rows}
    body = []
    for c in configs:
        cells = [c[0], c[1]]
        for m in methods:
            r = by.get(c + (m,))
            cells.append("-" if r is None else
                         f"{r['device_us_per_round']:.2f} "
                         f"({r.get('speedup_vs_sequential', 0):.2f}x)")
        body.append(cells)
    out.append(table(["N", "item floats"] + methods, body) + "\n")
    if plots is not None:
        name = plots.streams(res, configs, by, methods)
        out.append(f"![speedup over sequential]({name})\n")


def batcher_section(res, out, plots):
    rows = res.rows("batcher")
    if not rows:
        return
    out.append("### Request batcher (bench_batcher)\n")
    out.append("Producers submit to one batcher; latency is submit to end, "
               "measured by the producer. `max` is a closed loop (as fast "
               "as the batcher answers); `open` rows offer a fixed rate.\n")
    body = [[r["load"], r.get("offered_rps"), r["achieved_rps"],
             r["latency_us_p50"], r["latency_us_p99"], r["mean_batch"],
             r["busy"], r.get("queue_wait_us_p99")] for r in rows]
    out.append(table(["load", "offered/s", "achieved/s", "p50 us", "p99 us",
                      "mean batch", "busy", "queue wait p99 us"], body)
               + "\n")
    if plots is not None:
        name = plots.batcher(res, rows)
        if name:
            out.append(f"![latency against load]({name})\n")


def lanes_section(res, out):
    rows = res.rows("lanes")
    if not rows:
        return
    out.append("### Lanes (bench_lanes)\n")
    out.append("Step time p50 on one lane and split over two (round robin); "
               "`overlap` rows run an eager prefill on one lane beside a "
               "decode graph on the other. A speedup under 1.05 means two "
               "lanes did not help.\n")
    body = [[r["run"], r["batch"], r.get("prefill_rows"),
             r["one_lane_us_p50"], r["two_lanes_us_p50"],
             r["speedup_two_vs_one"], r.get("speedup_ideal"),
             "no" if r["speedup_two_vs_one"] < 1.05 else "yes"]
            for r in rows]
    out.append(table(["run", "batch", "prefill rows", "one lane us",
                      "two lanes us", "speedup", "ideal", "helped"], body)
               + "\n")


def tp_section(res, out):
    rows = res.rows("tp")
    if not rows:
        return
    meta = res.meta("tp") or {}
    out.append("### Tensor parallel (bench_tp)\n")
    out.append(f"A synthetic decode step of {meta.get('layers', '?')} layers "
               f"(hidden {meta.get('hidden', '?')}, one all-reduce of "
               "[rows x hidden] fp32 each) on a group of "
               f"{meta.get('ranks', '?')} rank(s). `inside`: the all-reduces "
               "captured in the step's graph; `outside`: a graph per "
               "layer's compute, each all-reduce an eager step between them "
               "(cgr's eager step waits for its work). Host us: the step's "
               "cgr calls on the host; step us: until the ticket was "
               "waited; GPU us: CUDA events on rank 0's main stream"
               + ("" if res.is_gpu() else
                  " (none here: these are CPU timings, host backend)")
               + ".\n")
    body = [[r["variant"], r["ranks"], r["batch"], r["host_us_p50"],
             r["host_us_per_rank_p50"], r["step_us_p50"],
             r.get("gpu_us_p50"), r.get("step_vs_inside"),
             r.get("graph_launches_per_step")]
            for r in rows]
    out.append(table(["variant", "ranks", "batch", "host us",
                      "host us per rank", "step us", "GPU us",
                      "step vs inside", "graphs per step"], body) + "\n")


def decode_section(res, out):
    rows = [r for r in res.files["decode"] if r.get("program") == "cgr-decode"]
    if not rows:
        return
    out.append("### cgr-decode\n")
    body = [[r["mode"], r["layers"], r["hidden"], r["requests"],
             r["decode_steps"], r["tokens_per_s"], r["step_p50_ms"],
             r["replay_ms"], r["check"], r["mismatched_steps"]]
            for r in rows]
    out.append(table(["mode", "layers", "hidden", "requests", "decode steps",
                      "tokens/s", "step p50 ms", "replay ms/step", "check",
                      "mismatched"], body) + "\n")


def pipelined_checks(by, c, source, where):
    """The pipelined mode's targets for one configuration and source: host
    time per step against the floor's, GPU step time against the graph
    alone (the floor's), and its backend calls per step."""
    checks = []
    floor = by.get(c + (source, "floor"))
    step = by.get(c + (source, "pipelined"))
    if floor and step:
        if floor["host_us_median"] > 0:
            ratio = step["host_us_median"] / floor["host_us_median"]
            checks.append((f"pipelined host <= {PIPELINED_HOST_LIMIT}x "
                           f"floor, {where} source={source}", ratio,
                           ratio <= PIPELINED_HOST_LIMIT))
        extra = step["gpu_step_us"] - floor["gpu_step_us"]
        checks.append((f"pipelined GPU step <= graph + "
                       f"{PIPELINED_GPU_EXTRA_US} us, {where} "
                       f"source={source} (us over)", extra,
                       extra <= PIPELINED_GPU_EXTRA_US))
    for m in PIPELINED_MODES:
        r = by.get(c + (source, m))
        if r and "graphs_per_step" in r:
            calls = "/".join(f"{r[f'{name}_per_step']:g}"
                             for name in PIPELINED_CALLS)
            checks.append((f"{m} calls per step <= 1 graph/0 kernels/"
                           f"0 copies/0 memsets/1 event, {where} "
                           f"source={source}", calls, pipelined_calls_ok(r)))
    return checks


def targets_section(res, out):
    """The issues' GPU targets, met or missed with the measured ratio."""
    if not res.is_gpu():
        out.append("The issues' targets are GPU targets: they are not held "
                   "against CPU timings.\n")
        return
    checks = []
    rows = res.rows("replay") + res.rows("torch")
    _, by, _, sources = replay_configs(rows) if rows else ([], {}, [], [])

    def host(c, source, m):
        r = by.get(c + (source, m))
        return r["host_us_median"] if r else None

    for c in sorted({k[:3] for k in by}):
        where = f"b={c[0]} w={c[1]} g={c[2]}"
        for source in sources:
            floor, naive = host(c, source, "floor"), host(c, source, "naive")
            for mode, limit in (("double", 1.5), ("ingraph", 1.15)):
                v = host(c, source, mode)
                if v and floor:
                    checks.append((f"{mode} host <= {limit}x floor, {where} "
                                   f"source={source}",
                                   v / floor, v / floor <= limit))
            if c[0] == 64 and c[1] == 128:
                for mode in ("double", "ingraph"):
                    v = host(c, source, mode)
                    if v and naive:
                        checks.append((f"{mode} >= 3x lower than naive, "
                                       f"g={c[2]} source={source}",
                                       naive / v, naive / v >= 3))
            graph = by.get(c + (source, "floor"))
            step = by.get(c + (source, "double"))
            if graph and step:
                extra = step["gpu_step_us"] - graph["gpu_step_us"]
                checks.append((f"double GPU step <= graph + 1 us, {where} "
                               f"source={source} (us over)", extra,
                               extra <= 1))
            checks += pipelined_checks(by, c, source, where)
        # The peer copies from pinned tensors: held against cgr's pinned
        # rows, or, in results that have none, its host rows, said so.
        torch = host(c, "pinned", "torch")
        v, source = host(c, "pinned", "double"), "pinned"
        if v is None:
            v, source = host(c, "host", "double"), "host"
        if torch and v:
            like = ("source=pinned, as torch's" if source == "pinned" else
                    "source=host: no pinned rows; torch's are pinned")
            checks.append((f"double >= 10x lower than torch, {where} "
                           f"({like})", torch / v, torch / v >= 10))
    for t in res.files["capture"]:
        if t.get("kind") == "total":
            s = t["eager_capture_ms"] / 1e3
            checks.append((f"all {t['graphs']} graphs captured in <= 2 s (s)",
                           s, s <= 2))
    if not checks:
        return
    out.append("### Targets\n")
    out.append(table(["target", "measured", "verdict"],
                     [[name, value, "met" if ok else "MISSED"]
                      for name, value, ok in checks]) + "\n")


# ---- the report -------------------------------------------------------------

def section(res, plots):
    m = res.describe()
    gpu = res.is_gpu()
    out = [f"## {res.name}\n"]
    out.append(f"- device: {m['device'] or 'unknown'}"
               + ("" if gpu else " (host backend: CPU timings, not "
                  "comparable with GPU numbers)"))
    out.append(f"- driver: {m['driver'] or '-'}; CUDA: {m['cuda'] or '-'}")
    out.append(f"- date: {m['date'] or 'unknown'}")
    out.append(f"- results: `{shown_path(res.folder)}`\n")
    replay_section(res, out, plots)
    fused_copy_section(res, out, plots)
    capture_section(res, out, plots)
    streams_section(res, out, plots)
    batcher_section(res, out, plots)
    lanes_section(res, out)
    tp_section(res, out)
    decode_section(res, out)
    targets_section(res, out)
    return "\n".join(out)


def shown_path(folder):
    """The folder relative to the repository when it lies inside it."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = os.path.abspath(folder)
    if os.path.commonpath([repo, folder]) == repo:
        return os.path.relpath(folder, repo)
    return folder


def default_folders(root):
    if not os.path.isdir(root):
        return []
    folders = [os.path.join(root, d) for d in os.listdir(root)
               if os.path.isdir(os.path.join(root, d))]
    return sorted(folders, reverse=True)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(
        prog="report.py",
        description="Turns benchmark results into docs/benchmarks.md and "
        "PNG plots.",
        epilog="Exit status: 0 written, 1 bad input, 2 bad usage.")
    parser.add_argument("folders", nargs="*", metavar="RESULTS_DIR",
                        help="results folders (default: profiles/results/*)")
    parser.add_argument("--docs", default=os.path.normpath(
                            os.path.join(here, "..", "docs")),
                        help="where benchmarks.md and benchmarks/ go")
    parser.add_argument("--no-plots", action="store_true",
                        help="tables only")
    args = parser.parse_args(argv)
    folders = args.folders or default_folders(os.path.join(here, "results"))
    for folder in folders:
        if not os.path.isdir(folder):
            parser.error(f"{folder}: not a folder")

    plots, plot_note = None, None
    if args.no_plots:
        plot_note = "Plots were not made (--no-plots)."
    else:
        try:
            plots = Plots(args.docs)
        except ImportError as e:
            plot_note = (f"Plots were not made: matplotlib is missing ({e}); "
                         "apt-get install python3-matplotlib.")
            print(f"report.py: {plot_note}", file=sys.stderr)

    try:
        results = [Results(f) for f in folders]
    except (BadInput, KeyError) as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 1
    text = ["# Benchmarks\n",
            "Written by `profiles/report.py` from the results folders "
            "`profiles/gpu_run.sh` leaves (unpacked by `profiles/gpu_unpack.sh`); do not edit by hand. What each "
            "benchmark measures is in `docs/profiling.md`. Host-backend "
            "results are CPU timings: they test that the benchmarks run and "
            "say nothing of a GPU.\n"]
    if not any(r.is_gpu() for r in results):
        text.append("**No GPU results yet.** The folders below are CPU "
                    "timings of the host backend.\n")
    if plot_note:
        text.append(plot_note + "\n")
    try:
        for r in results:
            text.append(section(r, plots))
    except (KeyError, TypeError) as e:
        print(f"report.py: a result line lacks a field: {e}", file=sys.stderr)
        return 1
    os.makedirs(args.docs, exist_ok=True)
    path = os.path.join(args.docs, "benchmarks.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(text).rstrip() + "\n")
    print(f"report.py: wrote {path} from {len(results)} results folder(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
