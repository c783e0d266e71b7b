"""State and model-output topics into their ClickHouse tables, in confluent-kafka batches.

One consumer (group ``<APP_ID>-sinks``) reads every such topic; per batch each topic's
records are decoded, handed to the inference engine (states), inserted into their table,
and only then are the offsets committed. A replay re-inserts rows the tables already hold,
and the ReplacingMergeTree tables keep one of each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer

from deltaomega.config import Settings
from deltaomega.metrics import RECORDS_CONSUMED
from deltaomega.schemas.codec import AvroCodec
from deltaomega.sinks.clickhouse import ClickHouseSink
from deltaomega.sinks.retry import insert_until_acknowledged
from deltaomega.streams.batch_consumer import BatchConsumer
from deltaomega.streams.deadletter import DeadLetterPublisher
from deltaomega.streams.outputs import BatchOutputs
from deltaomega.streams.window_agent import SourceBatch
from deltaomega.threads import CallThread, in_thread

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
        prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.schema = schema
        self.table = table
        self.codec = codec
        self.sink = sink
        self.deadletter = deadletter
        #: Sees every decoded batch before it is stored (the inference engine's input).
        self.on_records = on_records
        #: A record's row, where a column is not the Avro field as it is
        self.prepare = prepare

    async def process(self, batch: SourceBatch) -> None:
        RECORDS_CONSUMED.labels(batch.topic).inc(len(batch))
        good, errors = self.codec.decode_many(batch.values, self.schema)
        self.deadletter.publish([batch.deadletter(e.index, e.reason, e.error_type) for e in errors])
        records = [record for _, record in good]
        partitions = [int(batch.partitions[i]) for i, _ in good]
        if self.on_records is not None and records:
            self.on_records(self.schema, records, partitions)
        offsets = [int(batch.offsets[i]) for i, _ in good]
        if self.prepare is not None:
            records = [self.prepare(r) for r in records]
        await insert_until_acknowledged(
            self.table, self.sink.insert_states, self.table, records, partitions, offsets
        )


class SinkConsumer(BatchConsumer):
    def __init__(
        self,
        settings: Settings,
        agents: Mapping[str, StateSinkAgent],
        outputs: BatchOutputs,
        max_records: int,
        within: float,
    ) -> None:
        super().__init__(settings, "sinks", f"{settings.app_id}-sinks", outputs)
        self.agents = dict(agents)
        self.max_records = max_records
        self.within = within

    async def _consume(self) -> None:
        thread = CallThread("sinks-consumer")
        call = thread.call

        consumer = Consumer(self.consumer_config())
        consumer.subscribe(list(self.agents))
        try:
            while True:
                messages = await call(self.poll, consumer, self.max_records, self.within)
                batches = self.batches(messages)
                if not batches:
                    continue
                await asyncio.gather(*(self.agents[t].process(b) for t, b in batches.items()))
                await in_thread(self.outputs.flush)  # dead letters, if any
                await call(self.commit, consumer, list(batches.values()))
        finally:
            try:
                await asyncio.wait_for(asyncio.shield(call(consumer.close)), 3.0)
            except TimeoutError:
                log.warning("sinks: the consumer did not close in time")
            finally:
                thread.close()
