"""The courier (alert deliveries in a process of its own) against a real webhook receiver on
loopback and the real broker: every notification delivered once, every attempt recorded and
counted in the control plane's metrics, a courier killed mid-run replaced, and a stop that
ends the process within its bounds."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from deltaomega.alerting import courier as courier_module
from deltaomega.alerting.courier import Courier
from deltaomega.alerting.notifications import sample_notification
from deltaomega.alerting.routing import Routing
from deltaomega.config import Settings
from deltaomega.metrics import ALERT_DELIVERIES, ALERT_NOTIFICATIONS
from deltaomega.topics import Topics, ensure_topics
from tests.kafka_tools import wait_for_records
from tests.receivers import HttpReceiver, http_receiver


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from http_receiver()


def _count(channel: str, outcome: str) -> float:
    return float(ALERT_DELIVERIES.labels(channel, outcome)._value.get())


async def _until(what: str, done: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_the_courier_delivers_each_notification_once_and_is_replaced_when_killed(
    settings: Settings, receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(courier_module, "_RESPAWN_SECONDS", 0.5)
    ensure_topics(settings)
    deliveries_topic = Topics.from_settings(settings).alert_deliveries
    routing = Routing.model_validate(
        {
            "channels": {
                "hook": {"type": "webhook", "url": f"{receiver.url}/hook", "secret": "s" * 32},
                "flaky": {"type": "webhook", "url": f"{receiver.url}/flaky", "secret": "s" * 32},
            }
        }
    )
    delivered, retried = _count("hook", "delivered"), _count("flaky", "retrying")
    tests_counted = ALERT_NOTIFICATIONS.labels("test", "INFO")._value.get()

    def notices(first: int, count: int, channels: tuple[str, ...]) -> list[str]:
        ids = []
        for n in range(first, first + count):
            notice = sample_notification("hook", 1_800_000_000_000 + n)
            notice = type(notice)(f"n{n:04d}", "test", notice.condition, channels, n)
            courier.submit(notice)
            ids.append(notice.notification_id)
        return ids

    def arrived(path: str) -> Counter[str]:
        return Counter(r.headers["X-DeltaOmega-Delivery"] for r in receiver.on(path))

    async def scenario() -> None:
        nonlocal courier
        courier = Courier(settings, routing.channels, "http://127.0.0.1:1/console")
        courier.start()
        sent = notices(0, 200, ("hook",)) + notices(200, 1, ("hook", "flaky"))
        await _until("200 + 1 deliveries", lambda: sum(arrived("/hook").values()) == 201)
        await _until("the flaky channel's third try", lambda: len(receiver.on("/flaky")) == 3)
        assert arrived("/hook") == Counter(sent)  # each once
        await _until("the counts back", lambda: _count("hook", "delivered") - delivered == 201)
        assert _count("flaky", "retrying") - retried == 2
        # its records written (a courier killed with records still in its producer's
        # queue loses those, as the control plane did when deliveries were its own)
        await asyncio.to_thread(wait_for_records, settings, deliveries_topic, 204)

        first = courier._process.pid
        os.kill(first, signal.SIGKILL)
        await _until("the dead courier noticed", lambda: courier._inbox.closed, 10)
        await asyncio.sleep(0.6)
        again = notices(201, 5, ("hook",))
        assert courier.restarts == 1 and courier._process.pid != first
        await _until("the new courier's deliveries", lambda: set(again) <= set(arrived("/hook")))
        assert sum(arrived("/hook").values()) == 206

        started = time.monotonic()
        await courier.stop()
        assert time.monotonic() - started < courier_module._EXIT_SECONDS
        assert courier._process.exitcode == 0
        notices(300, 1, ("hook",))  # after the stop: counted, not sent
        await asyncio.sleep(0.3)
        assert sum(arrived("/hook").values()) == 206

    courier: Courier
    asyncio.run(scenario())
    assert ALERT_NOTIFICATIONS.labels("test", "INFO")._value.get() - tests_counted == 207
    records = wait_for_records(settings, deliveries_topic, 209)
    outcomes = Counter((r["channel"], r["outcome"]) for _, r in records)
    assert outcomes == {
        ("hook", "DELIVERED"): 206,
        ("flaky", "RETRYING"): 2,
        ("flaky", "DELIVERED"): 1,
    }
