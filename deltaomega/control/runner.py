"""The control plane's Faust app on a thread and event loop of its own.

Faust's services (mode) do not all give way to a cancellation: on the API's loop, a stop
could hold up the whole process. On its own daemon thread the app starts, runs and is
asked to stop (bounded); whatever it leaves running never holds the process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import faust
from faust.contrib.asgi import faust_app_running

log = logging.getLogger(__name__)

_STOP_SECONDS = 3.0


class ControlPlane:
    def __init__(self, make: Callable[[], faust.App]) -> None:
        self._make = make
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        #: "starting", "ok", or "stopped (<error>)"
        self.state = "starting"

    def start(self) -> None:
        for name in ("faust", "mode", "aiokafka"):
            logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
        self._thread = threading.Thread(target=self._run, name="control-plane", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the app to stop and wait at most a few seconds."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(_STOP_SECONDS + 1.0)
            if self._thread.is_alive():
                log.warning("the control plane did not stop in %.0f s", _STOP_SECONDS + 1.0)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # noqa: BLE001 - readiness and the log say it stopped
            self.state = f"stopped ({type(exc).__name__})"
            log.exception("the control plane stopped")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        started = time.monotonic()
        # Faust's services bind to the loop they are made on: made here, where they run.
        async with faust_app_running(self._make(), stop_timeout=_STOP_SECONDS):
            self.state = "ok"
            log.info("control plane running (%.1f s to start)", time.monotonic() - started)
            await self._stopping.wait()
