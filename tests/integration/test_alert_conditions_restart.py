"""The alert conditions table across a restart of the control plane, on the real broker: its
changelog (written through the control plane's librdkafka producer, not Faust's) is read
back by Faust's recovery, so a condition that persists over the restart is the same
condition, counted on, and nobody is notified of it again."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from deltaomega.config import Settings
from deltaomega.control.app import control_app
from deltaomega.control.runner import ControlPlane
from deltaomega.models.alerts import alert_record
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import ALERT
from deltaomega.security.audit import AuditTrail
from deltaomega.topics import Topics, ensure_topics
from tests.alert_tools import webhook_routing
from tests.kafka_tools import produce_avro, read_topic, wait_for_records
from tests.receivers import HttpReceiver, http_receiver

W = 10_000


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from http_receiver()


def _wait(what: str, done: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_condition_persisting_over_a_restart_is_recovered_and_not_notified_again(
    settings: Settings, receiver: HttpReceiver
) -> None:
    ensure_topics(settings)
    topics = Topics.from_settings(settings)
    codec = AvroCodec.from_settings(settings)
    routing = webhook_routing(f"{receiver.url}/hook")
    window = int(time.time() * 1000) // W * W

    def plane() -> ControlPlane:
        running = ControlPlane(
            lambda: control_app(settings, codec, AuditTrail(settings, codec), (), routing)
        )
        running.start()
        _wait("the control plane to start", lambda: running.state == "ok")
        return running

    def alert(subject: str, start: int) -> None:
        now = int(time.time() * 1000)
        record = alert_record(
            "conflict", subject, start, "CRITICAL", "m", 0.9, 0.8, ["separate them"], "v1", now
        )
        produce_avro(settings, topics.alerts, subject, ALERT, record)

    def opened() -> Counter[str]:
        return Counter(
            r.json()["condition"]["subject"]
            for r in receiver.on("/hook")
            if r.json()["kind"] == "opened"
        )

    first = plane()
    try:
        alert("a|b", window)
        _wait("the first notice", lambda: opened()["a|b"] == 1)
    finally:
        first.stop()
    second = plane()
    try:
        alert("a|b", window + W)  # the same condition, its next window
        alert("c|d", window + W)  # a new one
        statuses = wait_for_records(settings, topics.alert_status, 3, timeout=60)
        _wait("the second notice", lambda: sum(opened().values()) == 2)
    finally:
        second.stop()
    ab = [s for key, s in statuses if key == b"conflict:a|b"]
    assert [(s["windows"], s["version"], s["notifications"]) for s in ab] == [(1, 1, 1), (2, 2, 1)]
    assert ab[0]["condition_id"] == ab[1]["condition_id"] == f"conflict:a|b@{window}"
    assert ab[1]["last_window"] == window + W and ab[1]["first_window"] == window
    assert opened() == Counter({"a|b": 1, "c|d": 1})
    # The changelog Faust recovered from: one record per change, as Faust writes them.
    changelog = f"{settings.topic_prefix}{settings.app_id}-control-alert-conditions-changelog"
    records = read_topic(settings.kafka_bootstrap, changelog)
    assert sorted(json.loads(r.key or b"") for r in records) == [
        "conflict:a|b",
        "conflict:a|b",
        "conflict:c|d",
    ]
    last = {json.loads(r.key or b""): json.loads(r.value or b"") for r in records}
    assert last["conflict:a|b"]["windows"] == 2 and last["conflict:c|d"]["windows"] == 1
