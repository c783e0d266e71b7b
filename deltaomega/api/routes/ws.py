"""The WebSocket API (``/api/v1/ws``): the seed's broadcast topics over the shared feed tails.

A client sends JSON messages and gets JSON messages back:

- ``{"type": "subscribe", "id": "s1", "topic": "voice_states", "filter": {...},
  "cursor": "0:41,1:17"}`` → ``{"type": "subscribed", "id": "s1", "topic": ...}``, then one
  message per record: ``{"type": "voice_state_update", "subscription": "s1", "cursor":
  "...", "data": {...}}``. ``cursor`` (optional) resumes after a message's cursor; a
  topic read from two streams (``system_evolution``) takes ``{"<stream>": "..."}``.
- ``{"type": "unsubscribe", "id": "s1"}`` → ``{"type": "unsubscribed", "id": "s1"}``.
- ``{"type": "ping"}`` → ``{"type": "pong"}`` (the server also pings at the protocol level).
- A refused message gets ``{"type": "error", "id": ..., "status": 4xx/503, "field": ...,
  "message": ...}``; the connection stays open. A subscription too slow to keep up is
  dropped (``{"type": "dropped", ...}``) and the connection closed with 1013; a connection
  with no subscription that says nothing for ``WS_IDLE_SECONDS`` is closed with 1000.

Topics: ``voice_states`` (``voice_state_update``, with each mean's change against the voice's
previous window in this subscription), ``interaction_events`` (``interaction_event``: closed
interaction windows), ``system_wide_patterns`` (``pattern_emergence``), ``critical_alerts``
(``system_alert``; CRITICAL unless the filter asks for more) and ``system_evolution``
(``system_evolution``: detected emergence and orchestration state changes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError

from deltaomega.api.auth.access import websocket_access
from deltaomega.api.deps import ApiContext
from deltaomega.api.feed_hub import Delivery, FeedRecord, Subscriber
from deltaomega.api.sse import parse_cursor
from deltaomega.errors import ServiceUnavailableError, TooManySubscribersError, ValidationError
from deltaomega.metrics import WS_CONNECTIONS
from deltaomega.schemas.json_records import record_view
from deltaomega.schemas.records import (
    ALERT,
    EMERGENCE,
    INTERACTION_STATE,
    MAX_ID_LENGTH,
    METRICS,
    ORCHESTRATION_STATUS,
    PATTERN,
    SEVERITIES,
    VOICE_STATE,
    InteractionKind,
)
from deltaomega.security.roles import Role
from deltaomega.security.tokens import Principal
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

router = APIRouter()

MAX_MESSAGE_BYTES = 64 * 1024
MAX_SUBSCRIPTIONS = 20
_DROPPED_SEND_SECONDS = 30.0
_Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]
_Ids = list[_Id] | None


SeverityName = Literal["CRITICAL", "WARNING", "INFO"]
assert get_args(SeverityName) == SEVERITIES


class _Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VoiceStateFilter(_Filter):
    voice_ids: _Ids = Field(default=None, max_length=1000)


class InteractionFilter(_Filter):
    sources: _Ids = Field(default=None, max_length=1000)
    targets: _Ids = Field(default=None, max_length=1000)
    kinds: list[InteractionKind] | None = None


class PatternFilter(_Filter):
    pattern_types: _Ids = Field(default=None, max_length=100)


_CRITICAL: list[SeverityName] = ["CRITICAL"]


class AlertFilter(_Filter):
    severities: list[SeverityName] = Field(default_factory=_CRITICAL.copy, min_length=1)
    rules: _Ids = Field(default=None, max_length=100)


class NoFilter(_Filter):
    pass


class Subscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["subscribe"]
    id: _Id
    topic: str
    filter: dict[str, Any] = Field(default_factory=dict)
    cursor: str | dict[str, str] | None = None


class Unsubscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["unsubscribe"]
    id: _Id


#: (the record, the subscription's state) → the message's data, or None to send nothing
Shape = Callable[[FeedRecord, dict[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True)
class Stream:
    """One feed topic a WebSocket topic reads."""

    topic: Callable[[Topics], str]
    schema: str
    keep: Callable[[Any, dict[str, Any]], bool]
    shape: Shape


@dataclass(frozen=True)
class WsTopic:
    message: str
    role: Role
    filter: type[_Filter]
    streams: dict[str, Stream]


def _view(r: FeedRecord) -> dict[str, Any]:
    return record_view(r.codec, r.schema, r.record)


def _voice_update(r: FeedRecord, state: dict[str, Any]) -> dict[str, Any]:
    """The window, and each metric's mean against this voice's previous window here."""
    record = r.record
    previous = state.setdefault("previous", {}).get(record["voice_id"])
    state["previous"][record["voice_id"]] = record
    changes = (
        None
        if previous is None
        else {m: record[f"{m}_mean"] - previous[f"{m}_mean"] for m in METRICS}
    )
    return {**_view(r), "changes": changes}


def _pattern(r: FeedRecord, _: dict[str, Any]) -> dict[str, Any]:
    view = _view(r)
    return {
        "pattern_id": f"{r.record['pattern']}@{r.record['window_start']}",
        "pattern": view["pattern"],
        "window_start": view["window_start"],
        "confidence": view["confidence"],
        "complexity": view["complexity"],
        # the seed's "impact": how unlike the recent windows this one is
        "novelty": view["novelty"],
        "model_version": view["model_version"],
    }


def _affected(subject: str) -> list[str]:
    source, arrow, target = subject.partition("->")
    if arrow:
        return [source, target]
    return [] if subject == "system" else [subject]


def _alert(r: FeedRecord, _: dict[str, Any]) -> dict[str, Any]:
    view = _view(r)
    return {
        "alert_id": view["alert_id"],
        "severity": view["severity"],
        "type": view["rule"],
        "affected_voices": _affected(view["subject"]),
        "message": view["message"],
        "value": view["value"],
        "threshold": view["threshold"],
        "recommended_actions": view["recommended_actions"],
        "window_start": view["window_start"],
    }


def _emergence(r: FeedRecord, _: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "emergence", **_view(r)}


def _orchestration(r: FeedRecord, _: dict[str, Any]) -> dict[str, Any]:
    view = _view(r)
    view["voice_parameters"] = json.loads(view["voice_parameters"])
    return {"kind": "orchestration", **view}


def _in(values: list[str] | None, value: str) -> bool:
    return values is None or value in values


TOPICS: dict[str, WsTopic] = {
    "voice_states": WsTopic(
        "voice_state_update",
        Role.VIEWER,
        VoiceStateFilter,
        {
            "voice_states": Stream(
                lambda t: t.voice_states,
                VOICE_STATE,
                lambda f, r: _in(f.voice_ids, r["voice_id"]),
                _voice_update,
            )
        },
    ),
    "interaction_events": WsTopic(
        "interaction_event",
        Role.VIEWER,
        InteractionFilter,
        {
            "interaction_states": Stream(
                lambda t: t.interaction_states,
                INTERACTION_STATE,
                lambda f, r: (
                    _in(f.sources, r["source"])
                    and _in(f.targets, r["target"])
                    and _in(f.kinds, r["kind"])
                ),
                lambda r, _: _view(r),
            )
        },
    ),
    "system_wide_patterns": WsTopic(
        "pattern_emergence",
        Role.VIEWER,
        PatternFilter,
        {
            "patterns": Stream(
                lambda t: t.patterns,
                PATTERN,
                lambda f, r: _in(f.pattern_types, r["pattern"]),
                _pattern,
            )
        },
    ),
    "critical_alerts": WsTopic(
        "system_alert",
        Role.VIEWER,
        AlertFilter,
        {
            "alerts": Stream(
                lambda t: t.alerts,
                ALERT,
                lambda f, r: r["severity"] in f.severities and _in(f.rules, r["rule"]),
                _alert,
            )
        },
    ),
    "system_evolution": WsTopic(
        "system_evolution",
        Role.VIEWER,
        NoFilter,
        {
            "emergence": Stream(
                lambda t: t.emergence, EMERGENCE, lambda f, r: bool(r["detected"]), _emergence
            ),
            "orchestration": Stream(
                lambda t: t.orchestration_status,
                ORCHESTRATION_STATUS,
                lambda f, r: True,
                _orchestration,
            ),
        },
    ),
}


class Refused(Exception):  # noqa: N818 - a message answered with an error, not a failure
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


@dataclass
class Subscription:
    id: str
    topic: str
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for subscriber in self.subscribers.values():
            subscriber.close()


class Session:
    """One WebSocket connection: its subscriptions and the messages it sends."""

    def __init__(self, ctx: ApiContext, websocket: WebSocket, principal: Principal) -> None:
        self.ctx = ctx
        self.websocket = websocket
        self.principal = principal
        self.subscriptions: dict[str, Subscription] = {}
        self._sending = asyncio.Lock()
        self._closing: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._sending:
            await self.websocket.send_text(json.dumps(message))

    async def run(self) -> None:
        receiving = asyncio.create_task(self._receive())
        waiting: set[asyncio.Future[Any]] = {receiving, self._closing}
        try:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if self._closing in done:
                code, reason = self._closing.result()
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await self.websocket.close(code, reason[:120])
        finally:
            receiving.cancel()
            for subscription in self.subscriptions.values():
                subscription.close()

    def close(self, code: int, reason: str) -> None:
        if not self._closing.done():
            self._closing.set_result((code, reason))

    async def _receive(self) -> None:
        idle = self.ctx.settings.ws_idle_seconds
        while True:
            try:
                if self.subscriptions:
                    text = await self.websocket.receive_text()
                else:
                    text = await asyncio.wait_for(self.websocket.receive_text(), idle)
            except TimeoutError:
                self.close(1000, f"idle for {idle:.0f} s with no subscription")
                return
            except (WebSocketDisconnect, RuntimeError, KeyError):
                self.close(1000, "")
                return
            await self._handle(text)

    async def _handle(self, text: str) -> None:
        ref: str | None = None
        try:
            if len(text.encode()) > MAX_MESSAGE_BYTES:
                raise Refused(413, f"a message may be at most {MAX_MESSAGE_BYTES} bytes")
            try:
                message = json.loads(text)
            except json.JSONDecodeError as exc:
                raise Refused(400, f"not JSON: {exc.msg}") from exc
            if not isinstance(message, dict):
                raise Refused(400, "a message is a JSON object with a 'type'")
            ref = message.get("id") if isinstance(message.get("id"), str) else None
            kind = message.get("type")
            if kind == "ping":
                await self.send({"type": "pong"})
            elif kind == "subscribe":
                await self._subscribe(_parsed(Subscribe, message, ""))
            elif kind == "unsubscribe":
                await self._unsubscribe(_parsed(Unsubscribe, message, ""))
            else:
                raise Refused(422, "must be one of subscribe, unsubscribe, ping", field="type")
        except Refused as exc:
            await self.send(
                {
                    "type": "error",
                    "id": ref,
                    "status": exc.status,
                    "field": exc.field,
                    "message": str(exc),
                }
            )

    async def _subscribe(self, request: Subscribe) -> None:
        topic = TOPICS.get(request.topic)
        if topic is None:
            raise Refused(422, f"must be one of {', '.join(TOPICS)}", field="topic")
        if request.id in self.subscriptions:
            raise Refused(409, f"subscription {request.id!r} exists", field="id")
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise Refused(429, f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection")
        if self.principal.role < topic.role:
            raise Refused(
                403,
                f"{request.topic} needs the {topic.role.label} role; this caller is "
                f"{self.principal.role.label}",
            )
        filters = _parsed(topic.filter, request.filter, "filter.")
        cursors = _cursors(request.cursor, topic)
        subscription = Subscription(request.id, request.topic)
        try:
            for name, stream in topic.streams.items():
                subscription.subscribers[name] = await self.ctx.feeds.subscribe(
                    stream.topic(self.ctx.topics),
                    self.principal.subject,
                    _keeping(stream, filters),
                    cursors.get(name),
                    "cursor",
                )
        except ValidationError as exc:
            subscription.close()
            raise Refused(422, str(exc).split(": ", 1)[-1], field=exc.field) from exc
        except TooManySubscribersError as exc:
            subscription.close()
            raise Refused(429 if exc.per_principal else 503, str(exc)) from exc
        except ServiceUnavailableError as exc:
            subscription.close()
            raise Refused(503, f"{exc.service} is unavailable; try again later") from exc
        self.subscriptions[request.id] = subscription
        await self.send(
            {
                "type": "subscribed",
                "id": request.id,
                "topic": request.topic,
                "cursor": {n: s.cursor() for n, s in subscription.subscribers.items()},
            }
        )
        for name, subscriber in subscription.subscribers.items():
            subscription.tasks.append(
                asyncio.create_task(self._forward(subscription, topic, name, subscriber))
            )

    async def _forward(
        self, subscription: Subscription, topic: WsTopic, name: str, subscriber: Subscriber
    ) -> None:
        shape = topic.streams[name].shape
        multi = len(topic.streams) > 1
        try:
            async for batch in subscriber.deliveries():
                await self._send_batch(subscription, topic, name, shape, multi, batch)
        except (WebSocketDisconnect, RuntimeError):
            self.close(1000, "")
            return
        if subscriber.dropped is not None and subscription.id in self.subscriptions:
            # behind what the client has not read yet; a client that reads no more is
            # closed all the same
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, TimeoutError):
                message = {"type": "dropped", "id": subscription.id, "reason": subscriber.dropped}
                await asyncio.wait_for(self.send(message), _DROPPED_SEND_SECONDS)
            self.close(1013, subscriber.dropped)

    async def _send_batch(
        self,
        subscription: Subscription,
        topic: WsTopic,
        name: str,
        shape: Shape,
        multi: bool,
        batch: list[Delivery],
    ) -> None:
        for record, cursor in batch:
            data = shape(record, subscription.state)
            if data is None:
                continue
            message: dict[str, Any] = {
                "type": topic.message,
                "subscription": subscription.id,
                "cursor": {name: cursor} if multi else cursor,
                "data": data,
            }
            await self.send(message)

    async def _unsubscribe(self, request: Unsubscribe) -> None:
        subscription = self.subscriptions.pop(request.id, None)
        if subscription is None:
            raise Refused(404, f"no subscription {request.id!r}", field="id")
        subscription.close()
        await self.send({"type": "unsubscribed", "id": request.id})


def _parsed(model: type[BaseModel], data: Any, prefix: str) -> Any:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        where = prefix + ".".join(str(part) for part in error["loc"])
        raise Refused(422, error["msg"], field=where.rstrip(".") or None) from exc


def _cursors(given: str | dict[str, str] | None, topic: WsTopic) -> dict[str, dict[int, int]]:
    if given is None:
        return {}
    names = list(topic.streams)
    if isinstance(given, str):
        if len(names) > 1:
            raise Refused(
                422, f"this topic reads {', '.join(names)}: one cursor each", field="cursor"
            )
        given = {names[0]: given}
    out = {}
    for name, text in given.items():
        if name not in topic.streams:
            raise Refused(422, f"must be one of {', '.join(names)}", field=f"cursor.{name}")
        try:
            cursor = parse_cursor(text, f"cursor.{name}" if len(names) > 1 else "cursor")
        except ValidationError as exc:
            raise Refused(422, str(exc).split(": ", 1)[-1], field=exc.field) from exc
        if cursor is not None:
            out[name] = cursor
    return out


def _keeping(stream: Stream, filters: Any) -> Callable[[FeedRecord], bool]:
    return lambda r: r.schema == stream.schema and stream.keep(filters, r.record)


@router.websocket("/api/v1/ws")
@websocket_access(Role.VIEWER)
async def websocket_api(websocket: WebSocket) -> None:
    """Subscriptions to the broadcast topics, authenticated like REST (the guard)."""
    ctx: ApiContext = websocket.app.state.context
    principal: Principal = websocket.scope["state"]["principal"]
    await websocket.accept()
    WS_CONNECTIONS.inc()
    try:
        await Session(ctx, websocket, principal).run()
    finally:
        WS_CONNECTIONS.dec()
