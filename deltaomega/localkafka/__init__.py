"""The local single-node Kafka used by `make demo` and the test suite."""

from deltaomega.localkafka.runner import KafkaStatus, resolve, start, status, stop

__all__ = ["KafkaStatus", "resolve", "start", "status", "stop"]
