"""Alert deliveries in a process of their own, the courier.

A tick can open a couple of hundred conditions at once. Delivering each notification
(rendering, signing, the HTTP request, retries armed, a delivery record) cost the control
plane's one event loop more than deciding it, so a burst's last notice waited for all the
deliveries before it as well as for all the decisions. The control plane now only decides:
it hands each notification to a spawned process that delivers it on the other core, writes
its delivery records with a producer of its own and sends its counts back for the control
plane's metrics. A notification is in memory from decision to delivery, in the courier as
it was in the control plane: it is lost if the process holding it dies.

The functions prefixed ``_`` run in the child; :class:`Courier` is the control plane's
handle.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import struct
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from deltaomega.alerting.dispatcher import Dispatcher
from deltaomega.alerting.notifications import Notification
from deltaomega.alerting.routing import Channel
from deltaomega.alerting.senders import HttpClient, build_senders
from deltaomega.alerting.web_push import follow_subscriptions
from deltaomega.children import bind_to_parent, log_like_parent, logging_options
from deltaomega.config import Settings
from deltaomega.metrics import ALERT_DELIVERIES, ALERT_DELIVERY_SECONDS, ALERT_NOTIFICATIONS
from deltaomega.outages import outage
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import ALERT_DELIVERY
from deltaomega.streams.outputs import BatchOutputs
from deltaomega.threads import in_thread
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

#: At a stop, how long the courier may go on delivering what it holds.
DRAIN_SECONDS = 1.5
_EXIT_SECONDS = DRAIN_SECONDS + 1.0
#: A courier that died is replaced at the next notification, at most this often.
_RESPAWN_SECONDS = 2.0


class _Pipe:
    """Batches of objects over one end of a pipe, on the event loop: what a turn of the
    loop sends goes as one pickled frame, written without blocking (the rest when the pipe
    has room again). No thread: a thread woken per notification took the GIL from the
    loop each time."""

    _LENGTH = struct.Struct(">I")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        connection: Connection,
        on_items: Callable[[list[Any]], None] | None = None,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        self.loop = loop
        self.connection = connection
        self.fd = connection.fileno()
        os.set_blocking(self.fd, False)
        self.on_items = on_items
        self.on_closed = on_closed
        self.closed = False
        self._batch: list[Any] = []
        self._out = bytearray()
        self._in = bytearray()
        if on_items is not None:
            loop.add_reader(self.fd, self._read)

    def send(self, item: Any) -> None:
        if self.closed:
            return
        if not self._batch:
            self.loop.call_soon(self._flush)
        self._batch.append(item)

    @property
    def pending(self) -> bool:
        return bool(self._batch or self._out)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if batch and not self.closed:
            frame = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
            self._out += self._LENGTH.pack(len(frame)) + frame
            self._write()

    def _write(self) -> None:
        try:
            written = os.write(self.fd, self._out)
        except BlockingIOError:
            written = 0
        except OSError:
            self._close()
            return
        del self._out[:written]
        if self._out:
            self.loop.add_writer(self.fd, self._write)
        else:
            self.loop.remove_writer(self.fd)

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close()
            return
        self._in += data
        while len(self._in) >= 4:
            (size,) = self._LENGTH.unpack_from(self._in)
            if len(self._in) < 4 + size:
                break
            items = pickle.loads(self._in[4 : 4 + size])  # noqa: S301 - our own child
            del self._in[: 4 + size]
            assert self.on_items is not None
            self.on_items(items)

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)
        self.connection.close()
        if self.on_closed is not None:
            self.on_closed()

    def close(self) -> None:
        self._close()


class _Observer:
    """The child's counts, to the parent's metrics."""

    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe

    def attempted(self, channel: str, outcome: str) -> None:
        self.pipe.send(("attempted", channel, outcome))

    def delivered(self, channel: str, seconds: float) -> None:
        self.pipe.send(("delivered", channel, seconds))


_END = "end"


def _serve(
    settings: Settings,
    channels: dict[str, Channel],
    console_url: str,
    inbox: Connection,
    outbox: Connection,
    parent: int,
    options: tuple[int, bool],
) -> None:
    bind_to_parent(parent)
    log_like_parent(options)
    asyncio.run(_deliver(settings, channels, console_url, inbox, outbox))


async def _deliver(
    settings: Settings,
    channels: dict[str, Channel],
    console_url: str,
    inbox: Connection,
    outbox: Connection,
) -> None:
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()
    codec = AvroCodec.from_settings(settings)
    outputs = BatchOutputs(settings, "courier")
    emit = outputs.emit_to(Topics.from_settings(settings).alert_deliveries)

    async def record(delivery: dict[str, Any]) -> None:
        emit(delivery["condition_id"].encode(), codec.encode(ALERT_DELIVERY, delivery))

    http = HttpClient()
    subscriptions = follow_subscriptions(settings, channels)
    counts = _Pipe(loop, outbox)
    dispatcher = Dispatcher(
        build_senders(channels, console_url, http, settings, subscriptions),
        record,
        attempts=settings.alert_delivery_attempts,
        backoff_seconds=settings.alert_delivery_backoff_seconds,
        observer=_Observer(counts),
    )

    def take(items: list[Any]) -> None:
        for item in items:
            if item == _END:
                ended.set()
            elif not ended.is_set():
                dispatcher.submit(item)

    _Pipe(loop, inbox, on_items=take, on_closed=ended.set)

    async def serve_delivery_reports() -> None:
        while True:  # the delivery records' reports, a few times a second
            await asyncio.sleep(0.2)
            outputs.producer.poll(0)
            if outputs.failed:
                failed, outputs.failed = outputs.failed, []
                outage("kafka").failed(f"{len(failed)} delivery records not written: {failed[0]}")

    reports = asyncio.create_task(serve_delivery_reports())
    try:
        await ended.wait()
        await dispatcher.drain(DRAIN_SECONDS)
    finally:
        reports.cancel()
        await http.close()
        if subscriptions is not None:
            subscriptions.follower.stop()
        outputs.close()
        deadline = time.monotonic() + 1.0
        while counts.pending and not counts.closed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


class Courier:
    """The control plane's handle; :meth:`submit` never blocks. Made and used on the
    control plane's event loop. A courier that died is replaced."""

    def __init__(self, settings: Settings, channels: dict[str, Channel], console_url: str) -> None:
        self.settings = settings
        self.channels = channels
        self.console_url = console_url
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._inbox: _Pipe | None = None
        self._stopping = False
        self._started_at = 0.0
        self.restarts = 0

    def start(self) -> None:
        if not self.channels:
            return  # nothing to deliver to: no process
        loop = asyncio.get_running_loop()
        inbox_end, inbox = self._context.Pipe(duplex=False)
        counts, counts_end = self._context.Pipe(duplex=False)
        self._process = self._context.Process(
            target=_serve,
            args=(
                self.settings,
                self.channels,
                self.console_url,
                inbox_end,
                counts_end,
                os.getpid(),
                logging_options(),
            ),
            name="deltaomega-courier",
            daemon=True,
        )
        self._process.start()
        inbox_end.close()
        counts_end.close()
        self._started_at = time.monotonic()
        self._inbox = _Pipe(loop, inbox)
        _Pipe(loop, counts, on_items=self._count, on_closed=self._gone)

    @staticmethod
    def _count(items: list[Any]) -> None:
        for what, channel, value in items:
            if what == "attempted":
                ALERT_DELIVERIES.labels(channel, value).inc()
            else:
                ALERT_DELIVERY_SECONDS.labels(channel).observe(value)

    def _gone(self) -> None:
        if self._inbox is not None:
            self._inbox.close()

    def submit(self, notification: Notification) -> None:
        ALERT_NOTIFICATIONS.labels(notification.kind, notification.severity).inc()
        if self._inbox is None or self._stopping:
            return
        if self._inbox.closed and not self._respawn():
            return
        self._inbox.send(notification)

    def _respawn(self) -> bool:
        """Replace a courier that died (not more often than every few seconds)."""
        if time.monotonic() - self._started_at < _RESPAWN_SECONDS:
            return False
        self._process.join(0.2)  # it has closed its pipe: it is gone or going
        log.error("the alert courier died (exit code %s); starting another", self._process.exitcode)
        self.restarts += 1
        self.start()
        return True

    async def stop(self) -> None:
        """Let the courier deliver what it holds (a few seconds at most) and end."""
        self._stopping = True
        if self._process is None or self._inbox is None:
            return
        self._inbox.send(_END)
        deadline = time.monotonic() + _EXIT_SECONDS
        while self._inbox.pending and not self._inbox.closed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await in_thread(self._process.join, _EXIT_SECONDS)
        if self._process.exitcode is None:
            log.warning("the alert courier did not stop in %.0f s", _EXIT_SECONDS)
            self._process.kill()
            await in_thread(self._process.join, 1.0)
        self._inbox.close()
