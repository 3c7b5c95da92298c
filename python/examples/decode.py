"""A decode loop through cgr from Python, in every replay mode.

    python python/examples/decode.py [--backend auto|cuda|host] [--requests N]

On a GPU (CUDA backend, PyTorch present): the model's step is written with
torch ops and captured with cgr.torch.capture; each replay mode serves the
same trace (but the pipelined mode, which cgr.torch does not support),
and so does the mini-sglang way (a torch.cuda.CUDAGraph per bucket, copy_
of every input into static tensors, then replay()). Every path must give
the same tokens.

Without a GPU (or with --backend host): the same model in numpy, as a host
function of the step, on cgr's host backend (the engine on CPU threads);
every mode is checked against the model run eagerly without cgr. It says
which it ran.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cgr  # noqa: E402
import decode_model as dm  # noqa: E402

BUCKETS = (1, 2, 4, 8)
FEEDBACK_MODES = ("naive", "fused", "double_buffered")


def serve(rt, slots, trace, mode, reset, read_tokens, run_step):
    """Serves the trace in `mode`; returns each request's tokens. Tokens of
    step n are read while step n+1 runs; input_ids come from the previous
    step on the device (feedback) where the mode allows it."""
    rt.replay_mode = mode
    reset()
    tokens = {r: [] for r in range(trace.requests)}
    last = {}
    pending = None
    prev_row = None  # request -> its row in the previous graph step
    for rows, meta in trace.steps():
        inputs = dict(meta)
        if mode in FEEDBACK_MODES and prev_row is not None:
            prev = np.array([prev_row.get(r, -1) for r in rows], np.int32)
            new = np.array([trace.prompt[r] for r, p in zip(rows, prev) if p < 0],
                           np.int32)
            inputs["input_ids"] = cgr.Feedback(prev, new if len(new) else None)
        else:
            if pending is not None:  # explicit ids need the last tokens
                collect(pending, tokens, last, read_tokens)
                pending = None
            inputs["input_ids"] = np.array(
                [last.get(r, trace.prompt[r]) for r in rows], np.int32)
        ticket = run_step(len(rows), inputs)
        if pending is not None:
            collect(pending, tokens, last, read_tokens)
        pending = (ticket, rows)
        prev_row = {r: i for i, r in enumerate(rows)} if ticket.set >= 0 else None
    collect(pending, tokens, last, read_tokens)
    rt.synchronize()
    return tokens


def serve_pipelined(rt, trace, reset, read_tokens):
    """Serves the trace in the pipelined mode: step n+1 is staged before
    step n launches (Batch.stage, then Runtime.replay_ahead), so its
    input_ids come from step n on the device (feedback), and a joining
    request's from its prompt. The trace knows each request's length, so
    scheduling one step ahead never admits a finished request."""
    rt.replay_mode = "pipelined"
    reset()
    tokens = {r: [] for r in range(trace.requests)}
    last = {}
    pending = None  # (ticket, rows) of the launched step read next
    staged = None  # rows of the staged step
    for rows, meta in trace.steps():
        inputs = dict(meta)
        if staged is None:
            inputs["input_ids"] = trace.prompt[rows]
        else:
            row_of = {r: i for i, r in enumerate(staged)}
            prev = np.array([row_of.get(r, -1) for r in rows], np.int32)
            new = trace.prompt[[r for r, p in zip(rows, prev) if p < 0]]
            inputs["input_ids"] = cgr.Feedback(prev, new if len(new) else None)
        batch = rt.batch(len(rows), inputs=inputs)
        if staged is None:
            batch.stage()
        else:
            ticket = rt.replay_ahead(batch)  # launches the staged step
            if pending is not None:
                collect(pending, tokens, last, read_tokens)
            pending = (ticket, staged)
        staged = rows
    ticket = rt.replay_ahead()  # the last step; the run ends
    collect(pending, tokens, last, read_tokens)
    collect((ticket, staged), tokens, last, read_tokens)
    rt.synchronize()
    return tokens


def collect(pending, tokens, last, read_tokens):
    ticket, rows = pending
    ticket.wait()
    ids = read_tokens(ticket)
    for r, token in zip(rows, ids):
        tokens[r].append(int(token))
        last[r] = int(token)


# ---- host backend: numpy ----------------------------------------------------------


def run_host(args):
    w = dm.weights()
    with cgr.Runtime(backend="host", buckets=BUCKETS, validate=True) as rt:
        print(f"backend: host ({rt.backend_reason}): the model runs in numpy "
              "as a host function of the step, on CPU threads; no GPU is used")
        slots = dm.declare(rt)
        cache_k = rt.device_array((dm.LAYERS, dm.PAGES * dm.PAGE, dm.HIDDEN),
                                  np.float32).numpy()
        cache_v = rt.device_array(cache_k.shape, np.float32).numpy()

        def step(ctx):
            t = {name: ctx.slot(s).numpy() for name, s in slots.items()}
            ctx.host_func(lambda: dm.step_numpy(w, cache_k, cache_v, t))

        rt.capture(step)
        trace = dm.Trace(requests=args.requests)

        def reset():
            cache_k[...] = 0
            cache_v[...] = 0

        reference = eager_numpy(w, trace)
        results = {}
        def read(ticket):
            return ticket.output(slots["next_ids"]).numpy().copy()

        for mode in cgr.REPLAY_MODES:
            start = time.perf_counter()
            if mode == "pipelined":
                results[mode] = serve_pipelined(rt, trace, reset, read)
            else:
                results[mode] = serve(rt, slots, trace, mode, reset, read,
                                      lambda n, inputs: rt.step(n, inputs))
            report(mode, results[mode], reference, time.perf_counter() - start)
        return all(results[m] == reference for m in results)


def eager_numpy(w, trace):
    """The model without cgr: each step on arrays of its own size."""
    cache_k = np.zeros((dm.LAYERS, dm.PAGES * dm.PAGE, dm.HIDDEN), np.float32)
    cache_v = np.zeros_like(cache_k)
    tokens = {r: [] for r in range(trace.requests)}
    last = {}
    for rows, meta in trace.steps():
        n = len(rows)
        t = dict(meta)
        t["input_ids"] = np.array([last.get(r, trace.prompt[r]) for r in rows],
                                  np.int32)
        t["logits"] = np.zeros((n, dm.VOCAB), np.float32)
        t["next_ids"] = np.zeros(n, np.int32)
        dm.step_numpy(w, cache_k, cache_v, t)
        for r, token in zip(rows, t["next_ids"]):
            tokens[r].append(int(token))
            last[r] = int(token)
    return tokens


def report(name, tokens, reference, seconds):
    same = tokens == reference
    count = sum(len(v) for v in tokens.values())
    print(f"  {name:16s} {count} tokens in {seconds * 1e3:8.1f} ms: "
          f"{'identical to the reference' if same else 'DIFFERENT'}")


# ---- CUDA: PyTorch ----------------------------------------------------------------


def run_cuda(args):
    import torch

    import cgr.torch as ct

    dev = torch.device("cuda")
    w = {k: torch.from_numpy(v).to(dev) for k, v in dm.weights().items()}
    cache_shape = (dm.LAYERS, dm.PAGES * dm.PAGE, dm.HIDDEN)
    cache_k = torch.zeros(cache_shape, device=dev)
    cache_v = torch.zeros(cache_shape, device=dev)
    trace = dm.Trace(requests=args.requests)

    def reset():
        torch.cuda.synchronize()
        cache_k.zero_()
        cache_v.zero_()
        torch.cuda.synchronize()

    reference = mini_sglang(w, cache_k, cache_v, trace, reset)
    with cgr.Runtime(backend="cuda", buckets=BUCKETS) as rt:
        print(f"backend: cuda ({rt.device_info['name']}): the model is torch "
              "ops captured by cgr.torch")
        slots = dm.declare(rt, torch.int32, torch.float32)
        names = {s.index: name for name, s in slots.items()}

        def step(ctx):
            t = {names[s.index]: ctx.slot(s) for s in slots.values()}
            dm.step_torch(w, cache_k, cache_v, t)

        ct.capture(rt, step)
        results = {}
        for mode in cgr.REPLAY_MODES:
            if mode == "pipelined":
                print(f"  {mode:16s} skipped: cgr.torch does not support it")
                continue
            start = time.perf_counter()
            results[mode] = serve(
                rt, slots, trace, mode, reset,
                # After the ticket's wait, a copy on cgr's own stream: the
                # read of step n does not wait for step n + 1 (torch's
                # current stream already waits for it).
                lambda t: t.output(slots["next_ids"]).numpy(),
                lambda n, inputs: ct.step(rt, n, _to_device(inputs, dev)))
            report(mode, results[mode], reference, time.perf_counter() - start)
    return all(results[m] == reference for m in results)


def _to_device(inputs, dev):
    """Host metadata stays numpy (cgr stages it); nothing else to do."""
    return inputs


def mini_sglang(w, cache_k, cache_v, trace, reset):
    """The way mini-sglang's GraphRunner replays: static tensors per input,
    one CUDAGraph per bucket in one pool, copy_ per tensor, replay()."""
    import torch

    dev = cache_k.device
    largest = BUCKETS[-1]
    static = {
        "input_ids": torch.zeros(largest, dtype=torch.int32, device=dev),
        "positions": torch.zeros(largest, dtype=torch.int32, device=dev),
        "seq_lens": torch.zeros(largest, dtype=torch.int32, device=dev),
        "cu_seqlens_k": torch.zeros(largest + 1, dtype=torch.int32, device=dev),
        "cu_seqlens_q": torch.arange(largest + 1, dtype=torch.int32, device=dev),
        "out_loc": torch.zeros(largest, dtype=torch.int32, device=dev),
        "page_table": torch.zeros(largest, dm.MAX_PAGES, dtype=torch.int32,
                                  device=dev),
        "logits": torch.zeros(largest, dm.VOCAB, device=dev),
        "next_ids": torch.zeros(largest, dtype=torch.int32, device=dev),
    }

    def views(pb):
        return {k: v[: pb + 1] if k.startswith("cu_") else v[:pb]
                for k, v in static.items()}

    pool = torch.cuda.graph_pool_handle()
    graphs = {}
    side = torch.cuda.Stream()
    for pb in reversed(BUCKETS):
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            dm.step_torch(w, cache_k, cache_v, views(pb))
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, pool=pool):
            dm.step_torch(w, cache_k, cache_v, views(pb))
        graphs[pb] = g
    reset()
    start = time.perf_counter()
    tokens = {r: [] for r in range(trace.requests)}
    last = {}
    for rows, meta in trace.steps():
        n = len(rows)
        pb = next(b for b in BUCKETS if b >= n)
        ids = np.array([last.get(r, trace.prompt[r]) for r in rows], np.int32)
        host = dict(meta, input_ids=ids)
        for name, value in host.items():  # one copy_ per tensor, then pad
            src = torch.from_numpy(value)
            static[name][: src.shape[0]].copy_(src, non_blocking=False)
            if name == "cu_seqlens_k":
                static[name][n + 1: pb + 1] = int(value[-1])
            else:
                static[name][n:pb] = 0
        graphs[pb].replay()
        out = static["next_ids"][:n].cpu().numpy()
        for r, token in zip(rows, out):
            tokens[r].append(int(token))
            last[r] = int(token)
    count = sum(len(v) for v in tokens.values())
    print(f"  {'mini-sglang':16s} {count} tokens in "
          f"{(time.perf_counter() - start) * 1e3:8.1f} ms: the reference")
    return tokens


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", choices=("auto", "cuda", "host"))
    parser.add_argument("--requests", type=int, default=24)
    args = parser.parse_args()
    backend = args.backend
    if backend == "auto":
        probe = None
        try:
            probe = cgr.Runtime(backend="cuda")
            import torch  # noqa: F401

            backend = "cuda" if torch.cuda.is_available() else "host"
        except (cgr.NoDeviceError, cgr.UnsupportedError, ImportError) as exc:
            print(f"no CUDA device or PyTorch here ({exc}): using the host backend")
            backend = "host"
        finally:
            if probe is not None:
                probe.close()
    ok = run_cuda(args) if backend == "cuda" else run_host(args)
    print("all modes: identical tokens" if ok else "MISMATCH: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
