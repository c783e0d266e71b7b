"""Delivery of notifications: each (notification, channel) in a task of its own, at most a
few at a time per channel, retried with exponential back-off and full jitter (tenacity)
while the failure is one that trying again could help. A failing or silent channel holds up
nothing but its own deliveries; every attempt is recorded and counted."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from deltaomega.alerting.notifications import Notification
from deltaomega.alerting.senders import ChannelError, Sender

log = logging.getLogger(__name__)

#: Deliveries in flight per channel; more wait their turn.
PER_CHANNEL = 8

Record = Callable[[dict[str, Any]], Awaitable[None]]


class Observer(Protocol):
    """Where the counts go (the courier sends them to its parent's metrics)."""

    def attempted(self, channel: str, outcome: str) -> None: ...

    def delivered(self, channel: str, seconds: float) -> None: ...


class Dispatcher:
    def __init__(
        self,
        senders: dict[str, Sender],
        record: Record,
        attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        give_up_seconds: float = 600.0,
        *,
        observer: Observer,
    ) -> None:
        self.senders = senders
        self.record = record
        self.attempts = attempts
        self.backoff = backoff_seconds
        self.max_backoff = max_backoff_seconds
        self.give_up = give_up_seconds
        self.observer = observer
        self._slots = {name: asyncio.Semaphore(PER_CHANNEL) for name in senders}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, notification: Notification) -> None:
        """Starts its deliveries (channels that do not take its kind are skipped)."""
        for name in notification.channels:
            sender = self.senders.get(name)
            if sender is None or not sender.wants(notification.kind):
                continue
            task = asyncio.create_task(self._deliver(sender, notification))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> None:
        """Waits up to ``timeout`` seconds for deliveries in flight."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def _deliver(self, sender: Sender, notification: Notification) -> None:
        started = time.monotonic()
        attempt = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.give_up),
            wait=wait_random_exponential(multiplier=self.backoff, max=self.max_backoff),
            retry=retry_if_exception(lambda e: isinstance(e, ChannelError) and e.retry),
            reraise=True,
        )
        try:
            async with self._slots[sender.name]:
                async for trying in retrying:
                    with trying:
                        attempt += 1
                        await self._attempt(sender, notification, attempt)
        except ChannelError as exc:
            log.warning(
                "gave up delivering %s of %s to %s after %d attempts: %s",
                notification.kind,
                notification.condition["condition_id"],
                sender.name,
                attempt,
                exc,
            )
        except Exception:  # noqa: BLE001 - a sender's bug must not end the control plane
            log.exception("delivering to %s failed unexpectedly", sender.name)
        else:
            self.observer.delivered(sender.name, time.monotonic() - started)

    async def _attempt(self, sender: Sender, notification: Notification, attempt: int) -> None:
        sent = time.monotonic()
        status: int | None = None
        error = ""
        outcome = "DELIVERED"
        try:
            status = await sender.send(notification)
        except ChannelError as exc:
            status, error = exc.status_code, str(exc)
            last = attempt >= self.attempts or not exc.retry
            outcome = "FAILED" if last else "RETRYING"
            raise
        finally:
            self.observer.attempted(sender.name, outcome.lower())
            await self.record(
                {
                    "delivery_id": uuid.uuid4().hex,
                    "notification_id": notification.notification_id,
                    "condition_id": notification.condition["condition_id"],
                    "kind": notification.kind,
                    "severity": notification.severity,
                    "channel": sender.name,
                    "channel_type": sender.type,
                    "attempt": attempt,
                    "outcome": outcome,
                    "status_code": status,
                    "error": error[:1000],
                    "latency_ms": (time.monotonic() - sent) * 1000,
                    "attempted_at": int(time.time() * 1000),
                }
            )
