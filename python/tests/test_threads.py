"""Threads: different runtimes from different threads at once, and the
counters read from any thread while steps run."""

import threading

import numpy as np

from conftest import BUCKETS, Model, make_runtime


def _run_in_threads(target, count):
    errors = []
    barrier = threading.Barrier(count)

    def run(index):
        try:
            barrier.wait(timeout=30)
            target(index)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((index, exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a thread hung"
    if errors:
        raise errors[0][1]


def test_two_runtimes_in_two_threads_at_once():
    results = {}

    def serve(index):
        mode = ("double_buffered", "fused")[index]
        with make_runtime(replay_mode=mode, log=lambda message: None) as rt:
            model = Model(rt).capture()
            rng = np.random.default_rng(100 + index)
            in_flight, checked = None, 0
            for _ in range(60):
                n = int(rng.integers(1, BUCKETS[-1] + 3))
                inputs = Model.inputs(rng, n)
                ticket = rt.step(n, inputs)
                if in_flight is not None:  # readable until this step's next
                    model.check(*in_flight)
                    checked += 1
                in_flight = (ticket, inputs)
                if ticket.set < 0:  # eager outputs end at the next step
                    model.check(*in_flight)
                    checked += 1
                    in_flight = None
            if in_flight is not None:
                model.check(*in_flight)
                checked += 1
            results[index] = (rt.replay_stats(mode)["steps"], checked)

    _run_in_threads(serve, 2)
    assert results == {0: (60, 60), 1: (60, 60)}


def test_counters_read_from_another_thread_while_steps_run(model, rt):
    stop = threading.Event()
    seen = []

    def read():
        while not stop.is_set():
            seen.append(rt.counters()["graph_launches"])

    reader = threading.Thread(target=read)
    rt.reset_counters()
    reader.start()
    try:
        rng = np.random.default_rng(7)
        steps = 200
        for _ in range(steps):
            inputs = Model.inputs(rng, 3)
            rt.step(3, inputs).wait()
        model.check(rt.step(3, inputs), inputs)
    finally:
        stop.set()
        reader.join(timeout=30)
    assert len(seen) > 1
    assert seen == sorted(seen)  # never goes back
    assert 0 <= seen[0] and seen[-1] <= steps + 1
    assert rt.counters()["graph_launches"] == steps + 1


def test_a_runtime_made_in_one_thread_used_in_another():
    holder = {}

    def build(index):
        rt = make_runtime()
        holder["model"] = Model(rt).capture()
        holder["rt"] = rt

    _run_in_threads(build, 1)
    rt, model = holder["rt"], holder["model"]
    with rt:
        inputs = Model.inputs(np.random.default_rng(8), 4)
        model.check(rt.step(4, inputs), inputs)
