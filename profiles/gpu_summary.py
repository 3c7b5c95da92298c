#!/usr/bin/env python3
"""gpu_summary.py: the headline numbers of one GPU run's results folder,
for the end of summary.txt (profiles/gpu_run.sh calls it).

Prints, from what is there (a missing file is said, not guessed):
- cgr-decode --check per mode: the verdict, tokens/s, step p50;
- bench_replay: per configuration, each mode's median host time per step,
  and the device step time; pinned-source rows when the file has them;
- the PyTorch peer on the same sizes: its median host time per step, next
  to cgr's pinned-source rows (the peer copies from pinned tensors), or to
  its pageable rows when no pinned rows exist (said so).

Usage: profiles/gpu_summary.py RESULTS_DIR
"""
import json
import os
import sys


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


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1])
        return 2
    folder = sys.argv[1]
    print("headline numbers")
    for line in decode_lines(folder) + replay_lines(folder):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
