from __future__ import annotations

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
