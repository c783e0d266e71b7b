"""Fault-test fixtures: workers as processes, and a report of what each scenario saw."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deltaomega.config import Settings
from deltaomega.topics import ensure_topics
from tests.conftest import free_port
from tests.processes import DeltaOmegaProcess, settings_env, terminate_session

#: The seed of the random choices (where to kill, which hit); set it to replay a failure.
SEED = int(os.environ.get("DELTAOMEGA_FAULT_SEED", "20261130"))

Launch = Callable[..., DeltaOmegaProcess]
Scenario = Callable[..., Settings]


@pytest.fixture
def scenario(settings_factory: Callable[..., Settings]) -> Scenario:
    """Settings of a drained scenario, its topics made: 3 partitions, 10 s windows and small
    batches, so a minute of traffic makes many batches and windows to be caught in."""

    def make(**overrides: Any) -> Settings:
        defaults: dict[str, Any] = {
            "partitions": 3,
            "window_seconds": 10,
            "grace_seconds": 2,
            "batch_max_records": 120,
            "models_enabled": False,
        }
        settings = settings_factory(**(defaults | overrides))
        ensure_topics(settings)
        return settings

    return make


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Start ``deltaomega ARGS`` (``run`` by default) with settings and extra ones."""
    started: list[DeltaOmegaProcess] = []

    def start(settings: Settings, *args: str, **extra: object) -> DeltaOmegaProcess:
        name = f"{len(started)}-{args[0] if args else 'run'}.log"
        process = DeltaOmegaProcess(
            list(args) or ["run"], settings_env(settings, **extra), tmp_path / name, free_port()
        )
        started.append(process)
        return process

    yield start
    for process in started:
        terminate_session(process.pid)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Figures a scenario records; printed at its end (``pytest -s`` shows them) and written
    to ``$DELTAOMEGA_FAULT_REPORT`` (JSON Lines) when set."""
    figures: dict[str, Any] = {"test": request.node.name, "seed": SEED}
    yield figures
    line = json.dumps(figures, default=str)
    print(f"\nfault report: {line}")
    target = os.environ.get("DELTAOMEGA_FAULT_REPORT")
    if target:
        with open(target, "a") as out:
            out.write(line + "\n")


def watch(process: DeltaOmegaProcess, timeout: float) -> tuple[float | None, float | None]:
    """Poll until ``process`` exits or ``timeout`` passes: (seconds to ready, to exit)."""
    ready = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            return ready, time.monotonic() - process.started_at
        if ready is None:
            response = process.get("/readyz")
            if response is not None and response.status_code == 200:
                ready = time.monotonic() - process.started_at
        time.sleep(0.2)
    return ready, None
