"""Shared request dependencies: the services the app was built with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from deltaomega.api.queries import Queries
from deltaomega.config import Settings
from deltaomega.schemas.codec import AvroCodec
from deltaomega.topics import Topics


@dataclass
class ApiContext:
    settings: Settings
    queries: Queries
    codec: AvroCodec
    topics: Topics
    #: The Faust app when the worker runs in this process (for readiness), else None.
    worker: Any | None = None


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


ContextDep = Annotated[ApiContext, Depends(_context)]
