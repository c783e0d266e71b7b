"""Dead letters: the original bytes, with why and where from in the headers."""

from __future__ import annotations

import logging
from typing import Any

from deltaomega.metrics import DEADLETTERED

log = logging.getLogger(__name__)

REASON_HEADER = "deltaomega.reason"
ERROR_HEADER = "deltaomega.error"
SOURCE_TOPIC_HEADER = "deltaomega.source.topic"
SOURCE_PARTITION_HEADER = "deltaomega.source.partition"
SOURCE_OFFSET_HEADER = "deltaomega.source.offset"


class DeadLetterPublisher:
    def __init__(self, topic: Any) -> None:
        self.topic = topic

    async def publish(self, event: Any, reason: str, error_type: str) -> None:
        message = event.message
        headers = [
            (REASON_HEADER, reason.encode()),
            (ERROR_HEADER, error_type.encode()),
            (SOURCE_TOPIC_HEADER, message.topic.encode()),
            (SOURCE_PARTITION_HEADER, str(message.partition).encode()),
            (SOURCE_OFFSET_HEADER, str(message.offset).encode()),
        ]
        await self.topic.send(key=message.key, value=message.value, headers=headers)
        DEADLETTERED.labels(message.topic, error_type).inc()
        log.warning(
            "dead-lettered %s[%d]@%d: %s",
            message.topic,
            message.partition,
            message.offset,
            reason,
        )
