"""A window clears alert conditions only once its own alerts are in, on the real broker.

A tick's alerts go out ahead of its pattern record (the clock that clears conditions) but on
other partitions, so the control plane may read the record while some of them still wait.
Here the record comes first, the alert of a condition that fires again in that window
1.5 s later (past the dispatch timer's look): the condition must go on, not be resolved and
opened again."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from deltaomega.config import Settings
from deltaomega.control.app import control_app
from deltaomega.control.runner import ControlPlane
from deltaomega.models.alerts import alert_record
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import ALERT, PATTERN
from deltaomega.security.audit import AuditTrail
from deltaomega.topics import Topics, ensure_topics
from tests.alert_tools import pattern_record, webhook_routing
from tests.conftest import wait_for
from tests.kafka_tools import produce_avro, wait_for_records
from tests.receivers import HttpReceiver, http_receiver

W = 10_000


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from http_receiver()


def test_a_window_clears_conditions_only_after_its_own_alerts(
    settings_factory: Callable[..., Settings], receiver: HttpReceiver
) -> None:
    settings = settings_factory(alert_clear_after_seconds=6.0)
    ensure_topics(settings)
    topics = Topics.from_settings(settings)
    codec = AvroCodec.from_settings(settings)
    routing = webhook_routing(f"{receiver.url}/hook", resolve_after_windows=2)
    w0 = (int(time.time() * 1000) - 60_000) // W * W

    def alert(start: int) -> None:
        now = int(time.time() * 1000)
        record = alert_record("conflict", "a|b", start, "CRITICAL", "m", 0.9, 0.8, [], "v1", now)
        produce_avro(settings, topics.alerts, "a|b", ALERT, record)

    def closed(start: int) -> None:
        produce_avro(settings, topics.patterns, "system", PATTERN, pattern_record(start))

    def notices() -> Counter[str]:
        return Counter(r.json()["kind"] for r in receiver.on("/hook"))

    plane = ControlPlane(
        lambda: control_app(settings, codec, AuditTrail(settings, codec), (), routing)
    )
    plane.start()
    try:
        wait_for(lambda: plane.state == "ok", 60, "the control plane to start")
        alert(w0)
        wait_for(lambda: notices() == Counter({"opened": 1}), 60, "the first notice")
        # w0 + 2W closes: two windows since a|b fired, which clears it, unless its alert of
        # w0 + 2W, coming after the window's record, is read in time: it is.
        closed(w0 + 2 * W)
        time.sleep(1.5)
        alert(w0 + 2 * W)
        wait_for_records(settings, topics.alert_status, 2, timeout=60)
        # two more windows without it: now it clears, once, and says so
        closed(w0 + 4 * W)
        statuses = wait_for_records(settings, topics.alert_status, 3, timeout=60)
        wait_for(lambda: notices()["resolved"] == 1, 60, "the resolution")
    finally:
        plane.stop()
    assert [(s["version"], s["state"], s["windows"], s["condition_id"]) for _, s in statuses] == [
        (1, "OPEN", 1, f"conflict:a|b@{w0}"),
        (2, "OPEN", 2, f"conflict:a|b@{w0}"),
        (3, "RESOLVED", 2, f"conflict:a|b@{w0}"),
    ]
    assert notices() == Counter({"opened": 1, "resolved": 1})
