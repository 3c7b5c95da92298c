"""Fixtures for the cgr Python suite.

Runtimes are built on the backend named by $CGR_TEST_BACKEND ("host" by
default, or "cuda"); on "cuda" without a usable GPU every test is skipped,
saying why, rather than passing.

The suite's step is `Model`: the same on both backends, so every test that
uses it checks the same arithmetic on a GPU as here. A host function may
read only host memory, and pinned memory is host memory on CUDA too, so the
step copies its inputs into pinned staging (a copy node), computes with
numpy in a host function (a host node), and copies the results back into
the output slots. `Model.reference` computes the same outputs from the
live rows alone: any padding row that leaked into a live one, any stale or
misplaced load, shows up as a difference.
"""

import gc
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cgr

BACKEND = os.environ.get("CGR_TEST_BACKEND", "host")
if BACKEND not in ("host", "cuda"):
    raise pytest.UsageError(f"CGR_TEST_BACKEND={BACKEND!r}: host or cuda")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""The repository root: two levels up from python/tests."""

BUCKETS = (1, 2, 4, 8)
CAPACITY = 64
"""Rows the model's staging holds: the largest batch any test runs."""

_backend_usable = None


def backend_usable():
    """(True, "") when $CGR_TEST_BACKEND can make a runtime, else (False,
    why). Asked once per session."""
    global _backend_usable
    if _backend_usable is None:
        try:
            cgr.Runtime(backend=BACKEND).close()
            _backend_usable = (True, "")
        except (cgr.NoDeviceError, cgr.UnsupportedError) as exc:
            _backend_usable = (False, f"no usable {BACKEND} backend: {exc}")
    return _backend_usable


def pytest_collection_modifyitems(config, items):
    usable, why = backend_usable()
    if not usable:
        marker = pytest.mark.skip(reason=why)
        for item in items:
            item.add_marker(marker)


def make_runtime(**kwargs):
    """A runtime on the suite's backend (buckets BUCKETS unless given)."""
    kwargs.setdefault("backend", BACKEND)
    kwargs.setdefault("buckets", BUCKETS)
    return cgr.Runtime(**kwargs)


@pytest.fixture
def rt():
    runtime = make_runtime()
    yield runtime
    runtime.close()


@pytest.fixture(autouse=True)
def _collect_after_each_test():
    """Runtimes a test left in reference cycles (an exception's traceback
    holds its frames) are destroyed here, on the main thread, between
    tests. Left to the garbage collector they are destroyed on whichever
    thread next allocates, and a destroy waits for the whole device, as
    cudaFree does: a later test's thread that must signal a host event
    would then wait, inside the collector, for streams that wait for its
    signal (the deadlock the GPU run's rehearsal met in test_events)."""
    yield
    gc.collect()


@pytest.fixture
def host_only():
    """Skips a test that needs the host backend (host events, CPU reads of
    device memory)."""
    if BACKEND != "host":
        pytest.skip(f"needs the host backend; this run is on {BACKEND}")


# ---- the model ------------------------------------------------------------------


def _compute(ids, pos, seq, cols, next_ids, score):
    """The step's arithmetic on P padded rows (runs in a host function)."""
    rows = ids.shape[0]
    lens = np.diff(seq.astype(np.int64))
    value = ids.astype(np.int64) * 3 + pos[:, 0] - pos[:, 1] + lens + cols[:rows]
    next_ids[:] = np.remainder(value, 1000)
    score[:, 0] = ids * 0.5
    score[:, 1] = pos[:, 0] + cols[1 : rows + 1]


class Model:
    """Slots of a decode step and the step itself:

    ids    ROWS int32, fed by `next` (rt.feed), padding 0
    pos    ROWS int64 x 2, padding 7
    seq    PREFIX int32 (lengths are its differences)
    cols   CONSTANT int32, padded_batch + 1 entries of arange
    next   OUTPUT int32:   (3 ids + pos0 - pos1 + len + row) mod 1000
    score  OUTPUT float32 x 2: (ids / 2, pos0 + row + 1)
    """

    def __init__(self, rt, feed=True):
        self.rt = rt
        self.ids = rt.declare("ids", "rows", np.int32, pad_value=0)
        self.pos = rt.declare("pos", "rows", np.int64, 2, pad_value=7)
        self.seq = rt.declare("seq", "prefix", np.int32)
        self.cols = rt.declare("cols", "constant", np.int32, extra_elems=1)
        self.next = rt.declare("next", "output", np.int32)
        self.score = rt.declare("score", "output", np.float32, 2)
        if feed:
            rt.feed(self.next, self.ids)
        self.slots = (self.ids, self.pos, self.seq, self.cols, self.next,
                      self.score)
        self.stage = {
            s.name: rt.pinned_array(s.shape_for(CAPACITY), s.dtype)
            for s in self.slots
        }
        self.runs = []  # (padded_batch, set, capturing) of every step call

    def step(self, ctx):
        padded = ctx.padded_batch
        assert padded <= CAPACITY, f"the model stages {CAPACITY} rows"
        self.runs.append((padded, ctx.set, ctx.capturing))
        views = []
        for slot in self.slots:
            src = ctx.slot(slot)
            staged = self.stage[slot.name][: src.shape[0]]
            if slot.kind != "output":
                ctx.memcpy(staged, src)
            views.append(staged.numpy())
        ctx.host_func(lambda: _compute(*views))
        for slot in (self.next, self.score):
            ctx.memcpy(ctx.slot(slot), self.stage[slot.name][:padded])

    def capture(self):
        self.rt.capture(self.step)
        return self

    @staticmethod
    def inputs(rng, n):
        """Random live inputs of a batch of n rows (numpy, pageable)."""
        return {
            "ids": rng.integers(0, 1000, n, dtype=np.int32),
            "pos": rng.integers(0, 100, (n, 2), dtype=np.int64),
            "seq": np.concatenate(
                [[0], np.cumsum(rng.integers(0, 10, n))]).astype(np.int32),
        }

    @staticmethod
    def reference(inputs):
        """(next, score) of the live rows, as numpy computes them."""
        ids, pos, seq = inputs["ids"], inputs["pos"], inputs["seq"]
        n = ids.shape[0]
        rows = np.arange(n + 1, dtype=np.int32)
        next_ids = np.empty(n, np.int32)
        score = np.empty((n, 2), np.float32)
        _compute(ids, pos, seq, rows, next_ids, score)
        return next_ids, score

    def check(self, ticket, inputs):
        """Waits for the ticket and compares its outputs with the reference."""
        ticket.wait()
        want_next, want_score = self.reference(inputs)
        got_next = ticket.output(self.next).numpy()
        got_score = ticket.output(self.score).numpy()
        np.testing.assert_array_equal(got_next, want_next)
        np.testing.assert_array_equal(got_score, want_score)
        return got_next.copy()


def run_steps(rt, steps, launch=None):
    """Runs `steps`, an iterable of (batch_size, inputs, keywords), in the
    runtime's replay mode, and yields each step's Ticket once its step has
    launched. Every mode but "pipelined": `launch(batch_size, inputs,
    **keywords)` per step (default rt.step). "pipelined": one run through
    the lookahead, rt.batch(...).stage() of the first step, then
    rt.replay_ahead(next), which takes step k + 1 from `steps` before step
    k launches (its inputs are built one step ahead), and
    rt.replay_ahead() for the last. A graph step's outputs stay readable
    until two more steps have launched: read a ticket's before resuming
    twice."""
    if rt.replay_mode != "pipelined":
        launch = launch or rt.step
        for batch_size, inputs, keywords in steps:
            yield launch(batch_size, inputs, **keywords)
        return
    steps = iter(steps)
    first = next(steps, None)
    if first is None:
        return
    batch_size, inputs, keywords = first
    rt.batch(batch_size, inputs=inputs, **keywords).stage()
    for batch_size, inputs, keywords in steps:
        yield rt.replay_ahead(rt.batch(batch_size, inputs=inputs, **keywords))
    yield rt.replay_ahead()
    assert not rt.staged


@pytest.fixture
def model(rt):
    return Model(rt).capture()


def run_python(code, timeout=60):
    """Runs `code` in a fresh interpreter with this suite's environment, so
    that a crash (a use-after-free, an abort) fails the calling test instead
    of killing pytest. Returns the CompletedProcess; asserts rc 0."""
    env = dict(os.environ)
    env["CGR_TEST_BACKEND"] = BACKEND
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(ROOT, "python"), here, env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env,
        capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"the subprocess exited with {proc.returncode}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc
