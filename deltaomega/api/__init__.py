"""The HTTP API: REST from ClickHouse, SSE from Kafka, health and metrics."""
