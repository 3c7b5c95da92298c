#!/usr/bin/env python3
"""torch_replay: the serving engines' way of replaying a decode step, timed
on the same GPU and at the same sizes as profiles/bench_replay.

The step is bench_replay's synthetic decode step, built from PyTorch ops:
static int32 CUDA tensors input_ids, positions, seq_lens, out_loc (bs each),
cu_seqlens_k (bs + 1), cu_seqlens_q (bs + 1, 0..bs, constant), page_table
(bs x W) and out (bs), and a graph of G small kernels over a scratch `acc`:
ones.fill_(1); acc = input_ids + positions; acc += seq_lens, out_loc,
cu_seqlens_k[1:], cu_seqlens_q[:bs] and the first min(bs, W) pages of the
last page_table row; G - 8 times acc += ones; out = acc + ones. Each op is
one kernel, so the graph has G kernel nodes like bench_replay's. The input
values are bench_replay's own (the same xorshift64 stream and seed per
configuration, four sets used in turn), so `out` must hold the same sums.

The graph is captured the way PyTorch's documentation asks: a few eager
runs on a side stream, then `with torch.cuda.graph(g)`. Methods, in order:

  torch_floor     g.replay() alone, the inputs already in place
  torch           per step, one static.copy_(src, non_blocking=True) per
                  metadata tensor (input_ids, out_loc, cu_seqlens_k,
                  positions, seq_lens, page_table) from pinned host
                  tensors, then g.replay(): what mini-sglang's FA3 backend
                  does before each replay
  torch_pageable  the same copies from ordinary (pageable) CPU tensors:
                  compare with bench_replay's host rows (CGR_SOURCE_HOST);
                  `torch` compares with its pinned rows (CGR_SOURCE_PINNED)

Timing. host_us is time.perf_counter_ns() around one step's copies and
g.replay() (the floor: g.replay() alone), as median and p99; prepare_us is
the copies' part. These host numbers include the Python interpreter and
PyTorch's dispatcher, which is the point: that is what a Python serving
engine pays per step. Like bench_replay, at most two steps are in flight:
before step n, outside the timed part, the loop waits for an event it
recorded after step n - 2, so host_us is the host's own work, not time
blocked on a device running behind. The exception is torch_pageable: the
CUDA driver stages a pageable host-to-device copy through pinned memory
and may wait for the stream to do it, so its host time can hold that
wait. gpu_step_us is the time between two CUDA timing events, one before
the first timed step and one after the last, divided by the steps: when
the host is slower than the device, it is the host's pace. The last step's `out` is checked against the expected
sums; a mismatch prints WRONG RESULT and exits 1.

Output: JSON lines on stdout (and in --out FILE) with bench_replay's row
fields, backend "torch", so the rows join bench_replay's table; "source"
says where the copies read from (pinned for torch and torch_floor, host for
torch_pageable), so profiles/report.py sets `torch` beside bench_replay's
pinned rows (--source pinned or both), like with like; then a human table
unless --json or --smoke. The grids (full, --quick, --smoke) are
bench_replay's, configuration for configuration, steps and warm-up
included (peers/test_torch_replay_cli.py checks it).

Exit status: 0 ran and every result was right; 1 a wrong result or a
failure (CUDA error, unwritable --out file); 2 bad usage; 77 skipped:
PyTorch cannot be imported or CUDA is not available to it (set
CGR_PEER_FORCE_NO_TORCH=1 to act as if PyTorch were missing, for tests).
"""

import argparse
import json
import os
import sys
import time

PROG = "torch_replay.py"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SKIPPED = 0, 1, 2, 77

# Sets of input values used in turn, as in bench_replay.
VARIANTS = 4
# Kernels the step has before its filler adds.
STEP_MIN_KERNELS = 8
MAX_STEPS = 10_000_000
MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF

# The metadata tensors copied before each replay, in copy order.
INPUT_NAMES = ("input_ids", "out_loc", "cu_seqlens_k", "positions",
               "seq_lens", "page_table")

GRIDS = {
    # buckets, pages per row, kernels, steps, warm-up steps
    "full": ((1, 8, 64, 256), (16, 128, 2048), (8, 64, 512), 10000, 200),
    "quick": ((1, 64), (16, 128), (8, 64), 300, 50),
    "smoke": ((8,), (16,), (8,), 50, 10),
}

METHODS = ("torch_floor", "torch", "torch_pageable")

# Where each method's inputs come from, as bench_replay's "source" says it
# for cgr: `torch` copies from pinned tensors, so it compares with cgr's
# pinned rows; `torch_pageable` from pageable ones (cgr's host rows);
# torch_floor copies nothing per step (its inputs were loaded once, from
# the pinned tensors).
SOURCES = {"torch_floor": "pinned", "torch": "pinned",
           "torch_pageable": "host"}

EPILOG = """\
methods: torch_floor (g.replay() alone), torch (six copy_ from pinned host
tensors, then g.replay()), torch_pageable (the same from pageable tensors).

exit status:
  0   ran, every result right
  1   a wrong result (WRONG RESULT) or a failure
  2   bad usage
  77  skipped: PyTorch cannot be imported, or CUDA is not available to it
      (CGR_PEER_FORCE_NO_TORCH=1 acts as if PyTorch were missing)
"""


# ---- options (parsed before torch is imported) ----------------------------

def steps_value(text):
    """--steps: a whole number from 1 to MAX_STEPS."""
    try:
        steps = int(text, 10)
    except ValueError:
        steps = 0
    if not 1 <= steps <= MAX_STEPS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {MAX_STEPS}, not '{text}'")
    return steps


def out_value(text):
    if text == "":
        raise argparse.ArgumentTypeError("needs a file name")
    return text


def parse_options(argv):
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Per-step host time and GPU step time of a PyTorch CUDA graph\n"
            "replayed the serving engines' way (a copy_ per metadata tensor,\n"
            "then g.replay()) against g.replay() alone, over buckets\n"
            "{1, 8, 64, 256} x pages per row {16, 128, 2048} x graph kernels\n"
            "{8, 64, 512}: bench_replay's grid and step."),
        epilog=EPILOG)
    parser.add_argument("--steps", type=steps_value, metavar="N",
                        help="timed steps per configuration and method "
                             "(default 10000)")
    parser.add_argument("--quick", dest="grid", action="store_const",
                        const="quick", default="full",
                        help="buckets {1, 64}, pages {16, 128}, kernels "
                             "{8, 64}, 300 steps")
    parser.add_argument("--smoke", dest="grid", action="store_const",
                        const="smoke",
                        help="one configuration (8, 16, 8), 50 steps, JSON "
                             "only (tests)")
    parser.add_argument("--json", action="store_true",
                        help="JSON lines only, no table")
    parser.add_argument("--out", type=out_value, metavar="FILE",
                        help="also write the JSON lines to FILE "
                             "(directories made)")
    options = parser.parse_args(argv)
    buckets, widths, kernels, steps, warmup = GRIDS[options.grid]
    options.buckets, options.widths, options.kernels = buckets, widths, kernels
    options.warmup = warmup
    if options.steps is None:
        options.steps = steps
    options.json_only = options.json or options.grid == "smoke"
    return options


def import_torch():
    """torch, or None after the one line that says why it cannot run."""
    if os.environ.get("CGR_PEER_FORCE_NO_TORCH", "") not in ("", "0"):
        print(f"{PROG}: PyTorch is treated as not installed "
              f"(CGR_PEER_FORCE_NO_TORCH is set); this peer runs on the GPU "
              f"machines, where it is", file=sys.stderr)
        return None
    try:
        import torch
    except (ImportError, OSError) as error:
        print(f"{PROG}: PyTorch is not installed (import torch failed: "
              f"{type(error).__name__}: {error}); this peer runs on the GPU "
              f"machines, where it is", file=sys.stderr)
        return None
    if not torch.cuda.is_available():
        build = (f"built for CUDA {torch.version.cuda}"
                 if torch.version.cuda else "a CPU-only build")
        print(f"{PROG}: CUDA is not available to PyTorch (torch "
              f"{torch.__version__}, {build}, device count "
              f"{torch.cuda.device_count()}); this peer needs a GPU",
              file=sys.stderr)
        return None
    return torch


# ---- input values: bench_replay's make_values ------------------------------

def seed_for(bucket, width, kernels):
    return 0x9E3779B97F4A7C15 ^ (bucket << 40 | width << 16 | kernels)


def make_values(bucket, width, kernels):
    """VARIANTS sets of inputs (lists by INPUT_NAMES) and what `out` must
    hold for each, drawn exactly as bench_replay's make_values draws them:
    the same numbers in the same order from the same xorshift64 state."""
    state = seed_for(bucket, width, kernels)

    def draw():
        nonlocal state
        state ^= (state << 13) & MASK64
        state ^= state >> 7
        state ^= (state << 17) & MASK64
        return state >> 32

    variants, expected = [], []
    fillers = kernels - STEP_MIN_KERNELS + 1  # each ones add, and the last
    for _ in range(VARIANTS):
        ids, positions, seq_lens, out_loc, cu_k = [], [], [], [], [0]
        for _ in range(bucket):
            ids.append(draw() % 32000)
            length = 1 + draw() % 4096
            seq_lens.append(length)
            positions.append(length - 1)
            out_loc.append(draw() % (1 << 20))
            cu_k.append(cu_k[-1] + length)
        pages = [draw() % 65536 for _ in range(bucket * width)]
        last_row = pages[(bucket - 1) * width:]
        want = []
        for i in range(bucket):
            total = (ids[i] + positions[i] + seq_lens[i] + out_loc[i] +
                     cu_k[i + 1] + i + fillers)
            if i < width:
                total += last_row[i]
            total &= MASK32
            want.append(total - (1 << 32) if total >= 1 << 31 else total)
        variants.append({"input_ids": ids, "out_loc": out_loc,
                         "cu_seqlens_k": cu_k, "positions": positions,
                         "seq_lens": seq_lens, "page_table": pages})
        expected.append(want)
    return variants, expected


# ---- statistics and output -------------------------------------------------

def percentiles(samples):
    """Median and p99 the way bench_common's bench_percentiles takes them."""
    ordered = sorted(samples)
    n = len(ordered)
    if n == 0:
        return 0.0, 0.0
    median = (ordered[n // 2] if n % 2 else
              (ordered[n // 2 - 1] + ordered[n // 2]) / 2)
    rank = (99 * n + 99) // 100  # ceil(99% of n)
    return median, ordered[max(rank, 1) - 1]


class Output:
    """JSON lines to stdout and, when asked, to a file."""

    def __init__(self, path):
        self.file = None
        if path is not None:
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            self.file = open(path, "w", encoding="utf-8")

    def emit(self, record):
        line = json.dumps(record, separators=(",", ":"))
        print(line, flush=True)
        if self.file is not None:
            self.file.write(line + "\n")

    def close(self):
        if self.file is not None:
            self.file.close()


def driver_version(torch):
    """The CUDA driver's version as an int (12040 for 12.4), or None."""
    getter = getattr(torch._C, "_cuda_getDriverVersion", None)
    if getter is None:
        return None
    try:
        return int(getter())
    except (RuntimeError, TypeError, ValueError):
        return None


def meta_record(torch, options):
    major, minor = torch.cuda.get_device_capability()
    return {
        "kind": "meta", "bench": "replay", "backend": "torch",
        "timing": "gpu", "device": torch.cuda.get_device_name(),
        "compute_capability": f"{major}.{minor}",
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "driver_version": driver_version(torch),
        "python_version": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "grid": options.grid, "steps": options.steps,
        "warmup": options.warmup, "max_steps_in_flight": 2,
        "peer": "torch",
    }


def row_record(options, shape, method, result, floor_median):
    bucket, width, kernels = shape
    ratio = result["host_median"] / floor_median if floor_median > 0 else 0.0
    return {
        "bench": "replay", "backend": "torch", "timing": "gpu",
        "mode": method, "source": SOURCES[method], "bucket": bucket,
        "pages_per_row": width,
        "kernels": kernels, "steps": options.steps,
        "warmup": options.warmup,
        "host_us_median": round(result["host_median"], 3),
        "host_us_p99": round(result["host_p99"], 3),
        "prepare_us_median": round(result["prepare_median"], 3),
        "gpu_step_us": round(result["gpu_step_us"], 3),
        "ratio_to_floor": round(ratio, 3),
        "launches_per_step": float(result["launches_per_step"]),
        "bytes_per_step": result["bytes_per_step"],
    }


def print_table(rows, steps):
    print(f"\n{'config':<20} {'mode':<14} {'source':>6} {'host med us':>11} "
          f"{'host p99 us':>11} {'prep med us':>11} {'x floor':>8} "
          f"{'GPU us/step':>11} {'lnch':>6}")
    for row in rows:
        config = (f"b={row['bucket']} w={row['pages_per_row']} "
                  f"g={row['kernels']}")
        print(f"{config:<20} {row['mode']:<14} {row['source']:>6} "
              f"{row['host_us_median']:11.2f} "
              f"{row['host_us_p99']:11.2f} {row['prepare_us_median']:11.2f} "
              f"{row['ratio_to_floor']:8.2f} {row['gpu_step_us']:11.2f} "
              f"{row['launches_per_step']:6.1f}")
    print(f"\nb: bucket (= batch), w: pages per row, g: kernels in the graph. "
          f"source: the host tensors the copies read (pinned: compare "
          f"with bench_replay's pinned rows; host: pageable, its host "
          f"rows). host: time.perf_counter_ns of one step's copy_ calls + "
          f"g.replay() (torch_floor: g.replay() alone), Python included; "
          f"prep: the copy_ part; x floor: host medians divided; GPU us/step: "
          f"timing events around {steps} back-to-back steps; lnch: copies + "
          f"graph launches per step. torch_pageable's host time can include "
          f"the driver's wait for the stream before a pageable copy.")


# ---- one configuration -----------------------------------------------------

class Workload:
    """One configuration's static tensors, host sources, graph and events."""

    def __init__(self, torch, stream, shape):
        bucket, width, kernels = shape
        self.torch, self.stream, self.shape = torch, stream, shape
        device, i32 = torch.device("cuda"), torch.int32
        variants, self.expected = make_values(bucket, width, kernels)

        def host_tensor(name, values):
            tensor = torch.tensor(values, dtype=i32)
            if name == "page_table":
                return tensor.view(bucket, width)
            return tensor

        # Sources, per variant, in INPUT_NAMES order.
        self.pageable = [[host_tensor(name, v[name]) for name in INPUT_NAMES]
                         for v in variants]
        self.pinned = [[t.pin_memory() for t in sources]
                       for sources in self.pageable]
        self.inputs = [torch.empty_like(t, device=device)
                       for t in self.pageable[0]]
        self.cu_seqlens_q = torch.arange(bucket + 1, dtype=i32, device=device)
        self.out = torch.zeros(bucket, dtype=i32, device=device)
        self.acc = torch.zeros(bucket, dtype=i32, device=device)
        self.ones = torch.zeros(bucket, dtype=i32, device=device)
        self.bytes_per_step = sum(t.numel() * t.element_size()
                                  for t in self.inputs)
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)
        self.launched = [torch.cuda.Event(), torch.cuda.Event()]
        self.graph = None

    def step(self):
        """The G kernels; every op writes in place, so capture allocates
        nothing."""
        torch = self.torch
        bucket, width, kernels = self.shape
        ids, out_loc, cu_k, positions, seq_lens, pages = self.inputs
        acc, ones = self.acc, self.ones
        ones.fill_(1)
        torch.add(ids, positions, out=acc)
        acc.add_(seq_lens)
        acc.add_(out_loc)
        acc.add_(cu_k[1:])
        acc.add_(self.cu_seqlens_q[:bucket])
        shared = min(bucket, width)
        acc[:shared].add_(pages[bucket - 1, :shared])
        for _ in range(kernels - STEP_MIN_KERNELS):
            acc.add_(ones)
        torch.add(acc, ones, out=self.out)

    def load(self, variant):
        for static, source in zip(self.inputs, self.pinned[variant]):
            static.copy_(source, non_blocking=True)

    def capture(self):
        """Eager warm-up on a side stream, then the capture."""
        torch = self.torch
        self.load(0)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.step()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.step()
        torch.cuda.synchronize()

    def check(self, variant, method):
        """`out` after the last step equals variant's sums; else a message."""
        self.stream.synchronize()
        got = self.out.cpu().tolist()
        want = self.expected[variant]
        for i, (have, should) in enumerate(zip(got, want)):
            if have != should:
                bucket, width, kernels = self.shape
                return (f"{PROG}: WRONG RESULT: bucket {bucket}, {width} "
                        f"pages per row, {kernels} kernels, {method}: "
                        f"out[{i}] is {have}, expected {should}")
        return None

    def release(self):
        self.graph = None
        self.pinned = self.pageable = self.inputs = None


def run_method(w, options, method):
    """Warm-up, then options.steps timed steps of `method`; its numbers."""
    steps, warmup = options.steps, options.warmup
    if method == "torch_floor":
        w.load(0)
        sources = None
    else:
        sources = w.pinned if method == "torch" else w.pageable
    host_us, prepare_us = [0.0] * steps, [0.0] * steps
    inputs, graph, launched = w.inputs, w.graph, w.launched
    clock = time.perf_counter_ns
    for n in range(warmup + steps):
        timed = n - warmup
        if timed == 0:
            w.start.record()
        event = launched[n & 1]
        if n >= 2:
            event.synchronize()  # step n - 2: untimed
        if sources is None:
            t0 = clock()
            graph.replay()
            t2 = clock()
            t1 = t0
        else:
            variant = sources[n % VARIANTS]
            t0 = clock()
            for static, source in zip(inputs, variant):
                static.copy_(source, non_blocking=True)
            t1 = clock()
            graph.replay()
            t2 = clock()
        event.record()
        if timed >= 0:
            host_us[timed] = (t2 - t0) / 1e3
            prepare_us[timed] = (t1 - t0) / 1e3
    w.end.record()
    w.end.synchronize()
    last_variant = 0 if sources is None else (warmup + steps - 1) % VARIANTS
    error = w.check(last_variant, method)
    if error is not None:
        return None, error
    host_median, host_p99 = percentiles(host_us)
    prepare_median, _ = percentiles(prepare_us)
    return {
        "host_median": host_median, "host_p99": host_p99,
        "prepare_median": prepare_median,
        "gpu_step_us": w.start.elapsed_time(w.end) * 1e3 / steps,
        "launches_per_step": 1 if sources is None else len(INPUT_NAMES) + 1,
        "bytes_per_step": 0 if sources is None else w.bytes_per_step,
    }, None


def run_config(torch, stream, options, shape, output, rows):
    """Every method on one configuration; None, or what went wrong."""
    w = Workload(torch, stream, shape)
    try:
        with torch.cuda.stream(stream):
            w.capture()
            results = {}
            for method in METHODS:
                result, error = run_method(w, options, method)
                if error is not None:
                    return error
                results[method] = result
    finally:
        torch.cuda.synchronize()
        w.release()
    floor_median = results["torch_floor"]["host_median"]
    for method in METHODS:
        row = row_record(options, shape, method, results[method],
                         floor_median)
        output.emit(row)
        rows.append(row)
    return None


def run_grid(torch, options, output, rows):
    output.emit(meta_record(torch, options))
    stream = torch.cuda.Stream()
    for bucket in options.buckets:
        for width in options.widths:
            for kernels in options.kernels:
                error = run_config(torch, stream, options,
                                   (bucket, width, kernels), output, rows)
                if error is not None:
                    print(error, file=sys.stderr)
                    return EXIT_FAILED
    return EXIT_OK


def run(torch, options):
    began = time.monotonic()
    try:
        output = Output(options.out)
    except OSError as error:
        print(f"{PROG}: cannot write '{options.out}': {error}",
              file=sys.stderr)
        return EXIT_FAILED
    rows = []
    try:
        status = run_grid(torch, options, output, rows)
    except RuntimeError as error:  # CUDA errors reach Python as these
        print(f"{PROG}: failed: {error}", file=sys.stderr)
        status = EXIT_FAILED
    try:
        output.close()
    except OSError as error:
        print(f"{PROG}: writing '{options.out}' failed: {error}",
              file=sys.stderr)
        status = EXIT_FAILED
    if status == EXIT_OK and not options.json_only:
        print_table(rows, options.steps)
        print(f"finished in {time.monotonic() - began:.1f} s")
    return status


def main(argv):
    options = parse_options(argv)  # exits 0 on --help, 2 on bad usage
    torch = import_torch()
    if torch is None:
        return EXIT_SKIPPED
    return run(torch, options)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
