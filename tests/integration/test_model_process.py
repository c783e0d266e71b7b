"""The model process against a real broker: it publishes each tick's outputs, and when it
is killed a new one takes over without losing or repeating a window."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from deltaomega.config import Settings
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import INTERACTION_STATE, VOICE_STATE
from deltaomega.streams import inference
from deltaomega.streams.inference import InferenceEngine
from deltaomega.topics import Topics, ensure_topics
from tests.unit.test_inference_engine import link, state

W = 10_000


def pattern_windows(settings: Settings) -> list[int]:
    """window_start of every pattern record on the topic."""
    topic = Topics.from_settings(settings).patterns
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.app_id}-read",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    codec = AvroCodec()
    found: list[int] = []
    deadline = time.monotonic() + 30
    try:
        (partition,) = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        _, records = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        while len(found) < records and time.monotonic() < deadline:
            for message in consumer.consume(10, 0.5):
                if message.error() is None:
                    _, record = codec.decode(message.value())
                    found.append(int(record["window_start"]))
    finally:
        consumer.close()
    return found


@pytest.mark.kafka
def test_a_killed_model_process_is_replaced_and_its_window_runs_once(
    settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory(partitions=1, inference_settle_seconds=600)
    ensure_topics(settings)
    monkeypatch.setattr(inference, "RESPAWN_SECONDS", 0.0)
    engine = InferenceEngine(settings)
    first = (int(time.time() * 1000) // W - 4) * W

    def window(start: int) -> None:
        engine.add_states(VOICE_STATE, [state("a", start), state("b", start)], [0, 0])
        engine.add_states(INTERACTION_STATE, [link(start)], [0])

    async def wait(condition: Callable[[], Any]) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    async def scenario() -> tuple[int, int]:
        task = asyncio.create_task(engine.run())
        await wait(lambda: engine.models.version is not None)
        window(first)
        window(first + W)  # every partition moved past `first`: it runs at once
        await wait(lambda: engine._ran_until == first)
        executor = engine.models._executor
        assert executor is not None
        (pid,) = executor._processes
        os.kill(pid, signal.SIGKILL)
        window(first + 2 * W)  # `first + W` is due, in a process that is gone (this one waits)
        await wait(lambda: engine._ran_until == first + W)
        replaced = engine.models._executor
        assert replaced is not None
        (new_pid,) = replaced._processes
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid, new_pid

    pid, new_pid = asyncio.run(asyncio.wait_for(scenario(), timeout=120))
    assert new_pid != pid
    assert pattern_windows(settings) == [first, first + W]
