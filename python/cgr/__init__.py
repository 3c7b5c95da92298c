"""cgr: run each decode step of an LLM as a CUDA graph, from Python.

A thin binding of libcgr's public C API (cgr.h) through ctypes: a Runtime
with slots, a step captured per bucket and buffer set, one C call per step
(Runtime.step), tickets, outputs as zero-copy Arrays (numpy, DLPack, CUDA
array interface), events to order cgr with PyTorch's streams, and
cgr.torch to capture a PyTorch-written step. docs/python.md has the guide.
"""

from . import _lib
from ._arrays import Array, DType, dtype
from ._errors import *  # noqa: F401,F403 - one class per status
from ._errors import BY_STATUS as _BY_STATUS
from ._errors import Error
from ._objects import UNCHANGED, Event, Feedback, Gather, Slot, Ticket
from ._batch import Batch
from ._runtime import PreparedStep, Runtime, StepContext

__version__ = _lib.version_string().decode()
"""The library's version: the package's (pyproject reads it from cgr.h)."""

REPLAY_MODES = tuple(_lib.REPLAY_MODES)
"""Every replay mode's name, in the enum's order. Runtime.step runs all
but "pipelined", whose steps run through Batch.stage and
Runtime.replay_ahead."""


def status_name(status):
    """cgr_status_name: "CGR_E_INVALID_ARGUMENT" for -1."""
    return _lib.status_name(status).decode()


__all__ = [
    "Array", "Batch", "DType", "Error", "Event", "Feedback", "Gather",
    "PreparedStep",
    "REPLAY_MODES", "Runtime", "Slot", "StepContext", "Ticket", "UNCHANGED",
    "dtype", "status_name",
] + [cls.__name__ for cls in _BY_STATUS.values()]
