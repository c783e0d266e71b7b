"""The voices' side of the control path against the real broker: a listener starts from the
compacted topic's current state, follows later changes, and gets commands live."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from deltaomega.config import Settings
from deltaomega.producer import ControlListener
from deltaomega.schemas.records import PARAMETER_CHANGE, VOICE_COMMAND
from deltaomega.topics import Topics, ensure_topics
from tests.conftest import wait_for
from tests.kafka_tools import produce_avro


def _change(voice: str, n: int, **values: Any) -> dict[str, Any]:
    return {
        "change_id": f"c{n}",
        "voice_id": voice,
        "sensitivity": None,
        "activation_threshold": None,
        "influence_weight": None,
        "context_modifiers": {},
        "rationale": "test",
        "expected_duration_minutes": None,
        "monitoring_enabled": True,
        "requested_by": "tester",
        "requested_at": 1_800_000_000_000 + n,
        "expires_at": None,
        "reverts": None,
    } | values


def test_a_listener_starts_from_the_current_state_and_follows_changes_and_commands(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    ensure_topics(settings)
    topics = Topics.from_settings(settings)

    def send(topic: str, key: str, schema: str, record: dict[str, Any]) -> None:
        produce_avro(settings, topic, key, schema, record)

    send(topics.parameters, "a", PARAMETER_CHANGE, _change("a", 1, influence_weight=0.4))
    send(topics.parameters, "a", PARAMETER_CHANGE, _change("a", 2, sensitivity=1.5))
    send(topics.parameters, "b", PARAMETER_CHANGE, _change("b", 3, activation_threshold=0.9))
    send(topics.parameters, "z", PARAMETER_CHANGE, _change("z", 4, sensitivity=0.1))

    seen: list[tuple[str, dict[str, Any]]] = []
    commands: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_parameters(voice: str, parameters: dict[str, Any]) -> None:
        with lock:
            seen.append((voice, parameters))

    with ControlListener(settings, on_parameters, commands.append, voices={"a", "b"}) as listener:
        assert listener.wait_caught_up(20)
        assert listener.parameters == {
            "a": {
                "sensitivity": 1.5,
                "activation_threshold": 0.5,
                "influence_weight": 0.4,
                "context_modifiers": {},
            },
            "b": {
                "sensitivity": 1.0,
                "activation_threshold": 0.9,
                "influence_weight": 1.0,
                "context_modifiers": {},
            },
        }
        assert sorted(voice for voice, _ in seen) == ["a", "a", "b"]  # z is not one of ours
        # a voice's changes arrive in order, each with the parameters it leaves
        assert [p["sensitivity"] for v, p in seen if v == "a"] == [1.0, 1.5]
        assert [p["influence_weight"] for v, p in seen if v == "a"] == [0.4, 0.4]
        send(topics.parameters, "b", PARAMETER_CHANGE, _change("b", 5, influence_weight=0.0))
        wait_for(lambda: len(seen) == 4, 20, "the live change")
        assert seen[3] == ("b", {**listener.parameters["b"], "influence_weight": 0.0})
        command = {
            "command_id": "k1",
            "voice_id": "a",
            "orchestration_id": "o1",
            "command": "START",
            "strategy": "adaptive",
            "parameters": {"influence_weight": 0.2},
            "issued_at": int(time.time() * 1000),
            "ends_at": None,
        }
        send(topics.commands, "a", VOICE_COMMAND, command)
        wait_for(lambda: len(commands) == 1, 20, "the command")
        assert commands == [command]


def test_a_listener_on_topics_made_a_moment_ago_waits_for_their_leaders(
    settings_factory: Callable[..., Settings],
) -> None:
    # As `deltaomega run --simulate` does: the topics are created and the simulator's
    # listener starts at once; a partition without a leader yet is not Kafka being away.
    settings = settings_factory(partitions=6)
    for attempt in range(3):
        fresh = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}{attempt}."})
        ensure_topics(fresh)
        with ControlListener(fresh, lambda _v, _p: None, voices={"a"}) as listener:
            assert listener is not None
