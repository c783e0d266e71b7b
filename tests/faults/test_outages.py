"""The broker stopped for 20 s mid-stream, and ClickHouse unavailable for 20 s mid-stream:
the worker holds its offsets, logs the outage once (then summaries, then its end), resumes
by itself, and the result is exact."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from deltaomega import localkafka
from deltaomega.config import Settings
from tests.conftest import free_port, wait_for
from tests.faults.conftest import SEED, Launch, Scenario
from tests.faults.harness import Traffic, check, dump, expected, wait_drained
from tests.kafka_tools import committed, log_end

pytestmark = [pytest.mark.faults, pytest.mark.alone]

OUTAGE_SECONDS = 20.0


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Settings]:
    """A broker of this test's own, which it may stop and start."""
    settings = Settings(
        kafka_port=free_port(), kafka_controller_port=free_port(), kafka_data_dir=tmp_path / "k"
    )
    localkafka.start(settings)
    try:
        yield settings
    finally:
        localkafka.stop(settings)


def noisy_lines(lines: list[str], expected: tuple[str, ...]) -> list[str]:
    return [line for line in lines if not any(text in line for text in expected)]


def test_broker_stopped_for_20_s_mid_stream(
    own_broker: Settings,
    scenario: Scenario,
    launch: Launch,
    tmp_path: Path,
    report: dict[str, Any],
) -> None:
    bootstrap = localkafka.status(own_broker).bootstrap
    settings = scenario(kafka_bootstrap=bootstrap)
    traffic = Traffic(seed=SEED + 1)
    process = launch(settings, outage_summary_seconds=5)
    process.wait_ready()
    # mid-stream: the control plane (Faust) has started too; stopped while Faust is still
    # starting, its agents each log being cancelled as a crash
    process.wait_for_log("control plane running", timeout=60)
    for wave in range(3):
        traffic.send_wave(settings, wave)
    time.sleep(1.0)
    assert process.log_lines("kafka is unavailable") == []  # none at start, either
    localkafka.stop(own_broker)
    stopped = time.monotonic()
    process.wait_for_log("kafka is unavailable", timeout=30)
    ready = process.get("/readyz")
    assert ready is not None and ready.status_code == 503
    assert ready.json()["checks"]["kafka"].startswith("unavailable for ")
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
    localkafka.start(own_broker)
    restarted = time.monotonic()
    back = process.wait_for_log("kafka is available again", timeout=60)
    for wave in range(3, 7):
        traffic.send_wave(settings, wave)
    traffic.send_closers(settings, 7)
    drained_in = wait_drained(settings)
    process.stop()
    # The group may take the worker's partitions away while the broker is (and give them back).
    lost = bool(process.log_lines("lost partitions")) or (
        len(process.log_lines(": assigned partitions")) > 2  # once per input stream at start
    )
    landed = check(
        settings,
        dump(settings, tmp_path / "tables.json"),
        expected(settings),
        exact_without_final=not lost,
    )

    assert len(process.log_lines("kafka is unavailable")) == 1
    assert len(process.log_lines("kafka is available again")) == 1
    summaries = process.log_lines("kafka still unavailable after")
    # one every 5 s of the outage as the process saw it (a broker slow to come back on a
    # busy machine makes it longer than the 20 s it was stopped), not one per retry
    unavailable_s = back - (stopped - process.started_at)
    assert len(summaries) <= unavailable_s / 5 + 3, (len(summaries), unavailable_s)
    outage_lines = ("kafka is unavailable", "kafka still unavailable", "lost partitions")
    warnings = noisy_lines(process.log_lines(r" (WARNING|ERROR) "), outage_lines)
    assert len(warnings) <= 6, warnings  # not one per retry (librdkafka retries 20 times/s)
    report.update(
        outage_s=round(restarted - stopped, 1),
        available_again_logged_s=round(back - (restarted - process.started_at), 1),
        summaries=len(summaries),
        other_warning_lines=len(warnings),
        partitions_lost=lost,
        drained_s=round(drained_in, 2),
        **asdict(landed),
    )


def test_clickhouse_unavailable_for_20_s_mid_stream(
    scenario: Scenario,
    launch: Launch,
    tmp_path: Path,
    report: dict[str, Any],
) -> None:
    settings = scenario()
    topic = f"{settings.topic_prefix}voice.events"
    group = f"{settings.app_id}-voice-windows"
    traffic = Traffic(seed=SEED + 2)
    process = launch(
        settings,
        faults=f"clickhouse.call=fail_for:{OUTAGE_SECONDS:.0f}@12",
        outage_summary_seconds=5,
    )
    wave = 0
    while not process.log_lines("fault point clickhouse.call: fail_for"):
        assert wave < 30, process.log()[-3000:]
        traffic.send_wave(settings, wave)
        wave += 1
        time.sleep(1.0)
    began = time.monotonic()
    process.wait_for_log("clickhouse is unavailable")
    # While it lasts, nothing is committed, however much arrives.
    time.sleep(2.0)
    held = committed(settings.kafka_bootstrap, group, topic)
    traffic.send_wave(settings, wave)
    wave += 1
    time.sleep(max(0.0, OUTAGE_SECONDS - 4 - (time.monotonic() - began)))
    assert committed(settings.kafka_bootstrap, group, topic) == held
    assert log_end(settings.kafka_bootstrap, topic) != held
    process.wait_for_log("clickhouse is available again", timeout=60)
    resumed = time.monotonic() - began
    wait_for(
        lambda: committed(settings.kafka_bootstrap, group, topic) != held,
        what="commits after the outage",
    )
    while wave < 8:
        traffic.send_wave(settings, wave)
        wave += 1
    traffic.send_closers(settings, wave)
    drained_in = wait_drained(settings)
    process.stop()
    landed = check(settings, dump(settings, tmp_path / "tables.json"), expected(settings))
    assert len(process.log_lines("clickhouse is unavailable")) == 1
    assert len(process.log_lines("clickhouse is available again")) == 1
    report.update(
        outage_s=OUTAGE_SECONDS,
        resumed_after_s=round(resumed, 1),
        drained_s=round(drained_in, 2),
        **asdict(landed),
    )


def test_an_api_process_alone_sees_the_broker_go_and_come_back(
    own_broker: Settings, scenario: Scenario, launch: Launch, report: dict[str, Any]
) -> None:
    """`deltaomega api` has no worker polling Kafka: its key follower probes the broker."""
    settings = scenario(kafka_bootstrap=localkafka.status(own_broker).bootstrap)
    process = launch(settings, "api", outage_summary_seconds=5)
    process.wait_ready()
    localkafka.stop(own_broker)
    stopped = time.monotonic()
    process.wait_for_log("kafka is unavailable", timeout=30)
    ready = process.get("/readyz")
    assert ready is not None and ready.status_code == 503
    localkafka.start(own_broker)
    restarted = time.monotonic()
    process.wait_for_log("kafka is available again", timeout=60)
    back = time.monotonic()
    ready = process.get("/readyz")
    assert ready is not None and ready.status_code == 200, ready and ready.text
    process.stop()
    assert len(process.log_lines("kafka is unavailable")) == 1
    assert len(process.log_lines("kafka is available again")) == 1
    report.update(outage_s=round(restarted - stopped, 1), back_after_s=round(back - restarted, 1))
