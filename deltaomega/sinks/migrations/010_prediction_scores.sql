-- voice.prediction-scores (Avro PredictionScore): how the predictions made for each closed
-- window did, scored as it closed (deltaomega/streams/scoring.py). One row per window: a
-- window two inference leaders both ran collapses onto one.
CREATE TABLE IF NOT EXISTS {db}.prediction_scores
(
    window_start                     DateTime64(3, 'UTC'),
    model_version                    LowCardinality(String),
    voices                           Int32,
    temperature_mae                  Float64,
    temperature_persistence_mae      Float64,
    temperature_coverage             Float64,
    activation_mae                   Float64,
    activation_persistence_mae       Float64,
    activation_coverage              Float64,
    stress_mae                       Float64,
    stress_persistence_mae           Float64,
    stress_coverage                  Float64,
    influence_mae                    Float64,
    influence_persistence_mae        Float64,
    influence_coverage               Float64,
    conflict_window_start            Nullable(DateTime64(3, 'UTC')),
    conflicts_predicted              Int32,
    conflict_hits                    Int32,
    conflict_false_alarms            Int32,
    conflict_misses                  Int32,
    conflict_threshold               Float64,
    produced_at                      DateTime64(3, 'UTC'),
    kafka_partition                  UInt32,
    kafka_offset                     UInt64,
    ingested_at                      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY window_start;
