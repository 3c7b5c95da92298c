"""cgr.torch: a decode step written with PyTorch ops, replayed by cgr.

The recipe (docs/python.md has the whole of it):

    rt = cgr.Runtime(backend="cuda", buckets=[1, 2, 4, 8])
    ids = rt.declare("input_ids", "rows", torch.int32)
    ...
    def step(ctx):                      # ctx.slot(...) are torch tensors
        logits = model(ctx.slot(ids), ctx.slot(pos), ...)
        ctx.slot(next_ids).copy_(logits.argmax(-1))   # outputs in place
    cgr.torch.capture(rt, step)
    ticket = cgr.torch.step(rt, n, {ids: ..., pos: ...})  # ordered with torch
    tokens = cgr.torch.output(ticket, next_ids)           # a tensor view

How it is built, on public PyTorch APIs only: capture() records the step
with torch.cuda.graph into torch.cuda.CUDAGraph(keep_graph=True) objects,
one per bucket and buffer set, largest bucket first, all in one
graph_pool_handle() pool, so every bucket's intermediates share the same
memory, as cgr's own scratch arena does (graphs of a runtime never run at
once, and each step's results live in cgr's slots, not in the pool). Then
cgr captures its own graphs: each is [cgr's in-graph load] -> the torch
graph as a child graph node (raw_cuda_graph(), cgr_cuda_step_graph) ->
[cgr's feedback copies]. Runs without a graph (cgr's warm-up, eager steps
over the largest bucket, the eager mode) call the step eagerly on cgr's
stream. The torch graphs and their pool live as long as the C runtime.

Why not let cgr capture while PyTorch's allocator is routed to a pool: the
routing calls are private (torch._C), and torch.cuda.graph synchronizes the
device on entry, which a capture already under way forbids. Adopting
torch's finished graphs needs only documented calls.
"""

import torch

from ._errors import (
    InvalidArgumentError,
    InvalidStateError,
    NoDeviceError,
    UnsupportedError,
)


def tensor(array):
    """A torch tensor sharing memory with a cgr.Array (DLPack: every dtype,
    bfloat16 too). It keeps the runtime's memory alive. It carries no
    ordering (the DLPack stream argument is ignored): read it after the
    step's ticket, or on a stream cgr.torch.step ordered."""
    return torch.from_dlpack(array)


class TorchContext:
    """What a PyTorch step function gets: the padded batch, the buffer set,
    and each slot's rows of this run as tensors."""

    def __init__(self, runtime, padded_batch, set_, tensors):
        self.runtime = runtime
        self.padded_batch = padded_batch
        self.set = set_
        self._tensors = tensors

    def slot(self, slot):
        """This run's tensor of `slot` (padded_batch rows; a PREFIX has one
        more entry). Write outputs in place (copy_, out=)."""
        return self._tensors[self.runtime._slot(slot).index]


def _device_tensors(runtime, padded_batch, set_):
    """Views of every slot's buffer in `set_`, cut to padded_batch rows."""
    out = {}
    for slot in runtime._slot_list:
        if slot.kind == "constant":
            out[slot.index] = tensor(slot.buffer(set_, padded_batch))
        else:
            full = _full_tensor(slot, set_)
            rows = padded_batch + 1 if slot.kind == "prefix" else padded_batch
            out[slot.index] = full[:rows]
    return out


def _full_tensor(slot, set_):
    cache = slot.runtime._torch_views
    key = (slot.index, set_)
    view = cache.get(key)
    if view is None:
        view = cache[key] = tensor(slot.buffer(set_))
    return view


# cgr's pipelined graphs record the step again, beside the next step's
# load; adopting torch's graphs there is neither built nor tested.
_NO_PIPELINED = (
    "cgr.torch does not support the pipelined replay mode (yet): use "
    "another mode (\"double_buffered\" also loads the next step's inputs "
    "while the step before it runs)")


def _check_runtime(runtime):
    runtime._live()
    if runtime.replay_mode == "pipelined":
        raise UnsupportedError(f"cgr.torch.capture: {_NO_PIPELINED}",
                               UnsupportedError.status)
    if runtime.backend != "cuda":
        raise UnsupportedError(
            "cgr.torch: the runtime runs on the host backend; a PyTorch step "
            "needs the CUDA backend (on the host backend write the step with "
            "ctx.host_func and numpy)", UnsupportedError.status)
    if not torch.cuda.is_available():
        raise NoDeviceError("cgr.torch: torch.cuda.is_available() is False",
                            NoDeviceError.status)
    if runtime._inputs is not None:
        raise InvalidStateError(
            "cgr.torch.capture: the runtime has captured already (a runtime "
            "captures once)", InvalidStateError.status)
    if len(runtime.tokens_per_request) > 1 or len(runtime.variants) > 1:
        raise UnsupportedError(
            "cgr.torch.capture adopts one torch graph per bucket and set: a "
            "runtime with several tokens-per-request values or variants "
            "(keys) is not supported yet; make one runtime per key, or write "
            "the step with Runtime.capture", UnsupportedError.status)
    # CUDA refuses a child graph with memory nodes (cudaMallocAsync puts
    # them in torch's captures) or conditional nodes.
    if torch.cuda.get_allocator_backend() != "native":
        raise UnsupportedError(
            "cgr.torch: PyTorch's cudaMallocAsync allocator puts memory nodes "
            "in its graphs, which CUDA refuses as child graphs: unset "
            "backend:cudaMallocAsync in PYTORCH_CUDA_ALLOC_CONF",
            UnsupportedError.status)


def capture(runtime, fn, *, warmup=2):
    """Captures `fn(ctx: TorchContext)` for every bucket and buffer set of
    `runtime` (a CUDA runtime with its slots declared and not yet captured)
    and hands the graphs to cgr. `warmup` (at least 1): eager runs per
    bucket before its capture, as torch.cuda.graph asks (cuBLAS sets up
    its handle and workspace there, not in the capture). fn runs under
    torch.no_grad(); it must write its results into output slots in place
    and return None, and draw no random numbers from torch's generator
    (cgr's replays never advance it: pass noise in through an input slot);
    tensors it keeps past the call would pin memory of the shared pool."""
    _check_runtime(runtime)
    if warmup < 1:
        raise InvalidArgumentError("cgr.torch.capture: warmup must be >= 1",
                                   InvalidArgumentError.status)
    device = torch.device("cuda", runtime._handle.device)
    handle = runtime._handle
    graphs = {}
    pool = torch.cuda.graph_pool_handle()
    generator = torch.cuda.default_generators[device.index]
    # cgr writes CONSTANT slots at its own capture, after torch's warm-ups:
    # write them now, the same values, so a warm-up never reads garbage
    # (a cu_seqlens_q used as an index, say).
    for slot in runtime._slot_list:
        if slot.kind == "constant":
            for padded_batch in runtime.buckets:
                slot.buffer(0, padded_batch).copy_from(
                    slot.constant_image(padded_batch))
    with torch.cuda.device(device):
        # Warm-ups and captures on cgr's side stream, which torch never
        # hands out: no later torch work shares the cuBLAS workspace the
        # captures use (torch keys it by stream), and before the first
        # replay nothing of cgr's runs there.
        side = torch.cuda.ExternalStream(runtime.cuda_stream("side"),
                                         device=device)
        for padded_batch in reversed(runtime.buckets):
            for set_ in (0, 1):
                ctx = TorchContext(runtime, padded_batch, set_,
                                   _device_tensors(runtime, padded_batch, set_))
                if set_ == 0:
                    offset = generator.get_offset()
                    side.wait_stream(torch.cuda.current_stream(device))
                    with torch.cuda.stream(side):
                        for _ in range(warmup):
                            _call(fn, ctx)
                    torch.cuda.current_stream(device).wait_stream(side)
                    if generator.get_offset() != offset:
                        raise UnsupportedError(
                            "cgr.torch.capture: the step draws random numbers "
                            "from torch's CUDA generator; cgr's replays never "
                            "advance it, so every step would draw the same "
                            "numbers: pass the noise in through an input slot",
                            UnsupportedError.status)
                graph = torch.cuda.CUDAGraph(keep_graph=True)
                with torch.cuda.graph(graph, pool=pool, stream=side,
                                      capture_error_mode="thread_local"):
                    _call(fn, ctx)
                graphs[(padded_batch, set_)] = graph
        torch.cuda.synchronize(device)
    # The graphs, their pool and the tensor views die with the C runtime.
    handle.torch_graphs = (graphs, pool)

    def cgr_step(ctx):
        if ctx.capturing:
            graph = graphs.get((ctx.padded_batch, ctx.set))
            if graph is None:
                raise InvalidStateError(
                    f"cgr.torch: no torch graph for bucket {ctx.padded_batch}",
                    InvalidStateError.status)
            ctx.graph(graph.raw_cuda_graph())
            return
        # A run without a graph: the step, eagerly, on cgr's stream, on
        # this run's buffers (an eager step's are of its own size).
        tensors = {s.index: tensor(ctx.slot(s)) for s in runtime._slot_list}
        stream = torch.cuda.ExternalStream(ctx.cuda_stream, device=device)
        with torch.cuda.stream(stream):
            _call(fn, TorchContext(runtime, ctx.padded_batch, ctx.set, tensors))

    runtime.capture(cgr_step)
    runtime._torch_events = (runtime.event(), runtime.event())
    # Runtime.replay_mode refuses "pipelined" from now on, with this reason.
    runtime._pipelined_refusal = _NO_PIPELINED


def _call(fn, ctx):
    with torch.no_grad():  # a graph of autograd would pin the pool
        result = fn(ctx)
    if result is not None:
        raise InvalidArgumentError(
            "cgr.torch: the step returned a value; write results into output "
            "slots in place (ctx.slot(out).copy_(...)) and return None",
            InvalidArgumentError.status)


def step(runtime, batch_size, inputs, *, stream=None):
    """Runtime.step, ordered both ways with PyTorch's `stream` (default:
    the current stream) and no host wait: the step's loads wait for the
    work torch enqueued there so far (device inputs a sampler wrote), and
    that stream waits for the step (consumers of its outputs). Three C
    calls: record, step, wait."""
    runtime._live()
    events = getattr(runtime, "_torch_events", None)
    if events is None:
        raise InvalidStateError(
            "cgr.torch.step: the runtime's step was not captured with "
            "cgr.torch.capture", InvalidStateError.status)
    ready, done = events
    if stream is None:
        stream = torch.cuda.current_stream(
            torch.device("cuda", runtime._handle.device))
    ready.record(stream)
    ticket = runtime.step(batch_size, inputs, wait=(ready,), done=done)
    done.wait(stream)
    return ticket


def output(ticket, slot):
    """The OUTPUT slot's batch_size rows of the ticket's step, as a tensor
    view (no copy). Valid as Ticket.output is: until the step that reuses
    the buffer set."""
    runtime = ticket.runtime
    if ticket.set >= 0:
        runtime._live()
        if runtime._last_step >= ticket.step + 2:
            raise InvalidStateError(
                f"cgr.torch.output: step {ticket.step}'s outputs were "
                f"overwritten by step {ticket.step + 2}",
                InvalidStateError.status)
        s = runtime._slot(slot)
        if s.kind != "output":
            raise InvalidArgumentError(f"cgr.torch.output: {s!r} is not an "
                                       "output", InvalidArgumentError.status)
        return _full_tensor(s, ticket.set)[: ticket.batch_size]
    return tensor(ticket.output(slot))


__all__ = ["TorchContext", "capture", "output", "step", "tensor"]
