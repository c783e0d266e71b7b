"""Blocking client calls off the event loop, on daemon threads.

``asyncio.to_thread`` and ``ThreadPoolExecutor`` run on threads the interpreter waits for
at exit: one blocked in a Kafka flush (a minute while the broker is away) or a ClickHouse
call held a stopping process long after everything else had stopped. The threads here do
not hold it: a stop waits for what it chooses to wait for, and no longer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]
_MAX_POOL_THREADS = 64


def _run(call: _Call) -> None:
    future, fn, args = call
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args)
    except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the call
        future.set_exception(exc)
    else:
        future.set_result(result)


class CallThread:
    """One daemon thread that runs calls in order: a librdkafka consumer's, which must all
    come from one thread, and whose rebalance callbacks then run there too."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            _run(call)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        if kwargs:
            fn, args = functools.partial(fn, *args, **kwargs), ()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._calls.put((future, fn, args))
        return asyncio.wrap_future(future)

    def close(self) -> None:
        """End the thread after the calls already queued."""
        self._calls.put(None)


class _Pool:
    """Daemon threads for one-off calls, started as needed and kept for the next."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._calls.put((future, fn, args))
        with self._lock:
            if self._idle < self._calls.qsize() and self._threads < _MAX_POOL_THREADS:
                self._threads += 1
                threading.Thread(target=self._serve, name="deltaomega-io", daemon=True).start()
        return future

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            call = self._calls.get()
            with self._lock:
                self._idle -= 1
            _run(call)


_POOL = _Pool()


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on a daemon thread; like ``asyncio.to_thread``, but a process
    may end while the call still blocks."""
    if kwargs:
        fn, args = functools.partial(fn, *args, **kwargs), ()
    return await asyncio.wrap_future(_POOL.submit(fn, *args))
