#!/usr/bin/env python3
"""bench_python: what one decode step costs the host when Python drives it,
through cgr's Python package and, on a GPU, the serving engines' way.

The step has bench_replay's six metadata inputs, int32: input_ids,
positions, seq_lens, out_loc (one per row), cu_seqlens_k (a prefix: rows +
1) and page_table (128 pages per row), at bench_replay's batch sizes
({1, 8, 64, 256}; --quick {1, 64}), every step a full batch (the batch is
its bucket). Four sets of values are used in turn, and each row's last
output is checked against them.

What runs, per batch size:

  cgr, every replay mode (naive, fused, double_buffered, in_graph, eager),
  each through two paths and from two sources:
    prepared   Runtime.prepare({slot: buffer}) once, then prepared(n) per
               step: one C call, the hot path;
    dict       Runtime.step(n, {slot: array}): one C call, after Python's
               work per input;
    sources: host (pageable numpy arrays) and pinned (numpy views of
    Runtime.pinned_array).
  On CUDA with PyTorch the step is a small torch-written graph,
  out = ids + positions + seq_lens + out_loc + cu_seqlens_k[1:] +
  page_table[:, 0], written in place to an output slot and captured with
  cgr.torch.capture; also:
    cgr.torch.step   the dict path ordered with torch's current stream
                     (three C calls: record, step, wait), double_buffered,
                     pinned sources;
    torch_copy       the same torch step captured with torch.cuda.graph per
                     bucket into static tensors (one pool); per step six
                     static.copy_(pinned, non_blocking=True), then
                     graph.replay(): mini-sglang's way;
    torch_foreach    torch._foreach_copy_ of the six, then replay();
    torch_replay     graph.replay() alone, the inputs in place: the floor.
  Without PyTorch or without CUDA the step is six copies (ctx.memcpy) of
  each input's first rows into an output slot, the torch rows are n/a and
  the table says why. On the host backend every number is a CPU timing of
  cgr's engine on worker threads and says nothing of a GPU.

Timing: time.perf_counter_ns() around the one call (or the torch peer's
copies + replay), per step, after a warm-up; median, p90, p99 and mean of
those per-step host times. At most two steps are in flight: before step n,
outside the timed part, the loop waits for step n - 2 (its ticket, or for
the peers an event recorded after it), so a number is the host's own work,
never a wait on a device that runs behind (an eager step waits for itself,
as cgr's eager mode does, so its time holds the step's own). The garbage
collector is off during a timed loop (as timeit does). The headline, per
batch size: double_buffered through prepare, pinned sources (the peers
copy from pinned tensors), divided by torch_copy (target at most 1/3) and
by torch_replay (target at most 1.5x), at 6 inputs.

Usage:
  CGR_LIBRARY=build/me/libcgr.so PYTHONPATH=python \\
      python3 profiles/bench_python.py [--quick] [--json] [--out FILE]
                                       [--backend auto|cuda|host] [--steps N]

Output: a table by default; with --json, JSON lines instead (a meta line,
one line per row, "kind":"na" lines for rows that cannot run here with the
reason, one "kind":"headline" line per batch size); --out FILE writes the
JSON lines there too. Exit status: 0 every row ran and was right; 1 a wrong
result or a failure; 2 bad usage; 77 --backend cuda where CUDA is not
usable (skipped).
"""

import argparse
import functools
import gc
import json
import os
import platform
import sys
import time

PROG = "bench_python.py"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SKIPPED = 0, 1, 2, 77

# The package: PYTHONPATH first, else the python/ folder beside profiles/
# (the repository and the GPU bundle have the same layout).
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             os.pardir, "python"))

MODES = ("naive", "fused", "double_buffered", "in_graph", "eager")
DEFAULT_MODE = "double_buffered"
PATHS = ("prepared", "dict")
SOURCES = ("host", "pinned")
PEERS = ("torch_copy", "torch_foreach", "torch_replay")
# bench_replay's metadata inputs: name, slot kind, elements per row.
PAGES_PER_ROW = 128
INPUTS = (("input_ids", "rows", 1), ("positions", "rows", 1),
          ("seq_lens", "rows", 1), ("out_loc", "rows", 1),
          ("cu_seqlens_k", "prefix", 1), ("page_table", "rows", PAGES_PER_ROW))
VARIANTS = 4
GRIDS = {
    # batch sizes (bench_replay's buckets), timed steps, warm-up steps
    "full": ((1, 8, 64, 256), 2000, 200),
    "quick": ((1, 64), 300, 50),
}
MAX_STEPS = 1_000_000
# The targets for the headline (double_buffered, prepared, pinned).
TARGET_VS_COPY = 1 / 3
TARGET_VS_REPLAY = 1.5
CPU_LABEL = "host backend, CPU timings"


class Failure(Exception):
    """A failed call or a wrong result: the message says which row."""


# ---- options ------------------------------------------------------------------

def steps_value(text):
    try:
        steps = int(text, 10)
    except ValueError:
        steps = 0
    if not 1 <= steps <= MAX_STEPS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {MAX_STEPS}, not '{text}'")
    return steps


def parse_options(argv):
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Host microseconds per decode step driven from Python: "
                    "cgr's prepared and dict paths in every replay mode, and "
                    "on a GPU cgr.torch.step and PyTorch's copy_ + "
                    "CUDAGraph.replay().",
        epilog="exit status: 0 ran and right, 1 wrong result or failure, "
               "2 bad usage, 77 --backend cuda without a usable GPU")
    parser.add_argument("--backend", choices=("auto", "cuda", "host"),
                        default="auto")
    parser.add_argument("--quick", action="store_true",
                        help="batch sizes {1, 64}, 300 steps (full: "
                             "{1, 8, 64, 256}, 2000 steps)")
    parser.add_argument("--steps", type=steps_value, metavar="N",
                        help="timed steps per row")
    parser.add_argument("--json", action="store_true",
                        help="JSON lines instead of the table")
    parser.add_argument("--out", metavar="FILE",
                        help="also write the JSON lines to FILE")
    options = parser.parse_args(argv)
    options.grid = "quick" if options.quick else "full"
    options.batches, steps, options.warmup = GRIDS[options.grid]
    if options.steps is None:
        options.steps = steps
    if options.out == "":
        parser.error("--out needs a file name")
    return options


# ---- statistics and output ------------------------------------------------------

def summarize(samples_ns):
    """Median, p90, p99 and mean, in microseconds."""
    ordered = sorted(samples_ns)
    n = len(ordered)
    median = (ordered[n // 2] if n % 2 else
              (ordered[n // 2 - 1] + ordered[n // 2]) / 2)

    def rank(p):  # ceil(p% of n), the way bench_common takes percentiles
        return ordered[max((p * n + 99) // 100, 1) - 1]

    return {"host_us_median": round(median / 1e3, 3),
            "host_us_p90": round(rank(90) / 1e3, 3),
            "host_us_p99": round(rank(99) / 1e3, 3),
            "host_us_mean": round(sum(ordered) / n / 1e3, 3)}


class Output:
    """JSON lines to stdout (--json) and to --out."""

    def __init__(self, options):
        self.to_stdout = options.json
        self.file = None
        if options.out:
            parent = os.path.dirname(options.out)
            if parent:
                os.makedirs(parent, exist_ok=True)
            self.file = open(options.out, "w", encoding="utf-8")

    def emit(self, record):
        line = json.dumps(record, separators=(",", ":"))
        if self.to_stdout:
            print(line, flush=True)
        if self.file is not None:
            self.file.write(line + "\n")
            self.file.flush()

    def close(self):
        if self.file is not None:
            self.file.close()


# ---- the values -------------------------------------------------------------------

def make_values(np, largest):
    """VARIANTS sets of the six inputs for `largest` rows (a smaller batch
    uses the first rows: cu_seqlens_k is a running sum from 0, so its first
    n + 1 entries are the prefix of the first n rows)."""
    rng = np.random.default_rng(0x9E3779B9)
    variants = []
    for _ in range(VARIANTS):
        lens = rng.integers(1, 4097, largest, dtype=np.int32)
        cu_k = np.zeros(largest + 1, np.int32)
        np.cumsum(lens, out=cu_k[1:])
        variants.append({
            "input_ids": rng.integers(0, 32000, largest, dtype=np.int32),
            "positions": lens - 1,
            "seq_lens": lens,
            "out_loc": rng.integers(0, 1 << 20, largest, dtype=np.int32),
            "cu_seqlens_k": cu_k,
            "page_table": rng.integers(0, 65536, (largest, PAGES_PER_ROW),
                                       dtype=np.int32),
        })
    return variants


def expected_sum(np, values, n):
    """The torch step's `out` for a batch of n rows (int32 arithmetic)."""
    v = values
    total = (v["input_ids"][:n].astype(np.int64) + v["positions"][:n] +
             v["seq_lens"][:n] + v["out_loc"][:n] + v["cu_seqlens_k"][1:n + 1] +
             v["page_table"][:n, 0])
    return total.astype(np.int32)


def expected_echo(np, values, n):
    """The copy step's `echo`: the first n values of each input in turn."""
    v = values
    return np.concatenate([v["input_ids"][:n], v["positions"][:n],
                           v["seq_lens"][:n], v["out_loc"][:n],
                           v["cu_seqlens_k"][1:n + 1],
                           v["page_table"].reshape(-1)[:n]])


# ---- the backend -----------------------------------------------------------------

def choose_backend(cgr, options):
    """("cuda" | "host", torch or None, why torch cannot run or None), or
    raises SystemExit(77) when --backend cuda cannot run."""
    backend = options.backend
    if backend in ("auto", "cuda"):
        try:
            cgr.Runtime(backend="cuda").close()
            backend = "cuda"
        except (cgr.NoDeviceError, cgr.UnsupportedError) as exc:
            if options.backend == "cuda":
                print(f"{PROG}: skipped: CUDA is not usable: {exc}",
                      file=sys.stderr)
                raise SystemExit(EXIT_SKIPPED) from None
            backend = "host"
    if backend == "host":
        return backend, None, ("no GPU: the host backend runs cgr on CPU "
                               "threads, and the PyTorch peers need CUDA")
    try:
        import torch
    except (ImportError, OSError) as exc:
        return backend, None, (f"PyTorch cannot be imported ({type(exc).__name__}: "
                               f"{exc})")
    if not torch.cuda.is_available():
        return backend, None, (f"CUDA is not available to PyTorch "
                               f"{torch.__version__}")
    return backend, torch, None


# ---- cgr's runtime and its step -------------------------------------------------

class CgrBench:
    """One runtime with every batch size as a bucket, its slots, and the
    sources of every variant: host arrays and pinned arrays, as prepared
    steps and as dicts."""

    def __init__(self, cgr, np, backend, torch, batches, variants):
        self.cgr, self.np, self.torch = cgr, np, torch
        self.batches = batches
        self.variants = variants
        dtype = torch.int32 if torch is not None else np.int32
        self.rt = cgr.Runtime(backend=backend, buckets=list(batches))
        rt = self.rt
        self.slots = [rt.declare(name, kind, dtype, row_elems)
                      for name, kind, row_elems in INPUTS]
        if torch is not None:
            self.out = rt.declare("out", "output", dtype)
            self._capture_torch()
            self.step_kind = "torch"
        else:
            self.out = rt.declare("echo", "output", dtype, len(INPUTS))
            rt.capture(self._copy_step)
            self.step_kind = "memcpy"
        self._make_sources()

    def _copy_step(self, ctx):
        """Each input's first padded_batch values into its part of echo."""
        rows = ctx.padded_batch
        echo = ctx.slot(self.out)
        for k, slot in enumerate(self.slots):
            skip = 4 if slot.kind == "prefix" else 0  # cu_seqlens_k[1:]
            ctx.memcpy(echo.ptr + k * rows * 4, ctx.slot(slot).ptr + skip,
                       rows * 4)

    def _capture_torch(self):
        import cgr.torch as ct
        from bench_python_peers import torch_step

        torch = self.torch
        slots, out = self.slots, self.out

        def step(ctx):
            ids, pos, lens, loc, cu_k, pages = (ctx.slot(s) for s in slots)
            torch_step(torch, ids, pos, lens, loc, cu_k, pages, ctx.slot(out))

        ct.capture(self.rt, step)

    def _make_sources(self):
        np, rt = self.np, self.rt
        largest = self.batches[-1]
        self.arrays = {"host": [], "pinned": []}  # the pinned: cgr.Arrays
        for values in self.variants:
            host, pinned = [], []
            for (name, _, _), slot in zip(INPUTS, self.slots):
                data = values[name]
                host.append(np.ascontiguousarray(data).copy())
                array = rt.pinned_array(slot.shape_for(largest), np.int32)
                np.asarray(array)[...] = data
                pinned.append(array)
            self.arrays["host"].append(host)
            self.arrays["pinned"].append(pinned)
        # prepare: the whole arrays (at least the largest bucket's rows).
        self.prepared = {
            source: [rt.prepare({slot: self._whole(source, a)
                                 for slot, a in zip(self.slots, arrays)})
                     for arrays in self.arrays[source]]
            for source in SOURCES}
        # dicts: exactly n rows of each. A pinned input is a numpy view of
        # a slice of the pinned Array: a slice of the numpy view of the
        # whole Array would be taken for pageable memory (its .base is an
        # ndarray, not the Array).
        self.dicts = {}
        for source in SOURCES:
            for n in self.batches:
                self.dicts[(source, n)] = [
                    {slot: self._rows(source, a, slot, n)
                     for slot, a in zip(self.slots, arrays)}
                    for arrays in self.arrays[source]]
        self._check_sources()

    def _whole(self, source, array):
        return array if source == "host" else self.np.asarray(array)

    def _rows(self, source, array, slot, n):
        count = n + 1 if slot.kind == "prefix" else n
        if source == "host":
            return array[:count]
        return self.np.asarray(array[:count])

    def _check_sources(self):
        """Every input is taken for the source its row names (the binding's
        own classification, when it still has it)."""
        try:
            from cgr._objects import _buffer
        except ImportError:
            return
        want = {"host": 0, "pinned": 1}
        for (source, n), dicts in self.dicts.items():
            for inputs in dicts:
                for slot, value in inputs.items():
                    got = _buffer(value, slot.name)[2]
                    if got != want[source]:
                        raise Failure(
                            f"{slot.name}, {source}, batch {n}: the binding "
                            f"takes the array for source {got}, not "
                            f"{want[source]}")

    def check(self, ticket, variant, n, what):
        """The step's output equals what the variant's values give."""
        np = self.np
        ticket.wait()
        got = np.asarray(ticket.output(self.out).numpy()).reshape(-1)
        values = self.variants[variant]
        if self.step_kind == "torch":
            want = expected_sum(np, values, n)
        else:
            want = expected_echo(np, values, n)
        if got.shape != want.shape or not np.array_equal(got, want):
            bad = int(np.argmax(got != want)) if got.shape == want.shape else -1
            raise Failure(f"WRONG RESULT: {what}, batch {n}: output[{bad}] is "
                          f"{got[bad] if bad >= 0 else got.shape}, expected "
                          f"{want[bad] if bad >= 0 else want.shape}")

    def close(self):
        self.rt.synchronize()
        self.prepared = self.dicts = self.arrays = None
        self.rt.close()


# ---- the timed loops -----------------------------------------------------------------
#
# Each loop is written out on its own so the timed part holds the one call
# and nothing else of the harness. Before step n the loop waits (untimed)
# for step n - 2.

def time_prepared(prepared, n, steps, warmup):
    clock = time.perf_counter_ns
    samples = [0] * steps
    tickets = [None, None]
    count = len(prepared)
    for i in range(warmup + steps):
        previous = tickets[i & 1]
        if previous is not None:
            previous.wait()
        call = prepared[i % count]
        t0 = clock()
        ticket = call(n)
        t1 = clock()
        tickets[i & 1] = ticket
        if i >= warmup:
            samples[i - warmup] = t1 - t0
    return samples, ticket, (warmup + steps - 1) % count


def time_dict(step, dicts, n, steps, warmup):
    """step(n, inputs) per step: Runtime.step, or cgr.torch.step bound to
    its runtime (functools.partial, a C call of its own)."""
    clock = time.perf_counter_ns
    samples = [0] * steps
    tickets = [None, None]
    count = len(dicts)
    for i in range(warmup + steps):
        previous = tickets[i & 1]
        if previous is not None:
            previous.wait()
        inputs = dicts[i % count]
        t0 = clock()
        ticket = step(n, inputs)
        t1 = clock()
        tickets[i & 1] = ticket
        if i >= warmup:
            samples[i - warmup] = t1 - t0
    return samples, ticket, (warmup + steps - 1) % count


def timed(loop, *args):
    """loop(*args) with the garbage collector off (and collected before)."""
    gc.collect()
    gc.disable()
    try:
        return loop(*args)
    finally:
        gc.enable()


# ---- the run --------------------------------------------------------------------------

def meta_record(cgr, np, torch, options, backend, rt, torch_reason):
    info = rt.device_info if backend == "cuda" else {}
    record = {
        "kind": "meta", "bench": "python", "backend": backend,
        "timing": "gpu" if backend == "cuda" else "cpu",
        "device": info.get("name") if backend == "cuda" else
        f"host ({os.cpu_count()} CPUs)",
        "backend_reason": rt.backend_reason,
        "cgr_version": cgr.__version__,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "torch_version": torch.__version__ if torch is not None else None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "grid": options.grid, "batches": list(options.batches),
        "inputs": len(INPUTS), "pages_per_row": PAGES_PER_ROW,
        "steps": options.steps, "warmup": options.warmup,
        "modes": list(MODES), "paths": list(PATHS), "sources": list(SOURCES),
        "max_steps_in_flight": 2,
        "in_flight": "before step n the loop waits, untimed, for step n-2 "
                     "(cgr: its ticket; torch: an event recorded after it)",
        "timer": "time.perf_counter_ns around each call, garbage collector off",
        "torch": torch is not None, "torch_reason": torch_reason,
    }
    if backend == "host":
        record["note"] = (f"{CPU_LABEL}: cgr's engine on worker threads; "
                          "they say nothing about a GPU")
    return record


def row_record(backend, step_kind, options, impl, mode, path, source, n,
               samples, c_calls):
    record = {"bench": "python", "backend": backend,
              "timing": "gpu" if backend == "cuda" else "cpu",
              "impl": impl, "mode": mode, "path": path, "source": source,
              "batch": n, "inputs": len(INPUTS),
              "pages_per_row": PAGES_PER_ROW, "step": step_kind,
              "steps": options.steps, "warmup": options.warmup,
              "c_calls_per_step": c_calls}
    record.update(summarize(samples))
    return record


def headline_record(backend, n, rows, torch_reason):
    def median(impl, mode, path, source):
        for r in rows:
            if (r["batch"] == n and r["impl"] == impl and r["mode"] == mode
                    and r["path"] == path and r["source"] == source):
                return r["host_us_median"]
        return None

    cgr_us = median("cgr", DEFAULT_MODE, "prepared", "pinned")
    copy_us = median("torch", "torch_copy", "copy_", "pinned")
    replay_us = median("torch", "torch_replay", "replay", "none")
    record = {"kind": "headline", "bench": "python", "backend": backend,
              "timing": "gpu" if backend == "cuda" else "cpu", "batch": n,
              "inputs": len(INPUTS), "cgr": f"{DEFAULT_MODE}, prepared, pinned",
              "cgr_us_median": cgr_us, "torch_copy_us_median": copy_us,
              "torch_replay_us_median": replay_us,
              "target_ratio_to_copy": round(TARGET_VS_COPY, 3),
              "target_ratio_to_replay": TARGET_VS_REPLAY,
              "ratio_to_copy": None, "ratio_to_replay": None,
              "met_copy": None, "met_replay": None}
    if cgr_us and copy_us and replay_us:
        record["ratio_to_copy"] = round(cgr_us / copy_us, 3)
        record["ratio_to_replay"] = round(cgr_us / replay_us, 3)
        record["met_copy"] = cgr_us / copy_us <= TARGET_VS_COPY
        record["met_replay"] = cgr_us / replay_us <= TARGET_VS_REPLAY
    else:
        record["reason"] = torch_reason or "a row is missing"
    return record


def run_cgr_rows(bench, options, backend, emit):
    """Every mode x source x path at every batch size, batch outermost, so
    a batch's rows (and its peers after them) run close together."""
    rt, rows = bench.rt, []
    for n in options.batches:
        for mode in MODES:
            rt.replay_mode = mode
            for source in SOURCES:
                for path in PATHS:
                    what = f"cgr {mode}, {path}, {source}"
                    if path == "prepared":
                        samples, ticket, last = timed(
                            time_prepared, bench.prepared[source], n,
                            options.steps, options.warmup)
                    else:
                        samples, ticket, last = timed(
                            time_dict, rt.step, bench.dicts[(source, n)], n,
                            options.steps, options.warmup)
                    bench.check(ticket, last, n, what)
                    rows.append(emit(row_record(
                        backend, bench.step_kind, options, "cgr", mode, path,
                        source, n, samples, 1)))
        yield n, rows
        rows = []


def run_torch_rows(bench, peers, options, backend, n, emit):
    """cgr.torch.step, then the peers, at batch n, on torch's current
    stream; returns the rows (a peer PyTorch refuses is a "na" line)."""
    import cgr.torch as ct

    rows = []
    bench.rt.replay_mode = DEFAULT_MODE
    samples, ticket, last = timed(
        time_dict, functools.partial(ct.step, bench.rt),
        bench.dicts[("pinned", n)], n, options.steps, options.warmup)
    bench.check(ticket, last, n, "cgr.torch.step")
    rows.append(emit(row_record(backend, bench.step_kind, options, "cgr",
                                DEFAULT_MODE, "torch_step", "pinned", n,
                                samples, 3)))
    for method in PEERS:
        if method == "torch_foreach" and peers.foreach_reason:
            emit({"kind": "na", "bench": "python", "backend": backend,
                  "impl": "torch", "method": method, "batch": n,
                  "reason": peers.foreach_reason})
            continue
        samples = timed(peers.run, method, n, options.steps, options.warmup)
        path, source, calls = {
            "torch_copy": ("copy_", "pinned", len(INPUTS) + 1),
            "torch_foreach": ("foreach_copy_", "pinned", 2),
            "torch_replay": ("replay", "none", 1)}[method]
        rows.append(emit(row_record(backend, bench.step_kind, options,
                                    "torch", method, path, source, n, samples,
                                    calls)))
    return rows


def run(options, output):
    try:
        import cgr
        import numpy as np
    except ImportError as exc:
        print(f"{PROG}: cannot import the package: {exc} (set CGR_LIBRARY to "
              "a built libcgr.so and PYTHONPATH to python/)", file=sys.stderr)
        return EXIT_FAILED
    backend, torch, torch_reason = choose_backend(cgr, options)
    variants = make_values(np, options.batches[-1])
    bench = CgrBench(cgr, np, backend, torch, options.batches, variants)
    rows, headlines = [], []

    def emit(record):
        output.emit(record)
        return record

    meta = emit(meta_record(cgr, np, torch, options, backend, bench.rt,
                            torch_reason))
    # The first line, as the C benchmarks print it: to stderr under --json,
    # so that stdout holds JSON lines only.
    print(f"{PROG}: {options.grid} grid, {backend} backend "
          f"({meta['device']}; {meta['backend_reason']}), "
          f"{'GPU' if backend == 'cuda' else CPU_LABEL}; step: "
          f"{bench.step_kind}; batches {list(options.batches)}, "
          f"{options.steps} steps after {options.warmup} warm-up per row",
          file=sys.stderr if options.json else sys.stdout, flush=True)
    try:
        peers = stream = None
        if torch is not None:
            from bench_python_peers import TorchPeers

            # The torch rows run on a stream of their own, as a serving
            # engine's loop does (not the legacy default stream).
            stream = torch.cuda.Stream()
            with torch.cuda.stream(stream):
                peers = TorchPeers(torch, np, options.batches, variants,
                                   INPUTS, Failure, expected_sum)
        for n, cgr_rows in run_cgr_rows(bench, options, backend, emit):
            rows += cgr_rows
            if torch is not None:
                with torch.cuda.stream(stream):
                    rows += run_torch_rows(bench, peers, options, backend, n,
                                           emit)
            headlines.append(emit(headline_record(backend, n, rows,
                                                  torch_reason)))
    finally:
        if torch is not None:
            torch.cuda.synchronize()
        bench.close()
    if torch is None:
        for method in ("cgr.torch.step",) + PEERS:
            emit({"kind": "na", "bench": "python", "backend": backend,
                  "impl": "torch" if method in PEERS else "cgr",
                  "method": method, "reason": torch_reason})
    if not options.json:
        foreach_reason = peers.foreach_reason if peers is not None else None
        print_table(meta, rows, headlines, torch_reason or foreach_reason)
    return EXIT_OK


# ---- the table ------------------------------------------------------------------------

def row_name(r):
    if r["impl"] == "torch":
        return {"torch_copy": "torch copy_ x6 + replay()",
                "torch_foreach": "torch _foreach_copy_ + replay()",
                "torch_replay": "torch replay() alone"}[r["mode"]]
    if r["path"] == "torch_step":
        return f"cgr.torch.step ({r['mode']})"
    return f"cgr {r['mode']}, {r['path']}"


def print_table(meta, rows, headlines, missing_reason):
    cpu = meta["timing"] == "cpu"
    label = CPU_LABEL if cpu else f"GPU: {meta['device']}"
    print(f"\nhost us per step, from Python ({label}); {meta['inputs']} inputs, "
          f"{meta['pages_per_row']} pages per row; {meta['steps']} steps after "
          f"{meta['warmup']} warm-up; {meta['in_flight']}")
    for n in meta["batches"]:
        replay = next((r["host_us_median"] for r in rows if r["batch"] == n
                       and r["mode"] == "torch_replay"), None)
        print(f"\nbatch {n} ({label})")
        print(f"  {'row':<36} {'source':>6} {'median':>8} {'p90':>8} "
              f"{'mean':>8} {'x replay':>8}")
        for r in rows:
            if r["batch"] != n:
                continue
            ratio = (f"{r['host_us_median'] / replay:8.2f}" if replay
                     else f"{'n/a':>8}")
            print(f"  {row_name(r):<36} {r['source']:>6} "
                  f"{r['host_us_median']:8.2f} {r['host_us_p90']:8.2f} "
                  f"{r['host_us_mean']:8.2f} {ratio}")
    if missing_reason:
        missing = ("torch _foreach_copy_ + replay()" if any(
            r["impl"] == "torch" for r in rows) else "cgr.torch.step, torch "
            "copy_ + replay(), torch _foreach_copy_ + replay(), torch "
            "replay() alone")
        print(f"\n{missing}: n/a ({missing_reason})")
    print(f"\nheadline ({DEFAULT_MODE}, prepared, pinned sources, at "
          f"{meta['inputs']} inputs; {label}):")
    for h in headlines:
        if h["ratio_to_copy"] is None:
            print(f"  batch {h['batch']}: cgr {h['cgr_us_median']:.2f} us; "
                  f"vs copy_ + replay() and vs replay() alone: n/a "
                  f"({h['reason']})")
            continue
        print(f"  batch {h['batch']}: cgr {h['cgr_us_median']:.2f} us = "
              f"{h['ratio_to_copy']:.3f} x copy_ + replay() (target <= 0.333: "
              f"{'met' if h['met_copy'] else 'MISSED'}), "
              f"{h['ratio_to_replay']:.2f} x replay() alone (target <= 1.5: "
              f"{'met' if h['met_replay'] else 'MISSED'})")
    print("\nmedian, p90, mean: host us of one call (cgr: prepared(n), "
          "Runtime.step or cgr.torch.step; torch: the copies + replay()); "
          "x replay: medians over torch's bare replay(). eager waits for its "
          "step, so its time holds the step's own.")
    if cpu:
        print(f"{CPU_LABEL}: cgr's engine on worker threads, the step six "
              "copies; they test the benchmark and say nothing about a GPU.")


def main(argv):
    options = parse_options(argv)
    try:
        output = Output(options)
    except OSError as exc:
        print(f"{PROG}: cannot write '{options.out}': {exc}", file=sys.stderr)
        return EXIT_FAILED
    began = time.monotonic()
    try:
        status = run(options, output)
    except SystemExit as exc:
        status = exc.code
    except Failure as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        status = EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - cgr.Error, torch's RuntimeError
        print(f"{PROG}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = EXIT_FAILED
    finally:
        output.close()
    if status == EXIT_OK and not options.json:
        print(f"finished in {time.monotonic() - began:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
