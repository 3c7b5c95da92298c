"""Typed views of cgr memory, shared without a copy.

An `Array` is a pointer, a shape and a dtype, plus a reference to what owns
the memory (a runtime's handle, or an allocation), so the memory outlives
every view of it. It speaks each protocol its memory allows:

- `__cuda_array_interface__` (v3) for device memory on CUDA: torch.as_tensor,
  CuPy, Numba;
- `__dlpack__` / `__dlpack_device__` on both backends: torch.from_dlpack on
  CUDA (every dtype, bfloat16 too), numpy.from_dlpack on the host backend;
- `__array_interface__` where the CPU may read the memory: every buffer of
  the host backend (its "device" memory is host memory) and pinned memory.
"""

import ctypes
from ctypes import POINTER, Structure, c_int32, c_int64, c_uint8, c_uint16, c_uint64, c_void_p

import numpy as np


# ---- dtypes -------------------------------------------------------------------


class DType:
    """An element type cgr's slots and arrays may hold."""

    __slots__ = ("name", "itemsize", "kind", "numpy")

    def __init__(self, name, itemsize, kind, numpy_dtype):
        self.name = name
        self.itemsize = itemsize
        self.kind = kind  # "i", "u", "f" or "b" (bfloat16)
        self.numpy = numpy_dtype  # the numpy dtype of a CPU view

    def __repr__(self):
        return f"cgr.dtype({self.name!r})"

    def __eq__(self, other):
        return isinstance(other, DType) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


_DTYPES = {}
for _name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
              "uint64", "float16", "float32", "float64"):
    _np = np.dtype(_name)
    _DTYPES[_name] = DType(_name, _np.itemsize, _np.kind, _np)
# numpy has no bfloat16: a CPU view shows its bits as uint16.
_DTYPES["bfloat16"] = DType("bfloat16", 2, "b", np.dtype("uint16"))
_ALIASES = {"int": "int64", "float": "float64", "half": "float16",
            "long": "int64", "short": "int16", "double": "float64"}


def dtype(value):
    """The DType of a name ("int32"), a numpy dtype or type, or a torch
    dtype (torch.int32). Raises TypeError for anything else."""
    if isinstance(value, DType):
        return value
    name = None
    if isinstance(value, str):
        name = value
    elif type(value).__module__ == "torch" and type(value).__name__ == "dtype":
        name = str(value).split(".", 1)[1]
    else:
        try:
            name = np.dtype(value).name
        except TypeError:
            name = None
    name = _ALIASES.get(name, name)
    if name not in _DTYPES:
        raise TypeError(
            f"cgr: {value!r} is not a dtype cgr holds (one of "
            f"{', '.join(sorted(_DTYPES))})"
        )
    return _DTYPES[name]


# ---- DLPack -------------------------------------------------------------------

_DL_CPU, _DL_CUDA = 1, 2
_DL_CODES = {"i": 0, "u": 1, "f": 2, "b": 4}


class _DLDevice(Structure):
    _fields_ = [("device_type", c_int32), ("device_id", c_int32)]


class _DLDataType(Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class _DLTensor(Structure):
    _fields_ = [
        ("data", c_void_p),
        ("device", _DLDevice),
        ("ndim", c_int32),
        ("dtype", _DLDataType),
        ("shape", POINTER(c_int64)),
        ("strides", POINTER(c_int64)),
        ("byte_offset", c_uint64),
    ]


class _DLManagedTensor(Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, POINTER(_DLManagedTensor))
_DLManagedTensor._fields_ = [
    ("dl_tensor", _DLTensor),
    ("manager_ctx", c_void_p),
    ("deleter", _DELETER),
]

# Each exported tensor's struct, shape and owner, until its consumer (or the
# unconsumed capsule's destructor) calls the deleter.
_exported = {}


@_DELETER
def _dl_deleter(managed):
    _exported.pop(ctypes.addressof(managed.contents), None)


_CAPSULE_DESTRUCTOR = ctypes.CFUNCTYPE(None, c_void_p)
_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [c_void_p, ctypes.c_char_p, _CAPSULE_DESTRUCTOR]
_capsule_is_valid = ctypes.pythonapi.PyCapsule_IsValid
_capsule_is_valid.restype = ctypes.c_int
_capsule_is_valid.argtypes = [c_void_p, ctypes.c_char_p]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = c_void_p
_capsule_pointer.argtypes = [c_void_p, ctypes.c_char_p]
_DLTENSOR = b"dltensor"


@_CAPSULE_DESTRUCTOR
def _capsule_destructor(capsule):
    # A consumer renames the capsule "used_dltensor" and owns the deleter;
    # a capsule still named "dltensor" was never consumed.
    if _capsule_is_valid(capsule, _DLTENSOR):
        _exported.pop(_capsule_pointer(capsule, _DLTENSOR), None)


# ---- Array --------------------------------------------------------------------


class Array:
    """A view of `shape` elements of `dtype` at address `ptr`.

    `memory` is "device" (cgr_device_alloc, slot buffers, scratch) or
    "pinned"; `backend` is "cuda" or "host"; `device` the CUDA ordinal.
    The view keeps `owner` alive: memory is never freed under a view."""

    __slots__ = ("ptr", "shape", "dtype", "memory", "backend", "device",
                 "_owner", "__weakref__")

    def __init__(self, owner, ptr, shape, dtype_, memory, backend, device=0):
        self._owner = owner
        self.ptr = int(ptr)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = dtype(dtype_)
        self.memory = memory
        self.backend = backend
        self.device = device

    # ---- facts ----

    @property
    def size(self):
        n = 1
        for dim in self.shape:
            n *= dim
        return n

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    @property
    def cpu_readable(self):
        """True when the CPU may read the memory in place: the host backend,
        or pinned memory."""
        return self.backend == "host" or self.memory == "pinned"

    def __len__(self):
        return self.shape[0] if self.shape else 0

    def __repr__(self):
        return (f"cgr.Array(shape={self.shape}, dtype={self.dtype.name}, "
                f"{self.memory} memory on {self.backend}, ptr=0x{self.ptr:x})")

    def __getitem__(self, key):
        """Rows `key` (a slice with step 1) of the first dimension, as a view."""
        if not isinstance(key, slice) or not self.shape:
            raise TypeError("cgr.Array: only a slice of the first dimension")
        start, stop, step = key.indices(self.shape[0])
        if step != 1:
            raise ValueError("cgr.Array: a slice with step 1 only")
        stop = max(stop, start)
        row = self.nbytes // self.shape[0] if self.shape[0] else 0
        return Array(self._owner, self.ptr + start * row,
                     (stop - start,) + self.shape[1:], self.dtype, self.memory,
                     self.backend, self.device)

    # ---- protocols ----

    @property
    def __array_interface__(self):
        if not self.cpu_readable:
            raise AttributeError(
                "cgr.Array: CUDA device memory is not readable by the CPU: "
                "use .numpy() for a copy, or torch/CuPy for a view"
            )
        return {
            "shape": self.shape,
            "typestr": self.dtype.numpy.str,
            "data": (self.ptr, False),
            "version": 3,
        }

    @property
    def __cuda_array_interface__(self):
        if self.backend != "cuda" or self.memory != "device":
            raise AttributeError(
                "cgr.Array: __cuda_array_interface__ describes CUDA device "
                f"memory; this is {self.memory} memory on {self.backend}"
            )
        if self.dtype.kind == "b":
            raise AttributeError(
                "cgr.Array: the CUDA array interface has no bfloat16: use "
                "torch.from_dlpack"
            )
        return {
            "shape": self.shape,
            "typestr": self.dtype.numpy.str,
            "data": (self.ptr, False),
            "version": 3,
            "strides": None,
            "stream": None,  # ordering is the caller's: wait for the ticket
        }

    def __dlpack_device__(self):
        if self.backend == "cuda" and self.memory == "device":
            return (_DL_CUDA, self.device)
        return (_DL_CPU, 0)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None,
                   copy=None):
        """A DLPack capsule (the unversioned "dltensor"). `stream` is
        ignored: cgr orders nothing here, wait for the step's ticket (or its
        event) first. No copy is ever made."""
        if copy:
            raise BufferError("cgr.Array: views only (copy=True refused)")
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError(f"cgr.Array: lives on {self.__dlpack_device__()}")
        ndim = len(self.shape)
        shape = (c_int64 * max(ndim, 1))(*self.shape)
        managed = _DLManagedTensor()
        tensor = managed.dl_tensor
        tensor.data = self.ptr
        tensor.device = _DLDevice(*self.__dlpack_device__())
        tensor.ndim = ndim
        tensor.dtype = _DLDataType(_DL_CODES[self.dtype.kind],
                                   self.dtype.itemsize * 8, 1)
        tensor.shape = shape
        tensor.strides = None  # compact, row-major
        tensor.byte_offset = 0
        managed.deleter = _dl_deleter
        address = ctypes.addressof(managed)
        _exported[address] = (managed, shape, self._owner)
        return _capsule_new(address, _DLTENSOR, _capsule_destructor)

    # ---- copies ----

    def numpy(self):
        """A numpy array: a view where the CPU may read the memory (host
        backend, pinned memory), otherwise a copy (cgr_memcpy)."""
        if self.cpu_readable:
            return np.asarray(self)
        out = np.empty(self.shape, dtype=self.dtype.numpy)
        if self.nbytes:
            self._owner.memcpy(out.ctypes.data, self.ptr, self.nbytes)
        return out

    def copy_from(self, source):
        """Copies `source` (an Array or a C-contiguous numpy array of the
        same byte count) into this memory, synchronously (cgr_memcpy)."""
        if isinstance(source, Array):
            src, nbytes = source.ptr, source.nbytes
        else:
            source = np.ascontiguousarray(source)
            src, nbytes = source.ctypes.data, source.nbytes
        if nbytes != self.nbytes:
            raise ValueError(
                f"cgr.Array.copy_from: {nbytes} bytes into {self.nbytes}"
            )
        if nbytes:
            self._owner.memcpy(self.ptr, src, nbytes)
        return self
