"""An input topic's consumer: confluent-kafka batches into a WindowAgent, then one commit.

Faust hands its agents one event at a time; at tens of thousands of events per second that
per-record path, not the batch code, bounded the worker (bench/RESULTS.md). Here one
``consume`` call returns up to ``batch_max_records`` messages and the agent's batch code
runs on them directly. Per batch: process → produce the store's changes → flush the
producer (states, dead letters, changelog) → produce closed windows' tombstones → flush →
checkpoint RocksDB → commit offsets (the landing overlaps the next batch's processing). A crash
anywhere replays the batch, and the source offsets kept in the store make the replay exact.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from deltaomega.config import Settings
from deltaomega.errors import DeliveryError
from deltaomega.streams.batch_consumer import BatchConsumer
from deltaomega.streams.outputs import BatchOutputs
from deltaomega.streams.window_agent import RawRows, SourceBatch, WindowAgent
from deltaomega.streams.window_store import Checkpoint

log = logging.getLogger(__name__)

T = TypeVar("T")


def consume_size(events: int, records: int, max_records: int, max_events: int) -> int:
    """Records to ask for next, so a batch holds about ``max_events`` at the last ratio."""
    if events == 0 or records == 0:
        return max_records
    return max(1, min(max_records, round(max_events * records / events)))


class WindowConsumer(BatchConsumer):
    def __init__(
        self, settings: Settings, topic: str, agent: WindowAgent, outputs: BatchOutputs
    ) -> None:
        name = agent.spec.name
        super().__init__(settings, name, f"{settings.app_id}-{name}-windows", outputs)
        self.topic = topic
        self.agent = agent

    # -- the loop --------------------------------------------------------------------------

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        # One thread owns the consumer: librdkafka calls are serialised, and the rebalance
        # callbacks (which restore the store) run there while the event loop stays free.
        executor = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-consumer")

        def call(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
            return loop.run_in_executor(executor, functools.partial(fn, *args))

        consumer = Consumer(self.consumer_config())
        consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        max_records = self.settings.batch_max_records
        max_events = self.settings.batch_max_events
        within = self.settings.batch_within_seconds
        size = max_records
        # A batch's landing (insert, flush, commit) overlaps reading and processing the next.
        landing: asyncio.Task[None] | None = None
        try:
            while True:
                messages = await call(consumer.consume, size, within)
                if landing is not None and landing.done():
                    landing.result()  # a failed landing restarts the consumer
                batch = self._batch(messages)
                if batch is None:
                    continue
                if self.agent.progress.first_batch_at is None:
                    self.agent.progress.first_batch_at = time.perf_counter()
                rows = await self.agent.handle(batch)
                if rows is not None:
                    size = consume_size(len(rows.columns), len(batch), max_records, max_events)
                checkpoint = self.agent.store.stage(self.outputs.producer)
                if landing is not None:
                    await landing  # offsets commit in order, one batch in flight at most
                landing = asyncio.create_task(self._land(call, consumer, batch, rows, checkpoint))
        finally:
            try:
                if landing is not None and not landing.done():
                    await asyncio.shield(landing)
            except (KafkaException, DeliveryError) as exc:
                log.warning("%s: last batch did not land (%s); it replays", self.name, exc)
            try:
                await asyncio.shield(call(consumer.close))
            finally:
                executor.shutdown(wait=False)
                self.agent.revoke(list(self.agent.store.partitions))
                self.agent.store.close()

    def _batch(self, messages: Sequence[Message]) -> SourceBatch | None:
        return self.batches(messages, self.agent.store.partitions).get(self.topic)

    async def _land(
        self,
        call: Callable[..., asyncio.Future[Any]],
        consumer: Consumer,
        batch: SourceBatch,
        rows: RawRows | None,
        checkpoint: Checkpoint,
    ) -> None:
        """Raw rows into ClickHouse, outputs and changelog delivered, RocksDB, then commit."""
        inserted = self.agent.insert(rows) if rows is not None else asyncio.sleep(0)
        await asyncio.gather(inserted, asyncio.to_thread(self._persist, checkpoint))
        await call(self.commit, consumer, [batch])

    def _persist(self, checkpoint: Checkpoint) -> None:
        store = self.agent.store
        self.outputs.flush()
        store.stage_tombstones(checkpoint, self.outputs.producer)
        self.outputs.flush()
        store.persist(checkpoint)

    # -- rebalance callbacks (in the consumer's thread, inside consume) ---------------------

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        log.info("%s: assigned partitions %s", self.name, numbers)
        self.agent.assign(numbers)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        log.info("%s: revoked partitions %s", self.name, numbers)
        self.agent.revoke(numbers)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        log.warning("%s: lost partitions %s", self.name, numbers)
        self.agent.revoke(numbers)
