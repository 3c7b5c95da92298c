"""cgr.Array: views of cgr memory shared without a copy, their protocols,
slicing and dtypes, and the life of a ticket's outputs."""

import numpy as np
import pytest

import cgr
from conftest import BACKEND, BUCKETS, Model


@pytest.fixture
def x():
    return Model.inputs(np.random.default_rng(31), 3)


# ---- slot buffers and outputs ----------------------------------------------------------


def test_slot_buffers_are_the_addresses_the_step_ran_on(rt):
    model = Model(rt)
    seen = {}

    def step(ctx):
        for slot in model.slots:
            seen[(slot.name, ctx.padded_batch, ctx.set)] = ctx.slot(slot).ptr
        model.step(ctx)

    rt.capture(step)
    for padded in BUCKETS:
        for set_ in (0, 1):
            for slot in model.slots:
                if slot.kind == "constant":
                    view = slot.buffer(set_, padded)
                    assert view.shape == (padded + 1,)
                else:
                    view = slot.buffer(set_)
                assert view.ptr == seen[(slot.name, padded, set_)], slot
    buffer = model.pos.buffer(1)
    assert buffer is model.pos.buffer(1)  # one view per buffer, kept
    assert buffer.shape == (BUCKETS[-1], 2)
    assert buffer.dtype == cgr.dtype(np.int64)
    assert buffer.memory == "device" and buffer.backend == BACKEND
    assert model.seq.buffer(0).shape == (BUCKETS[-1] + 1,)
    assert model.pos.buffer(0).ptr != model.pos.buffer(1).ptr
    # A constant holds arange for its bucket (numpy(): a copy on CUDA).
    np.testing.assert_array_equal(model.cols.buffer(0, 4).numpy(), np.arange(5))


def test_output_is_a_view_of_the_slot_buffer(model, rt, x):
    ticket = rt.step(3, x).wait()
    out = ticket.output(model.next)
    full = model.next.buffer(ticket.set)
    assert out.ptr == full.ptr
    assert out.shape == (3,)
    assert ticket.output(model.score).shape == (3, 2)
    assert ticket.output(model.score).ptr == model.score.buffer(ticket.set).ptr
    np.testing.assert_array_equal(out.numpy(), Model.reference(x)[0])
    with pytest.raises(cgr.InvalidArgumentError):
        ticket.output(model.ids)  # not an OUTPUT


def test_views_share_memory_with_cgr(model, rt, x, host_only):
    ticket = rt.step(3, x).wait()
    out = ticket.output(model.next).numpy()
    full = model.next.buffer(ticket.set).numpy()
    assert np.shares_memory(out, full)
    assert out.ctypes.data == full.ctypes.data
    # What the step loaded is in the set's input buffer, padding after it.
    pos = np.asarray(model.pos.buffer(ticket.set))
    np.testing.assert_array_equal(pos[:3], x["pos"])
    # Writing through a view writes cgr's memory.
    out[0] = -5
    assert ticket.output(model.next).numpy()[0] == -5


def test_numpy_from_dlpack_shares_memory(rt):
    pinned = rt.pinned_array((4, 3), np.float32)  # CPU memory on both backends
    view = np.asarray(pinned)
    view[:] = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert pinned.__dlpack_device__() == (1, 0)
    array = np.from_dlpack(pinned)
    assert array.shape == (4, 3) and array.dtype == np.float32
    assert array.ctypes.data == pinned.ptr
    assert np.shares_memory(array, view)
    view[1, 2] = 99  # written through cgr's view, seen through DLPack's
    assert array[1, 2] == 99
    rows = np.from_dlpack(pinned[1:3])
    assert rows.ctypes.data == pinned.ptr + 12
    np.testing.assert_array_equal(rows[0], [3, 4, 99])
    with pytest.raises(BufferError):
        pinned.__dlpack__(copy=True)
    with pytest.raises(BufferError):
        pinned.__dlpack__(dl_device=(2, 0))


def test_numpy_from_dlpack_of_an_output(model, rt, x, host_only):
    ticket = rt.step(3, x).wait()
    out = ticket.output(model.score)
    assert out.__dlpack_device__() == (1, 0)
    array = np.from_dlpack(out)
    assert array.ctypes.data == out.ptr
    np.testing.assert_array_equal(array, Model.reference(x)[1])


def test_cuda_array_interface_is_for_cuda_device_memory_only(rt):
    pinned = rt.pinned_array(4, np.int32)
    assert not hasattr(pinned, "__cuda_array_interface__")
    with pytest.raises(AttributeError, match="pinned memory"):
        _ = pinned.__cuda_array_interface__
    device = rt.device_array(4, np.int32)
    if BACKEND == "host":
        with pytest.raises(AttributeError, match="device memory on host"):
            _ = device.__cuda_array_interface__
        assert not hasattr(device, "__cuda_array_interface__")
        assert device.__array_interface__["data"] == (device.ptr, False)
    else:
        interface = device.__cuda_array_interface__
        assert interface["data"] == (device.ptr, False)
        assert interface["shape"] == (4,) and interface["typestr"] == "<i4"
        with pytest.raises(AttributeError):
            _ = device.__array_interface__  # the CPU cannot read it


def test_device_memory_copies(rt):
    device = rt.device_array((3, 2), np.int16)
    values = np.arange(6, dtype=np.int16).reshape(3, 2)
    assert device.copy_from(values) is device
    np.testing.assert_array_equal(device.numpy(), values)
    other = rt.device_array((3, 2), np.int16).copy_from(device)
    np.testing.assert_array_equal(other.numpy(), values)
    with pytest.raises(ValueError, match="8 bytes into 12"):
        device.copy_from(np.zeros(4, np.int16))
    assert device.nbytes == 12 and device.size == 6 and len(device) == 3


# ---- slicing -------------------------------------------------------------------------------


def test_slicing(rt):
    array = rt.pinned_array((6, 3), np.int32)
    np.asarray(array)[:] = np.arange(18).reshape(6, 3)
    rows = array[2:5]
    assert rows.shape == (3, 3)
    assert rows.ptr == array.ptr + 2 * 12
    assert rows.memory == "pinned" and rows.dtype == array.dtype
    np.testing.assert_array_equal(np.asarray(rows), np.arange(6, 15).reshape(3, 3))
    assert array[-2:].ptr == array.ptr + 4 * 12
    assert array[-2:].shape == (2, 3)
    assert array[4:2].shape == (0, 3)
    assert array[:100].shape == (6, 3)
    assert array[:].ptr == array.ptr
    assert rows[1:].ptr == array.ptr + 3 * 12  # a slice of a slice
    with pytest.raises(ValueError, match="step 1"):
        array[::2]
    with pytest.raises(TypeError, match="slice"):
        array[1]
    flat = rt.pinned_array(5, np.uint8)
    assert flat[1:4].shape == (3,) and flat[1:4].ptr == flat.ptr + 1


# ---- dtypes --------------------------------------------------------------------------------


def test_dtype_names_and_numpy_types():
    assert cgr.dtype(np.int32) == cgr.dtype("int32") == cgr.dtype(np.dtype("<i4"))
    assert cgr.dtype("int32").itemsize == 4 and cgr.dtype("int32").kind == "i"
    assert cgr.dtype(np.uint64).kind == "u"
    assert cgr.dtype("half") == cgr.dtype(np.float16)
    assert cgr.dtype("int").name == "int64"
    assert cgr.dtype(float).name == "float64"
    bf16 = cgr.dtype("bfloat16")
    assert bf16.itemsize == 2 and bf16.kind == "b"
    assert bf16.numpy == np.dtype(np.uint16)  # numpy has no bfloat16
    assert bf16 != cgr.dtype("uint16") and bf16 != cgr.dtype("float16")
    assert len({cgr.dtype("int8"), cgr.dtype(np.int8), cgr.dtype("uint8")}) == 2
    assert repr(bf16) == "cgr.dtype('bfloat16')"
    for bad in ("complex64", np.complex128, "nonsense", object, 3):
        with pytest.raises(TypeError, match="not a dtype cgr holds"):
            cgr.dtype(bad)


def test_bfloat16_shows_as_uint16_on_the_cpu(rt):
    slot = rt.declare("h", "rows", "bfloat16", 4)
    assert slot.dtype == cgr.dtype("bfloat16")
    buffer = slot.buffer(0)
    assert buffer.nbytes == BUCKETS[-1] * 4 * 2
    assert buffer.numpy().dtype == np.uint16
    pinned = rt.pinned_array(3, "bfloat16")
    view = np.asarray(pinned)
    assert view.dtype == np.uint16
    view[:] = [0x3F80, 0x4000, 0xC000]  # 1.0, 2.0, -2.0 in bfloat16
    as_float = (view.astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(as_float, [1.0, 2.0, -2.0])


def test_constant_fill_and_slot_dtypes(rt):
    ids = rt.declare("ids", "rows", np.uint16, pad_value=0xFFFF)
    scale = rt.declare("scale", "constant", np.float32, 2,
                       fill=lambda padded, out: out.__setitem__(
                           slice(None), np.arange(out.size) * 0.5 + padded))
    out = rt.declare("out", "output", np.float64)
    assert ids.dtype.name == "uint16" and out.dtype.itemsize == 8
    rt.capture(lambda ctx: None)
    for padded in BUCKETS:
        values = scale.buffer(0, padded).numpy()
        assert values.dtype == np.float32 and values.shape == (2 * padded,)
        np.testing.assert_array_equal(values, np.arange(2 * padded) * 0.5 + padded)
    # Padding rows of an unsigned slot hold its pad value.
    np.testing.assert_array_equal(ids.buffer(1).numpy(), [0xFFFF] * BUCKETS[-1])


# ---- outputs expire -------------------------------------------------------------------------


def test_graph_step_outputs_expire_two_steps_later(model, rt):
    rng = np.random.default_rng(32)
    first = Model.inputs(rng, 3)
    t0 = rt.step(3, first)
    view = t0.wait().output(model.next)
    t1 = rt.step(2, Model.inputs(rng, 2))
    np.testing.assert_array_equal(t0.output(model.next).numpy(),
                                  Model.reference(first)[0])
    t1.wait()
    rt.step(1, Model.inputs(rng, 1)).wait()  # step 2 reuses set 0
    with pytest.raises(cgr.InvalidStateError) as info:
        t0.output(model.next)
    assert "cgr_output" in str(info.value)
    t1.output(model.next)  # set 1: still until step 3
    # An expired ticket can still be waited for.
    t0.wait()
    assert t0.done()
    # The view itself stays a valid address (of what later steps wrote).
    assert view.ptr == model.next.buffer(0).ptr


def test_eager_step_outputs_expire_at_the_next_step(model, rt):
    rng = np.random.default_rng(33)
    n = BUCKETS[-1] + 1
    big = Model.inputs(rng, n)
    ticket = rt.step(n, big)
    assert ticket.set == -1
    model.check(ticket, big)
    rt.step(1, Model.inputs(rng, 1)).wait()
    with pytest.raises(cgr.InvalidStateError):
        ticket.output(model.next)


def test_ticket_fields_and_a_forged_ticket(model, rt, x):
    ticket = rt.step(3, x)
    assert (ticket.step, ticket.batch_size, ticket.padded_batch, ticket.set) == (0, 3, 4, 0)
    assert repr(ticket) == "cgr.Ticket(step=0, batch_size=3, padded_batch=4, set=0)"
    ticket.wait()
    forged = cgr.Ticket(rt, cgr._lib.Ticket(5, 3, 4, 1))  # a step not run yet
    with pytest.raises(cgr.InvalidArgumentError):
        forged.wait()
    with pytest.raises(cgr.InvalidArgumentError):
        forged.output(model.next)


def test_constant_image_is_what_cgr_writes(host_only):
    """Slot.constant_image (cgr.torch writes it before torch's warm-ups)
    equals what cgr writes at capture: arange, or the slot's fill."""
    with cgr.Runtime(backend="host", buckets=[1, 2, 4]) as rt:
        arange = rt.declare("cq", "constant", np.int32, extra_elems=1)
        filled = rt.declare("bias", "constant", np.int64, 2,
                            fill=lambda pb, a: a.__setitem__(
                                slice(None), pb * 100 + np.arange(len(a))))
        out = rt.declare("o", "output", np.int32)
        rt.capture(lambda ctx: ctx.memcpy(ctx.slot(out), ctx.slot(arange),
                                          ctx.slot(out).nbytes))
        for pb in rt.buckets:
            for slot in (arange, filled):
                np.testing.assert_array_equal(slot.buffer(0, pb).numpy(),
                                              slot.constant_image(pb))
