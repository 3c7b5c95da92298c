"""Runtime, StepContext and PreparedStep: cgr.h's runtime and step calls
(Batch, the batch calls, is in _batch.py)."""

import ctypes
from ctypes import byref, c_int32, c_size_t, c_uint32, c_void_p

import numpy as np

from . import _lib
from ._arrays import Array, dtype as _dtype
from ._batch import PIPELINED, Batch, mode_error, replay_error
from ._errors import (
    CaptureError,
    Error,
    InvalidArgumentError,
    InvalidStateError,
    UnsupportedError,
    check,
    error_for,
)
from ._objects import (
    Event,
    Slot,
    Ticket,
    _Allocation,
    _buffer,
    _enum,
    _fill_input,
    _fill_key_trampoline,
    _fill_trampoline,
    _Handle,
    _host_trampoline,
    _log_trampoline,
    _register,
)

_MODE_NAMES = {v: k for k, v in _lib.REPLAY_MODES.items()}


def _invalid(message):
    return InvalidArgumentError(message, InvalidArgumentError.status)


class StepContext:
    """What a step function gets for one run (cgr_step): valid only during
    the call. `padded_batch`, `set` (-1... never: 0 or 1) and `capturing`
    say which run this is; `slot()` gives this run's buffers."""

    def __init__(self, runtime, ptr):
        self.runtime = runtime
        self._ptr = c_void_p(ptr)
        self.padded_batch = _lib.step_padded_batch(self._ptr)
        self.tokens_per_request = _lib.step_tokens_per_request(self._ptr)
        self.variant = _lib.step_variant(self._ptr)
        self.set = _lib.step_buffer_set(self._ptr)
        self.capturing = bool(_lib.step_is_capturing(self._ptr))

    def _live(self):
        if self._ptr is None:
            raise InvalidStateError(
                "cgr: a StepContext is valid only during its step call",
                InvalidStateError.status)
        return self._ptr

    def _check(self, status):
        check(status, self.runtime._handle.ptr)

    def slot(self, slot):
        """This run's buffer of `slot` (padded_batch rows, times
        tokens_per_request for a slot scaled by token) as an Array."""
        s = self.runtime._slot(slot)
        ptr = _lib.step_slot(self._live(), s.index)
        h = self.runtime._handle
        rows = self.padded_batch
        if s.scale == "token":
            rows *= self.tokens_per_request
        return Array(h, ptr, s.shape_for(rows), s.dtype, "device", h.backend,
                     h.device)

    def scratch(self, shape, dtype, align=0):
        """Scratch device memory from the shared arena (cgr_step_scratch)."""
        dt = _dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        ptr = c_void_p()
        self._check(_lib.step_scratch(self._live(), nbytes, align, byref(ptr)))
        h = self.runtime._handle
        return Array(h, ptr.value, shape, dt, "device", h.backend, h.device)

    def host_func(self, fn):
        """Enqueues fn() on the step's stream (a host node when captured).
        It runs on a backend thread, must not call cgr, and an exception it
        raises is raised by the next wait on the runtime."""
        key = _register(fn, self.runtime._handle, once=not self.capturing)
        self._check(_lib.step_host_func(self._live(), _host_trampoline, key))

    def memcpy(self, dst, src, nbytes=None):
        """Enqueues a copy of nbytes (default: dst's size) on the step's
        stream. dst and src: Arrays or addresses."""
        d = dst.ptr if isinstance(dst, Array) else int(dst)
        s = src.ptr if isinstance(src, Array) else int(src)
        n = dst.nbytes if nbytes is None else nbytes
        self._check(_lib.step_memcpy(self._live(), d, s, n))

    def memset(self, dst, value, nbytes=None):
        """Enqueues a byte fill of nbytes (default: dst's size)."""
        d = dst.ptr if isinstance(dst, Array) else int(dst)
        n = dst.nbytes if nbytes is None else nbytes
        self._check(_lib.step_memset(self._live(), d, value, n))

    @property
    def cuda_stream(self):
        """CUDA: the cudaStream_t (an int) the step enqueues its work on."""
        out = c_void_p()
        self._check(_lib.cuda_step_stream(self._live(), byref(out)))
        return out.value

    def graph(self, cuda_graph):
        """CUDA, while capturing: this run's work is `cuda_graph` (a
        cudaGraph_t as an int, e.g. torch's raw_cuda_graph())."""
        self._check(_lib.cuda_step_graph(self._live(), cuda_graph))


class PreparedStep:
    """Runtime.prepare's result: call it with a batch size (and optionally
    wait=/done= events) to run a step; returns the Ticket."""

    def __init__(self, runtime, buffers):
        runtime._live()
        if runtime._inputs is None:
            raise InvalidStateError("cgr: capture before preparing a step",
                                    InvalidStateError.status)
        self.runtime = runtime
        self._keep = list(buffers.values())
        self._table = (_lib.Input * max(len(buffers), 1))()
        self._row_bytes = []
        self._extra = []
        self._per_token = []
        for i, (key, value) in enumerate(buffers.items()):
            slot = runtime._slot(key)
            if slot.kind not in ("rows", "prefix"):
                raise _invalid(f"cgr: prepare: {slot!r} is not an input slot")
            ptr, nbytes, source = _buffer(value, f"slot {slot.name!r}")
            row = slot.row_elems * slot.dtype.itemsize
            extra = row if slot.kind == "prefix" else 0
            most = runtime.buckets[-1]
            per_token = slot.scale == "token"
            if per_token:
                most *= runtime.tokens_per_request[-1]
            needed = most * row + extra
            if nbytes < needed:
                raise _invalid(
                    f"cgr: prepare: slot {slot.name!r}: the buffer holds "
                    f"{nbytes} bytes, the largest bucket needs {needed}")
            entry = self._table[i]
            entry.slot, entry.kind = slot.index, _lib.INPUT_DATA
            entry.source, entry.data = source, ptr
            self._row_bytes.append(row)
            self._extra.append(extra)
            self._per_token.append(per_token)
        self._count = len(buffers)
        self._sizes = list(zip(range(self._count), self._row_bytes,
                               self._extra, self._per_token))
        self._ticket = _lib.Ticket()

    def __call__(self, batch_size, wait=(), done=None, *,
                 tokens_per_request=None, variant=None):
        rt = self.runtime
        h = rt._live()
        q, v = rt._key(tokens_per_request, variant)
        table = self._table
        for i, row, extra, per_token in self._sizes:
            table[i].bytes = batch_size * (q if per_token else 1) * row + extra
        waits, nwait = None, 0
        if wait:
            nwait = len(wait)
            waits = (c_void_p * nwait)(*(e._live() for e in wait))
        ticket = _lib.Ticket()
        status = _lib.replay_inputs_key(
            h.ptr, batch_size, q, v, table, self._count, waits, nwait,
            done._live() if done is not None else None, byref(ticket))
        if status != 0:
            raise replay_error(rt, status, h.ptr)
        rt._last_step = ticket.step
        return Ticket(rt, ticket, q, v)


class Runtime:
    """A cgr runtime (cgr_runtime_create). Keywords mirror cgr_config:

    backend         "auto" (default), "cuda" or "host"
    device          CUDA ordinal (default 0)
    buckets         padded batch sizes (default 1, 2, 4, 8, 16, ... 256)
    replay_mode     "double_buffered" (default), "naive", "fused",
                    "in_graph", "eager" or "pipelined" (whose steps run
                    through Batch.stage and Runtime.replay_ahead)
    allow_eager     a batch over the largest bucket runs eagerly (default
                    True) instead of raising BatchTooLargeError
    scratch_bytes   the shared scratch arena (default: sized by one run)
    lazy_capture    capture each bucket on first use (default False)
    validate        check every input value (default False)
    nvtx            NVTX ranges (default True)
    main_stream_priority, side_stream_priority   "high" / "normal"
    log             a callable(str) for warnings (default: stderr)
    tokens_per_request   the tokens a request may carry per step (default
                    (1,)): a graph per bucket, value and variant
    variants        names of the step's variants (default ("default",))

    Use it as a context manager, or call close().
    """

    def __init__(self, *, backend="auto", device=0, buckets=None,
                 replay_mode="double_buffered", allow_eager=True,
                 scratch_bytes=0, lazy_capture=False, validate=False,
                 nvtx=True, main_stream_priority="high",
                 side_stream_priority="normal", log=None,
                 tokens_per_request=None, variants=None):
        config = _lib.Config()
        check(_lib.config_init(byref(config)), None)
        config.backend = _enum(_lib.BACKENDS, backend, "backend")
        config.device = device
        config.main_stream_priority = _enum(_lib.PRIORITIES,
                                            main_stream_priority, "priority")
        config.side_stream_priority = _enum(_lib.PRIORITIES,
                                            side_stream_priority, "priority")
        config.nvtx = int(bool(nvtx))
        config.validate = int(bool(validate))
        bucket_array = None
        if buckets is not None:
            bucket_array = (c_uint32 * max(len(buckets), 1))(*buckets)
            config.buckets = bucket_array
            config.bucket_count = len(buckets)
        config.allow_eager = int(bool(allow_eager))
        config.scratch_bytes = scratch_bytes
        config.lazy_capture = int(bool(lazy_capture))
        config.replay_mode = _enum(_lib.REPLAY_MODES, replay_mode, "replay_mode")
        token_array = name_array = None
        if tokens_per_request is not None:
            token_array = (c_uint32 * max(len(tokens_per_request), 1))(
                *tokens_per_request)
            config.tokens_per_request = token_array
            config.tokens_per_request_count = len(tokens_per_request)
        if variants is not None:
            encoded_names = [str(v).encode() for v in variants]
            name_array = (ctypes.c_char_p * max(len(variants), 1))(
                *encoded_names)
            config.variants = name_array
            config.variant_count = len(variants)
        log_key = None
        if log is not None:
            log_key = _register(log, None)
            config.log = _log_trampoline
            config.log_user = log_key
        ptr = c_void_p()
        status = _lib.runtime_create(byref(config), byref(ptr))
        if status != 0:
            raise error_for(status, None)
        backend_kind = _lib.backend(ptr)
        device_id = -1
        if backend_kind == _lib.BACKENDS["cuda"]:
            # The device the runtime really runs on (CGR_DEVICE overrides
            # the config), for every export's ordinal.
            ordinal = ctypes.c_int(-1)
            check(_lib.cuda_device(ptr, byref(ordinal)), ptr)
            device_id = ordinal.value
        self._handle = _Handle(ptr.value, "cuda" if backend_kind == 1 else "host",
                               device_id)
        if log_key is not None:
            self._handle.callback_keys.append(log_key)
        self._closed = False
        self._slots = {}  # name -> Slot
        self._slot_list = []
        self._step_error = None
        sizes = ctypes.POINTER(c_uint32)()
        count = c_size_t()
        check(_lib.buckets(ptr, byref(sizes), byref(count)), ptr)
        self.buckets = tuple(sizes[i] for i in range(count.value))
        check(_lib.tokens_per_request(ptr, byref(sizes), byref(count)), ptr)
        self.tokens_per_request = tuple(sizes[i] for i in range(count.value))
        self.variants = tuple(
            _lib.variant_name(ptr, v).decode()
            for v in range(_lib.variant_count(ptr)))
        self._inputs = None  # cgr_input table, sized at capture
        self._mode = config.replay_mode
        self._last_step = -1  # the latest step issued
        self._staged_key = None  # (q, variant) of the pipelined staged step
        # Why the pipelined mode cannot run here (cgr.torch sets it), or None.
        self._pipelined_refusal = None
        self._torch_views = {}  # cgr.torch's tensor views of slot buffers

    # ---- life ----

    def _live(self):
        if self._closed:
            raise InvalidStateError("cgr: the runtime is closed",
                                    InvalidStateError.status)
        return self._handle

    @property
    def closed(self):
        return self._closed

    def close(self):
        """Ends the runtime's use: waits for the steps in flight, then the
        C runtime is destroyed once no view, event or allocation refers to
        it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        handle, self._handle = self._handle, None
        for slot in self._slot_list:
            slot._views.clear()
        self._torch_views = {}
        self._torch_events = None  # cgr.torch's events hold the handle
        # The step's host functions usually hold numpy views of the
        # runtime's memory, and so its handle: a cycle the garbage collector
        # cannot see (an ndarray does not report its base). Drop them once
        # no queued work can call them.
        _lib.synchronize(handle.ptr)
        handle.callbacks.clear()
        del handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        state = "closed" if self._closed else self.backend
        return f"cgr.Runtime({state}, buckets={self.buckets})"

    # ---- facts ----

    @property
    def backend(self):
        """"cuda" or "host"."""
        return self._live().backend

    @property
    def backend_reason(self):
        h = self._live()
        return _lib.backend_reason(h.ptr).decode()

    @property
    def device_info(self):
        h = self._live()
        info = _lib.DeviceInfo()
        check(_lib.device_info_get(h.ptr, byref(info)), h.ptr)
        out = {name: getattr(info, name) for name, _ in info._fields_}
        out["name"] = info.name.decode(errors="replace")
        return out

    def bucket_for(self, batch):
        """The smallest bucket holding `batch` rows."""
        h = self._live()
        out = c_uint32()
        check(_lib.bucket_for_batch(h.ptr, batch, byref(out)), h.ptr)
        return out.value

    # ---- slots ----

    def declare(self, name, kind, dtype, row_elems=1, *, pad_value=0,
                extra_elems=0, fill=None, valid=None, scale="request",
                fill_key=None):
        """Declares a slot (cgr_slot_declare). kind: "rows", "prefix",
        "constant" or "output"; dtype: numpy, torch or a name. A constant's
        `fill(padded_batch, array)` writes its host image (default arange,
        times the key's tokens per request for a constant scaled by
        request: cu_seqlens_q). `valid=(lo, hi)`: the values validation
        accepts. `scale`: "request" (a row per request) or "token" (a row
        per token: batch_size * tokens_per_request rows). `fill_key(
        padded_batch, tokens_per_request, array)`: a constant's fill that
        sees the key (used instead of `fill`)."""
        h = self._live()
        dt = _dtype(dtype)
        desc = _lib.SlotDesc()
        encoded = name.encode()  # desc.name points into it until declared
        check(_lib.slot_desc_init(byref(desc), encoded,
                                  _enum(_lib.SLOT_KINDS, kind, "kind"),
                                  dt.itemsize, row_elems), h.ptr)
        desc.pad_value = int(pad_value) & 0xFFFFFFFFFFFFFFFF
        desc.extra_elems = extra_elems
        desc.elem_unsigned = int(dt.kind == "u")
        desc.scale = _enum(_lib.SLOT_SCALES, scale, "scale")
        if fill_key is not None:
            desc.fill_key = _fill_key_trampoline
            desc.fill_user = _register((fill_key, dt), h)
        elif fill is not None:
            desc.fill = _fill_trampoline
            desc.fill_user = _register((fill, dt), h)
        if valid is not None:
            desc.valid_min, desc.valid_max = (int(v) for v in valid)
        index = c_int32()
        check(_lib.slot_declare(h.ptr, byref(desc), byref(index)), h.ptr)
        del encoded
        kind_name = kind if isinstance(kind, str) else {
            v: k for k, v in _lib.SLOT_KINDS.items()}[kind]
        slot = Slot(self, name, index.value, kind_name, dt, row_elems,
                    extra_elems, fill, scale)
        self._slots[name] = slot
        self._slot_list.append(slot)
        return slot

    def feed(self, output, input):
        """Output slot `output` feeds ROWS slot `input` (cgr_slot_feed)."""
        h = self._live()
        check(_lib.slot_feed(h.ptr, self._slot(output).index,
                             self._slot(input).index), h.ptr)

    def slot(self, name):
        """The slot declared as `name`."""
        return self._slot(name)

    def _slot(self, key):
        if isinstance(key, Slot):
            if key.runtime is not self:
                raise _invalid(f"cgr: {key!r} belongs to another runtime")
            return key
        if isinstance(key, str):
            slot = self._slots.get(key)
            if slot is None:
                raise _invalid(f"cgr: no slot is named {key!r}")
            return slot
        if isinstance(key, int) and 0 <= key < len(self._slot_list):
            return self._slot_list[key]
        raise _invalid(f"cgr: {key!r} is not a slot of this runtime")

    # ---- capture ----

    def capture(self, step):
        """Registers `step(ctx: StepContext)` and captures it for every
        bucket and buffer set (cgr_capture). The step enqueues work through
        ctx (host_func, memcpy, memset; on CUDA its own kernels on
        ctx.cuda_stream, or ctx.graph for a graph captured elsewhere) and
        must do the same work every run. An exception in the step aborts
        the capture: CaptureError, chained to it."""
        h = self._live()

        def c_step(step_ptr, user):
            ctx = StepContext(self, step_ptr)
            try:
                step(ctx)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                self._step_error = exc
                return CaptureError.status
            finally:
                ctx._ptr = None
            return 0

        callback = _lib.step_fn(c_step)
        self._step_callback = callback  # lives as long as the runtime
        self._step_error = None
        status = _lib.capture(h.ptr, callback, None)
        self._after_step_call(status)
        self._inputs = (_lib.Input * max(len(self._slot_list), 1))()

    def capture_bucket(self, padded_batch):
        """Captures one bucket (every key of it) now, when capture is
        lazy."""
        h = self._live()
        self._step_error = None
        self._after_step_call(_lib.capture_bucket(h.ptr, padded_batch))

    def _key(self, tokens_per_request, variant):
        """(q, variant index) of a step: the defaults are the first tokens
        value and variant 0; a variant may be named."""
        q = (self.tokens_per_request[0] if tokens_per_request is None
             else int(tokens_per_request))
        if variant is None:
            return q, 0
        if isinstance(variant, str):
            if variant not in self.variants:
                raise _invalid(f"cgr: no variant is named {variant!r} (the "
                               f"runtime has {', '.join(self.variants)})")
            return q, self.variants.index(variant)
        return q, int(variant)

    def _c_key(self, padded_batch, tokens_per_request, variant):
        q, v = self._key(tokens_per_request, variant)
        return _lib.Key(padded_batch, q, v)

    def capture_key(self, padded_batch, tokens_per_request=None,
                    variant=None):
        """Captures one key (cgr_capture_key) now, when capture is lazy."""
        h = self._live()
        key = self._c_key(padded_batch, tokens_per_request, variant)
        self._step_error = None
        self._after_step_call(_lib.capture_key(h.ptr, byref(key)))

    def _after_step_call(self, status):
        error, self._step_error = self._step_error, None
        if status != 0:
            exc = error_for(status, self._handle.ptr)
            if error is not None:
                exc.args = (f"{exc.args[0]}; the step raised "
                            f"{type(error).__name__}: {error}",)
                exc.message = exc.args[0]
                raise exc from error
            raise exc
        self._raise_host_errors()

    def _raise_host_errors(self):
        errors = self._handle.host_errors
        if errors:
            first = errors[0]
            errors.clear()
            raise Error(f"cgr: a host function of the step raised "
                        f"{type(first).__name__}: {first}",
                        InvalidStateError.status) from first

    # ---- replay ----

    @property
    def replay_mode(self):
        """The mode of the next steps; assign a name to switch
        (cgr_set_replay_mode)."""
        return _MODE_NAMES[self._mode]

    @replay_mode.setter
    def replay_mode(self, mode):
        h = self._live()
        value = _enum(_lib.REPLAY_MODES, mode, "replay_mode")
        if value == PIPELINED and self._pipelined_refusal is not None:
            raise UnsupportedError(
                f"cgr: replay_mode 'pipelined': {self._pipelined_refusal}",
                UnsupportedError.status)
        status = _lib.set_replay_mode(h.ptr, value)
        if status != 0:
            raise mode_error(status, h.ptr)
        self._mode = value

    def step(self, batch_size, inputs, *, wait=(), done=None,
             tokens_per_request=None, variant=None):
        """Runs one step in one C call (cgr_replay_inputs_key), of a key's
        tokens per request and variant (a name or an index; the defaults:
        the first value, variant 0): `inputs` maps
        each input slot (a Slot, its name or index) to its rows (numpy
        array, pinned or device Array, torch tensor), cgr.UNCHANGED, a
        cgr.Gather or a cgr.Feedback. `wait`: Events the step's loads wait
        for; `done`: an Event recorded to complete with the step. Returns
        the Ticket; nothing changes when it raises. Every mode but
        "pipelined", which raises InvalidStateError: its steps run through
        Batch.stage and replay_ahead."""
        h = self._live()
        q, v = self._key(tokens_per_request, variant)
        table = self._inputs
        if table is None:
            raise InvalidStateError("cgr: capture before the first step",
                                    InvalidStateError.status)
        keep = []
        count = 0
        for key, value in inputs.items():
            if count == len(table):
                raise _invalid("cgr: more inputs than slots")
            entry = table[count]
            slot = self._slot(key)
            entry.slot = slot.index
            rows = batch_size * (q if slot.scale == "token" else 1)
            _fill_input(entry, value, f"inputs[{count}]", keep, slot, rows)
            count += 1
        waits, nwait = None, 0
        if wait:
            nwait = len(wait)
            waits = (c_void_p * nwait)(*(e._live() for e in wait))
        done_ptr = done._live() if done is not None else None
        ticket = _lib.Ticket()
        status = _lib.replay_inputs_key(h.ptr, batch_size, q, v, table, count,
                                        waits, nwait, done_ptr, byref(ticket))
        if status != 0:
            raise replay_error(self, status, h.ptr)
        self._last_step = ticket.step
        return Ticket(self, ticket, q, v)

    def prepare(self, buffers):
        """A step whose inputs always come from the same memory: `buffers`
        maps each input slot to an array (numpy, pinned or device Array,
        tensor) holding at least the largest batch's rows, which the caller
        rewrites in place before each step. The returned PreparedStep runs
        a step of n rows from their first n rows with one C call and no
        per-input work in Python: the hot path for a serving loop."""
        return PreparedStep(self, buffers)

    def batch(self, batch_size, tokens_per_request=None, variant=None, *,
              inputs=None):
        """Opens the next step's batch (cgr_batch_begin_key); see Batch.
        `inputs` gives slots at once, a mapping as Runtime.step takes
        (one C call per slot); a batch whose inputs raise is discarded."""
        batch = Batch(self, batch_size, tokens_per_request, variant)
        if inputs:
            try:
                for slot, value in inputs.items():
                    batch._give(slot, value)
            except BaseException:
                batch.discard()
                raise
        return batch

    # ---- the pipelined mode ----

    def replay_ahead(self, batch=None):
        """The pipelined mode's step (cgr_replay_ahead): launches the
        staged step and stages `batch`, the step after it, built before
        the launched step has run; returns the launched step's Ticket. A
        run is Batch.stage() of its first batch, then replay_ahead(next)
        per step, and replay_ahead() (no batch) to launch the last step
        and end the run: nothing is staged after it.

        `batch` (an open Batch of this runtime) is consumed whether the
        call succeeds or not. Its Feedback rows name the launched step's
        rows; gathers and device sources are read after that step's work.
        Raises InvalidStateError when nothing is staged or in another
        mode; a refused `batch` (a slot never given: InvalidArgumentError,
        ...) launches nothing and leaves the staged step staged."""
        h = self._live()
        ptr = None
        if batch is not None:
            if not isinstance(batch, Batch) or batch.runtime is not self:
                raise _invalid(
                    f"cgr: replay_ahead: {batch!r} is not a Batch of this "
                    "runtime (rt.batch(n, inputs=...)), nor None")
            ptr = batch._take()
        key = self._staged_key
        ticket = _lib.Ticket()
        status = _lib.replay_ahead(h.ptr, ptr, byref(ticket))
        if batch is not None:
            batch._keep = []
        if status != 0:
            if not _lib.replay_staged(h.ptr):
                self._staged_key = None
            raise error_for(status, h.ptr)
        self._staged_key = batch._key if batch is not None else None
        self._last_step = ticket.step
        return Ticket(self, ticket, *key)

    @property
    def staged(self):
        """True when a pipelined step is staged and not yet launched
        (cgr_replay_staged): replay_ahead launches it; the mode cannot
        change until replay_ahead() ends the run."""
        return bool(_lib.replay_staged(self._live().ptr))

    def synchronize(self):
        """Waits for all the runtime's work (cgr_synchronize)."""
        h = self._live()
        check(_lib.synchronize(h.ptr), h.ptr)
        self._raise_host_errors()

    # ---- memory ----

    def _allocate(self, shape, dtype, memory):
        h = self._live()
        dt = _dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        ptr = c_void_p()
        alloc = _lib.device_alloc if memory == "device" else _lib.pinned_alloc
        check(alloc(h.ptr, nbytes, byref(ptr)), h.ptr)
        owner = _Allocation(h, ptr.value, memory)
        return Array(owner, ptr.value, shape, dt, memory, h.backend, h.device)

    def device_array(self, shape, dtype):
        """Device memory of the runtime's device (cgr_device_alloc), freed
        when the last view of it is gone."""
        return self._allocate(shape, dtype, "device")

    def pinned_array(self, shape, dtype):
        """Page-locked host memory (cgr_pinned_alloc): what a pinned source
        lies in. np.asarray(it) is a numpy view."""
        return self._allocate(shape, dtype, "pinned")

    def memcpy(self, dst, src, nbytes):
        """Copies nbytes between addresses (cgr_memcpy), synchronously."""
        self._live().memcpy(dst, src, nbytes)

    # ---- events ----

    def event(self):
        """A new Event of this runtime (cgr_event_create)."""
        return Event(self)

    def cuda_stream(self, role="main"):
        """CUDA: the runtime's main or side cudaStream_t, as an int."""
        h = self._live()
        out = c_void_p()
        check(_lib.cuda_stream(h.ptr, {"main": 0, "side": 1}[role],
                               byref(out)), h.ptr)
        return out.value

    # ---- stats ----

    def replay_stats(self, mode=None):
        """What replays cost, per mode: {mode: {steps, ...}}, or one mode's."""
        h = self._live()
        modes = [mode] if mode is not None else list(_lib.REPLAY_MODES)
        out = {}
        for name in modes:
            stats = _lib.ReplayStats()
            check(_lib.replay_stats_get(h.ptr, _enum(_lib.REPLAY_MODES, name,
                                                     "replay_mode"),
                                        byref(stats)), h.ptr)
            out[name] = {f: getattr(stats, f) for f, _ in stats._fields_}
        return out[mode] if mode is not None else out

    def capture_stats(self):
        h = self._live()
        stats = _lib.CaptureStats()
        check(_lib.capture_stats_get(h.ptr, byref(stats)), h.ptr)
        return {f: getattr(stats, f) for f, _ in stats._fields_}

    def bucket_stats(self, padded_batch):
        h = self._live()
        s = _lib.BucketStats()
        check(_lib.bucket_stats_get(h.ptr, padded_batch, byref(s)), h.ptr)
        return {
            "padded_batch": s.padded_batch,
            "captured": bool(s.captured),
            "nodes": tuple(s.nodes),
            "capture_ms": tuple(s.capture_ms),
            "instantiate_ms": tuple(s.instantiate_ms),
            "scratch_bytes": s.scratch_bytes,
        }

    def key_stats(self, padded_batch, tokens_per_request=None, variant=None):
        """What one key's capture cost and holds (cgr_key_stats_get)."""
        h = self._live()
        key = self._c_key(padded_batch, tokens_per_request, variant)
        s = _lib.KeyStats()
        check(_lib.key_stats_get(h.ptr, byref(key), byref(s)), h.ptr)
        return {
            "padded_batch": s.key.padded_batch,
            "tokens_per_request": s.key.tokens_per_request,
            "variant": self.variants[s.key.variant],
            "captured": bool(s.captured),
            "nodes": tuple(s.nodes),
            "capture_ms": tuple(s.capture_ms),
            "instantiate_ms": tuple(s.instantiate_ms),
            "scratch_bytes": s.scratch_bytes,
        }

    def counters(self):
        """Backend calls made so far, by kind (cgr_counters). Any thread."""
        h = self._live()
        c = _lib.Counters()
        check(_lib.counters_get(h.ptr, byref(c)), h.ptr)
        return {name: getattr(c, name) for name in _lib.COUNTER_NAMES}

    def reset_counters(self):
        h = self._live()
        check(_lib.counters_reset(h.ptr), h.ptr)

    def dump_graph(self, padded_batch, set, path, *, tokens_per_request=None,
                   variant=None):
        """Writes (key, set)'s graph as Graphviz DOT (cgr_graph_dump_key;
        the key's defaults: the first tokens value, variant 0)."""
        h = self._live()
        key = self._c_key(padded_batch, tokens_per_request, variant)
        check(_lib.graph_dump_key(h.ptr, byref(key), set, str(path).encode()),
              h.ptr)
