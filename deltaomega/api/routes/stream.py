"""Server-Sent Events feeds, resumable with Last-Event-ID (see :mod:`deltaomega.api.sse`).

Every feed follows one output topic; they differ only in the record type they pass on,
the event name and a filter, so one helper serves them all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ApiContext, ContextDep
from deltaomega.api.params import Name, Severity, canonical_severity
from deltaomega.api.sse import KafkaTail, parse_cursor
from deltaomega.errors import DecodeError
from deltaomega.metrics import SSE_CLIENTS
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import (
    ALERT,
    CONFLICT_PREDICTION,
    EMERGENCE,
    PREDICTION,
    VOICE_STATE,
)
from deltaomega.security.roles import Role

log = logging.getLogger(__name__)

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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]
Cursor = Annotated[
    str | None, Query(description="Same as Last-Event-ID, for clients that cannot set it.")
]

_TIMESTAMPS: dict[str, frozenset[str]] = {}


def _iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


def _timestamp_fields(codec: AvroCodec, schema: str) -> frozenset[str]:
    """The record's ``timestamp-millis`` fields, read once from its schema."""
    found = _TIMESTAMPS.get(schema)
    if found is None:
        found = _TIMESTAMPS[schema] = frozenset(
            f["name"]
            for f in codec.schema(schema).expanded["fields"]
            if isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis"
        )
    return found


def _record_json(codec: AvroCodec, schema: str, record: dict[str, Any]) -> str:
    """The record as JSON with its epoch-millis timestamps as ISO-8601 UTC."""
    out = dict(record)
    for name in _timestamp_fields(codec, schema):
        out[name] = _iso(record[name])
    return json.dumps(out)


async def _feed(
    ctx: ApiContext,
    *,
    feed: str,
    topic: str,
    schema: str,
    event: str,
    last_event_id: str | None,
    cursor: str | None,
    keep: Callable[[dict[str, Any]], bool],
) -> EventSourceResponse:
    """Follow ``topic`` from the client's cursor (or from now), sending the ``schema``
    records that pass ``keep`` as ``event`` events, each with the position it leaves.

    ``feed`` labels the connected-clients gauge.
    """
    field = "Last-Event-ID" if last_event_id else "cursor"
    start = parse_cursor(last_event_id or cursor, field)
    tail = KafkaTail(ctx.settings, topic, start, field)
    await tail.__aenter__()  # open before answering, so "connected" means "positioned"
    clients = SSE_CLIENTS.labels(feed)

    async def events() -> AsyncIterator[bytes]:
        # One write per Kafka fetch, not per event: at 10,000 voices a window's close is
        # 10,000 events at once, and a send per event cost the worker's loop more than
        # building them.
        clients.inc()
        try:
            async for batch in tail.batches():
                chunk = []
                for position, message in batch:
                    try:
                        name, record = ctx.codec.decode(message.value)
                    except DecodeError as exc:
                        log.warning("skipping undecodable %s at %s: %s", event, position, exc)
                        continue
                    if name != schema or not keep(record):
                        continue
                    data = _record_json(ctx.codec, schema, record)
                    chunk.append(ServerSentEvent(data, event=event, id=position).encode())
                if chunk:
                    yield b"".join(chunk)
        finally:
            clients.dec()
            await tail.__aexit__(None, None, None)

    return EventSourceResponse(events(), ping=int(ctx.settings.sse_ping_seconds))


@router.get(
    "/voice-states",
    summary="Closed voice-state windows as they are emitted",
    response_description="text/event-stream; event 'voice-state', id = partition:offset pairs",
    **requires(Role.VIEWER),
)
async def stream_voice_states(
    ctx: ContextDep,
    voice_id: Name = None,
    last_event_id: LastEventId = None,
    cursor: Cursor = None,
) -> EventSourceResponse:
    return await _feed(
        ctx,
        feed="voice-states",
        topic=ctx.topics.voice_states,
        schema=VOICE_STATE,
        event="voice-state",
        last_event_id=last_event_id,
        cursor=cursor,
        keep=lambda r: not voice_id or r["voice_id"] == voice_id,
    )


@router.get(
    "/predictions",
    summary="Next-window predictions as they are made",
    response_description="text/event-stream; event 'prediction', id = partition:offset pairs",
    **requires(Role.VIEWER),
)
async def stream_predictions(
    ctx: ContextDep,
    voice_id: Name = None,
    last_event_id: LastEventId = None,
    cursor: Cursor = None,
) -> EventSourceResponse:
    return await _feed(
        ctx,
        feed="predictions",
        topic=ctx.topics.predictions,
        schema=PREDICTION,
        event="prediction",
        last_event_id=last_event_id,
        cursor=cursor,
        keep=lambda r: not voice_id or r["voice_id"] == voice_id,
    )


@router.get(
    "/conflicts",
    summary="Predicted conflicts per ordered pair as they are made",
    response_description="text/event-stream; event 'conflict', id = partition:offset pairs",
    **requires(Role.VIEWER),
)
async def stream_conflicts(
    ctx: ContextDep,
    min_probability: Annotated[float, Query(ge=0.0, le=1.0)] = 0.5,
    source: Name = None,
    target: Name = None,
    last_event_id: LastEventId = None,
    cursor: Cursor = None,
) -> EventSourceResponse:
    def keep(r: dict[str, Any]) -> bool:
        return (
            r["probability"] >= min_probability
            and (not source or r["source"] == source)
            and (not target or r["target"] == target)
        )

    return await _feed(
        ctx,
        feed="conflicts",
        topic=ctx.topics.conflicts,
        schema=CONFLICT_PREDICTION,
        event="conflict",
        last_event_id=last_event_id,
        cursor=cursor,
        keep=keep,
    )


@router.get(
    "/emergence",
    summary="System-level emergence scores per window as they are made",
    response_description="text/event-stream; event 'emergence', id = partition:offset pairs",
    **requires(Role.VIEWER),
)
async def stream_emergence(
    ctx: ContextDep,
    detected: bool | None = None,
    last_event_id: LastEventId = None,
    cursor: Cursor = None,
) -> EventSourceResponse:
    return await _feed(
        ctx,
        feed="emergence",
        topic=ctx.topics.emergence,
        schema=EMERGENCE,
        event="emergence",
        last_event_id=last_event_id,
        cursor=cursor,
        keep=lambda r: detected is None or r["detected"] == detected,
    )


@router.get(
    "/alerts",
    summary="Alerts as they are raised",
    response_description="text/event-stream; event 'alert', id = partition:offset pairs",
    **requires(Role.VIEWER),
)
async def stream_alerts(
    ctx: ContextDep,
    severity: Severity = None,
    rule: Name = None,
    last_event_id: LastEventId = None,
    cursor: Cursor = None,
) -> EventSourceResponse:
    wanted = canonical_severity(severity)
    return await _feed(
        ctx,
        feed="alerts",
        topic=ctx.topics.alerts,
        schema=ALERT,
        event="alert",
        last_event_id=last_event_id,
        cursor=cursor,
        keep=lambda r: (
            (wanted is None or r["severity"] == wanted) and (not rule or r["rule"] == rule)
        ),
    )
