"""One exception class per cgr_status, carrying cgr_last_error's message."""

from . import _lib


class Error(Exception):
    """A cgr call failed. `status` is the cgr_status value, `status_name`
    its name ("CGR_E_INVALID_ARGUMENT"), `message` what cgr_last_error said
    (it names the function, the argument or the CUDA call), and
    `cuda_error` the raw cudaError_t of a failed CUDA call (0 otherwise)."""

    status = None

    def __init__(self, message, status=None, cuda_error=0):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.message = message
        self.cuda_error = cuda_error

    @property
    def status_name(self):
        return _lib.status_name(self.status).decode()


def _define(name, value, *bases, doc):
    cls = type(name, (Error,) + bases, {"status": value, "__doc__": doc})
    cls.__module__ = "cgr"
    return cls


InvalidArgumentError = _define(
    "InvalidArgumentError", -1, ValueError, doc="CGR_E_INVALID_ARGUMENT"
)
InvalidStateError = _define(
    "InvalidStateError", -2, RuntimeError, doc="CGR_E_INVALID_STATE"
)
OutOfMemoryError = _define(
    "OutOfMemoryError", -3, MemoryError, doc="CGR_E_OUT_OF_MEMORY"
)
DeviceOutOfMemoryError = _define(
    "DeviceOutOfMemoryError", -4, MemoryError, doc="CGR_E_DEVICE_OUT_OF_MEMORY"
)
NoDeviceError = _define("NoDeviceError", -5, RuntimeError, doc="CGR_E_NO_DEVICE")
CudaError = _define("CudaError", -6, RuntimeError, doc="CGR_E_CUDA")
CaptureError = _define("CaptureError", -7, RuntimeError, doc="CGR_E_CAPTURE")
UnsupportedError = _define(
    "UnsupportedError", -8, NotImplementedError, doc="CGR_E_UNSUPPORTED"
)
VersionError = _define("VersionError", -9, RuntimeError, doc="CGR_E_VERSION")
SystemCallError = _define("SystemCallError", -10, OSError, doc="CGR_E_SYSTEM")
BatchTooLargeError = _define(
    "BatchTooLargeError", -11, ValueError, doc="CGR_E_BATCH_TOO_LARGE"
)
BusyError = _define("BusyError", -12, RuntimeError, doc="CGR_E_BUSY")
DeadlineError = _define("DeadlineError", -13, TimeoutError, doc="CGR_E_TIMEOUT")
NotReadyError = _define("NotReadyError", -14, RuntimeError, doc="CGR_E_NOT_READY")
InternalError = _define("InternalError", -15, RuntimeError, doc="CGR_E_INTERNAL")
CancelledError = _define(
    "CancelledError", -16, RuntimeError, doc="CGR_E_CANCELLED"
)
DeviceLostError = _define(
    "DeviceLostError", -17, RuntimeError, doc="CGR_E_DEVICE_LOST"
)

BY_STATUS = {
    cls.status: cls
    for cls in (
        InvalidArgumentError,
        InvalidStateError,
        OutOfMemoryError,
        DeviceOutOfMemoryError,
        NoDeviceError,
        CudaError,
        CaptureError,
        UnsupportedError,
        VersionError,
        SystemCallError,
        BatchTooLargeError,
        BusyError,
        DeadlineError,
        NotReadyError,
        InternalError,
        CancelledError,
        DeviceLostError,
    )
}

__all__ = ["Error"] + [cls.__name__ for cls in BY_STATUS.values()]


def error_for(status, handle):
    """The exception for a failed call on runtime `handle` (a c_void_p, or
    None for a failed create): its class by status, cgr_last_error's text."""
    message = (_lib.last_error(handle) or b"").decode(errors="replace")
    cuda = _lib.last_cuda_error(handle)
    if not message:
        message = _lib.status_str(status).decode()
    cls = BY_STATUS.get(status)
    if cls is None:
        return Error(f"{message} (status {status})", status, cuda)
    return cls(message, status, cuda)


def check(status, handle):
    if status != 0:
        raise error_for(status, handle)
