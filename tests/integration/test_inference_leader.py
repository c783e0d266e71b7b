"""The inference lease against a real broker: the worker holding it serves, and keeps
serving after inference fails (a lease held by a worker that does not serve would stop
every tick, with no standby allowed to take over)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from deltaomega.config import Settings
from deltaomega.schemas import AvroCodec
from deltaomega.streams import inference_leader
from deltaomega.streams.inference_leader import InferenceLeader
from deltaomega.topics import ensure_topics


@pytest.mark.kafka
def test_inference_that_fails_starts_again_while_the_worker_holds_the_lease(
    settings_factory: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_factory(consumer_session_timeout_seconds=6)
    ensure_topics(settings)
    monkeypatch.setattr(inference_leader, "RESTART_SECONDS", 0.1)
    leader = InferenceLeader(settings, AvroCodec())
    starts = 0

    async def serve() -> None:
        nonlocal starts
        starts += 1
        if starts == 1:
            raise RuntimeError("the model process could not start")
        await asyncio.Event().wait()

    monkeypatch.setattr(leader, "_serve", serve)

    async def scenario() -> None:
        holding = asyncio.create_task(leader.run())
        deadline = asyncio.get_running_loop().time() + 30
        while starts < 2:
            assert asyncio.get_running_loop().time() < deadline, "not served again"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # and it is not started a third time
        assert leader.leader
        holding.cancel()
        await asyncio.wait({holding}, timeout=10)

    with caplog.at_level(logging.INFO, logger=inference_leader.__name__):
        asyncio.run(scenario())
    assert starts == 2
    failures = [r for r in caplog.records if r.getMessage().startswith("inference failed")]
    assert [r.getMessage() for r in failures] == [
        "inference failed (RuntimeError: the model process could not start); "
        "starting it again in 0 s"
    ]
