"""The audit trail: every write, approval, automatic action and refused request, as an Avro
``AuditEvent`` on the audit topic; the worker's sink puts it in ClickHouse ``audit_log``.

Through Kafka rather than straight into ClickHouse: the API, the control plane and the
`deltaomega auth` commands all write it, and only the worker may open the embedded
ClickHouse. A request never waits for its audit record; a command flushes before it exits.
"""

from __future__ import annotations

import getpass
import json
import logging
import time
import uuid
from enum import StrEnum
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from deltaomega.config import Settings
from deltaomega.kafka_clients import client_config, unavailable
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import AUDIT_EVENT
from deltaomega.security.tokens import Principal
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

_CLOSE_FLUSH_SECONDS = 5.0


class Outcome(StrEnum):
    OK = "OK"
    DENIED = "DENIED"
    FAILED = "FAILED"


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, default=str)


class AuditTrail:
    def __init__(self, settings: Settings, codec: AvroCodec | None = None) -> None:
        self.settings = settings
        self.codec = codec or AvroCodec.from_settings(settings)
        self.topic = Topics.from_settings(settings).audit
        self._producer: Producer | None = None
        self.failed = 0

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {
                    **client_config(self.settings, f"{self.settings.app_id}-audit"),
                    "enable.idempotence": True,
                    "linger.ms": 20,
                }
            )
        return self._producer

    def record(
        self,
        action: str,
        outcome: Outcome,
        *,
        principal: Principal | None = None,
        subject: str | None = None,
        method: str | None = None,
        target: str = "",
        rationale: str = "",
        request_id: str = "",
        client: str = "",
        status: int = 0,
        detail: str = "",
        before: Any = None,
        after: Any = None,
    ) -> dict[str, Any]:
        """Send one event (without waiting); the record as sent."""
        event: dict[str, Any] = {
            "event_id": uuid.uuid4().hex,
            "occurred_at": int(time.time() * 1000),
            "principal": subject or (principal.subject if principal else "unknown"),
            "role": principal.role.label if principal else "",
            "auth_method": method or (principal.method if principal else "none"),
            "action": action,
            "target": target,
            "rationale": rationale,
            "request_id": request_id,
            "client": client,
            "outcome": outcome.value,
            "status": status,
            "detail": detail,
            "before": _json(before),
            "after": _json(after),
        }
        value = self.codec.encode(AUDIT_EVENT, event)
        try:
            self.producer.produce(
                self.topic, value, event["event_id"].encode(), on_delivery=self._delivered
            )
            self.producer.poll(0)
        except (KafkaException, BufferError) as exc:
            self.failed += 1
            log.error("audit event %s not sent (%s): %s", action, exc, event)
        return event

    def record_cli(self, action: str, target: str, after: Any = None, before: Any = None) -> None:
        """An action of a `deltaomega` command, by the OS user running it; waits for Kafka."""
        self.record(
            action,
            Outcome.OK,
            subject=f"cli:{getpass.getuser()}",
            method="cli",
            target=target,
            before=before,
            after=after,
        )
        self.flush(10.0)

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.failed += 1
            log.error("audit event not delivered: %s", err.str())

    def flush(self, timeout: float) -> None:
        if self._producer is not None and self._producer.flush(timeout) > 0:
            raise unavailable(self.settings, TimeoutError("audit events not delivered in time"))

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(_CLOSE_FLUSH_SECONDS)
            self._producer = None
