"""Records a worker batch sends to Kafka (states, dead letters, model outputs), through one
confluent-kafka producer that is flushed before the batch's offsets commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Producer

from deltaomega.config import Settings
from deltaomega.errors import DeliveryError
from deltaomega.kafka_clients import client_config
from deltaomega.streams.window_store import produce

_FLUSH_TIMEOUT_SECONDS = 60.0
_CLOSE_FLUSH_SECONDS = 3.0


def producer_config(settings: Settings, client_id: str) -> dict[str, Any]:
    return {
        **client_config(settings, client_id),
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        # Java's and aiokafka's default, so a key lands where other clients put it.
        "partitioner": "murmur2_random",
        "queue.buffering.max.messages": 1_000_000,
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

    def flush(self) -> None:
        remaining = self.producer.flush(_FLUSH_TIMEOUT_SECONDS)
        if remaining:
            raise DeliveryError(f"{remaining} records not delivered in {_FLUSH_TIMEOUT_SECONDS}s")
        if self.failed:
            failed, self.failed = self.failed, []
            raise DeliveryError(f"{len(failed)} records failed: {failed[0]}")
        # No outage ends here: the delivery reports served now may be of records the broker
        # took before it went away (the consumers' probe says when it is back).
