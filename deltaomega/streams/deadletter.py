"""Dead letters: the original bytes, with why and where from in the headers.

A dead letter is keyed by its source position (``topic/partition/offset``), so a repeat
is recognisable whoever reads the topic, and the producer is idempotent, so its own
retries never repeat one. A value larger than ``deadletter_max_bytes`` (a record the
source topic took but the dead-letter topic would refuse) is cut to that size, and the
headers say so: the reason and the position always get through, and the source
partition moves on instead of failing on the same record for ever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from deltaomega.metrics import DEADLETTERED

log = logging.getLogger(__name__)

REASON_HEADER = "deltaomega.reason"
ERROR_HEADER = "deltaomega.error"
SOURCE_TOPIC_HEADER = "deltaomega.source.topic"
SOURCE_PARTITION_HEADER = "deltaomega.source.partition"
SOURCE_OFFSET_HEADER = "deltaomega.source.offset"
SOURCE_KEY_HEADER = "deltaomega.source.key"
#: Present when the value was cut: the original value's length in bytes.
TRUNCATED_HEADER = "deltaomega.truncated"

_MAX_REASON_BYTES = 4096

#: (key, value, headers) → the dead-letter topic (a producer's produce, not yet flushed)
Emit = Callable[..., None]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected source record and why."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    error_type: str

    @property
    def position(self) -> bytes:
        return f"{self.topic}/{self.partition}/{self.offset}".encode()


def source_position(key: bytes) -> tuple[str, int, int]:
    """(topic, partition, offset) of a dead letter's key."""
    topic, partition, offset = key.decode().rsplit("/", 2)
    return topic, int(partition), int(offset)


class DeadLetterPublisher:
    def __init__(self, emit: Emit, max_value_bytes: int) -> None:
        self.emit = emit
        self.max_value_bytes = max_value_bytes

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Produce ``letters``; the caller flushes before it commits their source offsets."""
        for letter in letters:
            value, headers = self._value_and_headers(letter)
            self.emit(letter.position, value, headers=headers)
            DEADLETTERED.labels(letter.topic, letter.error_type).inc()
            log.warning(
                "dead-lettered %s[%d]@%d: %s",
                letter.topic,
                letter.partition,
                letter.offset,
                letter.reason,
            )

    def _value_and_headers(self, letter: DeadLetter) -> tuple[bytes | None, list[Any]]:
        reason = letter.reason.encode()[:_MAX_REASON_BYTES]
        headers: list[tuple[str, bytes]] = [
            (REASON_HEADER, reason),
            (ERROR_HEADER, letter.error_type.encode()),
            (SOURCE_TOPIC_HEADER, letter.topic.encode()),
            (SOURCE_PARTITION_HEADER, str(letter.partition).encode()),
            (SOURCE_OFFSET_HEADER, str(letter.offset).encode()),
        ]
        if letter.key is not None:
            headers.append((SOURCE_KEY_HEADER, letter.key[: self.max_value_bytes // 16]))
        value = letter.value
        if value is not None and len(value) > self.max_value_bytes:
            headers.append((TRUNCATED_HEADER, str(len(value)).encode()))
            value = value[: self.max_value_bytes]
        return value, headers
