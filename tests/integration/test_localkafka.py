"""`deltaomega kafka start|stop|status` on a second, private broker."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AdminClient

from deltaomega import localkafka
from deltaomega.config import Settings
from tests.conftest import free_port


def test_start_status_stop_are_idempotent(tmp_path: Path) -> None:
    settings = Settings(
        kafka_port=free_port(), kafka_controller_port=free_port(), kafka_data_dir=tmp_path
    )
    assert localkafka.status(settings).running is False
    first = localkafka.start(settings)
    try:
        assert first.running and first.pid is not None
        assert (tmp_path / "logs" / "meta.properties").exists()  # formatted on first use
        assert localkafka.start(settings).pid == first.pid  # already running: same process
        metadata = AdminClient({"bootstrap.servers": first.bootstrap}).list_topics(timeout=10)
        assert list(metadata.brokers) == [1]
    finally:
        stopped = localkafka.stop(settings)
    assert stopped.running is False
    assert localkafka.stop(settings).running is False  # stopping twice is fine
    assert "Kafka Server started" in (tmp_path / "broker.log").read_text()
