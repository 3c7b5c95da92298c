"""Handles, slots, step inputs, tickets and events: the objects a Runtime hands out.

Lifetimes. The C runtime belongs to a `_Handle`. The Runtime, every Array
view of its memory (slot buffers, outputs, allocations), every Event and
every allocation hold the handle, so the C runtime is destroyed only when
the last of them is gone: a view never points at freed memory, and objects
may be dropped in any order. `Runtime.close()` ends the Runtime's use:
every later call through it, its tickets or its events raises
InvalidStateError; views stay readable until dropped.

Threads follow the C rules: one thread at a time per runtime (serialize
calls yourself); `Event.signal_host` and `Runtime.counters` from any thread.
The GIL is released inside every C call, so a ticket wait does not block
other Python threads.
"""

import ctypes
import itertools
import threading
import weakref
from ctypes import byref, c_int32, c_void_p

import numpy as np

from . import _lib
from ._arrays import Array
from ._errors import InvalidArgumentError, check

# ---- callbacks ------------------------------------------------------------------

# Python callables a C callback may reach, by key (the callback's `user`).
# A callback of a runtime is held by its handle, and the registry keeps
# only a weak reference to that handle: the callable usually holds views of
# the runtime's memory, which hold the handle, so a strong reference from
# this module-level table would keep every runtime alive forever.
_callbacks = {}
_callback_keys = itertools.count(1)
_callbacks_lock = threading.Lock()


def _register(fn, handle, once=False):
    """A key for `fn`. `once`: dropped after its first run (a host function
    enqueued outside a capture runs exactly once)."""
    with _callbacks_lock:
        key = next(_callback_keys)
        if handle is None:
            _callbacks[key] = (fn, None, False)
        else:
            handle.callbacks[key] = fn
            _callbacks[key] = (None, weakref.ref(handle), once)
    if handle is not None and not once:
        handle.callback_keys.append(key)
    return key


def _lookup(user):
    """(fn, handle_ref) registered under `user`; fn is None once gone. The
    handle stays weak: a backend thread must not end up holding its last
    reference (destroying a runtime there would wait for itself)."""
    fn, handle_ref, once = _callbacks.get(user or 0, (None, None, False))
    handle = handle_ref() if handle_ref is not None else None
    if handle is not None:
        fn = (handle.callbacks.pop if once else handle.callbacks.get)(user, None)
        if once:
            _callbacks.pop(user, None)
    return fn, handle_ref


def _report(handle_ref, exc):
    handle = handle_ref() if handle_ref is not None else None
    if handle is not None:
        handle.host_errors.append(exc)


@_lib.host_fn
def _host_trampoline(user):
    fn, handle_ref = _lookup(user)
    if fn is None:
        return
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - kept for the next wait
        _report(handle_ref, exc)


@_lib.log_fn
def _log_trampoline(user, message):
    fn, _ = _lookup(user)
    if fn is not None:
        try:
            fn(message.decode(errors="replace"))
        except BaseException:  # noqa: BLE001 - a logger must not unwind C
            pass


@_lib.constant_fill_fn
def _fill_trampoline(user, padded_batch, dst, elems):
    entry, handle_ref = _lookup(user)
    if entry is None:
        return
    fn, dt = entry
    view = np.ctypeslib.as_array(
        (ctypes.c_char * (int(elems) * dt.itemsize)).from_address(dst)
    ).view(dt.numpy)
    try:
        fn(int(padded_batch), view)
    except BaseException as exc:  # noqa: BLE001
        _report(handle_ref, exc)


@_lib.constant_key_fill_fn
def _fill_key_trampoline(user, key, dst, elems):
    entry, handle_ref = _lookup(user)
    if entry is None:
        return
    fn, dt = entry
    k = ctypes.cast(key, ctypes.POINTER(_lib.Key)).contents
    view = np.ctypeslib.as_array(
        (ctypes.c_char * (int(elems) * dt.itemsize)).from_address(dst)
    ).view(dt.numpy)
    try:
        fn(int(k.padded_batch), int(k.tokens_per_request), view)
    except BaseException as exc:  # noqa: BLE001
        _report(handle_ref, exc)


# ---- the C runtime's owner ---------------------------------------------------------


class _Handle:
    """Owns one cgr_runtime: destroyed when nothing refers to it any more."""

    def __init__(self, ptr, backend, device):
        self.ptr = c_void_p(ptr)
        self.backend = backend
        self.device = device
        self.callback_keys = []
        self.callbacks = {}  # key -> the callable (see _register)
        self.host_errors = []

    def memcpy(self, dst, src, nbytes):
        check(_lib.memcpy(self.ptr, dst, src, nbytes), self.ptr)

    def __del__(self):
        ptr, self.ptr = self.ptr, None
        if ptr and ptr.value and _lib is not None and _lib.runtime_destroy:
            _lib.runtime_destroy(ptr)
        if _callbacks is None or _callbacks_lock is None:  # shutdown
            return
        with _callbacks_lock:
            for key in self.callback_keys + list(self.callbacks):
                _callbacks.pop(key, None)


class _Allocation:
    """Device or pinned memory from cgr_device_alloc / cgr_pinned_alloc,
    freed when its last view is gone (the handle outlives it)."""

    def __init__(self, handle, ptr, memory):
        self.handle = handle
        self.ptr = ptr
        self.memory = memory

    def memcpy(self, dst, src, nbytes):
        self.handle.memcpy(dst, src, nbytes)

    def __del__(self):
        free = _lib.device_free if self.memory == "device" else _lib.pinned_free
        if self.ptr and self.handle.ptr:
            free(self.handle.ptr, self.ptr)
        self.ptr = None


def _enum(table, value, what):
    if isinstance(value, int) and value in table.values():
        return value
    try:
        return table[value]
    except (KeyError, TypeError):
        raise InvalidArgumentError(
            f"cgr: {what} {value!r} is not one of {', '.join(table)}",
            InvalidArgumentError.status,
        ) from None


# ---- slots --------------------------------------------------------------------


class Slot:
    """A declared slot: `index` is its cgr_slot, `kind` "rows", "prefix",
    "constant" or "output"."""

    __slots__ = ("runtime", "name", "index", "kind", "dtype", "row_elems",
                 "extra_elems", "fill", "scale", "_views", "__weakref__")

    def __init__(self, runtime, name, index, kind, dt, row_elems, extra_elems,
                 fill=None, scale="request"):
        self.runtime = runtime
        self.scale = scale  # "request", or "token": a row per token
        self.fill = fill  # a CONSTANT's fill(padded_batch, array); None: arange
        self.name = name
        self.index = index
        self.kind = kind
        self.dtype = dt
        self.row_elems = row_elems
        self.extra_elems = extra_elems
        self._views = {}

    def __repr__(self):
        return (f"cgr.Slot({self.name!r}, {self.kind}, {self.dtype.name}, "
                f"row_elems={self.row_elems})")

    def __index__(self):
        return self.index

    def shape_for(self, rows):
        """The shape of `rows` rows of this slot (a PREFIX has rows + 1
        entries; a CONSTANT padded_batch * row_elems + extra_elems)."""
        if self.kind == "prefix":
            return (rows + 1,)
        if self.kind == "constant":
            return (rows * self.row_elems + self.extra_elems,)
        return (rows,) if self.row_elems == 1 else (rows, self.row_elems)

    def constant_image(self, padded_batch):
        """A CONSTANT's content for a bucket, as cgr writes it at capture
        (fill, or arange), in a numpy array."""
        image = np.arange(self.shape_for(padded_batch)[0]).astype(
            self.dtype.numpy)
        if self.fill is not None:
            self.fill(padded_batch, image)
        return image

    def buffer(self, set=0, padded_batch=None, tokens_per_request=None):
        """The slot's buffer in buffer set `set` (a CONSTANT's: of bucket
        `padded_batch` and `tokens_per_request`, the runtime's first value
        by default), as an Array sized for the largest key. Its address
        never changes; its contents are whatever the steps wrote."""
        rt = self.runtime
        q = (rt.tokens_per_request[0] if tokens_per_request is None
             else int(tokens_per_request))
        key = (set, padded_batch, q)
        view = self._views.get(key)
        if view is None:
            h = rt._live()
            ptr = c_void_p()
            if self.kind == "constant":
                c_key = _lib.Key(padded_batch or 0, q, 0)
                check(_lib.slot_address_key(h.ptr, self.index, set,
                                            byref(c_key), byref(ptr)), h.ptr)
                rows = padded_batch * (q if self.scale == "token" else 1)
            else:
                check(_lib.slot_address(h.ptr, self.index, set, 0,
                                        byref(ptr)), h.ptr)
                rows = rt.buckets[-1]
                if self.scale == "token":
                    rows *= rt.tokens_per_request[-1]
            view = Array(h, ptr.value, self.shape_for(rows), self.dtype,
                         "device", h.backend, h.device)
            self._views[key] = view
        return view


UNCHANGED = object()
"""A step input: the slot's data is what its buffer set last loaded
(cgr_batch_unchanged)."""


class Gather:
    """A step input: row j <- row rows[j] of device memory `src`
    (cgr_batch_gather). Both are device memory (Array or CUDA tensor)."""

    __slots__ = ("src", "rows")

    def __init__(self, src, rows):
        self.src = src
        self.rows = rows


class Feedback:
    """A step input for a fed slot: row j continues the previous step's row
    prev_rows[j], or is new when -1, taking the next row of new_rows
    (cgr_batch_feedback). prev_rows: an int32 host array of one entry per
    row of the slot: batch_size, or batch_size * tokens_per_request for a
    slot scaled by token (whose entries then name token rows of the
    previous step's output, r * q + t)."""

    __slots__ = ("prev_rows", "new_rows")

    def __init__(self, prev_rows, new_rows=None):
        self.prev_rows = prev_rows
        self.new_rows = new_rows


def _buffer(value, what):
    """(address, bytes, source) of a step input: a numpy array (pageable, or
    a view of a pinned Array), an Array, or a torch tensor."""
    if isinstance(value, np.ndarray):
        if not value.flags.c_contiguous:
            raise InvalidArgumentError(
                f"cgr: {what}: the array is not C-contiguous",
                InvalidArgumentError.status)
        base = value.base
        while isinstance(base, np.ndarray):  # a view of a view (a slice)
            base = base.base
        source = 1 if isinstance(base, Array) and base.memory == "pinned" else 0
        if isinstance(base, Array) and base.memory == "device":
            source = 2
        return value.__array_interface__["data"][0], value.nbytes, source
    if isinstance(value, Array):
        return value.ptr, value.nbytes, 1 if value.memory == "pinned" else 2
    if hasattr(value, "data_ptr") and hasattr(value, "is_cuda"):  # torch
        if not value.is_contiguous():
            raise InvalidArgumentError(
                f"cgr: {what}: the tensor is not contiguous",
                InvalidArgumentError.status)
        nbytes = value.numel() * value.element_size()
        if value.is_cuda:
            return value.data_ptr(), nbytes, 2
        return value.data_ptr(), nbytes, 1 if value.is_pinned() else 0
    raise InvalidArgumentError(
        f"cgr: {what}: {type(value).__name__} is not an array, a cgr.Array "
        "or a tensor", InvalidArgumentError.status)


def _rows_pointer(rows, count, what, keep):
    """An int32 copy of `rows` (kept alive in `keep`) as a C pointer; when
    `count` is known, the length cgr will read, checked: C cannot."""
    rows = np.ascontiguousarray(rows, dtype=np.int32)
    if count is not None and rows.size != count:
        raise InvalidArgumentError(
            f"cgr: {what}: prev_rows has {rows.size} entries, this step's "
            f"slot has {count} rows (batch_size, times tokens_per_request "
            "for a slot scaled by token)", InvalidArgumentError.status)
    keep.append(rows)
    return rows.ctypes.data_as(ctypes.POINTER(c_int32))


def _fill_input(entry, value, what, keep, slot=None, rows=None):
    """Fills cgr_input `entry` from a step input. `slot` (the Slot, when
    known) gives new rows that are not an array yet their dtype; `rows`,
    the slot's rows in this step, the length prev_rows must have."""
    if value is UNCHANGED:
        entry.kind = _lib.INPUT_UNCHANGED
        return
    if isinstance(value, Gather):
        entry.kind = _lib.INPUT_GATHER
        entry.data = _buffer(value.src, what)[0]
        if isinstance(value.rows, (Array,)) or hasattr(value.rows, "data_ptr"):
            entry.rows = ctypes.cast(_buffer(value.rows, what)[0],
                                     ctypes.POINTER(c_int32))
        else:
            raise InvalidArgumentError(
                f"cgr: {what}: a gather's rows are device memory (an Array "
                "or a CUDA tensor)", InvalidArgumentError.status)
        return
    if isinstance(value, Feedback):
        entry.kind = _lib.INPUT_FEEDBACK
        entry.rows = _rows_pointer(value.prev_rows, rows, what, keep)
        if value.new_rows is None:
            entry.data, entry.bytes = None, 0
        else:
            new_rows = value.new_rows
            if not isinstance(new_rows, np.ndarray):  # a list: the slot's type
                new_rows = np.asarray(
                    new_rows, dtype=slot.dtype.numpy if slot is not None else None)
            keep.append(new_rows)
            entry.data, entry.bytes, _ = _buffer(new_rows, what)
        return
    entry.kind = _lib.INPUT_DATA
    entry.data, entry.bytes, entry.source = _buffer(value, what)


# ---- tickets and events ----------------------------------------------------------


class Ticket:
    """What a replay returns: `step`, `batch_size`, `padded_batch` (the
    bucket), `set` (-1 for an eager step), and the step's
    `tokens_per_request` and `variant` (an index)."""

    __slots__ = ("runtime", "_c", "tokens_per_request", "variant")

    def __init__(self, runtime, c_ticket, tokens_per_request=1, variant=0):
        self.runtime = runtime
        self._c = c_ticket
        self.tokens_per_request = tokens_per_request
        self.variant = variant

    step = property(lambda self: self._c.step)
    batch_size = property(lambda self: self._c.batch_size)
    padded_batch = property(lambda self: self._c.padded_batch)
    set = property(lambda self: self._c.set)

    def __repr__(self):
        return (f"cgr.Ticket(step={self.step}, batch_size={self.batch_size}, "
                f"padded_batch={self.padded_batch}, set={self.set})")

    def wait(self):
        """Waits until the step has finished (the GIL is released)."""
        rt = self.runtime
        h = rt._live()
        rt._raise_host_errors()
        check(_lib.ticket_wait(h.ptr, byref(self._c)), h.ptr)
        rt._raise_host_errors()
        return self

    def done(self):
        """True when the step has finished."""
        h = self.runtime._live()
        status = _lib.ticket_query(h.ptr, byref(self._c))
        if status == -14:
            return False
        check(status, h.ptr)
        return True

    def output(self, slot):
        """The OUTPUT slot's `batch_size` rows (times tokens_per_request for
        a slot scaled by token) as this step wrote them, as
        an Array view (read after wait()). Valid until the replay that
        reuses the set (step + 2; an eager step's until the next replay):
        after that InvalidStateError."""
        rt = self.runtime
        h = rt._live()
        s = rt._slot(slot)
        ptr = c_void_p()
        check(_lib.output(h.ptr, byref(self._c), s.index, byref(ptr)), h.ptr)
        rows = self.batch_size
        if s.scale == "token":
            rows *= self.tokens_per_request
        if self.set >= 0:
            full = s.buffer(self.set)
            if full.ptr == ptr.value:
                return full[:rows]
        return Array(h, ptr.value, s.shape_for(rows), s.dtype, "device",
                     h.backend, h.device)

    def record(self, event):
        """Records `event` to complete with this step
        (cgr_ticket_record_event)."""
        h = self.runtime._live()
        check(_lib.ticket_record_event(h.ptr, byref(self._c), event._live()),
              h.ptr)
        return event


class Event:
    """An event shared by the caller and cgr (cgr_event): a batch waits for
    it (Runtime.step(wait=...)), a ticket records it (Ticket.record)."""

    def __init__(self, runtime):
        self.runtime = runtime
        h = runtime._live()
        ptr = c_void_p()
        check(_lib.event_create(h.ptr, byref(ptr)), h.ptr)
        self._handle = h
        self._ptr = ptr

    def _live(self):
        self.runtime._live()
        return self._ptr

    def __del__(self):
        ptr, self._ptr = getattr(self, "_ptr", None), None
        # cgr_event_destroy reads the runtime: never after it is destroyed
        # (a garbage cycle may finalize the handle first).
        if ptr and ptr.value and _lib is not None and self._handle.ptr:
            _lib.event_destroy(ptr)

    def _check(self, status):
        check(status, self._handle.ptr)

    def record_host(self):
        """Host backend: the caller's host work begins (pending until
        signal_host)."""
        self._check(_lib.event_record_host(self._live()))

    def signal_host(self):
        """Host backend: that host work is done. Any thread."""
        self._check(_lib.event_signal_host(self._live()))

    def query(self):
        """True when the latest record has completed."""
        status = _lib.event_query(self._live())
        if status == -14:
            return False
        self._check(status)
        return True

    def synchronize(self):
        """Waits on the host for the latest record."""
        self._check(_lib.event_synchronize(self._live()))

    def record(self, stream):
        """CUDA: records the event on `stream` (a torch.cuda.Stream, or a
        cudaStream_t as an int)."""
        self._check(_lib.cuda_event_record(self._live(), _stream_handle(stream)))

    def wait(self, stream):
        """CUDA: `stream` waits on the device for the latest record
        (cgr_cuda_event_wait); the host does not wait."""
        self._check(_lib.cuda_event_wait(self._live(), _stream_handle(stream)))


def _stream_handle(stream):
    if stream is None:
        return None
    if isinstance(stream, int):
        return stream
    handle = getattr(stream, "cuda_stream", None)  # torch.cuda.Stream
    if handle is None:
        raise InvalidArgumentError(
            f"cgr: {stream!r} is not a CUDA stream (torch.cuda.Stream or an "
            "int cudaStream_t)", InvalidArgumentError.status)
    return handle
