"""One consumer batch of the voice-state or interaction-state stream, start to end.

Decode all records at once, fold each partition's rows into its open windows (one store
write per key) and encode the states of the windows the watermark closed. Nothing leaves
the process here: the states and dead letters come back in a :class:`BatchResult` for
the consumer to send, and the store notes what the batch changed, so a batch that fails
at any step is rolled back whole (:meth:`WindowAgent.handle`) and the store, the
changelog and the offsets stay as they were before it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from deltaomega import faults
from deltaomega.metrics import (
    BATCH_SECONDS,
    BATCH_SIZE,
    EVENTS_DECODED,
    LATE_EVENTS,
    OPEN_WINDOWS,
    RECORDS_CONSUMED,
    REPLAYED_EVENTS,
    STATE_SYNC_SECONDS,
    TABLE_WRITES,
    WATERMARK_LAG,
    WINDOWS_CLOSED,
)
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import DecodedBatch
from deltaomega.sinks.clickhouse import ClickHouseSink
from deltaomega.sinks.retry import insert_until_acknowledged
from deltaomega.streams.deadletter import DeadLetter
from deltaomega.streams.progress import Progress
from deltaomega.streams.window_store import WindowStore
from deltaomega.streams.windows import ClosedWindows, TumblingWindowAggregator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceBatch:
    """Records of one topic as a consumer returned them (each partition in offset order)."""

    topic: str
    keys: list[bytes | None]
    values: list[bytes | None]
    partitions: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def slice(self, start: int, stop: int) -> SourceBatch:
        """Records ``start`` to ``stop``: still each partition in offset order."""
        return SourceBatch(
            self.topic,
            self.keys[start:stop],
            self.values[start:stop],
            self.partitions[start:stop],
            self.offsets[start:stop],
        )

    def last_offsets(self) -> dict[int, int]:
        """Partition → the batch's last offset on it."""
        out: dict[int, int] = {}
        for partition, offset in zip(self.partitions.tolist(), self.offsets.tolist(), strict=True):
            out[partition] = max(offset, out.get(partition, -1))
        return out

    def deadletter(self, i: int, reason: str, error_type: str) -> DeadLetter:
        """The ``i``-th record, as it came, with why and where it came from."""
        return DeadLetter(
            self.topic,
            int(self.partitions[i]),
            int(self.offsets[i]),
            self.keys[i],
            self.values[i],
            reason,
            error_type,
        )


@dataclass(frozen=True)
class RawRows:
    """A processed batch's decoded events, with the source position of each."""

    columns: Any
    partitions: np.ndarray
    offsets: np.ndarray


@dataclass
class BatchResult:
    """What a processed batch sends on: closed windows' states, dead letters, raw rows."""

    states: list[tuple[bytes, bytes]] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    rows: list[RawRows] = field(default_factory=list)
    events: int = 0

    def extend(self, other: BatchResult) -> None:
        self.states += other.states
        self.deadletters += other.deadletters
        self.rows += other.rows
        self.events += other.events


class WindowRows(NamedTuple):
    """Decoded events as the aggregator takes them: row ``i``'s key is ``names[keys[i]]``."""

    keys: np.ndarray
    names: list[str]
    ts: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class WindowStreamSpec:
    """What differs between the voice and the interaction stream."""

    name: str
    state_schema: str
    decode: Callable[[AvroCodec, Sequence[bytes | None]], DecodedBatch[Any]]
    rows: Callable[[Any], WindowRows]
    #: closed windows → (Kafka key, state record) pairs
    states: Callable[[ClosedWindows], list[tuple[bytes, dict[str, Any]]]]
    #: (sink, columns, partitions, offsets, deduplication token) → rows inserted
    insert_raw: Callable[[ClickHouseSink, Any, np.ndarray, np.ndarray, str], int]
    count_progress: Callable[[Progress, WindowRows], None]


class WindowAgent:
    def __init__(
        self,
        spec: WindowStreamSpec,
        store: WindowStore,
        aggregator: TumblingWindowAggregator,
        codec: AvroCodec,
        sink: ClickHouseSink,
        progress: Progress,
    ) -> None:
        self.spec = spec
        self.store = store
        self.aggregator = aggregator
        self.codec = codec
        self.sink = sink
        self.progress = progress

    # -- partitions ------------------------------------------------------------------------

    def assign(self, partitions: Sequence[int]) -> None:
        self.store.assign(partitions)
        for partition in partitions:
            self.aggregator.load_index(partition, self.store.partitions[partition].keys())

    def revoke(self, partitions: Sequence[int]) -> None:
        self.store.revoke(partitions)
        self.aggregator.forget(partitions)

    def covered(self) -> dict[int, int]:
        """Partition → last source offset a landed batch dealt with (its marker)."""
        return {p: self.aggregator.covered(s, p) for p, s in self.store.partitions.items()}

    # -- batches ---------------------------------------------------------------------------

    def handle(self, batch: SourceBatch, covered: Mapping[int, int]) -> BatchResult:
        """:meth:`process` as one unit: if it raises, every store change it made is undone.

        ``covered`` is each partition's marker before the consumer batch: records at or
        below it were dealt with by a batch that landed, so they are not dead-lettered
        again when a crash makes them come back.
        """
        self.store.begin()
        try:
            result = self.process(batch, covered)
        except BaseException:
            self.store.rollback()
            for partition in self.store.partitions:
                self.aggregator.load_index(partition, self.store.partitions[partition].keys())
            raise
        self.store.commit()
        return result

    def cover(self, batch: SourceBatch) -> None:
        """Move each partition's marker past the whole batch (after records were isolated,
        the last of which may have been taken out)."""
        for partition, last in batch.last_offsets().items():
            state = self.store.partitions.get(partition)
            if state is not None:
                self.aggregator.cover(state, partition, last)

    def process(self, batch: SourceBatch, covered: Mapping[int, int]) -> BatchResult:
        """Decode, aggregate and encode; the raw rows are left to :meth:`insert`."""
        name = self.spec.name
        started = time.perf_counter()
        RECORDS_CONSUMED.labels(batch.topic).inc(len(batch))
        BATCH_SIZE.labels(name).observe(len(batch))
        decoded = self.spec.decode(self.codec, batch.values)
        result = BatchResult()
        for error in decoded.errors:
            if int(batch.offsets[error.index]) > covered.get(
                int(batch.partitions[error.index]), -1
            ):
                result.deadletters.append(
                    batch.deadletter(error.index, error.reason, error.error_type)
                )
        cols = decoded.columns
        EVENTS_DECODED.labels(name).inc(len(cols))
        row_partition = batch.partitions[cols.record_index]
        row_offset = batch.offsets[cols.record_index]
        decoded_at = time.perf_counter()
        BATCH_SECONDS.labels(name, "decode").observe(decoded_at - started)

        window_rows = self.spec.rows(cols)
        keys, names, ts, values = window_rows
        last_offsets = batch.last_offsets()
        watermark = None
        late = replayed = written = windows_closed = 0
        for partition in sorted(last_offsets):
            rows = np.flatnonzero(row_partition == partition)
            outcome = self.aggregator.process(
                partition,
                self.store.partitions[partition],
                keys[rows],
                names,
                ts[rows],
                values[rows],
                row_offset[rows],
                last_offsets[partition],
            )
            late += outcome.late
            replayed += outcome.replayed
            written += outcome.keys_written
            for key, record in self.spec.states(outcome.closed):
                encoded = self.codec.encode(self.spec.state_schema, record, validate=False)
                result.states.append((key, encoded))
            if len(outcome.closed):
                closable = int(outcome.closed.end.min()) + self.aggregator.grace_ms
                delay = self.progress.note_sync_delay(closable)
                if delay is not None:
                    STATE_SYNC_SECONDS.labels(name).observe(delay)
            windows_closed += len(outcome.closed)
            watermark = (
                outcome.watermark if watermark is None else min(watermark, outcome.watermark)
            )
        faults.hit(f"{name}.after_aggregate")
        # Counted only once nothing can fail any more: a retried batch counts once.
        WINDOWS_CLOSED.labels(name).inc(windows_closed)
        LATE_EVENTS.labels(name).inc(late)
        REPLAYED_EVENTS.labels(name).inc(replayed)
        TABLE_WRITES.labels(name).inc(written)
        self.spec.count_progress(self.progress, window_rows)
        self.progress.late += late
        self.progress.windows_closed += windows_closed
        self.progress.deadlettered += len(result.deadletters)
        OPEN_WINDOWS.labels(name).set(
            sum(self.aggregator.open_windows(p) for p in self.store.partitions)
        )
        if watermark is not None and watermark > 0:
            WATERMARK_LAG.labels(name).set(time.time() - watermark / 1000)
        BATCH_SECONDS.labels(name, "aggregate").observe(time.perf_counter() - decoded_at)
        result.rows.append(RawRows(cols, row_partition, row_offset))
        result.events = len(cols)
        return result

    async def insert(self, topic: str, rows: RawRows) -> None:
        """One insert, with a deduplication token made of where its rows came from (each
        source partition's first and last offset): a replay of the same records inserts
        nothing twice."""
        started = time.perf_counter()
        await insert_until_acknowledged(
            f"{self.spec.name} events",
            self.spec.insert_raw,
            self.sink,
            rows.columns,
            rows.partitions,
            rows.offsets,
            insert_token(topic, rows.partitions, rows.offsets),
        )
        BATCH_SECONDS.labels(self.spec.name, "sink").observe(time.perf_counter() - started)


def insert_token(topic: str, partitions: np.ndarray, offsets: np.ndarray) -> str:
    """``topic/partition:first-last,…/rows``: the same source records, the same token."""
    ranges = []
    for p in np.unique(partitions).tolist():
        part = offsets[partitions == p]
        ranges.append(f"{p}:{part.min()}-{part.max()}")
    return f"{topic}/{','.join(ranges)}/{len(offsets)}"
