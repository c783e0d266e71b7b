"""The seed's alert rules about the pipeline itself, checked in the worker once a window and
raised on ``voice.alerts`` like the models' alerts, so they group, route, escalate and
resolve through the same dispatch:

* ``pipeline_sync_delay``: a live window's states came out more than
  ``alert_sync_delay_seconds`` after the window could close (its end plus grace); CRITICAL
  from four times that.
* ``pipeline_error_rate``: more than ``alert_error_rate`` of the window's records were
  dead-lettered; CRITICAL from four times that (or all of them).
* ``pipeline_memory``: the process's resident memory is over ``alert_memory_fraction`` of
  the memory it may use (its cgroup's limit, else the machine's); CRITICAL from 95 %.

Their window is the wall clock's (a pipeline condition is about now), their subject
``pipeline``; the dispatcher clears them by the wall clock too.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deltaomega.config import Settings
from deltaomega.metrics import MEMORY_LIMIT
from deltaomega.models.alerts import alert_record
from deltaomega.streams.progress import Progress

log = logging.getLogger(__name__)

SUBJECT = "pipeline"
RULES = ("pipeline_sync_delay", "pipeline_error_rate", "pipeline_memory")
_CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")


def memory_limit_bytes() -> int | None:
    """The cgroup's memory limit when it has one, else the machine's physical memory."""
    try:
        text = _CGROUP_LIMIT.read_text().strip()
        if text.isdigit():
            return int(text)
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def publish_memory_limit() -> None:
    """For Prometheus' memory rule: resident memory (the client's process metrics) over it."""
    limit = memory_limit_bytes()
    if limit:
        MEMORY_LIMIT.set(limit)


def resident_bytes() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class PipelineHealth:
    def __init__(
        self,
        settings: Settings,
        progress: Progress,
        memory: Callable[[], tuple[int | None, int | None]] | None = None,
    ) -> None:
        self.settings = settings
        self.progress = progress
        self.memory = memory or (lambda: (resident_bytes(), memory_limit_bytes()))
        self._records = progress.events + progress.interactions + progress.deadlettered
        self._deadlettered = progress.deadlettered

    def check(self, now_ms: int) -> list[dict[str, Any]]:
        """The rules on what happened since the last check; takes the delay seen so far."""
        s = self.settings
        window = now_ms // s.window_ms * s.window_ms
        out: list[dict[str, Any]] = []

        def raise_(
            rule: str,
            value: float,
            threshold: float,
            critical: bool,
            message: str,
            actions: list[str],
        ) -> None:
            severity = "CRITICAL" if critical else "WARNING"
            out.append(
                alert_record(
                    rule,
                    SUBJECT,
                    window,
                    severity,
                    message,
                    value,
                    threshold,
                    actions,
                    "pipeline",
                    now_ms,
                )
            )

        delay, self.progress.sync_delay = self.progress.sync_delay, 0.0
        limit = s.alert_sync_delay_seconds
        if delay > limit:
            raise_(
                "pipeline_sync_delay",
                delay,
                limit,
                delay > 4 * limit,
                f"voice states came out {delay * 1000:.0f} ms after their window could close "
                f"(over {limit * 1000:.0f} ms)",
                ["check the workers' consumer lag and CPU", "add a worker (partitions allowing)"],
            )
        p = self.progress
        records = p.events + p.interactions + p.deadlettered
        new, bad = records - self._records, p.deadlettered - self._deadlettered
        self._records, self._deadlettered = records, p.deadlettered
        rate = bad / new if new else 0.0
        if rate > s.alert_error_rate:
            raise_(
                "pipeline_error_rate",
                rate,
                s.alert_error_rate,
                rate > min(1.0, 4 * s.alert_error_rate) or rate == 1.0,
                f"{bad} of {new} records dead-lettered in the last window ({rate:.1%})",
                ["read the reasons on the dead-letter topic", "check the producers' schema"],
            )
        used, available = self.memory()
        if used is not None and available:
            share = used / available
            if share > s.alert_memory_fraction:
                raise_(
                    "pipeline_memory",
                    share,
                    s.alert_memory_fraction,
                    share > 0.95,
                    f"the worker uses {used / 2**20:,.0f} MiB, {share:.0%} of "
                    f"{available / 2**20:,.0f} MiB",
                    ["lower BATCH_MAX_RECORDS", "give the worker more memory"],
                )
        return out


def clearing_window(now_ms: int, window_ms: int) -> int:
    """The newest wall-clock window that has closed: the clock that clears pipeline alerts."""
    return now_ms // window_ms * window_ms - window_ms


def now_ms() -> int:
    return int(time.time() * 1000)
