"""bench_python's PyTorch peers (profiles/bench_python.py says what is
timed and how): the same six-input step written with torch ops, captured
with torch.cuda.graph per batch size into static tensors, fed the serving
engines' ways (copy_ per tensor, torch._foreach_copy_) or not at all (a
bare replay, the floor). Imported only where PyTorch is."""

import time


def torch_step(torch, ids, pos, lens, loc, cu_k, pages, out):
    """Six kernels, in place: out = the sum of the six inputs' rows."""
    torch.add(ids, pos, out=out)
    out.add_(lens)
    out.add_(loc)
    out.add_(cu_k[1:])
    out.add_(pages[:, 0])



# ---- the PyTorch peers ---------------------------------------------------------------

class TorchPeers:
    """Static tensors for the largest batch, a torch.cuda.CUDAGraph per
    batch size on views of them (one pool, largest first), and pinned CPU
    tensors of every variant, cut to each batch size."""

    def __init__(self, torch, np, batches, variants, inputs, failure,
                 expected):
        """inputs: (name, kind, elements per row) of each input; failure:
        the exception a wrong result raises; expected(np, values, n): the
        right output."""
        self.inputs, self.failure, self.expected = inputs, failure, expected
        self.torch, self.np = torch, np
        self.batches = batches
        self.variants = variants
        device = torch.device("cuda")
        largest = batches[-1]
        self.static = [torch.zeros(variants[0][name].shape, dtype=torch.int32,
                                   device=device)
                       for name, _, _ in self.inputs]
        self.out = torch.zeros(largest, dtype=torch.int32, device=device)
        pinned = [[torch.from_numpy(values[name].copy()).pin_memory()
                   for name, _, _ in self.inputs] for values in variants]
        self.sources = {n: [[t[:self._count(k, n)] for k, t in enumerate(ts)]
                            for ts in pinned] for n in batches}
        self.dst = {n: [t[:self._count(k, n)] for k, t in enumerate(self.static)]
                    for n in batches}
        self.events = [torch.cuda.Event(), torch.cuda.Event()]
        self.graphs = {}
        pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream()
        self._load(0, largest)
        torch.cuda.synchronize()
        for n in reversed(batches):
            args = self.dst[n] + [self.out[:n]]
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    torch_step(torch, *args)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                torch_step(torch, *args)
            self.graphs[n] = graph
        torch.cuda.synchronize()
        # _foreach_copy_ from CPU to CUDA tensors is not a documented use:
        # if this PyTorch refuses it, that row is n/a with the reason.
        self.foreach_reason = None
        try:
            torch._foreach_copy_(self.dst[largest], self.sources[largest][0],
                                 non_blocking=True)
            torch.cuda.synchronize()
        except (AttributeError, RuntimeError, TypeError) as exc:
            self.foreach_reason = (f"torch._foreach_copy_ from pinned CPU "
                                   f"tensors failed: {type(exc).__name__}: "
                                   f"{exc}")

    def _count(self, k, n):
        return n + 1 if self.inputs[k][1] == "prefix" else n

    def _load(self, variant, n):
        for dst, src in zip(self.dst[n], self.sources[n][variant]):
            dst.copy_(src, non_blocking=True)

    def run(self, method, n, steps, warmup):
        torch = self.torch
        graph, dst, events = self.graphs[n], self.dst[n], self.events
        sources = self.sources[n]
        if method == "torch_replay":
            self._load(0, n)
            torch.cuda.synchronize()
        clock = time.perf_counter_ns
        samples = [0] * steps
        foreach = torch._foreach_copy_ if method == "torch_foreach" else None
        for i in range(warmup + steps):
            event = events[i & 1]
            if i >= 2:
                event.synchronize()
            variant = sources[i % len(self.variants)]
            if method == "torch_copy":
                t0 = clock()
                for d, s in zip(dst, variant):
                    d.copy_(s, non_blocking=True)
                graph.replay()
                t1 = clock()
            elif method == "torch_foreach":
                t0 = clock()
                foreach(dst, variant, non_blocking=True)
                graph.replay()
                t1 = clock()
            else:
                t0 = clock()
                graph.replay()
                t1 = clock()
            event.record()
            if i >= warmup:
                samples[i - warmup] = t1 - t0
        torch.cuda.synchronize()
        last = 0 if method == "torch_replay" else (warmup + steps - 1) % len(self.variants)
        got = self.out[:n].cpu().numpy()
        want = self.expected(self.np, self.variants[last], n)
        if not self.np.array_equal(got, want):
            bad = int(self.np.argmax(got != want))
            raise self.failure(f"WRONG RESULT: {method}, batch {n}: out[{bad}] is "
                          f"{got[bad]}, expected {want[bad]}")
        return samples
