"""Shared request dependencies: the services the app was built with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from deltaomega.api.analysis_sql import AnalysisSql
from deltaomega.api.feed_hub import FeedHub
from deltaomega.api.pattern_analysis import PatternAnalyzer
from deltaomega.api.queries import Queries
from deltaomega.api.writes import KafkaWrites
from deltaomega.config import Settings
from deltaomega.control.runner import ControlPlane
from deltaomega.schemas.codec import AvroCodec
from deltaomega.security.audit import AuditTrail, Outcome
from deltaomega.security.gatekeeper import Gatekeeper
from deltaomega.streams.worker import Worker
from deltaomega.topics import Topics


@dataclass
class ApiContext:
    settings: Settings
    queries: Queries
    codec: AvroCodec
    topics: Topics
    #: who calls and whether they may
    gatekeeper: Gatekeeper
    #: where writes and refusals are recorded
    audit: AuditTrail
    #: the API's writes to Kafka (parameter changes)
    writes: KafkaWrites
    #: one tail per feed topic, shared by every SSE and WebSocket subscriber
    feeds: FeedHub
    #: analysts' SQL, on a connection of its own
    analysis: AnalysisSql
    #: the pattern classifier and emergence detector, on demand over a chosen range
    patterns: PatternAnalyzer
    #: The worker when it runs in this process (for readiness), else None.
    worker: Worker | None = None
    #: Topics and tables exist (the lifespan prepares them in the background).
    prepared: bool = False
    #: Why preparing stopped for good (topics that do not match the settings), if it did.
    setup_problem: str | None = None
    #: The control plane when it runs in this process.
    control: ControlPlane | None = None


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


ContextDep = Annotated[ApiContext, Depends(_context)]


def audit_request(
    ctx: ApiContext,
    request: HTTPConnection,
    action: str,
    target: str,
    outcome: Outcome,
    **extra: Any,
) -> None:
    """An audit row for this request: who (the guard's principal), its id and address."""
    ctx.audit.record(
        action,
        outcome,
        principal=request.state.principal,
        target=target,
        request_id=request.state.request_id,
        client=request.client.host if request.client else "",
        **extra,
    )
