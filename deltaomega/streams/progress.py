"""Counters for the live progress line of `deltaomega run` (metrics carry the rest)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    events: int = 0
    interactions: int = 0
    windows_closed: int = 0
    deadlettered: int = 0
    late: int = 0
    voices: set[str] = field(default_factory=set)
    #: perf_counter when the first batch of records was in hand (throughput clocks start)
    first_batch_at: float | None = None
    #: the longest a live window's states waited, once closable, before they were emitted,
    #: since the health check last took it (seconds)
    sync_delay: float = 0.0
    _last_events: int = 0
    _last_time: float = field(default_factory=time.monotonic)

    def note_sync_delay(self, closable_at_ms: int, now: float | None = None) -> float | None:
        """States of a window that could close at ``closable_at_ms`` (its end plus grace)
        are out now: the delay, or None for a window that is not live (replayed or
        back-filled, closable over an hour ago; or ahead of the clock), which tells nothing
        about it."""
        delay = (time.time() if now is None else now) - closable_at_ms / 1000
        if not 0 <= delay < 3600:
            return None
        self.sync_delay = max(self.sync_delay, delay)
        return delay

    def line(self) -> str:
        now = time.monotonic()
        rate = (self.events - self._last_events) / max(now - self._last_time, 1e-9)
        self._last_events, self._last_time = self.events, now
        return (
            f"{rate:,.0f} events/s | {self.events:,} events, {self.interactions:,} interactions"
            f" | {len(self.voices)} voices | {self.windows_closed:,} windows closed"
            f" | {self.late} late, {self.deadlettered} dead-lettered"
        )
