"""The C library and its types, as ctypes sees them.

Everything here mirrors include/cgr/cgr.h (and cgr_cuda.h): the structs field
for field, the enums by value, and one prototype per function. The binding is
ctypes, not cffi or a C extension: libcgr exports a plain C ABI, ctypes ships
with every Python, so the package needs no compiler of its own and `pip
install` only builds the library itself. What ctypes costs per call (about a
microsecond) is why a step is one call (cgr_replay_inputs).

Which library: $CGR_LIBRARY when set (the tests point it at a build tree),
else the libcgr.so installed beside this file by `pip install`.
"""

import ctypes
import os
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_double,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint,
    c_uint32,
    c_uint64,
    c_void_p,
)


def _library_path():
    path = os.environ.get("CGR_LIBRARY")
    if path:
        return path
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "libcgr.so")


def _load():
    path = _library_path()
    if not os.path.exists(path):
        raise ImportError(
            f"cgr: the C library is not at {path}: install the package with "
            "`pip install .` from the repository, or set CGR_LIBRARY to a "
            "built libcgr.so"
        )
    return ctypes.CDLL(path)


lib = _load()

# ---- enums (values are ABI) -------------------------------------------------

BACKENDS = {"auto": 0, "cuda": 1, "host": 2}
PRIORITIES = {"normal": 0, "high": 1}
REPLAY_MODES = {
    "naive": 0,
    "fused": 1,
    "double_buffered": 2,
    "in_graph": 3,
    "eager": 4,
    "pipelined": 5,
}
SLOT_KINDS = {"rows": 0, "prefix": 1, "constant": 2, "output": 3}
SLOT_SCALES = {"request": 0, "token": 1}
SOURCES = {"host": 0, "pinned": 1, "device": 2}
INPUT_DATA, INPUT_UNCHANGED, INPUT_GATHER, INPUT_FEEDBACK = 0, 1, 2, 3
STREAM_MAIN, STREAM_SIDE = 0, 1
CONFIG_VERSION = 4
MAX_BUCKET = 4096
BATCH_MAX_EVENTS = 8

# ---- structs ----------------------------------------------------------------

log_fn = CFUNCTYPE(None, c_void_p, c_char_p)
constant_fill_fn = CFUNCTYPE(None, c_void_p, c_uint32, c_void_p, c_uint64)
constant_key_fill_fn = CFUNCTYPE(None, c_void_p, c_void_p, c_void_p, c_uint64)
step_fn = CFUNCTYPE(c_int, c_void_p, c_void_p)
host_fn = CFUNCTYPE(None, c_void_p)


class Config(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("version", c_uint32),
        ("backend", c_int),
        ("device", c_int),
        ("main_stream_priority", c_int),
        ("side_stream_priority", c_int),
        ("nvtx", c_int),
        ("validate", c_int),
        ("buckets", POINTER(c_uint32)),
        ("bucket_count", c_size_t),
        ("allow_eager", c_int),
        ("scratch_bytes", c_uint64),
        ("lazy_capture", c_int),
        ("log", log_fn),
        ("log_user", c_void_p),
        ("replay_mode", c_int),
        ("tokens_per_request", POINTER(c_uint32)),
        ("tokens_per_request_count", c_size_t),
        ("variants", POINTER(c_char_p)),
        ("variant_count", c_size_t),
    ]


class DeviceInfo(Structure):
    _fields_ = [
        ("name", c_char * 256),
        ("ordinal", c_int),
        ("compute_major", c_int),
        ("compute_minor", c_int),
        ("multiprocessors", c_int),
        ("global_memory", c_uint64),
        ("driver_version", c_int),
        ("runtime_version", c_int),
        ("stream_priority_low", c_int),
        ("stream_priority_high", c_int),
    ]


class SlotDesc(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("kind", c_int),
        ("elem_size", c_uint32),
        ("row_elems", c_uint64),
        ("pad_value", c_uint64),
        ("extra_elems", c_uint64),
        ("fill", constant_fill_fn),
        ("fill_user", c_void_p),
        ("valid_min", c_int64),
        ("valid_max", c_int64),
        ("elem_unsigned", c_int),
        ("scale", c_int),
        ("fill_key", constant_key_fill_fn),
    ]


class Ticket(Structure):
    _fields_ = [
        ("step", c_uint64),
        ("batch_size", c_uint32),
        ("padded_batch", c_uint32),
        ("set", c_int),
    ]


class ReplayStats(Structure):
    _fields_ = [
        ("steps", c_uint64),
        ("eager_steps", c_uint64),
        ("ops_copied", c_uint64),
        ("bytes_copied", c_uint64),
        ("ops_skipped", c_uint64),
        ("host_us_total", c_double),
        ("host_us_max", c_double),
    ]


class BucketStats(Structure):
    _fields_ = [
        ("padded_batch", c_uint32),
        ("captured", c_int),
        ("nodes", c_uint64 * 2),
        ("capture_ms", c_double * 2),
        ("instantiate_ms", c_double * 2),
        ("scratch_bytes", c_uint64),
    ]


class Key(Structure):
    _fields_ = [
        ("padded_batch", c_uint32),
        ("tokens_per_request", c_uint32),
        ("variant", c_uint32),
    ]


class KeyStats(Structure):
    _fields_ = [
        ("key", Key),
        ("captured", c_int),
        ("nodes", c_uint64 * 2),
        ("capture_ms", c_double * 2),
        ("instantiate_ms", c_double * 2),
        ("scratch_bytes", c_uint64),
    ]


class CaptureStats(Structure):
    _fields_ = [
        (name, c_uint64)
        for name in (
            "buckets",
            "buckets_captured",
            "graphs",
            "arena_bytes",
            "arena_peak",
            "slot_bytes",
            "eager_runs",
            "keys",
            "keys_captured",
        )
    ]


COUNTER_NAMES = (
    "stream_creates",
    "event_creates",
    "event_records",
    "event_waits",
    "device_allocs",
    "pinned_allocs",
    "copies",
    "memsets",
    "kernel_launches",
    "host_funcs",
    "captures",
    "graph_instantiates",
    "graph_launches",
    "synchronizations",
)


class Counters(Structure):
    _fields_ = [(name, c_uint64) for name in COUNTER_NAMES]


class Input(Structure):
    _fields_ = [
        ("slot", c_int32),
        ("kind", c_int),
        ("source", c_int),
        ("data", c_void_p),
        ("bytes", c_size_t),
        ("rows", POINTER(c_int32)),
    ]


# ---- prototypes ----------------------------------------------------------------

_rt = c_void_p  # cgr_runtime *
_status = c_int


def _proto(name, restype, *argtypes):
    try:
        fn = getattr(lib, name)
    except AttributeError:
        raise ImportError(
            f"cgr: {_library_path()} lacks {name}: rebuild it"
        ) from None
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


version_string = _proto("cgr_version_string", c_char_p)
version_number = _proto("cgr_version_number", c_uint)
status_name = _proto("cgr_status_name", c_char_p, c_int)
status_str = _proto("cgr_status_str", c_char_p, c_int)
config_init = _proto("cgr_config_init", _status, POINTER(Config))
runtime_create = _proto(
    "cgr_runtime_create", _status, POINTER(Config), POINTER(c_void_p)
)
runtime_destroy = _proto("cgr_runtime_destroy", None, _rt)
backend = _proto("cgr_backend", c_int, _rt)
backend_name = _proto("cgr_backend_name", c_char_p, _rt)
backend_reason = _proto("cgr_backend_reason", c_char_p, _rt)
last_error = _proto("cgr_last_error", c_char_p, _rt)
last_cuda_error = _proto("cgr_last_cuda_error", c_int, _rt)
device_info_get = _proto("cgr_device_info_get", _status, _rt, POINTER(DeviceInfo))
synchronize = _proto("cgr_synchronize", _status, _rt)
device_alloc = _proto(
    "cgr_device_alloc", _status, _rt, c_size_t, POINTER(c_void_p)
)
device_free = _proto("cgr_device_free", _status, _rt, c_void_p)
pinned_alloc = _proto(
    "cgr_pinned_alloc", _status, _rt, c_size_t, POINTER(c_void_p)
)
pinned_free = _proto("cgr_pinned_free", _status, _rt, c_void_p)
memcpy = _proto("cgr_memcpy", _status, _rt, c_void_p, c_void_p, c_size_t)
buckets = _proto(
    "cgr_buckets", _status, _rt, POINTER(POINTER(c_uint32)), POINTER(c_size_t)
)
bucket_for_batch = _proto(
    "cgr_bucket_for_batch", _status, _rt, c_uint32, POINTER(c_uint32)
)
slot_desc_init = _proto(
    "cgr_slot_desc_init", _status, POINTER(SlotDesc), c_char_p, c_int, c_uint32,
    c_uint64,
)
slot_declare = _proto(
    "cgr_slot_declare", _status, _rt, POINTER(SlotDesc), POINTER(c_int32)
)
slot_feed = _proto("cgr_slot_feed", _status, _rt, c_int32, c_int32)
slot_find = _proto("cgr_slot_find", _status, _rt, c_char_p, POINTER(c_int32))
slot_address = _proto(
    "cgr_slot_address", _status, _rt, c_int32, c_int, c_uint32, POINTER(c_void_p)
)
slot_address_key = _proto(
    "cgr_slot_address_key", _status, _rt, c_int32, c_int, POINTER(Key),
    POINTER(c_void_p),
)
step_padded_batch = _proto("cgr_step_padded_batch", c_uint32, c_void_p)
step_buffer_set = _proto("cgr_step_buffer_set", c_int, c_void_p)
step_tokens_per_request = _proto("cgr_step_tokens_per_request", c_uint32,
                                 c_void_p)
step_variant = _proto("cgr_step_variant", c_uint32, c_void_p)
step_is_capturing = _proto("cgr_step_is_capturing", c_int, c_void_p)
step_slot = _proto("cgr_step_slot", c_void_p, c_void_p, c_int32)
step_scratch = _proto(
    "cgr_step_scratch", _status, c_void_p, c_size_t, c_size_t, POINTER(c_void_p)
)
step_memcpy = _proto(
    "cgr_step_memcpy", _status, c_void_p, c_void_p, c_void_p, c_size_t
)
step_memset = _proto(
    "cgr_step_memset", _status, c_void_p, c_void_p, c_int, c_size_t
)
step_host_func = _proto("cgr_step_host_func", _status, c_void_p, host_fn, c_void_p)
capture = _proto("cgr_capture", _status, _rt, step_fn, c_void_p)
capture_bucket = _proto("cgr_capture_bucket", _status, _rt, c_uint32)
bucket_stats_get = _proto(
    "cgr_bucket_stats_get", _status, _rt, c_uint32, POINTER(BucketStats)
)
capture_key = _proto("cgr_capture_key", _status, _rt, POINTER(Key))
key_stats_get = _proto(
    "cgr_key_stats_get", _status, _rt, POINTER(Key), POINTER(KeyStats)
)
tokens_per_request = _proto(
    "cgr_tokens_per_request", _status, _rt, POINTER(POINTER(c_uint32)),
    POINTER(c_size_t),
)
variant_count = _proto("cgr_variant_count", c_uint32, _rt)
variant_name = _proto("cgr_variant_name", c_char_p, _rt, c_uint32)
capture_stats_get = _proto(
    "cgr_capture_stats_get", _status, _rt, POINTER(CaptureStats)
)
graph_dump = _proto("cgr_graph_dump", _status, _rt, c_uint32, c_int, c_char_p)
graph_dump_key = _proto(
    "cgr_graph_dump_key", _status, _rt, POINTER(Key), c_int, c_char_p
)
batch_begin = _proto(
    "cgr_batch_begin", _status, _rt, c_uint32, POINTER(c_void_p)
)
batch_begin_key = _proto(
    "cgr_batch_begin_key", _status, _rt, c_uint32, c_uint32, c_uint32,
    POINTER(c_void_p),
)
batch_input = _proto(
    "cgr_batch_input", _status, c_void_p, c_int32, c_int, c_void_p, c_size_t
)
batch_unchanged = _proto("cgr_batch_unchanged", _status, c_void_p, c_int32)
batch_gather = _proto(
    "cgr_batch_gather", _status, c_void_p, c_int32, c_void_p, c_void_p
)
batch_feedback = _proto(
    "cgr_batch_feedback", _status, c_void_p, c_int32, c_void_p, c_void_p, c_size_t
)
batch_discard = _proto("cgr_batch_discard", None, c_void_p)
batch_wait_event = _proto("cgr_batch_wait_event", _status, c_void_p, c_void_p)
replay = _proto("cgr_replay", _status, _rt, c_void_p, POINTER(Ticket))
replay_stage = _proto("cgr_replay_stage", _status, _rt, c_void_p)
replay_ahead = _proto(
    "cgr_replay_ahead", _status, _rt, c_void_p, POINTER(Ticket)
)
replay_staged = _proto("cgr_replay_staged", c_int, _rt)
replay_inputs = _proto(
    "cgr_replay_inputs", _status, _rt, c_uint32, POINTER(Input), c_size_t,
    POINTER(c_void_p), c_size_t, c_void_p, POINTER(Ticket),
)
replay_inputs_key = _proto(
    "cgr_replay_inputs_key", _status, _rt, c_uint32, c_uint32, c_uint32,
    POINTER(Input), c_size_t, POINTER(c_void_p), c_size_t, c_void_p,
    POINTER(Ticket),
)
ticket_wait = _proto("cgr_ticket_wait", _status, _rt, POINTER(Ticket))
ticket_query = _proto("cgr_ticket_query", _status, _rt, POINTER(Ticket))
output = _proto(
    "cgr_output", _status, _rt, POINTER(Ticket), c_int32, POINTER(c_void_p)
)
set_replay_mode = _proto("cgr_set_replay_mode", _status, _rt, c_int)
replay_stats_get = _proto(
    "cgr_replay_stats_get", _status, _rt, c_int, POINTER(ReplayStats)
)
event_create = _proto("cgr_event_create", _status, _rt, POINTER(c_void_p))
event_destroy = _proto("cgr_event_destroy", None, c_void_p)
event_record_host = _proto("cgr_event_record_host", _status, c_void_p)
event_signal_host = _proto("cgr_event_signal_host", _status, c_void_p)
event_query = _proto("cgr_event_query", _status, c_void_p)
event_synchronize = _proto("cgr_event_synchronize", _status, c_void_p)
ticket_record_event = _proto(
    "cgr_ticket_record_event", _status, _rt, POINTER(Ticket), c_void_p
)
counters_get = _proto("cgr_counters_get", _status, _rt, POINTER(Counters))
counters_reset = _proto("cgr_counters_reset", _status, _rt)

# CUDA interop (cgr_cuda.h): exported by every build; the host backend and
# a build without CUDA answer CGR_E_UNSUPPORTED with a message. Streams,
# events and graphs travel as ints.
cuda_stream = _proto(
    "cgr_cuda_stream", _status, _rt, c_int, POINTER(c_void_p)
)
cuda_device = _proto("cgr_cuda_device", _status, _rt, POINTER(c_int))
cuda_step_stream = _proto(
    "cgr_cuda_step_stream", _status, c_void_p, POINTER(c_void_p)
)
cuda_event_record = _proto(
    "cgr_cuda_event_record", _status, c_void_p, c_void_p
)
cuda_event_wait = _proto(
    "cgr_cuda_event_wait", _status, c_void_p, c_void_p
)
cuda_step_graph = _proto(
    "cgr_cuda_step_graph", _status, c_void_p, c_void_p
)


def check_abi():
    """Refuses a library whose cgr_config is not the one described above."""
    config = Config()
    status = config_init(ctypes.byref(config))
    if status != 0:
        raise ImportError(f"cgr: cgr_config_init failed ({status})")
    if config.size != ctypes.sizeof(Config) or config.version != CONFIG_VERSION:
        raise ImportError(
            f"cgr: {_library_path()} has cgr_config of {config.size} bytes, "
            f"version {config.version}; this binding expects "
            f"{ctypes.sizeof(Config)} bytes, version {CONFIG_VERSION}: the "
            "package and the library come from different versions"
        )


check_abi()
