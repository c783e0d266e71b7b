"""Many small batches: every record reaches ClickHouse exactly once and windows count all."""

from __future__ import annotations

from collections.abc import Callable

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.sinks.clickhouse import ClickHouse
from tests.conftest import RunningService, voice_event, wait_for

T0 = 1_800_000_000_000
EVENTS = 30_000
VOICES = 16


def test_every_event_is_stored_once_and_counted_once(
    settings: Settings,
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
    topics: None,
) -> None:
    # Small batches and a busy producer: the consumer keeps buffering while batches run.
    with VoiceProducer(settings) as producer:
        for n in range(EVENTS):
            producer.send_voice_event(
                voice_event(f"e-{n}", f"v{n % VOICES}", T0 + n * 2, 1.0, 0.5, 0.25, 0.75)
            )
    service_factory(settings)
    db = settings.clickhouse_database

    def one(sql: str) -> tuple:
        return clickhouse.call(lambda c: c.query(sql).result_rows[0])

    wait_for(
        lambda: one(f"SELECT count() FROM {db}.voice_events")[0] >= EVENTS,
        timeout=120,
        what="all raw events",
    )
    count, unique, offsets = one(
        f"SELECT count(), uniqExact(event_id), uniqExact(kafka_partition, kafka_offset) "
        f"FROM {db}.voice_events"
    )
    assert (count, unique, offsets) == (EVENTS, EVENTS, EVENTS)
    # Events span 60 s: windows [0,10)…[40,50) are closed by the watermark (55 s + grace 5 s
    # → 55 s - 5 s = 50 s, per partition); each holds 5,000 events over the 16 voices.
    wait_for(
        lambda: one(f"SELECT count() FROM {db}.voice_states FINAL")[0] == 5 * VOICES,
        timeout=60,
        what="80 closed windows",
    )
    states, total = one(f"SELECT count(), sum(count) FROM {db}.voice_states FINAL")
    assert (states, total) == (5 * VOICES, 5 * 5_000)
