from __future__ import annotations

import numpy as np

from deltaomega.control.parameters import DEFAULTS
from deltaomega.producer.simulator import SimulationConfig, VoiceDynamics
from deltaomega.schemas.validation import validate_interaction_event, validate_voice_event

T0 = 1_800_000_000_000


def run(seed: int, ticks: int = 50) -> tuple[list, list]:
    dynamics = VoiceDynamics(
        SimulationConfig(voices=6, rate=300, interaction_rate=60, seed=seed), T0
    )
    voices, interactions = [], []
    for _ in range(ticks):
        v, i = dynamics.tick(0.1)
        voices += v
        interactions += i
    return voices, interactions


def test_same_seed_same_events() -> None:
    assert run(5) == run(5)


def test_other_seed_other_events() -> None:
    assert run(5)[0] != run(6)[0]


def test_events_are_valid_and_in_time_order() -> None:
    voices, interactions = run(11)
    assert len(voices) > 1000 and len(interactions) > 100
    for event in voices:
        validate_voice_event(event.as_record())
    for event in interactions:
        validate_interaction_event(event.as_record())
    assert [e.ts for e in voices] == sorted(e.ts for e in voices)
    assert T0 <= voices[0].ts and voices[-1].ts < T0 + 5_000
    assert len({e.event_id for e in voices + interactions}) == len(voices) + len(interactions)


def test_default_parameters_change_nothing_and_a_zero_influence_silences_a_voice() -> None:
    config = SimulationConfig(voices=6, rate=300, interaction_rate=300, seed=5, episodes=False)
    plain = VoiceDynamics(config, 0)
    defaults = VoiceDynamics(config, 0)
    for voice in defaults.voice_ids:
        defaults.set_parameters(voice, DEFAULTS)
    for _ in range(20):
        assert plain.tick(0.5) == defaults.tick(0.5)

    muted = VoiceDynamics(config, 0)
    loud = max(range(6), key=lambda i: muted.base_strength[i].sum())
    voice = muted.voice_ids[loud]
    muted.set_parameters(voice, {**DEFAULTS, "influence_weight": 0.0})
    halved = VoiceDynamics(config, 0)
    halved.set_parameters(voice, {**DEFAULTS, "influence_weight": 0.5})
    sent_muted = sent_halved = sent_plain = 0
    plain = VoiceDynamics(config, 0)
    for _ in range(40):
        sent_muted += sum(e.source == voice for e in muted.tick(0.5)[1])
        sent_halved += sum(e.source == voice for e in halved.tick(0.5)[1])
        sent_plain += sum(e.source == voice for e in plain.tick(0.5)[1])
    assert sent_muted == 0
    assert 0 < sent_halved < sent_plain
    # the strength of what it still sends is scaled too
    assert np.allclose(halved.strength[loud], np.minimum(1.0, halved.base_strength[loud] * 0.5))


def test_a_high_activation_threshold_lowers_the_voices_activation() -> None:
    config = SimulationConfig(voices=4, rate=400, interaction_rate=0, seed=9, episodes=False)
    plain, raised = VoiceDynamics(config, 0), VoiceDynamics(config, 0)
    raised.set_parameters(raised.voice_ids[0], {**DEFAULTS, "activation_threshold": 1.0})
    for _ in range(200):
        plain.tick(0.1)
        raised.tick(0.1)
    assert raised.x[0, 1] < plain.x[0, 1] - 0.2
