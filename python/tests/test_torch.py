"""cgr.torch on CUDA: a step written with torch ops, captured for every
bucket and set, replayed by cgr in every mode, ordered with torch's stream.

Skipped (with the reason) without PyTorch or without a usable GPU; the
GPU run (profiles/gpu_run.sh) treats a skip there as a failure."""

import gc
import weakref

import numpy as np
import pytest

import cgr

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("torch.cuda.is_available() is False", allow_module_level=True)
try:
    cgr.Runtime(backend="cuda").close()
except (cgr.NoDeviceError, cgr.UnsupportedError) as exc:  # pragma: no cover
    pytest.skip(f"cgr has no usable CUDA device: {exc}", allow_module_level=True)

import cgr.torch as ct  # noqa: E402

BUCKETS = (1, 2, 4, 8)
ROW = 4


def model(a, b, scale):
    """A step with intermediates (from the shared pool) and a reduction."""
    hidden = (a.float() * scale + b.float().unsqueeze(-1)).relu()
    return hidden.sum(-1).round().int(), hidden


def reference(a, b, scale):
    hidden = np.maximum(a.astype(np.float32) * scale
                        + b.astype(np.float32)[:, None], 0)
    return np.round(hidden.sum(-1)).astype(np.int32), hidden


def make_runtime(**config):
    rt = cgr.Runtime(backend="cuda", buckets=BUCKETS, **config)
    slots = {
        "a": rt.declare("a", "rows", torch.int32, ROW),
        "b": rt.declare("b", "rows", torch.int32),
        "tokens": rt.declare("tokens", "output", torch.int32),
        "hidden": rt.declare("hidden", "output", torch.float32, ROW),
    }
    scale = torch.full((ROW,), 3.0, device="cuda")

    def step(ctx):
        tokens, hidden = model(ctx.slot(slots["a"]), ctx.slot(slots["b"]),
                               scale)
        ctx.slot(slots["tokens"]).copy_(tokens)
        ctx.slot(slots["hidden"]).copy_(hidden)

    return rt, slots, step


# cgr.torch does not support the pipelined mode: it refuses it (below).
TORCH_MODES = tuple(m for m in cgr.REPLAY_MODES if m != "pipelined")


@pytest.mark.parametrize("mode", TORCH_MODES)
def test_every_mode_matches_numpy(mode):
    rt, slots, step = make_runtime(replay_mode=mode)
    ct.capture(rt, step)
    rng = np.random.default_rng(5)
    for n in (1, 3, 8, 5, 2, 11):  # 11: over the largest bucket (eager)
        a = rng.integers(-50, 50, (n, ROW)).astype(np.int32)
        b = rng.integers(-50, 50, n).astype(np.int32)
        ticket = ct.step(rt, n, {slots["a"]: a, slots["b"]: b})
        tokens = ct.output(ticket, slots["tokens"])  # ordered: no wait
        hidden = ct.output(ticket, slots["hidden"])
        want_tokens, want_hidden = reference(a, b, 3.0)
        np.testing.assert_array_equal(tokens.cpu().numpy(), want_tokens)
        np.testing.assert_allclose(hidden.cpu().numpy(), want_hidden, rtol=1e-6)
    rt.close()


def test_the_pipelined_mode_is_refused_clearly():
    rt, slots, step = make_runtime(replay_mode="pipelined")
    with pytest.raises(cgr.UnsupportedError,
                       match="cgr.torch.capture: cgr.torch does not support "
                             "the pipelined replay mode"):
        ct.capture(rt, step)
    rt.close()
    rt, slots, step = make_runtime()
    ct.capture(rt, step)
    with pytest.raises(cgr.UnsupportedError, match="pipelined replay mode"):
        rt.replay_mode = "pipelined"
    assert rt.replay_mode == "double_buffered"
    a = np.ones((2, ROW), np.int32)
    b = np.zeros(2, np.int32)
    ticket = ct.step(rt, 2, {slots["a"]: a, slots["b"]: b})
    tokens = ct.output(ticket, slots["tokens"]).cpu().numpy()
    np.testing.assert_array_equal(tokens, reference(a, b, 3.0)[0])
    rt.close()


def test_graphs_share_one_pool_and_launch_once_per_step():
    rt, slots, step = make_runtime()
    ct.capture(rt, step)
    graphs, pool = rt._handle.torch_graphs
    assert set(graphs) == {(b, s) for b in BUCKETS for s in (0, 1)}
    assert all(isinstance(g, torch.cuda.CUDAGraph) for g in graphs.values())
    stats = rt.capture_stats()
    assert stats["graphs"] == 2 * len(BUCKETS)
    a = np.ones((4, ROW), np.int32)
    b = np.zeros(4, np.int32)
    ct.step(rt, 4, {slots["a"]: a, slots["b"]: b}).wait()
    rt.reset_counters()
    for _ in range(10):
        ticket = rt.step(4, {slots["a"]: a, slots["b"]: b})
    ticket.wait()
    assert rt.counters()["graph_launches"] == 10
    rt.close()


def test_device_inputs_from_torch_are_ordered_after_torch():
    """A torch producer on torch's stream writes a device input; the step
    reads it only after (cgr.torch.step's wait event), with no host wait."""
    rt, slots, step = make_runtime()
    ct.capture(rt, step)
    a = torch.empty((8, ROW), dtype=torch.int32, device="cuda")
    b = torch.empty(8, dtype=torch.int32, device="cuda")
    for k in range(5):
        torch.cuda._sleep(1_000_000)  # the producer is slow
        a.fill_(k)
        b.fill_(-k)
        ticket = ct.step(rt, 8, {slots["a"]: a, slots["b"]: b})
        got = ct.output(ticket, slots["tokens"]).clone()  # on torch's stream
        want, _ = reference(np.full((8, ROW), k, np.int32),
                            np.full(8, -k, np.int32), 3.0)
        np.testing.assert_array_equal(got.cpu().numpy(), want)
    rt.close()


def test_wrong_use_fails_clearly():
    rt, slots, step = make_runtime()
    with pytest.raises(cgr.InvalidArgumentError, match="in place"):
        ct.capture(rt, lambda ctx: ctx.slot(slots["a"]) + 1)
    rt.close()
    rt, slots, step = make_runtime()
    ct.capture(rt, step)
    with pytest.raises(cgr.InvalidStateError, match="captured already"):
        ct.capture(rt, step)
    rt.close()
    host = cgr.Runtime(backend="host", buckets=BUCKETS)
    host.declare("x", "rows", torch.int32)
    with pytest.raises(cgr.UnsupportedError, match="host backend"):
        ct.capture(host, lambda ctx: None)
    host.close()


def test_tensor_views_keep_the_runtime_alive():
    rt, slots, step = make_runtime()
    ct.capture(rt, step)
    a = np.full((2, ROW), 2, np.int32)
    b = np.full(2, 1, np.int32)
    ticket = ct.step(rt, 2, {slots["a"]: a, slots["b"]: b})
    view = ct.output(ticket, slots["tokens"])
    torch.cuda.synchronize()
    handle = weakref.ref(rt._handle)
    rt.close()
    with pytest.raises(cgr.InvalidStateError):
        ticket.wait()
    gc.collect()
    assert handle() is not None  # the view holds the C runtime
    np.testing.assert_array_equal(view.cpu().numpy(), reference(a, b, 3.0)[0])
    del view, ticket
    gc.collect()
    assert handle() is None


def test_dlpack_and_cuda_array_interface_share_memory():
    rt, slots, step = make_runtime()
    buffer = slots["a"].buffer(0)
    t1 = torch.from_dlpack(buffer)
    t2 = torch.as_tensor(buffer, device="cuda")
    assert t1.data_ptr() == t2.data_ptr() == buffer.ptr
    assert t1.shape == (BUCKETS[-1], ROW) and t1.dtype == torch.int32
    bf = rt.device_array((4, 2), torch.bfloat16)
    assert torch.from_dlpack(bf).dtype == torch.bfloat16
    rt.close()


def test_a_step_with_random_numbers_is_refused():
    rt, slots, _ = make_runtime()

    def noisy(ctx):
        noise = torch.rand(ctx.slot(slots["b"]).shape, device="cuda")
        ctx.slot(slots["tokens"]).copy_((noise * 0).int())

    with pytest.raises(cgr.UnsupportedError, match="random numbers"):
        ct.capture(rt, noisy)
    rt.close()


def test_a_module_with_parameters_gives_plain_outputs():
    """nn.Module weights require grad: the step runs under no_grad, so the
    outputs are plain tensors (numpy() works) and no autograd graph pins
    the pool."""
    rt, slots, _ = make_runtime()
    layer = torch.nn.Linear(ROW, 1, device="cuda")
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.fill_(0.0)

    def step(ctx):
        y = layer(ctx.slot(slots["a"]).float()).squeeze(-1)
        ctx.slot(slots["tokens"]).copy_(y.round().int())
        ctx.slot(slots["hidden"]).zero_()

    ct.capture(rt, step)
    a = np.arange(3 * ROW, dtype=np.int32).reshape(3, ROW)
    ticket = ct.step(rt, 3, {slots["a"]: a, slots["b"]: np.zeros(3, np.int32)})
    out = ct.output(ticket, slots["tokens"])
    assert not out.requires_grad
    torch.cuda.synchronize()
    np.testing.assert_array_equal(out.cpu().numpy(), a.sum(-1))
    rt.close()
