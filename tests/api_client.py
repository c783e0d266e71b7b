"""Test helpers for the API: authenticated requests, reading Server-Sent Events, and the 422
problem+json check.

Every test deployment signs tokens with ``SECRET`` (the settings fixtures set it), so
``get`` and ``stream`` call as an admin of the premium tier unless told otherwise.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from deltaomega.config import Settings
from deltaomega.security.roles import Role, Tier
from deltaomega.security.tokens import issue_token

SECRET = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz"


@functools.cache
def token(role: Role = Role.ADMIN, tier: Tier = Tier.PREMIUM, subject: str = "tester") -> str:
    return issue_token(Settings(auth_secret=SECRET), subject, role, 3600, tier)


def auth(
    role: Role = Role.ADMIN, tier: Tier = Tier.PREMIUM, subject: str = "tester"
) -> dict[str, str]:
    """Headers that authenticate as ``subject`` with ``role``."""
    return {"Authorization": f"Bearer {token(role, tier, subject)}"}


def get(url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, headers={**auth(), **(headers or {})}, **kwargs)


def post(url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    """As admin unless ``headers`` say otherwise."""
    return httpx.post(url, headers={**auth(), **(headers or {})}, timeout=30, **kwargs)


def stream(method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    return httpx.stream(method, url, headers={**auth(), **(headers or {})}, **kwargs)


def sse_events(response: httpx.Response, give_up: float) -> Iterator[dict[str, str] | None]:
    """Parse the stream; None for each ping (every second), so callers can check the time.

    Fails once ``give_up`` (monotonic) has passed.
    """
    event: dict[str, str] = {}
    for line in response.iter_lines():
        assert time.monotonic() < give_up, "SSE events did not arrive in time"
        if line.startswith(":"):
            yield None
        elif line == "":
            if "data" in event:
                yield event
            event = {}
        else:
            name, _, value = line.partition(":")
            event[name] = value.lstrip(" ")


def read_events(
    url: str,
    count: int,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    linger: float = 0.0,
    on_open: Callable[[], None] | None = None,
) -> list[dict[str, str]]:
    """Read ``count`` events, then keep reading for ``linger`` s to catch any extra."""
    got: list[dict[str, str]] = []
    timeout = httpx.Timeout(5.0, read=max(linger, 2.0) if linger else 30.0)
    with stream("GET", url, headers=headers, params=params, timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        if on_open is not None:
            on_open()
        deadline = None
        try:
            for event in sse_events(response, time.monotonic() + 60):
                if deadline is not None and time.monotonic() > deadline:
                    break
                if event is None:
                    continue
                got.append(event)
                if len(got) == count:
                    if not linger:
                        break
                    deadline = time.monotonic() + linger
        except httpx.ReadTimeout:
            pass  # quiet for `linger` seconds
    return got


def assert_invalid(response: httpx.Response, field: str) -> None:
    """A 422 problem+json that names ``field``."""
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422 and body["title"] == "Invalid request"
    assert [e["field"] for e in body["errors"]] == [field]
    assert body["detail"].startswith(f"{field}: ")
