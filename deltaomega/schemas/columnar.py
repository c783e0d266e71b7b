"""Avro bytes → Arrow-ready columns for the event types, without a dict per event.

fastavro builds a Python dict per event, and turning those into columns (and then into
Arrow arrays for the insert) costs more than the decoding. This module reads a whole
consumer batch of VoiceEvent, VoiceEventBatch or InteractionEvent records in one
numba-compiled pass, straight into Arrow's buffer layout: offsets and bytes for strings,
numbers as arrays, the context map as offsets plus key and value strings.

It decodes only the bundled writer schemas and only valid records. Anything else (an
unknown or evolved writer schema, a malformed record, an empty id, invalid UTF-8, a map
that repeats a key) makes :func:`decode_columns` return ``None``, and the caller decodes
the batch with fastavro, whose per-record errors say what is wrong. So the two paths can
never disagree on what a good batch holds, and tests/unit/test_columnar.py checks that
they agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit
from numpy.typing import NDArray

# Record modes: the payload is one event, or an array of events (VoiceEventBatch).
ONE, ARRAY = 0, 1
_SYMBOLS = 5  # of the InteractionKind enum

Bytes = NDArray[np.uint8]
Int32s = NDArray[np.int32]
Int64s = NDArray[np.int64]


@dataclass(frozen=True)
class Columns:
    """One batch's events, column by column in field order of each kind."""

    strings: list[pa.StringArray]
    longs: Int64s  # shape (longs, events); enums hold their symbol index
    doubles: NDArray[np.float64]  # shape (events, doubles)
    context: pa.MapArray
    record_index: Int64s


@njit(cache=True, nogil=True, inline="always")
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


@njit(cache=True, nogil=True, inline="always")
def _append(buf: Bytes, pos: int, end: int, offsets: Int32s, data: Bytes, row: int) -> int:
    """Append one string to (offsets, data) at ``row``; the next position or -1."""
    length, pos = _varint(buf, pos, end)
    if pos < 0 or length < 0 or pos + length > end:
        return -1
    start = offsets[row]
    data[start : start + length] = buf[pos : pos + length]
    offsets[row + 1] = start + length
    return pos + length


@njit(cache=True, nogil=True, inline="always")
def _id(buf: Bytes, pos: int, end: int, offsets: Int32s, data: Bytes, row: int) -> int:
    """An id string, which must not be empty."""
    pos = _append(buf, pos, end, offsets, data, row)
    return -1 if pos < 0 or offsets[row + 1] == offsets[row] else pos


@njit(cache=True, nogil=True, inline="always")
def _double(buf: Bytes, pos: int, end: int, out: NDArray[np.uint64], row: int, col: int) -> int:
    """A little-endian double's bits; the float64 view is taken once for the whole column."""
    if pos + 8 > end:
        return -1
    bits = np.uint64(0)
    for k in range(8):
        bits |= np.uint64(buf[pos + k]) << np.uint64(8 * k)
    out[row, col] = bits
    return pos + 8


@njit(cache=True, nogil=True, inline="always")
def _context(
    buf: Bytes,
    pos: int,
    end: int,
    row: int,
    ctx: tuple[Int32s, Int32s, Bytes, Int32s, Bytes],
) -> int:
    """A map of strings, in blocks; a negative block count is followed by its byte size."""
    ctx_off, key_off, key_data, val_off, val_data = ctx
    entries = ctx_off[row]
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
        for _ in range(count):
            pos = _append(buf, pos, end, key_off, key_data, entries)
            if pos < 0:
                return -1
            pos = _append(buf, pos, end, val_off, val_data, entries)
            if pos < 0:
                return -1
            entries += 1
    if _repeats_a_key(key_off, key_data, ctx_off[row], entries):
        return -1
    ctx_off[row + 1] = entries
    return pos


@njit(cache=True, nogil=True, inline="always")
def _repeats_a_key(offsets: Int32s, data: Bytes, first: int, end: int) -> bool:
    """Whether a map repeats a key: a dict keeps only the last, so leave those to fastavro."""
    for a in range(first, end):
        for b in range(a + 1, end):
            length = offsets[a + 1] - offsets[a]
            if length == offsets[b + 1] - offsets[b] and np.array_equal(
                data[offsets[a] : offsets[a + 1]], data[offsets[b] : offsets[b + 1]]
            ):
                return True
    return False


@njit(cache=True, nogil=True, inline="always")
def _voice_event(
    buf: Bytes,
    pos: int,
    end: int,
    row: int,
    longs: Int64s,
    doubles: NDArray[np.uint64],
    ctx: tuple[Int32s, Int32s, Bytes, Int32s, Bytes],
    id_off: Int32s,
    id_data: Bytes,
    voice_off: Int32s,
    voice_data: Bytes,
) -> int:
    """event_id, voice_id, ts, the four metrics, context; the next position or -1."""
    pos = _id(buf, pos, end, id_off, id_data, row)
    if pos < 0:
        return -1
    pos = _id(buf, pos, end, voice_off, voice_data, row)
    if pos < 0:
        return -1
    longs[0, row], pos = _varint(buf, pos, end)
    for col in range(4):
        if pos >= 0:
            pos = _double(buf, pos, end, doubles, row, col)
    if pos < 0:
        return -1
    return _context(buf, pos, end, row, ctx)


@njit(cache=True, nogil=True)
def _decode_voice_events(
    buf: Bytes,
    starts: Int64s,
    ends: Int64s,
    modes: Int64s,
    longs: Int64s,
    doubles: NDArray[np.uint64],
    record_index: Int64s,
    ctx: tuple[Int32s, Int32s, Bytes, Int32s, Bytes],
    id_off: Int32s,
    id_data: Bytes,
    voice_off: Int32s,
    voice_data: Bytes,
) -> int:
    """Every VoiceEvent and VoiceEventBatch record; the events, or -1 if any is not valid."""
    row = 0
    for r in range(starts.shape[0]):
        pos, end = starts[r], ends[r]
        if modes[r] == ONE:
            pos = _voice_event(buf, pos, end, row, longs, doubles, ctx,
                               id_off, id_data, voice_off, voice_data)  # fmt: skip
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
                if count < 0:  # a negative count is followed by the block's byte size
                    count = -count
                    _, pos = _varint(buf, pos, end)
                    if pos < 0:
                        return -1
                if row + count > record_index.shape[0]:
                    return -1
                for _ in range(count):
                    pos = _voice_event(buf, pos, end, row, longs, doubles, ctx,
                                       id_off, id_data, voice_off, voice_data)  # fmt: skip
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


@njit(cache=True, nogil=True)
def _decode_interactions(
    buf: Bytes,
    starts: Int64s,
    ends: Int64s,
    modes: Int64s,
    longs: Int64s,
    doubles: NDArray[np.uint64],
    record_index: Int64s,
    ctx: tuple[Int32s, Int32s, Bytes, Int32s, Bytes],
    id_off: Int32s,
    id_data: Bytes,
    source_off: Int32s,
    source_data: Bytes,
    target_off: Int32s,
    target_data: Bytes,
) -> int:
    """Every InteractionEvent record: event_id, ts, source, target, kind, strength, context."""
    if starts.shape[0] > record_index.shape[0]:  # more records than could be valid
        return -1
    for row in range(starts.shape[0]):
        pos, end = starts[row], ends[row]
        if modes[row] != ONE:
            return -1
        pos = _id(buf, pos, end, id_off, id_data, row)
        if pos < 0:
            return -1
        longs[0, row], pos = _varint(buf, pos, end)
        if pos >= 0:
            pos = _id(buf, pos, end, source_off, source_data, row)
        if pos >= 0:
            pos = _id(buf, pos, end, target_off, target_data, row)
        if pos < 0:
            return -1
        kind, pos = _varint(buf, pos, end)
        if pos < 0 or not 0 <= kind < _SYMBOLS:
            return -1
        longs[1, row] = kind
        pos = _double(buf, pos, end, doubles, row, 0)
        if pos >= 0:
            pos = _context(buf, pos, end, row, ctx)
        if pos != end:  # malformed, or trailing bytes
            return -1
        record_index[row] = row
    return len(starts)


@dataclass(frozen=True)
class EventType:
    """What the decoder of one event type allocates: the shape of its columns."""

    kernel: Any
    strings: int
    longs: int
    doubles: int
    #: bytes of the smallest valid event (ids take 2), which bounds a batch's events
    min_bytes: int


VOICE_EVENTS = EventType(_decode_voice_events, strings=2, longs=1, doubles=4, min_bytes=38)
INTERACTION_EVENTS = EventType(_decode_interactions, strings=3, longs=2, doubles=1, min_bytes=17)


def decode_columns(
    buf: Bytes, starts: Int64s, ends: Int64s, modes: Int64s, kind: EventType
) -> Columns | None:
    """Decode the records ``buf[starts[r]:ends[r]]`` (payloads after their headers).

    ``None`` when any record is not a valid, plain encoding of the event type.
    """
    size = int((ends - starts).sum())
    rows = size // kind.min_bytes + 1
    strings: list[Any] = []  # (offsets, bytes) per string field
    for _ in range(kind.strings):
        strings += [np.zeros(rows + 1, dtype=np.int32), np.empty(size, dtype=np.uint8)]
    longs = np.empty((kind.longs, rows), dtype=np.int64)
    doubles = np.empty((rows, kind.doubles), dtype=np.uint64)
    record_index = np.empty(rows, dtype=np.int64)
    entries = size // 2 + 1  # a map entry takes at least two bytes
    ctx = (
        np.zeros(rows + 1, dtype=np.int32),
        np.zeros(entries + 1, dtype=np.int32),
        np.empty(size, dtype=np.uint8),
        np.zeros(entries + 1, dtype=np.int32),
        np.empty(size, dtype=np.uint8),
    )
    n = kind.kernel(buf, starts, ends, modes, longs, doubles, record_index, ctx, *strings)
    if n < 0:
        return None
    arrays = [_string_array(strings[i], strings[i + 1], n) for i in range(0, len(strings), 2)]
    ctx_off, key_off, key_data, val_off, val_data = ctx
    n_ctx = int(ctx_off[n])
    keys = _string_array(key_off, key_data, n_ctx)
    values = _string_array(val_off, val_data, n_ctx)
    try:
        for array in (*arrays, keys, values):
            array.validate(full=True)  # UTF-8, as fastavro insists on
    except pa.ArrowInvalid:
        return None
    return Columns(
        strings=arrays,
        longs=longs[:, :n],
        doubles=doubles[:n].view(np.float64),
        context=pa.MapArray.from_arrays(pa.array(ctx_off[: n + 1]), keys, values),
        record_index=record_index[:n],
    )


def _string_array(offsets: Int32s, data: Bytes, n: int) -> pa.StringArray:
    """The first ``n`` strings, sharing the decoder's buffers (no copy)."""
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets[: n + 1]), pa.py_buffer(data[: offsets[n]])
    )
