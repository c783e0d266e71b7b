"""What a restarting worker reads back: the last completed tick and the states around it.

The inference engine keeps its window history in memory. On start it asks ClickHouse
for the newest window the models ran on (the ``patterns`` table has one row per tick)
and for the states of the windows before and after it, so predictions continue with
full history and a tick whose states were stored but whose models never ran still runs.
"""

from __future__ import annotations

from typing import Any

from deltaomega.schemas.records import METRICS, STAT_NAMES
from deltaomega.sinks.clickhouse import ClickHouse

_STATS = ", ".join(f"{m}_{s}" for m in METRICS for s in STAT_NAMES)


def last_tick(clickhouse: ClickHouse, database: str) -> int | None:
    rows = clickhouse.rows(
        f"SELECT toUnixTimestamp64Milli(max(window_start)) AS last, count() AS n "
        f"FROM {database}.patterns",
    )
    return int(rows[0]["last"]) if rows and rows[0]["n"] else None


def states_since(
    clickhouse: ClickHouse, database: str, since_ms: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """VoiceState and InteractionState records with window_start ≥ ``since_ms``."""
    voices = clickhouse.rows(
        f"SELECT voice_id, toUnixTimestamp64Milli(window_start) AS window_start, {_STATS} "
        f"FROM {database}.voice_states FINAL "
        "WHERE window_start >= fromUnixTimestamp64Milli({since:Int64}) "
        "ORDER BY window_start, voice_id",
        since=since_ms,
    )
    links = clickhouse.rows(
        "SELECT source, target, kind, toUnixTimestamp64Milli(window_start) AS window_start, "
        f"strength_mean FROM {database}.interaction_states FINAL "
        "WHERE window_start >= fromUnixTimestamp64Milli({since:Int64}) "
        "ORDER BY window_start, source, target, kind",
        since=since_ms,
    )
    return voices, links
