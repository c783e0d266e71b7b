"""Every SQL statement the API runs, with bound parameters; nothing else builds SQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from deltaomega.api.matrix import ANTAGONISTIC, SUPPORTIVE
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
FORECAST_STATS: tuple[str, ...] = ("pred", "std", "low", "high")
#: The end of a range without one (epoch ms; far past any event time the schema accepts).
_NO_END = 2**62 // 1000


def _ms(column: str) -> str:
    return f"toUnixTimestamp64Milli({column}) AS {column}"


_SCORE_COLUMNS = ", ".join(
    [_ms("window_start"), "model_version", "voices"]
    + [f"{m}_{s}" for m in METRICS for s in ("mae", "persistence_mae", "coverage")]
    + [
        "if(isNull(conflict_window_start), NULL, "
        "toUnixTimestamp64Milli(assumeNotNull(conflict_window_start))) AS conflict_window_start",
        "conflicts_predicted",
        "conflict_hits",
        "conflict_false_alarms",
        "conflict_misses",
        "conflict_threshold",
    ]
)
_PREDICTION_COLUMNS = ", ".join(
    ["voice_id", _ms("window_start"), _ms("target_window_start")]
    + [f"{m}_{s}" for m in METRICS for s in FORECAST_STATS]
    + ["interval_level", "risk", "model_version", _ms("produced_at")]
)
_CONFLICT_COLUMNS = (
    f"{_ms('window_start')}, source, target, probability, horizon_windows, model_version, "
    f"{_ms('produced_at')}"
)
_EMERGENCE_COLUMNS = (
    f"{_ms('window_start')}, probability, detected, type, type_probability, "
    f"reconstruction_error, voices, model_version, {_ms('produced_at')}"
)
_PATTERN_COLUMNS = (
    f"{_ms('window_start')}, pattern, confidence, complexity, novelty, model_version, "
    f"{_ms('produced_at')}"
)
_ALERT_COLUMNS = (
    f"alert_id, {_ms('window_start')}, rule, severity, subject, message, value, threshold, "
    f"recommended_actions, model_version, {_ms('produced_at')}"
)
_AUDIT_COLUMNS = (
    f"event_id, {_ms('occurred_at')}, principal, role, auth_method, action, target, rationale, "
    "request_id, client, outcome, status, detail, before, after"
)
# The table's window_start is a column name and its alias; qualify it in WHERE clauses.
_IN_RANGE = (
    "{table}.window_start >= fromUnixTimestamp64Milli({{from_ms:Int64}})"
    " AND {table}.window_start < fromUnixTimestamp64Milli({{to_ms:Int64}})"
)


class Queries:
    """Read-side SQL over one database; each method returns plain dicts."""

    def __init__(self, clickhouse: ClickHouse, database: str) -> None:
        self.clickhouse = clickhouse
        self.db = database

    async def _rows(self, sql: str, **parameters: Any) -> list[dict[str, Any]]:
        return await self.clickhouse.arows(sql, **parameters)

    async def ping(self) -> bool:
        rows = await self._rows("SELECT 1 AS ok")
        return rows == [{"ok": 1}]

    # The voice list and latest states come from two small tables ClickHouse keeps as the
    # sink inserts (migration 003): one row per voice, never a scan of events or history.

    async def latest_states(self) -> list[dict[str, Any]]:
        return await self._rows(
            f"SELECT {_STATE_COLUMNS} FROM {self.db}.voice_latest FINAL ORDER BY voice_id"
        )

    async def voice_ids(self) -> list[str]:
        rows = await self._rows(f"SELECT DISTINCT voice_id FROM {self.db}.voices ORDER BY voice_id")
        return [r["voice_id"] for r in rows]

    async def voice_exists(self, voice_id: str) -> bool:
        rows = await self._rows(
            f"SELECT count() AS n FROM {self.db}.voices WHERE voice_id = {{v:String}}",
            v=voice_id,
        )
        return bool(rows and rows[0]["n"] > 0)

    async def latest_state(self, voice_id: str) -> dict[str, Any] | None:
        rows = await self._rows(
            f"SELECT {_STATE_COLUMNS} FROM {self.db}.voice_latest FINAL "
            "WHERE voice_id = {v:String}",
            v=voice_id,
        )
        return rows[0] if rows else None

    async def state_history(
        self, voice_id: str, from_ms: int, to_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        return await self._rows(
            f"SELECT {_STATE_COLUMNS} FROM {self.db}.voice_states FINAL "
            "WHERE voice_id = {v:String} AND "
            + _IN_RANGE.format(table="voice_states")
            + " ORDER BY window_start LIMIT {n:UInt32}",
            v=voice_id,
            from_ms=from_ms,
            to_ms=_NO_END if to_ms is None else to_ms,
            n=limit,
        )

    async def window_states(
        self, from_ms: int, to_ms: int, limit: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every voice state and interaction state of windows starting in [from, to), at
        most ``limit`` rows of each (the caller refuses a range that reaches the limit)."""
        voices = await self._rows(
            f"SELECT {_STATE_COLUMNS} FROM {self.db}.voice_states FINAL WHERE "
            + _IN_RANGE.format(table="voice_states")
            + " ORDER BY window_start, voice_id LIMIT {n:UInt32}",
            from_ms=from_ms,
            to_ms=to_ms,
            n=limit,
        )
        links = await self._rows(
            f"SELECT {_ms('window_start')}, source, target, kind, strength_mean "
            f"FROM {self.db}.interaction_states FINAL WHERE "
            + _IN_RANGE.format(table="interaction_states")
            + " ORDER BY window_start, source, target, kind LIMIT {n:UInt32}",
            from_ms=from_ms,
            to_ms=to_ms,
            n=limit,
        )
        return voices, links

    async def interaction_totals(
        self, window_ms: int, interaction_window_ms: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Strength summed per (source, target, kind) over the last ``window_ms`` of event time.

        The window ends at the newest closed interaction window, not at the wall clock, so
        replayed or delayed data gives the same matrix it would have given live.
        """
        newest = await self.newest_interaction_window()
        if newest is None:
            return [], None
        end = newest + interaction_window_ms
        rows = await self._rows(
            f"SELECT source, target, kind, sum(strength_mean * count) AS strength, "
            f"sum(count) AS events FROM {self.db}.interaction_states FINAL "
            "WHERE window_end > fromUnixTimestamp64Milli({s:Int64}) "
            "GROUP BY source, target, kind ORDER BY source, target, kind",
            s=end - window_ms,
        )
        return rows, end

    async def newest_interaction_window(self) -> int | None:
        """The start of the newest closed interaction window (None before the first)."""
        # max and count of the partition key's column come from part metadata, not a scan.
        rows = await self._rows(
            f"SELECT toUnixTimestamp64Milli(max(window_start)) AS start, count() AS n "
            f"FROM {self.db}.interaction_states"
        )
        return int(rows[0]["start"]) if rows and rows[0]["n"] else None

    async def newest_window(self, table: str) -> int | None:
        """The newest window start in a model output table (named from a fixed list)."""
        rows = await self._rows(
            f"SELECT toUnixTimestamp64Milli(max(window_start)) AS start, count() AS n "
            f"FROM {self.db}.{table}"
        )
        return int(rows[0]["start"]) if rows and rows[0]["n"] else None

    async def interaction_totals_between(
        self, from_ms: int, to_ms: int | None
    ) -> list[dict[str, Any]]:
        """Strength summed per (source, target, kind) over windows starting in [from, to)."""
        return await self._rows(
            f"SELECT source, target, kind, sum(strength_mean * count) AS strength, "
            f"sum(count) AS events FROM {self.db}.interaction_states FINAL "
            f"WHERE {_IN_RANGE.format(table='interaction_states')} "
            "GROUP BY source, target, kind ORDER BY source, target, kind",
            from_ms=from_ms,
            to_ms=_NO_END if to_ms is None else to_ms,
        )

    async def export(self, table: str, from_ms: int, to_ms: int | None, limit: int) -> Any:
        """An output table's rows with window start in [from, to), as an Arrow table (the
        caller names the table from a fixed list)."""
        sql = (
            f"SELECT * EXCEPT (kafka_partition, kafka_offset, ingested_at) "
            f"FROM {self.db}.{table} FINAL WHERE {_IN_RANGE.format(table=table)} "
            "ORDER BY window_start LIMIT {n:UInt32}"
        )
        parameters = {"from_ms": from_ms, "to_ms": _NO_END if to_ms is None else to_ms, "n": limit}
        return await self.clickhouse.acall(
            lambda c: c.query_arrow(sql, parameters=parameters, use_strings=True)
        )

    async def harmony_series(
        self, source: str | None, target: str | None, from_ms: int, to_ms: int | None
    ) -> list[dict[str, Any]]:
        """Per interaction window: strength × events summed by supportive, antagonistic and
        all kinds, for one ordered pair or the whole system."""
        pair = ""
        parameters: dict[str, Any] = {
            "from_ms": from_ms,
            "to_ms": _NO_END if to_ms is None else to_ms,
            "support": sorted(SUPPORTIVE),
            "against": sorted(ANTAGONISTIC),
        }
        if source is not None and target is not None:
            pair = " AND source = {s:String} AND target = {t:String}"
            parameters |= {"s": source, "t": target}
        return await self._rows(
            f"SELECT toUnixTimestamp64Milli(window_start) AS start, "
            f"sumIf(strength_mean * count, kind IN {{support:Array(String)}}) AS support, "
            f"sumIf(strength_mean * count, kind IN {{against:Array(String)}}) AS against, "
            f"sum(strength_mean * count) AS total "
            f"FROM {self.db}.interaction_states FINAL "
            f"WHERE {_IN_RANGE.format(table='interaction_states')}{pair} "
            "GROUP BY start ORDER BY start",
            **parameters,
        )

    async def accuracy(self, from_ms: int, to_ms: int | None) -> dict[str, Any]:
        """How the predictions for windows starting in [from, to) did against what those
        windows held: per metric, the model's mean absolute error, persistence's (the window
        the prediction was made at, carried forward) and the share inside the interval."""
        rows = await self.accuracy_by(from_ms, to_ms, None)
        return rows[0] if rows else {"n": 0}

    async def accuracy_by(
        self, from_ms: int, to_ms: int | None, bucket_ms: int | None
    ) -> list[dict[str, Any]]:
        """:meth:`accuracy`, per model version and ``bucket_ms`` of target window start
        (each row's ``bucket``, epoch ms) when given."""
        parts = ["count() AS n"]
        group = ""
        if bucket_ms is not None:
            parts += [
                "p.model_version AS model_version",
                "toUnixTimestamp64Milli(toStartOfInterval(p.target_window_start, "
                "toIntervalMillisecond({bucket:UInt64}))) AS bucket",
            ]
            group = " GROUP BY model_version, bucket ORDER BY model_version, bucket"
        for m in METRICS:
            parts += [
                f"avg(abs(p.{m}_pred - s.{m}_mean)) AS {m}_mae",
                f"avg(abs(b.{m}_mean - s.{m}_mean)) AS {m}_persistence_mae",
                f"avg(s.{m}_mean BETWEEN p.{m}_low AND p.{m}_high) AS {m}_coverage",
            ]
        return await self._rows(
            f"SELECT {', '.join(parts)} "
            f"FROM {self.db}.predictions AS p FINAL "
            f"INNER JOIN {self.db}.voice_states AS s FINAL "
            "ON s.voice_id = p.voice_id AND s.window_start = p.target_window_start "
            f"INNER JOIN {self.db}.voice_states AS b FINAL "
            "ON b.voice_id = p.voice_id AND b.window_start = p.window_start "
            "WHERE p.target_window_start >= fromUnixTimestamp64Milli({from_ms:Int64}) "
            "AND p.target_window_start < fromUnixTimestamp64Milli({to_ms:Int64})" + group,
            from_ms=from_ms,
            to_ms=_NO_END if to_ms is None else to_ms,
            bucket=bucket_ms or 1,
        )

    async def prediction_scores(
        self, model_version: str | None, from_ms: int, to_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """The live scores of windows starting in [from, to), newest first."""
        return await self._windows(
            "prediction_scores",
            _SCORE_COLUMNS,
            from_ms,
            to_ms,
            {"v": ("model_version = {v:String}", model_version)},
            "window_start DESC",
            limit,
        )

    async def saved_queries(self, owner: str, name: str | None = None) -> list[dict[str, Any]]:
        """The owner's saved queries (or the one named), by name."""
        named = " AND name = {n:String}" if name is not None else ""
        return await self._rows(
            f"SELECT name, sql, description, {_ms('saved_at')} "
            f"FROM {self.db}.saved_queries FINAL WHERE owner = {{o:String}}{named} "
            "AND deleted = 0 ORDER BY name",
            o=owner,
            n=name or "",
        )

    async def save_query(
        self, owner: str, name: str, sql: str, description: str, deleted: bool, at_ms: int
    ) -> None:
        at = datetime.fromtimestamp(at_ms / 1000, UTC)
        row = [owner, name, sql, description, int(deleted), at]
        columns = ["owner", "name", "sql", "description", "deleted", "saved_at"]
        await self.clickhouse.acall(
            lambda c: c.insert(f"{self.db}.saved_queries", [row], column_names=columns)
        )

    async def _windows(
        self,
        table: str,
        columns: str,
        from_ms: int,
        to_ms: int | None,
        filters: dict[str, tuple[str, Any]],
        order: str,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Rows of a model-output table with window start in [from, to), deduplicated.

        ``filters`` maps a parameter name to (condition, value); a None value drops the
        condition, so absent query parameters do not constrain the read.
        """
        conditions = [_IN_RANGE.format(table=table)]
        parameters: dict[str, Any] = {
            "from_ms": from_ms,
            "to_ms": _NO_END if to_ms is None else to_ms,
            "n": limit,
        }
        for name, (condition, value) in filters.items():
            if value is not None:
                conditions.append(condition)
                parameters[name] = value
        return await self._rows(
            f"SELECT {columns} FROM {self.db}.{table} FINAL "
            f"WHERE {' AND '.join(conditions)} ORDER BY {order} LIMIT {{n:UInt32}}",
            **parameters,
        )

    async def predictions(
        self, voice_id: str | None, from_ms: int, to_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        return await self._windows(
            "predictions",
            _PREDICTION_COLUMNS,
            from_ms,
            to_ms,
            {"v": ("voice_id = {v:String}", voice_id)},
            "window_start DESC, voice_id",
            limit,
        )

    async def conflict_predictions(
        self,
        min_probability: float,
        source: str | None,
        target: str | None,
        from_ms: int,
        to_ms: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        return await self._windows(
            "conflict_predictions",
            _CONFLICT_COLUMNS,
            from_ms,
            to_ms,
            {
                "p": ("probability >= {p:Float64}", min_probability),
                "s": ("source = {s:String}", source),
                "t": ("target = {t:String}", target),
            },
            "window_start DESC, probability DESC, source, target",
            limit,
        )

    async def emergence(
        self, detected: bool | None, from_ms: int, to_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        return await self._windows(
            "emergence",
            _EMERGENCE_COLUMNS,
            from_ms,
            to_ms,
            {"d": ("detected = {d:Bool}", detected)},
            "window_start DESC",
            limit,
        )

    async def patterns(self, from_ms: int, to_ms: int | None, limit: int) -> list[dict[str, Any]]:
        return await self._windows(
            "patterns", _PATTERN_COLUMNS, from_ms, to_ms, {}, "window_start DESC", limit
        )

    async def alerts(
        self,
        severity: str | None,
        rule: str | None,
        subject: str | None,
        from_ms: int,
        to_ms: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        return await self._windows(
            "alerts",
            _ALERT_COLUMNS,
            from_ms,
            to_ms,
            {
                "sev": ("severity = {sev:String}", severity),
                "r": ("rule = {r:String}", rule),
                "sub": ("subject = {sub:String}", subject),
            },
            "window_start DESC, alert_id",
            limit,
        )

    async def audit(
        self,
        principal: str | None,
        action: str | None,
        outcome: str | None,
        from_ms: int,
        to_ms: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Audit events in [from, to), newest first."""
        conditions = [
            "audit_log.occurred_at >= fromUnixTimestamp64Milli({from_ms:Int64})",
            "audit_log.occurred_at < fromUnixTimestamp64Milli({to_ms:Int64})",
        ]
        parameters: dict[str, Any] = {
            "from_ms": from_ms,
            "to_ms": _NO_END if to_ms is None else to_ms,
            "n": limit,
        }
        for name, column, value in (
            ("p", "principal", principal),
            ("a", "action", action),
            ("o", "outcome", outcome),
        ):
            if value is not None:
                conditions.append(f"{column} = {{{name}:String}}")
                parameters[name] = value
        return await self._rows(
            f"SELECT {_AUDIT_COLUMNS} FROM {self.db}.audit_log FINAL "
            f"WHERE {' AND '.join(conditions)} ORDER BY occurred_at DESC, event_id "
            "LIMIT {n:UInt32}",
            **parameters,
        )

    async def parameter_changes(self, voice_id: str, limit: int) -> list[dict[str, Any]]:
        """The voice's latest ``limit`` parameter changes, oldest first (context modifiers
        as maps: the column keeps them as JSON)."""
        return (await self.parameter_changes_of([voice_id], limit)).get(voice_id, [])

    async def parameter_changes_of(
        self, voice_ids: list[str], limit: int
    ) -> dict[str, list[dict[str, Any]]]:
        """Each voice's latest ``limit`` changes, oldest first, in one query (a batch of
        voices, as GraphQL's loader asks for them)."""
        rows = await self._rows(
            f"SELECT change_id, voice_id, sensitivity, activation_threshold, "
            f"influence_weight, context_modifiers, rationale, expected_duration_minutes, "
            f"monitoring_enabled, requested_by, {_ms('requested_at')}, "
            f"toUnixTimestamp64Milli(expires_at) AS expires_at, reverts "
            f"FROM {self.db}.parameter_changes FINAL WHERE voice_id IN {{v:Array(String)}} "
            "ORDER BY voice_id, requested_at DESC, change_id DESC LIMIT {n:UInt32} BY voice_id",
            v=voice_ids,
            n=limit,
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for r in reversed(rows):
            out.setdefault(r["voice_id"], []).append(
                {**r, "context_modifiers": json.loads(r["context_modifiers"])}
            )
        return out

    async def orchestrations(
        self, orchestration_id: str | None, state: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Orchestrations in their current state, newest request first."""
        conditions = ["1"]
        parameters: dict[str, Any] = {"n": limit}
        if orchestration_id is not None:
            conditions.append("orchestration_id = {id:String}")
            parameters["id"] = orchestration_id
        if state is not None:
            conditions.append("state = {state:String}")
            parameters["state"] = state
        return await self._rows(
            f"SELECT orchestration_id, state, strategy, target_voices, duration_seconds, "
            f"voice_parameters, rationale, requested_by, decided_by, detail, "
            f"{_ms('requested_at')}, {_ms('changed_at')}, "
            f"toUnixTimestamp64Milli(ends_at) AS ends_at, version "
            f"FROM {self.db}.orchestrations FINAL WHERE {' AND '.join(conditions)} "
            "ORDER BY requested_at DESC, orchestration_id LIMIT {n:UInt32}",
            **parameters,
        )

    async def alert_conditions(
        self,
        condition_id: str | None,
        state: str | None,
        severity: str | None,
        rule: str | None,
        subject: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Alert conditions as they are now, newest opened first."""
        conditions = ["1"]
        parameters: dict[str, Any] = {"n": limit}
        for column, value in (
            ("condition_id", condition_id),
            ("state", state),
            ("severity", severity),
            ("rule", rule),
            ("subject", subject),
        ):
            if value is not None:
                conditions.append(f"{column} = {{{column}:String}}")
                parameters[column] = value
        return await self._rows(
            f"SELECT condition_id, rule, subject, severity, state, {_ms('first_window')}, "
            f"{_ms('last_window')}, windows, alert_id, message, value, threshold, "
            f"recommended_actions, {_ms('opened_at')}, acknowledged_by, resolved_by, "
            f"resolution, silenced_by, escalation_level, notifications, {_ms('changed_at')}, "
            f"version FROM {self.db}.alert_conditions FINAL "
            f"WHERE {' AND '.join(conditions)} "
            "ORDER BY opened_at DESC, condition_id LIMIT {n:UInt32}",
            **parameters,
        )

    async def alert_deliveries(self, condition_id: str, limit: int) -> list[dict[str, Any]]:
        """Every delivery attempt for a condition, oldest first."""
        return await self._rows(
            "SELECT delivery_id, notification_id, condition_id, kind, severity, channel, "
            f"channel_type, attempt, outcome, status_code, error, latency_ms, "
            f"{_ms('attempted_at')} FROM {self.db}.alert_deliveries FINAL "
            "WHERE condition_id = {c:String} ORDER BY attempted_at, delivery_id "
            "LIMIT {n:UInt32}",
            c=condition_id,
            n=limit,
        )

    async def silences(self, now_ms: int) -> list[dict[str, Any]]:
        """Silences in force at ``now_ms``: created, not yet ended, not lifted."""
        return await self._rows(
            "SELECT silence_id, rule, subject, severity, toUnixTimestamp64Milli(until) AS until, "
            f"reason, actor, {_ms('at')} FROM {self.db}.alert_actions FINAL "
            "WHERE action = 'SILENCE' AND until > fromUnixTimestamp64Milli({now:Int64}) "
            f"AND silence_id NOT IN (SELECT silence_id FROM {self.db}.alert_actions "
            "WHERE action = 'UNSILENCE') ORDER BY at, silence_id",
            now=now_ms,
        )
