"""Records from an output topic into ClickHouse; offsets acked after the insert."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from deltaomega.metrics import RECORDS_CONSUMED
from deltaomega.schemas.codec import AvroCodec
from deltaomega.sinks.clickhouse import ClickHouseSink
from deltaomega.sinks.retry import insert_until_acknowledged
from deltaomega.streams.deadletter import DeadLetterPublisher

log = logging.getLogger(__name__)


class StateSinkAgent:
    def __init__(
        self,
        schema: str,
        table: str,
        codec: AvroCodec,
        sink: ClickHouseSink,
        deadletter: DeadLetterPublisher,
        on_records: Callable[[str, list[dict[str, Any]], list[int]], None] | None = None,
    ) -> None:
        self.schema = schema
        self.table = table
        self.codec = codec
        self.sink = sink
        self.deadletter = deadletter
        #: Sees every decoded batch before it is stored (the inference engine's input).
        self.on_records = on_records

    async def run(self, stream: Any, max_rows: int, within: float) -> None:
        async for events in stream.noack_take(max_rows, within=within):
            await self.process(events)
            for event in events:
                event.ack()

    async def process(self, events: Sequence[Any]) -> None:
        RECORDS_CONSUMED.labels(events[0].message.topic).inc(len(events))
        good, errors = self.codec.decode_many([e.value for e in events], self.schema)
        for error in errors:
            await self.deadletter.publish_event(events[error.index], error.reason, error.error_type)
        records = [record for _, record in good]
        partitions = [events[i].message.partition for i, _ in good]
        if self.on_records is not None and records:
            self.on_records(self.schema, records, partitions)
        offsets = [events[i].message.offset for i, _ in good]
        await insert_until_acknowledged(
            self.table, self.sink.insert_states, self.table, records, partitions, offsets
        )
