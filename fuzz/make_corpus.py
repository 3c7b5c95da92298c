#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus: fuzz/corpus/<target>/<seed>.

Each seed is a short, valid-looking call sequence in the byte format its
decoder reads (fuzz/<target>.c): a starting point from which libFuzzer
reaches the deep paths (successful replays, captures, multi-launch plans)
in seconds rather than minutes. tests/fuzz_regressions.c replays every
file in fuzz/corpus/ on each test run, so the seeds are regression tests
too, as are crash inputs added next to them.

Run from anywhere: python3 fuzz/make_corpus.py. The output is
deterministic; rerun it after changing a decoder's format, and commit the
seeds with it.
"""

import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def u8(*values):
    return bytes(v & 0xFF for v in values)


def u16(value):
    return struct.pack("<H", value & 0xFFFF)


def u64(value):
    return struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF)


# ---- copy_plan ------------------------------------------------------------
# op % 16: 0-2 COPY, 3-5 FILL, 6-8 GATHER, 9-10 wild, 11 run of fills,
# 12 launch unfinished, 13-14 finish + clear, 15 finish + release.


def place(arena, offset):
    """An arena place: how (arena = how % 3, not the 'adjacent' mode)."""
    return u8(arena) + u16(offset)


def adjacent(delta):
    """Right at the previous destination's end, plus delta in [-3, 4]."""
    return u8(0xC0 | ((delta + 3) << 2))


def size_to_end():
    return u8(3)


def size_small(n):  # n < 64
    return u8(n << 2)


def size(n):  # n < 40000
    return u8(2) + u16(n)


def copy(dst, src, nbytes):
    return u8(0) + dst + src + nbytes


def fill(width, pattern, dst, nbytes):
    width_index = {1: 0, 2: 1, 4: 2, 8: 3}[width]
    return u8(3, width_index) + u64(pattern) + dst + nbytes


def gather(dst, src, index, row_bytes, rows, indices):
    """row_bytes < 65 (small mode), aligned index array."""
    assert len(indices) == rows and 0 < row_bytes <= 64
    body = u8(6, 2) + dst + src + index + u8(row_bytes - 1) + u8(rows)
    return body + b"".join(u16(i) for i in indices)


def wild_copy(dst_how, src_how, size_how, extra=b""):
    return u8(9, 0) + dst_how + src_how + u8(0) + size_how + extra


def gather_misaligned_index(dst, src, index, row_bytes, indices):
    """how 3: the index array at its offset as given (odd here)."""
    body = u8(6, 3) + dst + src + index + u8(row_bytes - 1) + u8(len(indices))
    return body + b"".join(u16(i) for i in indices)


def wild_gather_index_near_top(gap, rows, row_bytes):
    """A GATHER from arena 0 to arena 1 whose index array starts `gap`
    bytes below the top of the address space; rows and row_bytes < 2^16."""
    return (u8(9, 2) + u8(3) + u8(7) + u8(1) + u16(gap) + u8(4) + u16(0)
            + u8(4) + u16(rows) + u8(4) + u16(row_bytes))


FINISH, RELEASE, LAUNCH_UNFINISHED = u8(13), u8(15), u8(12)


def copy_plan_seeds():
    return {
        "copy_fill_gather": copy(place(0, 0), place(1, 100), size(300))
        + fill(4, 0xA1B2C3D4, place(2, 0), size_small(32))
        + gather(place(0, 20000), place(1, 30000), place(2, 1000), 16, 8,
                 [7, 0, 3, 3, 1, 6, 2, 5])
        + FINISH,
        "overlap_then_valid": copy(place(0, 0), place(1, 0), size(1000))
        + copy(place(0, 500), place(1, 2000), size(1000))
        + FINISH
        + copy(place(0, 0), place(1, 0), size(1000))
        + copy(adjacent(0), place(2, 0), size(1000))
        + FINISH,
        "reads_a_destination": fill(1, 0x5A, place(1, 0), size(512))
        + copy(place(0, 0), place(1, 256), size(128))
        + FINISH,
        "multi_launch_run": u8(11) + place(2, 0) + u16(899)
        + u64(0x0123456789ABCDEF) + FINISH,
        "tiles_to_the_end": copy(place(0, 0), place(1, 0), size_to_end())
        + fill(8, 0x1122334455667788, place(2, 3), size_to_end())
        + RELEASE,
        "wild_sizes": wild_copy(u8(3), u8(7), u8(0), u16(0))
        + wild_copy(u8(3), u8(7), u8(1))
        + FINISH,
        # Crashes found by fuzzing (fuzz/README.md), fixed in
        # kernels/copy_plan.c: a misaligned int32 index array was accepted
        # (misaligned loads in the executors), and so was one whose end
        # wraps around the address space.
        "regression_misaligned_gather_index": gather_misaligned_index(
            place(0, 0), place(1, 0), place(2, 1001), 4, [0, 1, 2, 3])
        + FINISH,
        "regression_wrapping_gather_index": wild_gather_index_near_top(
            15, 8, 1) + FINISH,
        "unfinished_launch": copy(place(0, 64), place(1, 64), size(64))
        + LAUNCH_UNFINISHED
        + FINISH
        + LAUNCH_UNFINISHED,
    }


# ---- slots_buckets ----------------------------------------------------------
# config: how (size index & 7, version index >> 3), list how (% 8: 0 the
# default list, >= 3 a list), [list], field byte (bit 0 lazy, bit 1
# validate, bit 2 allow_eager, >= 224 one field out of range), then the
# bucket checks' u16 and byte, then operations: < 160 declare, < 230 feed,
# else capture.

ROWS, PREFIX, CONSTANT, OUTPUT = range(4)
ELEM_INDEX = {1: 0, 2: 1, 4: 2, 8: 3}
POOL = ["input_ids", "positions", "page_table", "cu_seqlens", "logits", "x"]


def bucket_list(values):
    """Ascending increments (how 0: previous + 1 + u8 % 16; how 130:
    previous + 1 + u16 % 512); other hows are spelled out raw."""
    out = u8(len(values) - 1)
    previous = 0
    for value in values:
        step = value - previous - 1
        if 0 <= step < 16:
            out += u8(0, step)
        else:
            assert 0 <= step < 512
            out += u8(130) + u16(step)
        previous = value
    return out


def config(size_index=0, version_index=0, buckets=None, fields=0b100,
           raw_list=None, largest=256):
    """largest: the largest bucket the runtime ends up with (the default
    list's 256 unless the list is read), which sizes a check's read."""
    out = u8(size_index | version_index << 3)
    if raw_list is not None:
        out += u8(3) + raw_list
    elif buckets is None:
        out += u8(0)
    else:
        out += u8(3) + bucket_list(buckets)
    out += u8(fields)
    if fields >= 224:
        return out  # create fails: nothing more is read
    return out + u16(77) + (u8(5) if largest + 2 <= 256 else u16(5))


def name_pool(index):
    """POOL[index]."""
    return u8(7 + 12 * index)


def name_bytes(text):
    """Any bytes but NUL: the decoder reads 1 + byte % 255."""
    return u8(5, len(text)) + bytes(c - 1 for c in text)


def count_small(n):  # 1..16
    return u8(2 | (n - 1) << 3)


def declare(kind, elem, name, count=count_small(1), pad=0, extra=None,
            fill=False, valid=(0, 0), force_one_row_elem=True):
    out = u8(0) + u8(kind | ELEM_INDEX[elem] << 4) + name + count
    if kind == PREFIX:
        out += u8(1 if force_one_row_elem else 0)
    out += u64(pad) + u8(1 if fill else 0)
    if kind == CONSTANT:
        out += extra if extra is not None else u8(0)
    return out + u64(valid[0]) + u64(valid[1])


def feed(output, inp):
    return u8(200, output + 1, inp + 1)


CAPTURE = u8(255)


def slots_buckets_seeds():
    model = (declare(ROWS, 4, name_pool(0))
             + declare(ROWS, 4, name_pool(1), pad=7)
             + declare(ROWS, 4, name_pool(2), count=count_small(4),
                       pad=0xFFFFFFFF, valid=(0, 999))
             + declare(PREFIX, 4, name_pool(3))
             + declare(CONSTANT, 4, name_bytes(b"cu_seqlens_q"),
                       extra=count_small(1))
             + declare(CONSTANT, 2, name_bytes(b"bias"), fill=True,
                       extra=u8(1))
             + declare(OUTPUT, 4, name_pool(4)))
    return {
        "default_model_capture": config() + model + feed(6, 0)
        + feed(6, 0) + CAPTURE,  # the second feed: input already fed
        "custom_list_lazy": config(buckets=[1, 3, 7, 64], fields=0b101,
                                   largest=64)
        + model + feed(6, 0) + CAPTURE + declare(ROWS, 1, name_pool(5)),
        "large_buckets": config(buckets=[1, 4, 300, 811], largest=811)
        + declare(ROWS, 8, name_pool(0), pad=0x0102030405060708)
        + declare(PREFIX, 2, name_pool(1)) + CAPTURE,
        "unsorted_list": config(raw_list=u8(3) + u8(0, 4) + u8(0, 1)
                                + u8(6) + u8(7)),
        "version_1_size": config(size_index=5, version_index=4,
                                 buckets=[2, 4])
        + declare(ROWS, 4, name_pool(0)),
        "bad_declarations": config(buckets=[1, 2], largest=2)
        + declare(ROWS, 4, u8(1))              # an empty name
        + declare(ROWS, 4, u8(3))              # 64 characters
        + declare(ROWS, 4, name_pool(1))
        + declare(OUTPUT, 4, name_pool(1))     # a repeated name
        + declare(PREFIX, 4, name_pool(2), count=u8(7),
                  force_one_row_elem=False)    # row_elems 2
        + declare(ROWS, 4, name_pool(3), count=u8(5))  # overflows
        + feed(0, 0),                          # ROWS to ROWS
        "bad_config_field": config(fields=224 + 4),
    }


# ---- batch ------------------------------------------------------------------
# The first byte picks the replay mode (% 7: 5 pipelined, refused by
# cgr_replay; 6 no mode). Operations (% 16): 0-1 begin,
# 2-4 input, 5 unchanged, 6 gather, 7 feedback, 8-10 replay, 11 discard,
# 12 set mode, 14 an earlier or forged ticket, 13 and 15 give every slot
# not given yet correct host data.
# Slots (bt_pick_slot, how < 224): 0 positions, 1 page_table, 2 flags,
# 3 wide, 4 cu_seqlens_k, 5 input_ids.

NAIVE, FUSED, DOUBLE, IN_GRAPH, EAGER, PIPELINED = range(6)
# bt_pick_slot's order.
IDS, POS, PAGES, FLAGS, WIDE, CU_K = range(6)
REPLAY, DISCARD = u8(8), u8(11)
# Elements per row, in the order bt_complete gives slots (declaration
# order: positions, page_table, flags, wide, cu_seqlens_k, input_ids).
COMPLETE_ORDER = [(POS, 1), (PAGES, 3), (FLAGS, 2), (WIDE, 1), (CU_K, 1),
                  (IDS, 1)]


def complete(size, given=()):
    """Every slot not in `given` gets host data: one u16 per element
    (value 3 * i + 1, inside every slot's range after the modulo)."""
    out = u8(13)
    for slot, row_elems in COMPLETE_ORDER:
        if slot in given:
            continue
        elems = size + 1 if slot == CU_K else size * row_elems
        out += b"".join(u16(3 * i + 1) for i in range(elems))
    return out


def begin(size):
    if 1 <= size <= 8:
        return u8(0, size - 1)
    # how in [150, 230): 9 + how % 92.
    assert 9 <= size <= 54 or 67 <= size <= 100
    return u8(0, 175 + size if size <= 54 else 83 + size)


def set_mode(mode):
    return u8(12, mode)


def host_input(slot, values, shape=0):
    """HOST source; shape 0: the exact byte count, 202: one element short.
    One u16 per element given (in range after the decoder's modulo)."""
    return u8(2, slot, 0, shape) + b"".join(u16(v) for v in values)


def device_input(slot, values):
    return u8(2, slot, 6, 0) + b"".join(u16(v) for v in values)


def unchanged(slot):
    return u8(5, slot)


def gather_rows(slot, row_bytes, rows):
    """Device source of 64 rows, device indices."""
    return (u8(6, slot, 0)
            + bytes((i * 7) & 0xFF for i in range(64 * row_bytes))
            + bytes((3 * j + 1) % 64 for j in range(rows)))


def feedback(prev_picks, new_rows):
    """prev_picks: per row a pick byte (< 80: new, < 160: kept in place,
    < 250: moved to row pick % previous batch)."""
    out = u8(7, 0) + bytes(prev_picks)
    return out + b"".join(struct.pack("<i", v) for v in new_rows)


def old_ticket(index):
    """The index-th ticket of this input (of the last 8)."""
    return u8(14, 4 * index)


def batch_seeds():
    return {
        "double_buffered": u8(DOUBLE) + begin(5) + complete(5) + REPLAY
        + begin(2) + complete(2) + REPLAY,
        "unchanged": u8(FUSED) + begin(5) + complete(5) + REPLAY
        + begin(5) + complete(5) + REPLAY
        + begin(5) + unchanged(PAGES) + unchanged(FLAGS)
        + complete(5, (PAGES, FLAGS)) + REPLAY,
        "feedback": u8(DOUBLE) + begin(6)
        + feedback([0, 100, 101, 170, 200, 1], [11, 22])
        + complete(6, (IDS,)) + REPLAY,
        "gather": u8(NAIVE) + begin(4) + gather_rows(PAGES, 12, 4)
        + complete(4, (PAGES,)) + REPLAY,
        "eager": u8(DOUBLE) + begin(20) + complete(20) + REPLAY,
        "in_graph": u8(IN_GRAPH) + begin(8) + complete(8) + REPLAY
        + begin(8) + complete(8) + REPLAY
        + begin(8) + unchanged(WIDE) + complete(8, (WIDE,)) + REPLAY,
        "device_source": u8(FUSED) + begin(2) + device_input(IDS, [5, 6])
        + complete(2, (IDS,)) + REPLAY
        + begin(3) + device_input(CU_K, [0, 4, 9, 11])
        + complete(3, (CU_K,)) + REPLAY,
        "tickets": u8(DOUBLE) + begin(1) + complete(1) + REPLAY
        + begin(12) + complete(12) + REPLAY + old_ticket(1) + old_ticket(0)
        + begin(2) + complete(2) + REPLAY + old_ticket(1) + old_ticket(0)
        + begin(2) + complete(2) + REPLAY + old_ticket(2) + u8(14, 3),
        "misuse": u8(DOUBLE) + REPLAY + host_input(POS, []) + u8(0, 240)
        + begin(3) + begin(3) + set_mode(NAIVE)
        + host_input(POS, [1, 2], shape=202) + host_input(POS, [1, 2, 3])
        + REPLAY + REPLAY + DISCARD + host_input(POS, [1, 2, 3]),
        "eager_mode": u8(EAGER) + begin(3) + complete(3) + REPLAY,
        # cgr_replay refuses it; a batch over the largest bucket too.
        "pipelined_mode": u8(PIPELINED) + begin(3) + complete(3) + REPLAY
        + begin(20) + set_mode(FUSED) + begin(3) + complete(3) + REPLAY,
    }


def main():
    targets = {
        "copy_plan": copy_plan_seeds(),
        "slots_buckets": slots_buckets_seeds(),
        "batch": batch_seeds(),
    }
    for target, seeds in targets.items():
        folder = os.path.join(ROOT, target)
        os.makedirs(folder, exist_ok=True)
        for name, data in sorted(seeds.items()):
            with open(os.path.join(folder, name), "wb") as out:
                out.write(data)
        print(f"{target}: {len(seeds)} seeds in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
