"""ClickHouse: versioned DDL and batched, idempotent column inserts."""
