"""Every SQL statement the API runs, with bound parameters; nothing else builds SQL."""

from __future__ import annotations

from typing import Any

from deltaomega.schemas.records import METRICS, STAT_NAMES
from deltaomega.sinks.clickhouse import ClickHouse

_STATE_COLUMNS = ", ".join(
    [
        "voice_id",
        "toUnixTimestamp64Milli(window_start) AS window_start",
        "toUnixTimestamp64Milli(window_end) AS window_end",
        "count",
    ]
    + [f"{m}_{s}" for m in METRICS for s in STAT_NAMES]
)


class Queries:
    """Read-side SQL over one database; each method returns plain dicts."""

    def __init__(self, clickhouse: ClickHouse, database: str) -> None:
        self.clickhouse = clickhouse
        self.db = database

    async def _rows(self, sql: str, **parameters: Any) -> list[dict[str, Any]]:
        result = await self.clickhouse.acall(lambda c: c.query(sql, parameters=parameters))
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    async def ping(self) -> bool:
        rows = await self._rows("SELECT 1 AS ok")
        return rows == [{"ok": 1}]

    async def latest_states(self) -> list[dict[str, Any]]:
        return await self._rows(
            f"SELECT {_STATE_COLUMNS} FROM {self.db}.voice_states FINAL "
            "ORDER BY voice_id, window_start DESC LIMIT 1 BY voice_id"
        )

    async def voices_without_state(self) -> list[str]:
        rows = await self._rows(
            f"SELECT DISTINCT voice_id FROM {self.db}.voice_events "
            f"WHERE voice_id NOT IN (SELECT voice_id FROM {self.db}.voice_states) "
            "ORDER BY voice_id"
        )
        return [r["voice_id"] for r in rows]

    async def voice_exists(self, voice_id: str) -> bool:
        rows = await self._rows(
            f"SELECT (SELECT count() FROM {self.db}.voice_states WHERE voice_id = {{v:String}})"
            f" + (SELECT count() FROM {self.db}.voice_events WHERE voice_id = {{v:String}}) AS n",
            v=voice_id,
        )
        return bool(rows and rows[0]["n"] > 0)

    async def latest_state(self, voice_id: str) -> dict[str, Any] | None:
        rows = await self._rows(
            f"SELECT {_STATE_COLUMNS} FROM {self.db}.voice_states FINAL "
            "WHERE voice_id = {v:String} ORDER BY window_start DESC LIMIT 1",
            v=voice_id,
        )
        return rows[0] if rows else None

    async def state_history(
        self, voice_id: str, from_ms: int | None, to_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        return await self._rows(
            f"SELECT {_STATE_COLUMNS} FROM {self.db}.voice_states FINAL "
            "WHERE voice_id = {v:String}"
            " AND window_start >= fromUnixTimestamp64Milli({f:Int64})"
            " AND window_start < fromUnixTimestamp64Milli({t:Int64})"
            " ORDER BY window_start LIMIT {n:UInt32}",
            v=voice_id,
            f=0 if from_ms is None else from_ms,
            t=2**62 // 1000 if to_ms is None else to_ms,
            n=limit,
        )

    async def interaction_totals(self, window_ms: int) -> tuple[list[dict[str, Any]], int | None]:
        """Strength summed per (source, target, kind) over the last ``window_ms`` of event time.

        The window ends at the newest closed interaction window, not at the wall clock, so
        replayed or delayed data gives the same matrix it would have given live.
        """
        end_rows = await self._rows(
            f"SELECT toUnixTimestamp64Milli(max(window_end)) AS end, count() AS n "
            f"FROM {self.db}.interaction_states"
        )
        if not end_rows or end_rows[0]["n"] == 0:
            return [], None
        end = int(end_rows[0]["end"])
        rows = await self._rows(
            f"SELECT source, target, kind, sum(strength_mean * count) AS strength, "
            f"sum(count) AS events FROM {self.db}.interaction_states FINAL "
            "WHERE window_end > fromUnixTimestamp64Milli({s:Int64}) "
            "GROUP BY source, target, kind ORDER BY source, target, kind",
            s=end - window_ms,
        )
        return rows, end
