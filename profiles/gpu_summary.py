#!/usr/bin/env python3
"""gpu_summary.py: the headline numbers of one GPU run's results folder,
for the end of summary.txt (profiles/gpu_run.sh calls it).

Prints, from what is there (a missing file is said, not guessed):
- cgr-decode --check per mode: the verdict, tokens/s, step p50;
- bench_replay: per configuration, each mode's median host time per step,
  and the device step time; pinned-source rows when the file has them;
  the pipelined mode's targets (host time per step <= 1.1x the floor's,
  GPU step time <= the floor's + 0.5 us), met or missed on a GPU, and its
  backend calls per step (1 graph, 0 kernels, 0 copies, <= 1 event);
- the PyTorch peer on the same sizes: its median host time per step, next
  to cgr's pinned-source rows (the peer copies from pinned tensors), or to
  its pageable rows when no pinned rows exist (said so);
- bench_python (host time per step driven from Python): per batch size,
  the headline, double_buffered through Runtime.prepare from pinned
  sources, against torch's copy_ per input + replay() (target <= 1/3) and
  a bare replay() (target <= 1.5x), met or missed; without PyTorch the
  ratios are n/a with the reason, and host-backend numbers say they are
  CPU timings;
- bench_tp: per batch size, the step with its all-reduces inside the graph
  and outside it (eager between per-layer graphs): host, step and GPU us.

Usage: profiles/gpu_summary.py RESULTS_DIR
"""
import json
import os
import sys

# The pipelined mode's GPU targets (docs/profiling.md): host time per step
# over a bare graph launch, GPU step time over the graph alone (us).
PIPELINED_HOST_LIMIT = 1.1
PIPELINED_GPU_EXTRA_US = 0.5


def read_jsonl(path):
    rows = []
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    return rows


def config_key(row):
    return (row.get("bucket"), row.get("pages_per_row"), row.get("kernels"))


def decode_lines(folder):
    rows = read_jsonl(os.path.join(folder, "decode.jsonl"))
    if rows is None:
        return ["cgr-decode: no results (decode.jsonl missing)"]
    lines = ["cgr-decode --check, small model (timing: %s):" %
             (rows[0].get("timing", "?") if rows else "?")]
    for r in rows:
        lines.append("  %-8s check %-5s %9.1f tokens/s, step p50 %.3f ms, "
                     "%d mismatched steps" %
                     (r.get("mode"), r.get("check"), r.get("tokens_per_s", 0),
                      r.get("step_p50_ms", 0), r.get("mismatched_steps", -1)))
    return lines


def replay_lines(folder):
    rows = read_jsonl(os.path.join(folder, "replay.jsonl"))
    if rows is None:
        return ["bench_replay: no results (replay.jsonl missing)"]
    data = [r for r in rows if r.get("kind") != "meta" and "mode" in r]
    timing = next((r.get("timing") for r in rows if "timing" in r), "?")
    torch = read_jsonl(os.path.join(folder, "torch_replay.jsonl")) or []
    torch = [r for r in torch if r.get("kind") != "meta" and
             str(r.get("mode", "")).startswith("torch")]
    torch_by = {}
    for r in torch:
        torch_by[(config_key(r), r["mode"])] = r
    have_pinned = any(r.get("source") == "pinned" for r in data)
    lines = ["bench_replay, median host us per step (device step us)"
             " [timing: %s]:" % timing]
    configs = []
    for r in data:
        if config_key(r) not in configs:
            configs.append(config_key(r))
    for key in configs:
        lines.append("  bucket %s, pages/row %s, kernels %s" % key)
        for source in ("host", "pinned"):
            cells = []
            for r in data:
                if config_key(r) != key or r.get("source", "host") != source:
                    continue
                cells.append("%s %.2f (%.2f)" % (r["mode"], r["host_us_median"],
                                                 r.get("gpu_step_us", -1)))
            if cells:
                lines.append("    cgr, %s sources: %s" % (source, ", ".join(cells)))
            lines += pipelined_lines(data, key, source, timing)
        peer = []
        for method in ("torch_floor", "torch", "torch_pageable"):
            r = torch_by.get((key, method))
            if r is not None:
                peer.append("%s %.2f (%.2f)" % (method, r["host_us_median"],
                                                r.get("gpu_step_us", -1)))
        if peer:
            lines.append("    PyTorch peer: %s" % ", ".join(peer))
    if torch:
        lines.append("  The peer's `torch` copies from pinned tensors: compare it "
                     "with cgr's %s rows." %
                     ("pinned-source" if have_pinned else
                      "rows (pageable sources: no pinned rows in this run)"))
    else:
        lines.append("  PyTorch peer: no results (torch_replay.jsonl missing)")
    return lines


def pipelined_lines(data, key, source, timing):
    """The pipelined mode's targets and calls for one configuration and
    source, against the floor of the same source."""
    by = {r["mode"]: r for r in data
          if config_key(r) == key and r.get("source", "host") == source}
    step, floor = by.get("pipelined"), by.get("floor")
    if step is None or floor is None:
        return []
    ratio = (step["host_us_median"] / floor["host_us_median"]
             if floor.get("host_us_median") else float("inf"))
    extra = step.get("gpu_step_us", 0) - floor.get("gpu_step_us", 0)
    calls = "per step: graphs %s, kernels %s, copies %s, event calls %s" % tuple(
        "%g" % step.get(field, -1) for field in
        ("graphs_per_step", "kernels_per_step", "copies_per_step",
         "events_per_step"))
    if timing != "gpu":
        verdicts = ("host backend, CPU timings: the GPU targets are not "
                    "held against them")
    else:
        verdicts = "target <= %.1fx: %s; target <= +%.1f us: %s" % (
            PIPELINED_HOST_LIMIT,
            "met" if ratio <= PIPELINED_HOST_LIMIT else "MISSED",
            PIPELINED_GPU_EXTRA_US,
            "met" if extra <= PIPELINED_GPU_EXTRA_US else "MISSED")
    return ["    pipelined, %s sources: host %.2fx the floor, %s step %+.2f us "
            "over the graph (%s); %s" % (
                source, ratio, "GPU" if timing == "gpu" else "CPU", extra,
                verdicts, calls)]


def python_lines(folder):
    rows = read_jsonl(os.path.join(folder, "python.jsonl"))
    if rows is None:
        return ["bench_python: no results (python.jsonl missing)"]
    meta = next((r for r in rows if r.get("kind") == "meta"), {})
    cpu = meta.get("timing") == "cpu"
    label = ("host backend, CPU timings: they say nothing of a GPU" if cpu
             else "timing: %s" % meta.get("timing", "?"))
    lines = ["bench_python, median host us per step from Python, %s inputs "
             "[%s]:" % (meta.get("inputs", "?"), label)]
    data = [r for r in rows if "kind" not in r]

    def median(batch, impl, mode, path):
        for r in data:
            if (r.get("batch") == batch and r.get("impl") == impl and
                    r.get("mode") == mode and r.get("path") == path and
                    r.get("source") in ("pinned", "none")):
                return "%.2f" % r["host_us_median"]
        return "n/a"

    headlines = [r for r in rows if r.get("kind") == "headline"]
    for h in headlines:
        n = h.get("batch")
        lines.append("  batch %s, pinned sources: cgr double_buffered prepared "
                     "%s, dict %s, cgr.torch.step %s; torch copy_ + replay() "
                     "%s, _foreach_copy_ + replay() %s, replay() alone %s" % (
                         n, median(n, "cgr", "double_buffered", "prepared"),
                         median(n, "cgr", "double_buffered", "dict"),
                         median(n, "cgr", "double_buffered", "torch_step"),
                         median(n, "torch", "torch_copy", "copy_"),
                         median(n, "torch", "torch_foreach", "foreach_copy_"),
                         median(n, "torch", "torch_replay", "replay")))
        if h.get("ratio_to_copy") is None:
            lines.append("    ratios: n/a (%s)" % h.get("reason", "?"))
            continue
        lines.append("    %.3f x copy_ + replay() (target <= %.3f: %s), "
                     "%.2f x replay() alone (target <= %.1f: %s)" % (
                         h["ratio_to_copy"], h["target_ratio_to_copy"],
                         "met" if h.get("met_copy") else "MISSED",
                         h["ratio_to_replay"], h["target_ratio_to_replay"],
                         "met" if h.get("met_replay") else "MISSED"))
    if not headlines:
        lines.append("  no headline lines (the run stopped early?)")
    return lines


def tp_lines(folder):
    rows = read_jsonl(os.path.join(folder, "tp.jsonl"))
    if rows is None:
        return ["bench_tp: no results (tp.jsonl missing)"]
    meta = next((r for r in rows if r.get("kind") == "meta"), {})
    label = ("host backend, CPU timings: they say nothing of a GPU"
             if meta.get("timing") == "cpu"
             else "timing: %s" % meta.get("timing", "?"))
    lines = ["bench_tp, %s rank(s), %s layers, p50 us per step [%s]:" %
             (meta.get("ranks", "?"), meta.get("layers", "?"), label)]
    for r in (r for r in rows if "kind" not in r):
        gpu = r.get("gpu_us_p50")
        lines.append("  batch %-4s %-7s host %9.1f (per rank %8.1f), step "
                     "%9.1f, gpu %s, %.2f x inside" % (
                         r.get("batch"), r.get("variant"),
                         r.get("host_us_p50", 0),
                         r.get("host_us_per_rank_p50", 0),
                         r.get("step_us_p50", 0),
                         "n/a" if gpu is None else "%.1f" % gpu,
                         r.get("step_vs_inside", 0)))
    return lines


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1])
        return 2
    folder = sys.argv[1]
    print("headline numbers")
    for line in (decode_lines(folder) + replay_lines(folder) +
                 python_lines(folder) + tp_lines(folder)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
