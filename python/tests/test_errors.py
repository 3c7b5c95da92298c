"""Errors: one class per cgr_status, carrying cgr_last_error's message."""

import numpy as np
import pytest

import cgr
from cgr import _errors
from conftest import BUCKETS, Model, make_runtime


def _statuses():
    """Every status the linked library names: 0, -1, -2, ... until
    cgr_status_name answers CGR_E_UNKNOWN."""
    found = {}
    value = 0
    while True:
        name = cgr.status_name(value)
        if name == "CGR_E_UNKNOWN":
            return found
        found[value] = name
        value -= 1
        assert value > -1000, "cgr_status_name never said CGR_E_UNKNOWN"


def test_every_status_has_its_class():
    statuses = _statuses()
    assert statuses[0] == "CGR_OK"
    assert statuses[-1] == "CGR_E_INVALID_ARGUMENT"
    assert len(statuses) >= 18  # OK and the 17 errors of cgr.h today
    errors = {v: n for v, n in statuses.items() if v != 0}
    assert set(_errors.BY_STATUS) == set(errors)
    for value, name in errors.items():
        cls = _errors.BY_STATUS[value]
        assert cls.status == value
        assert issubclass(cls, cgr.Error)
        assert getattr(cgr, cls.__name__) is cls  # exported by the package
        assert cls.__module__ == "cgr"
        exc = cls("some text", value)
        assert exc.status_name == name
        assert str(exc) == "some text"
    assert len(set(_errors.BY_STATUS.values())) == len(errors)


def test_error_for_builds_the_class_of_the_status_with_cgrs_message():
    # With no runtime, cgr_last_error is this thread's last failed create.
    with pytest.raises(cgr.InvalidArgumentError):
        make_runtime(buckets=[3, 3])
    exc = _errors.error_for(-11, None)
    assert type(exc) is cgr.BatchTooLargeError
    assert "config->buckets" in exc.message
    unknown = _errors.error_for(-999, None)
    assert type(unknown) is cgr.Error and "(status -999)" in str(unknown)


def test_classes_derive_from_the_matching_builtin():
    assert issubclass(cgr.InvalidArgumentError, ValueError)
    assert issubclass(cgr.BatchTooLargeError, ValueError)
    assert issubclass(cgr.OutOfMemoryError, MemoryError)
    assert issubclass(cgr.DeviceOutOfMemoryError, MemoryError)
    assert issubclass(cgr.UnsupportedError, NotImplementedError)
    assert issubclass(cgr.DeadlineError, TimeoutError)
    assert issubclass(cgr.SystemCallError, OSError)
    assert issubclass(cgr.InvalidStateError, RuntimeError)


# ---- configuration ----------------------------------------------------------------


def test_unknown_backend_names_the_field():
    with pytest.raises(cgr.InvalidArgumentError, match="backend 'gpu'") as info:
        cgr.Runtime(backend="gpu")
    assert "auto, cuda, host" in str(info.value)
    assert info.value.status == -1


def test_buckets_not_ascending_name_the_field():
    with pytest.raises(cgr.InvalidArgumentError) as info:
        make_runtime(buckets=[4, 2])
    message = str(info.value)
    assert "cgr_runtime_create" in message
    assert "config->buckets must ascend" in message
    assert "2 after 4" in message
    assert info.value.status_name == "CGR_E_INVALID_ARGUMENT"


def test_other_bad_keywords():
    with pytest.raises(cgr.InvalidArgumentError, match="priority 'urgent'"):
        make_runtime(main_stream_priority="urgent")
    with pytest.raises(cgr.InvalidArgumentError, match="replay_mode 'fast'"):
        make_runtime(replay_mode="fast")


# ---- slots ---------------------------------------------------------------------------


def test_duplicate_slot_is_refused_and_nothing_is_declared(rt):
    rt.declare("ids", "rows", np.int32)
    with pytest.raises(cgr.InvalidArgumentError) as info:
        rt.declare("ids", "rows", np.int64)
    assert "cgr_slot_declare" in str(info.value)
    assert "slot 'ids'" in str(info.value)
    assert "already declared" in str(info.value)
    assert rt.slot("ids").dtype == cgr.dtype("int32")
    assert rt.declare("other", "rows", np.int32).index == 1


def test_bad_slot_declarations(rt):
    with pytest.raises(cgr.InvalidArgumentError, match="kind 'matrix'"):
        rt.declare("a", "matrix", np.int32)
    with pytest.raises(TypeError, match="not a dtype cgr holds"):
        rt.declare("a", "rows", np.complex64)
    with pytest.raises(cgr.InvalidArgumentError, match="row_elems"):
        rt.declare("a", "prefix", np.int32, 2)
    with pytest.raises(cgr.InvalidArgumentError, match="no slot is named 'nope'"):
        rt.slot("nope")
    out = rt.declare("out", "output", np.int32)
    wide = rt.declare("wide", "rows", np.int32, 2)
    with pytest.raises(cgr.InvalidArgumentError, match="cgr_slot_feed"):
        rt.feed(out, wide)  # row_elems differ


def test_declare_after_capture_is_invalid_state(rt):
    rt.declare("ids", "rows", np.int32)
    rt.capture(lambda ctx: None)
    with pytest.raises(cgr.InvalidStateError, match="cgr_slot_declare"):
        rt.declare("late", "rows", np.int32)


# ---- steps -------------------------------------------------------------------------


def test_step_before_capture(rt):
    Model(rt)
    inputs = Model.inputs(np.random.default_rng(0), 2)
    with pytest.raises(cgr.InvalidStateError, match="capture before the first step"):
        rt.step(2, inputs)
    with pytest.raises(cgr.InvalidStateError, match="cgr_capture\\(\\) first"):
        rt.batch(2)


def test_capture_twice(model, rt):
    with pytest.raises(cgr.InvalidStateError, match="already captured"):
        rt.capture(model.step)


@pytest.fixture
def inputs():
    return Model.inputs(np.random.default_rng(1), 2)


def test_missing_slot_is_named(model, rt, inputs):
    del inputs["pos"]
    with pytest.raises(cgr.InvalidArgumentError) as info:
        rt.step(2, inputs)
    assert "slot 'pos' was not given" in str(info.value)
    assert "cgr_replay_inputs" in str(info.value)


def test_slot_given_twice(model, rt, inputs):
    inputs[model.ids] = inputs["ids"]  # the Slot and its name: one slot
    with pytest.raises(cgr.InvalidArgumentError) as info:
        rt.step(2, inputs)
    assert "slot 'ids' is given twice" in str(info.value)
    assert "inputs[3]" in str(info.value)


def test_wrong_byte_count(model, rt, inputs):
    inputs["ids"] = np.zeros(3, np.int32)
    with pytest.raises(cgr.InvalidArgumentError) as info:
        rt.step(2, inputs)
    assert "slot 'ids': 12 bytes given, a batch of 2 needs 8" in str(info.value)


def test_wrong_dtype_or_shape(model, rt, inputs):
    good = dict(inputs)
    inputs["ids"] = inputs["ids"].astype(np.int64)
    with pytest.raises(cgr.InvalidArgumentError, match="slot 'ids': 16 bytes given"):
        rt.step(2, inputs)
    inputs = dict(good, pos=good["pos"][:, 0].copy())  # one column of two
    with pytest.raises(cgr.InvalidArgumentError, match="slot 'pos': 16 bytes given, a batch of 2 needs 32"):
        rt.step(2, inputs)
    inputs = dict(good, seq=good["seq"][:2].copy())  # a prefix has n + 1
    with pytest.raises(cgr.InvalidArgumentError, match="slot 'seq'"):
        rt.step(2, inputs)
    inputs = dict(good, ids=[1, 2])
    with pytest.raises(cgr.InvalidArgumentError, match="list is not an array"):
        rt.step(2, inputs)
    inputs = dict(good, pos=np.zeros((2, 4), np.int64)[:, ::2])
    with pytest.raises(cgr.InvalidArgumentError, match="not C-contiguous"):
        rt.step(2, inputs)
    inputs = dict(good, next=np.zeros(2, np.int32))
    with pytest.raises(cgr.InvalidArgumentError, match="slot 'next' is an OUTPUT"):
        rt.step(2, inputs)
    # Nothing changed: the next good step is step 0.
    ticket = rt.step(2, good)
    assert ticket.step == 0
    model.check(ticket, good)


def test_unchanged_without_a_load(model, rt, inputs):
    inputs["pos"] = cgr.UNCHANGED
    with pytest.raises(cgr.InvalidArgumentError, match="slot 'pos' is marked unchanged"):
        rt.step(2, inputs)


def test_batch_too_large_without_eager():
    with make_runtime(allow_eager=False) as rt:
        model = Model(rt).capture()
        big = BUCKETS[-1] + 1
        inputs = Model.inputs(np.random.default_rng(2), big)
        with pytest.raises(cgr.BatchTooLargeError) as info:
            rt.step(big, inputs)
        message = str(info.value)
        assert f"batch {big} is larger than the largest bucket ({BUCKETS[-1]})" in message
        assert "allow_eager is 0" in message
        assert isinstance(info.value, ValueError)
        with pytest.raises(cgr.BatchTooLargeError):
            rt.batch(big)
        with pytest.raises(cgr.BatchTooLargeError):
            rt.bucket_for(big)
        small = Model.inputs(np.random.default_rng(3), 2)
        model.check(rt.step(2, small), small)


def test_failing_step_function_raises_capture_error_chained():
    with make_runtime() as rt:
        model = Model(rt)

        def broken(ctx):
            if ctx.padded_batch == 4 and ctx.set == 1:
                raise ValueError("the model is broken")
            model.step(ctx)

        with pytest.raises(cgr.CaptureError) as info:
            rt.capture(broken)
        exc = info.value
        assert isinstance(exc.__cause__, ValueError)
        assert str(exc.__cause__) == "the model is broken"
        assert "ValueError: the model is broken" in str(exc)
        assert "bucket 4, set 1" in str(exc)
        assert exc.message == str(exc)
        assert rt.capture_stats()["buckets_captured"] == 0
        # Everything the failed capture built is gone: capture again.
        model.capture()
        assert rt.capture_stats()["buckets_captured"] == len(BUCKETS)
        inputs = Model.inputs(np.random.default_rng(4), 3)
        model.check(rt.step(3, inputs), inputs)


def test_host_function_error_is_raised_at_the_next_wait(rt):
    ids = rt.declare("ids", "rows", np.int32)
    fail = []

    def step(ctx):
        def host():
            if fail:
                raise KeyError("raised on a backend thread")
        ctx.host_func(host)

    rt.capture(step)
    rt.step(1, {ids: np.zeros(1, np.int32)}).wait()
    fail.append(True)
    ticket = rt.step(1, {ids: np.zeros(1, np.int32)})
    with pytest.raises(cgr.Error) as info:
        ticket.wait()
    assert isinstance(info.value.__cause__, KeyError)
    assert "host function of the step raised KeyError" in str(info.value)
    assert "raised on a backend thread" in str(info.value)
    # Reported once; the runtime goes on.
    fail.clear()
    ticket.wait()
    rt.step(1, {ids: np.zeros(1, np.int32)}).wait()
