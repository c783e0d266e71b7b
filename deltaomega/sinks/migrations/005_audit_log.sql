-- Every write, approval, automatic action and refused request (topic <app_id>.audit, Avro
-- AuditEvent, one column per field). A replayed event repeats its id and time and
-- collapses onto its row; its TTL (AUDIT_TTL_DAYS, seven years by default) is set at start.
CREATE TABLE IF NOT EXISTS {db}.audit_log
(
    event_id        String,
    occurred_at     DateTime64(3, 'UTC'),
    principal       String,
    role            LowCardinality(String),
    auth_method     LowCardinality(String),
    action          LowCardinality(String),
    target          String,
    rationale       String,
    request_id      String,
    client          String,
    outcome         LowCardinality(String),
    status          UInt16,
    detail          String,
    before          String,
    after           String,
    kafka_partition UInt32,
    kafka_offset    UInt64,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (occurred_at, event_id)
