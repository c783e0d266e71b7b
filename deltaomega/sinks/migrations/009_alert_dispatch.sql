-- Alert dispatch (deltaomega/control/alert_agent.py): what people did to alert conditions,
-- each condition after every change, and every attempt to deliver a notification.

-- voice.alert-actions (Avro AlertAction): acknowledgements, resolutions, silences.
CREATE TABLE IF NOT EXISTS {db}.alert_actions
(
    action_id       String,
    action          LowCardinality(String),
    condition_id    String,
    silence_id      String,
    rule            Nullable(String),
    subject         Nullable(String),
    severity        Nullable(String),
    until           Nullable(DateTime64(3, 'UTC')),
    reason          String,
    actor           String,
    actor_role      LowCardinality(String),
    at              DateTime64(3, 'UTC'),
    kafka_partition UInt32,
    kafka_offset    UInt64,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (at, action_id);

-- voice.alert-status (Avro AlertCondition): the row with the highest version is the
-- condition now; reads use FINAL.
CREATE TABLE IF NOT EXISTS {db}.alert_conditions
(
    condition_id        String,
    rule                LowCardinality(String),
    subject             String,
    severity            LowCardinality(String),
    state               LowCardinality(String),
    first_window        DateTime64(3, 'UTC'),
    last_window         DateTime64(3, 'UTC'),
    windows             Int32,
    alert_id            String,
    message             String,
    value               Float64,
    threshold           Float64,
    recommended_actions Array(String),
    opened_at           DateTime64(3, 'UTC'),
    acknowledged_by     String,
    resolved_by         String,
    resolution          LowCardinality(String),
    silenced_by         String,
    escalation_level    Int32,
    notifications       Int32,
    changed_at          DateTime64(3, 'UTC'),
    version             Int32,
    kafka_partition     UInt32,
    kafka_offset        UInt64,
    ingested_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY condition_id;

-- voice.alert-deliveries (Avro AlertDelivery): one row per attempt.
CREATE TABLE IF NOT EXISTS {db}.alert_deliveries
(
    delivery_id     String,
    notification_id String,
    condition_id    String,
    kind            LowCardinality(String),
    severity        LowCardinality(String),
    channel         LowCardinality(String),
    channel_type    LowCardinality(String),
    attempt         Int32,
    outcome         LowCardinality(String),
    status_code     Nullable(Int32),
    error           String,
    latency_ms      Float64,
    attempted_at    DateTime64(3, 'UTC'),
    kafka_partition UInt32,
    kafka_offset    UInt64,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(attempted_at)
ORDER BY (condition_id, attempted_at, delivery_id);
