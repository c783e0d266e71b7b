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
from typing import Any, TypeVar, cast

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from deltaomega.config import Settings
from deltaomega.errors import DeliveryError
from deltaomega.streams.deadletter import Send
from deltaomega.streams.window_agent import RawRows, SourceBatch, WindowAgent
from deltaomega.streams.window_store import Checkpoint, produce

log = logging.getLogger(__name__)
#: librdkafka's own log lines (connection errors and the like), through our handler
KAFKA_LOG = logging.getLogger("deltaomega.kafka")

T = TypeVar("T")

_FLUSH_TIMEOUT_SECONDS = 60.0
_CLOSE_FLUSH_SECONDS = 5.0
_MAX_RESTART_DELAY_SECONDS = 30.0
# The batch is replayed by the partition's next owner; the store makes that exact.
_LOST_COMMIT = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._ASSIGNMENT_LOST,  # noqa: SLF001 - librdkafka's local error codes
}


def producer_config(settings: Settings, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": client_id,
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        # Java's and aiokafka's default, so a key lands where other clients put it.
        "partitioner": "murmur2_random",
        "queue.buffering.max.messages": 1_000_000,
        "logger": KAFKA_LOG,
    }


class BatchOutputs:
    """A batch's records to Kafka (states, dead letters); flushed before offsets commit."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.config = producer_config(settings, f"{settings.app_id}-{name}")
        self._producer: Producer | None = None
        self.failed: list[str] = []

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self.config)
        return self._producer

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(_CLOSE_FLUSH_SECONDS)
            self._producer.close()
            self._producer = None

    def _on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self.failed.append(str(err))

    def emit_to(self, topic: str) -> Callable[..., None]:
        def emit(key: bytes | None, value: bytes | None, **kwargs: Any) -> None:
            produce(self.producer, topic, key, value, on_delivery=self._on_delivery, **kwargs)

        return emit

    def sender(self, topic: str) -> Send:
        """A dead-letter sender into ``topic``."""
        emit = self.emit_to(topic)

        async def send(key: bytes | None, value: bytes | None, headers: list[Any]) -> None:
            emit(key, value, headers=headers)

        return send

    def flush(self) -> None:
        remaining = self.producer.flush(_FLUSH_TIMEOUT_SECONDS)
        if remaining:
            raise DeliveryError(f"{remaining} records not delivered in {_FLUSH_TIMEOUT_SECONDS}s")
        if self.failed:
            failed, self.failed = self.failed, []
            raise DeliveryError(f"{len(failed)} records failed: {failed[0]}")


class WindowConsumer:
    def __init__(
        self, settings: Settings, topic: str, agent: WindowAgent, outputs: BatchOutputs
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.agent = agent
        self.outputs = outputs
        self.name = agent.spec.name
        self.group_id = f"{settings.app_id}-{self.name}-windows"

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until cancelled; an error restarts the consumer from the last commit."""
        delay = 0.5
        try:
            while True:
                try:
                    await self._consume()
                except (KafkaException, DeliveryError) as exc:
                    log.error("%s consumer failed (%s); restarting in %.1fs", self.name, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _MAX_RESTART_DELAY_SECONDS)
        finally:
            await asyncio.to_thread(self.outputs.close)

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        # One thread owns the consumer: librdkafka calls are serialised, and the rebalance
        # callbacks (which restore the store) run there while the event loop stays free.
        executor = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-consumer")

        def call(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
            return loop.run_in_executor(executor, functools.partial(fn, *args))

        consumer = Consumer(self._consumer_config())
        consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        max_records = self.settings.batch_max_records
        within = self.settings.batch_within_seconds
        # A batch's landing (insert, flush, commit) overlaps reading and processing the next.
        landing: asyncio.Task[None] | None = None
        try:
            while True:
                messages = await call(consumer.consume, max_records, within)
                if landing is not None and landing.done():
                    landing.result()  # a failed landing restarts the consumer
                batch = self._batch(messages)
                if batch is None:
                    continue
                if self.agent.progress.first_batch_at is None:
                    self.agent.progress.first_batch_at = time.perf_counter()
                rows = await self.agent.handle(batch)
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

    def _consumer_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.settings.kafka_bootstrap,
            "group.id": self.group_id,
            "client.id": f"{self.settings.app_id}-{self.name}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "logger": KAFKA_LOG,
        }

    def _batch(self, messages: Sequence[Message]) -> SourceBatch | None:
        good = []
        owned = self.agent.store.partitions
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("%s consumer: %s", self.name, error)
            elif message.partition() in owned:
                good.append(message)
        if not good:
            return None
        return SourceBatch(
            topic=self.topic,
            keys=[m.key() for m in good],
            values=[cast(bytes, m.value()) for m in good],
            partitions=np.array([m.partition() for m in good], dtype=np.int64),
            offsets=np.array([m.offset() for m in good], dtype=np.int64),
        )

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
        await call(self._commit, consumer, batch)

    def _persist(self, checkpoint: Checkpoint) -> None:
        store = self.agent.store
        self.outputs.flush()
        store.stage_tombstones(checkpoint, self.outputs.producer)
        self.outputs.flush()
        store.persist(checkpoint)

    def _commit(self, consumer: Consumer, batch: SourceBatch) -> None:
        offsets = [
            TopicPartition(self.topic, int(p), int(batch.offsets[batch.partitions == p].max()) + 1)
            for p in np.unique(batch.partitions)
        ]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() not in _LOST_COMMIT:
                raise
            log.warning("%s: commit lost to a rebalance (%s); the batch replays", self.name, error)

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
