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
from aiokafka.errors import KafkaError
from confluent_kafka import KafkaException

from deltaomega.config import Settings
from deltaomega.errors import ServiceUnavailableError, ValidationError
from deltaomega.kafka_clients import admin_client, aiokafka_config, unavailable
from deltaomega.threads import in_thread

_OPEN_TIMEOUT_SECONDS = 10.0

_CURSOR = re.compile(r"^\d{1,9}:(-1|\d{1,19})(,\d{1,9}:(-1|\d{1,19}))*$")
#: A cursor names each partition once; no topic here has more partitions than this.
MAX_CURSOR_PARTITIONS = 1024
MAX_CURSOR_LENGTH = MAX_CURSOR_PARTITIONS * 30


def parse_cursor(text: str | None, field: str = "Last-Event-ID") -> dict[int, int] | None:
    """``partition:offset`` pairs; an offset is the last one sent, or -1 for none yet."""
    if text is None or text == "":
        return None
    text = text.strip()
    if len(text) > MAX_CURSOR_LENGTH:
        raise ValidationError(field, f"is {len(text)} characters long, more than a cursor can be")
    if not _CURSOR.match(text):
        raise ValidationError(
            field,
            f"must be 'partition:offset' pairs joined by ',' (offset -1 or more), got {text!r}"
            if len(text) <= 100
            else "must be 'partition:offset' pairs joined by ',' (offset -1 or more)",
        )
    cursor: dict[int, int] = {}
    for pair in text.split(","):
        partition, offset = (int(part) for part in pair.split(":"))
        if partition in cursor:
            raise ValidationError(field, f"names partition {partition} twice")
        cursor[partition] = offset
    return cursor


def format_cursor(cursor: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(cursor.items()))


class KafkaTail:
    """Follows every partition of ``topic`` from a cursor (or from now) and tracks position.

    Opening checks the cursor against the topic: a partition it does not have, or an
    offset past a partition's end (a cursor from another topic or cluster), is a 422 that
    names ``field``; a broker that does not answer is a 503. Either way nothing stays open.
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        cursor: dict[int, int] | None,
        field: str = "Last-Event-ID",
    ) -> None:
        self.topic = topic
        self._settings = settings
        self.position: dict[int, int] = {}
        self._start_cursor = cursor
        self._field = field
        self._consumer = AIOKafkaConsumer(
            **aiokafka_config(settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def __aenter__(self) -> KafkaTail:
        consumer = self._consumer
        try:
            partitions = await in_thread(self._partitions)
            try:
                await asyncio.wait_for(consumer.start(), _OPEN_TIMEOUT_SECONDS)
                tps = [TopicPartition(self.topic, p) for p in partitions]
                consumer.assign(tps)
                ends = await asyncio.wait_for(consumer.end_offsets(tps), _OPEN_TIMEOUT_SECONDS)
            except (KafkaError, OSError, TimeoutError) as exc:
                raise unavailable(self._settings, exc) from exc
            self._position_at(ends)
        except BaseException:
            await consumer.stop()
            raise
        return self

    def _position_at(self, ends: dict[TopicPartition, int]) -> None:
        cursor = self._start_cursor
        if cursor is not None:
            unknown = sorted(set(cursor) - {tp.partition for tp in ends})
            if unknown:
                raise ValidationError(
                    self._field, f"names partition {unknown[0]}, which {self.topic} does not have"
                )
        for tp, end in ends.items():
            if cursor is not None and tp.partition in cursor:
                last = cursor[tp.partition]
                if last >= end:
                    raise ValidationError(
                        self._field,
                        f"offset {last} of partition {tp.partition} is past the partition's end"
                        f" (its next offset is {end}); the cursor is not from this feed",
                    )
            elif cursor is not None:
                last = -1  # a partition the client never had a position on: from its start
            else:
                last = end - 1  # a new client: from now on
            self._consumer.seek(tp, last + 1)
            self.position[tp.partition] = last

    def _partitions(self) -> list[int]:
        try:
            metadata = admin_client(self._settings).list_topics(self.topic, timeout=3)
        except KafkaException as exc:
            raise unavailable(self._settings, exc) from exc
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise ServiceUnavailableError("kafka", f"topic {self.topic} is not available")
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
