-- Every parameter change on voice.parameters (Avro ParameterChange; context modifiers as
-- JSON), operators' and the control plane's reverts alike. A replay repeats the change id
-- and collapses onto its row.
CREATE TABLE IF NOT EXISTS {db}.parameter_changes
(
    change_id                 String,
    voice_id                  String,
    sensitivity               Nullable(Float64),
    activation_threshold      Nullable(Float64),
    influence_weight          Nullable(Float64),
    context_modifiers         String,
    rationale                 String,
    expected_duration_minutes Nullable(Int32),
    monitoring_enabled        Bool,
    requested_by              String,
    requested_at              DateTime64(3, 'UTC'),
    expires_at                Nullable(DateTime64(3, 'UTC')),
    reverts                   Nullable(String),
    kafka_partition           UInt32,
    kafka_offset              UInt64,
    ingested_at               DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(requested_at)
ORDER BY (voice_id, requested_at, change_id)
