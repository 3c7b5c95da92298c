#!/usr/bin/env python3
"""Checks profiles/bench_python.py's JSON lines: the CTest smoke test
(python.bench_smoke) runs the benchmark through it, and the GPU run
(profiles/gpu_run.sh) checks its results file with it.

    check_bench_python.py [--backend host|cuda] [--require-torch] FILE
    check_bench_python.py [--backend host|cuda] [--require-torch] -- COMMAND...

With a COMMAND, runs it (it must exit 0 and print only JSON lines on
stdout) and checks what it printed. It holds when: the meta line is there;
every cgr row the meta line promises (each replay mode x path x source x
batch) is there exactly once, with host_us_median <= p90 <= p99, a
positive mean and the timing of its backend ("cpu" on the host backend);
a headline per batch size. With PyTorch (the meta line's "torch") the
cgr.torch.step, torch_copy and torch_replay rows are there at every batch
(torch_foreach or a "na" line saying why not) and every headline has both
ratios; without it, a "na" line with its reason for each of them.

Prints one line: what it found. Exit status: 0 it holds; 1 it does not
(the line says what is wrong), or COMMAND failed; 2 bad usage; 3 it holds
but the torch rows are n/a and --require-torch was given (a GPU run where
PyTorch did not run: not a pass).
"""

import argparse
import json
import subprocess
import sys

TORCH_ROWS = (("cgr", "torch_step"), ("torch", "torch_copy"),
              ("torch", "torch_replay"))
NA_METHODS = ("cgr.torch.step", "torch_copy", "torch_foreach", "torch_replay")


class Bad(Exception):
    pass


def parse(text, strict):
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith("{"):
            if strict:
                raise Bad(f"line {number} of stdout is not JSON: {line[:80]!r}")
            continue
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise Bad(f"line {number} is not JSON: {exc}") from None
    return records


def check_row(row, timing):
    where = (f"{row.get('impl')} {row.get('mode')}/{row.get('path')}/"
             f"{row.get('source')} batch {row.get('batch')}")
    if row.get("timing") != timing:
        raise Bad(f"{where}: timing {row.get('timing')!r}, expected {timing!r}")
    try:
        median, p90, p99, mean = (float(row[k]) for k in (
            "host_us_median", "host_us_p90", "host_us_p99", "host_us_mean"))
    except (KeyError, TypeError, ValueError):
        raise Bad(f"{where}: a host_us_ field is missing") from None
    if not (0 < median <= p90 <= p99) or mean <= 0:
        raise Bad(f"{where}: median {median}, p90 {p90}, p99 {p99}, mean "
                  f"{mean} are not ordered and positive")


def check(records, backend, require_torch):
    metas = [r for r in records if r.get("kind") == "meta"]
    if len(metas) != 1:
        raise Bad(f"{len(metas)} meta lines, expected 1")
    meta = metas[0]
    if meta.get("bench") != "python":
        raise Bad(f"the meta line is of bench {meta.get('bench')!r}")
    if backend and meta.get("backend") != backend:
        raise Bad(f"backend {meta.get('backend')!r}, expected {backend!r}")
    timing = "cpu" if meta.get("backend") == "host" else "gpu"
    rows = [r for r in records if "kind" not in r]
    for row in rows:
        check_row(row, timing)
    seen = {}
    for r in rows:
        key = (r.get("impl"), r.get("mode"), r.get("path"), r.get("source"),
               r.get("batch"))
        seen[key] = seen.get(key, 0) + 1
    batches = meta.get("batches") or []
    cgr_rows = 0
    for n in batches:
        for mode in meta.get("modes") or []:
            for source in meta.get("sources") or []:
                for path in meta.get("paths") or []:
                    count = seen.get(("cgr", mode, path, source, n), 0)
                    if count != 1:
                        raise Bad(f"cgr {mode}/{path}/{source} batch {n}: "
                                  f"{count} rows, expected 1")
                    cgr_rows += 1
    if cgr_rows == 0:
        raise Bad("the meta line promises no cgr rows")
    headlines = {r.get("batch"): r for r in records
                 if r.get("kind") == "headline"}
    missing = [n for n in batches if n not in headlines]
    if missing:
        raise Bad(f"no headline for batch {missing}")
    na = {r.get("method"): r for r in records if r.get("kind") == "na"}
    if meta.get("torch"):
        for n in batches:
            for impl, method in TORCH_ROWS:
                if not any(r.get("impl") == impl and n == r.get("batch") and
                           method in (r.get("mode"), r.get("path"))
                           for r in rows):
                    raise Bad(f"no {method} row at batch {n}")
            if not any(r.get("mode") == "torch_foreach" and r.get("batch") == n
                       for r in rows) and "torch_foreach" not in na:
                raise Bad(f"torch_foreach at batch {n}: no row, no reason")
            h = headlines[n]
            if h.get("ratio_to_copy") is None or h.get("ratio_to_replay") is None:
                raise Bad(f"headline of batch {n} has no ratios")
        ratios = ", ".join(
            f"batch {n}: {headlines[n]['ratio_to_copy']:.3f} x copy_, "
            f"{headlines[n]['ratio_to_replay']:.2f} x replay"
            for n in batches)
        return 0, (f"{cgr_rows} cgr rows, torch rows, {len(batches)} "
                   f"headlines ({ratios})")
    for method in NA_METHODS:
        if not (na.get(method) or {}).get("reason"):
            raise Bad(f"PyTorch did not run, and {method} has no n/a reason")
    reason = meta.get("torch_reason") or na["torch_copy"]["reason"]
    line = (f"{cgr_rows} cgr rows ({timing} timings), {len(batches)} "
            f"headlines, torch rows n/a: {reason}")
    return (3 if require_torch else 0), line


def main(argv):
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    else:
        command = None
    parser = argparse.ArgumentParser(prog="check_bench_python.py")
    parser.add_argument("--backend", choices=("host", "cuda"))
    parser.add_argument("--require-torch", action="store_true")
    parser.add_argument("file", nargs="?")
    options = parser.parse_args(argv)
    if (command is None) == (options.file is None):
        parser.error("give a FILE or -- COMMAND")
    try:
        if command:
            proc = subprocess.run(command, stdout=subprocess.PIPE, text=True,
                                  check=False)
            if proc.returncode != 0:
                raise Bad(f"{' '.join(command)} exited {proc.returncode}")
            records = parse(proc.stdout, strict=True)
        else:
            with open(options.file, encoding="utf-8") as f:
                records = parse(f.read(), strict=False)
        status, line = check(records, options.backend, options.require_torch)
    except (Bad, OSError) as exc:
        print(f"bench_python check FAILED: {exc}")
        return 1
    print(f"bench_python check: {line}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
