"""One consumer batch of the voice-state or interaction-state stream, start to end.

Decode all records at once, dead-letter the bad ones, fold each partition's rows into its
open windows (one store write per key), emit the windows the watermark closed and insert
the raw rows into ClickHouse. The caller then checkpoints the store and commits offsets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from deltaomega.metrics import (
    BATCH_SECONDS,
    BATCH_SIZE,
    EVENTS_DECODED,
    LATE_EVENTS,
    OPEN_WINDOWS,
    RECORDS_CONSUMED,
    REPLAYED_EVENTS,
    TABLE_WRITES,
    WATERMARK_LAG,
    WINDOWS_CLOSED,
)
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import DecodedBatch
from deltaomega.sinks.clickhouse import ClickHouseSink
from deltaomega.sinks.retry import insert_until_acknowledged
from deltaomega.streams.deadletter import DeadLetterPublisher
from deltaomega.streams.progress import Progress
from deltaomega.streams.window_store import WindowStore
from deltaomega.streams.windows import ClosedWindows, TumblingWindowAggregator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceBatch:
    """Records of one topic as a consumer returned them (each partition in offset order)."""

    topic: str
    keys: list[bytes | None]
    values: list[bytes]
    partitions: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.values)


async def deadletter_record(
    publisher: DeadLetterPublisher, batch: SourceBatch, i: int, reason: str, error_type: str
) -> None:
    """Dead-letter the batch's ``i``-th record, as it came, with where it came from."""
    await publisher.publish(
        batch.topic,
        int(batch.partitions[i]),
        int(batch.offsets[i]),
        batch.keys[i],
        batch.values[i],
        reason,
        error_type,
    )


@dataclass(frozen=True)
class RawRows:
    """A processed batch's decoded events, with the source position of each."""

    columns: Any
    partitions: np.ndarray
    offsets: np.ndarray


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
    decode: Callable[[AvroCodec, Sequence[bytes]], DecodedBatch[Any]]
    rows: Callable[[Any], WindowRows]
    #: closed windows → (Kafka key, state record) pairs
    states: Callable[[ClosedWindows], list[tuple[bytes, dict[str, Any]]]]
    insert_raw: Callable[[ClickHouseSink, Any, np.ndarray, np.ndarray], int]
    count_progress: Callable[[Progress, WindowRows], None]


class WindowAgent:
    def __init__(
        self,
        spec: WindowStreamSpec,
        store: WindowStore,
        aggregator: TumblingWindowAggregator,
        codec: AvroCodec,
        sink: ClickHouseSink,
        deadletter: DeadLetterPublisher,
        progress: Progress,
        emit: Callable[[bytes, bytes], None],
    ) -> None:
        self.spec = spec
        self.store = store
        self.aggregator = aggregator
        self.codec = codec
        self.sink = sink
        self.deadletter = deadletter
        self.progress = progress
        #: (key, encoded state) → the state topic
        self.emit = emit

    # -- partitions ------------------------------------------------------------------------

    def assign(self, partitions: Sequence[int]) -> None:
        self.store.assign(partitions)
        for partition in partitions:
            self.aggregator.load_index(partition, self.store.partitions[partition].keys())

    def revoke(self, partitions: Sequence[int]) -> None:
        self.store.revoke(partitions)
        self.aggregator.forget(partitions)

    # -- batches ---------------------------------------------------------------------------

    async def handle(self, batch: SourceBatch) -> RawRows | None:
        """:meth:`process`, dead-lettering the whole batch if it fails unexpectedly."""
        try:
            return await self.process(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the worker must outlive a bad batch
            log.exception("%s batch of %d records failed", self.spec.name, len(batch))
            reason = f"processing failed: {type(exc).__name__}: {exc}"
            for i in range(len(batch)):
                await self._deadletter(batch, i, reason, "ProcessingError")
            self.progress.deadlettered += len(batch)
            return None

    async def _deadletter(self, batch: SourceBatch, i: int, reason: str, error_type: str) -> None:
        await deadletter_record(self.deadletter, batch, i, reason, error_type)

    async def process(self, batch: SourceBatch) -> RawRows:
        """Decode, dead-letter, aggregate and emit; the raw rows are left to :meth:`insert`."""
        name = self.spec.name
        started = time.perf_counter()
        RECORDS_CONSUMED.labels(batch.topic).inc(len(batch))
        BATCH_SIZE.labels(name).observe(len(batch))
        decoded = self.spec.decode(self.codec, batch.values)
        for error in decoded.errors:
            await self._deadletter(batch, error.index, error.reason, error.error_type)
        self.progress.deadlettered += len(decoded.errors)
        cols = decoded.columns
        EVENTS_DECODED.labels(name).inc(len(cols))
        row_partition = batch.partitions[cols.record_index]
        row_offset = batch.offsets[cols.record_index]
        decoded_at = time.perf_counter()
        BATCH_SECONDS.labels(name, "decode").observe(decoded_at - started)

        window_rows = self.spec.rows(cols)
        self.spec.count_progress(self.progress, window_rows)
        keys, names, ts, values = window_rows
        partitions = [int(p) for p in np.unique(batch.partitions)]
        watermark = None
        for partition in partitions:
            rows = np.flatnonzero(row_partition == partition)
            outcome = self.aggregator.process(
                partition,
                self.store.partitions[partition],
                keys[rows],
                names,
                ts[rows],
                values[rows],
                row_offset[rows],
            )
            LATE_EVENTS.labels(name).inc(outcome.late)
            REPLAYED_EVENTS.labels(name).inc(outcome.replayed)
            TABLE_WRITES.labels(name).inc(outcome.keys_written)
            self.progress.late += outcome.late
            for key, record in self.spec.states(outcome.closed):
                self.emit(key, self.codec.encode(self.spec.state_schema, record, validate=False))
            WINDOWS_CLOSED.labels(name).inc(len(outcome.closed))
            self.progress.windows_closed += len(outcome.closed)
            watermark = (
                outcome.watermark if watermark is None else min(watermark, outcome.watermark)
            )
        OPEN_WINDOWS.labels(name).set(sum(self.aggregator.open_windows(p) for p in partitions))
        if watermark is not None and watermark > 0:
            WATERMARK_LAG.labels(name).set(time.time() - watermark / 1000)
        BATCH_SECONDS.labels(name, "aggregate").observe(time.perf_counter() - decoded_at)
        return RawRows(cols, row_partition, row_offset)

    async def insert(self, rows: RawRows) -> None:
        started = time.perf_counter()
        await insert_until_acknowledged(
            f"{self.spec.name} events",
            self.spec.insert_raw,
            self.sink,
            rows.columns,
            rows.partitions,
            rows.offsets,
        )
        BATCH_SECONDS.labels(self.spec.name, "sink").observe(time.perf_counter() - started)
