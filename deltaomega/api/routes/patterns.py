"""The system's interaction pattern per window, from the pattern classifier, and pictures of
a window for reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from deltaomega.api import pictures
from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep
from deltaomega.api.matrix import build_matrix
from deltaomega.api.models import Pattern, PatternList
from deltaomega.api.params import End, Limit, Start, millis, time_range
from deltaomega.api.pattern_analysis import analyse_range
from deltaomega.errors import NotFoundError
from deltaomega.security.rate_limits import RouteClass
from deltaomega.security.roles import Role
from deltaomega.threads import in_thread

router = APIRouter(prefix="/api/v1/patterns", tags=["patterns"])


@router.get(
    "",
    response_model=PatternList,
    summary="Pattern classes, newest window first",
    **requires(Role.ANALYST),
)
async def list_patterns(
    ctx: ContextDep, start: Start = None, end: End = None, limit: Limit = 500
) -> PatternList:
    """Pattern, complexity and novelty of windows starting in [start, end)."""
    from_ms, to_ms = time_range(start, end, ctx.settings.api_default_range_ms)
    rows = await ctx.queries.patterns(from_ms, to_ms, limit)
    return PatternList(patterns=[Pattern.from_row(r) for r in rows])


SVG = "image/svg+xml"
_PICTURE = requires(Role.ANALYST, RouteClass.READ, 404)
_PICTURE["responses"][200] = {"content": {SVG: {"schema": {"type": "string"}}}}


@router.get(
    "/visualize",
    summary="An SVG of one interaction window: its network or its heat map",
    response_class=Response,
    **_PICTURE,
)
async def visualize(
    ctx: ContextDep,
    window_start: Annotated[datetime, Query(description="The interaction window's start.")],
    view: Literal["network", "heatmap"] = "network",
) -> Response:
    """The links of the window starting at ``window_start`` (404 when it has none), titled
    with the pattern the classifier saw in the voice window starting then, if any."""
    start = millis(window_start)
    assert start is not None
    rows = await ctx.queries.interaction_totals_between(
        start, start + ctx.settings.interaction_window_ms
    )
    if not rows:
        raise NotFoundError("interaction window", window_start.isoformat())
    seen = await ctx.queries.patterns(start, start + 1, 1)
    title = f"{window_start.isoformat()}" + (f" — {seen[0]['pattern']}" if seen else "")
    if view == "network":
        picture = await in_thread(pictures.network_svg, rows, title)
    else:
        picture = await in_thread(pictures.heatmap_svg, build_matrix(rows), title)
    return Response(picture, media_type=SVG)


class PatternAnalysisRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: datetime = Field(description="The first window analysed starts here or later.")
    end: datetime = Field(description="Windows starting before this are analysed.")


class AnalysedWindow(BaseModel):
    window_start: datetime
    voices: int
    pattern: str = Field(description="The pattern classifier's class.")
    confidence: float
    complexity: float
    novelty: float
    emergence_probability: float
    emergence_detected: bool = Field(description="At or over the emergence alert threshold.")
    emergence_type: str


class PatternChange(BaseModel):
    window_start: datetime
    before: str
    after: str


class PatternAnalysis(BaseModel):
    model_version: str = Field(description="The active version, which ran on every window.")
    start: datetime
    end: datetime
    windows: list[AnalysedWindow] = Field(description="Oldest first; windows with states only.")
    pattern_counts: dict[str, int] = Field(description="Windows per class, most frequent first.")
    changes: list[PatternChange] = Field(description="Where the class changed.")
    emergent_windows: int


@router.post(
    "/analyze",
    response_model=PatternAnalysis,
    summary="Classify patterns and detect emergence over a chosen range, on demand",
    **requires(Role.ANALYST, RouteClass.MONITOR, 503),
)
async def analyze_patterns(ctx: ContextDep, body: PatternAnalysisRequest) -> PatternAnalysis:
    """The active model version on the stored states of every window in [start, end), each
    seen with the stored windows before it as the worker sees them."""
    start, end = millis(body.start), millis(body.end)
    assert start is not None and end is not None
    result = await analyse_range(ctx, start, end)
    return PatternAnalysis(
        model_version=result.model_version,
        start=body.start,
        end=body.end,
        windows=[
            AnalysedWindow(
                window_start=_at(w.pattern["window_start"]),
                voices=w.emergence["voices"],
                pattern=w.pattern["pattern"],
                confidence=w.pattern["confidence"],
                complexity=w.pattern["complexity"],
                novelty=w.pattern["novelty"],
                emergence_probability=w.emergence["probability"],
                emergence_detected=w.emergence["detected"],
                emergence_type=w.emergence["type"],
            )
            for w in result.windows
        ],
        pattern_counts=result.pattern_counts(),
        changes=[
            PatternChange(window_start=_at(s), before=b, after=a) for s, b, a in result.changes()
        ],
        emergent_windows=sum(w.emergence["detected"] for w in result.windows),
    )


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
