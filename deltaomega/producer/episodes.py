"""Labelled regimes for the simulator: the ground truth the models are trained against.

A :class:`Scenario` lays episodes end to end, each followed by a calm gap, from its own
random generator (so the base dynamics of a seed do not change when episodes are on).
While an episode is active it bends the dynamics of the voices it names:

* ``rising_tension``: their stress baseline climbs by up to +0.35 and the antagonistic
  links among them strengthen (×2 at the end);
* ``conflict``: the pair (a, b) turns on each other, a→b COMPETITION and b→a SUPPRESSION,
  strength ramping 0.3 → 0.9, and both their stress baselines rise by up to +0.3;
* ``polarisation``: the voices split into the named group and the rest; links inside a
  group become COOPERATION, across groups COMPETITION, at strength 0.6;
* ``dominance``: the named voice suppresses every other voice (strength 0.8) while its
  influence and activation baselines go up;
* ``oscillation``: activation and stress baselines swing with a 40 s period;
* ``cascade``: a stress shock (+0.45) reaches the named voices one after another, 12 s apart;
* ``emergence``: at onset the coupling structure changes for good — the link graph is
  redrawn and the coupling constant changes (×1.2–1.8 of the base). The episode covers
  the onset period a detector should flag (its end is the onset plus 30 s).

Between episodes the system is ``calm``. Times are event-time milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

REGIMES: tuple[str, ...] = (
    "calm",
    "rising_tension",
    "conflict",
    "polarisation",
    "dominance",
    "oscillation",
    "cascade",
    "emergence",
)
#: Regimes a scenario draws episodes from (calm fills the gaps).
EPISODE_REGIMES = REGIMES[1:]
OSCILLATION_PERIOD_MS = 40_000
CASCADE_STEP_MS = 12_000
EMERGENCE_ONSET_MS = 30_000


@dataclass(frozen=True)
class Episode:
    regime: str
    start_ms: int
    end_ms: int
    voices: tuple[str, ...]

    def active(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms

    def progress(self, t_ms: int) -> float:
        return min(1.0, max(0.0, (t_ms - self.start_ms) / max(1, self.end_ms - self.start_ms)))

    def to_json(self) -> str:
        record = asdict(self)
        record["voices"] = list(self.voices)
        return json.dumps(record)

    @classmethod
    def from_json(cls, line: str) -> Episode:
        record = json.loads(line)
        return cls(record["regime"], record["start_ms"], record["end_ms"], tuple(record["voices"]))


@dataclass
class Scenario:
    """Episodes planned ahead of the clock, deterministic for a seed."""

    voice_ids: list[str]
    start_ms: int
    seed: int
    min_episode_s: float = 60.0
    max_episode_s: float = 120.0
    min_gap_s: float = 30.0
    max_gap_s: float = 70.0
    episodes: list[Episode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng([self.seed, 0xE915])
        self._planned_until = self.start_ms + int(self._rng.uniform(20, 40) * 1000)

    @classmethod
    def fixed(cls, voice_ids: list[str], start_ms: int, episodes: list[Episode]) -> Scenario:
        """A scenario of exactly these episodes (tests, reproducible demos)."""
        scenario = cls(voice_ids, start_ms, seed=0, episodes=sorted(episodes, key=_start))
        scenario._planned_until = 2**62
        return scenario

    def plan_until(self, t_ms: int) -> list[Episode]:
        """Plan episodes up to ``t_ms``; returns the ones added."""
        added = []
        while self._planned_until <= t_ms:
            episode = self._draw(self._planned_until)
            self.episodes.append(episode)
            added.append(episode)
            gap = self._rng.uniform(self.min_gap_s, self.max_gap_s)
            self._planned_until = episode.end_ms + int(gap * 1000)
        return added

    def _draw(self, start: int) -> Episode:
        rng, ids = self._rng, self.voice_ids
        n = len(ids)
        regime = str(rng.choice(EPISODE_REGIMES))
        length = int(rng.uniform(self.min_episode_s, self.max_episode_s) * 1000)
        order = [ids[i] for i in rng.permutation(n)]
        if regime == "conflict":
            voices = tuple(order[:2])
        elif regime == "dominance":
            voices = tuple(order[:1])
        elif regime == "polarisation":
            voices = tuple(sorted(order[: n // 2]))
        elif regime == "cascade":
            voices = tuple(order[: max(2, min(n, 4))])
        elif regime == "emergence":
            voices = tuple(ids)
            length = EMERGENCE_ONSET_MS
        else:
            voices = tuple(sorted(order[: max(2, n // 2)]))
        return Episode(regime, start, start + length, voices)

    def active(self, t_ms: int) -> list[Episode]:
        return [e for e in self.episodes if e.active(t_ms)]

    def begun(self, t_ms: int) -> list[Episode]:
        return [e for e in self.episodes if e.start_ms <= t_ms]

    def regime_at(self, t_ms: int) -> str:
        active = self.active(t_ms)
        return active[0].regime if active else "calm"


def _start(episode: Episode) -> int:
    return episode.start_ms


def write_episodes(episodes: Iterable[Episode], out: IO[str]) -> None:
    for episode in episodes:
        out.write(episode.to_json() + "\n")
    out.flush()


def read_episodes(path: Path) -> list[Episode]:
    with path.open() as lines:
        return [Episode.from_json(line) for line in lines if line.strip()]
