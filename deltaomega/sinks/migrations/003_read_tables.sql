-- Small tables the API reads instead of scanning raw events and every state: the voices
-- there are, and each voice's latest closed window. ClickHouse keeps them as the sink
-- inserts (materialized views), so they cost a GROUP BY per inserted block, not a scan
-- per request.
CREATE TABLE IF NOT EXISTS {db}.voices
(
    voice_id   String,
    last_event DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(last_event)
ORDER BY voice_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.voices_from_events TO {db}.voices AS
SELECT voice_id, max(ts) AS last_event FROM {db}.voice_events GROUP BY voice_id;

INSERT INTO {db}.voices SELECT voice_id, max(ts) AS last_event FROM {db}.voice_events GROUP BY voice_id;

-- One partition: ReplacingMergeTree keeps one row per key within a partition only.
CREATE TABLE IF NOT EXISTS {db}.voice_latest AS {db}.voice_states
ENGINE = ReplacingMergeTree(window_start)
PARTITION BY tuple()
ORDER BY voice_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.voice_latest_from_states TO {db}.voice_latest AS
SELECT * FROM {db}.voice_states;

INSERT INTO {db}.voice_latest SELECT * FROM {db}.voice_states FINAL
ORDER BY voice_id, window_start DESC LIMIT 1 BY voice_id
