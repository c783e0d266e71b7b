"""`deltaomega run` as a process: it stops within 10 s of SIGTERM or SIGINT whatever it is
doing, its children die with it even under SIGKILL, a service that is away is logged once,
and a worker killed with SIGKILL consumes again within 10 s of its restart while its API
answers and says why it is not ready yet."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.topics import ensure_topics
from tests.conftest import closed_port, voice_event, wait_for
from tests.faults.conftest import Launch
from tests.kafka_tools import committed, log_end
from tests.processes import DeltaOmegaProcess

pytestmark = [pytest.mark.faults, pytest.mark.alone]

T0 = 1_800_000_000_000
STOP_WITHIN = 10.0


def send(settings: Settings, first: int, count: int) -> None:
    """``count`` events of 4 voices, 50 ms apart from ``first``: windows stay open."""
    with VoiceProducer(settings) as producer:
        for n in range(first, first + count):
            producer.send_voice_event(voice_event(f"e{n}", f"v{n % 4}", T0 + n * 50))


def consumed(settings: Settings) -> bool:
    topic = f"{settings.topic_prefix}voice.events"
    group = f"{settings.app_id}-voice-windows"
    ends = log_end(settings.kafka_bootstrap, topic)
    return committed(settings.kafka_bootstrap, group, topic) == ends


def assert_stops(process: DeltaOmegaProcess, sig: int = signal.SIGTERM) -> float:
    seconds = process.stop(sig)
    assert seconds < STOP_WITHIN, process.log()[-3000:]
    assert process.session_processes() == []
    return seconds


def test_broker_down_is_logged_once_then_summarised_and_sigint_stops_it(
    settings_factory: Callable[..., Settings], launch: Launch
) -> None:
    settings = settings_factory(kafka_bootstrap=f"127.0.0.1:{closed_port()}", models_enabled=False)
    process = launch(settings, outage_summary_seconds=3)
    process.wait_for_log("kafka is unavailable")
    response = process.get("/readyz")
    assert response is not None and response.status_code == 503
    assert response.json()["checks"]["kafka"].startswith("unavailable for ")
    time.sleep(12)
    assert_stops(process, signal.SIGINT)
    assert len(process.log_lines("kafka is unavailable")) == 1
    noisy = [
        line
        for line in process.log_lines(r" (WARNING|ERROR) ")
        if "kafka is unavailable" not in line and "kafka still unavailable after" not in line
    ]
    assert noisy == []
    assert 1 <= len(process.log_lines("kafka still unavailable after")) <= 5


@pytest.mark.parametrize("state", ["clickhouse down", "mid-batch", "mid-restore"])
def test_sigterm_stops_it_within_10_s(
    state: str, settings_factory: Callable[..., Settings], launch: Launch
) -> None:
    settings = settings_factory(models_enabled=False)
    ensure_topics(settings)
    if state == "clickhouse down":
        process = launch(settings, faults="clickhouse.call=fail_for:300@1")
        process.wait_for_log("clickhouse is unavailable")
    elif state == "mid-batch":
        send(settings, 0, 500)
        process = launch(settings, faults="voice.after_aggregate=sleep:300@1")
        process.wait_for_log("fault point voice.after_aggregate: sleep")
    else:
        first = launch(settings)
        first.wait_ready()
        send(settings, 0, 500)
        wait_for(lambda: consumed(settings), what="the first events consumed")
        assert_stops(first)
        shutil.rmtree(settings.data_dir / "windows")  # the next start restores the changelog
        process = launch(settings, faults="restore.batch=sleep:300@1")
        process.wait_for_log("fault point restore.batch: sleep")
    assert_stops(process)


def test_children_die_with_a_parent_killed_by_sigkill(
    settings_factory: Callable[..., Settings], launch: Launch
) -> None:
    settings = settings_factory(models_enabled=True, inference_warm_up_voices=0)
    process = launch(settings)
    process.wait_ready()
    children = [pid for pid in process.session_processes() if pid != process.pid]
    # The model process and multiprocessing's resource tracker.
    assert len(children) >= 2, process.log()[-3000:]
    process.kill()
    wait_for(lambda: process.session_processes() == [], timeout=5, what="no child left")


def test_a_worker_killed_by_sigkill_restores_and_consumes_again_after_its_restart(
    settings_factory: Callable[..., Settings], launch: Launch, report: dict[str, Any]
) -> None:
    """How soon is a figure of the fault report (``resumed_s``: about 6–11 s on a loaded
    2-core machine, most of it the interpreter's start), not an assertion: the test asks
    that it resumes, and says it is restoring meanwhile."""
    settings = settings_factory(models_enabled=False)
    ensure_topics(settings)
    first = launch(settings)
    first.wait_ready()
    send(settings, 0, 200)
    wait_for(lambda: consumed(settings), what="the first events consumed")
    first.kill()
    send(settings, 200, 200)
    # Without its checkpoint, the new incarnation restores the changelog; a pause there
    # makes the "restoring" state observable.
    shutil.rmtree(settings.data_dir / "windows")
    second = launch(settings, faults="restore.batch=sleep:2@1")
    answers: list[tuple[int, str]] = []
    while not consumed(settings):
        assert time.monotonic() - second.started_at < 30, second.log()[-3000:]
        response = second.get("/readyz")
        if response is not None:
            detail = response.json().get("detail", "ready")
            answers.append((response.status_code, detail))
        time.sleep(0.1)
    report.update(resumed_s=round(time.monotonic() - second.started_at, 2))
    not_ready = [detail for status, detail in answers if status == 503]
    assert any("consumer voice: restoring its open windows" in d for d in not_ready), answers
    second.wait_ready()
    assert_stops(second)
