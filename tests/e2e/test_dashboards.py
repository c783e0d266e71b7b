"""The Grafana dashboards against a real run: every ClickHouse panel's SQL, with the
plugin's macros and the dashboard's variables expanded as Grafana would, runs on the
tables a simulated run filled and returns the columns the panel plots; every metric a
Prometheus panel names is served on /metrics with the type the query needs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deltaomega.config import Settings
from deltaomega.dashboards import pipeline, voices
from deltaomega.producer.episodes import Episode
from deltaomega.sinks.clickhouse import ClickHouse, connect
from tests.conftest import RunningService, wait_for
from tests.model_outputs import simulate_episodes
from tests.receivers import hook_routing, http_receiver

WINDOW = 10_000
VOICES = [f"voice-{i:02d}" for i in range(8)]
POLICIES = Path(__file__).resolve().parents[2] / "deltaomega/control/policies.example.yaml"


def expand(
    sql: str, start: datetime, end: datetime, interval_s: int, values: dict[str, list[str]]
) -> str:
    """Template variables first (Grafana interpolates them before the query leaves), then
    the macros of grafana-clickhouse-datasource (its pkg/macros/macros.go)."""

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        form = match.group(2)
        chosen = values[name]
        if form == "singlequote":
            return ",".join("'" + v.replace("'", "\\'") + "'" for v in chosen)
        assert form is None and len(chosen) == 1, (name, form, chosen)
        return chosen[0]

    sql = re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)([A-Za-z]\w*)", variable, sql)
    f, t = int(start.timestamp()), int(end.timestamp())
    f_ms, t_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    with_column: dict[str, Callable[[str], str]] = {
        "timeFilter": lambda c: f"{c} >= toDateTime({f}) AND {c} <= toDateTime({t})",
        "timeFilter_ms": lambda c: (
            f"{c} >= fromUnixTimestamp64Milli({f_ms}) AND {c} <= fromUnixTimestamp64Milli({t_ms})"
        ),
        "timeInterval": lambda c: (
            f"toStartOfInterval(toDateTime({c}), INTERVAL {interval_s} second)"
        ),
        "timeInterval_ms": lambda c: (
            f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {interval_s * 1000} millisecond)"
        ),
    }
    sql = re.sub(
        r"\$__(\w+)\(([^()]*)\)", lambda m: with_column[m.group(1)](m.group(2).strip()), sql
    )
    plain = {
        "fromTime": f"toDateTime({f})",
        "toTime": f"toDateTime({t})",
        "fromTime_ms": f"fromUnixTimestamp64Milli({f_ms})",
        "toTime_ms": f"fromUnixTimestamp64Milli({t_ms})",
        "interval_s": str(interval_s),
    }
    sql = re.sub(r"\$__(\w+)", lambda m: plain[m.group(1)], sql)
    assert "$" not in sql, sql
    return sql


def test_expand_follows_the_plugin() -> None:
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    sql = (
        "SELECT $__timeInterval(ts) AS time FROM t WHERE $__timeFilter(ts) AND "
        "v IN (${voice:singlequote}) AND m = '${metric}' AND k = '$kind' AND x > $__fromTime_ms"
    )
    assert expand(
        sql, start, end, 10, {"voice": ["a", "b"], "metric": ["stress"], "kind": ["K"]}
    ) == (
        "SELECT toStartOfInterval(toDateTime(ts), INTERVAL 10 second) AS time FROM t WHERE "
        "ts >= toDateTime(1767225600) AND ts <= toDateTime(1767225900) AND v IN ('a','b') "
        "AND m = 'stress' AND k = 'K' AND x > fromUnixTimestamp64Milli(1767225600000)"
    )


def _carries_data(values: list[Any]) -> bool:
    return any(v not in (None, "", 0, 0.0, []) for v in values)


@pytest.mark.kafka
def test_every_panel_runs_on_a_real_run(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
    tmp_path: Path,
) -> None:
    receiver = next(receivers := http_receiver())
    # conditions stay open for the whole run: the stat panel counts them
    routing = hook_routing(
        tmp_path / "routing.yaml", f"{receiver.url}/hook", ("CRITICAL",), resolve_after_windows=1000
    )
    settings = settings_factory(
        batch_max_records=2000, alert_routing_file=routing, policies_file=POLICIES
    )
    db = settings.clickhouse_database
    t0 = (int(time.time() * 1000) - 600_000) // WINDOW * WINDOW
    conflict = Episode("conflict", t0 + 40_000, t0 + 120_000, ("voice-01", "voice-02"))
    onset = Episode("emergence", t0 + 130_000, t0 + 160_000, tuple(VOICES))
    service = service_factory(settings, control=True)
    summary = simulate_episodes(settings, t0, 200.0, 5, [conflict, onset])
    assert summary.failed == 0

    def count(table: str) -> int:
        return int(clickhouse.rows(f"SELECT count() AS n FROM {db}.{table} FINAL")[0]["n"])

    wait_for(lambda: count("patterns") == 19, 120, "19 ticks through the models")
    wait_for(lambda: count("alert_conditions") > 0, 60, "alert conditions")
    wait_for(lambda: count("orchestrations") > 0, 60, "an orchestration proposed by policy")
    receivers.close()

    # Every ClickHouse panel, over the run's time range, as the dashboard's defaults pick.
    tables = connect(clickhouse.settings, database=db)
    start = datetime.fromtimestamp(t0 / 1000 - 60, UTC)
    end = datetime.fromtimestamp(time.time() + 60, UTC)
    values: dict[str, list[str]] = {}
    for v in voices.VARIABLES:
        if isinstance(v.query, str):
            found = tables.rows(expand(v.query, start, end, 10, values))
            values[v.name] = [str(next(iter(r.values()))) for r in found]
        else:
            values[v.name] = [v.default or v.query[0]]
    assert values["voice"] == VOICES
    checked = []
    for panel in voices.PANELS:
        sql = expand(panel.sql, start, end, 10, values)
        result = tables.call(lambda c, q=sql: c.query(q))
        columns = list(result.column_names)
        rows = [dict(zip(columns, row, strict=True)) for row in result.result_rows]
        assert rows, (panel.title, sql)
        assert set(panel.plots) <= set(columns), (panel.title, columns)
        for column in panel.plots:
            assert _carries_data([r[column] for r in rows]), (panel.title, column, rows[:3])
        if panel.kind in ("timeseries", "bars", "state-timeline"):
            assert columns[0] == "time" and isinstance(rows[0]["time"], datetime), panel.title
        checked.append(panel.title)
    assert len(checked) == len(voices.PANELS) == 16

    # Every Prometheus panel's metrics, as this process serves them.
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    served: dict[str, str] = {}
    sampled: set[str] = set()
    for family in text_string_to_metric_families(text):
        names = {
            "counter": [f"{family.name}_total"],
            "histogram": [f"{family.name}_{s}" for s in ("bucket", "sum", "count")],
        }.get(family.type, [family.name])
        served |= dict.fromkeys(names, family.type)
        sampled |= {s.name for s in family.samples}
    named = {
        name
        for panel in pipeline.PANELS
        for expr, _ in panel.queries
        for name in re.findall(r"\bdeltaomega_\w+", expr)
    }
    assert len(named) == 33
    assert sorted(named - set(served)) == []
    # The run moved the main ones.
    for name in (
        "deltaomega_records_consumed_total",
        "deltaomega_windows_closed_total",
        "deltaomega_sink_rows_total",
        "deltaomega_tick_seconds_bucket",
        "deltaomega_inference_seconds_bucket",
        "deltaomega_http_requests_total",
        "deltaomega_alert_deliveries_total",
    ):
        assert name in sampled, name
