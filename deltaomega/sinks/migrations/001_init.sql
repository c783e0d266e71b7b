-- Raw events and closed windows. ReplacingMergeTree on the natural key makes every
-- insert idempotent: a batch retried after a crash collapses onto the rows it repeats
-- (reads that must be exact use FINAL or aggregates that tolerate duplicates).
CREATE TABLE IF NOT EXISTS {db}.voice_events
(
    event_id        String,
    voice_id        LowCardinality(String),
    ts              DateTime64(3, 'UTC'),
    temperature     Float64,
    activation      Float64,
    stress          Float64,
    influence       Float64,
    context         Map(String, String),
    kafka_partition UInt32,
    kafka_offset    UInt64,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (voice_id, ts, event_id);

CREATE TABLE IF NOT EXISTS {db}.interaction_events
(
    event_id        String,
    ts              DateTime64(3, 'UTC'),
    source          LowCardinality(String),
    target          LowCardinality(String),
    kind            LowCardinality(String),
    strength        Float64,
    context         Map(String, String),
    kafka_partition UInt32,
    kafka_offset    UInt64,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (source, target, kind, ts, event_id);

CREATE TABLE IF NOT EXISTS {db}.voice_states
(
    window_start     DateTime64(3, 'UTC'),
    window_end       DateTime64(3, 'UTC'),
    voice_id         LowCardinality(String),
    count            UInt64,
    temperature_mean Float64, temperature_min Float64, temperature_max Float64, temperature_last Float64,
    activation_mean  Float64, activation_min  Float64, activation_max  Float64, activation_last  Float64,
    stress_mean      Float64, stress_min      Float64, stress_max      Float64, stress_last      Float64,
    influence_mean   Float64, influence_min   Float64, influence_max   Float64, influence_last   Float64,
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    ingested_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (voice_id, window_start);

CREATE TABLE IF NOT EXISTS {db}.interaction_states
(
    window_start    DateTime64(3, 'UTC'),
    window_end      DateTime64(3, 'UTC'),
    source          LowCardinality(String),
    target          LowCardinality(String),
    kind            LowCardinality(String),
    count           UInt64,
    strength_mean   Float64,
    strength_min    Float64,
    strength_max    Float64,
    strength_last   Float64,
    kafka_partition UInt32,
    kafka_offset    UInt64,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (source, target, kind, window_start);
