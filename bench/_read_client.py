"""One reading client of bench.read_load, in a process of its own (imports little, so it
is ready in a moment)."""

from __future__ import annotations

import time
from typing import Any

import httpx


def client(base: str, paths: list[str], ready: Any, stop: Any, out: Any) -> None:
    """Loop over ``paths`` until ``stop``; (path, seconds) of every answered request, and
    (wall-clock time, kind) of every failure (refused connections before the API first
    answered are not failures: the clients start before the server)."""
    done: list[tuple[str, float]] = []
    errors: list[tuple[float, str]] = []
    answered = False
    ready.release()
    with httpx.Client(base_url=base, timeout=30) as http:
        while not stop.is_set():
            for path in paths:
                started = time.perf_counter()
                try:
                    response = http.get(path)
                except httpx.HTTPError as exc:
                    if answered or not isinstance(exc, httpx.ConnectError):
                        errors.append((time.time(), type(exc).__name__))
                    time.sleep(0.05)
                    continue
                answered = True
                if response.status_code < 500:
                    done.append((path, time.perf_counter() - started))
                else:
                    json_body = "json" in response.headers.get("content-type", "")
                    detail = response.json().get("detail", "") if json_body else response.text
                    errors.append((time.time(), f"HTTP {response.status_code} {path}: {detail}"))
    out.put((done, errors))
