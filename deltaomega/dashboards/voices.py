"""The "Voices" dashboard: what the voices do, on the ClickHouse datasource.

Each panel is a :class:`SqlPanel`: its SQL (with the plugin's macros and the dashboard's
variables) and the columns it plots. The tests expand the macros and variables exactly as
Grafana would and run every panel against a pipeline's tables, so a renamed column fails
there, not in front of an operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from deltaomega.api.matrix import ANTAGONISTIC, SUPPORTIVE
from deltaomega.dashboards.clickhouse_query import DATASOURCE, ClickHouseQueryBuilder
from deltaomega.dashboards.layout import assemble
from deltaomega.schemas.records import INTERACTION_KINDS, METRICS

UID = "deltaomega-voices"
Kind = Literal["timeseries", "bars", "table", "stat", "state-timeline", "matrix"]


@dataclass(frozen=True)
class SqlPanel:
    title: str
    kind: Kind
    sql: str
    #: the columns the panel draws (time first for time series), as the query names them
    plots: tuple[str, ...]
    unit: str = "none"
    width: int = 12
    description: str = ""


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    #: SQL for a query variable, or the fixed values of a custom one
    query: str | tuple[str, ...]
    default: str | None = None
    multi: bool = False


def _kinds(kinds: frozenset[str]) -> str:
    return "(" + ", ".join(f"'{k}'" for k in sorted(kinds)) + ")"


_WEIGHT = "strength_mean * count"
_SUPPORT = f"sumIf({_WEIGHT}, kind IN {_kinds(SUPPORTIVE)})"
_AGAINST = f"sumIf({_WEIGHT}, kind IN {_kinds(ANTAGONISTIC)})"
#: the API's harmony (GET /api/v1/interactions/harmony): supportive minus antagonistic
#: strength over all strength, each weighted by its events
_HARMONY = f"({_SUPPORT} - {_AGAINST}) / sum({_WEIGHT})"
_CONFLICT = f"{_AGAINST} / sum({_WEIGHT})"

VARIABLES = (
    Variable("voice", "Voice", "SELECT voice_id FROM voices FINAL ORDER BY voice_id", multi=True),
    Variable("metric", "Metric", METRICS, default="stress"),
    Variable("kind", "Interaction kind", INTERACTION_KINDS, default="COMPETITION"),
)

ROWS: tuple[tuple[str, tuple[SqlPanel, ...]], ...] = (
    (
        "Now",
        (
            SqlPanel(
                "Voices in the last window",
                "stat",
                "SELECT uniqExact(voice_id) AS voices FROM voice_states FINAL "
                "WHERE window_start = (SELECT max(window_start) FROM voice_states "
                "WHERE $__timeFilter(window_start))",
                ("voices",),
                width=6,
            ),
            SqlPanel(
                "Harmony, last window",
                "stat",
                f"SELECT {_HARMONY} AS harmony FROM interaction_states FINAL "
                "WHERE window_start = (SELECT max(window_start) FROM interaction_states "
                "WHERE $__timeFilter(window_start))",
                ("harmony",),
                unit="percentunit",
                width=6,
                description="Supportive minus antagonistic interaction strength, over all.",
            ),
            SqlPanel(
                "Active pattern",
                "stat",
                "SELECT argMax(pattern, window_start) AS pattern FROM patterns FINAL "
                "WHERE $__timeFilter(window_start)",
                ("pattern",),
                width=6,
            ),
            SqlPanel(
                "Open alert conditions",
                "stat",
                "SELECT countIf(state != 'RESOLVED') AS open FROM alert_conditions FINAL "
                "WHERE $__timeFilter(opened_at)",
                ("open",),
                width=6,
            ),
        ),
    ),
    (
        "State",
        (
            SqlPanel(
                "${metric} per voice",
                "timeseries",
                "SELECT $__timeInterval(window_start) AS time, voice_id, "
                "avg(${metric}_mean) AS value FROM voice_states FINAL "
                "WHERE $__timeFilter(window_start) AND voice_id IN (${voice:singlequote}) "
                "GROUP BY time, voice_id ORDER BY time",
                ("time", "voice_id", "value"),
                description="The mean of the metric over each window, per voice.",
            ),
            SqlPanel(
                "Predicted ${metric}, with its interval",
                "timeseries",
                "SELECT $__timeInterval(target_window_start) AS time, voice_id, "
                "avg(${metric}_pred) AS predicted, avg(${metric}_low) AS low, "
                "avg(${metric}_high) AS high FROM predictions FINAL "
                "WHERE $__timeFilter(target_window_start) "
                "AND voice_id IN (${voice:singlequote}) "
                "GROUP BY time, voice_id ORDER BY time",
                ("time", "voice_id", "predicted", "low", "high"),
                description="The state model's prediction for each window, made one before.",
            ),
        ),
    ),
    (
        "Interactions",
        (
            SqlPanel(
                "Interaction matrix: ${kind}",
                "matrix",
                "SELECT source, target, round(argMax(strength_mean, window_start), 3) "
                "AS strength FROM interaction_states FINAL "
                "WHERE $__timeFilter(window_start) AND kind = '${kind}' "
                "GROUP BY source, target ORDER BY source, target",
                ("source", "target", "strength"),
                width=8,
                description="Each pair's strength in its latest window of the range.",
            ),
            SqlPanel(
                "Harmony and conflict",
                "timeseries",
                f"SELECT $__timeInterval(window_start) AS time, {_HARMONY} AS harmony, "
                f"{_CONFLICT} AS conflict FROM interaction_states FINAL "
                "WHERE $__timeFilter(window_start) "
                f"GROUP BY time HAVING sum({_WEIGHT}) > 0 ORDER BY time",
                ("time", "harmony", "conflict"),
                unit="percentunit",
                width=8,
            ),
            SqlPanel(
                "Interaction strength by kind",
                "timeseries",
                "SELECT $__timeInterval(window_start) AS time, kind, "
                f"sum({_WEIGHT}) / sum(count) AS strength FROM interaction_states FINAL "
                "WHERE $__timeFilter(window_start) GROUP BY time, kind ORDER BY time",
                ("time", "kind", "strength"),
                width=8,
            ),
        ),
    ),
    (
        "Predictions",
        (
            SqlPanel(
                "Conflict probability, the five likeliest pairs",
                "timeseries",
                "SELECT $__timeInterval(window_start) AS time, "
                "concat(source, ' → ', target) AS pair, max(probability) AS probability "
                "FROM conflict_predictions FINAL WHERE $__timeFilter(window_start) "
                "AND (source, target) IN (SELECT source, target FROM conflict_predictions "
                "FINAL WHERE $__timeFilter(window_start) GROUP BY source, target "
                "ORDER BY max(probability) DESC LIMIT 5) "
                "GROUP BY time, pair ORDER BY time",
                ("time", "pair", "probability"),
                unit="percentunit",
                width=8,
            ),
            SqlPanel(
                "${metric}: prediction error against persistence",
                "timeseries",
                "SELECT $__timeInterval(window_start) AS time, "
                "avg(${metric}_mae) AS model, avg(${metric}_persistence_mae) AS persistence, "
                "avg(${metric}_coverage) AS coverage FROM prediction_scores FINAL "
                "WHERE $__timeFilter(window_start) GROUP BY time ORDER BY time",
                ("time", "model", "persistence", "coverage"),
                width=8,
                description="Scored as each window closed: the model's mean absolute error, "
                "carrying the last window forward's, and the share inside the interval.",
            ),
            SqlPanel(
                "Emergence",
                "timeseries",
                "SELECT $__timeInterval(window_start) AS time, max(probability) AS probability, "
                "max(toUInt8(detected)) AS detected FROM emergence FINAL "
                "WHERE $__timeFilter(window_start) GROUP BY time ORDER BY time",
                ("time", "probability", "detected"),
                unit="percentunit",
                width=8,
            ),
            SqlPanel(
                "Pattern",
                "state-timeline",
                "SELECT window_start AS time, pattern FROM patterns FINAL "
                "WHERE $__timeFilter(window_start) ORDER BY time",
                ("time", "pattern"),
                width=16,
            ),
        ),
    ),
    (
        "Alerts and orchestration",
        (
            SqlPanel(
                "Alerts by severity",
                "bars",
                "SELECT $__timeInterval(window_start) AS time, severity, count() AS alerts "
                "FROM alerts FINAL WHERE $__timeFilter(window_start) "
                "GROUP BY time, severity ORDER BY time",
                ("time", "severity", "alerts"),
                width=8,
            ),
            SqlPanel(
                "Alert conditions",
                "table",
                "SELECT opened_at, severity, rule, subject, state, windows, notifications, "
                "escalation_level, acknowledged_by FROM alert_conditions FINAL "
                "WHERE $__timeFilter(opened_at) ORDER BY opened_at DESC LIMIT 200",
                (
                    "opened_at",
                    "severity",
                    "rule",
                    "subject",
                    "state",
                    "windows",
                    "notifications",
                ),
                width=16,
            ),
            SqlPanel(
                "Orchestrations",
                "table",
                "SELECT requested_at, strategy, state, "
                "arrayStringConcat(target_voices, ', ') AS voices, requested_by, decided_by, "
                "rationale FROM orchestrations FINAL WHERE $__timeFilter(requested_at) "
                "ORDER BY requested_at DESC LIMIT 200",
                ("requested_at", "strategy", "state", "voices", "requested_by", "rationale"),
                width=24,
            ),
        ),
    ),
)

PANELS: tuple[SqlPanel, ...] = tuple(p for _, panels in ROWS for p in panels)


def _variable(v: Variable) -> cogbuilder.Builder[model.VariableModel]:
    if isinstance(v.query, str):
        return (
            dashboard.QueryVariable(v.name)
            .label(v.label)
            .datasource(DATASOURCE)
            .query(v.query)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(v.multi)
            .include_all(v.multi)
        )
    current = v.default or v.query[0]
    return (
        dashboard.CustomVariable(v.name)
        .label(v.label)
        .values(",".join(v.query))
        .current(model.VariableOption(selected=True, text=current, value=current))
    )


def _panel(p: SqlPanel, panel_id: int) -> cogbuilder.Builder[model.Panel]:
    kind = p.kind
    query = ClickHouseQueryBuilder(
        p.sql, "timeSeries" if kind in ("timeseries", "bars") else "table"
    )
    built: timeseries.Panel | table.Panel | stat.Panel | statetimeline.Panel
    if kind in ("timeseries", "bars"):
        built = timeseries.Panel().fill_opacity(10)
        if kind == "bars":
            built = built.draw_style(common.GraphDrawStyle.BARS).stacking(
                common_builders.StackingConfig().mode(common.StackingMode.NORMAL)
            )
    elif kind == "stat":
        built = stat.Panel().graph_mode(common.BigValueGraphMode.NONE)
    elif kind == "state-timeline":
        built = statetimeline.Panel()
    else:
        built = table.Panel()
        if kind == "matrix":
            built = (
                built.with_transformation(
                    model.DataTransformerConfig(
                        id_val="groupingToMatrix",
                        options={
                            "columnField": p.plots[1],
                            "rowField": p.plots[0],
                            "valueField": p.plots[2],
                        },
                    )
                )
                .cell_options(
                    common.TableColoredBackgroundCellOptions(
                        mode=common.TableCellBackgroundDisplayMode.GRADIENT
                    )
                )
                .color_scheme(
                    dashboard.FieldColor().mode(model.FieldColorModeId.CONTINUOUS_GR_YL_RD)
                )
                .min(0)
                .max(1)
            )
    built = (
        built.id(panel_id)
        .title(p.title)
        .datasource(DATASOURCE)
        .with_target(query)
        .unit(p.unit)
        .span(p.width)
        .height(4 if kind == "stat" else 9)
    )
    if p.description:
        built = built.description(p.description)
    return built


def build() -> model.Dashboard:
    return assemble(
        "Meta-ΔDΩΛ · Voices",
        UID,
        "Voice state, interactions, predictions, alerts and orchestrations.",
        ROWS,
        _panel,
        [_variable(v) for v in VARIABLES],
    )
