"""Reads are bounded: a request without a start reads the default range before its end (or
now), the voice list and latest states come from two small tables ClickHouse keeps as the
sink inserts, and every table has the TTL the settings give it."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.schemas import VOICE_EVENT, AvroCodec
from deltaomega.sinks.clickhouse import ClickHouse, ClickHouseSink
from deltaomega.sinks.retention import KEPT_TABLES, apply_ttls, ttls
from tests import api_client
from tests.conftest import RunningService, voice_event, wait_for
from tests.model_outputs import alert, pattern, prediction

HOUR = 3_600_000
W = 10_000


def test_a_read_without_a_start_covers_the_default_range_before_its_end(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = settings_factory(api_default_range_hours=24)
    service = service_factory(settings, worker=False)
    now = int(time.time() * 1000) // W * W
    recent, old = now - HOUR, now - 48 * HOUR
    sink = ClickHouseSink(clickhouse, settings.clickhouse_database)
    for table, records in {
        "predictions": [prediction("v1", old), prediction("v1", recent)],
        "patterns": [pattern(old, "harmonious"), pattern(recent, "harmonious")],
        "alerts": [alert("stress", "v1", old, "WARNING"), alert("stress", "v1", recent, "WARNING")],
    }.items():
        sink.insert_states(table, records, [0] * len(records), list(range(len(records))))

    def starts(path: str, key: str, **params: str) -> list[str]:
        response = api_client.get(f"{service.url}/api/v1/{path}", params=params)
        assert response.status_code == 200, response.text
        return [row["window_start"] for row in response.json()[key]]

    def iso(ms: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))

    for path in ("predictions", "patterns", "alerts"):
        assert starts(path, path) == [iso(recent)], path
        assert starts(path, path, start=iso(old - HOUR)) == [iso(recent), iso(old)], path
        # With only an end, the range is the day before it.
        assert starts(path, path, end=iso(old + HOUR)) == [iso(old)], path


def test_the_voice_list_and_latest_states_do_not_read_events_or_history(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    # No read cache: every answer below comes from ClickHouse as it is then.
    settings = settings_factory(
        window_seconds=10, grace_seconds=1, models_enabled=False, api_cache_seconds=0
    )
    service = service_factory(settings)
    t0 = 1_800_000_000_000
    with VoiceProducer(settings) as producer:
        for n, ts in enumerate((1_000, 12_000, 25_000)):  # windows [0, 10) and [10, 20) close
            producer.send_voice_event(voice_event(f"a{n}", "a", t0 + ts, activation=n / 4))
        producer.send_voice_event(voice_event("b0", "b", t0 + 30_000))  # no window closed
    db = settings.clickhouse_database
    expected = [("a", "2027-01-15T08:00:10Z"), ("b", None)]

    def listed() -> list[tuple[str, str | None]]:
        voices = api_client.get(f"{service.url}/api/v1/voices").json()["voices"]
        return [(v["voice_id"], v["state"] and v["state"]["window_start"]) for v in voices]

    wait_for(lambda: listed() == expected, what="both voices, a with its second window")
    # Without the events and the state history, the list and latest states still answer.
    for table in ("voice_events", "voice_states"):
        clickhouse.call(lambda c, t=table: c.command(f"TRUNCATE TABLE {db}.{t}"))
    assert listed() == expected
    state = api_client.get(f"{service.url}/api/v1/voices/a/state").json()["state"]
    assert state["count"] == 1 and state["activation"]["last"] == 0.25
    assert api_client.get(f"{service.url}/api/v1/voices/b/state").status_code == 200
    assert api_client.get(f"{service.url}/api/v1/voices/c/state").status_code == 404


def test_every_table_keeps_rows_as_long_as_the_settings_say(
    settings_factory: Callable[..., Settings], clickhouse: ClickHouse, database: str
) -> None:
    settings = settings_factory(clickhouse_database=database, ttl_raw_days=30)

    def engines() -> dict[str, str]:
        rows = clickhouse.rows(
            "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
            db=database,
        )
        return {r["name"]: r["engine_full"] for r in rows}

    assert len(clickhouse.call(lambda c: apply_ttls(c, database, settings))) == 18
    # every table of the migrations has a TTL, or is one of those kept on purpose
    tables = {t for t, e in engines().items() if "MergeTree" in e}
    assert tables == set(ttls(settings)) | KEPT_TABLES
    assert ttls(settings)["audit_log"] == ("occurred_at", 7 * 365 + 2)  # seven years
    assert ttls(settings)["parameter_changes"] == ("requested_at", 365)
    assert ttls(settings)["orchestrations"] == ("requested_at", 365)
    assert ttls(settings)["alert_conditions"] == ("changed_at", 365)
    for table, (column, days) in ttls(settings).items():
        assert f"TTL toDateTime({column}) + toIntervalDay({days})" in engines()[table], table
    assert clickhouse.call(lambda c: apply_ttls(c, database, settings)) == []  # unchanged
    # A raw event older than its TTL is gone once its part merges; a recent one stays.
    now = int(time.time() * 1000)
    sink = ClickHouseSink(clickhouse, database)
    codec = AvroCodec()
    events = [voice_event("old", "v", now - 40 * 24 * HOUR), voice_event("new", "v", now)]
    columns = codec.decode_voice_events([codec.encode(VOICE_EVENT, e) for e in events]).columns
    sink.insert_voice_events(columns, np.array([0, 0]), np.array([0, 1]))
    clickhouse.call(lambda c: c.command(f"OPTIMIZE TABLE {database}.voice_events FINAL"))
    rows = clickhouse.rows(f"SELECT event_id FROM {database}.voice_events")
    assert rows == [{"event_id": "new"}]
    # 0 keeps rows for ever: the TTL goes.
    keep = settings.model_copy(update={"ttl_raw_days": 0})
    assert clickhouse.call(lambda c: apply_ttls(c, database, keep)) == [
        "voice_events",
        "interaction_events",
    ]
    assert " TTL " not in engines()["voice_events"]
