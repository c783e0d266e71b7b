"""How long ClickHouse keeps rows: TTLs on event time, from Settings, applied at start.

Raw events are the bulk and matter for days; closed windows, model outputs and alerts are
small and matter for a year. A change of setting takes effect at the next start, on the
parts as they merge (``materialize_ttl_after_modify = 0``: no rewrite of a large table
while it is being written).
"""

from __future__ import annotations

import logging
from typing import Any

from deltaomega.config import Settings

log = logging.getLogger(__name__)

#: table → its event-time column
RAW_TABLES = {"voice_events": "ts", "interaction_events": "ts"}
OUTPUT_TABLES = {
    "voice_states": "window_start",
    "interaction_states": "window_start",
    "voice_latest": "window_start",
    "voices": "last_event",
    "predictions": "window_start",
    "conflict_predictions": "window_start",
    "emergence": "window_start",
    "patterns": "window_start",
    "alerts": "window_start",
    "prediction_scores": "window_start",
    "parameter_changes": "requested_at",
    "orchestrations": "requested_at",
    "alert_actions": "at",
    # one row per change; the newest of a condition stays while it keeps changing
    "alert_conditions": "changed_at",
    "alert_deliveries": "attempted_at",
}
#: kept until someone deletes them: the migrations' own record, analysts' saved queries
KEPT_TABLES = frozenset({"schema_migrations", "saved_queries"})


def ttls(settings: Settings) -> dict[str, tuple[str, int]]:
    """table → (event-time column, days to keep; 0: for ever)."""
    out = {t: (c, settings.ttl_raw_days) for t, c in RAW_TABLES.items()}
    out |= {t: (c, settings.ttl_outputs_days) for t, c in OUTPUT_TABLES.items()}
    out["audit_log"] = ("occurred_at", settings.ttl_audit_days)
    return out


def apply_ttls(client: Any, database: str, settings: Settings) -> list[str]:
    """Set each table's TTL where it differs from the settings; the tables changed."""
    current = {
        row[0]: row[1]
        for row in client.query(
            "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
    }
    changed = []
    for table, (column, days) in ttls(settings).items():
        engine = current.get(table)
        if engine is None:
            continue
        has_ttl = " TTL " in engine
        wanted = f"toIntervalDay({days})"
        if days == 0 and has_ttl:
            client.command(f"ALTER TABLE {database}.{table} REMOVE TTL")
        elif days > 0 and not (has_ttl and wanted in engine):
            client.command(
                f"ALTER TABLE {database}.{table} MODIFY TTL toDateTime({column}) + "
                f"INTERVAL {days} DAY SETTINGS materialize_ttl_after_modify = 0"
            )
        else:
            continue
        changed.append(table)
        log.info("%s.%s keeps rows %s", database, table, f"{days} days" if days else "for ever")
    return changed
