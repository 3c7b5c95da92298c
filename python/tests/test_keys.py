"""Keys from Python: a step per (bucket, tokens per request, variant) on
one set of slots, chosen per step by Runtime.step, prepare and batch;
slots scaled by token take batch_size * q rows, and outputs come back
with as many."""

import numpy as np
import pytest

import cgr
from conftest import BUCKETS, make_runtime, run_steps

TOKENS = (1, 3)
VARIANTS = ("plain", "double")
CAPACITY = BUCKETS[-1] * TOKENS[-1] + 8


class KeyedModel:
    """ids (token rows) -> out = ids * (1 or 2) + q * 100 + t; lens
    (request rows) -> total = lens + cu_q[r] (0, q, 2q, ...)."""

    def __init__(self, rt):
        self.rt = rt
        self.ids = rt.declare("ids", "rows", np.int32, scale="token")
        self.lens = rt.declare("lens", "rows", np.int32)
        self.cu_q = rt.declare("cu_q", "constant", np.int32, extra_elems=1)
        self.out = rt.declare("out", "output", np.int32, scale="token")
        self.total = rt.declare("total", "output", np.int32)
        self.stage = {s.name: rt.pinned_array(CAPACITY + 1, np.int32)
                      for s in (self.ids, self.lens, self.cu_q, self.out,
                                self.total)}
        self.runs = set()

    def step(self, ctx):
        q, v = ctx.tokens_per_request, ctx.variant
        padded = ctx.padded_batch
        self.runs.add((padded, q, v))
        rows = padded * q
        st = self.stage
        ctx.memcpy(st["ids"][:rows], ctx.slot(self.ids))
        ctx.memcpy(st["lens"][:padded], ctx.slot(self.lens))
        ctx.memcpy(st["cu_q"][: padded + 1], ctx.slot(self.cu_q))
        ids, lens, cu_q = (st[n].numpy() for n in ("ids", "lens", "cu_q"))
        out, total = st["out"].numpy(), st["total"].numpy()

        def compute():
            out[:rows] = ids[:rows] * (v + 1) + q * 100 + np.arange(rows)
            total[:padded] = lens[:padded] + cu_q[:padded]

        ctx.host_func(compute)
        ctx.memcpy(ctx.slot(self.out), st["out"][:rows])
        ctx.memcpy(ctx.slot(self.total), st["total"][:padded])

    @staticmethod
    def check(ticket, model, ids, lens, q, v):
        ticket.wait()
        want = ids * (v + 1) + q * 100 + np.arange(ids.shape[0])
        np.testing.assert_array_equal(ticket.output(model.out).numpy(), want)
        np.testing.assert_array_equal(ticket.output(model.total).numpy(),
                                      lens + q * np.arange(lens.shape[0]))


@pytest.fixture
def keyed():
    rt = make_runtime(tokens_per_request=TOKENS, variants=VARIANTS)
    model = KeyedModel(rt)
    rt.capture(model.step)
    yield rt, model
    rt.close()


@pytest.mark.parametrize("mode", cgr.REPLAY_MODES)
def test_every_key_in_every_mode(keyed, mode):
    """The key changes at every step; the pipelined mode (through the
    lookahead) stays within the largest bucket."""
    rt, model = keyed
    rt.replay_mode = mode
    rng = np.random.default_rng(5)
    largest = BUCKETS[-1] + (0 if mode == "pipelined" else 2)
    steps = []
    for k in range(40):
        n = int(rng.integers(1, largest + 1))
        q = TOKENS[k % 2]
        v = VARIANTS[(k // 2) % 2]
        ids = rng.integers(0, 1000, n * q, dtype=np.int32)
        lens = rng.integers(0, 50, n, dtype=np.int32)
        steps.append((n, {model.ids: ids, model.lens: lens},
                      {"tokens_per_request": q, "variant": v}))
    launches = iter(range(len(steps)))

    def launch(n, inputs, **key):  # every third step through a Batch
        if next(launches) % 3 == 0:
            with rt.batch(n, **key) as batch:
                for slot, value in inputs.items():
                    batch.input(slot, value)
                return batch.replay()
        return rt.step(n, inputs, **key)

    for ticket, (n, inputs, key) in zip(run_steps(rt, steps, launch), steps):
        assert ticket.batch_size == n
        q, v = key["tokens_per_request"], VARIANTS.index(key["variant"])
        assert (ticket.tokens_per_request, ticket.variant) == (q, v)
        KeyedModel.check(ticket, model, inputs[model.ids],
                         inputs[model.lens], q, v)
    captured = {(p, q, v) for p, q, v in model.runs if p in BUCKETS}
    assert len(captured) == len(BUCKETS) * len(TOKENS) * len(VARIANTS)


def test_prepared_step_takes_a_key(keyed):
    rt, model = keyed
    ids = rt.pinned_array(BUCKETS[-1] * TOKENS[-1], np.int32)
    lens = rt.pinned_array(BUCKETS[-1], np.int32)
    prepared = rt.prepare({model.ids: ids, model.lens: lens})
    for n, q, v in ((3, 3, 1), (4, 1, 0), (8, 3, 0)):
        ids.numpy()[: n * q] = np.arange(n * q, dtype=np.int32) * 7
        lens.numpy()[:n] = np.arange(n, dtype=np.int32) + 1
        ticket = prepared(n, tokens_per_request=q, variant=v)
        KeyedModel.check(ticket, model, ids.numpy()[: n * q].copy(),
                         lens.numpy()[:n].copy(), q, v)


def test_keys_stats_and_refusals(keyed):
    rt, model = keyed
    assert rt.tokens_per_request == TOKENS
    assert rt.variants == VARIANTS
    stats = rt.capture_stats()
    assert stats["keys"] == len(BUCKETS) * len(TOKENS) * len(VARIANTS)
    assert stats["keys_captured"] == stats["keys"]
    ks = rt.key_stats(4, 3, "double")
    assert ks["captured"] and ks["tokens_per_request"] == 3
    assert ks["variant"] == "double"
    with pytest.raises(cgr.InvalidArgumentError, match="tokens_per_request 2"):
        rt.step(2, {model.ids: np.zeros(4, np.int32),
                    model.lens: np.zeros(2, np.int32)}, tokens_per_request=2)
    with pytest.raises(cgr.InvalidArgumentError, match="no variant is named"):
        rt.step(1, {}, variant="lora")
    with pytest.raises(cgr.InvalidArgumentError, match="inputs\\[0\\]"):
        rt.step(2, {model.ids: np.zeros(2, np.int32),
                    model.lens: np.zeros(2, np.int32)}, tokens_per_request=3)
    with pytest.raises(cgr.InvalidArgumentError, match="key->variant 5"):
        rt.key_stats(4, 3, 5)


def test_dump_graph_of_a_key(keyed, tmp_path):
    rt, model = keyed
    path = tmp_path / "verify.dot"
    rt.dump_graph(4, 0, path, tokens_per_request=3, variant="double")
    assert path.stat().st_size > 0
    with pytest.raises(cgr.InvalidArgumentError, match="tokens_per_request 2"):
        rt.dump_graph(4, 0, path, tokens_per_request=2)


def test_fill_key_sees_the_key_and_buffers_are_per_key():
    rt = make_runtime(tokens_per_request=TOKENS)
    seen = []

    def fill(padded_batch, q, array):
        seen.append((padded_batch, q))
        array[:] = padded_batch * 100 + q * 10 + np.arange(array.shape[0])

    const = rt.declare("c", "constant", np.int32, extra_elems=1, fill_key=fill)
    cu_q = rt.declare("cu_q", "constant", np.int32, extra_elems=1)
    ids = rt.declare("ids", "rows", np.int32, scale="token")
    rt.capture(lambda ctx: None)
    assert {(p, q) for p in BUCKETS for q in TOKENS} <= set(seen)
    for q in TOKENS:
        got = const.buffer(0, 4, tokens_per_request=q).numpy()
        np.testing.assert_array_equal(got, 400 + q * 10 + np.arange(5))
        np.testing.assert_array_equal(
            cu_q.buffer(0, 4, tokens_per_request=q).numpy(), q * np.arange(5))
    assert ids.buffer(0).shape == (BUCKETS[-1] * TOKENS[-1],)
    rt.close()


def test_feedback_rows_are_counted_per_token():
    rt2 = make_runtime(tokens_per_request=TOKENS, variants=VARIANTS)
    m2 = KeyedModel(rt2)
    rt2.feed(m2.out, m2.ids)
    rt2.capture(m2.step)
    ids = np.arange(8, dtype=np.int32)
    lens = np.zeros(2, np.int32)
    rt2.step(2, {m2.ids: ids[:6], m2.lens: lens}, tokens_per_request=3).wait()
    with pytest.raises(cgr.InvalidArgumentError, match="prev_rows has 2 entries"):
        rt2.step(2, {m2.ids: cgr.Feedback(np.array([0, 1], np.int32)),
                     m2.lens: lens}, tokens_per_request=3)
    # The last token of each request continues; the rest are new rows.
    prev = np.array([2, -1, -1, 5, -1, -1], np.int32)
    fresh = np.arange(4, dtype=np.int32) + 50
    ticket = rt2.step(2, {m2.ids: cgr.Feedback(prev, fresh), m2.lens: lens},
                      tokens_per_request=3)
    ticket.wait()
    first = ids[:6] * 1 + 300 + np.arange(6)
    want_ids = np.array([first[2], 50, 51, first[5], 52, 53])
    np.testing.assert_array_equal(ticket.output(m2.out).numpy(),
                                  want_ids + 300 + np.arange(6))
    rt2.close()
