-- Analysts' saved SQL, per owner (the principal that saved it). A save is a new row; the
-- newest per (owner, name) is the query (reads use FINAL); a deletion is a row with
-- deleted = 1.
CREATE TABLE IF NOT EXISTS {db}.saved_queries
(
    owner       String,
    name        String,
    sql         String,
    description String,
    deleted     UInt8,
    saved_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(saved_at)
ORDER BY (owner, name)
