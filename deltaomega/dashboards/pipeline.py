"""The "Pipeline" dashboard: how the pipeline itself is doing, on Prometheus.

Each panel is a :class:`PromPanel` of PromQL over the metrics every process serves on
``/metrics`` (:mod:`deltaomega.metrics`); the ``service`` label is the one Prometheus'
scrape config gives each target (worker, api, control). A test checks every metric named
here against a running service's ``/metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from deltaomega.dashboards.layout import assemble

UID = "deltaomega-pipeline"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="deltaomega-prometheus")
RATE = "[$__rate_interval]"


@dataclass(frozen=True)
class PromPanel:
    title: str
    #: (PromQL, legend) per series
    queries: tuple[tuple[str, str], ...]
    unit: str = "short"
    kind: Literal["timeseries", "stat"] = "timeseries"
    width: int = 8
    description: str = ""


def _p99(histogram: str, by: str) -> str:
    labels = "le" if by == "le" else f"le, {by}"
    return f"histogram_quantile(0.99, sum by ({labels}) (rate({histogram}_bucket{RATE})))"


def _mean(histogram: str, by: str) -> str:
    return (
        f"sum by ({by}) (rate({histogram}_sum{RATE})) "
        f"/ sum by ({by}) (rate({histogram}_count{RATE}))"
    )


ROWS: tuple[tuple[str, tuple[PromPanel, ...]], ...] = (
    (
        "Health",
        (
            PromPanel(
                "Dependencies up",
                (("min by (service) (deltaomega_dependency_up)", "{{service}}"),),
                kind="stat",
                width=8,
                description="1 while Kafka, ClickHouse and the schema registry answer.",
            ),
            PromPanel(
                "Active model version",
                (("max by (version) (deltaomega_model_version_active)", "{{version}}"),),
                kind="stat",
                width=8,
            ),
            PromPanel(
                "Batch failures and restarts",
                (
                    (
                        f"sum by (consumer) (increase(deltaomega_batch_failures_total{RATE}))",
                        "failed {{consumer}}",
                    ),
                    (
                        f"sum by (consumer) (increase(deltaomega_consumer_restarts_total{RATE}))",
                        "restarted {{consumer}}",
                    ),
                    (
                        f"sum(increase(deltaomega_model_process_restarts_total{RATE}))",
                        "model process restarts",
                    ),
                ),
                width=8,
            ),
        ),
    ),
    (
        "Throughput",
        (
            PromPanel(
                "Records consumed per topic",
                ((f"sum by (topic) (rate(deltaomega_records_consumed_total{RATE}))", "{{topic}}"),),
                unit="rps",
            ),
            PromPanel(
                "Events decoded, windows closed",
                (
                    (
                        f"sum by (stream) (rate(deltaomega_events_decoded_total{RATE}))",
                        "decoded {{stream}}",
                    ),
                    (
                        f"sum by (stream) (rate(deltaomega_windows_closed_total{RATE}))",
                        "windows closed {{stream}}",
                    ),
                    (
                        f"sum by (stream) (rate(deltaomega_late_events_total{RATE}))",
                        "late {{stream}}",
                    ),
                ),
                unit="rps",
            ),
            PromPanel(
                "Batch time per stage, p99",
                ((_p99("deltaomega_batch_seconds", "stream, stage"), "{{stream}} {{stage}}"),),
                unit="s",
            ),
        ),
    ),
    (
        "Lag and latency",
        (
            PromPanel(
                "Consumer lag",
                (("max by (consumer) (deltaomega_consumer_lag_records)", "{{consumer}}"),),
                description="Records behind the end of the topic, per consumer.",
            ),
            PromPanel(
                "Watermark lag",
                (("max by (stream) (deltaomega_watermark_lag_seconds)", "{{stream}}"),),
                unit="s",
                description="Wall clock minus the newest event time: end-to-end delay.",
            ),
            PromPanel(
                "Window close to state in the sinks, p99",
                ((_p99("deltaomega_state_sync_seconds", "stream"), "{{stream}}"),),
                unit="s",
            ),
        ),
    ),
    (
        "Dead letters",
        (
            PromPanel(
                "Dead-lettered records by reason",
                (
                    (
                        f"sum by (topic, error) (increase(deltaomega_deadletter_total{RATE}))",
                        "{{topic}}: {{error}}",
                    ),
                ),
                width=12,
            ),
            PromPanel(
                "Poison records and late states",
                (
                    (
                        f"sum by (consumer) (increase(deltaomega_poison_records_total{RATE}))",
                        "poison {{consumer}}",
                    ),
                    (
                        f"sum(increase(deltaomega_late_states_total{RATE}))",
                        "states after their tick",
                    ),
                ),
                width=12,
            ),
        ),
    ),
    (
        "Inference",
        (
            PromPanel(
                "Inference time per model, p99",
                ((_p99("deltaomega_inference_seconds", "model"), "{{model}}"),),
                unit="s",
            ),
            PromPanel(
                "Inference batch size",
                ((_mean("deltaomega_inference_batch_rows", "model"), "{{model}}"),),
                description="Rows per model call (voices or pairs of a tick).",
            ),
            PromPanel(
                "Ticks",
                (
                    (f"sum(rate(deltaomega_ticks_total{RATE}))", "ticks/s"),
                    (_p99("deltaomega_tick_seconds", "le"), "tick p99 (s)"),
                ),
            ),
        ),
    ),
    (
        "Sinks",
        (
            PromPanel(
                "Rows written per table",
                ((f"sum by (table) (rate(deltaomega_sink_rows_total{RATE}))", "{{table}}"),),
                unit="rps",
                width=12,
            ),
            PromPanel(
                "Insert time per table, p99",
                ((_p99("deltaomega_sink_insert_seconds", "table"), "{{table}}"),),
                unit="s",
                width=12,
            ),
        ),
    ),
    (
        "API",
        (
            PromPanel(
                "Requests per route",
                ((f"sum by (route) (rate(deltaomega_http_requests_total{RATE}))", "{{route}}"),),
                unit="reqps",
            ),
            PromPanel(
                "Errors",
                (
                    (
                        f'sum(rate(deltaomega_http_requests_total{{status=~"5.."}}{RATE})) '
                        f"/ sum(rate(deltaomega_http_requests_total{RATE}))",
                        "5xx share",
                    ),
                    (
                        f'sum(rate(deltaomega_http_requests_total{{status=~"4.."}}{RATE})) '
                        f"/ sum(rate(deltaomega_http_requests_total{RATE}))",
                        "4xx share",
                    ),
                    (
                        f"sum by (status) (rate(deltaomega_auth_denied_total{RATE}))",
                        "denied {{status}}",
                    ),
                ),
                unit="percentunit",
            ),
            PromPanel(
                "Duration per route, p99",
                ((_p99("deltaomega_http_request_seconds", "route"), "{{route}}"),),
                unit="s",
            ),
            PromPanel(
                "Feed subscribers",
                (
                    ("sum by (feed) (deltaomega_sse_clients)", "SSE {{feed}}"),
                    ("sum(deltaomega_ws_connections)", "WebSocket"),
                    ("sum by (topic) (deltaomega_feed_tails)", "tail {{topic}}"),
                ),
                width=12,
            ),
            PromPanel(
                "Subscribers dropped",
                (
                    (
                        "sum by (topic, reason) "
                        f"(increase(deltaomega_feed_subscribers_dropped_total{RATE}))",
                        "{{topic}}: {{reason}}",
                    ),
                ),
                width=12,
            ),
        ),
    ),
    (
        "Alert delivery",
        (
            PromPanel(
                "Open conditions by severity",
                (("sum by (severity) (deltaomega_alert_conditions_open)", "{{severity}}"),),
            ),
            PromPanel(
                "Delivery attempts by outcome",
                (
                    (
                        "sum by (channel, outcome) "
                        f"(increase(deltaomega_alert_deliveries_total{RATE}))",
                        "{{channel}} {{outcome}}",
                    ),
                ),
            ),
            PromPanel(
                "Delivery time per channel, p99",
                ((_p99("deltaomega_alert_delivery_seconds", "channel"), "{{channel}}"),),
                unit="s",
            ),
        ),
    ),
)

PANELS: tuple[PromPanel, ...] = tuple(p for _, panels in ROWS for p in panels)


def _panel(p: PromPanel, panel_id: int) -> cogbuilder.Builder[model.Panel]:
    built: timeseries.Panel | stat.Panel
    if p.kind == "stat":
        built = stat.Panel().graph_mode(common.BigValueGraphMode.NONE)
    else:
        built = timeseries.Panel().fill_opacity(10)
    for ref, (expr, legend) in zip("ABCDEFGH", p.queries, strict=False):
        target = (
            prometheus.Dataquery()
            .expr(expr)
            .legend_format(legend)
            .ref_id(ref)
            .datasource(DATASOURCE)
        )
        built = built.with_target(target.instant() if p.kind == "stat" else target.range())
    built = (
        built.id(panel_id)
        .title(p.title)
        .datasource(DATASOURCE)
        .unit(p.unit)
        .span(p.width)
        .height(4 if p.kind == "stat" else 8)
    )
    if p.description:
        built = built.description(p.description)
    return built


def build() -> model.Dashboard:
    return assemble(
        "Meta-ΔDΩΛ · Pipeline",
        UID,
        "Throughput, lag, latency, dead letters, inference, sinks, API, alerts.",
        ROWS,
        _panel,
    )
