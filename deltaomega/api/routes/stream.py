"""Server-Sent Events feeds, resumable with Last-Event-ID (see :mod:`deltaomega.api.sse`).

Every feed follows one output topic through the process's shared tail
(:mod:`deltaomega.api.feed_hub`); they differ in the record type they pass on, the event
name and their filters, so one table defines them all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ApiContext, ContextDep
from deltaomega.api.feed_hub import FeedRecord, Subscriber
from deltaomega.api.params import canonical_severity
from deltaomega.api.sse import parse_cursor
from deltaomega.metrics import SSE_CLIENTS
from deltaomega.schemas.records import (
    ALERT,
    ALERT_CONDITION,
    CONFLICT_PREDICTION,
    EMERGENCE,
    ID_RULE,
    MAX_ID_LENGTH,
    PREDICTION,
    SEVERITIES,
    VOICE_STATE,
)
from deltaomega.security.roles import Role
from deltaomega.topics import Topics

#: Every feed answers 200 with a stream of Server-Sent Events.
_EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
}
router = APIRouter(
    prefix="/api/v1/stream",
    tags=["stream"],
    responses=_EVENT_STREAM,
    default_response_class=EventSourceResponse,
)

LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]
Cursor = Annotated[
    str | None, Query(description="Same as Last-Event-ID, for clients that cannot set it.")
]
_Id = Annotated[
    str | None, Field(min_length=1, max_length=MAX_ID_LENGTH, description=f"An id: {ID_RULE}.")
]


class _Filters(BaseModel):
    """A feed's filters (query parameters; others, like ``cursor``, are the route's)."""


class VoiceFilters(_Filters):
    voice_id: _Id = None


class ConflictFilters(_Filters):
    min_probability: float = Field(default=0.5, ge=0.0, le=1.0)
    source: _Id = None
    target: _Id = None


class EmergenceFilters(_Filters):
    detected: bool | None = None


class AlertFilters(_Filters):
    severity: str | None = Field(
        default=None, description=f"One of {', '.join(SEVERITIES)}, in any case."
    )
    rule: _Id = None


class ConditionFilters(_Filters):
    severity: str | None = Field(
        default=None, description=f"One of {', '.join(SEVERITIES)}, in any case."
    )
    rule: _Id = None
    state: Literal["OPEN", "ACKNOWLEDGED", "RESOLVED"] | None = None


@dataclass(frozen=True)
class Feed:
    """One feed: its path and event name, the topic and record type it follows, and what
    its filters keep (a function of the filters, checked once per request)."""

    name: str
    summary: str
    topic: Callable[[Topics], str]
    schema: str
    event: str
    filters: type[_Filters]
    keep: Callable[[Any], Callable[[dict[str, Any]], bool]]


def _voice(f: VoiceFilters) -> Callable[[dict[str, Any]], bool]:
    return lambda r: not f.voice_id or r["voice_id"] == f.voice_id


def _conflict(f: ConflictFilters) -> Callable[[dict[str, Any]], bool]:
    return lambda r: (
        r["probability"] >= f.min_probability
        and (not f.source or r["source"] == f.source)
        and (not f.target or r["target"] == f.target)
    )


def _emergence(f: EmergenceFilters) -> Callable[[dict[str, Any]], bool]:
    return lambda r: f.detected is None or r["detected"] == f.detected


def _alert(f: AlertFilters) -> Callable[[dict[str, Any]], bool]:
    wanted = canonical_severity(f.severity)
    return lambda r: (
        (wanted is None or r["severity"] == wanted) and (not f.rule or r["rule"] == f.rule)
    )


def _condition(f: ConditionFilters) -> Callable[[dict[str, Any]], bool]:
    wanted = canonical_severity(f.severity)
    return lambda r: (
        (wanted is None or r["severity"] == wanted)
        and (not f.rule or r["rule"] == f.rule)
        and (not f.state or r["state"] == f.state)
    )


FEEDS = (
    Feed(
        "voice-states",
        "Closed voice-state windows as they are emitted",
        lambda t: t.voice_states,
        VOICE_STATE,
        "voice-state",
        VoiceFilters,
        _voice,
    ),
    Feed(
        "predictions",
        "Next-window predictions as they are made",
        lambda t: t.predictions,
        PREDICTION,
        "prediction",
        VoiceFilters,
        _voice,
    ),
    Feed(
        "conflicts",
        "Predicted conflicts per ordered pair as they are made",
        lambda t: t.conflicts,
        CONFLICT_PREDICTION,
        "conflict",
        ConflictFilters,
        _conflict,
    ),
    Feed(
        "emergence",
        "System-level emergence scores per window as they are made",
        lambda t: t.emergence,
        EMERGENCE,
        "emergence",
        EmergenceFilters,
        _emergence,
    ),
    Feed(
        "alerts",
        "Alerts as they are raised",
        lambda t: t.alerts,
        ALERT,
        "alert",
        AlertFilters,
        _alert,
    ),
    Feed(
        "alert-conditions",
        "Alert conditions as they open, change (acknowledged, escalated, silenced) and resolve",
        lambda t: t.alert_status,
        ALERT_CONDITION,
        "alert-condition",
        ConditionFilters,
        _condition,
    ),
)


def keeping(feed: Feed, filters: Any) -> Callable[[FeedRecord], bool]:
    """The feed's records that pass ``filters`` (a 422 for a filter value it refuses)."""
    keep = feed.keep(filters)
    return lambda r: r.schema == feed.schema and keep(r.record)


async def subscribe(
    ctx: ApiContext, request: Request, feed: Feed, filters: Any, cursor_text: str | None, field: str
) -> Subscriber:
    keep = keeping(feed, filters)
    return await ctx.feeds.subscribe(
        feed.topic(ctx.topics),
        request.state.principal.subject,
        keep,
        parse_cursor(cursor_text, field),
        field,
    )


def _events(feed: Feed, subscriber: Subscriber) -> AsyncIterator[bytes]:
    """One write per batch the tail offered, not per event: a window's close at 10,000
    voices is 10,000 events at once."""
    clients = SSE_CLIENTS.labels(feed.name)

    async def events() -> AsyncIterator[bytes]:
        clients.inc()
        try:
            async for batch in subscriber.deliveries():
                yield b"".join(
                    ServerSentEvent(r.json, event=feed.event, id=position).encode()
                    for r, position in batch
                )
            if subscriber.dropped is not None:
                yield ServerSentEvent(subscriber.dropped, event="error").encode()
        finally:
            clients.dec()
            subscriber.close()

    return events()


def _route(feed: Feed) -> Callable[..., Any]:
    async def stream(
        ctx: ContextDep,
        request: Request,
        filters: Any,
        last_event_id: LastEventId = None,
        cursor: Cursor = None,
    ) -> EventSourceResponse:
        field = "Last-Event-ID" if last_event_id else "cursor"
        # subscribed before answering, so "connected" means "positioned"
        subscriber = await subscribe(ctx, request, feed, filters, last_event_id or cursor, field)
        return EventSourceResponse(
            _events(feed, subscriber), ping=int(ctx.settings.sse_ping_seconds)
        )

    stream.__name__ = f"stream_{feed.name.replace('-', '_')}"
    # the feed's filters as query parameters (this module's annotations are strings)
    stream.__annotations__["filters"] = Annotated[feed.filters, Query()]
    return stream


for _feed in FEEDS:
    router.get(
        f"/{_feed.name}",
        summary=_feed.summary,
        response_description=(
            f"text/event-stream; event '{_feed.event}', id = partition:offset pairs; "
            "an 'error' event says why a subscriber too slow to keep up was dropped"
        ),
        **requires(Role.VIEWER),
    )(_route(_feed))
