"""Migrations and inserts on the embedded ClickHouse engine."""

from __future__ import annotations

import numpy as np

from deltaomega.schemas import AvroCodec
from deltaomega.schemas.records import ALERT, CONFLICT_PREDICTION, EMERGENCE, PATTERN, PREDICTION
from deltaomega.sinks.clickhouse import TIMESTAMP_FIELDS, ClickHouse, ClickHouseSink
from deltaomega.sinks.migrate import apply_migrations, migration_files
from tests.model_outputs import T0, alert, conflict, emergence, pattern, prediction


def test_migrations_apply_once(clickhouse: ClickHouse, database: str) -> None:
    assert apply_migrations(clickhouse.client, database) == []  # the fixture applied them
    versions = clickhouse.client.query(
        f"SELECT version FROM {database}.schema_migrations ORDER BY version"
    ).result_rows
    assert [v for (v,) in versions] == [v for v, _, _ in migration_files()]
    tables = {r[0] for r in clickhouse.client.query(f"SHOW TABLES FROM {database}").result_rows}
    assert {"voice_events", "interaction_events", "voice_states", "interaction_states"} <= tables
    assert {"predictions", "conflict_predictions", "emergence", "patterns", "alerts"} <= tables


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


def test_model_outputs_round_trip_exactly(clickhouse: ClickHouse, database: str) -> None:
    codec = AvroCodec()
    stored = {
        "predictions": (PREDICTION, [prediction("v1", T0), prediction("v2", T0, base=0.25)]),
        "conflict_predictions": (CONFLICT_PREDICTION, [conflict("v1", "v2", T0, 0.625)]),
        "emergence": (EMERGENCE, [emergence(T0, 0.5, "synchronisation")]),
        "patterns": (PATTERN, [pattern(T0, "hierarchy")]),
        # The first alert has no actions: the column must still be typed list<string>.
        "alerts": (
            ALERT,
            [
                alert("risk", "v1", T0, "INFO"),
                alert("conflict", "v1->v2", T0, "CRITICAL", ["separate v1 and v2", "cool v1"]),
            ],
        ),
    }
    sink = ClickHouseSink(clickhouse, database)
    for table, (schema, records) in stored.items():
        decoded = [codec.decode(codec.encode(schema, r))[1] for r in records]
        partitions, offsets = [2] * len(decoded), [40 + i for i in range(len(decoded))]
        assert sink.insert_states(table, decoded, partitions, offsets) == len(records)
        assert sink.insert_states(table, decoded, partitions, offsets) == len(records)  # replay
        fields = list(records[0])
        columns = ", ".join(
            f"toUnixTimestamp64Milli({f}) AS {f}" if f in TIMESTAMP_FIELDS else f for f in fields
        )
        result = clickhouse.client.query(
            f"SELECT {columns}, kafka_partition, kafka_offset FROM {database}.{table} FINAL "
            f"ORDER BY kafka_offset"
        )
        rows = [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
        assert rows == [
            {**r, "kafka_partition": 2, "kafka_offset": 40 + i} for i, r in enumerate(records)
        ], table
