"""A single-node KRaft Kafka run from Maven-resolved jars: resolve, format, start, stop, status.

No tarball and no Docker: Maven copies ``kafka_2.13`` and its runtime dependencies into
a cache outside the clone once; the broker then runs as ``java -cp 'libs/*' kafka.Kafka``.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from deltaomega.config import Settings
from deltaomega.errors import LocalKafkaError

log = logging.getLogger(__name__)

_COMPLETE = ".complete"
_PID_FILE = "kafka.pid"
_LOG_FILE = "broker.log"


@dataclass(frozen=True)
class KafkaStatus:
    running: bool
    pid: int | None
    bootstrap: str
    data_dir: Path
    log_file: Path

    def describe(self) -> str:
        state = f"running (pid {self.pid})" if self.running else "stopped"
        return f"kafka {state} at {self.bootstrap}; data {self.data_dir}; log {self.log_file}"


def _resource(name: str) -> str:
    return resources.files("deltaomega.localkafka").joinpath("resources", name).read_text("utf-8")


def libs_dir(settings: Settings) -> Path:
    return settings.cache_dir / "kafka" / f"libs-{settings.kafka_version}"


def resolve(settings: Settings) -> Path:
    """Copy the broker's runtime classpath into the cache (once per Kafka version)."""
    target = libs_dir(settings)
    if (target / _COMPLETE).exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError("Maven ('mvn') is not on PATH; it resolves the Kafka jars")
    work = settings.cache_dir / "kafka" / "maven-project"
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(_resource("pom.xml"), "utf-8")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn,
        "-B",
        "--no-transfer-progress",
        f"-Dmaven.repo.local={settings.cache_dir / 'm2'}",
        f"-Dkafka.version={settings.kafka_version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]
    log.info("resolving Apache Kafka %s with Maven into %s", settings.kafka_version, target)
    result = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise LocalKafkaError(
            f"Maven could not resolve Kafka {settings.kafka_version}:\n{result.stdout[-4000:]}"
        )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    (target / _COMPLETE).write_text(settings.kafka_version, "utf-8")
    log.info("resolved %d jars", len(list(target.glob("*.jar"))))
    return target


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is not None and candidate.exists():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise LocalKafkaError("Java 17+ ('java') is not on PATH")
    return found


def _data_dir(settings: Settings) -> Path:
    return settings.resolved_kafka_data_dir.resolve()


def _read_pid(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / _PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        # When this process started the broker, reap it so an exited child is not a zombie.
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return None
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def status(settings: Settings) -> KafkaStatus:
    data_dir = _data_dir(settings)
    pid = _read_pid(data_dir)
    return KafkaStatus(
        running=pid is not None and _port_open(settings.kafka_port),
        pid=pid,
        bootstrap=f"127.0.0.1:{settings.kafka_port}",
        data_dir=data_dir,
        log_file=data_dir / _LOG_FILE,
    )


def _classpath(settings: Settings) -> str:
    return str(resolve(settings) / "*")


def _write_config(settings: Settings, data_dir: Path) -> Path:
    config = _resource("server.properties").format(
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        log_dirs=data_dir / "logs",
    )
    path = data_dir / "server.properties"
    path.write_text(config, "utf-8")
    (data_dir / "log4j2.yaml").write_text(_resource("log4j2.yaml"), "utf-8")
    return path


def _format_storage(settings: Settings, data_dir: Path, config: Path) -> None:
    if (data_dir / "logs" / "meta.properties").exists():
        return
    java, classpath = _java(), _classpath(settings)
    log4j = f"-Dlog4j2.configurationFile={data_dir / 'log4j2.yaml'}"
    cluster_id = (
        subprocess.run(  # noqa: S603
            [java, log4j, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )  # the tool may log before it prints the id
    result = subprocess.run(  # noqa: S603
        [
            java,
            log4j,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            cluster_id,
            "-c",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise LocalKafkaError(f"formatting KRaft storage failed:\n{result.stdout}{result.stderr}")
    log.info("formatted KRaft storage in %s (cluster %s)", data_dir / "logs", cluster_id)


def start(settings: Settings, timeout: float = 90.0) -> KafkaStatus:
    """Start the node unless it already runs; return once it accepts clients."""
    current = status(settings)
    if current.running:
        log.info("%s", current.describe())
        return current
    data_dir = current.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    if _port_open(settings.kafka_port):
        raise LocalKafkaError(f"port {settings.kafka_port} is taken by another process")
    config = _write_config(settings, data_dir)
    _format_storage(settings, data_dir, config)
    cmd = [
        _java(),
        f"-Xmx{settings.kafka_heap}",
        f"-Xms{settings.kafka_heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={data_dir / 'log4j2.yaml'}",
        "-cp",
        _classpath(settings),
        "kafka.Kafka",
        str(config),
    ]
    with open(current.log_file, "ab") as log_out:
        proc = subprocess.Popen(  # noqa: S603
            cmd,
            stdout=log_out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (data_dir / _PID_FILE).write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalKafkaError(
                f"broker exited with code {proc.returncode}; see {current.log_file}"
            )
        if _port_open(settings.kafka_port) and _broker_ready(current.bootstrap):
            started = status(settings)
            log.info("started %s", started.describe())
            return started
        time.sleep(0.25)
    stop(settings)
    raise LocalKafkaError(f"broker not ready within {timeout:.0f}s; see {current.log_file}")


def _broker_ready(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
    except Exception:  # noqa: BLE001 - any failure here just means "not ready yet"
        return False
    return bool(meta.brokers)


def stop(settings: Settings, timeout: float = 30.0) -> KafkaStatus:
    """Stop the node if it runs (SIGTERM, then SIGKILL after ``timeout``)."""
    data_dir = _data_dir(settings)
    pid = _read_pid(data_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _read_pid(data_dir) is not None:
            time.sleep(0.2)
        if _read_pid(data_dir) is not None:
            log.warning("broker %d did not stop in %.0fs; killing it", pid, timeout)
            os.kill(pid, signal.SIGKILL)
        log.info("stopped kafka (pid %d)", pid)
    (data_dir / _PID_FILE).unlink(missing_ok=True)
    return status(settings)
