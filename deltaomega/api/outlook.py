"""The system's outlook for the coming windows, from the newest tick's model outputs.

Each voice's predicted state, each pair's conflict probability within the conflict horizon
and the emergence detector's probability, with what they add up to for the system. Harmony
is not forecast: no model predicts the interaction matrix itself, so the outlook does not
claim a predicted harmony (the monitor reports the measured one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deltaomega.api.queries import Queries

#: A voice is at risk when its next stress mean is more likely than not over the alert level.
AT_RISK = 0.5
#: Rows one tick may hold (voices, pairs); more than any system the pipeline is sized for.
_TICK_ROWS = 1_000_000


@dataclass(frozen=True)
class Outlook:
    states: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    emergence: dict[str, Any] | None

    @property
    def window_start(self) -> int | None:
        starts = [r["window_start"] for r in (*self.states[:1], *self.conflicts[:1])]
        if self.emergence is not None:
            starts.append(self.emergence["window_start"])
        return max(starts, default=None)

    @property
    def model_version(self) -> str | None:
        for rows in (self.states, self.conflicts, [self.emergence] if self.emergence else []):
            if rows:
                return str(rows[0]["model_version"])
        return None

    def at_risk(self) -> int:
        return sum(1 for s in self.states if s["risk"] >= AT_RISK)

    def mean_predicted_stress(self) -> float | None:
        if not self.states:
            return None
        return float(sum(s["stress_pred"] for s in self.states)) / len(self.states)

    def expected_conflicts(self) -> float:
        """Expected number of pairs in conflict within the horizon: the sum of their
        probabilities (linearity of expectation; no independence needed)."""
        return float(sum(c["probability"] for c in self.conflicts))

    def riskiest(self, limit: int) -> list[dict[str, Any]]:
        return sorted(self.states, key=lambda s: (-s["risk"], s["voice_id"]))[:limit]

    def likeliest_conflicts(self, limit: int) -> list[dict[str, Any]]:
        order = sorted(self.conflicts, key=lambda c: (-c["probability"], c["source"], c["target"]))
        return order[:limit]


async def system_outlook(queries: Queries) -> Outlook:
    """The newest window of each output table (metadata reads), then that window's rows."""
    states: list[dict[str, Any]] = []
    conflicts: list[dict[str, Any]] = []
    emergence: dict[str, Any] | None = None
    newest = await queries.newest_window("predictions")
    if newest is not None:
        states = await queries.predictions(None, newest, newest + 1, _TICK_ROWS)
    newest = await queries.newest_window("conflict_predictions")
    if newest is not None:
        conflicts = await queries.conflict_predictions(
            0.0, None, None, newest, newest + 1, _TICK_ROWS
        )
    newest = await queries.newest_window("emergence")
    if newest is not None:
        found = await queries.emergence(None, newest, newest + 1, 1)
        emergence = found[0] if found else None
    return Outlook(states, conflicts, emergence)
