"""Inserts that must land before Kafka offsets are acked: retried, off the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from deltaomega.errors import ClickHouseUnavailableError
from deltaomega.threads import in_thread

log = logging.getLogger(__name__)

MAX_DELAY_SECONDS = 5.0


async def insert_until_acknowledged(what: str, fn: Callable[..., int], *args: Any) -> int:
    """Run ``fn(*args)`` in a thread until it succeeds, backing off up to 5 s.

    Holding the batch (not acking it) is what makes a ClickHouse outage lossless: the
    consumer stops advancing and resumes where it was once the insert goes through. An
    outage is logged by the ``clickhouse`` tracker, once and then in summaries; any other
    error (a refused insert) is logged on every attempt.
    """
    delay = 0.5
    while True:
        try:
            return await in_thread(fn, *args)
        except ClickHouseUnavailableError:
            pass
        except Exception as exc:  # noqa: BLE001 - any driver or server error is retried
            log.error("insert into %s failed (%s); retrying in %.1fs", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY_SECONDS)
