"""`deltaomega` as a user runs it: a process of its own (its own session, so a test can
find every process it started), its log in a file, its HTTP port, and the signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from deltaomega.config import Settings


def settings_env(settings: Settings, **extra: object) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELTAOMEGA_")}
    fields = {
        "kafka_bootstrap": settings.kafka_bootstrap,
        "topic_prefix": settings.topic_prefix,
        "app_id": settings.app_id,
        "data_dir": settings.data_dir,
        "clickhouse_database": settings.clickhouse_database,
        "partitions": settings.partitions,
        "batch_within_seconds": settings.batch_within_seconds,
        "window_seconds": settings.window_seconds,
        "grace_seconds": settings.grace_seconds,
        "models_enabled": settings.models_enabled,
        "auth_secret": settings.auth_secret.get_secret_value(),
        **extra,
    }
    for name, value in fields.items():
        env[f"DELTAOMEGA_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


class DeltaOmegaProcess:
    """``deltaomega ARGS`` in a new session, logging to ``log_path``."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, port: int) -> None:
        self.args = args
        self.log_path = log_path
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = {**env, "DELTAOMEGA_API_PORT": str(port), "PYTHONUNBUFFERED": "1"}
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deltaomega.cli", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self, pattern: str) -> list[str]:
        return [line for line in self.log().splitlines() if re.search(pattern, line)]

    def wait_for_log(self, pattern: str, timeout: float = 60.0, seen: int = 0) -> float:
        """Seconds since start when a log line matching ``pattern`` appeared (one more than
        the ``seen`` lines there already were)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.log_lines(pattern)) > seen:
                return time.monotonic() - self.started_at
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"exited ({self.proc.returncode}) before {pattern!r}:\n" + self.log()[-3000:]
                )
            time.sleep(0.1)
        raise AssertionError(f"no log line {pattern!r} in {timeout}s:\n" + self.log()[-3000:])

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(self.url + path, timeout=2)
        except httpx.HTTPError:
            return None

    def wait_ready(self, timeout: float = 90.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.get("/readyz")
            if response is not None and response.status_code == 200:
                return time.monotonic() - self.started_at
            if self.proc.poll() is not None:
                raise AssertionError("exited before ready:\n" + self.log()[-3000:])
            time.sleep(0.1)
        raise AssertionError("not ready in time:\n" + self.log()[-3000:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> float:
        """Send ``sig`` and wait; seconds until the process was gone."""
        sent = time.monotonic()
        self.proc.send_signal(sig)
        self.wait(timeout)
        return time.monotonic() - sent

    def kill(self) -> None:
        self.proc.kill()
        self.wait(10)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def session_processes(self) -> list[int]:
        """Every live process in this process's session (it and whatever it started)."""
        return session_members(self.pid)


def session_members(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.append(int(entry.name))
    return sorted(found)


def terminate_session(sid: int) -> None:
    """Clean up after a test: SIGKILL whatever is left of a session."""
    for pid in session_members(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
