-- Each orchestration's state after every change (voice.orchestration-status, Avro
-- OrchestrationStatus; voice_parameters as JSON). The row with the highest version is the
-- current state: reads use FINAL.
CREATE TABLE IF NOT EXISTS {db}.orchestrations
(
    orchestration_id String,
    state            LowCardinality(String),
    strategy         LowCardinality(String),
    target_voices    Array(String),
    duration_seconds Int32,
    voice_parameters String,
    rationale        String,
    requested_by     String,
    decided_by       String,
    detail           String,
    requested_at     DateTime64(3, 'UTC'),
    changed_at       DateTime64(3, 'UTC'),
    ends_at          Nullable(DateTime64(3, 'UTC')),
    version          Int32,
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    ingested_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY orchestration_id
