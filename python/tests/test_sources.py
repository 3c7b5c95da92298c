"""Where a step's inputs come from: pageable, pinned and device memory,
UNCHANGED, Gather, Feedback, and the piecewise Batch API."""

import numpy as np
import pytest

import cgr
from cgr import _objects
from conftest import BACKEND, BUCKETS, Model, make_runtime


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _with(inputs, **values):
    out = dict(inputs)
    out.update(values)
    return out


# ---- host, pinned and device memory --------------------------------------------------


def test_source_of_each_kind_of_buffer(rt):
    pinned = rt.pinned_array((8, 2), np.int64)
    device = rt.device_array((8, 2), np.int64)
    view = np.asarray(pinned)
    assert view.ctypes.data == pinned.ptr  # a view, not a copy
    source = lambda value: _objects._buffer(value, "x")[2]  # noqa: E731
    assert source(np.zeros(3, np.int32)) == cgr._lib.SOURCES["host"]
    assert source(view) == cgr._lib.SOURCES["pinned"]
    assert source(view[2:5]) == cgr._lib.SOURCES["pinned"]  # a view of a view
    assert source(np.asarray(pinned[2:5])) == cgr._lib.SOURCES["pinned"]
    assert source(pinned) == cgr._lib.SOURCES["pinned"]
    assert source(device) == cgr._lib.SOURCES["device"]
    assert source(device[1:3]) == cgr._lib.SOURCES["device"]
    if BACKEND == "host":  # the CPU reads the host backend's device memory
        assert source(np.asarray(device)[1:]) == cgr._lib.SOURCES["device"]
    ptr, nbytes, _ = _objects._buffer(view[2:5], "x")
    assert (ptr, nbytes) == (pinned.ptr + 2 * 16, 3 * 16)


@pytest.mark.parametrize("kind", ["host", "pinned", "pinned_slice"])
def test_pageable_is_staged_at_step_pinned_is_read_later(kind, host_only):
    """A step waiting on a host event has not read its inputs yet: a pinned
    source changed meanwhile is seen changed; a pageable one was staged when
    Runtime.step returned, so it may be reused at once."""
    with make_runtime() as rt:
        model = Model(rt).capture()
        inputs = Model.inputs(np.random.default_rng(11), 3)
        if kind == "host":
            pos = inputs["pos"].copy()
        else:
            pinned = rt.pinned_array((BUCKETS[-1], 2), np.int64)
            pos = np.asarray(pinned)[:3]
            if kind == "pinned":
                pos = np.asarray(pinned[:3])
            pos[:] = inputs["pos"]
        event = rt.event()
        event.record_host()
        ticket = rt.step(3, _with(inputs, pos=pos), wait=[event])
        pos[:, 0] += 5  # after the step call, before its loads may run
        assert not ticket.done()
        event.signal_host()
        ticket.wait()
        changed = inputs["pos"].copy()
        changed[:, 0] += 5
        seen = changed if kind != "host" else inputs["pos"]
        model.check(ticket, _with(inputs, pos=seen))


@pytest.mark.parametrize("mode", ["naive", "fused", "double_buffered", "eager"])
def test_device_and_pinned_arrays_as_sources(mode, rng):
    with make_runtime(replay_mode=mode) as rt:
        model = Model(rt).capture()
        device = rt.device_array((BUCKETS[-1], 2), np.int64)
        pinned = rt.pinned_array(BUCKETS[-1] + 1, np.int32)
        for n in (1, 3, 8, 2):
            inputs = Model.inputs(rng, n)
            pos = device[:n].copy_from(inputs["pos"])
            np.asarray(pinned)[: n + 1] = inputs["seq"]
            ticket = rt.step(n, _with(inputs, pos=pos, seq=pinned[: n + 1]))
            model.check(ticket, inputs)


def test_in_graph_refuses_device_sources(rng):
    with make_runtime(replay_mode="in_graph") as rt:
        model = Model(rt).capture()
        inputs = Model.inputs(rng, 3)
        device = rt.device_array((3, 2), np.int64).copy_from(inputs["pos"])
        with pytest.raises(cgr.UnsupportedError) as info:
            rt.step(3, _with(inputs, pos=device))
        assert "slot 'pos'" in str(info.value)
        assert "CGR_REPLAY_IN_GRAPH" in str(info.value)
        rows = rt.device_array(3, np.int32).copy_from(np.arange(3, dtype=np.int32))
        with pytest.raises(cgr.UnsupportedError, match="gather needs another mode"):
            rt.step(3, _with(inputs, pos=cgr.Gather(device, rows)))
        with pytest.raises(cgr.UnsupportedError, match="feedback"):
            rt.step(3, _with(inputs, ids=cgr.Feedback(np.arange(3))))
        ticket = rt.step(3, inputs)  # nothing changed
        assert ticket.step == 0
        model.check(ticket, inputs)
        rt.replay_mode = "fused"  # the same device source works elsewhere
        model.check(rt.step(3, _with(inputs, pos=device)), inputs)


# ---- UNCHANGED ----------------------------------------------------------------------------


def test_unchanged_reuses_the_sets_last_load(model, rt, rng):
    first = Model.inputs(rng, 3)
    second = Model.inputs(rng, 3)
    model.check(rt.step(3, first), first)  # set 0
    model.check(rt.step(3, second), second)  # set 1
    third = Model.inputs(rng, 3)
    ticket = rt.step(3, _with(third, pos=cgr.UNCHANGED, seq=cgr.UNCHANGED))
    assert ticket.set == 0
    model.check(ticket, _with(third, pos=first["pos"], seq=first["seq"]))
    fourth = Model.inputs(rng, 3)
    model.check(rt.step(3, _with(fourth, pos=cgr.UNCHANGED)),
                _with(fourth, pos=second["pos"]))
    # Set 0 last loaded 3 rows: a batch of 2 must give its data.
    fifth = Model.inputs(rng, 2)
    with pytest.raises(cgr.InvalidArgumentError, match="last loaded with 3 rows, not 2"):
        rt.step(2, _with(fifth, pos=cgr.UNCHANGED))
    # The fed slot was overwritten by the previous graph's feed copy.
    with pytest.raises(cgr.InvalidArgumentError, match="slot 'ids' is marked unchanged"):
        rt.step(3, _with(fifth, ids=cgr.UNCHANGED))
    # An eager batch has buffers of its own.
    big = Model.inputs(rng, BUCKETS[-1] + 2)
    with pytest.raises(cgr.InvalidArgumentError, match="eager"):
        rt.step(BUCKETS[-1] + 2, _with(big, pos=cgr.UNCHANGED))
    ticket = rt.step(2, fifth)
    assert ticket.step == 4
    model.check(ticket, fifth)


# ---- Gather -------------------------------------------------------------------------------


def test_gather_rows_from_device_memory(model, rt, rng):
    table = rng.integers(0, 100, (10, 2), dtype=np.int64)
    device_table = rt.device_array(table.shape, np.int64).copy_from(table)
    rows = rt.device_array(BUCKETS[-1] + 4, np.int32)
    for index in ([4, 0, 9], [7], [1, 1, 2, 3, 5, 8, 3, 9],
                  list(range(10)) + [0, 2]):  # the last one runs eagerly
        index = np.array(index, np.int32)
        n = len(index)
        rows[:n].copy_from(index)
        inputs = Model.inputs(rng, n)
        ticket = rt.step(n, _with(inputs, pos=cgr.Gather(device_table, rows[:n])))
        assert (ticket.set < 0) == (n > BUCKETS[-1])
        model.check(ticket, _with(inputs, pos=table[index]))


def test_gather_rows_must_be_device_memory(model, rt, rng):
    device_table = rt.device_array((4, 2), np.int64)
    inputs = Model.inputs(rng, 2)
    gather = cgr.Gather(device_table, np.array([0, 1], np.int32))
    with pytest.raises(cgr.InvalidArgumentError, match="gather's rows are device memory"):
        rt.step(2, _with(inputs, pos=gather))


# ---- Feedback -----------------------------------------------------------------------------


def test_feedback_continues_the_previous_steps_rows(model, rt, rng):
    x = Model.inputs(rng, 4)
    previous = model.check(rt.step(4, x), x)
    # Every row continues itself: nothing to copy, the graph wrote it.
    x = Model.inputs(rng, 4)
    ticket = rt.step(4, _with(x, ids=cgr.Feedback(np.arange(4))))
    previous = model.check(ticket, _with(x, ids=previous))
    # Rows move, two are new, one ends.
    prev_rows = np.array([3, -1, 0, 2, -1], np.int32)
    new_rows = np.array([11, 22], np.int32)
    x = Model.inputs(rng, 5)
    ticket = rt.step(5, _with(x, ids=cgr.Feedback(prev_rows, new_rows)))
    want = np.array([previous[3], 11, previous[0], previous[2], 22], np.int32)
    previous = model.check(ticket, _with(x, ids=want))
    # Shrinking, as a list of rows.
    x = Model.inputs(rng, 2)
    ticket = rt.step(2, _with(x, ids=cgr.Feedback([4, 1])))
    previous = model.check(ticket, _with(x, ids=previous[[4, 1]]))
    # Growing past the largest bucket: the eager step continues the graph's.
    n = BUCKETS[-1] + 3
    prev_rows = np.full(n, -1, np.int32)
    prev_rows[:2] = [1, 0]
    new_rows = np.arange(100, 100 + n - 2, dtype=np.int32)
    x = Model.inputs(rng, n)
    ticket = rt.step(n, _with(x, ids=cgr.Feedback(prev_rows, new_rows)))
    assert ticket.set == -1
    model.check(ticket, _with(x, ids=np.concatenate([previous[[1, 0]], new_rows])))


def test_feedback_errors(model, rt, rng):
    x = Model.inputs(rng, 2)
    with pytest.raises(cgr.InvalidStateError, match="previous step was not a graph replay"):
        rt.step(2, _with(x, ids=cgr.Feedback([0, 1])))
    model.check(rt.step(2, x), x)
    with pytest.raises(cgr.InvalidArgumentError, match="slot 'ids'"):
        rt.step(2, _with(x, ids=cgr.Feedback([0, 5])))  # past the batch of 2
    with pytest.raises(cgr.InvalidArgumentError, match="slot 'ids'"):
        rt.step(2, _with(x, ids=cgr.Feedback([0, -1])))  # a new row, no data
    with pytest.raises(cgr.InvalidArgumentError, match="slot 'ids'"):
        rt.step(2, _with(x, ids=cgr.Feedback([0, -1], np.zeros(2, np.int32))))
    with pytest.raises(cgr.InvalidArgumentError, match="slot 'pos' is not fed"):
        rt.step(2, _with(x, pos=cgr.Feedback([0, 1])))
    ticket = rt.step(2, _with(x, ids=cgr.Feedback([1, 0])))
    assert ticket.step == 1  # the failures changed nothing
    model.check(ticket, _with(x, ids=Model.reference(x)[0][[1, 0]]))
    big = Model.inputs(rng, BUCKETS[-1] + 1)
    rt.step(BUCKETS[-1] + 1, big).wait()
    with pytest.raises(cgr.InvalidStateError, match="not a graph replay"):
        rt.step(2, _with(x, ids=cgr.Feedback([0, 1])))


# ---- the piecewise Batch -------------------------------------------------------------------


def test_batch_api_fills_a_step_piece_by_piece(model, rt, rng):
    x = Model.inputs(rng, 3)
    pinned = rt.pinned_array((3, 2), np.int64)
    np.asarray(pinned)[:] = x["pos"]
    with rt.batch(3) as batch:
        batch.input(model.ids, x["ids"])
        batch.input("pos", pinned)
        batch.input(2, x["seq"], source="host")
        batch.wait(rt.event())  # never recorded: complete
        ticket = batch.replay()
    previous = model.check(ticket, x)
    with pytest.raises(cgr.InvalidStateError, match="the batch is closed"):
        batch.input("ids", x["ids"])

    table = rt.device_array((4, 2), np.int64).copy_from(np.arange(8).reshape(4, 2))
    rows = rt.device_array(3, np.int32).copy_from(np.array([3, 0, 1], np.int32))
    y = Model.inputs(rng, 3)
    with rt.batch(3) as batch:
        batch.feedback("ids", [2, -1, 0], np.array([9], np.int32))
        batch.gather("pos", table, rows)
        batch.input("seq", y["seq"])
        ticket = batch.replay()
    want = _with(y, ids=np.array([previous[2], 9, previous[0]], np.int32),
                 pos=np.arange(8).reshape(4, 2)[[3, 0, 1]])
    model.check(ticket, want)

    z = Model.inputs(rng, 3)
    with rt.batch(3) as batch:
        batch.input("ids", z["ids"])
        batch.unchanged("pos")  # set 0 was loaded by x
        batch.unchanged("seq")
        ticket = batch.replay()
    assert ticket.set == 0
    model.check(ticket, _with(z, pos=x["pos"], seq=x["seq"]))


def test_batch_left_without_replay_is_discarded(model, rt, rng):
    x = Model.inputs(rng, 2)
    with rt.batch(2) as batch:
        batch.input("ids", x["ids"])
        with pytest.raises(cgr.InvalidStateError, match="a batch is already open"):
            rt.batch(2)
        with pytest.raises(cgr.InvalidStateError):
            rt.replay_mode = "naive"  # not with a batch open
    with pytest.raises(RuntimeError, match="the caller's own error"):
        with rt.batch(2) as batch:
            batch.input("ids", x["ids"])
            raise RuntimeError("the caller's own error")
    with pytest.raises(cgr.InvalidArgumentError, match="given twice"):
        with rt.batch(2) as batch:
            batch.input("ids", x["ids"])
            batch.input("ids", x["ids"])
    ticket = rt.step(2, x)
    assert ticket.step == 0
    model.check(ticket, x)
    batch = rt.batch(2)
    batch.discard()
    batch.discard()  # idempotent
    model.check(rt.step(2, x), x)


def test_batch_replay_with_a_slot_missing_closes_the_batch(model, rt, rng):
    x = Model.inputs(rng, 2)
    batch = rt.batch(2)
    batch.input("ids", x["ids"])
    with pytest.raises(cgr.InvalidArgumentError, match="slot 'pos' was not given"):
        batch.replay()
    with pytest.raises(cgr.InvalidStateError, match="closed"):
        batch.replay()
    model.check(rt.step(2, x), x)
