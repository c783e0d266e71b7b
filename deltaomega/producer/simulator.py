"""Voice dynamics: coupled mean-reverting processes whose coupling is the interaction graph.

Each voice *i* carries x_i = (temperature, activation, stress, influence). Every tick of
length dt (seconds) the state moves by an Euler–Maruyama step of

    dx_i = θ (μ_i − x_i) dt + C_i(x) dt + σ √dt ξ,      ξ ~ N(0, I)

where μ_i is the voice's own baseline and C_i is the pull of the voices linked to it.
The graph holds directed links j → i with a kind and a strength s_ji in [0.2, 0.9]:

* COOPERATION, COMPLEMENTATION, AMPLIFICATION (supportive, sign +1) pull the target's
  activation toward the source's: +κ s (a_j − a_i); AMPLIFICATION also adds +κ s a_j / 2;
* COMPETITION, SUPPRESSION (antagonistic, sign −1) raise the target's stress by
  κ s a_j; SUPPRESSION also lowers its activation by κ s a_j / 2;
* temperature follows stress (+0.5 κ (stress − 0.3)); influence follows out-strength.

Values are clipped to their valid ranges. Every link fires interaction events at a
Poisson rate proportional to its strength, with observed strength s·(0.5 + a_j) plus
noise, clipped to [0, 1]. Voice telemetry is a Poisson stream per voice. Everything is
drawn from one ``numpy.random.Generator``, so a seed fixes the whole event sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deltaomega.schemas.records import INTERACTION_KINDS, InteractionEvent, VoiceEvent

SUPPORTIVE = np.array([1, -1, 1, -1, 1])  # sign per kind, in INTERACTION_KINDS order
LOW = np.array([0.0, 0.0, 0.0, 0.0])
HIGH = np.array([2.0, 1.0, 1.0, 1.0])


@dataclass(frozen=True)
class SimulationConfig:
    voices: int = 8
    rate: float = 200.0  # voice events per second, all voices together
    interaction_rate: float = 40.0  # interaction events per second, all links together
    theta: float = 0.5
    kappa: float = 0.6
    sigma: float = 0.08
    link_probability: float = 0.35
    seed: int = 0


class VoiceDynamics:
    """The simulated system; :meth:`tick` advances it and returns the events it emitted."""

    def __init__(self, config: SimulationConfig, start_ms: int) -> None:
        if config.voices < 2:
            raise ValueError("the simulation needs at least two voices")
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        n = config.voices
        width = max(2, len(str(n - 1)))
        self.voice_ids = [f"voice-{i:0{width}d}" for i in range(n)]
        self.mu = np.column_stack(
            [
                self.rng.uniform(0.5, 1.1, n),
                self.rng.uniform(0.3, 0.7, n),
                self.rng.uniform(0.1, 0.4, n),
                self.rng.uniform(0.2, 0.6, n),
            ]
        )
        self.x = self.mu.copy()
        linked = self.rng.random((n, n)) < config.link_probability
        np.fill_diagonal(linked, False)
        self.kind = np.where(linked, self.rng.integers(0, len(INTERACTION_KINDS), (n, n)), -1)
        self.strength = np.where(linked, self.rng.uniform(0.2, 0.9, (n, n)), 0.0)
        self.now_ms = start_ms
        self._seq = 0

    def _next_id(self) -> str:
        self._seq += 1
        return f"sim-{self.config.seed}-{self._seq:010d}"

    def _step(self, dt: float) -> None:
        cfg, x = self.config, self.x
        act = x[:, 1]
        sign = np.where(self.kind >= 0, SUPPORTIVE[np.maximum(self.kind, 0)], 0)
        s = self.strength  # s[j, i]: link j → i
        support = s * (sign > 0)
        antagonism = s * (sign < 0)
        amplify = s * (self.kind == 4)
        suppress = s * (self.kind == 3)
        coupling = np.zeros_like(x)
        coupling[:, 1] = (
            support.T @ act
            - support.sum(axis=0) * act
            + 0.5 * amplify.T @ act
            - 0.5 * suppress.T @ act
        )
        coupling[:, 2] = antagonism.T @ act
        coupling[:, 0] = 0.5 * (x[:, 2] - 0.3)
        coupling[:, 3] = s.sum(axis=1) / max(1.0, float(s.sum(axis=1).max())) - x[:, 3]
        noise = self.rng.standard_normal(x.shape)
        x += cfg.theta * (self.mu - x) * dt + cfg.kappa * coupling * dt
        x += cfg.sigma * np.sqrt(dt) * noise
        np.clip(x, LOW, HIGH, out=x)

    def tick(self, dt: float) -> tuple[list[VoiceEvent], list[InteractionEvent]]:
        """Advance by ``dt`` seconds; events carry times inside the tick, in order."""
        cfg = self.config
        self._step(dt)
        start, span = self.now_ms, max(1, int(dt * 1000))
        self.now_ms += span
        n = len(self.voice_ids)
        voice_events: list[VoiceEvent] = []
        counts = self.rng.poisson(cfg.rate * dt / n, n)
        for i in np.flatnonzero(counts):
            offsets = np.sort(self.rng.integers(0, span, counts[i]))
            jitter = self.rng.normal(0.0, 0.01, (counts[i], 4))
            values = np.clip(self.x[i] + jitter, LOW, HIGH)
            for off, row in zip(offsets.tolist(), values.tolist(), strict=True):
                voice_events.append(
                    VoiceEvent(self._next_id(), self.voice_ids[i], start + off, *row)
                )
        interactions: list[InteractionEvent] = []
        total = float(self.strength.sum())
        if total > 0 and cfg.interaction_rate > 0:
            fires = self.rng.poisson(cfg.interaction_rate * dt * self.strength / total)
            for j, i in zip(*np.nonzero(fires), strict=True):
                for _ in range(int(fires[j, i])):
                    observed = self.strength[j, i] * (0.5 + self.x[j, 1])
                    observed = float(np.clip(observed + self.rng.normal(0, 0.03), 0.0, 1.0))
                    interactions.append(
                        InteractionEvent(
                            self._next_id(),
                            start + int(self.rng.integers(0, span)),
                            self.voice_ids[j],
                            self.voice_ids[i],
                            INTERACTION_KINDS[int(self.kind[j, i])],
                            observed,
                        )
                    )
        voice_events.sort(key=lambda e: e.ts)
        interactions.sort(key=lambda e: e.ts)
        return voice_events, interactions
