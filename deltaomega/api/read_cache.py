"""A short-lived cache of read responses, shared by the clients that ask the same thing.

Dashboards and consoles poll the same few routes; states change when a window closes
(every few seconds), not per request. Identical GETs within ``api_cache_seconds`` get one
answer, computed once even when they arrive together (the others wait for it), so ten
clients looping over the heaviest routes cost little more than one, and the API, which
shares its process with the worker in the embedded setup, leaves ingestion its CPU. Only
successful reads under ``/api/v1/`` are kept (never a feed or other live answer, a
caller's saved queries, an export, or people's own accounts and keys), keyed by the full URL and the
caller's credentials. A plain ASGI middleware: a hit is answered before any routing.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_MAX_ENTRIES = 512
_MAX_BODY_BYTES = 16 * 1024 * 1024
_PREFIX = "/api/v1/"
#: feeds, each caller's own saved queries, files, and people's sign-ins, keys and accounts
#: (a person's own write must show at once): never shared or kept
_UNCACHED = (
    "/api/v1/stream/",
    "/api/v1/query/",
    "/api/v1/export/",
    "/api/v1/auth/",
    "/api/v1/accounts",
    "/api/v1/push/",
)
_CREDENTIALS = (b"authorization", b"x-api-key")


@dataclass
class _Entry:
    expires: float
    headers: list[tuple[bytes, bytes]]
    body: bytes
    #: the route that answered (metrics label a cached answer by it)
    route: Any
    done: asyncio.Event = field(default_factory=asyncio.Event)
    ok: bool = False


class ReadCache:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            self.seconds <= 0
            or scope["type"] != "http"
            or scope["method"] != "GET"
            or not path.startswith(_PREFIX)
            or path.startswith(_UNCACHED)
        ):
            await self.app(scope, receive, send)
            return
        key = self._key(scope)
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and (entry.expires > now or not entry.done.is_set()):
            await entry.done.wait()  # a request for it is under way: share its answer
            if entry.ok:
                await self._replay(scope, entry, send)
                return
        entry = _Entry(now + self.seconds, [], b"", None)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > _MAX_ENTRIES:
            self._entries.popitem(last=False)
        try:
            await self.app(scope, receive, self._capture(entry, send))
        finally:
            entry.route = scope.get("route")
            if not entry.ok or len(entry.body) > _MAX_BODY_BYTES:
                entry.ok = False
                self._entries.pop(key, None)
            entry.done.set()

    @staticmethod
    def _key(scope: Scope) -> bytes:
        headers = dict(scope.get("headers", []))
        who = b"\x00".join(headers.get(name, b"") for name in _CREDENTIALS)
        return b"%s?%s#%s" % (
            scope["path"].encode(),
            scope.get("query_string", b""),
            hashlib.sha256(who).hexdigest().encode(),
        )

    def _capture(self, entry: _Entry, send: Send) -> Send:
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.headers = list(message.get("headers", []))
                streaming = (b"content-type", b"text/event-stream") in [
                    (k, v.split(b";")[0]) for k, v in entry.headers
                ]
                entry.ok = message["status"] == 200 and not streaming
                if streaming:  # a live answer (the monitor's): each caller gets their own
                    entry.done.set()
            elif message["type"] == "http.response.body" and entry.ok:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    entry.body = b"".join(chunks)
            await send(message)

        return capture

    async def _replay(self, scope: Scope, entry: _Entry, send: Send) -> None:
        scope["route"] = entry.route
        age = max(0, int(self.seconds - (entry.expires - time.monotonic())))
        headers = [(k, v) for k, v in entry.headers if k not in (b"age", b"cache-control")]
        headers += [
            (b"age", str(age).encode()),
            (b"cache-control", f"max-age={max(1, int(self.seconds))}".encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": entry.body})
