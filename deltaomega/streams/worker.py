"""The worker: its consumers and the inference engine as tasks of one event loop, started
and stopped as one, with the health readiness reports.

The hot path is confluent-kafka consumers, not Faust agents (see ``batch_consumer``), so
the worker supervises plain tasks: each consumer restarts itself after an error, and
stopping cancels them all and waits a bounded time, whatever state they are in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deltaomega.streams.batch_consumer import BatchConsumer

log = logging.getLogger(__name__)

#: A consumer that has not polled successfully for this long is not ready.
STALE_POLL_SECONDS = 60.0


@dataclass
class Readiness:
    ready: bool
    #: component → "ok" or why it is not ready (no exception text)
    checks: dict[str, str]
    #: consumer → its health figures
    consumers: dict[str, dict[str, Any]]


class Worker:
    def __init__(
        self,
        consumers: Sequence[BatchConsumer],
        tasks: Mapping[str, Callable[[], Awaitable[None]]] | None = None,
        status: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.consumers = list(consumers)
        #: other long-running parts (inference), by name
        self.extra = dict(tasks or {})
        #: the other parts' readiness checks (inference: serving, standby or off)
        self.status = status
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def started(self) -> bool:
        return bool(self._tasks)

    def start(self) -> None:
        for consumer in self.consumers:
            self._spawn(consumer.name, consumer.run)
        for name, run in self.extra.items():
            self._spawn(name, run)

    def _spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        async def supervised() -> None:
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - reported; readiness shows it stopped
                log.exception("worker part %s stopped with an error", name)

        self._tasks[name] = asyncio.get_running_loop().create_task(supervised(), name=name)

    async def stop(self, timeout: float) -> None:
        """Cancel every part and wait at most ``timeout`` seconds for them to finish."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                log.warning("worker part %s did not stop within %.1f s", task.get_name(), timeout)
        self._tasks.clear()

    def readiness(self) -> Readiness:
        now = time.monotonic()
        checks: dict[str, str] = {}
        for consumer in self.consumers:
            problem = consumer.health.problem(now, STALE_POLL_SECONDS)
            task = self._tasks.get(consumer.name)
            if task is None or task.done():
                problem = "not running"
            checks[f"consumer {consumer.name}"] = problem or "ok"
        if self.status is not None:
            checks.update(self.status())
        ready = all(value == "ok" or value.startswith("ok ") for value in checks.values())
        return Readiness(
            ready,
            checks,
            {c.name: c.health.report(now) for c in self.consumers},
        )
