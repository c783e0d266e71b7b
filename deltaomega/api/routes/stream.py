"""Server-Sent Events feeds, resumable with Last-Event-ID (see :mod:`deltaomega.api.sse`)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse

from deltaomega.api.deps import ContextDep
from deltaomega.api.sse import KafkaTail, parse_cursor
from deltaomega.errors import DecodeError
from deltaomega.metrics import SSE_CLIENTS
from deltaomega.schemas.records import VOICE_STATE

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/stream", tags=["stream"])


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _state_json(record: dict[str, Any]) -> str:
    out = dict(record)
    out["window_start"] = _iso(record["window_start"])
    out["window_end"] = _iso(record["window_end"])
    return json.dumps(out)


@router.get(
    "/voice-states",
    summary="Closed voice-state windows as they are emitted",
    response_description="text/event-stream; event 'voice-state', id = partition:offset pairs",
)
async def stream_voice_states(
    ctx: ContextDep,
    voice_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    cursor: Annotated[
        str | None, Query(description="Same as Last-Event-ID, for clients that cannot set it.")
    ] = None,
) -> EventSourceResponse:
    start = parse_cursor(last_event_id) if last_event_id else parse_cursor(cursor, "cursor")
    tail = KafkaTail(ctx.settings.kafka_bootstrap, ctx.topics.voice_states, start)
    await tail.__aenter__()  # open before answering, so "connected" means "positioned"

    async def events() -> AsyncIterator[dict[str, str]]:
        SSE_CLIENTS.labels("voice-states").inc()
        try:
            async for message in tail.records():
                try:
                    name, record = ctx.codec.decode(message.value)
                except DecodeError as exc:
                    log.warning("skipping undecodable state at %s: %s", tail.cursor(), exc)
                    continue
                if name != VOICE_STATE or (voice_id and record["voice_id"] != voice_id):
                    continue
                yield {"id": tail.cursor(), "event": "voice-state", "data": _state_json(record)}
        finally:
            SSE_CLIENTS.labels("voice-states").dec()
            await tail.__aexit__(None, None, None)

    return EventSourceResponse(events(), ping=int(ctx.settings.sse_ping_seconds))
