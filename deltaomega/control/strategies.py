"""What each orchestration strategy sets on its target voices, from their parameters now.

- direct: the parameters given, as given, on every target.
- adaptive: damps the targets' coupling: influence_weight × ``scale`` (0–1, default 0.5)
  and sensitivity × ``scale``, so conflicting voices drive each other less.
- emergency: mutes the targets: influence_weight 0 and activation_threshold 1.
- evolution: a step toward the parameters given: each moves ``step`` (0–1, default 0.25)
  of the way from where it is.

Values are worked out when the request is made, so approval and rollback act on exactly
what was proposed; each stays within its range (sensitivity and influence_weight 0–2,
activation_threshold 0–1).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deltaomega.control.parameters import TUNABLE

RANGES = {"sensitivity": 2.0, "activation_threshold": 1.0, "influence_weight": 2.0}
DEFAULT_SCALE = 0.5
DEFAULT_STEP = 0.25


class Strategy(StrEnum):
    DIRECT = "direct"
    ADAPTIVE = "adaptive"
    EMERGENCY = "emergency"
    EVOLUTION = "evolution"


def planned(
    strategy: Strategy,
    current: dict[str, Any],
    given: dict[str, float],
    options: dict[str, float],
) -> dict[str, float]:
    """The parameters ``strategy`` sets on one voice whose parameters are ``current``."""
    if strategy is Strategy.DIRECT:
        out = {k: v for k, v in given.items() if k in TUNABLE}
    elif strategy is Strategy.ADAPTIVE:
        scale = options.get("scale", DEFAULT_SCALE)
        out = {
            "influence_weight": current["influence_weight"] * scale,
            "sensitivity": current["sensitivity"] * scale,
        }
    elif strategy is Strategy.EMERGENCY:
        out = {"influence_weight": 0.0, "activation_threshold": 1.0}
    else:
        step = options.get("step", DEFAULT_STEP)
        out = {k: current[k] + (v - current[k]) * step for k, v in given.items() if k in TUNABLE}
    return {k: round(min(max(v, 0.0), RANGES[k]), 6) for k, v in out.items()}


class OrchestrationTargets(BaseModel):
    """Parameters for the direct and evolution strategies (ignored by the others)."""

    model_config = ConfigDict(extra="forbid")

    sensitivity: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    activation_threshold: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    influence_weight: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)


class StrategyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scale: float | None = Field(
        default=None, gt=0, le=1, allow_inf_nan=False, description="adaptive: 0–1 (0.5)."
    )
    step: float | None = Field(
        default=None, gt=0, le=1, allow_inf_nan=False, description="evolution: 0–1 (0.25)."
    )
