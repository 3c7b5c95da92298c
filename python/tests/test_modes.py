"""Every replay mode gives the numpy reference's outputs, step after step.

One plan of logical steps (batch sizes, values, which rows continue which)
is drawn once; each mode delivers it in every way it accepts (feedback,
unchanged, gather, pageable, pinned or device sources, falling back to
plain data where the mode refuses one) and must produce exactly the
reference's outputs. Equal to one reference means equal to each other.
The pipelined mode runs its plan through the lookahead (run_steps), each
step's inputs built before the step before it has launched; its plan
stays within the largest bucket, since a graph must hold every step.
"""

import functools

import numpy as np
import pytest

import cgr
from conftest import BUCKETS, Model, make_runtime, run_steps

TABLE_ROWS = 32
RING = 3  # buffers per source: at most two steps are in flight


def _plan(seed, steps=80, max_batch=BUCKETS[-1] + 6):
    """Logical steps: sizes from 1 to past the largest bucket."""
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 100, (TABLE_ROWS, 2), dtype=np.int64)
    plan = []
    for k in range(steps):
        entry = {}
        repeat = k >= 2 and rng.random() < 0.3
        n = plan[k - 2]["n"] if repeat else int(rng.integers(1, max_batch + 1))
        inputs = Model.inputs(rng, n)
        if repeat:  # the set this step loads holds these rows already
            inputs["pos"] = plan[k - 2]["inputs"]["pos"]
        elif rng.random() < 0.3:
            entry["gather"] = rng.integers(0, TABLE_ROWS, n, dtype=np.int32)
            inputs["pos"] = table[entry["gather"]]
        if k > 0 and rng.random() < 0.6:
            prev = plan[k - 1]
            m = prev["n"]
            prev_rows = np.full(n, -1, np.int32)
            kept = rng.permutation(m)[: int(rng.integers(0, min(m, n) + 1))]
            prev_rows[rng.permutation(n)[: len(kept)]] = kept
            new_rows = rng.integers(0, 1000, int((prev_rows < 0).sum()),
                                    dtype=np.int32)
            ids = np.empty(n, np.int32)
            ids[prev_rows >= 0] = prev["next"][prev_rows[prev_rows >= 0]]
            ids[prev_rows < 0] = new_rows
            inputs["ids"] = ids
            entry["feedback"] = (prev_rows, new_rows)
        entry.update(n=n, inputs=inputs, next=Model.reference(inputs)[0])
        plan.append(entry)
    return table, plan


class _Deliver:
    """Turns a logical step into Runtime.step inputs the mode accepts."""

    def __init__(self, rt, model, mode, table):
        self.rt, self.model, self.mode = rt, model, mode
        self.table = rt.device_array(table.shape, np.int64).copy_from(table)
        self.pinned = [rt.pinned_array((64, 2), np.int64) for _ in range(RING)]
        self.device = [rt.device_array((64, 2), np.int64) for _ in range(RING)]
        self.rows = [rt.device_array(64, np.int32) for _ in range(RING)]
        self.loaded = {0: None, 1: None}  # set -> (n, pos) it last loaded
        self.prev_graph = False
        self.kinds = []

    def graph_step(self, n):
        return self.mode != "eager" and n <= BUCKETS[-1]

    def steps(self, plan):
        """run_steps' steps, each step's inputs built when it is taken."""
        for k, entry in enumerate(plan):
            yield entry["n"], self.inputs(k, entry), {}

    def inputs(self, k, entry):
        """Step k's inputs. The pipelined mode builds step k before step
        k - 1 launches, so before ran(k - 1): prev_graph is still step
        k - 2's (the same answer, every pipelined step being a graph step,
        but at k = 1, which then gives ids as data); loaded[k % 2] is step
        k - 2's in every mode."""
        n, logical = entry["n"], entry["inputs"]
        device_ok = self.mode != "in_graph"
        out = {"seq": logical["seq"]}
        if "feedback" in entry and device_ok and self.prev_graph:
            out["ids"] = cgr.Feedback(*entry["feedback"])
            self.kinds.append("feedback")
        else:
            out["ids"] = logical["ids"]
        pos = logical["pos"]
        loaded = self.loaded[k % 2]
        ring = k % RING
        if (self.graph_step(n) and loaded is not None and loaded[0] == n
                and np.array_equal(loaded[1], pos)):
            out["pos"] = cgr.UNCHANGED
            self.kinds.append("unchanged")
        elif "gather" in entry and device_ok:
            self.rows[ring][:n].copy_from(entry["gather"])
            out["pos"] = cgr.Gather(self.table, self.rows[ring][:n])
            self.kinds.append("gather")
        elif k % 3 == 1:
            pinned = self.pinned[ring][:n]
            np.asarray(pinned)[:] = pos
            out["pos"] = np.asarray(pinned)  # a numpy view: a pinned source
            self.kinds.append("pinned")
        elif k % 3 == 2 and device_ok:
            out["pos"] = self.device[ring][:n].copy_from(pos)
            self.kinds.append("device")
        else:
            out["pos"] = pos.copy()
            self.kinds.append("host")
        return out

    def ran(self, k, entry, ticket):
        graph = ticket.set >= 0
        assert graph == self.graph_step(entry["n"])
        if graph:
            assert ticket.set == k % 2
            self.loaded[k % 2] = (entry["n"], entry["inputs"]["pos"])
        self.prev_graph = graph


@functools.lru_cache(maxsize=None)
def _plan_of(mode):
    """One plan for every mode; the pipelined mode's has no batch over the
    largest bucket."""
    largest = BUCKETS[-1] if mode == "pipelined" else BUCKETS[-1] + 6
    return _plan(seed=20240611, max_batch=largest)


@pytest.mark.parametrize("mode", cgr.REPLAY_MODES)
def test_mode_matches_numpy_reference(mode):
    table, steps = _plan_of(mode)
    with make_runtime(replay_mode=mode, log=lambda message: None) as rt:
        model = Model(rt).capture()
        deliver = _Deliver(rt, model, mode, table)
        pending = None  # (k, ticket) of a graph step checked one step late
        eager = 0
        for k, ticket in enumerate(run_steps(rt, deliver.steps(steps))):
            entry = steps[k]
            assert (ticket.step, ticket.batch_size) == (k, entry["n"])
            deliver.ran(k, entry, ticket)
            if pending is not None:  # still readable: only step k came after
                model.check(pending[1], steps[pending[0]]["inputs"])
                pending = None
            if ticket.set < 0:  # an eager step's outputs end at the next replay
                eager += 1
                assert ticket.padded_batch == entry["n"]
                model.check(ticket, entry["inputs"])
            else:
                assert ticket.padded_batch == rt.bucket_for(entry["n"])
                pending = (k, ticket)
        if pending is not None:
            model.check(pending[1], steps[pending[0]]["inputs"])

        stats = rt.replay_stats()
        assert stats[mode]["steps"] == len(steps)
        assert stats[mode]["eager_steps"] == eager
        for other in cgr.REPLAY_MODES:
            if other != mode:
                assert stats[other]["steps"] == 0
        if mode == "eager":
            assert eager == len(steps)
        elif mode == "pipelined":
            assert eager == 0 and rt.capture_stats()["eager_runs"] == 0
        else:
            assert 0 < eager < len(steps)  # both graphs and the fallback ran
            assert rt.capture_stats()["eager_runs"] == eager
        # The plan exercised what the mode accepts.
        kinds = set(deliver.kinds)
        assert {"host", "pinned"} <= kinds
        if mode not in ("in_graph", "eager"):
            assert {"feedback", "unchanged", "gather", "device"} <= kinds
        if mode == "in_graph":
            assert "unchanged" in kinds


def test_replay_stats_count_each_mode_on_one_runtime(rt):
    model = Model(rt).capture()
    rng = np.random.default_rng(3)
    counts = {"naive": 3, "fused": 2, "double_buffered": 4, "in_graph": 1,
              "eager": 2, "pipelined": 3}
    for mode, count in counts.items():
        rt.replay_mode = mode
        assert rt.replay_mode == mode
        xs = [Model.inputs(rng, 3) for _ in range(count)]
        for ticket, inputs in zip(run_steps(rt, ((3, x, {}) for x in xs)), xs):
            model.check(ticket, inputs)
    stats = rt.replay_stats()
    assert set(stats) == set(cgr.REPLAY_MODES)
    for mode, count in counts.items():
        assert stats[mode]["steps"] == count, mode
        assert rt.replay_stats(mode)["steps"] == count
    assert stats["eager"]["eager_steps"] == 2
    assert stats["naive"]["eager_steps"] == 0
    assert stats["naive"]["ops_copied"] > 0


def test_unknown_replay_mode_is_refused(rt):
    with pytest.raises(cgr.InvalidArgumentError, match="replay_mode 'turbo'"):
        rt.replay_mode = "turbo"
    assert rt.replay_mode == "double_buffered"
    with pytest.raises(cgr.InvalidArgumentError, match="replay_mode"):
        make_runtime(replay_mode="turbo")


def test_padding_rows_hold_pad_values(rt, host_only):
    """A batch of 3 runs in bucket 4: the slot buffer's fourth row is padding."""
    model = Model(rt).capture()
    inputs = Model.inputs(np.random.default_rng(5), 3)
    ticket = rt.step(3, inputs).wait()
    assert ticket.padded_batch == 4
    pos = model.pos.buffer(ticket.set).numpy()
    np.testing.assert_array_equal(pos[:3], inputs["pos"])
    np.testing.assert_array_equal(pos[3], [7, 7])
    seq = model.seq.buffer(ticket.set).numpy()
    np.testing.assert_array_equal(seq[:4], inputs["seq"])
    assert seq[4] == inputs["seq"][-1]  # a padded row has length 0


def test_the_eager_fallback_is_logged_once():
    messages = []
    with make_runtime(log=messages.append) as rt:
        model = Model(rt).capture()
        rng = np.random.default_rng(6)
        for n in (BUCKETS[-1] + 1, BUCKETS[-1] + 5, 2):
            inputs = Model.inputs(rng, n)
            model.check(rt.step(n, inputs), inputs)
        assert len(messages) == 1
        assert f"larger than the largest bucket ({BUCKETS[-1]})" in messages[0]
        assert rt.capture_stats()["eager_runs"] == 2
