"""What the worker's confluent-kafka consumers share: the restart loop, the consumer's
configuration, health, turning a ``consume`` result into a :class:`SourceBatch`, and the
commit.

Faust's per-record path (aiokafka, the conductor, an Event per record) bounded the worker
at about 15k records/s on one loop it shares with everything else; ``consume`` in a thread
of its own returns up to tens of thousands of records for one pass of batch code.

Each consumer is a static member of its group (``group.instance.id``): a worker that
restarts, after a crash too, gets its partitions back at once instead of waiting for the
group to give up on its previous incarnation (45 s by default).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from deltaomega.config import Settings
from deltaomega.errors import DeliveryError, ServiceUnavailableError
from deltaomega.kafka_clients import KafkaProbe, client_config
from deltaomega.metrics import CONSUMER_LAG, CONSUMER_RESTARTS
from deltaomega.outages import outage
from deltaomega.streams.outputs import BatchOutputs
from deltaomega.streams.window_agent import SourceBatch
from deltaomega.threads import in_thread

log = logging.getLogger(__name__)

_MAX_RESTART_DELAY_SECONDS = 10.0
_LAG_EVERY_SECONDS = 5.0
# The batch is replayed by the partition's next owner.
_LOST_COMMIT = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._ASSIGNMENT_LOST,  # noqa: SLF001 - librdkafka's local error codes
}


def instance_id(settings: Settings) -> str:
    """This worker's stable name in its consumer groups: the setting, or the host and the
    state directory (a worker keeps its directory across restarts, and two workers on one
    host have two)."""
    if settings.instance_id:
        return settings.instance_id
    where = hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{where}"


@dataclass
class ConsumerHealth:
    """What readiness reports about one consumer (times are ``time.monotonic``)."""

    name: str
    #: starting | restoring | running | restarting | stopped
    state: str = "starting"
    started_at: float = 0.0
    last_poll_at: float | None = None
    last_batch_at: float | None = None
    consecutive_failures: int = 0
    #: the last failure's kind (an exception type): never its text, which may hold internals
    last_failure: str | None = None
    lag: int | None = None

    def __post_init__(self) -> None:
        self.started_at = time.monotonic()

    def polled(self, empty: bool) -> None:
        self.last_poll_at = time.monotonic()
        if self.state in ("starting", "restarting"):
            self.state = "running"
        if empty:
            self.consecutive_failures = 0

    def landed(self) -> None:
        self.last_batch_at = time.monotonic()
        self.consecutive_failures = 0

    def failed(self, exc: BaseException) -> None:
        self.consecutive_failures += 1
        self.last_failure = type(exc).__name__

    def problem(self, now: float, stale_seconds: float) -> str | None:
        """Why this consumer is not ready, or None."""
        if self.state == "restoring":
            return "restoring its open windows from the changelog"
        if self.state in ("starting", "stopped"):
            return self.state
        if self.consecutive_failures:
            return f"failing ({self.consecutive_failures} in a row, last {self.last_failure})"
        if self.last_poll_at is None or now - self.last_poll_at > stale_seconds:
            return f"no successful poll for {stale_seconds:.0f} s"
        return None

    def report(self, now: float) -> dict[str, Any]:
        def age(at: float | None) -> float | None:
            return None if at is None else round(now - at, 3)

        return {
            "state": self.state,
            "last_poll_age_seconds": age(self.last_poll_at),
            "last_batch_age_seconds": age(self.last_batch_at),
            "consecutive_failures": self.consecutive_failures,
            "last_failure": self.last_failure,
            "lag": self.lag,
        }


class BatchConsumer:
    """Base of the worker's consumers; subclasses implement :meth:`_consume`."""

    def __init__(self, settings: Settings, name: str, group_id: str, outputs: BatchOutputs) -> None:
        self.settings = settings
        self.name = name
        self.group_id = group_id
        self.outputs = outputs
        self.health = ConsumerHealth(name)
        self._lag_at = 0.0
        self._probe = KafkaProbe()

    async def run(self) -> None:
        """Consume until cancelled; an error restarts the consumer from the last commit."""
        delay = 0.5
        try:
            while True:
                try:
                    await self._consume()
                except (KafkaException, DeliveryError, ServiceUnavailableError) as exc:
                    self._failed(exc)
                    if not outage("kafka").down:  # during an outage, the tracker speaks
                        log.warning(
                            "%s consumer failed (%s); restarting in %.1fs", self.name, exc, delay
                        )
                except Exception as exc:  # noqa: BLE001 - a bug must not end consumption for good
                    self._failed(exc)
                    log.exception("%s consumer failed; restarting in %.1fs", self.name, delay)
                await asyncio.sleep(delay)
                # Back off while failures follow each other; start over once a batch landed.
                delay = 0.5 if self.health.consecutive_failures <= 1 else delay * 2
                delay = min(delay, _MAX_RESTART_DELAY_SECONDS)
        finally:
            self.health.state = "stopped"
            await in_thread(self.outputs.close)

    def _failed(self, exc: BaseException) -> None:
        self.health.failed(exc)
        self.health.state = "restarting"
        CONSUMER_RESTARTS.labels(self.name).inc()

    async def _consume(self) -> None:
        raise NotImplementedError

    def consumer_config(self) -> dict[str, Any]:
        session_ms = int(self.settings.consumer_session_timeout_seconds * 1000)
        return {
            **client_config(self.settings, f"{self.settings.app_id}-{self.name}"),
            "group.id": self.group_id,
            "group.instance.id": f"{self.group_id}-{instance_id(self.settings)}",
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(100, session_ms // 5),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }

    def poll(self, consumer: Consumer, size: int, within: float) -> list[Message]:
        """``consume``, plus what health needs (in the consumer's thread)."""
        messages: list[Message] = consumer.consume(size, within)
        now = time.monotonic()
        self.health.polled(empty=not messages)
        kafka = outage("kafka")
        if kafka.down:
            self._probe(consumer)
        elif messages:
            kafka.answered()
        if now - self._lag_at > _LAG_EVERY_SECONDS:
            self._lag_at = now
            self._measure_lag(consumer)
        return messages

    def _measure_lag(self, consumer: Consumer) -> None:
        """Records behind the log end, from the last fetch's watermarks (no broker call)."""
        try:
            positions = consumer.position(consumer.assignment())
        except KafkaException:
            return
        lag = 0
        for tp in positions:
            if tp.offset < 0:
                continue
            try:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0:
                lag += max(0, high - tp.offset)
        self.health.lag = lag
        CONSUMER_LAG.labels(self.name).set(lag)

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
                if error.code() != KafkaError._PARTITION_EOF:  # noqa: SLF001
                    log.warning("%s consumer: %s", self.name, error)
            elif owned is None or message.partition() in owned:
                by_topic.setdefault(cast(str, message.topic()), []).append(message)
        return {
            topic: SourceBatch(
                topic=topic,
                keys=[m.key() for m in good],
                values=[m.value() for m in good],
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
        self.health.landed()
