"""An outage reads as three kinds of line: its first failure, one summary per period while
it lasts, its end; never one line per retry."""

from __future__ import annotations

import logging
import threading

import pytest
from aiokafka import errors as aiokafka_errors

from deltaomega import outages
from deltaomega.kafka_clients import KAFKA_LOG, PythonClientFilter
from deltaomega.outages import Outage


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_is_logged_once_then_summarised_per_period_and_its_end_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = Outage("kafka", summary_seconds=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="deltaomega.outages"):
        for n in range(25 * 95):  # 25 retries a second for 95 s
            clock.now = 1000 + n * 40 / 1000
            outage.failed("Connect to ipv4#127.0.0.1:9092 failed: Connection refused")
        clock.now = 1095.0
        assert outage.down and round(outage.seconds_down()) == 95
        outage.recovered()
        outage.recovered()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        (
            "ERROR",
            "kafka is unavailable: Connect to ipv4#127.0.0.1:9092 failed: Connection refused",
        ),
        (
            "WARNING",
            "kafka still unavailable after 30 s (750 failed attempts in the last 30 s; last: "
            "Connect to ipv4#127.0.0.1:9092 failed: Connection refused)",
        ),
        (
            "WARNING",
            "kafka still unavailable after 60 s (750 failed attempts in the last 30 s; last: "
            "Connect to ipv4#127.0.0.1:9092 failed: Connection refused)",
        ),
        (
            "WARNING",
            "kafka still unavailable after 90 s (750 failed attempts in the last 30 s; last: "
            "Connect to ipv4#127.0.0.1:9092 failed: Connection refused)",
        ),
        ("INFO", "kafka is available again after 95.0 s (2375 failed attempts)"),
    ]
    assert not outage.down


def test_a_new_outage_after_recovery_is_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outage = Outage("clickhouse", summary_seconds=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="deltaomega.outages"):
        outage.failed("timed out")
        clock.now += 2
        outage.recovered()
        clock.now += 10
        outage.failed("refused")
    assert [r.getMessage() for r in caplog.records] == [
        "clickhouse is unavailable: timed out",
        "clickhouse is available again after 2.0 s (1 failed attempts)",
        "clickhouse is unavailable: refused",
    ]


def test_failures_just_after_a_recovery_are_late_clients_unless_they_persist(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = Outage("kafka", summary_seconds=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="deltaomega.outages"):
        outage.failed("down")
        clock.now += 20
        outage.recovered()
        for _ in range(3):  # clients that had backed off, reconnecting
            clock.now += 0.1
            outage.failed("refused")
        outage.recovered()
        assert not outage.down
        clock.now += 1
        for _ in range(70):  # a new outage: failures go on past the settling time
            clock.now += 0.1
            outage.failed("refused again")
        assert outage.down
    assert [r.getMessage() for r in caplog.records] == [
        "kafka is unavailable: down",
        "kafka is available again after 20.0 s (1 failed attempts)",
        "kafka is unavailable: refused again",
    ]


def test_kafka_client_warnings_while_the_cluster_is_away_or_coming_back_are_info(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    tracker = Outage("kafka", summary_seconds=30, clock=clock)
    monkeypatch.setitem(outages._OUTAGES, "kafka", tracker)

    def levels() -> list[tuple[str, str]]:
        got = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == KAFKA_LOG.name]
        caplog.clear()
        return got

    with caplog.at_level(logging.INFO, logger=KAFKA_LOG.name):
        KAFKA_LOG.warning("broker is throttling requests")
        assert levels() == [("WARNING", "broker is throttling requests")]
        # leadership moving (a broker stopping) is waited out, and can come before the
        # outage is known: always INFO
        KAFKA_LOG.warning("new leader-1 not found in cache")
        assert levels() == [("INFO", "new leader-1 not found in cache")]
        tracker.failed("refused")
        KAFKA_LOG.warning("Connect to ipv4#127.0.0.1:9092 failed")  # a repeat: dropped
        KAFKA_LOG.warning("request timed out")
        assert levels() == [("INFO", "request timed out")]
        clock.now += 20
        tracker.recovered()
        clock.now += outages.RECOVERY_SECONDS - 1
        KAFKA_LOG.warning("new leader-1 not found in cache")
        KAFKA_LOG.error("fatal")
        assert levels() == [("INFO", "new leader-1 not found in cache"), ("ERROR", "fatal")]
        clock.now += 2
        KAFKA_LOG.warning("request timed out")
        assert levels() == [("WARNING", "request timed out")]


def test_failures_while_the_process_stops_open_no_outage_but_one_open_still_ends(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outages, "_stopping", threading.Event())
    clock = Clock()
    kafka, clickhouse = Outage("kafka", clock=clock), Outage("clickhouse", clock=clock)
    with caplog.at_level(logging.INFO, logger="deltaomega.outages"):
        clickhouse.failed("connection refused")  # an outage before the stop
        outages.process_stopping()
        for n in range(10):  # clients closing their connections
            clock.now = 1000 + n / 10
            kafka.failed("1/1 brokers are down")
        assert not kafka.down and clickhouse.down
        clock.now = 1002.0
        clickhouse.recovered()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "clickhouse is unavailable: connection refused"),
        ("INFO", "clickhouse is available again after 2.0 s (1 failed attempts)"),
    ]


def test_a_group_coordinator_not_there_yet_is_a_broker_answering_not_an_outage(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a new cluster the first group's coordinator lookup answers "not available" while the
    offsets topic is made: aiokafka logs it as an error, and it used to open an outage."""
    tracker = Outage("kafka", summary_seconds=30, clock=Clock())
    monkeypatch.setitem(outages._OUTAGES, "kafka", tracker)
    coordinator_log = logging.getLogger("aiokafka.consumer.group_coordinator")
    caplog.handler.addFilter(PythonClientFilter())
    with caplog.at_level(logging.INFO):
        for answer in (
            aiokafka_errors.GroupCoordinatorNotAvailableError(),
            aiokafka_errors.GroupLoadInProgressError(),
            aiokafka_errors.NotCoordinatorForGroupError(),
        ):
            coordinator_log.error("Group Coordinator Request failed: %s", answer)
        assert not tracker.down
        coordinator_log.error(
            "Group Coordinator Request failed: %s",
            aiokafka_errors.NodeNotReadyError(
                "Attempt to send a request to node which is not ready"
            ),
        )
        assert tracker.down and tracker.failures == 1
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"),
        ("INFO", "Group Coordinator Request failed: [Error 14] GroupLoadInProgressError"),
        ("INFO", "Group Coordinator Request failed: [Error 16] NotCoordinatorForGroupError"),
        (
            "ERROR",
            "kafka is unavailable: Group Coordinator Request failed: NodeNotReadyError: Attempt "
            "to send a request to node which is not ready",
        ),
    ]


def test_records_end_a_settling_failure_but_never_an_outage() -> None:
    """Records may have been fetched before the cluster went away: a consumer that gets them
    says nothing of the broker (it checks ``down`` first, and a failure may come between)."""
    clock = Clock()
    kafka = Outage("kafka", clock=clock)
    kafka.failed("1/1 brokers are down")
    kafka.answered()
    assert kafka.down
    clock.now += 20
    kafka.recovered()
    recovered_at = clock.now
    clock.now = recovered_at + 1
    kafka.failed("refused")  # a late client, settling
    kafka.answered()  # records flow again: that settling failure is over
    clock.now = recovered_at + 4
    kafka.failed("refused")  # settling again, from here
    clock.now = recovered_at + 6
    kafka.failed("refused")  # past the settling time after the recovery: an outage
    assert kafka.down and kafka.seconds_down() == 2.0  # since the second late failure
