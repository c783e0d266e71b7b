"""Outages of the services around the pipeline (Kafka, ClickHouse, the schema registry), as
log lines a person can follow: the first failure, a summary while it lasts, and its end.

Clients retry on their own (librdkafka reconnects every few tens of milliseconds, the sink
backs off); logging every attempt buried the one line that mattered under 25 a second.
Every place that sees a failure reports it here, and every place that sees the service
answer reports that, so an outage reads as three kinds of line whatever noticed it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from deltaomega.metrics import DEPENDENCY_UP

log = logging.getLogger(__name__)

DEFAULT_SUMMARY_SECONDS = 30.0
#: After an outage ends, clients that had backed off still fail once or twice before they
#: reconnect; failures within this time of the end open a new outage only if they persist.
SETTLE_SECONDS = 5.0
#: After an outage ends, clients still report its after-effects for a while (partition
#: leaders moving back, group coordinators loading): they belong to the outage.
RECOVERY_SECONDS = 30.0


class Outage:
    """One service's availability; thread-safe (librdkafka reports from its own threads)."""

    def __init__(
        self,
        service: str,
        summary_seconds: float = DEFAULT_SUMMARY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.summary_seconds = summary_seconds
        self._clock = clock
        self._lock = threading.Lock()
        #: clock reading when the current outage began; None while the service answers
        self.since: float | None = None
        #: failures since the outage began
        self.failures = 0
        self._in_period = 0
        self._next_summary = 0.0
        self._last_detail = ""
        self._recovered_at: float | None = None
        #: first failure since a recent recovery (not an outage unless failures persist)
        self._settling_since: float | None = None

    @property
    def down(self) -> bool:
        return self.since is not None

    def recovering(self) -> bool:
        """Down, or back for less than ``RECOVERY_SECONDS``."""
        if self.since is not None:
            return True
        recovered_at = self._recovered_at
        return recovered_at is not None and self._clock() - recovered_at < RECOVERY_SECONDS

    def seconds_down(self) -> float:
        since = self.since
        return 0.0 if since is None else self._clock() - since

    def failed(self, detail: str) -> None:
        """The service did not answer: logs the first failure, then a summary per period."""
        now = self._clock()
        with self._lock:
            self._last_detail = detail
            if self.since is None:
                if self._settling(now):
                    return
                if _stopping.is_set():
                    # clients closing their connections as the process ends: not an outage
                    log.debug("%s: %s (while stopping)", self.service, detail)
                    return
                self.since = self._settling_since or now
                self._settling_since = None
                self.failures, self._in_period = 1, 0
                self._next_summary = now + self.summary_seconds
                DEPENDENCY_UP.labels(self.service).set(0)
                log.error("%s is unavailable: %s", self.service, detail)
                return
            self.failures += 1
            self._in_period += 1
            if now < self._next_summary:
                return
            period, self._in_period = self._in_period, 0
            self._next_summary = now + self.summary_seconds
            down_for = now - self.since
        log.warning(
            "%s still unavailable after %.0f s (%d failed attempts in the last %.0f s; last: %s)",
            self.service,
            down_for,
            period,
            self.summary_seconds,
            detail,
        )

    def _settling(self, now: float) -> bool:
        """A failure soon after a recovery: a late client, unless failures go on."""
        if self._recovered_at is None or now - self._recovered_at >= SETTLE_SECONDS:
            return False
        if self._settling_since is None:
            self._settling_since = now
        return now - self._settling_since < SETTLE_SECONDS

    def answered(self) -> None:
        """A client got records, which it may have fetched before an outage began: ends a
        settling failure, never an outage (only an answer from the service itself does)."""
        if self._settling_since is None:  # the common case
            return
        with self._lock:
            if self.since is None:
                self._settling_since = None

    def recovered(self) -> None:
        """The service answered: logs the end of an outage, if there was one."""
        if self.since is None and self._settling_since is None:  # the common case
            DEPENDENCY_UP.labels(self.service).set(1)
            return
        with self._lock:
            self._settling_since = None
            if self.since is None:
                return
            now = self._clock()
            down_for, failures = now - self.since, self.failures
            self.since, self._recovered_at = None, now
            DEPENDENCY_UP.labels(self.service).set(1)
        log.info(
            "%s is available again after %.1f s (%d failed attempts)",
            self.service,
            down_for,
            failures,
        )


_OUTAGES: dict[str, Outage] = {}
_REGISTRY_LOCK = threading.Lock()
_summary_seconds = DEFAULT_SUMMARY_SECONDS
_stopping = threading.Event()


def process_stopping() -> None:
    """The process is ending: failures from now on open no outage (its clients report their
    own connections going away); one already open is still summarised and ended."""
    _stopping.set()


def outage(service: str) -> Outage:
    """The process-wide tracker of ``service`` (``kafka``, ``clickhouse``, ``schema-registry``)."""
    found = _OUTAGES.get(service)
    if found is None:
        with _REGISTRY_LOCK:
            found = _OUTAGES.setdefault(service, Outage(service, _summary_seconds))
    return found


def configure_outages(summary_seconds: float) -> None:
    """Set the summary period of every tracker (Settings.outage_summary_seconds)."""
    global _summary_seconds
    _summary_seconds = summary_seconds
    with _REGISTRY_LOCK:
        for tracker in _OUTAGES.values():
            tracker.summary_seconds = summary_seconds


def down_services() -> dict[str, float]:
    """Services now unavailable → seconds they have been."""
    return {name: o.seconds_down() for name, o in list(_OUTAGES.items()) if o.down}
