"""Live feeds read straight from an output topic, resumable by Kafka position.

An event id lists, for every partition of the topic, the offset of the last record the
client has been sent — ``partition:offset`` pairs joined by commas (``0:41,1:17``; a
single-partition topic gives just ``0:41``). A client that reconnects with that id as
``Last-Event-ID`` resumes right after each of those offsets, so it misses nothing and
gets nothing twice, whichever partitions the records it missed were on.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka.admin import AdminClient

from deltaomega.errors import DeltaOmegaError, ValidationError

_CURSOR = re.compile(r"^\d+:-?\d+(,\d+:-?\d+)*$")


def parse_cursor(text: str | None, field: str = "Last-Event-ID") -> dict[int, int] | None:
    if text is None or text == "":
        return None
    text = text.strip()
    if not _CURSOR.match(text):
        raise ValidationError(
            field, f"must be 'partition:offset' pairs joined by ',', got {text!r}"
        )
    cursor: dict[int, int] = {}
    for pair in text.split(","):
        partition, offset = pair.split(":")
        cursor[int(partition)] = int(offset)
    return cursor


def format_cursor(cursor: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(cursor.items()))


class KafkaTail:
    """Follows every partition of ``topic`` from a cursor (or from now) and tracks position."""

    def __init__(self, bootstrap: str, topic: str, cursor: dict[int, int] | None) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self.position: dict[int, int] = {}
        self._start_cursor = cursor
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def __aenter__(self) -> KafkaTail:
        consumer = self._consumer
        partitions = await asyncio.to_thread(self._partitions)
        await consumer.start()
        tps = [TopicPartition(self.topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            if self._start_cursor is not None and tp.partition in self._start_cursor:
                last = self._start_cursor[tp.partition]
            elif self._start_cursor is not None:
                last = -1  # a partition the client never had a position on: from its start
            else:
                last = ends[tp] - 1  # a new client: from now on
            consumer.seek(tp, last + 1)
            self.position[tp.partition] = last
        return self

    def _partitions(self) -> list[int]:
        metadata = AdminClient({"bootstrap.servers": self._bootstrap}).list_topics(
            self.topic, timeout=10
        )
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise DeltaOmegaError(f"topic {self.topic} is not available")
        return sorted(topic.partitions)

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    def cursor(self) -> str:
        return format_cursor(self.position)

    async def batches(self) -> AsyncIterator[list[tuple[str, Any]]]:
        """Records a fetch at a time, each with the cursor just past it; ``position``
        already includes the whole batch."""
        while True:
            fetched = await self._consumer.getmany(timeout_ms=1000, max_records=500)
            batch = []
            for tp in sorted(fetched, key=lambda t: t.partition):
                for record in fetched[tp]:
                    self.position[tp.partition] = record.offset
                    batch.append((self.cursor(), record))
            if batch:
                yield batch
