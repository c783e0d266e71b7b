"""The WebSocket API with a real client (the `websockets` library): subscribe, filter,
unsubscribe, resume, errors as messages, authentication, compression, and a client too slow
to keep up dropped while another gets every record."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from deltaomega.config import Settings
from deltaomega.models.alerts import alert_record
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import ALERT, METRICS, VOICE_STATE
from deltaomega.security.roles import Role
from deltaomega.topics import Topics
from tests import api_client
from tests.conftest import RunningService, wait_for

T0 = 1_800_000_000_000


def _state(voice: str, window: int, level: float) -> dict[str, Any]:
    record: dict[str, Any] = {
        "window_start": T0 + window * 10_000,
        "window_end": T0 + (window + 1) * 10_000,
        "voice_id": voice,
        "count": 10,
    }
    for m in METRICS:
        for stat in ("mean", "min", "max", "last"):
            record[f"{m}_{stat}"] = level
    return record


def _produce(settings: Settings, records: list[tuple[str, str, dict[str, Any]]]) -> None:
    codec = AvroCodec.from_settings(settings)
    topics = Topics.from_settings(settings)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for schema, key, record in records:
        topic = topics.voice_states if schema == VOICE_STATE else topics.alerts
        producer.produce(topic, codec.encode(schema, record), key.encode())
        producer.poll(0)
    assert producer.flush(10) == 0


@contextmanager
def _socket(url: str, role: Role = Role.VIEWER, **kwargs: Any) -> Iterator[ClientConnection]:
    ws_url = url.replace("http://", "ws://") + "/api/v1/ws"
    with connect(ws_url, additional_headers=api_client.auth(role), **kwargs) as ws:
        yield ws


def _ask(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(message))
    return _next(ws)


def _next(ws: ClientConnection, timeout: float = 20.0) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=timeout)))


def test_subscribe_filter_unsubscribe_resume_and_errors(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(models_enabled=False)
    service = service_factory(settings, worker=False)
    with _socket(service.url) as ws:
        # compression was negotiated
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        assert _ask(ws, {"type": "ping"}) == {"type": "pong"}
        ack = _ask(
            ws,
            {
                "type": "subscribe",
                "id": "a",
                "topic": "voice_states",
                "filter": {"voice_ids": ["a"]},
            },
        )
        assert (ack["type"], ack["id"], ack["topic"]) == ("subscribed", "a", "voice_states")
        alerts = _ask(ws, {"type": "subscribe", "id": "crit", "topic": "critical_alerts"})
        assert alerts["type"] == "subscribed"

        _produce(
            settings,
            [(VOICE_STATE, v, _state(v, w, 0.1 * (w + 1))) for w in range(3) for v in ("a", "b")]
            + [
                (ALERT, s, alert_record("conflict", s, T0, sev, "m", 0.9, 0.85, ["act"], "v1", T0))
                for s, sev in (("a->b", "CRITICAL"), ("a->c", "WARNING"), ("c", "CRITICAL"))
            ],
        )
        got = [_next(ws) for _ in range(5)]
        updates = [m for m in got if m["type"] == "voice_state_update"]
        system = [m for m in got if m["type"] == "system_alert"]
        assert [u["data"]["voice_id"] for u in updates] == ["a", "a", "a"]
        assert [u["subscription"] for u in updates] == ["a", "a", "a"]
        assert updates[0]["data"]["changes"] is None
        for update in updates[1:]:
            assert update["data"]["changes"] == pytest.approx(dict.fromkeys(METRICS, 0.1))
        assert updates[0]["data"]["window_start"] == "2027-01-15T08:00:00Z"
        assert sorted(
            (m["data"]["alert_id"], tuple(m["data"]["affected_voices"])) for m in system
        ) == [
            (f"conflict:a->b:{T0}", ("a", "b")),
            (f"conflict:c:{T0}", ("c",)),
        ]
        assert all(m["data"]["severity"] == "CRITICAL" for m in system)
        assert system[0]["data"]["recommended_actions"] == ["act"]

        # resume after the first update: the two later windows of a, nothing twice
        first_cursor = updates[0]["cursor"]
        resumed = _ask(
            ws,
            {
                "type": "subscribe",
                "id": "again",
                "topic": "voice_states",
                "filter": {"voice_ids": ["a"]},
                "cursor": first_cursor,
            },
        )
        assert resumed["type"] == "subscribed"
        replayed = [_next(ws) for _ in range(2)]
        assert [(m["subscription"], m["data"]["window_start"][-3:-1]) for m in replayed] == [
            ("again", "10"),
            ("again", "20"),
        ]
        assert replayed[0]["data"]["changes"] is None  # this subscription's first of a

        assert _ask(ws, {"type": "unsubscribe", "id": "a"}) == {"type": "unsubscribed", "id": "a"}
        _produce(settings, [(VOICE_STATE, "a", _state("a", 3, 0.5))])
        after = _next(ws)
        assert (after["subscription"], after["data"]["window_start"][-3:-1]) == ("again", "30")

        # refused messages are answered, and the connection stays
        errors = [
            _ask(ws, message)
            for message in (
                "not json",
                {"type": "dance"},
                {"type": "subscribe", "id": "x", "topic": "weather"},
                {
                    "type": "subscribe",
                    "id": "x",
                    "topic": "voice_states",
                    "filter": {"voice_ids": "a"},
                },
                {"type": "subscribe", "id": "x", "topic": "voice_states", "filter": {"colour": 1}},
                {"type": "subscribe", "id": "x", "topic": "voice_states", "cursor": "0:-1,9:0"},
                {"type": "subscribe", "id": "x", "topic": "system_evolution", "cursor": "0:-1"},
                {"type": "subscribe", "id": "again", "topic": "voice_states"},
                {"type": "unsubscribe", "id": "nope"},
            )
        ]
        assert [(e["type"], e["status"], e["field"]) for e in errors] == [
            ("error", 400, None),
            ("error", 422, "type"),
            ("error", 422, "topic"),
            ("error", 422, "filter.voice_ids"),
            ("error", 422, "filter.colour"),
            ("error", 422, "cursor"),
            ("error", 422, "cursor"),
            ("error", 409, "id"),
            ("error", 404, "id"),
        ]
        assert errors[5]["message"].startswith("names partition 9, which")
        assert errors[2]["message"] == (
            "must be one of voice_states, interaction_events, system_wide_patterns, "
            "critical_alerts, system_evolution"
        )
        assert _ask(ws, {"type": "ping"}) == {"type": "pong"}


def test_a_websocket_needs_credentials(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    service = service_factory(settings_factory(models_enabled=False), worker=False)
    ws_url = service.url.replace("http://", "ws://") + "/api/v1/ws"
    with pytest.raises(InvalidStatus) as refused:
        with connect(ws_url):
            pass
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        with connect(ws_url, additional_headers={"X-API-Key": "dok_" + "0" * 43}):
            pass


def test_an_idle_socket_is_closed(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    service = service_factory(
        settings_factory(models_enabled=False, ws_idle_seconds=1.0), worker=False
    )
    with _socket(service.url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert closed.value.rcvd.reason == "idle for 1 s with no subscription"


def test_a_client_too_slow_is_dropped_and_the_others_get_everything(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(models_enabled=False, feed_queue_records=1000)
    service = service_factory(settings, worker=False)
    # 2,000 records a second: a reader on a busy 2-core machine keeps up; one that reads
    # nothing passes 1,000 waiting within a second.
    waves, size = 60, 100
    count = waves * size

    def publish() -> None:  # a steady stream, as windows close
        for wave in range(waves):
            _produce(
                settings,
                [
                    (VOICE_STATE, f"v{n % 50}", _state(f"v{n % 50}", n, 0.5))
                    for n in range(wave * size, (wave + 1) * size)
                ],
            )
            time.sleep(0.05)

    # The slow client reads nothing: its library stops taking frames, and with a small
    # receive buffer and no compression TCP soon pushes back on the server.
    tight = socket.socket()
    tight.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    tight.connect(("127.0.0.1", int(service.url.rsplit(":", 1)[1])))
    with (
        _socket(service.url, sock=tight, max_queue=1, compression=None) as slow,
        _socket(service.url) as keeping_up,
    ):
        for ws in (slow, keeping_up):
            answer = _ask(ws, {"type": "subscribe", "id": "s", "topic": "voice_states"})
            assert answer["type"] == "subscribed"
        publisher = threading.Thread(target=publish)
        publisher.start()
        received = [_next(keeping_up) for _ in range(count)]
        publisher.join()
        assert len({(m["data"]["voice_id"], m["data"]["window_start"]) for m in received}) == count
        topic = Topics.from_settings(settings).voice_states
        wait_for(lambda: _dropped(service.url, topic) == 1, 30, "the slow subscriber dropped")
        messages = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                messages.append(_next(slow))
        assert messages[-1] == {
            "type": "dropped",
            "id": "s",
            "reason": "too slow: more than 1000 records waiting",
        }
        assert len(messages) - 1 < count
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


def _dropped(url: str, topic: str) -> float:
    """Subscribers of ``topic`` dropped as too slow, from the process's metrics."""
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == "deltaomega_feed_subscribers_dropped_total" and sample.labels == {
                "topic": topic,
                "reason": "too slow",
            }:
                return sample.value
    return 0.0
