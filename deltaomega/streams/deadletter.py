"""Dead letters: the original bytes, with why and where from in the headers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from deltaomega.metrics import DEADLETTERED

log = logging.getLogger(__name__)

REASON_HEADER = "deltaomega.reason"
ERROR_HEADER = "deltaomega.error"
SOURCE_TOPIC_HEADER = "deltaomega.source.topic"
SOURCE_PARTITION_HEADER = "deltaomega.source.partition"
SOURCE_OFFSET_HEADER = "deltaomega.source.offset"

#: (key, value, headers) → sent; a Faust topic's send or a confluent-kafka produce
Send = Callable[[bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[Any]]


class DeadLetterPublisher:
    def __init__(self, send: Send) -> None:
        self.send = send

    async def publish(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        error_type: str,
    ) -> None:
        headers = [
            (REASON_HEADER, reason.encode()),
            (ERROR_HEADER, error_type.encode()),
            (SOURCE_TOPIC_HEADER, topic.encode()),
            (SOURCE_PARTITION_HEADER, str(partition).encode()),
            (SOURCE_OFFSET_HEADER, str(offset).encode()),
        ]
        await self.send(key, value, headers)
        DEADLETTERED.labels(topic, error_type).inc()
        log.warning("dead-lettered %s[%d]@%d: %s", topic, partition, offset, reason)
