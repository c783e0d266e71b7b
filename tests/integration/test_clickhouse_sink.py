"""Migrations and inserts on the embedded ClickHouse engine."""

from __future__ import annotations

import numpy as np

from deltaomega.schemas import AvroCodec
from deltaomega.sinks.clickhouse import ClickHouse, ClickHouseSink
from deltaomega.sinks.migrate import apply_migrations, migration_files

T0 = 1_800_000_000_000


def test_migrations_apply_once(clickhouse: ClickHouse, database: str) -> None:
    assert apply_migrations(clickhouse.client, database) == []  # the fixture applied them
    versions = clickhouse.client.query(
        f"SELECT version FROM {database}.schema_migrations ORDER BY version"
    ).result_rows
    assert [v for (v,) in versions] == [v for v, _, _ in migration_files()]
    tables = {r[0] for r in clickhouse.client.query(f"SHOW TABLES FROM {database}").result_rows}
    assert {"voice_events", "interaction_events", "voice_states", "interaction_states"} <= tables


def test_retried_insert_does_not_double_rows(clickhouse: ClickHouse, database: str) -> None:
    codec = AvroCodec()
    values = [
        codec.encode(
            "deltaomega.VoiceEvent",
            {
                "event_id": f"e{i}",
                "voice_id": f"v{i % 3}",
                "ts": T0 + i * 100,
                "temperature": 0.5,
                "activation": i / 100,
                "stress": 0.1,
                "influence": 0.2,
                "context": {"i": str(i)},
            },
        )
        for i in range(100)
    ]
    cols = codec.decode_voice_events(values).columns
    sink = ClickHouseSink(clickhouse, database)
    partitions = np.zeros(100, dtype=np.int64)
    offsets = np.arange(100, dtype=np.int64)
    assert sink.insert_voice_events(cols, partitions, offsets) == 100
    assert sink.insert_voice_events(cols, partitions, offsets) == 100  # a redelivered batch
    count, total, context = clickhouse.client.query(
        f"SELECT count(), sum(activation), anyIf(context['i'], event_id = 'e7') "
        f"FROM {database}.voice_events FINAL"
    ).result_rows[0]
    assert count == 100
    assert abs(total - sum(i / 100 for i in range(100))) < 1e-9
    assert context == "7"
