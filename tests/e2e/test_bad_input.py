"""Hostile input costs its own place only: tombstones, ids that break the id rule, records
too large to dead-letter whole, a batch that fails once, a record that fails every time.

Each test checks positions and counts: which records were dead-lettered (by source
offset), that every other event is stored once and counted once, and that the group's
committed offsets reached the log end (the partition moved on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
from prometheus_client import REGISTRY

from deltaomega.config import Settings
from deltaomega.kafka_clients import admin_client
from deltaomega.producer import VoiceProducer
from deltaomega.schemas import INTERACTION_EVENT, AvroCodec
from deltaomega.schemas.records import VOICE_STATE
from deltaomega.sinks.clickhouse import ClickHouse
from deltaomega.streams import window_agent
from deltaomega.streams.deadletter import (
    ERROR_HEADER,
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    TRUNCATED_HEADER,
    source_position,
)
from deltaomega.topics import ensure_topics
from tests import api_client
from tests.api_client import assert_invalid
from tests.conftest import RunningService, voice_event, wait_for
from tests.kafka_tools import committed, log_end, read_topic

T0 = 1_800_000_000_000


def scalar(clickhouse: ClickHouse, sql: str) -> Any:
    return clickhouse.call(lambda c: c.query(sql).result_rows[0][0])


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def drained(settings: Settings, group: str, topic: str) -> bool:
    ends = log_end(settings.kafka_bootstrap, topic)
    return committed(settings.kafka_bootstrap, group, topic) == ends


@pytest.fixture
def one_partition(settings_factory: Callable[..., Settings]) -> Settings:
    """One partition and batches large enough to hold every record of a test at once."""
    settings = settings_factory(
        partitions=1, batch_max_records=5000, models_enabled=False, deadletter_max_bytes=65536
    )
    ensure_topics(settings)
    return settings


def send_events(producer: VoiceProducer, voice: str, first: int, count: int) -> None:
    """``count`` events 100 ms apart: window [T0, T0+10 s) fills, nothing closes it."""
    for n in range(first, first + count):
        producer.send_voice_event(voice_event(f"{voice}-{n}", voice, T0 + n * 100 % 9_000))


def wait_drained(settings: Settings, stream: str, topic: str) -> None:
    group = f"{settings.app_id}-{stream}-windows"
    wait_for(lambda: drained(settings, group, topic), what=f"{stream} offsets at the log end")


def test_a_tombstone_is_dead_lettered_alone(
    one_partition: Settings,
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = one_partition
    with VoiceProducer(settings) as producer:
        send_events(producer, "t1", 0, 200)
        producer.send_raw(producer.topics.voice_events, "t1", None)  # type: ignore[arg-type]
        send_events(producer, "t1", 200, 200)
    topic = producer.topics.voice_events
    service_factory(settings)
    wait_drained(settings, "voice", topic)

    dead = read_topic(settings.kafka_bootstrap, producer.topics.deadletter)
    assert [source_position(d.key) for d in dead] == [(topic, 0, 200)]  # type: ignore[arg-type]
    assert dead[0].value is None
    assert dead[0].headers[REASON_HEADER].startswith(b"record has no value (a tombstone)")
    db = settings.clickhouse_database
    assert scalar(clickhouse, f"SELECT count() FROM {db}.voice_events") == 400
    assert scalar(clickhouse, f"SELECT uniqExact(kafka_offset) FROM {db}.voice_events") == 400


def test_an_id_with_a_control_character_is_rejected_at_decode_and_the_rest_counts(
    one_partition: Settings,
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = one_partition
    codec = AvroCodec()

    def interaction(n: int, source: str, ts: int, strength: float) -> dict[str, Any]:
        return {
            "event_id": f"i{n}",
            "ts": T0 + ts,
            "source": source,
            "target": "b",
            "kind": "COOPERATION",
            "strength": strength,
            "context": {},
        }

    with VoiceProducer(settings) as producer:
        producer.send_interaction(interaction(0, "a", 1_000, 0.2))
        bad = codec.encode(INTERACTION_EVENT, interaction(1, "a\x1eb", 2_000, 0.9), validate=False)
        producer.send_raw(producer.topics.interactions, "a", bad)
        producer.send_interaction(interaction(2, "a", 3_000, 0.4))
        producer.send_interaction(interaction(3, "a", 30_000, 0.5))  # closes [0, 10 s)
    service_factory(settings)
    wait_drained(settings, "interaction", producer.topics.interactions)

    dead = read_topic(settings.kafka_bootstrap, producer.topics.deadletter)
    assert [d.headers[SOURCE_OFFSET_HEADER] for d in dead] == [b"1"]
    assert dead[0].headers[REASON_HEADER] == b"source: holds the control character 0x1e at 1"
    assert dead[0].headers[ERROR_HEADER] == b"ValidationError"
    db = settings.clickhouse_database
    wait_for(
        lambda: scalar(clickhouse, f"SELECT count() FROM {db}.interaction_states FINAL") == 1,
        what="the closed interaction window",
    )
    row = clickhouse.call(
        lambda c: c.query(
            f"SELECT source, count, strength_mean FROM {db}.interaction_states FINAL"
        ).result_rows[0]
    )
    assert row[:2] == ("a", 2) and abs(row[2] - 0.3) < 1e-12


def test_a_failure_after_aggregation_leaves_nothing_behind_and_the_retry_is_exact(
    one_partition: Settings,
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
    armed: Callable[[str], None],
) -> None:
    settings = one_partition
    with VoiceProducer(settings) as producer:
        send_events(producer, "f1", 0, 90)
        producer.send_voice_event(voice_event("close", "f1", T0 + 25_000))  # closes [0, 10 s)
    failures = metric("deltaomega_batch_failures_total", consumer="voice")
    armed("voice.after_aggregate=raise@1")
    service_factory(settings)
    wait_drained(settings, "voice", producer.topics.voice_events)

    assert metric("deltaomega_batch_failures_total", consumer="voice") == failures + 1
    assert read_topic(settings.kafka_bootstrap, producer.topics.deadletter) == []
    # The failed attempt sent nothing: the window's state is on the topic once.
    codec = AvroCodec()
    states = [
        codec.decode(r.value)  # type: ignore[arg-type]
        for r in read_topic(settings.kafka_bootstrap, producer.topics.voice_states)
    ]
    assert [(name, s["window_start"], s["count"]) for name, s in states] == [(VOICE_STATE, T0, 90)]
    # The changelog, compacted, holds what the retry made: the marker past the last record,
    # the open window of the closing event, and no entry of the closed window.
    changelog = read_topic(settings.kafka_bootstrap, producer.topics.voice_windows_changelog)
    latest = {r.key: r.value for r in changelog}
    live = {k: v for k, v in latest.items() if v is not None}
    marker = live.pop(b"0\x1f\x00watermark")
    assert np.frombuffer(marker, np.int64).tolist() == [T0 + 25_000, 90]
    assert list(live) == [f"0\x1ff1\x1f{T0 + 20_000}".encode()]
    assert np.frombuffer(live[f"0\x1ff1\x1f{T0 + 20_000}".encode()])[0] == 1  # its count
    db = settings.clickhouse_database
    assert scalar(clickhouse, f"SELECT count() FROM {db}.voice_events") == 91


def test_a_record_that_fails_every_time_is_isolated_and_the_partition_moves_on(
    one_partition: Settings,
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = one_partition
    codec = AvroCodec()
    poison = codec.encode("deltaomega.VoiceEvent", voice_event("poison", "p1", T0 + 5_000))
    process = window_agent.WindowAgent.process

    def fails_on_poison(self: Any, batch: Any, covered: Any) -> Any:
        if poison in batch.values:
            raise RuntimeError("this record breaks the aggregation")
        return process(self, batch, covered)

    monkeypatch.setattr(window_agent.WindowAgent, "process", fails_on_poison)
    with VoiceProducer(settings) as producer:
        send_events(producer, "p1", 0, 60)
        producer.send_raw(producer.topics.voice_events, "p1", poison)
        send_events(producer, "p1", 60, 60)
    isolated = metric("deltaomega_poison_records_total", consumer="voice")
    service = service_factory(settings)
    wait_drained(settings, "voice", producer.topics.voice_events)

    dead = read_topic(settings.kafka_bootstrap, producer.topics.deadletter)
    assert [d.headers[SOURCE_OFFSET_HEADER] for d in dead] == [b"60"]
    assert dead[0].value == poison
    assert dead[0].headers[ERROR_HEADER] == b"PoisonRecord"
    assert dead[0].headers[REASON_HEADER] == (
        b"processing failed 3 times: RuntimeError: this record breaks the aggregation"
    )
    assert metric("deltaomega_poison_records_total", consumer="voice") == isolated + 1
    db = settings.clickhouse_database
    assert scalar(clickhouse, f"SELECT count() FROM {db}.voice_events") == 120
    ready = api_client.get(f"{service.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["consumers"]["voice"]["consecutive_failures"] == 0


def test_a_record_too_large_to_dead_letter_whole_is_cut_and_dead_lettered_once(
    one_partition: Settings,
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = one_partition
    topics = ensure_topics(settings)
    larger = ConfigEntry(
        "max.message.bytes", "3000000", incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ResourceType.TOPIC, topics.voice_events, incremental_configs=[larger])
    admin = admin_client(settings)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    huge = b"\x00\x00\x00\x00\x01" + bytes(range(256)) * 6000  # 1,536,005 bytes of garbage
    big = Producer({"bootstrap.servers": settings.kafka_bootstrap, "message.max.bytes": 3_000_000})
    delivered: list[tuple[KafkaError | None, int | None]] = []

    def sent() -> bool:
        """The controller accepts the change before the broker applies it; a record sent in
        between is refused as too large, writes nothing, and still leaves flush at 0."""
        delivered.clear()
        big.produce(
            topics.voice_events,
            huge,
            b"g1",
            on_delivery=lambda err, msg: delivered.append((err, msg.offset())),
        )
        assert big.flush(30) == 0
        (result,) = delivered
        assert result[0] is None or result[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, result
        return result[0] is None

    wait_for(sent, what="the broker taking a record under the topic's larger limit")
    assert delivered == [(None, 0)]
    with VoiceProducer(settings) as producer:
        send_events(producer, "g1", 0, 50)
    service_factory(settings)
    wait_drained(settings, "voice", topics.voice_events)

    dead = read_topic(settings.kafka_bootstrap, topics.deadletter)
    assert [d.headers[SOURCE_OFFSET_HEADER] for d in dead] == [b"0"]
    assert dead[0].value == huge[:65536]
    assert dead[0].headers[TRUNCATED_HEADER] == str(len(huge)).encode()
    db = settings.clickhouse_database
    assert scalar(clickhouse, f"SELECT count() FROM {db}.voice_events") == 50


def test_an_event_sent_twice_is_one_row_and_counts_twice_in_its_window(
    one_partition: Settings,
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    """The documented rule (README, "Windows and guarantees"): a window counts the events
    delivered to it; the raw table keeps one row per (voice, time, event id)."""
    settings = one_partition
    with VoiceProducer(settings) as producer:
        twice = voice_event("same", "d1", T0 + 1_000, activation=0.2)
        producer.send_voice_event(twice)
        producer.send_voice_event(twice)
        producer.send_voice_event(voice_event("other", "d1", T0 + 2_000, activation=0.8))
        producer.send_voice_event(voice_event("close", "d1", T0 + 25_000))
    service_factory(settings)
    db = settings.clickhouse_database
    wait_for(
        lambda: scalar(clickhouse, f"SELECT count() FROM {db}.voice_states FINAL") == 1,
        what="the closed window",
    )
    count, mean = clickhouse.call(
        lambda c: c.query(
            f"SELECT count, activation_mean FROM {db}.voice_states FINAL"
        ).result_rows[0]
    )
    assert count == 3 and abs(mean - 0.4) < 1e-12
    assert scalar(clickhouse, f"SELECT count() FROM {db}.voice_events FINAL") == 3


def test_every_id_the_pipeline_stores_reads_back_through_the_api(
    one_partition: Settings,
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = one_partition
    longest = "é" * 256  # 256 characters, 512 bytes
    too_long = "x" * 257
    with VoiceProducer(settings) as producer:
        for ts in (1_000, 25_000):  # the second event of each closes both first windows
            for n, voice in enumerate(("team/alpha", longest)):
                producer.send_voice_event(voice_event(f"{n}-{ts}", voice, T0 + ts))
        codec = AvroCodec()
        raw = codec.encode(
            "deltaomega.VoiceEvent", voice_event("long", too_long, T0 + 1_000), validate=False
        )
        producer.send_raw(producer.topics.voice_events, "x", raw)
    service = service_factory(settings)
    db = settings.clickhouse_database
    wait_for(
        lambda: scalar(clickhouse, f"SELECT count() FROM {db}.voice_states FINAL") == 2,
        what="both voices' closed windows",
    )
    for path in ("team%2Falpha", "team/alpha", longest):
        response = api_client.get(f"{service.url}/api/v1/voices/{path}/state")
        assert response.status_code == 200, (path, response.text)
        assert response.json()["state"]["count"] == 1
    history = api_client.get(f"{service.url}/api/v1/voices/team%2Falpha/history").json()
    assert history["voice_id"] == "team/alpha" and len(history["states"]) == 1
    listed = api_client.get(f"{service.url}/api/v1/voices").json()["voices"]
    assert sorted(v["voice_id"] for v in listed) == sorted(["team/alpha", longest])
    assert_invalid(api_client.get(f"{service.url}/api/v1/voices/{too_long}/state"), "voice_id")
    dead = read_topic(settings.kafka_bootstrap, producer.topics.deadletter)
    assert [d.headers[REASON_HEADER] for d in dead] == [
        b"voice_id: is 257 characters long, more than 256"
    ]
