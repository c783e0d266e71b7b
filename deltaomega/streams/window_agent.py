"""The batch loop shared by the voice-state and interaction-state streams.

Per consumer batch: decode all records at once, dead-letter the bad ones, fold each
partition's rows into its open windows (one table write per key), emit the windows the
watermark closed, insert the raw rows into ClickHouse, and only then ack the batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
from deltaomega.streams._table_store import FaustTableStore, bound_to_partition_of
from deltaomega.streams.deadletter import DeadLetterPublisher
from deltaomega.streams.progress import Progress
from deltaomega.streams.windows import ClosedWindows, TumblingWindowAggregator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowStreamSpec:
    """What differs between the voice and the interaction stream."""

    name: str
    state_schema: str
    decode: Callable[[AvroCodec, Sequence[bytes]], DecodedBatch[Any]]
    #: columns → (window keys, event times, metric matrix)
    rows: Callable[[Any], tuple[list[str], np.ndarray, np.ndarray]]
    #: closed windows → (Kafka key, state record) pairs
    states: Callable[[ClosedWindows], list[tuple[bytes, dict[str, Any]]]]
    insert_raw: Callable[[ClickHouseSink, Any, np.ndarray, np.ndarray], int]
    count_progress: Callable[[Progress, Any], None]


class WindowAgent:
    def __init__(
        self,
        spec: WindowStreamSpec,
        app: Any,
        table: Any,
        output_topic: Any,
        aggregator: TumblingWindowAggregator,
        codec: AvroCodec,
        sink: ClickHouseSink,
        deadletter: DeadLetterPublisher,
        progress: Progress,
    ) -> None:
        self.spec = spec
        self.app = app
        self.store = FaustTableStore(table)
        self.output_topic = output_topic
        self.aggregator = aggregator
        self.codec = codec
        self.sink = sink
        self.deadletter = deadletter
        self.progress = progress
        self._generation: int | None = None

    async def run(self, stream: Any, max_records: int, within: float) -> None:
        async for events in stream.noack_take(max_records, within=within):
            try:
                await self.process(events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worker must outlive a bad batch
                log.exception("%s batch of %d records failed", self.spec.name, len(events))
                for event in events:
                    await self.deadletter.publish(
                        event, f"processing failed: {type(exc).__name__}: {exc}", "ProcessingError"
                    )
                self.progress.deadlettered += len(events)
            for event in events:
                event.ack()

    def _ensure_index(self, partitions: Sequence[int]) -> None:
        generation = getattr(self.app, "consumer_generation_id", 0)
        if generation != self._generation:
            self.aggregator.forget()
            self._generation = generation
        missing = [p for p in partitions if not self.aggregator.has_index(p)]
        if missing:
            keys = self.store.keys()
            for partition in missing:
                self.aggregator.load_index(partition, keys)

    async def process(self, events: Sequence[Any]) -> None:
        name = self.spec.name
        started = time.perf_counter()
        topic = events[0].message.topic
        RECORDS_CONSUMED.labels(topic).inc(len(events))
        BATCH_SIZE.labels(name).observe(len(events))
        decoded = self.spec.decode(self.codec, [event.value for event in events])
        for error in decoded.errors:
            await self.deadletter.publish(events[error.index], error.reason, error.error_type)
        self.progress.deadlettered += len(decoded.errors)
        cols = decoded.columns
        EVENTS_DECODED.labels(name).inc(len(cols))
        self.spec.count_progress(self.progress, cols)
        rec_partition = np.fromiter((e.message.partition for e in events), np.int64, len(events))
        rec_offset = np.fromiter((e.message.offset for e in events), np.int64, len(events))
        row_partition = rec_partition[cols.record_index]
        row_offset = rec_offset[cols.record_index]
        decoded_at = time.perf_counter()
        BATCH_SECONDS.labels(name, "decode").observe(decoded_at - started)

        keys, ts, values = self.spec.rows(cols)
        partitions, first_index = np.unique(rec_partition, return_index=True)
        first_event = {int(p): events[i] for p, i in zip(partitions, first_index, strict=True)}
        self._ensure_index(list(first_event))
        watermark = None
        for partition, event in sorted(first_event.items()):
            rows = np.flatnonzero(row_partition == partition)
            with bound_to_partition_of(event):
                outcome = self.aggregator.process(
                    partition,
                    self.store,
                    [keys[i] for i in rows],
                    ts[rows],
                    values[rows],
                    row_offset[rows],
                )
            LATE_EVENTS.labels(name).inc(outcome.late)
            REPLAYED_EVENTS.labels(name).inc(outcome.replayed)
            TABLE_WRITES.labels(name).inc(outcome.keys_written)
            self.progress.late += outcome.late
            for key, record in self.spec.states(outcome.closed):
                await self.output_topic.send(
                    key=key, value=self.codec.encode(self.spec.state_schema, record, validate=False)
                )
            WINDOWS_CLOSED.labels(name).inc(len(outcome.closed))
            self.progress.windows_closed += len(outcome.closed)
            watermark = (
                outcome.watermark if watermark is None else min(watermark, outcome.watermark)
            )
        OPEN_WINDOWS.labels(name).set(sum(self.aggregator.open_windows(p) for p in first_event))
        if watermark is not None and watermark > 0:
            WATERMARK_LAG.labels(name).set(time.time() - watermark / 1000)
        aggregated_at = time.perf_counter()
        BATCH_SECONDS.labels(name, "aggregate").observe(aggregated_at - decoded_at)
        await insert_until_acknowledged(
            f"{name} events", self.spec.insert_raw, self.sink, cols, row_partition, row_offset
        )
        BATCH_SECONDS.labels(name, "sink").observe(time.perf_counter() - aggregated_at)
