"""Producer SDK: validated, Avro-encoded voice and interaction events onto Kafka."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from deltaomega.config import Settings
from deltaomega.kafka_clients import client_config
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import (
    INTERACTION_EVENT,
    VOICE_EVENT,
    InteractionEvent,
    VoiceEvent,
)
from deltaomega.schemas.validation import validate_voice_event
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[KafkaError | None, Message], None]


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed: int = 0
    last_error: str | None = None


class VoiceProducer:
    """Publishes voice events keyed by voice id, and interaction events keyed by source.

    With ``batch_size`` > 1, voice events are packed per voice into VoiceEventBatch records
    of up to that many events (one Kafka record, one decode call on the consumer side);
    call :meth:`flush_batches` to send partial batches, or :meth:`close` to send and wait.
    Records are partitioned with murmur2, like Java and aiokafka clients, so a voice's
    events and its states land on the same partition number.
    """

    def __init__(
        self,
        settings: Settings,
        codec: AvroCodec | None = None,
        batch_size: int = 1,
        on_delivery: DeliveryCallback | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.topics = Topics.from_settings(settings)
        self.codec = codec or AvroCodec.from_settings(settings)
        self.batch_size = max(1, batch_size)
        self.stats = DeliveryStats()
        self._user_callback = on_delivery
        self._pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
        conf: dict[str, Any] = {
            **client_config(settings, f"{settings.app_id}-producer"),
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "compression.type": "lz4",
            "enable.idempotence": True,
            "queue.buffering.max.messages": 1_000_000,
        }
        conf.update(config or {})
        self._producer = Producer(conf)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            self.stats.last_error = str(err)
            log.error("delivery to %s failed: %s", msg.topic(), err)
        if self._user_callback is not None:
            self._user_callback(err, msg)

    def _produce(self, topic: str, key: str, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
                break
            except BufferError:
                # Local queue full: serve delivery reports until there is room.
                self._producer.poll(0.05)
        self._producer.poll(0)

    def send_voice_event(self, event: VoiceEvent | Mapping[str, Any]) -> None:
        record = event.as_record() if isinstance(event, VoiceEvent) else dict(event)
        if self.batch_size == 1:
            self._produce(
                self.topics.voice_events,
                record["voice_id"],
                self.codec.encode(VOICE_EVENT, record),
            )
            return
        validate_voice_event(record)
        pending = self._pending[record["voice_id"]]
        pending.append(record)
        if len(pending) >= self.batch_size:
            self._send_batch(record["voice_id"])

    def send_interaction(self, event: InteractionEvent | Mapping[str, Any]) -> None:
        record = event.as_record() if isinstance(event, InteractionEvent) else dict(event)
        self._produce(
            self.topics.interactions, record["source"], self.codec.encode(INTERACTION_EVENT, record)
        )

    def send_raw(self, topic: str, key: str | None, value: bytes) -> None:
        """Publish bytes as they are (tools and tests that need malformed records)."""
        self._producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
        self._producer.poll(0)

    def _send_batch(self, voice_id: str) -> None:
        events = self._pending.pop(voice_id, [])
        if events:
            self._produce(self.topics.voice_events, voice_id, self.codec.encode_voice_batch(events))

    def flush_batches(self) -> None:
        for voice_id in list(self._pending):
            self._send_batch(voice_id)

    def flush(self, timeout: float = 30.0) -> int:
        """Send partial batches and wait for delivery; returns records still undelivered."""
        self.flush_batches()
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 30.0) -> None:
        remaining = self.flush(timeout)
        if remaining:
            log.error("%d records were not delivered within %.0fs", remaining, timeout)

    def __enter__(self) -> VoiceProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
