"""One reading client of bench.read_load, in a process of its own (imports little, so it
is ready in a moment)."""

from __future__ import annotations

import time
from typing import Any

import httpx


def client(base: str, paths: list[str], ready: Any, stop: Any, out: Any) -> None:
    """Loop over ``paths`` until ``stop``; (path, seconds) of every answered request."""
    done: list[tuple[str, float]] = []
    errors = 0
    ready.release()
    with httpx.Client(base_url=base, timeout=30) as http:
        while not stop.is_set():
            for path in paths:
                started = time.perf_counter()
                try:
                    response = http.get(path)
                except httpx.HTTPError:
                    errors += 1
                    time.sleep(0.05)
                    continue
                if response.status_code < 500:
                    done.append((path, time.perf_counter() - started))
                else:
                    errors += 1
    out.put((done, errors))
