"""Fault points: named places in the pipeline where the fault tests kill the process, raise,
stall, or make a service unavailable, at a chosen hit.

The delivery guarantee is a claim about every point a process can die at; the tests prove
it by dying at those points, in a real worker, rather than by reading the code. A point is
armed by ``DELTAOMEGA_FAULTS`` (``Settings.faults``) or, in process, :func:`arm`::

    window.after_aggregate=raise@3          the third hit raises InjectedFaultError
    window.before_commit=kill@5             the fifth hit SIGKILLs the process
    clickhouse.call=fail_for:20@40          from the 40th hit on, fail for 20 s
    restore.batch=sleep:2@1                 the first hit sleeps 2 s

Unarmed (always, outside the fault tests) a point costs one dict lookup.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass

from deltaomega.errors import ConfigurationError, DeltaOmegaError

log = logging.getLogger(__name__)

_ACTIONS = ("kill", "raise", "fail_for", "sleep")


class InjectedFaultError(DeltaOmegaError):
    """Raised by an armed fault point."""

    def __init__(self, point: str) -> None:
        super().__init__(f"injected fault at {point}")
        self.point = point


@dataclass
class _Fault:
    point: str
    action: str
    seconds: float
    at: int
    hits: int = 0
    failing_until: float | None = None

    def hit(self) -> None:
        self.hits += 1
        if self.failing_until is not None:
            if time.monotonic() < self.failing_until:
                raise InjectedFaultError(self.point)
            disarm(self.point)
            log.warning("fault point %s: failing period over", self.point)
            return
        if self.hits != self.at:
            return
        log.warning("fault point %s: %s at hit %d", self.point, self.action, self.hits)
        if self.action == "kill":
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.action == "raise":
            raise InjectedFaultError(self.point)
        elif self.action == "sleep":
            time.sleep(self.seconds)
        else:
            self.failing_until = time.monotonic() + self.seconds
            raise InjectedFaultError(self.point)


_ARMED: dict[str, _Fault] = {}
_LOCK = threading.Lock()


def hit(point: str) -> None:
    """Pass the point: nothing unless a test armed it."""
    fault = _ARMED.get(point)
    if fault is not None:
        with _LOCK:
            fault.hit()


def arm(spec: str) -> None:
    """Arm the comma-separated ``point=action[:seconds]@hit`` entries of ``spec``."""
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        point, _, rest = entry.partition("=")
        action, _, at = rest.partition("@")
        name, _, seconds = action.partition(":")
        try:
            fault = _Fault(point.strip(), name, float(seconds or 0), int(at or 1))
        except ValueError as exc:
            raise ConfigurationError(f"fault {entry!r}: {exc}") from exc
        if not fault.point or name not in _ACTIONS or fault.at < 1:
            raise ConfigurationError(
                f"fault {entry!r} is not point=action[:seconds]@hit with action one of "
                f"{', '.join(_ACTIONS)}"
            )
        with _LOCK:
            _ARMED[fault.point] = fault
        log.warning("fault point %s armed: %s", fault.point, rest)


def disarm(point: str | None = None) -> None:
    """Disarm one point, or all of them."""
    if point is None:
        _ARMED.clear()
    else:
        _ARMED.pop(point, None)


def hits(point: str) -> int:
    """How often an armed point was passed (0 when it is not armed)."""
    fault = _ARMED.get(point)
    return 0 if fault is None else fault.hits
