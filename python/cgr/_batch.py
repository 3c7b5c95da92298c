"""Batch: a step's inputs given slot by slot (cgr_batch_*), replayed now
(cgr_replay) or staged as the first step of a pipelined run
(cgr_replay_stage; Runtime.replay_ahead launches it)."""

from ctypes import byref, c_void_p

from . import _lib
from ._errors import InvalidStateError, check, error_for
from ._objects import (
    UNCHANGED,
    Feedback,
    Gather,
    Ticket,
    _buffer,
    _enum,
    _fill_input,
)

PIPELINED = _lib.REPLAY_MODES["pipelined"]

_RUN_HINT = (
    "from Python: stage a run's first batch with Batch.stage(), launch "
    "each step with Runtime.replay_ahead(next_batch), end the run with "
    "Runtime.replay_ahead()")
_END_HINT = "from Python: Runtime.replay_ahead() ends the run"


def pipelined_error(status, handle, hint):
    """error_for's exception, its C message followed by `hint`: the
    Python calls that the C message names by their C names."""
    exc = error_for(status, handle)
    exc.message = f"{exc.args[0]}; {hint}"
    exc.args = (exc.message,)
    return exc


def replay_error(runtime, status, handle):
    """The exception of a failed cgr_replay or cgr_replay_inputs: in the
    pipelined mode, which they refuse, with the Python calls that run
    its steps."""
    if runtime._mode == PIPELINED and status == InvalidStateError.status:
        return pipelined_error(status, handle, _RUN_HINT)
    return error_for(status, handle)


def mode_error(status, handle):
    """The exception of a failed cgr_set_replay_mode: with a step staged,
    with the Python call that ends the run."""
    if status == InvalidStateError.status and _lib.replay_staged(handle):
        return pipelined_error(status, handle, _END_HINT)
    return error_for(status, handle)


class Batch:
    """The next step's inputs, one call per slot (cgr_batch_*): for code
    that builds a batch piece by piece, and for the pipelined mode's
    steps. Runtime.batch(n, inputs={...}) gives many slots at once.

    A batch ends in one of three ways: replay() runs it now, stage()
    stages it as the first step of a pipelined run, and
    Runtime.replay_ahead(batch) stages it behind the step it launches;
    each consumes the batch whether it succeeds or not. As a context
    manager, a batch left open is discarded."""

    def __init__(self, runtime, batch_size, tokens_per_request=None,
                 variant=None):
        self.runtime = runtime
        h = runtime._live()
        ptr = c_void_p()
        q, v = runtime._key(tokens_per_request, variant)
        check(_lib.batch_begin_key(h.ptr, batch_size, q, v, byref(ptr)),
              h.ptr)
        self._key = (q, v)
        self._size = batch_size
        self._ptr = ptr
        self._keep = []

    @property
    def batch_size(self):
        return self._size

    @property
    def open(self):
        """False once replayed, staged or discarded."""
        return self._ptr is not None

    def _live(self):
        self.runtime._live()
        if self._ptr is None:
            raise InvalidStateError("cgr: the batch is closed",
                                    InvalidStateError.status)
        return self._ptr

    def _take(self):
        """The open batch's pointer, for a call that consumes it."""
        ptr, self._ptr = self._live(), None
        return ptr

    def _check(self, status):
        check(status, self.runtime._handle.ptr)

    def input(self, slot, data, source=None):
        """The slot's rows from `data` (numpy array, Array, tensor). The
        source is inferred (pageable host, pinned, device) unless given."""
        ptr, nbytes, inferred = _buffer(data, f"slot {slot!r}")
        src = inferred if source is None else _enum(_lib.SOURCES, source, "source")
        self._keep.append(data)
        self._check(_lib.batch_input(self._live(), self.runtime._slot(slot).index,
                                     src, ptr, nbytes))

    def unchanged(self, slot):
        """The slot keeps what its buffer set last loaded."""
        self._check(_lib.batch_unchanged(self._live(),
                                         self.runtime._slot(slot).index))

    def gather(self, slot, src, rows):
        """Row j of the slot <- row rows[j] of device memory `src`."""
        self._apply(slot, Gather(src, rows))

    def feedback(self, slot, prev_rows, new_rows=None):
        """A fed slot continues the previous step's rows (see Feedback)."""
        self._apply(slot, Feedback(prev_rows, new_rows))

    def _give(self, slot, value):
        """One entry of an inputs mapping, as Runtime.step accepts it."""
        if value is UNCHANGED:
            self.unchanged(slot)
        elif isinstance(value, (Gather, Feedback)):
            self._apply(slot, value)
        else:
            self.input(slot, value)

    def _apply(self, slot, value):
        entry = _lib.Input()
        target = self.runtime._slot(slot)
        rows = self._size * (self._key[0] if target.scale == "token" else 1)
        _fill_input(entry, value, f"slot {slot!r}", self._keep, target, rows)
        index = target.index
        if entry.kind == _lib.INPUT_GATHER:
            status = _lib.batch_gather(self._live(), index, entry.data,
                                       entry.rows)
        else:
            status = _lib.batch_feedback(self._live(), index, entry.rows,
                                         entry.data, entry.bytes)
        self._check(status)

    def wait(self, event):
        """The step reads no input before the event's latest record (in
        the pipelined mode: the graph of the step before it waits)."""
        self._check(_lib.batch_wait_event(self._live(), event._live()))
        # The batch holds the event until it replays: dropping the Event
        # would free it under the batch (cgr waits on it at cgr_replay).
        self._keep.append(event)

    def replay(self):
        """Runs the step (cgr_replay); the batch is closed either way.
        Refused in the pipelined mode: see stage()."""
        rt = self.runtime
        h = rt._live()
        ticket = _lib.Ticket()
        status = _lib.replay(h.ptr, self._take(), byref(ticket))
        self._keep = []
        if status != 0:
            raise replay_error(rt, status, h.ptr)
        rt._last_step = ticket.step
        return Ticket(rt, ticket, *self._key)

    def stage(self):
        """Stages this batch as the first step of a pipelined run
        (cgr_replay_stage; the runtime's replay_mode is "pipelined"): its
        inputs load now, and Runtime.replay_ahead(next) launches it while
        staging the step after it. Returns nothing: the step's Ticket
        comes from the replay_ahead that launches it. The batch is
        consumed whether this succeeds or not.

        Raises InvalidStateError in another mode or when a step is staged
        already (replay_ahead launches it), BatchTooLargeError over the
        largest bucket (a graph must hold every pipelined step), and what
        replay() raises for a slot never given."""
        rt = self.runtime
        h = rt._live()
        status = _lib.replay_stage(h.ptr, self._take())
        self._keep = []
        check(status, h.ptr)
        rt._staged_key = self._key

    def discard(self):
        """Closes the batch without a replay. After Runtime.close() the
        batch went with the runtime: nothing is left to discard (and its
        memory may be freed already)."""
        ptr, self._ptr = self._ptr, None
        self._keep = []
        if ptr is not None and not self.runtime.closed:
            _lib.batch_discard(ptr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()
        return False
