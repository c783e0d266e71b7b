"""Avro bytes → Arrow-ready columns for the event types, without a dict per event.

fastavro builds a Python dict per event, and turning those into columns (and then into
Arrow arrays for the insert) costs more than the decoding. This module reads a whole
consumer batch of VoiceEvent, VoiceEventBatch or InteractionEvent records in one
numba-compiled pass, straight into Arrow's buffer layout: offsets and bytes for strings,
numbers as arrays, the context map as offsets plus key and value strings.

It decodes only the bundled writer schemas and only valid records. Anything else (an
unknown or evolved writer schema, a malformed record, an empty id, invalid UTF-8) makes
:func:`decode_columns` return ``None`` and the caller decodes the batch with fastavro,
whose per-record errors say what is wrong. So the two paths can never disagree on what
a good batch holds, and tests/unit/test_columnar.py checks that they agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numba import njit
from numpy.typing import NDArray

# Field operations of a record program.
_STRING, _LONG, _DOUBLE, _ENUM, _MAP = 0, 1, 2, 3, 4
# Record modes: the payload is one event, or an array of events (VoiceEventBatch).
ONE, ARRAY = 0, 1
# Fewest bytes each field takes: a non-empty string 2, a long or enum 1, a double 8, a map 1.
_MIN_BYTES = {0: 2, 1: 1, 2: 8, 3: 1, 4: 1}

Bytes = NDArray[np.uint8]
Int64s = NDArray[np.int64]


@dataclass(frozen=True)
class Program:
    """How one event record is laid out: (operation, column or symbol count) per field."""

    ops: NDArray[np.int64]  # shape (fields, 2)
    strings: int
    longs: int
    doubles: int
    min_bytes: int  # of one encoded event, which bounds the events a batch can hold

    @classmethod
    def of(cls, fields: list[tuple[int, int]]) -> Program:
        ops = np.array(fields, dtype=np.int64).reshape(-1, 2)
        count = {op: sum(1 for o, _ in fields if o == op) for op in (_STRING, _LONG, _DOUBLE)}
        longs = count[_LONG] + sum(1 for o, _ in fields if o == _ENUM)
        min_bytes = sum(_MIN_BYTES[op] for op, _ in fields)
        return cls(ops, count[_STRING], longs, count[_DOUBLE], min_bytes)


#: event_id, voice_id, ts, the four metrics, context.
VOICE_EVENT_PROGRAM = Program.of(
    [(_STRING, 0), (_STRING, 0), (_LONG, 0), (_DOUBLE, 0), (_DOUBLE, 0), (_DOUBLE, 0)]
    + [(_DOUBLE, 0), (_MAP, 0)]
)
#: event_id, ts, source, target, kind (5 symbols), strength, context.
INTERACTION_EVENT_PROGRAM = Program.of(
    [(_STRING, 0), (_LONG, 0), (_STRING, 0), (_STRING, 0), (_ENUM, 5), (_DOUBLE, 0), (_MAP, 0)]
)


@dataclass(frozen=True)
class Columns:
    """One batch's events, column by column in field order of each kind."""

    strings: list[pa.StringArray]
    longs: Int64s  # shape (longs, events); enums hold their symbol index
    doubles: NDArray[np.float64]  # shape (events, doubles)
    context: pa.MapArray
    record_index: Int64s


@njit(cache=True, nogil=True)
def _varint(buf: Bytes, pos: int, end: int) -> tuple[int, int]:
    """A zig-zag long at ``pos``: (value, next position), next position -1 when invalid.

    At most 10 bytes, and the 10th may only carry the 64th bit, as a long holds 64 bits.
    """
    raw = np.uint64(0)
    for i in range(10):
        if pos >= end:
            return 0, -1
        byte = np.uint64(buf[pos])
        pos += 1
        if i == 9 and byte > np.uint64(1):
            return 0, -1
        raw |= (byte & np.uint64(0x7F)) << np.uint64(7 * i)
        if byte < np.uint64(0x80):
            return int(np.int64(raw >> np.uint64(1)) ^ -np.int64(raw & np.uint64(1))), pos
    return 0, -1


@njit(cache=True, nogil=True)
def _string(
    buf: Bytes, pos: int, end: int, offsets: NDArray[np.int32], data: Bytes, row: int
) -> int:
    """Append one string to (offsets, data) at ``row``; the next position or -1."""
    length, pos = _varint(buf, pos, end)
    if pos < 0 or length < 0 or pos + length > end:
        return -1
    start = offsets[row]
    data[start : start + length] = buf[pos : pos + length]
    offsets[row + 1] = start + length
    return pos + length


@njit(cache=True, nogil=True)
def _event(
    buf: Bytes,
    pos: int,
    end: int,
    ops: NDArray[np.int64],
    row: int,
    str_off: NDArray[np.int32],
    str_data: Bytes,
    longs: Int64s,
    doubles: NDArray[np.uint64],
    ctx_off: NDArray[np.int32],
    key_off: NDArray[np.int32],
    key_data: Bytes,
    val_off: NDArray[np.int32],
    val_data: Bytes,
) -> int:
    """Decode one event into row ``row``; the next position, or -1 to reject the batch."""
    s = 0
    n_long = 0
    d = 0
    for f in range(ops.shape[0]):
        op = ops[f, 0]
        if op == _STRING:
            pos = _string(buf, pos, end, str_off[s], str_data[s], row)
            # Every string field of an event is an id that must not be empty.
            if pos < 0 or str_off[s, row + 1] == str_off[s, row]:
                return -1
            s += 1
        elif op == _LONG or op == _ENUM:
            value, pos = _varint(buf, pos, end)
            if pos < 0 or (op == _ENUM and not 0 <= value < ops[f, 1]):
                return -1
            longs[n_long, row] = value
            n_long += 1
        elif op == _DOUBLE:
            if pos + 8 > end:
                return -1
            bits = np.uint64(0)
            for k in range(8):
                bits |= np.uint64(buf[pos + k]) << np.uint64(8 * k)
            doubles[row, d] = bits
            d += 1
            pos += 8
        else:  # _MAP of strings, in blocks
            entries = ctx_off[row]
            while True:
                count, pos = _varint(buf, pos, end)
                if pos < 0:
                    return -1
                if count == 0:
                    break
                if count < 0:  # a negative count is followed by the block's byte size
                    count = -count
                    _, pos = _varint(buf, pos, end)
                    if pos < 0:
                        return -1
                for _ in range(count):
                    pos = _string(buf, pos, end, key_off, key_data, entries)
                    if pos < 0:
                        return -1
                    pos = _string(buf, pos, end, val_off, val_data, entries)
                    if pos < 0:
                        return -1
                    entries += 1
            if _repeats_a_key(key_off, key_data, ctx_off[row], entries):
                return -1
            ctx_off[row + 1] = entries
    return pos


@njit(cache=True, nogil=True)
def _repeats_a_key(offsets: NDArray[np.int32], data: Bytes, first: int, end: int) -> bool:
    """Whether a map repeats a key: a dict keeps only the last, so leave those to fastavro."""
    for a in range(first, end):
        for b in range(a + 1, end):
            length = offsets[a + 1] - offsets[a]
            if length == offsets[b + 1] - offsets[b] and np.array_equal(
                data[offsets[a] : offsets[a + 1]], data[offsets[b] : offsets[b + 1]]
            ):
                return True
    return False


@njit(cache=True, nogil=True)
def _decode(
    buf: Bytes,
    starts: Int64s,
    ends: Int64s,
    modes: Int64s,
    ops: NDArray[np.int64],
    str_off: NDArray[np.int32],
    str_data: Bytes,
    longs: Int64s,
    doubles: NDArray[np.uint64],
    record_index: Int64s,
    ctx_off: NDArray[np.int32],
    key_off: NDArray[np.int32],
    key_data: Bytes,
    val_off: NDArray[np.int32],
    val_data: Bytes,
) -> int:
    """Decode every record; the number of events, or -1 if any record is not plain-valid."""
    row = 0
    for r in range(starts.shape[0]):
        pos, end = starts[r], ends[r]
        if modes[r] == ONE:
            pos = _event(buf, pos, end, ops, row, str_off, str_data, longs, doubles,
                         ctx_off, key_off, key_data, val_off, val_data)  # fmt: skip
            if pos < 0:
                return -1
            record_index[row] = r
            row += 1
        else:
            events = 0
            while True:
                count, pos = _varint(buf, pos, end)
                if pos < 0:
                    return -1
                if count == 0:
                    break
                if count < 0:
                    count = -count
                    _, pos = _varint(buf, pos, end)
                    if pos < 0:
                        return -1
                if row + count > record_index.shape[0]:
                    return -1
                for _ in range(count):
                    pos = _event(buf, pos, end, ops, row, str_off, str_data, longs, doubles,
                                 ctx_off, key_off, key_data, val_off, val_data)  # fmt: skip
                    if pos < 0:
                        return -1
                    record_index[row] = r
                    row += 1
                    events += 1
            if events == 0:
                return -1
        if pos != end:  # trailing bytes
            return -1
    return row


def decode_columns(
    buf: Bytes, starts: Int64s, ends: Int64s, modes: Int64s, program: Program
) -> Columns | None:
    """Decode the records ``buf[starts[r]:ends[r]]`` (payloads after their headers).

    ``None`` when any record is not a valid, plain encoding of the program's schema.
    """
    size = int((ends - starts).sum())
    rows = size // program.min_bytes + 1
    str_off = np.zeros((max(program.strings, 1), rows + 1), dtype=np.int32)
    str_data = np.empty((max(program.strings, 1), size), dtype=np.uint8)
    longs = np.empty((max(program.longs, 1), rows), dtype=np.int64)
    doubles = np.empty((rows, max(program.doubles, 1)), dtype=np.uint64)
    record_index = np.empty(rows, dtype=np.int64)
    ctx_off = np.zeros(rows + 1, dtype=np.int32)
    entries = size // 2 + 1
    key_off = np.zeros(entries + 1, dtype=np.int32)
    val_off = np.zeros(entries + 1, dtype=np.int32)
    key_data = np.empty(size, dtype=np.uint8)
    val_data = np.empty(size, dtype=np.uint8)
    n = _decode(buf, starts, ends, modes, program.ops, str_off, str_data, longs, doubles,
                record_index, ctx_off, key_off, key_data, val_off, val_data)  # fmt: skip
    if n < 0:
        return None
    strings = [
        _string_array(str_off[s, : n + 1], str_data[s, : str_off[s, n]])
        for s in range(program.strings)
    ]
    n_ctx = int(ctx_off[n])
    keys = _string_array(key_off[: n_ctx + 1], key_data[: key_off[n_ctx]])
    values = _string_array(val_off[: n_ctx + 1], val_data[: val_off[n_ctx]])
    try:
        for array in (*strings, keys, values):
            array.validate(full=True)  # UTF-8, as fastavro insists on
    except pa.ArrowInvalid:
        return None
    context = pa.MapArray.from_arrays(pa.array(ctx_off[: n + 1]), keys, values)
    return Columns(
        strings=strings,
        longs=longs[: program.longs, :n],
        doubles=doubles[:n, : program.doubles].view(np.float64),
        context=context,
        record_index=record_index[:n],
    )


def _string_array(offsets: NDArray[np.int32], data: Bytes) -> pa.StringArray:
    return pa.StringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(np.ascontiguousarray(offsets)), pa.py_buffer(data)
    )
