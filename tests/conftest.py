"""Session fixtures that START real services: a KRaft Kafka node and an embedded ClickHouse.

Set DELTAOMEGA_KAFKA_BOOTSTRAP to use a broker you already run instead, and
DELTAOMEGA_TEST_CLICKHOUSE_URL (``http://host:8123``; DELTAOMEGA_CLICKHOUSE_USER and
DELTAOMEGA_CLICKHOUSE_PASSWORD as needed) to run every test on a ClickHouse server instead
of the embedded engine: each test makes and drops its own database there.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from deltaomega import faults, localkafka
from deltaomega.config import Settings
from deltaomega.producer.simulator import SimulationConfig
from deltaomega.sinks.clickhouse import ClickHouse, connect
from deltaomega.sinks.migrate import apply_migrations
from deltaomega.topics import ensure_topics
from tests.api_client import SECRET

if os.environ.get("DELTAOMEGA_TEST_CLICKHOUSE_URL"):
    # Settings read it, in this process and in every process a test starts.
    os.environ["DELTAOMEGA_CLICKHOUSE_URL"] = os.environ["DELTAOMEGA_TEST_CLICKHOUSE_URL"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests last (stable otherwise): they are the slowest to start, and nothing
    else waits behind them."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A CLI ``main`` run in-process replaces the root handlers (pytest's capture with a
    stream pytest closes later) and quiets loggers; later tests get logging back as it was."""

    def loggers() -> dict[str, logging.Logger]:
        items = logging.Logger.manager.loggerDict.items()
        return {name: logger for name, logger in items if isinstance(logger, logging.Logger)}

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logger.level for name, logger in loggers().items()}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, logger in loggers().items():
        logger.setLevel(levels.get(name, logging.NOTSET))


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("DELTAOMEGA_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    settings = Settings(
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_data_dir=tmp_path_factory.mktemp("kafka"),
    )
    status = localkafka.start(settings)
    try:
        yield status.bootstrap
    finally:
        localkafka.stop(settings)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (Debian's package, installed by `make test`) on a free port."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not installed: run `make test` (it installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path_factory.mktemp("redis"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.1)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> ClickHouse:
    """One chdb engine for the whole session (chdb allows one per process), or the server
    DELTAOMEGA_TEST_CLICKHOUSE_URL names."""
    return connect(Settings(data_dir=tmp_path_factory.mktemp("state")))


@pytest.fixture
def settings_factory(
    kafka_bootstrap: str, tmp_path: Path, clickhouse: ClickHouse
) -> Iterator[Callable[..., Settings]]:
    """Settings with this test's own topics, consumer group, state dir and database."""
    databases: list[str] = []

    def make(**overrides: object) -> Settings:
        tag = uuid.uuid4().hex[:10]
        values: dict[str, object] = {
            "kafka_bootstrap": kafka_bootstrap,
            "topic_prefix": f"t{tag}.",
            "app_id": f"test-{tag}",
            "data_dir": tmp_path / tag,
            "clickhouse_database": f"test_{tag}",
            "partitions": 3,
            "batch_within_seconds": 0.1,
            "sse_ping_seconds": 1.0,
            "auth_secret": SECRET,
        }
        values.update(overrides)
        settings = Settings(**values)  # type: ignore[arg-type]
        databases.append(settings.clickhouse_database)
        return settings

    yield make
    for database in databases:
        clickhouse.call(lambda c, db=database: c.command(f"DROP DATABASE IF EXISTS {db}"))


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    # Small batches: the consumer keeps buffering while batches run, as under load.
    return settings_factory(batch_max_records=300, batch_within_seconds=0.05)


@pytest.fixture
def database(settings: Settings, clickhouse: ClickHouse) -> str:
    apply_migrations(clickhouse.client, settings.clickhouse_database)
    return settings.clickhouse_database


@pytest.fixture
def topics(settings: Settings) -> None:
    ensure_topics(settings)


class RunningService:
    def __init__(self, server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
        self.server = server
        self.thread = thread
        self.url = url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


@pytest.fixture
def service_factory(clickhouse: ClickHouse) -> Iterator[Callable[..., RunningService]]:
    """Run `deltaomega run` (worker + API) in this process, on a thread with its own loop."""
    from deltaomega.service import build_app, server_config

    started: list[RunningService] = []

    def start(
        settings: Settings,
        worker: bool = True,
        simulation: SimulationConfig | None = None,
        wait_ready: bool = True,
        control: bool = False,
    ) -> RunningService:
        """Start it and wait until /readyz says ready (or, without ``wait_ready``, until
        /healthz answers)."""
        port = free_port()
        app = build_app(settings, clickhouse, worker=worker, simulation=simulation, control=control)
        server = uvicorn.Server(server_config(app, settings, "127.0.0.1", port))
        thread = threading.Thread(target=server.run, name=f"service-{port}", daemon=True)
        thread.start()
        tls = settings.api_tls_cert is not None
        url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        last = ""
        while time.monotonic() < deadline:
            if not thread.is_alive():
                raise RuntimeError("service thread exited during start-up")
            try:
                probe = "/readyz" if wait_ready else "/healthz"
                verify = (
                    ssl.create_default_context(cafile=str(settings.api_tls_cert)) if tls else True
                )
                answer = httpx.get(f"{url}{probe}", timeout=2, verify=verify)
                if answer.status_code == 200:
                    break
                last = answer.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.2)
        else:
            raise RuntimeError(f"service not ready within 90 s: {last}")
        if control:  # ready to serve; the control plane may still be joining its group

            def control_plane_ok() -> bool:
                try:
                    answer = httpx.get(f"{url}/readyz", timeout=5)
                except httpx.HTTPError:  # a busy machine: ask again
                    return False
                return bool(answer.json()["checks"]["control-plane"] == "ok")

            wait_for(control_plane_ok, 60, "the control plane")
        running = RunningService(server, thread, url)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def armed() -> Iterator[Callable[[str], None]]:
    """Arm fault points in this process for one test (disarmed after it)."""
    yield faults.arm
    faults.disarm()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def voice_event(
    event_id: str,
    voice_id: str,
    ts: int,
    temperature: float = 0.5,
    activation: float = 0.5,
    stress: float = 0.5,
    influence: float = 0.5,
) -> dict[str, object]:
    """A valid VoiceEvent record for producing in tests."""
    return {
        "event_id": event_id,
        "voice_id": voice_id,
        "ts": ts,
        "temperature": temperature,
        "activation": activation,
        "stress": stress,
        "influence": influence,
        "context": {},
    }
