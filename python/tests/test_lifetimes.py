"""Lifetimes: the C runtime lives as long as anything refers to it, close()
ends the runtime's use, and objects may be dropped in any order."""

import gc
import weakref

import numpy as np
import pytest

import cgr
from cgr import _lib
from conftest import BUCKETS, Model, make_runtime, run_python


ctypes_function = type(_lib.version_string)
"""The type of every prototype in cgr._lib (one CDLL's function pointers)."""


@pytest.fixture
def destroyed(monkeypatch):
    """The runtime pointers cgr_runtime_destroy was called with."""
    gc.collect()  # earlier tests' garbage goes now, not during this test
    calls = []
    real = _lib.runtime_destroy

    def destroy(ptr):
        calls.append(ptr.value)
        real(ptr)

    monkeypatch.setattr(_lib, "runtime_destroy", destroy)
    return calls


def _stepped_runtime():
    rt = make_runtime()
    model = Model(rt).capture()
    inputs = Model.inputs(np.random.default_rng(41), 3)
    ticket = rt.step(3, inputs)
    model.check(ticket, inputs)
    return rt, model, ticket, inputs


def test_a_view_outlives_close_and_the_last_view_frees_the_runtime(destroyed):
    rt, model, ticket, inputs = _stepped_runtime()
    handle = weakref.ref(rt._handle)
    ptr = rt._handle.ptr.value
    view = ticket.output(model.score)
    rt.close()
    assert rt.closed and repr(rt).startswith("cgr.Runtime(closed")
    del rt, model, ticket
    gc.collect()
    assert handle() is not None and ptr not in destroyed  # the view holds it
    np.testing.assert_array_equal(view.numpy(), Model.reference(inputs)[1])
    del view
    gc.collect()
    assert handle() is None
    assert destroyed.count(ptr) == 1  # once, when the last view went


def test_a_dlpack_array_holds_the_runtime(destroyed):
    rt = make_runtime()
    pinned = rt.pinned_array(4, np.int32)
    np.asarray(pinned)[:] = [1, 2, 3, 4]
    array = np.from_dlpack(pinned)
    handle = weakref.ref(rt._handle)
    ptr = rt._handle.ptr.value
    rt.close()
    del rt, pinned
    gc.collect()
    assert handle() is not None and ptr not in destroyed
    np.testing.assert_array_equal(array, [1, 2, 3, 4])
    del array
    gc.collect()
    assert handle() is None and destroyed.count(ptr) == 1


def test_close_without_views_destroys_at_once(destroyed):
    rt, model, ticket, _ = _stepped_runtime()
    handle = weakref.ref(rt._handle)
    ptr = rt._handle.ptr.value
    del model, ticket  # the model's pinned staging holds the handle too
    rt._step_callback = None
    rt.close()
    gc.collect()
    assert handle() is None and destroyed.count(ptr) == 1
    rt.close()  # idempotent
    assert destroyed.count(ptr) == 1


def test_a_runtime_without_close_is_freed_when_dropped(destroyed):
    rt = make_runtime()
    slot = rt.declare("ids", "rows", np.int32)
    rt.capture(lambda ctx: None)
    rt.step(1, {slot: np.zeros(1, np.int32)}).wait()
    handle = weakref.ref(rt._handle)
    ptr = rt._handle.ptr.value
    del rt, slot
    gc.collect()
    assert handle() is None and destroyed.count(ptr) == 1


def _closed_runtime_objects():
    rt, model, ticket, inputs = _stepped_runtime()
    event = rt.event()
    batch = rt.batch(3)
    batch.input("seq", inputs["seq"])
    prepared = rt.prepare({"ids": np.zeros(BUCKETS[-1], np.int32),
                           "pos": np.zeros((BUCKETS[-1], 2), np.int64),
                           "seq": np.zeros(BUCKETS[-1] + 1, np.int32)})
    rt.close()
    return rt, model, ticket, event, batch, prepared, inputs


def test_every_call_on_a_closed_runtime_raises_invalid_state(monkeypatch):
    rt, model, ticket, event, batch, prepared, inputs = _closed_runtime_objects()
    calls = {
        "step": lambda: rt.step(3, inputs),
        "batch": lambda: rt.batch(3),
        "prepare": lambda: rt.prepare({"seq": inputs["seq"]}),
        "prepared step": lambda: prepared(3),
        "declare": lambda: rt.declare("late", "rows", np.int32),
        "feed": lambda: rt.feed("next", "ids"),
        "capture": lambda: rt.capture(lambda ctx: None),
        "capture_bucket": lambda: rt.capture_bucket(1),
        "replay_mode": lambda: setattr(rt, "replay_mode", "naive"),
        "replay_stats": lambda: rt.replay_stats(),
        "capture_stats": lambda: rt.capture_stats(),
        "bucket_stats": lambda: rt.bucket_stats(1),
        "counters": lambda: rt.counters(),
        "reset_counters": lambda: rt.reset_counters(),
        "synchronize": lambda: rt.synchronize(),
        "device_array": lambda: rt.device_array(4, np.int32),
        "pinned_array": lambda: rt.pinned_array(4, np.int32),
        "memcpy": lambda: rt.memcpy(0, 0, 0),
        "event": lambda: rt.event(),
        "backend": lambda: rt.backend,
        "backend_reason": lambda: rt.backend_reason,
        "device_info": lambda: rt.device_info,
        "bucket_for": lambda: rt.bucket_for(1),
        "cuda_stream": lambda: rt.cuda_stream(),
        "dump_graph": lambda: rt.dump_graph(1, 0, "/dev/null"),
        "slot.buffer": lambda: model.next.buffer(0),
        "ticket.wait": lambda: ticket.wait(),
        "ticket.done": lambda: ticket.done(),
        "ticket.output": lambda: ticket.output("next"),
        "ticket.record": lambda: ticket.record(event),
        "event.record_host": lambda: event.record_host(),
        "event.signal_host": lambda: event.signal_host(),
        "event.query": lambda: event.query(),
        "event.synchronize": lambda: event.synchronize(),
        "event.record": lambda: event.record(0),
        "event.wait": lambda: event.wait(0),
        "batch.input": lambda: batch.input("ids", inputs["ids"]),
        "batch.unchanged": lambda: batch.unchanged("pos"),
        "batch.feedback": lambda: batch.feedback("ids", [0, 1, 2]),
        "batch.gather": lambda: batch.gather("pos", model.pos.buffer(0),
                                             model.pos.buffer(1)),
        "batch.wait": lambda: batch.wait(event),
        "batch.replay": lambda: batch.replay(),
        "batch.stage": lambda: batch.stage(),
        "replay_ahead": lambda: rt.replay_ahead(),
        "staged": lambda: rt.staged,
    }
    # Nothing reaches the C library: its runtime may be gone.
    touched = []
    for name in dir(_lib):
        fn = getattr(_lib, name)
        # status_name stays: an exception's status_name property reads it.
        if isinstance(fn, ctypes_function) and not name.startswith("status"):
            monkeypatch.setattr(_lib, name,
                                lambda *a, _n=name: touched.append(_n))
    for what, call in calls.items():
        with pytest.raises(cgr.InvalidStateError, match="closed") as info:
            call()
        assert info.value.status_name == "CGR_E_INVALID_STATE", what
    batch.discard()  # the batch went with the runtime: a no-op
    with batch:
        pass
    assert touched == []


def test_closing_with_a_batch_open_never_touches_the_batch(monkeypatch):
    """cgr_batch_discard on a destroyed runtime would write freed memory."""
    rt = make_runtime()
    slot = rt.declare("ids", "rows", np.int32)
    rt.capture(lambda ctx: None)
    discards = []
    monkeypatch.setattr(_lib, "batch_discard", discards.append)
    with rt.batch(1) as batch:
        batch.input(slot, np.zeros(1, np.int32))
        rt.close()
    assert discards == []
    rt2 = make_runtime()
    rt2.declare("ids", "rows", np.int32)
    rt2.capture(lambda ctx: None)
    with rt2.batch(1):
        pass
    assert len(discards) == 1  # an open runtime's batch is discarded
    rt2.close()


_DROP_SCRIPT = """
    import gc, sys
    import numpy as np
    import cgr
    from conftest import Model, make_runtime

    def build():
        rt = make_runtime()
        model = Model(rt).capture()
        inputs = Model.inputs(np.random.default_rng(1), 3)
        ticket = rt.step(3, inputs)
        model.check(ticket, inputs)
        objects = {
            "rt": rt, "model": model, "ticket": ticket,
            "view": ticket.output(model.next),
            "buffer": model.pos.buffer(1),
            "numpy": model.seq.buffer(0).numpy(),
            "event": rt.event(),
            "done": rt.event(),
            "device": rt.device_array(16, np.int64),
            "pinned": rt.pinned_array(16, np.int32),
        }
        objects["dlpack"] = np.from_dlpack(objects["pinned"])
        # a step in flight while things are dropped
        objects["ticket2"] = rt.step(3, inputs, done=objects["done"])
        return objects

    orders = [
        ["rt", "model", "ticket", "ticket2", "event", "done", "view", "buffer",
         "numpy", "device", "pinned", "dlpack"],
        ["event", "done", "view", "buffer", "numpy", "dlpack", "device",
         "pinned", "ticket", "ticket2", "model", "rt"],
        ["view", "buffer", "numpy", "dlpack", "rt", "event", "done", "model",
         "ticket", "ticket2", "device", "pinned"],
        ["device", "pinned", "model", "ticket", "ticket2", "rt", "done",
         "event", "numpy", "dlpack", "buffer", "view"],
    ]
    for close in (False, True):
        for order in orders:
            objects = build()
            if close:
                objects["rt"].close()
            for name in order:
                del objects[name]
                gc.collect()
            assert not objects
    # A garbage cycle (an exception's traceback is one) holding the handle,
    # an event and allocations: the collector finalizes them in any order.
    class Box:
        pass

    for close in (False, True):
        rt = make_runtime()
        box = Box()
        box.cycle = box
        box.handle = rt._handle
        box.event = rt.event()
        box.device = rt.device_array(64, np.int64)
        box.pinned = rt.pinned_array(64, np.int64)
        if close:
            rt.close()
        del rt, box
        gc.collect()
    # A batch left open when everything goes.
    rt = make_runtime()
    model = Model(rt).capture()
    batch = rt.batch(2)
    batch.input("ids", np.zeros(2, np.int32))
    del rt, model
    gc.collect()
    del batch
    gc.collect()
    print("survived")
"""


def test_dropping_objects_in_any_order_does_not_crash():
    proc = run_python(_DROP_SCRIPT)
    assert proc.stdout.strip().endswith("survived")


def test_exiting_with_live_runtimes_does_not_crash():
    proc = run_python("""
        import numpy as np
        from conftest import Model, make_runtime
        keep = []
        for close in (False, True):
            rt = make_runtime()
            model = Model(rt).capture()
            inputs = Model.inputs(np.random.default_rng(2), 5)
            ticket = rt.step(5, inputs)
            keep.append((rt, model, ticket.output(model.next), rt.event(),
                         rt.device_array(4, np.int32), rt.pinned_array(4, np.int8)))
            if close:
                rt.close()
        print("exiting")
    """)
    assert proc.stdout.strip() == "exiting"
    assert "Exception ignored" not in proc.stderr, proc.stderr


def test_a_batch_holds_the_events_it_waits_for(model, rt, monkeypatch):
    """cgr waits on a batch's events at cgr_replay: an Event dropped after
    Batch.wait must live until then."""
    gc.collect()
    destroyed_events = []
    real = _lib.event_destroy
    monkeypatch.setattr(_lib, "event_destroy",
                        lambda ptr: (destroyed_events.append(ptr.value), real(ptr)))
    x = Model.inputs(np.random.default_rng(42), 2)
    with rt.batch(2) as batch:
        for name in ("ids", "pos", "seq"):
            batch.input(name, x[name])
        event = rt.event()
        ptr = event._ptr.value
        batch.wait(event)
        del event  # the batch's reference is the only one left
        gc.collect()
        assert ptr not in destroyed_events
        ticket = batch.replay()
    gc.collect()
    assert destroyed_events.count(ptr) == 1  # released with the batch
    model.check(ticket, x)
