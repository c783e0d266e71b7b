"""Read a stopped worker's embedded ClickHouse into JSON: ``python -m tests.faults.dump
DATA_DIR DATABASE OUT``.

The engine hosts one path per process and the test process already hosts its own, so
the fault tests read a worker's tables from a process of their own, after it stopped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import clickhouse_connect

_METRICS = ("temperature", "activation", "stress", "influence")
_STATS = ", ".join(f"{m}_{s}" for m in _METRICS for s in ("mean", "min", "max", "last"))

QUERIES = {
    "voice_events": "SELECT event_id, voice_id, toUnixTimestamp64Milli(ts), "
    + ", ".join(_METRICS)
    + ", kafka_partition, kafka_offset FROM {db}.voice_events",
    "interaction_events": "SELECT event_id, source, target, kind, toUnixTimestamp64Milli(ts), "
    "strength, kafka_partition, kafka_offset FROM {db}.interaction_events",
    "voice_states": "SELECT voice_id, toUnixTimestamp64Milli(window_start), count, "
    + _STATS
    + " FROM {db}.voice_states",
    "interaction_states": "SELECT source, target, kind, toUnixTimestamp64Milli(window_start),"
    " count, strength_mean, strength_min, strength_max, strength_last"
    " FROM {db}.interaction_states",
    "patterns": "SELECT toUnixTimestamp64Milli(window_start), pattern, confidence,"
    " model_version FROM {db}.patterns",
    "predictions": "SELECT voice_id, toUnixTimestamp64Milli(window_start), temperature_pred,"
    " risk, model_version FROM {db}.predictions",
}


def dump(data_dir: Path, database: str) -> dict[str, dict[str, list[list[object]]]]:
    client = clickhouse_connect.get_client(dsn=f"chdb://{(data_dir / 'clickhouse').resolve()}")
    out: dict[str, dict[str, list[list[object]]]] = {}
    for table, sql in QUERIES.items():
        query = sql.format(db=database)
        out[table] = {
            "all": [list(r) for r in client.query(query).result_rows],
            "final": [list(r) for r in client.query(query + " FINAL").result_rows],
        }
    return out


if __name__ == "__main__":
    data_dir, database, target = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    target.write_text(json.dumps(dump(data_dir, database)))
