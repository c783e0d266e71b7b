-- Model outputs and alerts, one column per Avro field. Each table is a ReplacingMergeTree
-- whose sorting key is the record's natural key, so a replayed output collapses onto the
-- row it repeats; reads that must be exact use FINAL.
CREATE TABLE IF NOT EXISTS {db}.predictions
(
    window_start        DateTime64(3, 'UTC'),
    target_window_start DateTime64(3, 'UTC'),
    voice_id            LowCardinality(String),
    temperature_pred    Float64, temperature_std Float64, temperature_low Float64, temperature_high Float64,
    activation_pred     Float64, activation_std  Float64, activation_low  Float64, activation_high  Float64,
    stress_pred         Float64, stress_std      Float64, stress_low      Float64, stress_high      Float64,
    influence_pred      Float64, influence_std   Float64, influence_low   Float64, influence_high   Float64,
    interval_level      Float64,
    risk                Float64,
    model_version       LowCardinality(String),
    produced_at         DateTime64(3, 'UTC'),
    kafka_partition     UInt32,
    kafka_offset        UInt64,
    ingested_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (voice_id, window_start);

CREATE TABLE IF NOT EXISTS {db}.conflict_predictions
(
    window_start    DateTime64(3, 'UTC'),
    source          LowCardinality(String),
    target          LowCardinality(String),
    probability     Float64,
    horizon_windows Int32,
    model_version   LowCardinality(String),
    produced_at     DateTime64(3, 'UTC'),
    kafka_partition UInt32,
    kafka_offset    UInt64,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (source, target, window_start);

CREATE TABLE IF NOT EXISTS {db}.emergence
(
    window_start         DateTime64(3, 'UTC'),
    probability          Float64,
    detected             Bool,
    type                 LowCardinality(String),
    type_probability     Float64,
    reconstruction_error Float64,
    voices               Int32,
    model_version        LowCardinality(String),
    produced_at          DateTime64(3, 'UTC'),
    kafka_partition      UInt32,
    kafka_offset         UInt64,
    ingested_at          DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY window_start;

CREATE TABLE IF NOT EXISTS {db}.patterns
(
    window_start    DateTime64(3, 'UTC'),
    pattern         LowCardinality(String),
    confidence      Float64,
    complexity      Float64,
    novelty         Float64,
    model_version   LowCardinality(String),
    produced_at     DateTime64(3, 'UTC'),
    kafka_partition UInt32,
    kafka_offset    UInt64,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY window_start;

-- alert_id is rule:subject:window_start, so leading the key with those columns keeps
-- replays collapsing exactly as on alert_id alone while rule/subject filters use the index.
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    alert_id            String,
    window_start        DateTime64(3, 'UTC'),
    rule                LowCardinality(String),
    severity            LowCardinality(String),
    subject             LowCardinality(String),
    message             String,
    value               Float64,
    threshold           Float64,
    recommended_actions Array(String),
    model_version       LowCardinality(String),
    produced_at         DateTime64(3, 'UTC'),
    kafka_partition     UInt32,
    kafka_offset        UInt64,
    ingested_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (rule, subject, window_start, alert_id);
