"""The API's writes to Kafka: one idempotent producer; a write answers only once the broker
has the record, and a broker that does not take it within a few seconds is a 503."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from deltaomega.config import Settings
from deltaomega.errors import KafkaUnavailableError
from deltaomega.kafka_clients import client_config, unavailable
from deltaomega.threads import in_thread

_DELIVERY_SECONDS = 5.0


class KafkaWrites:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Producer | None = None

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {
                    **client_config(self.settings, f"{self.settings.app_id}-api-writes"),
                    "enable.idempotence": True,
                    "linger.ms": 0,
                    # Java's and aiokafka's default, so a key lands where other clients put it
                    "partitioner": "murmur2_random",
                }
            )
        return self._producer

    async def send(self, topic: str, key: str, value: bytes) -> None:
        """Produce and wait for the broker's acknowledgement (KafkaUnavailableError if none)."""
        await in_thread(self._send, topic, key, value)

    def _send(self, topic: str, key: str, value: bytes) -> None:
        outcome: list[KafkaError | None] = []

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            outcome.append(err)

        try:
            self.producer.produce(topic, value, key.encode(), on_delivery=delivered)
        except (KafkaException, BufferError) as exc:
            raise unavailable(self.settings, exc) from exc
        self.producer.flush(_DELIVERY_SECONDS)
        if not outcome or outcome[0] is not None:
            detail = outcome[0].str() if outcome and outcome[0] is not None else "no answer"
            raise KafkaUnavailableError(self.settings.kafka_bootstrap, detail)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(2.0)
            self._producer = None
