"""The C boundary: ctypes' structs, enums and version against cgr.h as a C
compiler reads it, and how many foreign calls a step costs."""

import ctypes
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import cgr
from cgr import _lib
from conftest import BUCKETS, ROOT, Model, make_runtime, run_steps

HEADER = os.path.join(ROOT, "include", "cgr", "cgr.h")

STRUCTS = {
    "cgr_config": _lib.Config,
    "cgr_slot_desc": _lib.SlotDesc,
    "cgr_ticket": _lib.Ticket,
    "cgr_replay_stats": _lib.ReplayStats,
    "cgr_bucket_stats": _lib.BucketStats,
    "cgr_capture_stats": _lib.CaptureStats,
    "cgr_counters": _lib.Counters,
    "cgr_device_info": _lib.DeviceInfo,
    "cgr_input": _lib.Input,
    "cgr_key": _lib.Key,
    "cgr_key_stats": _lib.KeyStats,
}

ENUMS = {
    "CGR_BACKEND_": ("AUTO", "CUDA", "HOST"), "CGR_PRIORITY_": ("NORMAL", "HIGH"),
    "CGR_REPLAY_": ("NAIVE", "FUSED", "DOUBLE_BUFFERED", "IN_GRAPH", "EAGER",
                    "PIPELINED"),
    "CGR_SLOT_": ("ROWS", "PREFIX", "CONSTANT", "OUTPUT"),
    "CGR_SCALE_": ("REQUEST", "TOKEN"),
    "CGR_SOURCE_": ("HOST", "PINNED", "DEVICE"),
    "CGR_INPUT_": ("DATA", "UNCHANGED", "GATHER", "FEEDBACK"),
    "CGR_STREAM_": ("MAIN", "SIDE"),
}


def _c_program():
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "cgr/cgr.h"',
             "int main(void) {"]
    for name, struct in STRUCTS.items():
        lines.append(f'  printf("sizeof {name} %zu\\n", sizeof({name}));')
        for field, _ in struct._fields_:
            lines.append(f'  printf("offsetof {name}.{field} %zu\\n", '
                         f"offsetof({name}, {field}));")
    for prefix, names in ENUMS.items():
        for name in names:
            lines.append(f'  printf("enum {prefix}{name} %d\\n", (int){prefix}{name});')
    for name in ("CGR_CONFIG_VERSION", "CGR_MAX_BUCKET", "CGR_BATCH_MAX_EVENTS",
                 "CGR_VERSION_NUMBER"):
        lines.append(f'  printf("enum {name} %d\\n", (int){name});')
    lines.append('  printf("version %s\\n", CGR_VERSION_STRING);')
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    """What the C compiler says: {"sizeof cgr_ticket": "24", ...}. The
    layout depends on the header, not the backend: checked in the host
    run, where the suite's machine has a compiler."""
    if os.environ.get("CGR_TEST_BACKEND", "host") != "host":
        pytest.skip("needs the host backend: the layout is checked there")
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler `cc` on PATH to compile cgr.h with")
    work = tmp_path_factory.mktemp("abi")
    source = work / "layout.c"
    source.write_text(_c_program())
    binary = work / "layout"
    subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-I",
                    os.path.join(ROOT, "include"), str(source), "-o", str(binary)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(binary)], check=True, capture_output=True,
                         text=True).stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


@pytest.mark.parametrize("name", STRUCTS)
def test_struct_layout_matches_the_header(c_layout, name):
    struct = STRUCTS[name]
    assert int(c_layout[f"sizeof {name}"]) == ctypes.sizeof(struct), name
    for field, _ in struct._fields_:
        assert int(c_layout[f"offsetof {name}.{field}"]) == \
            getattr(struct, field).offset, f"{name}.{field}"


def test_struct_fields_are_all_there(c_layout):
    """Every C field is in ctypes: the last field ends the struct (up to
    padding), so a field missing in the middle would move the offsets."""
    for name, struct in STRUCTS.items():
        field, ctype = struct._fields_[-1]
        end = getattr(struct, field).offset + ctypes.sizeof(ctype)
        align = ctypes.alignment(struct)
        assert int(c_layout[f"sizeof {name}"]) == -(-end // align) * align, name


def test_enums_and_constants_match_the_header(c_layout):
    tables = {
        "CGR_BACKEND_": _lib.BACKENDS, "CGR_PRIORITY_": _lib.PRIORITIES,
        "CGR_REPLAY_": _lib.REPLAY_MODES, "CGR_SLOT_": _lib.SLOT_KINDS,
        "CGR_SCALE_": _lib.SLOT_SCALES, "CGR_SOURCE_": _lib.SOURCES,
        "CGR_INPUT_": {"data": _lib.INPUT_DATA, "unchanged": _lib.INPUT_UNCHANGED,
                       "gather": _lib.INPUT_GATHER, "feedback": _lib.INPUT_FEEDBACK},
        "CGR_STREAM_": {"main": _lib.STREAM_MAIN, "side": _lib.STREAM_SIDE},
    }
    for prefix, names in ENUMS.items():
        table = tables[prefix]
        assert len(table) == len(names), prefix
        for name in names:
            assert table[name.lower()] == int(c_layout[f"enum {prefix}{name}"]), name
    assert int(c_layout["enum CGR_CONFIG_VERSION"]) == _lib.CONFIG_VERSION
    assert int(c_layout["enum CGR_MAX_BUCKET"]) == _lib.MAX_BUCKET
    assert int(c_layout["enum CGR_BATCH_MAX_EVENTS"]) == _lib.BATCH_MAX_EVENTS
    assert cgr.REPLAY_MODES == tuple(n.lower() for n in ENUMS["CGR_REPLAY_"])


def test_version_is_the_headers():
    with open(HEADER) as header:
        text = header.read()
    match = re.search(r'#define CGR_VERSION_STRING "([^"]+)"', text)
    assert match, "CGR_VERSION_STRING not found in cgr.h"
    assert cgr.__version__ == match.group(1)
    parts = [int(re.search(rf"#define CGR_VERSION_{p} (\d+)", text).group(1))
             for p in ("MAJOR", "MINOR", "PATCH")]
    assert cgr.__version__ == ".".join(map(str, parts))
    assert _lib.version_number() == parts[0] * 10000 + parts[1] * 100 + parts[2]


def test_version_as_compiled(c_layout):
    assert c_layout["version"] == cgr.__version__
    assert int(c_layout["enum CGR_VERSION_NUMBER"]) == _lib.version_number()


# ---- foreign calls per step -------------------------------------------------------------


@pytest.fixture
def c_calls(monkeypatch):
    """Every call from Python into libcgr, by name, while the test runs;
    not those a step function makes when cgr calls it back (an eager step
    runs it inside cgr_replay_inputs): they are the step's own work."""
    calls = []
    depth = [0]
    for name in dir(_lib):
        fn = getattr(_lib, name)
        if isinstance(fn, type(_lib.version_string)):
            def counted(*args, _fn=fn, _name=name):
                if depth[0] == 0:
                    calls.append(_name)
                depth[0] += 1
                try:
                    return _fn(*args)
                finally:
                    depth[0] -= 1
            monkeypatch.setattr(_lib, name, counted)
    return calls


def test_a_step_is_one_foreign_call(c_calls):
    with make_runtime() as rt:
        model = Model(rt).capture()
        rng = np.random.default_rng(51)
        x = Model.inputs(rng, 3)
        device = rt.device_array(4, np.int32).copy_from(
            np.array([3, 0, 1, 1], np.int32))
        done = rt.event()
        gate = rt.event()  # never recorded: complete
        previous = model.check(rt.step(3, x), x)
        steps = [
            (3, lambda y: y, {}),
            (3, lambda y: dict(y, pos=cgr.UNCHANGED), {}),
            (3, lambda y: dict(y, ids=cgr.Feedback([2, -1, 0], [7])), {}),
            (4, lambda y: dict(y, pos=cgr.Gather(model.pos.buffer(0),
                                                  device[:4])), {}),
            (2, lambda y: y, {"wait": [gate], "done": done}),
            (BUCKETS[-1] + 1, lambda y: y, {}),  # eager
        ]
        del previous
        for n, shape, kwargs in steps:
            y = Model.inputs(rng, n)
            inputs = shape(y)
            c_calls.clear()
            ticket = rt.step(n, inputs, **kwargs)
            assert c_calls == ["replay_inputs_key"], (n, c_calls)
            c_calls.clear()
            ticket.wait()
            assert c_calls == ["ticket_wait"]
        prepared = rt.prepare({"ids": np.zeros(BUCKETS[-1], np.int32),
                               "pos": np.zeros((BUCKETS[-1], 2), np.int64),
                               "seq": np.zeros(BUCKETS[-1] + 1, np.int32)})
        c_calls.clear()
        prepared(5)
        assert c_calls == ["replay_inputs_key"]


def test_a_pipelined_step_is_a_call_per_input_and_one_launch(c_calls):
    """The pipelined mode has no one-call step in C: a batch (begin, one
    call per given slot), then the launch that stages it."""
    with make_runtime(replay_mode="pipelined") as rt:
        model = Model(rt).capture()
        rng = np.random.default_rng(53)
        x = [Model.inputs(rng, n) for n in (3, 5, 2)]
        rt.batch(3, inputs=x[0]).stage()
        c_calls.clear()
        batch = rt.batch(5, inputs=dict(x[1], ids=cgr.Feedback(
            [2, 1, 0, -1, -1], [4, 5])))
        ticket = rt.replay_ahead(batch)
        assert c_calls == ["batch_begin_key", "batch_feedback", "batch_input",
                           "batch_input", "replay_ahead"]
        model.check(ticket, x[0])
        c_calls.clear()
        ticket = rt.replay_ahead()
        assert c_calls == ["replay_ahead"]


@pytest.mark.parametrize("mode", cgr.REPLAY_MODES)
def test_one_graph_launch_per_graph_step(mode):
    with make_runtime(replay_mode=mode, log=lambda message: None) as rt:
        model = Model(rt).capture()
        rng = np.random.default_rng(52)
        rt.reset_counters()
        assert rt.counters()["graph_launches"] == 0
        sizes = [1, 3, 8, 2, BUCKETS[-1] + 3, 5, 4, BUCKETS[-1] + 1, 7]
        if mode == "pipelined":  # a graph holds every pipelined step
            sizes = [n for n in sizes if n <= BUCKETS[-1]]
        x = [Model.inputs(rng, n) for n in sizes]
        steps = ((n, inputs, {}) for n, inputs in zip(sizes, x))
        for ticket, inputs in zip(run_steps(rt, steps), x):
            model.check(ticket, inputs)
        graph = [] if mode == "eager" else [
            (rt.bucket_for(n), k % 2) for k, n in enumerate(sizes)
            if n <= BUCKETS[-1]]
        counters = rt.counters()
        assert counters["graph_launches"] == len(graph)
        # Every bucket was captured up front; in-graph mode captures its
        # own graph (the load as the first node) at a (bucket, set)'s first
        # use, the pipelined mode its own (the next step's load beside the
        # step, and its late part after it unless the next load has none:
        # the run's last step) at a (bucket, set, late part)'s first use.
        captures = len(set(graph)) if mode == "in_graph" else 0
        if mode == "pipelined":
            last = len(graph) - 1
            captures = len({(b, s, k < last) for k, (b, s) in enumerate(graph)})
        assert counters["captures"] == captures
        assert counters["graph_instantiates"] == captures
        assert set(counters) == set(_lib.COUNTER_NAMES)
