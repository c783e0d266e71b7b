"""Meta-ΔDΩΛ: a real-time picture of a multi-voice AI system, from Kafka to ClickHouse and SSE."""

__version__ = "0.1.0"
