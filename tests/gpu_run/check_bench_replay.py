#!/usr/bin/env python3
"""Checks profiles/bench_replay's JSON lines: the GPU run
(profiles/gpu_run.sh) checks its replay.jsonl with it, and its rehearsal
(tests/gpu_run/rehearsal.sh) through the run.

    check_bench_replay.py [--backend host|cuda] FILE

It holds when: the meta line is there; every configuration has, for each
source the meta line lists, exactly one row of every mode (the floor,
each replay mode, the _feed ones, the pipelined ones), each with the
timing of its backend ("cpu" on the host backend, "gpu" on CUDA) and the
per-step backend calls (graphs_per_step, ...); and every pipelined row
(pipelined, pipelined_feed) asks the backend, per step, for one graph
launch, no kernel, copy or memset of its own and at most one event call
(event records + waits): CGR_REPLAY_PIPELINED's promise. The timing
targets are not checked here (profiles/gpu_summary.py and
profiles/report.py say met or missed).

Prints one line: what it found. Exit status: 0 it holds; 1 it does not
(the line says what is wrong); 2 bad usage.
"""

import argparse
import json
import sys

MODES = ("floor", "naive", "fused", "double", "ingraph", "pipelined",
         "fused_feed", "double_feed", "pipelined_feed")
PIPELINED_MODES = ("pipelined", "pipelined_feed")
# (lowest, highest) per step of a pipelined row.
PIPELINED_CALLS = {"graphs_per_step": (1, 1), "kernels_per_step": (0, 0),
                   "copies_per_step": (0, 0), "memsets_per_step": (0, 0),
                   "events_per_step": (0, 1)}
CALL_FIELDS = tuple(PIPELINED_CALLS) + ("syncs_per_step",)


class Bad(Exception):
    pass


def read(path):
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise Bad(f"{path}:{number}: not JSON: {exc}") from None
    return records


def check(records, timing):
    metas = [r for r in records if r.get("kind") == "meta"]
    if len(metas) != 1:
        raise Bad(f"{len(metas)} meta lines, expected 1")
    sources = metas[0].get("sources") or []
    if not sources:
        raise Bad("the meta line lists no sources")
    rows = [r for r in records if "kind" not in r]
    by = {}
    for r in rows:
        key = (r.get("bucket"), r.get("pages_per_row"), r.get("kernels"),
               r.get("source"), r.get("mode"))
        by.setdefault(key, []).append(r)
    configs = sorted({k[:3] for k in by})
    if not configs:
        raise Bad("no rows")
    worst_events = 0.0
    for c in configs:
        where = "b=%s w=%s g=%s" % c
        for source in sources:
            for mode in MODES:
                found = by.get(c + (source, mode), [])
                if len(found) != 1:
                    raise Bad(f"{where} source={source}: {len(found)} "
                              f"{mode} rows, expected 1")
                r = found[0]
                if r.get("timing") != timing:
                    raise Bad(f"{where} source={source} {mode}: timing "
                              f"{r.get('timing')!r}, expected {timing!r}")
                missing = [f for f in CALL_FIELDS if f not in r]
                if missing:
                    raise Bad(f"{where} source={source} {mode}: no "
                              f"{', '.join(missing)}")
                if mode not in PIPELINED_MODES:
                    continue
                for field, (low, high) in PIPELINED_CALLS.items():
                    if not low <= r[field] <= high:
                        raise Bad(f"{where} source={source} {mode}: "
                                  f"{field} {r[field]:g}, expected "
                                  f"{low}..{high}")
                worst_events = max(worst_events, r["events_per_step"])
    extra = sorted({k[4] for k in by} - set(MODES))
    pipelined = len(configs) * len(sources) * len(PIPELINED_MODES)
    return (f"{len(configs)} configurations x {len(sources)} sources, every "
            f"mode once; {pipelined} pipelined rows, each per step 1 graph, "
            f"0 kernels, 0 copies, 0 memsets, at most {worst_events:g} "
            f"event call(s) ({timing} timings)"
            + (f"; other modes: {', '.join(map(str, extra))}" if extra
               else ""))


def main():
    parser = argparse.ArgumentParser(prog="check_bench_replay.py")
    parser.add_argument("--backend", choices=("host", "cuda"),
                        default="cuda")
    parser.add_argument("file")
    args = parser.parse_args()
    timing = "gpu" if args.backend == "cuda" else "cpu"
    try:
        line = check(read(args.file), timing)
    except (OSError, Bad) as exc:
        print(f"bench_replay check: FAILED: {exc}")
        return 1
    print(f"bench_replay check: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
