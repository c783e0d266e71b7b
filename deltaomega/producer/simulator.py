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

Operators' parameters (:meth:`VoiceDynamics.set_parameters`, fed by a control listener)
bend the coupling: a link j → i counts ``influence_weight_j × sensitivity_i`` times its
strength (in the pull and in the interaction events it fires), and a voice's activation
baseline falls by ``activation_threshold − 0.5``. The defaults (1, 1, 0.5) change nothing.

Values are clipped to their valid ranges. Every link fires interaction events at a
Poisson rate proportional to its strength, with observed strength s·(0.5 + a_j) plus
noise, clipped to [0, 1]. Voice telemetry is a Poisson stream per voice. Everything is
drawn from one ``numpy.random.Generator``, so a seed fixes the whole event sequence.

With ``episodes`` on, a :class:`~deltaomega.producer.episodes.Scenario` bends these
parameters during labelled regimes (conflicts, polarisation, an emergence onset …);
:meth:`VoiceDynamics.tick_arrays` gives the events as arrays for fast training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deltaomega.producer.episodes import (
    CASCADE_STEP_MS,
    OSCILLATION_PERIOD_MS,
    Episode,
    Scenario,
)
from deltaomega.schemas.records import INTERACTION_KINDS, KIND_CODE, InteractionEvent, VoiceEvent

SUPPORTIVE = np.array([1, -1, 1, -1, 1])  # sign per kind, in INTERACTION_KINDS order
#: the sign of a link by its kind code + 1 (-1, no link: 0), one gather per step
_SIGN = np.concatenate([[0], SUPPORTIVE])
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
    episodes: bool = True


class VoiceDynamics:
    """The simulated system; :meth:`tick` advances it and returns the events it emitted."""

    def __init__(
        self, config: SimulationConfig, start_ms: int, scenario: Scenario | None = None
    ) -> None:
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
        self.base_kind = np.where(linked, self.rng.integers(0, len(INTERACTION_KINDS), (n, n)), -1)
        self.base_strength = np.where(linked, self.rng.uniform(0.2, 0.9, (n, n)), 0.0)
        self.kind = self.base_kind.copy()
        self.strength = self.base_strength.copy()
        self.kappa = config.kappa
        self.now_ms = start_ms
        self._seq = 0
        self._index = {v: i for i, v in enumerate(self.voice_ids)}
        if scenario is None and config.episodes:
            scenario = Scenario(self.voice_ids, start_ms, config.seed)
        self.scenario = scenario
        self._emerged: set[int] = set()
        #: operators' parameters per voice (set from a control listener's thread)
        self.influence_weight = np.ones(n)
        self.sensitivity = np.ones(n)
        self.activation_threshold = np.full(n, 0.5)

    def set_parameters(self, voice_id: str, parameters: dict[str, Any]) -> None:
        """A voice's parameters now (a control listener's callback); unknown voices are
        not simulated here and are ignored."""
        i = self._index.get(voice_id)
        if i is None:
            return
        self.influence_weight[i] = parameters["influence_weight"]
        self.sensitivity[i] = parameters["sensitivity"]
        self.activation_threshold[i] = parameters["activation_threshold"]

    def _next_id(self) -> str:
        self._seq += 1
        return f"sim-{self.config.seed}-{self._seq:010d}"

    def _apply_episodes(self, t_ms: int) -> np.ndarray:
        """Set this step's links and coupling from the active episodes and the operators'
        parameters; return baselines."""
        mu = self.mu.copy()
        self.kind = self.base_kind.copy()
        self.strength = self.base_strength.copy()
        if self.scenario is not None:
            self.scenario.plan_until(t_ms + 1)
            for episode in self.scenario.active(t_ms):
                self._apply(episode, t_ms, mu)
        if not (np.all(self.influence_weight == 1.0) and np.all(self.sensitivity == 1.0)):
            weights = self.influence_weight[:, None] * self.sensitivity[None, :]
            self.strength = np.minimum(1.0, self.strength * weights)
        mu[:, 1] -= self.activation_threshold - 0.5
        np.clip(mu, LOW, HIGH, out=mu)
        return mu

    def _apply(self, episode: Episode, t_ms: int, mu: np.ndarray) -> None:
        idx = [self._index[v] for v in episode.voices]
        p = episode.progress(t_ms)
        kind, strength = self.kind, self.strength
        if episode.regime == "rising_tension":
            mu[idx, 2] += 0.35 * p
            block = np.ix_(idx, idx)
            antagonistic = np.isin(
                kind[block], (KIND_CODE["COMPETITION"], KIND_CODE["SUPPRESSION"])
            )
            strength[block] = np.where(
                antagonistic, np.minimum(1.0, strength[block] * (1 + p)), strength[block]
            )
        elif episode.regime == "conflict":
            a, b = idx
            kind[a, b], kind[b, a] = KIND_CODE["COMPETITION"], KIND_CODE["SUPPRESSION"]
            strength[a, b] = strength[b, a] = 0.3 + 0.6 * p
            mu[[a, b], 2] += 0.3 * p
        elif episode.regime == "polarisation":
            group = np.zeros(len(self.voice_ids), dtype=bool)
            group[idx] = True
            same = group[:, None] == group[None, :]
            kind[:] = np.where(same, KIND_CODE["COOPERATION"], KIND_CODE["COMPETITION"])
            strength[:] = 0.6
            np.fill_diagonal(kind, -1)
            np.fill_diagonal(strength, 0.0)
        elif episode.regime == "dominance":
            (v,) = idx
            others = [i for i in range(len(self.voice_ids)) if i != v]
            kind[v, others] = KIND_CODE["SUPPRESSION"]
            strength[v, others] = 0.8
            mu[v, 1] = min(1.0, mu[v, 1] + 0.3)
            mu[v, 3] = 0.95
        elif episode.regime == "oscillation":
            phase = 2 * np.pi * (t_ms - episode.start_ms) / OSCILLATION_PERIOD_MS
            mu[idx, 1] += 0.25 * np.sin(phase)
            mu[idx, 2] += 0.15 * np.sin(phase + np.pi / 2)
        elif episode.regime == "cascade":
            reached = (t_ms - episode.start_ms) // CASCADE_STEP_MS + 1
            mu[idx[: int(reached)], 2] += 0.45
        elif episode.regime == "emergence" and episode.start_ms not in self._emerged:
            self._emerge()
            self._emerged.add(episode.start_ms)
            self.kind = self.base_kind.copy()
            self.strength = self.base_strength.copy()
        np.clip(mu, LOW, HIGH, out=mu)

    def _emerge(self) -> None:
        """Redraw the link graph for good: the coupling structure of the system changes."""
        n, rng = len(self.voice_ids), self.rng
        linked = rng.random((n, n)) < min(0.8, self.config.link_probability * 1.6)
        np.fill_diagonal(linked, False)
        self.base_kind = np.where(linked, rng.integers(0, len(INTERACTION_KINDS), (n, n)), -1)
        self.base_strength = np.where(linked, rng.uniform(0.3, 0.95, (n, n)), 0.0)
        self.kappa = self.config.kappa * float(rng.uniform(1.2, 1.8))

    def _step(self, dt: float) -> None:
        cfg, x = self.config, self.x
        mu = self._apply_episodes(self.now_ms)
        act = x[:, 1]
        sign = _SIGN[self.kind + 1]
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
        out_strength = s.sum(axis=1)
        coupling[:, 3] = out_strength / max(1.0, float(out_strength.max())) - x[:, 3]
        noise = self.rng.standard_normal(x.shape)
        x += cfg.theta * (mu - x) * dt + self.kappa * coupling * dt
        x += cfg.sigma * np.sqrt(dt) * noise
        np.clip(x, LOW, HIGH, out=x)

    def tick_arrays(self, dt: float) -> tuple[TickVoices, TickInteractions]:
        """Advance by ``dt`` seconds; the events as arrays (times inside the tick, unsorted)."""
        cfg = self.config
        self._step(dt)
        start, span = self.now_ms, max(1, int(dt * 1000))
        self.now_ms += span
        n = len(self.voice_ids)
        counts = self.rng.poisson(cfg.rate * dt / n, n)
        voice = np.repeat(np.arange(n), counts)
        ts = start + self.rng.integers(0, span, len(voice))
        jitter = self.rng.normal(0.0, 0.01, (len(voice), 4))
        values = np.clip(self.x[voice] + jitter, LOW, HIGH)
        voices = TickVoices(voice, ts, values)
        total = float(self.strength.sum())
        if total > 0 and cfg.interaction_rate > 0:
            rate = cfg.interaction_rate * dt * self.strength / total
            # Only linked cells can fire: a Poisson draw of rate 0 is 0 and takes no random
            # numbers, so drawing over those cells alone (in the same order) gives the same
            # events as over the whole matrix, at the cost of the links, not of n².
            cells = np.flatnonzero(rate)
            drawn = self.rng.poisson(rate.ravel()[cells])
            fired = drawn > 0
            src, tgt = np.divmod(cells[fired], n)
            reps = drawn[fired]
            src, tgt = np.repeat(src, reps), np.repeat(tgt, reps)
            observed = self.strength[src, tgt] * (0.5 + self.x[src, 1])
            observed = np.clip(observed + self.rng.normal(0, 0.03, len(src)), 0.0, 1.0)
            its = start + self.rng.integers(0, span, len(src))
            interactions = TickInteractions(src, tgt, self.kind[src, tgt], its, observed)
        else:
            empty = np.zeros(0, dtype=np.int64)
            interactions = TickInteractions(empty, empty, empty, empty, np.zeros(0))
        return voices, interactions

    def tick(self, dt: float) -> tuple[list[VoiceEvent], list[InteractionEvent]]:
        """Advance by ``dt`` seconds; events carry times inside the tick, in order."""
        voices, links = self.tick_arrays(dt)
        voice_order = np.argsort(voices.ts, kind="stable")
        voice_events = [
            VoiceEvent(self._next_id(), self.voice_ids[i], ts, *row)
            for i, ts, row in zip(
                voices.voice[voice_order].tolist(),
                voices.ts[voice_order].tolist(),
                voices.values[voice_order].tolist(),
                strict=True,
            )
        ]
        link_order = np.argsort(links.ts, kind="stable")
        interactions = [
            InteractionEvent(
                self._next_id(), ts, self.voice_ids[j], self.voice_ids[i], INTERACTION_KINDS[k], s
            )
            for j, i, k, ts, s in zip(
                links.source[link_order].tolist(),
                links.target[link_order].tolist(),
                links.kind[link_order].tolist(),
                links.ts[link_order].tolist(),
                links.strength[link_order].tolist(),
                strict=True,
            )
        ]
        return voice_events, interactions


@dataclass(frozen=True)
class TickVoices:
    voice: np.ndarray  # voice index per event
    ts: np.ndarray
    values: np.ndarray  # (events, 4) in METRICS order


@dataclass(frozen=True)
class TickInteractions:
    source: np.ndarray
    target: np.ndarray
    kind: np.ndarray
    ts: np.ndarray
    strength: np.ndarray
