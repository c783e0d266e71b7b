"""End to end: known events through Kafka, the Faust worker and chdb, read by SQL and REST."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from confluent_kafka import Consumer

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.schemas import INTERACTION_EVENT, VOICE_EVENT, AvroCodec
from deltaomega.sinks.clickhouse import ClickHouse
from deltaomega.streams.deadletter import REASON_HEADER, SOURCE_TOPIC_HEADER
from tests import api_client
from tests.conftest import RunningService, wait_for

T0 = 1_800_000_000_000  # a multiple of the 10 s window
VOICES = ["va", "vb", "vc"]
METRICS = ("temperature", "activation", "stress", "influence")

# (step, event offsets from T0 in ms, "single" or "batch", counted in a window?)
# All voices advance in lockstep, so a partition holding several voices sees the same
# event times for each, and lateness is the same whichever partition a voice lands on.
PLAN: list[tuple[list[int], str, bool]] = [
    ([1_000, 3_000], "single", True),
    ([8_000, 2_000, 9_500], "batch", True),  # out of order inside a batch record
    ([12_000], "single", True),  # watermark 7 s
    ([9_000], "single", True),  # late but inside the grace period: window [0,10) still open
    ([14_000, 16_000], "batch", True),  # watermark 11 s: window [0,10) closes
    ([5_000], "single", False),  # its window closed: late, dropped
    ([25_000], "single", True),  # watermark 20 s: [10,20) closes
    ([21_000], "single", True),
    ([45_000], "single", False),  # watermark 40 s: [20,30) closes; [40,50) stays open
]


def metrics_for(n: int) -> dict[str, float]:
    return {
        "temperature": 0.5 + 0.01 * n,
        "activation": 0.2 + 0.005 * n,
        "stress": (n % 7) / 10,
        "influence": 1.0 - 0.004 * n,
    }


def test_known_events_give_exact_windows_in_clickhouse_and_api(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = settings_factory(window_seconds=10, grace_seconds=5)
    service = service_factory(settings)
    codec = AvroCodec()
    producer = VoiceProducer(settings, codec)
    topic = producer.topics.voice_events
    expected: dict[tuple[str, int], list[tuple[int, dict[str, float]]]] = defaultdict(list)
    n = 0
    raw_events = 0
    malformed_sent: list[tuple[str, str]] = []  # (key, expected reason fragment)
    for step, (offsets, shape, counted) in enumerate(PLAN):
        for voice in VOICES:
            events = []
            for offset in offsets:
                n += 1
                event = {
                    "event_id": f"{voice}-{n}",
                    "voice_id": voice,
                    "ts": T0 + offset,
                    "context": {"step": str(step)},
                    **metrics_for(n),
                }
                events.append(event)
                if counted:
                    start = T0 + offset - offset % 10_000
                    expected[(voice, start)].append((offset, metrics_for(n)))
            raw_events += len(events)
            if shape == "batch":
                producer.send_raw(topic, voice, codec.encode_voice_batch(events))
            else:
                for event in events:
                    producer.send_voice_event(event)
        if step == 4:  # malformed records in the middle of the stream
            good = codec.encode(
                VOICE_EVENT,
                {
                    "event_id": "x",
                    "voice_id": "va",
                    "ts": T0 + 15_000,
                    "context": {},
                    **metrics_for(0),
                },
            )
            nan = codec.encode(
                VOICE_EVENT,
                {
                    "event_id": "nan",
                    "voice_id": "va",
                    "ts": T0 + 15_000,
                    "context": {},
                    **{**metrics_for(0), "stress": math.nan},
                },
                validate=False,
            )
            wrong_type = codec.encode(
                INTERACTION_EVENT,
                {
                    "event_id": "i",
                    "ts": T0,
                    "source": "va",
                    "target": "vb",
                    "kind": "COOPERATION",
                    "strength": 0.5,
                    "context": {},
                },
            )
            bad_batch = codec.encode(
                "deltaomega.VoiceEventBatch",
                {
                    "events": [
                        {
                            "event_id": "ok",
                            "voice_id": "vb",
                            "ts": T0 + 15_000,
                            "context": {},
                            **metrics_for(0),
                        },
                        {
                            "event_id": "",
                            "voice_id": "vb",
                            "ts": T0 + 15_000,
                            "context": {},
                            **metrics_for(0),
                        },
                    ]
                },
                validate=False,
            )
            for key, value, reason in [
                ("va", b"\x00\x01garbage", "Confluent-framed record (schema id"),
                ("vb", good[:-6], "payload does not decode"),
                ("va", nan, "stress: NaN is not allowed"),
                ("vc", wrong_type, "expected VoiceEvent or VoiceEventBatch"),
                ("vb", bad_batch, "event_id: is missing or empty"),
                ("vc", b"", "too short"),
            ]:
                producer.send_raw(topic, key, value)
                malformed_sent.append((key, reason))
    # One interaction window, closed by a later interaction on the same key.
    for ts, strength in [(1_000, 0.4), (3_000, 0.6), (45_000, 0.9)]:
        producer.send_interaction(
            {
                "event_id": f"i-{ts}",
                "ts": T0 + ts,
                "source": "va",
                "target": "vb",
                "kind": "COOPERATION",
                "strength": strength,
                "context": {},
            }
        )
    bad_interaction = codec.encode(
        INTERACTION_EVENT,
        {
            "event_id": "neg",
            "ts": T0,
            "source": "va",
            "target": "vb",
            "kind": "COMPETITION",
            "strength": -0.5,
            "context": {},
        },
        validate=False,
    )
    producer.send_raw(producer.topics.interactions, "va", bad_interaction)
    malformed_sent.append(("va", "strength: must not be negative, got -0.5"))
    assert producer.flush() == 0

    db = settings.clickhouse_database

    def scalar(sql: str) -> int:
        return int(clickhouse.call(lambda c: c.query(sql).result_rows[0][0]))

    assert len(expected) == 9
    wait_for(
        lambda: scalar(f"SELECT count() FROM {db}.voice_states FINAL") >= 9,
        what="9 closed voice windows in ClickHouse",
    )
    wait_for(
        lambda: scalar(f"SELECT count() FROM {db}.voice_events FINAL") == raw_events,
        what="every raw event in ClickHouse",
    )
    wait_for(
        lambda: scalar(f"SELECT count() FROM {db}.interaction_states FINAL") == 1,
        what="the closed interaction window",
    )

    rows = clickhouse.call(
        lambda c: (
            c.query(
                "SELECT voice_id, toUnixTimestamp64Milli(window_start), count, "
                + ", ".join(f"{m}_{s}" for m in METRICS for s in ("mean", "min", "max", "last"))
                + f" FROM {db}.voice_states FINAL ORDER BY voice_id, window_start"
            ).result_rows
        )
    )
    assert len(rows) == 9, "the window at 40 s must still be open"
    stored = {(r[0], r[1]): r for r in rows}
    assert set(stored) == set(expected)
    for key, events in expected.items():
        row = stored[key]
        values = np.array([[m[name] for name in METRICS] for _, m in events])
        last = values[max(range(len(events)), key=lambda i: events[i][0])]
        assert row[2] == len(events), key
        for j, _name in enumerate(METRICS):
            got = row[3 + 4 * j : 7 + 4 * j]
            want = (values[:, j].mean(), values[:, j].min(), values[:, j].max(), last[j])
            assert np.allclose(got, want, rtol=0, atol=1e-9), (key, _name, got, want)
    counts = sorted({row[2] for row in rows})
    assert counts == [2, 3, 6]  # windows [0,10), [10,20), [20,30): the late event is not in

    interaction = clickhouse.call(
        lambda c: (
            c.query(
                f"SELECT source, target, kind, count, strength_mean, strength_last "
                f"FROM {db}.interaction_states FINAL"
            ).result_rows
        )
    )
    assert interaction[0][:4] == ("va", "vb", "COOPERATION", 2)
    assert math.isclose(interaction[0][4], 0.5, abs_tol=1e-12)
    assert math.isclose(interaction[0][5], 0.6, abs_tol=1e-12)

    # The same values from the API.
    response = api_client.get(
        f"{service.url}/api/v1/voices/vb/state", params={"include_history": "true"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["state"]["window_start"] == "2027-01-15T08:00:20Z"
    assert [h["count"] for h in body["history"]] == [6, 3, 2]
    for h in body["history"]:
        start = int(np.datetime64(h["window_start"].rstrip("Z"), "ms").astype(np.int64))
        row = stored[("vb", start)]
        assert h["count"] == row[2]
        for j, name in enumerate(METRICS):
            assert h[name]["mean"] == row[3 + 4 * j]
            assert h[name]["last"] == row[6 + 4 * j]
    voices = api_client.get(f"{service.url}/api/v1/voices").json()["voices"]
    assert [v["voice_id"] for v in voices] == VOICES

    # Every malformed record is in the dead-letter topic with its reason.
    dead = consume_all(settings, producer.topics.deadletter, len(malformed_sent))
    assert len(dead) == len(malformed_sent)
    reasons = sorted(headers[REASON_HEADER] for headers in dead)
    for _key, fragment in malformed_sent:
        assert any(fragment in reason for reason in reasons), (fragment, reasons)
    assert {h[SOURCE_TOPIC_HEADER] for h in dead} == {
        producer.topics.voice_events,
        producer.topics.interactions,
    }

    # And the worker is still running: every consumer ready.
    ready = api_client.get(f"{service.url}/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    consumers = ("consumer voice", "consumer interaction", "consumer sinks")
    assert {name: checks[name] for name in consumers} == dict.fromkeys(consumers, "ok")


def consume_all(settings: Settings, topic: str, expected: int) -> list[dict[str, str]]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    out: list[dict[str, str]] = []
    try:
        for _ in range(60):
            for message in consumer.consume(num_messages=100, timeout=0.5):
                if message.error() is None:
                    out.append({k: v.decode() for k, v in (message.headers() or [])})
            if len(out) >= expected:
                # Read a little longer: more than expected would be a failure too.
                out.extend(
                    {k: v.decode() for k, v in (m.headers() or [])}
                    for m in consumer.consume(num_messages=100, timeout=2.0)
                    if m.error() is None
                )
                break
    finally:
        consumer.close()
    return out
