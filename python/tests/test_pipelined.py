"""The pipelined mode from Python: Batch.stage() stages a run's first step,
Runtime.replay_ahead(next) launches the staged step and stages the next,
replay_ahead() ends the run. Random runs whose bucket changes at every
step, compared step by step with the same steps in the eager mode;
feedback with moved, dropped and new rows across a run; runs between
other modes' steps; and every misuse raising its class with the C
library's message, changing nothing."""

import time

import numpy as np
import pytest

import cgr
from conftest import BUCKETS, Model, make_runtime

# Buffers per source: step k's are rewritten for step k + 3, after the
# test has waited for step k (so for step k - 1's graph, which carried
# step k's load).
RING = 3
TABLE_ROWS = 16


def _bucket(n):
    return next(b for b in BUCKETS if b >= n)


def _sizes(rng, count):
    """Batch sizes up to the largest bucket whose bucket changes at every
    step."""
    sizes = [int(rng.integers(1, BUCKETS[-1] + 1))]
    while len(sizes) < count:
        n = int(rng.integers(1, BUCKETS[-1] + 1))
        if _bucket(n) != _bucket(sizes[-1]):
            sizes.append(n)
    return sizes


def _outputs(model, ticket):
    """(next, score) of a finished step, copied out of cgr's buffers."""
    ticket.wait()
    return (ticket.output(model.next).numpy().copy(),
            ticket.output(model.score).numpy().copy())


def _eager_outputs(steps):
    """Each step's outputs in the eager mode: step functions on buffers of
    the step's own size, no graph, no lookahead."""
    with make_runtime(replay_mode="eager") as rt:
        model = Model(rt).capture()
        return [_outputs(model, rt.step(n, x)) for n, x in steps]


def _pipelined_runtime():
    rt = make_runtime(replay_mode="pipelined")
    return rt, Model(rt).capture()


def _same(got, want, what):
    for g, w, name in zip(got, want, ("next", "score")):
        np.testing.assert_array_equal(g, w, err_msg=f"{what}: {name}")


# ---- random runs against the eager mode -------------------------------------------


class _Sources:
    """A logical step's inputs as the pipelined mode takes them, from a
    random source per slot: pageable, pinned or device memory, a gather
    from a device table, UNCHANGED where the buffer set the step loads
    holds the same rows. Pinned and device memory is read after the call
    that stages the batch: each step has its own of RING buffers."""

    def __init__(self, rt, rng):
        self.rng = rng
        self.table = rng.integers(0, 100, (TABLE_ROWS, 2), dtype=np.int64)
        self.device_table = rt.device_array(self.table.shape, np.int64)
        self.device_table.copy_from(self.table)
        self.pinned = [rt.pinned_array((BUCKETS[-1], 2), np.int64)
                       for _ in range(RING)]
        self.device = [rt.device_array((BUCKETS[-1], 2), np.int64)
                       for _ in range(RING)]
        self.rows = [rt.device_array(BUCKETS[-1], np.int32)
                     for _ in range(RING)]
        self.seq = [rt.pinned_array(BUCKETS[-1] + 1, np.int32)
                    for _ in range(RING)]
        self.loaded = {0: None, 1: None}  # set -> (n, pos) staged there
        self.kinds = set()

    def logical(self, k, n):
        """Step k's live inputs (numpy): sometimes the rows its set loaded
        two steps ago, sometimes positions gathered from the table."""
        x = Model.inputs(self.rng, n)
        loaded = self.loaded[k % 2]
        gather = None
        if loaded is not None and loaded[0] == n and self.rng.random() < 0.4:
            x["pos"] = loaded[1]
        elif self.rng.random() < 0.3:
            gather = self.rng.integers(0, TABLE_ROWS, n, dtype=np.int32)
            x["pos"] = self.table[gather]
        self.loaded[k % 2] = (n, x["pos"])
        return x, gather

    def deliver(self, k, n, x, gather, unchanged):
        ring = k % RING
        out = {}
        if unchanged:
            out["pos"] = cgr.UNCHANGED
            self.kinds.add("unchanged")
        elif gather is not None:
            self.rows[ring][:n].copy_from(gather)
            out["pos"] = cgr.Gather(self.device_table, self.rows[ring][:n])
            self.kinds.add("gather")
        else:
            kind = ("host", "pinned", "device")[int(self.rng.integers(3))]
            self.kinds.add(kind)
            if kind == "host":
                out["pos"] = x["pos"].copy()
            elif kind == "pinned":
                np.asarray(self.pinned[ring])[:n] = x["pos"]
                out["pos"] = self.pinned[ring][:n]
            else:
                out["pos"] = self.device[ring][:n].copy_from(x["pos"])
        if self.rng.random() < 0.5:
            np.asarray(self.seq[ring])[: n + 1] = x["seq"]
            out["seq"] = self.seq[ring][: n + 1]
        else:
            out["seq"] = x["seq"]
        out["ids"] = x["ids"]
        return out


@pytest.mark.parametrize("seed", [1, 2])
def test_random_run_matches_the_eager_mode_step_by_step(seed):
    rng = np.random.default_rng(seed)
    sizes = _sizes(rng, 120)
    rt, model = _pipelined_runtime()
    with rt:
        sources = _Sources(rt, rng)
        plan = []  # (n, logical inputs, gather rows, unchanged)
        for k, n in enumerate(sizes):
            before = sources.loaded[k % 2]
            x, gather = sources.logical(k, n)
            unchanged = before is not None and x["pos"] is before[1]
            plan.append((n, x, gather, unchanged))
        eager = _eager_outputs([(n, x) for n, x, _, _ in plan])

        def batch(k):
            n, x, gather, unchanged = plan[k]
            inputs = sources.deliver(k, n, x, gather, unchanged)
            return rt.batch(n, inputs=inputs)

        batch(0).stage()
        assert rt.staged
        pending = None  # the launched step read one launch later
        for k in range(1, len(plan) + 1):
            ticket = rt.replay_ahead(batch(k) if k < len(plan) else None)
            n = plan[k - 1][0]
            assert (ticket.step, ticket.batch_size) == (k - 1, n)
            assert (ticket.padded_batch, ticket.set) == (_bucket(n), (k - 1) % 2)
            assert rt.staged == (k < len(plan))
            if pending is not None:  # readable until step pending + 2
                _same(_outputs(model, pending), eager[pending.step],
                      f"step {pending.step}")
            pending = ticket
        _same(_outputs(model, pending), eager[pending.step], "the last step")
        for step in range(len(plan)):  # eager is the numpy reference too
            _same(eager[step], Model.reference(plan[step][1]), f"eager {step}")
        assert sources.kinds == {"host", "pinned", "device", "gather",
                                 "unchanged"}
        stats = rt.replay_stats("pipelined")
        assert (stats["steps"], stats["eager_steps"]) == (len(plan), 0)
        assert stats["ops_copied"] > 0 and stats["ops_skipped"] > 0
        assert rt.capture_stats()["eager_runs"] == 0


# ---- feedback -------------------------------------------------------------------------


def _schedule(rng, steps):
    """Per step: (prev_rows, new tokens, pos, seq). Each row of the step
    before stays with probability 5/6, the kept rows are now and then
    shuffled (moved), 0 to 3 requests join at the end."""
    out, count = [], 0
    for _ in range(steps):
        kept = [r for r in range(count) if rng.random() >= 1 / 6]
        if rng.random() < 0.3:
            rng.shuffle(kept)
        joins = int(rng.integers(0 if kept else 1, 4))
        joins = min(joins, BUCKETS[-1] - len(kept[: BUCKETS[-1]]))
        prev_rows = np.array(kept[: BUCKETS[-1]] + [-1] * joins, np.int32)
        count = len(prev_rows)
        new = rng.integers(0, 1000, joins, dtype=np.int32)
        x = Model.inputs(rng, count)
        out.append((prev_rows, new, x["pos"], x["seq"]))
    return out


def _ids(prev_rows, new, previous_next):
    """The ids a step's rows continue or start with, on the host."""
    ids = np.empty(len(prev_rows), np.int32)
    kept = prev_rows >= 0
    if kept.any():
        ids[kept] = previous_next[prev_rows[kept]]
    ids[~kept] = new
    return ids


def test_feedback_moves_drops_and_adds_rows_across_a_run():
    """Step k + 1 is staged before step k runs: its ids are step k's
    outputs on the device (Feedback: prev_rows name step k's rows). The
    eager run takes them on the host from its own previous outputs."""
    schedule = _schedule(np.random.default_rng(9), 150)
    with make_runtime(replay_mode="eager") as rt:
        model = Model(rt).capture()
        eager, previous = [], None
        for prev_rows, new, pos, seq in schedule:
            ids = _ids(prev_rows, new, previous)
            x = {"ids": ids, "pos": pos, "seq": seq}
            eager.append(_outputs(model, rt.step(len(ids), x)))
            _same(eager[-1], Model.reference(x), f"eager {len(eager) - 1}")
            previous = eager[-1][0]
    moved = dropped = False
    rt, model = _pipelined_runtime()
    with rt:
        first_rows, first_new, pos, seq = schedule[0]
        rt.batch(len(first_rows),
                 inputs={"ids": first_new, "pos": pos, "seq": seq}).stage()
        pending = None
        for k in range(1, len(schedule) + 1):
            batch = None
            if k < len(schedule):
                prev_rows, new, pos, seq = schedule[k]
                kept = prev_rows[prev_rows >= 0]
                moved |= bool((kept != np.arange(len(kept))).any())
                dropped |= len(kept) < len(schedule[k - 1][0])
                batch = rt.batch(len(prev_rows), inputs={
                    "ids": cgr.Feedback(prev_rows, new), "pos": pos,
                    "seq": seq})
            ticket = rt.replay_ahead(batch)
            if pending is not None:
                _same(_outputs(model, pending), eager[pending.step],
                      f"step {pending.step}")
            pending = ticket
        _same(_outputs(model, pending), eager[pending.step], "the last step")
    assert moved and dropped


# ---- runs between other modes' steps ---------------------------------------------


def _maybe_fed(rng, x, previous):
    """(what to give, the logical inputs) of a step: now and then its ids
    continue rows of the previous step, `previous` (its reference `next`,
    or None when it was no graph step), moved, dropped and new."""
    if previous is None or rng.random() < 0.3:
        return x, x
    n = len(x["ids"])
    prev_rows = np.full(n, -1, np.int32)
    kept = rng.permutation(len(previous))[: int(rng.integers(0, n + 1))]
    prev_rows[rng.permutation(n)[: len(kept)]] = kept
    new = rng.integers(0, 1000, int((prev_rows < 0).sum()), dtype=np.int32)
    logical = dict(x, ids=_ids(prev_rows, new, previous))
    return dict(x, ids=cgr.Feedback(prev_rows, new)), logical


def test_runs_alternate_with_other_modes():
    """Pipelined runs of random length between steps of the other modes,
    on one runtime: the step count, the sets, their contents and feedback
    carry over, both ways."""
    rng = np.random.default_rng(13)
    others = [m for m in cgr.REPLAY_MODES if m != "pipelined"]
    rt, model = _pipelined_runtime()
    with rt:
        step, previous, pipelined_steps = 0, None, 0
        crossed = set()  # feedback into a run, out of one
        for rnd in range(24):
            if rnd % 2 == 0:
                rt.replay_mode = "pipelined"
                xs = [Model.inputs(rng, n) for n in _sizes(rng, 1 + rnd % 5)]
                logical = []
                for k, x in enumerate(xs):
                    given, want = _maybe_fed(rng, x, previous)
                    logical.append(want)
                    previous = Model.reference(want)[0]
                    batch = rt.batch(len(x["ids"]), inputs=given)
                    if k == 0:
                        if given is not x:
                            crossed.add("into a run")
                        batch.stage()
                        continue
                    ticket = rt.replay_ahead(batch)
                    assert ticket.step == step
                    model.check(ticket, logical[k - 1])
                    step += 1
                ticket = rt.replay_ahead()
                assert ticket.step == step
                model.check(ticket, logical[-1])
                step += 1
                pipelined_steps += len(xs)
            else:
                rt.replay_mode = others[int(rng.integers(len(others)))]
                for j in range(int(rng.integers(1, 4))):
                    x = Model.inputs(rng, int(rng.integers(1, BUCKETS[-1] + 1)))
                    if rt.replay_mode in ("in_graph", "eager"):
                        given = want = x  # no feedback there
                    else:
                        given, want = _maybe_fed(rng, x, previous)
                        if j == 0 and given is not x:
                            crossed.add("out of a run")
                    ticket = rt.step(len(x["ids"]), given)
                    assert ticket.step == step
                    model.check(ticket, want)
                    previous = (None if rt.replay_mode == "eager"
                                else Model.reference(want)[0])
                    step += 1
        assert rt.replay_stats("pipelined")["steps"] == pipelined_steps
        assert crossed == {"into a run", "out of a run"}


# ---- what a staged batch reads, and when --------------------------------------------


def test_the_launched_steps_outputs_expire_two_launches_later():
    rt, model = _pipelined_runtime()
    rng = np.random.default_rng(17)
    with rt:
        xs = [Model.inputs(rng, n) for n in (2, 5, 3, 1)]
        rt.batch(2, inputs=xs[0]).stage()
        tickets = [rt.replay_ahead(rt.batch(len(x["ids"]), inputs=x))
                   for x in xs[1:]]
        model.check(tickets[2], xs[2])
        with pytest.raises(cgr.InvalidStateError):
            tickets[0].output(model.next)  # step 2 reused its set
        tickets.append(rt.replay_ahead())
        model.check(tickets[3], xs[3])


def test_a_staged_batch_waits_for_its_event_before_the_step_it_follows(
        host_only):
    """Events a staged batch waits for are waited for before the graph of
    the step launched with it, which carries its load."""
    rt, model = _pipelined_runtime()
    rng = np.random.default_rng(19)
    with rt:
        xs = [Model.inputs(rng, n) for n in (3, 4)]
        rt.batch(3, inputs=xs[0]).stage()
        event = rt.event()
        event.record_host()
        try:
            batch = rt.batch(4, inputs=xs[1])
            batch.wait(event)
            first = rt.replay_ahead(batch)
            time.sleep(0.05)
            assert not first.done()
        finally:
            event.signal_host()
        model.check(first, xs[0])
        model.check(rt.replay_ahead(), xs[1])


# ---- misuse ----------------------------------------------------------------------------


@pytest.fixture
def pipelined():
    rt, model = _pipelined_runtime()
    yield rt, model, np.random.default_rng(23)
    rt.close()


def _batch(rt, rng, n, **drop):
    x = Model.inputs(rng, n)
    for name in drop:
        del x[name]
    return rt.batch(n, inputs=x), x


def test_step_in_the_pipelined_mode_raises_the_c_message(pipelined):
    rt, model, rng = pipelined
    x = Model.inputs(rng, 3)
    with pytest.raises(cgr.InvalidStateError) as info:
        rt.step(3, x)
    message = str(info.value)
    assert ("CGR_REPLAY_PIPELINED runs its steps through cgr_replay_stage "
            "and cgr_replay_ahead") in message
    assert "Batch.stage()" in message and "Runtime.replay_ahead" in message
    assert info.value.status_name == "CGR_E_INVALID_STATE"
    with pytest.raises(cgr.InvalidStateError, match="cgr_replay_stage"):
        rt.batch(3, inputs=x).replay()
    prepared = rt.prepare({"ids": np.zeros(BUCKETS[-1], np.int32),
                           "pos": np.zeros((BUCKETS[-1], 2), np.int64),
                           "seq": np.zeros(BUCKETS[-1] + 1, np.int32)})
    with pytest.raises(cgr.InvalidStateError, match="cgr_replay_stage"):
        prepared(3)
    assert not rt.staged
    # Nothing ran, nothing is open: the first staged step is step 0.
    rt.batch(3, inputs=x).stage()
    ticket = rt.replay_ahead()
    assert ticket.step == 0
    model.check(ticket, x)
    # With a step staged, step() refuses the same way and leaves it staged.
    rt.batch(3, inputs=x).stage()
    with pytest.raises(cgr.InvalidStateError, match="cgr_replay_ahead"):
        rt.step(3, x)
    assert rt.staged
    model.check(rt.replay_ahead(), x)


def test_replay_ahead_with_nothing_staged(pipelined):
    rt, model, rng = pipelined
    with pytest.raises(cgr.InvalidStateError, match="no step is staged"):
        rt.replay_ahead()
    batch, _ = _batch(rt, rng, 2)
    with pytest.raises(cgr.InvalidStateError, match="no step is staged"):
        rt.replay_ahead(batch)
    assert not batch.open  # consumed, as C consumes it
    with pytest.raises(cgr.InvalidStateError, match="the batch is closed"):
        batch.stage()
    batch, x = _batch(rt, rng, 2)  # no batch was left open
    batch.stage()
    model.check(rt.replay_ahead(), x)


def test_staging_twice_keeps_the_first(pipelined):
    rt, model, rng = pipelined
    first, x = _batch(rt, rng, 2)
    first.stage()
    second, _ = _batch(rt, rng, 5)
    with pytest.raises(cgr.InvalidStateError, match="already staged"):
        second.stage()
    assert not second.open and rt.staged
    ticket = rt.replay_ahead()
    assert (ticket.step, ticket.batch_size) == (0, 2)
    model.check(ticket, x)


def test_the_mode_cannot_change_while_a_step_is_staged(pipelined):
    rt, model, rng = pipelined
    batch, x = _batch(rt, rng, 4)
    batch.stage()
    with pytest.raises(cgr.InvalidStateError) as info:
        rt.replay_mode = "fused"
    assert "a step is staged (CGR_REPLAY_PIPELINED)" in str(info.value)
    assert "Runtime.replay_ahead() ends the run" in str(info.value)
    assert rt.replay_mode == "pipelined"
    model.check(rt.replay_ahead(), x)
    rt.replay_mode = "fused"  # the run ended
    model.check(rt.step(4, x), x)


def test_stage_and_replay_ahead_refuse_in_other_modes(rt, model):
    rng = np.random.default_rng(29)
    batch, x = _batch(rt, rng, 3)
    with pytest.raises(cgr.InvalidStateError,
                       match="not CGR_REPLAY_PIPELINED"):
        batch.stage()
    assert not batch.open and not rt.staged
    with pytest.raises(cgr.InvalidStateError,
                       match="not CGR_REPLAY_PIPELINED"):
        rt.replay_ahead()
    model.check(rt.step(3, x), x)  # nothing changed
    assert rt.replay_stats("pipelined")["steps"] == 0


def test_a_batch_over_the_largest_bucket_is_refused(pipelined):
    rt, model, rng = pipelined
    n = BUCKETS[-1] + 1
    with pytest.raises(cgr.BatchTooLargeError,
                       match="CGR_REPLAY_PIPELINED stages only batches a "
                             "graph holds"):
        rt.batch(n, inputs=Model.inputs(rng, n))
    batch, x = _batch(rt, rng, BUCKETS[-1])  # no batch was left open
    batch.stage()
    model.check(rt.replay_ahead(), x)


def test_a_refused_next_batch_leaves_the_staged_step_staged(pipelined):
    rt, model, rng = pipelined
    batch, x = _batch(rt, rng, 3)
    batch.stage()
    incomplete, _ = _batch(rt, rng, 5, pos=True)
    with pytest.raises(cgr.InvalidArgumentError,
                       match="slot 'pos' was not given"):
        rt.replay_ahead(incomplete)
    assert not incomplete.open and rt.staged
    # A consumed batch, another runtime's, or no Batch at all: refused in
    # Python before C, the staged step still staged.
    with pytest.raises(cgr.InvalidStateError, match="the batch is closed"):
        rt.replay_ahead(incomplete)
    with make_runtime() as other:
        Model(other).capture()
        foreign, y = _batch(other, rng, 2)
        with pytest.raises(cgr.InvalidArgumentError,
                           match="not a Batch of this runtime"):
            rt.replay_ahead(foreign)
        assert foreign.open
        ticket = foreign.replay()  # still the other runtime's to run
        assert ticket.batch_size == 2
    with pytest.raises(cgr.InvalidArgumentError, match="not a Batch"):
        rt.replay_ahead({"ids": x["ids"]})
    assert rt.staged
    good, y = _batch(rt, rng, 5)
    ticket = rt.replay_ahead(good)
    assert (ticket.step, ticket.batch_size) == (0, 3)
    model.check(ticket, x)
    model.check(rt.replay_ahead(), y)


def test_a_batch_whose_inputs_raise_is_discarded(pipelined):
    rt, model, rng = pipelined
    x = Model.inputs(rng, 3)
    with pytest.raises(cgr.InvalidArgumentError, match="prev_rows has 2"):
        rt.batch(3, inputs=dict(x, ids=cgr.Feedback([0, 1])))
    batch = rt.batch(3, inputs=x)  # nothing was left open
    batch.stage()
    model.check(rt.replay_ahead(), x)


def test_a_closed_runtime_with_a_step_staged():
    rt, model = _pipelined_runtime()
    rt.batch(2, inputs=Model.inputs(np.random.default_rng(31), 2)).stage()
    rt.close()  # destroys the staged step with the runtime
    with pytest.raises(cgr.InvalidStateError, match="closed"):
        rt.replay_ahead()
