"""Events on the host backend: the caller's host work and cgr's steps
ordered without the host waiting (record_host / signal_host)."""

import threading
import time

import numpy as np
import pytest

import cgr
from conftest import BACKEND, BUCKETS, Model, make_runtime

pytestmark = pytest.mark.skipif(
    BACKEND != "host",
    reason="record_host/signal_host are the host backend's; CUDA events are "
    "recorded on streams (test_torch.py)")


def _signal_later(event, delay, log):
    def run():
        time.sleep(delay)
        log.append("signal")
        event.signal_host()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def x():
    return Model.inputs(np.random.default_rng(21), 3)


def test_step_waits_for_the_event_until_another_thread_signals(model, rt, x):
    event = rt.event()
    assert event.query()  # complete until first recorded
    event.record_host()
    assert not event.query()
    ticket = rt.step(3, x, wait=[event])  # returns: the host does not wait
    time.sleep(0.05)
    assert not ticket.done()
    log = []
    thread = _signal_later(event, 0.1, log)
    ticket.wait()  # releases the GIL: the thread can signal
    log.append("waited")
    thread.join()
    assert log == ["signal", "waited"]
    assert event.query()
    model.check(ticket, x)


def test_done_event_completes_with_the_step(model, rt, x):
    gate, done = rt.event(), rt.event()
    gate.record_host()
    ticket = rt.step(3, x, wait=[gate], done=done)
    time.sleep(0.05)
    assert not done.query()
    assert not ticket.done()
    gate.signal_host()
    done.synchronize()
    assert done.query()
    assert ticket.done()
    model.check(ticket, x)


def test_ticket_record(model, rt, x):
    gate, after = rt.event(), rt.event()
    gate.record_host()
    ticket = rt.step(3, x, wait=[gate])
    assert ticket.record(after) is after
    time.sleep(0.05)
    assert not after.query()
    gate.signal_host()
    after.synchronize()
    assert ticket.done()
    model.check(ticket, x)


def test_a_step_waits_for_every_event(model, rt, x):
    events = [rt.event() for _ in range(3)]
    for event in events:
        event.record_host()
    ticket = rt.step(3, x, wait=events)
    for event in events[:2]:
        event.signal_host()
    time.sleep(0.05)
    assert not ticket.done()
    events[2].signal_host()
    model.check(ticket, x)


def test_batch_wait(model, rt, x):
    event = rt.event()
    event.record_host()
    with rt.batch(3) as batch:
        for name in ("ids", "pos", "seq"):
            batch.input(name, x[name])
        batch.wait(event)
        ticket = batch.replay()
    time.sleep(0.05)
    assert not ticket.done()
    event.signal_host()
    model.check(ticket, x)


def test_an_eager_step_waits_inside_step_and_releases_the_gil(model, rt):
    n = BUCKETS[-1] + 2
    x = Model.inputs(np.random.default_rng(22), n)
    event = rt.event()
    event.record_host()
    log = []
    thread = _signal_later(event, 0.1, log)
    ticket = rt.step(n, x, wait=[event])
    log.append("stepped")
    thread.join()
    assert log == ["signal", "stepped"]
    assert ticket.set == -1 and ticket.done()
    model.check(ticket, x)


def test_event_errors(model, rt, x):
    event = rt.event()
    with pytest.raises(cgr.InvalidStateError, match="no host record to signal"):
        event.signal_host()
    with make_runtime() as other:
        foreign = other.event()
        with pytest.raises(cgr.InvalidArgumentError) as info:
            rt.step(3, x, wait=[foreign])
        assert "wait_events[0]" in str(info.value)
        assert "an event of another runtime" in str(info.value)
        ticket = rt.step(3, x)
        with pytest.raises(cgr.InvalidArgumentError, match="event of another runtime"):
            ticket.record(foreign)
        ticket.wait()
    many = [rt.event() for _ in range(cgr._lib.BATCH_MAX_EVENTS + 1)]
    with pytest.raises(cgr.InvalidArgumentError, match="at most 8 events"):
        rt.step(3, x, wait=many)
    with pytest.raises(cgr.UnsupportedError, match="cgr_cuda_event_record"):
        event.record(0)  # a CUDA stream: not on the host backend
    with pytest.raises(cgr.UnsupportedError):
        event.wait(0)
    ticket = rt.step(3, x)
    assert ticket.step == 1  # the refused steps changed nothing
    model.check(ticket, x)


def test_batch_wait_takes_the_record_as_of_the_wait_call(model, rt, x):
    event = rt.event()
    event.record_host()
    with rt.batch(3) as batch:
        for name in ("ids", "pos", "seq"):
            batch.input(name, x[name])
        batch.wait(event)  # the latest record: pending
        event.signal_host()  # ... now complete
        event.record_host()  # a later record, not the batch's
        ticket = batch.replay()
    try:
        deadline = time.monotonic() + 0.5
        while not ticket.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ticket.done(), "the step waits for a record made after the wait"
    finally:
        event.signal_host()
        ticket.wait()
    model.check(ticket, x)
