"""Prometheus metrics for every stage, in one place so names stay consistent."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_CONSUMED = Counter(
    "deltaomega_records_consumed_total", "Kafka records taken by an agent", ["topic"]
)
EVENTS_DECODED = Counter(
    "deltaomega_events_decoded_total", "Events decoded and validated", ["stream"]
)
DEADLETTERED = Counter(
    "deltaomega_deadletter_total", "Records sent to the dead-letter topic", ["topic", "error"]
)
LATE_EVENTS = Counter(
    "deltaomega_late_events_total", "Events dropped because their window had closed", ["stream"]
)
REPLAYED_EVENTS = Counter(
    "deltaomega_replayed_events_total", "Redelivered events skipped as already counted", ["stream"]
)
WINDOWS_CLOSED = Counter(
    "deltaomega_windows_closed_total", "Windows closed and emitted", ["stream"]
)
TABLE_WRITES = Counter("deltaomega_table_writes_total", "Open-window table writes", ["stream"])
OPEN_WINDOWS = Gauge("deltaomega_open_windows", "Windows currently open", ["stream"])
WATERMARK_LAG = Gauge(
    "deltaomega_watermark_lag_seconds", "Wall clock minus the latest watermark", ["stream"]
)
STATE_SYNC_SECONDS = Histogram(
    "deltaomega_state_sync_seconds",
    "From a live window being closable (its end plus grace) to its states being emitted",
    ["stream"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
BATCH_SECONDS = Histogram(
    "deltaomega_batch_seconds",
    "Time to process one consumer batch, by stage",
    ["stream", "stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SIZE = Histogram(
    "deltaomega_batch_records",
    "Records per consumer batch",
    ["stream"],
    buckets=(1, 10, 100, 500, 1000, 5000, 10000, 50000),
)
SINK_ROWS = Counter("deltaomega_sink_rows_total", "Rows inserted into ClickHouse", ["table"])
SINK_SECONDS = Histogram(
    "deltaomega_sink_insert_seconds",
    "ClickHouse insert latency",
    ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SSE_CLIENTS = Gauge("deltaomega_sse_clients", "Connected Server-Sent Events clients", ["feed"])
FEED_TAILS = Gauge(
    "deltaomega_feed_tails", "Kafka consumers following a feed topic in this process", ["topic"]
)
FEED_DROPPED = Counter(
    "deltaomega_feed_subscribers_dropped_total",
    "Feed subscribers dropped, by why (too slow, history unavailable, server stopping)",
    ["topic", "reason"],
)
HTTP_REQUESTS = Counter(
    "deltaomega_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
AUTH_DENIED = Counter(
    "deltaomega_auth_denied_total",
    "Requests refused before their route: 401 (who?), 403 (role), 429 (rate limit)",
    ["status"],
)
HTTP_SECONDS = Histogram(
    "deltaomega_http_request_seconds", "HTTP request latency", ["method", "route"]
)
INFERENCE_SECONDS = Histogram(
    "deltaomega_inference_seconds",
    "One batched onnxruntime call",
    ["model"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
INFERENCE_BATCH = Histogram(
    "deltaomega_inference_batch_rows",
    "Rows (voices, or voices in all graphs) in one batched call",
    ["model"],
    buckets=(1, 4, 16, 64, 256, 1000, 4000, 10000, 50000),
)
TICK_SECONDS = Histogram(
    "deltaomega_tick_seconds",
    "Features, all four models and alert rules for one closed window",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
TICKS = Counter("deltaomega_ticks_total", "Closed windows run through the models")
LATE_STATES = Counter(
    "deltaomega_late_states_total", "States that arrived after their window's tick ran"
)
MODEL_OUTPUTS = Counter(
    "deltaomega_model_outputs_total", "Records produced by the models and alert rules", ["kind"]
)
MODEL_VERSION_INFO = Gauge(
    "deltaomega_model_version_active", "1 for the model version being served", ["version"]
)
DEPENDENCY_UP = Gauge(
    "deltaomega_dependency_up", "1 while a service answers, 0 during an outage", ["service"]
)
BATCH_FAILURES = Counter(
    "deltaomega_batch_failures_total",
    "Consumer batches whose processing failed (rolled back and retried)",
    ["consumer"],
)
POISON_RECORDS = Counter(
    "deltaomega_poison_records_total",
    "Records isolated from a batch that failed every retry, and dead-lettered",
    ["consumer"],
)
CONSUMER_LAG = Gauge(
    "deltaomega_consumer_lag_records",
    "Records behind the log end, over assigned partitions",
    ["consumer"],
)
CONSUMER_RESTARTS = Counter(
    "deltaomega_consumer_restarts_total", "Consumers restarted after an error", ["consumer"]
)
POLICY_PROPOSALS = Counter(
    "deltaomega_policy_alerts_total",
    "Alerts a policy matched, by what came of them (proposed, quiet, stale, no_target)",
    ["policy", "outcome"],
)
WS_CONNECTIONS = Gauge("deltaomega_ws_connections", "Open WebSocket API connections")
ALERT_NOTIFICATIONS = Counter(
    "deltaomega_alert_notifications_total",
    "Notifications of alert conditions, by kind (opened, reminder, escalated, resolved, …)",
    ["kind", "severity"],
)
ALERT_DELIVERIES = Counter(
    "deltaomega_alert_deliveries_total",
    "Attempts to deliver a notification, by channel and outcome (delivered, retrying, failed)",
    ["channel", "outcome"],
)
ALERT_DELIVERY_SECONDS = Histogram(
    "deltaomega_alert_delivery_seconds",
    "From a notification's decision to its delivery on a channel, retries included",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
ALERT_CONDITIONS_OPEN = Gauge(
    "deltaomega_alert_conditions_open", "Alert conditions open or acknowledged", ["severity"]
)
MODEL_PROCESS_RESTARTS = Counter(
    "deltaomega_model_process_restarts_total", "Model processes replaced after dying"
)
MEMORY_LIMIT = Gauge(
    "deltaomega_memory_limit_bytes",
    "The memory this process may use: its cgroup's limit, else the machine's",
)
