"""Next-window predictions per voice, from the voice-state predictor."""

from __future__ import annotations

from fastapi import APIRouter

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep
from deltaomega.api.models import Prediction, PredictionList
from deltaomega.api.params import End, Limit, Name, Start, time_range
from deltaomega.security.roles import Role

router = APIRouter(prefix="/api/v1/predictions", tags=["predictions"])


@router.get(
    "",
    response_model=PredictionList,
    summary="Predictions, newest window first",
    **requires(Role.ANALYST),
)
async def list_predictions(
    ctx: ContextDep,
    voice_id: Name = None,
    start: Start = None,
    end: End = None,
    limit: Limit = 500,
) -> PredictionList:
    """Predictions made from windows starting in [start, end), optionally of one voice."""
    from_ms, to_ms = time_range(start, end, ctx.settings.api_default_range_ms)
    rows = await ctx.queries.predictions(voice_id, from_ms, to_ms, limit)
    return PredictionList(predictions=[Prediction.from_row(r) for r in rows])
