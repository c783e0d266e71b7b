"""Tumbling event-time windows, aggregated per batch with numpy, closed by a watermark.

Semantics are those of processing the partition's events one by one in offset order:

* an event belongs to the window ``[ts - ts % W, ... + W)``;
* the partition watermark is the largest event time seen so far minus the grace period;
  an event whose window ends at or before the watermark *at its arrival* is late and
  dropped (counted);
* a window closes, and is emitted once, when the watermark reaches its end.

The batch code reproduces exactly that (a running maximum gives each event the watermark
it would have seen), but touches the store once per (key, window) per batch.

Exactness under replay: each open-window entry records the highest source offset folded
into it, and the partition's watermark entry records the last offset of the last batch it
covered. A redelivered event at or below either is skipped, so at-least-once delivery
never double-counts. The watermark is stored before closed entries are emitted and
deleted; a crash in between leaves the entries due, and the next batch closes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Int64Array = NDArray[np.int64]
FloatArray = NDArray[np.float64]

_SEP = "\x1f"
_WATERMARK = "\x00watermark"
_NO_TIME = np.iinfo(np.int64).min // 2


class PartitionStore(Protocol):
    """The open-window state of one partition (a :class:`WindowStore` partition, or a dict)."""

    def get(self, key: bytes) -> bytes | None: ...

    def set(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


@dataclass(slots=True)
class ClosedWindows:
    """Windows closed by one batch, one row each; stats arrays are (rows, metrics)."""

    keys: list[str]
    start: Int64Array
    end: Int64Array
    count: Int64Array
    mean: FloatArray
    min: FloatArray
    max: FloatArray
    last: FloatArray

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(slots=True)
class BatchOutcome:
    closed: ClosedWindows
    accepted: int = 0
    late: int = 0
    replayed: int = 0
    keys_written: int = 0
    watermark: int = int(_NO_TIME)


def _entries(raws: Sequence[bytes], width: int) -> FloatArray:
    """Stored entries as rows: [count, offset, last_ts, sum*m, min*m, max*m, last*m]."""
    return np.frombuffer(b"".join(raws), dtype=np.float64).reshape(-1, width)


@dataclass
class _PartitionIndex:
    """Which windows are open (key bytes by window end), rebuilt from the store."""

    by_end: dict[int, set[bytes]] = field(default_factory=dict)

    def add(self, end: int, key: bytes) -> None:
        self.by_end.setdefault(end, set()).add(key)

    def pop_due(self, watermark: int) -> list[tuple[int, bytes]]:
        due = sorted(end for end in self.by_end if end <= watermark)
        return [(end, key) for end in due for key in sorted(self.by_end.pop(end))]


class TumblingWindowAggregator:
    """Aggregates ``metrics`` per key over tumbling windows of ``window_ms``."""

    def __init__(self, metrics: tuple[str, ...], window_ms: int, grace_ms: int) -> None:
        if window_ms <= 0 or grace_ms < 0:
            raise ValueError("window must be positive and grace non-negative")
        self.metrics = metrics
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self._m = len(metrics)
        self._width = 3 + 4 * self._m
        self._indexes: dict[int, _PartitionIndex] = {}

    # -- keys ------------------------------------------------------------------------------

    @staticmethod
    def _entry_key(partition: int, key: str, start: int) -> bytes:
        return f"{partition}{_SEP}{key}{_SEP}{start}".encode()

    @staticmethod
    def _watermark_key(partition: int) -> bytes:
        return f"{partition}{_SEP}{_WATERMARK}".encode()

    @staticmethod
    def split_key(raw: bytes) -> tuple[int, str, int]:
        """(partition, key, window start) of a store key; key may itself hold no separator."""
        partition, rest = raw.decode().split(_SEP, 1)
        key, start = rest.rsplit(_SEP, 1)
        return int(partition), key, int(start)

    # -- index -----------------------------------------------------------------------------

    @staticmethod
    def is_watermark_key(raw: bytes) -> bool:
        """The partition's commit marker (window keys end in their start time)."""
        return raw.endswith(f"{_SEP}{_WATERMARK}".encode())

    def forget(self, partitions: Iterable[int] | None = None) -> None:
        """Drop partitions' in-memory index (after a rebalance); it is rebuilt from the store."""
        if partitions is None:
            self._indexes.clear()
        for partition in partitions or ():
            self._indexes.pop(partition, None)

    def has_index(self, partition: int) -> bool:
        return partition in self._indexes

    def load_index(self, partition: int, keys: Iterable[bytes]) -> None:
        index = _PartitionIndex()
        prefix = f"{partition}{_SEP}".encode()
        watermark_key = self._watermark_key(partition)
        for raw in keys:
            if raw.startswith(prefix) and raw != watermark_key:
                _, _, start = self.split_key(raw)
                index.add(start + self.window_ms, raw)
        self._indexes[partition] = index

    def open_windows(self, partition: int) -> int:
        index = self._indexes.get(partition)
        return 0 if index is None else sum(len(keys) for keys in index.by_end.values())

    # -- the batch ---------------------------------------------------------------------------

    def _marker(self, store: PartitionStore, partition: int) -> tuple[int, int]:
        raw = store.get(self._watermark_key(partition))
        if raw is None:
            return int(_NO_TIME), -1
        max_ts, last_offset = (int(v) for v in np.frombuffer(raw, np.int64))
        return max_ts, last_offset

    def cover(self, store: PartitionStore, partition: int, last_record: int) -> None:
        """Move the partition's marker to ``last_record`` if it is behind."""
        max_ts, last_offset = self._marker(store, partition)
        if last_record > last_offset:
            value = np.array([max_ts, last_record], dtype=np.int64).tobytes()
            store.set(self._watermark_key(partition), value)

    def covered(self, store: PartitionStore, partition: int) -> int:
        """The last source offset of the partition a landed batch dealt with (-1: none)."""
        return self._marker(store, partition)[1]

    def process(
        self,
        partition: int,
        store: PartitionStore,
        keys: Int64Array,
        names: Sequence[str],
        ts: Int64Array,
        values: FloatArray,
        offsets: Int64Array,
        last_record: int = -1,
    ) -> BatchOutcome:
        """Fold one partition's batch (rows in offset order) into the store; close due windows.

        Row ``i``'s window key is ``names[keys[i]]``. ``last_record`` is the batch's last
        source offset of the partition, which the marker covers even when the records at
        the end of the batch held no rows (all rejected): a replay then knows they were
        dealt with.
        """
        if partition not in self._indexes:
            raise RuntimeError(f"index for partition {partition} not loaded")
        index = self._indexes[partition]
        wm_key = self._watermark_key(partition)
        max_ts, last_offset = self._marker(store, partition)
        outcome = BatchOutcome(closed=self._empty_closed())
        n = len(keys)
        if n:
            fresh = offsets > last_offset
            outcome.replayed = int(n - fresh.sum())
            running_max = np.maximum.accumulate(np.maximum(ts, max_ts))
            # Replayed rows were counted before and already moved the stored maximum.
            start = ts - np.mod(ts, self.window_ms)
            late = fresh & (start + self.window_ms <= running_max - self.grace_ms)
            outcome.late = int(late.sum())
            take = np.flatnonzero(fresh & ~late)
            if take.size:
                accepted, written = self._fold(
                    partition,
                    store,
                    index,
                    keys[take],
                    names,
                    ts[take],
                    start[take],
                    values[take],
                    offsets[take],
                )
                outcome.accepted, outcome.keys_written = accepted, written
            if fresh.any():
                max_ts = max(max_ts, int(ts[fresh].max()))
        covered = max(last_record, int(offsets.max()) if n else -1)
        if covered > last_offset:
            store.set(wm_key, np.array([max_ts, covered], dtype=np.int64).tobytes())
        watermark = max_ts - self.grace_ms
        outcome.watermark = watermark
        outcome.closed = self._close(store, index, watermark)
        return outcome

    def _fold(
        self,
        partition: int,
        store: PartitionStore,
        index: _PartitionIndex,
        key_code: Int64Array,
        names: Sequence[str],
        ts: Int64Array,
        start: Int64Array,
        values: FloatArray,
        offsets: Int64Array,
    ) -> tuple[int, int]:
        slot = (start - start.min()) // self.window_ms
        group_id = key_code * (int(slot.max()) + 1) + slot
        uniq, first, inv = np.unique(group_id, return_index=True, return_inverse=True)
        group_keys = [
            self._entry_key(partition, names[key_code[i]], int(start[i])) for i in first.tolist()
        ]
        existing = [store.get(k) for k in group_keys]
        held = np.array([raw is not None for raw in existing], dtype=bool)
        old = _entries([raw for raw in existing if raw is not None], self._width)
        # Skip rows already folded into an entry (a partial replay after a crash).
        seen_offset = np.full(len(uniq), -1.0)
        seen_offset[held] = old[:, 1]
        keep = offsets > seen_offset[inv]
        if not keep.all():
            rows = np.flatnonzero(keep)
            if rows.size == 0:
                return 0, 0
            return self._fold(
                partition,
                store,
                index,
                key_code[rows],
                names,
                ts[rows],
                start[rows],
                values[rows],
                offsets[rows],
            )
        order = np.lexsort((offsets, ts, inv))
        g = inv[order]
        bounds = np.flatnonzero(np.diff(g)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(g)])) - 1
        v = values[order]
        m = self._m
        # One entry row per (key, window), then merged with the stored ones at once.
        new = np.empty((len(uniq), self._width))
        new[:, 0] = np.diff(np.concatenate((starts, [len(g)])))
        new[:, 1] = np.maximum.reduceat(offsets[order], starts)
        new[:, 2] = ts[order][ends]
        new[:, 3 : 3 + m] = np.add.reduceat(v, starts, axis=0)
        new[:, 3 + m : 3 + 2 * m] = np.minimum.reduceat(v, starts, axis=0)
        new[:, 3 + 2 * m : 3 + 3 * m] = np.maximum.reduceat(v, starts, axis=0)
        new[:, 3 + 3 * m :] = v[ends]
        if held.any():
            new[held] = self._merge(old, new[held])
        for j in np.flatnonzero(~held).tolist():
            index.add(int(start[first[j]]) + self.window_ms, group_keys[j])
        for key, row in zip(group_keys, new, strict=True):
            store.set(key, row.tobytes())
        return len(key_code), len(uniq)

    def _merge(self, old: FloatArray, new: FloatArray) -> FloatArray:
        """Stored entries (rows) with the batch's rows for the same (key, window)."""
        m = self._m
        out = old.copy()
        out[:, 0] += new[:, 0]
        out[:, 1] = np.maximum(old[:, 1], new[:, 1])
        out[:, 3 : 3 + m] += new[:, 3 : 3 + m]
        out[:, 3 + m : 3 + 2 * m] = np.minimum(old[:, 3 + m : 3 + 2 * m], new[:, 3 + m : 3 + 2 * m])
        out[:, 3 + 2 * m : 3 + 3 * m] = np.maximum(
            old[:, 3 + 2 * m : 3 + 3 * m], new[:, 3 + 2 * m : 3 + 3 * m]
        )
        # New rows have higher offsets, so on equal event time the new value is the later one.
        later = new[:, 2] >= old[:, 2]
        out[later, 2] = new[later, 2]
        out[later, 3 + 3 * m :] = new[later, 3 + 3 * m :]
        return out

    def _close(
        self, store: PartitionStore, index: _PartitionIndex, watermark: int
    ) -> ClosedWindows:
        due = index.pop_due(watermark)
        if not due:
            return self._empty_closed()
        m = self._m
        raws: list[bytes] = []
        keys: list[str] = []
        starts: list[int] = []
        for _, raw_key in due:
            raw = store.get(raw_key)
            if raw is None:  # closed and deleted before a crash interrupted the batch
                continue
            _, key, start = self.split_key(raw_key)
            keys.append(key)
            starts.append(start)
            raws.append(raw)
        for _, raw_key in due:
            store.delete(raw_key)
        if not raws:
            return self._empty_closed()
        table = _entries(raws, self._width)
        count = table[:, 0]
        start_arr = np.array(starts, dtype=np.int64)
        return ClosedWindows(
            keys=keys,
            start=start_arr,
            end=start_arr + self.window_ms,
            count=count.astype(np.int64),
            mean=table[:, 3 : 3 + m] / count[:, None],
            min=table[:, 3 + m : 3 + 2 * m],
            max=table[:, 3 + 2 * m : 3 + 3 * m],
            last=table[:, 3 + 3 * m :],
        )

    def _empty_closed(self) -> ClosedWindows:
        empty = np.empty((0, self._m))
        none = np.empty(0, dtype=np.int64)
        return ClosedWindows([], none, none, none, empty, empty, empty, empty)
