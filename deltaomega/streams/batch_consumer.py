"""What the worker's confluent-kafka consumers share: the restart loop, the consumer's
configuration, turning a ``consume`` result into a :class:`SourceBatch`, and the commit.

Faust's per-record path (aiokafka, the conductor, an Event per record) bounded the worker
at about 15k records/s on one loop it shares with everything else; ``consume`` in a thread
of its own returns up to tens of thousands of records for one pass of batch code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from typing import Any, cast

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from deltaomega.config import Settings
from deltaomega.errors import DeliveryError
from deltaomega.streams.outputs import KAFKA_LOG, BatchOutputs
from deltaomega.streams.window_agent import SourceBatch

log = logging.getLogger(__name__)

_MAX_RESTART_DELAY_SECONDS = 30.0
# The batch is replayed by the partition's next owner.
_LOST_COMMIT = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._ASSIGNMENT_LOST,  # noqa: SLF001 - librdkafka's local error codes
}


class BatchConsumer:
    """Base of the worker's consumers; subclasses implement :meth:`_consume`."""

    def __init__(self, settings: Settings, name: str, group_id: str, outputs: BatchOutputs) -> None:
        self.settings = settings
        self.name = name
        self.group_id = group_id
        self.outputs = outputs

    async def run(self) -> None:
        """Consume until cancelled; an error restarts the consumer from the last commit."""
        delay = 0.5
        try:
            while True:
                try:
                    await self._consume()
                except (KafkaException, DeliveryError) as exc:
                    log.error("%s consumer failed (%s); restarting in %.1fs", self.name, exc, delay)
                except Exception:  # noqa: BLE001 - a bug must not end consumption for good
                    log.exception("%s consumer failed; restarting in %.1fs", self.name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_RESTART_DELAY_SECONDS)
        finally:
            await asyncio.to_thread(self.outputs.close)

    async def _consume(self) -> None:
        raise NotImplementedError

    def consumer_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.settings.kafka_bootstrap,
            "group.id": self.group_id,
            "client.id": f"{self.settings.app_id}-{self.name}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "logger": KAFKA_LOG,
        }

    def batches(
        self, messages: Sequence[Message], owned: Collection[int] | None = None
    ) -> dict[str, SourceBatch]:
        """The good messages by topic (of ``owned`` partitions only, when given)."""
        by_topic: dict[str, list[Message]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("%s consumer: %s", self.name, error)
            elif owned is None or message.partition() in owned:
                by_topic.setdefault(cast(str, message.topic()), []).append(message)
        return {
            topic: SourceBatch(
                topic=topic,
                keys=[m.key() for m in good],
                values=[cast(bytes, m.value()) for m in good],
                partitions=np.array([m.partition() for m in good], dtype=np.int64),
                offsets=np.array([m.offset() for m in good], dtype=np.int64),
            )
            for topic, good in by_topic.items()
        }

    def commit(self, consumer: Consumer, batches: Sequence[SourceBatch]) -> None:
        offsets = [
            TopicPartition(b.topic, int(p), int(b.offsets[b.partitions == p].max()) + 1)
            for b in batches
            for p in np.unique(b.partitions)
        ]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() not in _LOST_COMMIT:
                raise
            log.warning("%s: commit lost to a rebalance (%s); the batch replays", self.name, error)
