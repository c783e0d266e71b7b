"""Inference on exactly one worker of the group: the one that holds the lease.

Every worker is a member of the consumer group ``<APP_ID>-inference-lease`` on a topic of
one partition; the group gives that partition to exactly one member, which is the leader:
it starts the model process and reads the state topics whole (:class:`StateFeed`), so
each window is ticked once, over every voice, however many workers there are. The others
stand by. When the leader dies the group gives the partition to another member once the
leader's session times out (``consumer_session_timeout_seconds``), and that one resumes
after the last tick the old leader recorded. Outputs are keyed by their natural key, so a
window two leaders both ran (a leader cut off after its last record) collapses in storage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from deltaomega.config import Settings
from deltaomega.kafka_clients import client_config
from deltaomega.schemas.codec import AvroCodec
from deltaomega.streams.batch_consumer import instance_id
from deltaomega.streams.inference import InferenceEngine
from deltaomega.streams.state_feed import StateFeed
from deltaomega.threads import CallThread
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

#: Pause before inference that failed starts again.
RESTART_SECONDS = 5.0


class InferenceLeader:
    def __init__(
        self,
        settings: Settings,
        codec: AvroCodec,
        last_stored_tick: Callable[[], int | None] | None = None,
    ) -> None:
        self.settings = settings
        self.codec = codec
        self.last_stored_tick = last_stored_tick
        self.topic = Topics.from_settings(settings).inference_lease
        self.group = f"{settings.app_id}-inference-lease"
        self.leader = False
        self.engine: InferenceEngine | None = None
        self._closing = False

    def _config(self) -> dict[str, Any]:
        session_ms = int(self.settings.consumer_session_timeout_seconds * 1000)
        return {
            **client_config(self.settings, f"{self.settings.app_id}-inference-lease"),
            "group.id": self.group,
            "group.instance.id": f"{self.group}-{instance_id(self.settings)}",
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(100, session_ms // 5),
            "enable.auto.commit": False,
        }

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if partitions and not self.leader:
            log.info("this worker holds the inference lease: it runs the models")
        self.leader = self.leader or bool(partitions)

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if partitions and self.leader:
            if self._closing:  # stopping: it hands the lease on, nothing was lost
                log.info("this worker released the inference lease")
            else:
                log.warning("this worker lost the inference lease: another one runs the models")
            self.leader = False

    async def run(self) -> None:
        """Hold or wait for the lease until cancelled; serve while holding it."""
        self._closing = False
        thread = CallThread("inference-lease")
        consumer = Consumer(self._config())
        consumer.subscribe(
            [self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )
        serving: asyncio.Task[None] | None = None
        try:
            while True:
                # The lease topic holds no records: polling keeps the membership and runs
                # the assignment callbacks.
                await thread.call(consumer.poll, 0.5)
                if serving is not None and serving.done():
                    self._served(serving)
                    serving = None  # served again below, after a pause
                    await asyncio.sleep(RESTART_SECONDS)
                if self.leader and serving is None:
                    serving = asyncio.create_task(self._serve(), name="inference")
                elif not self.leader and serving is not None:
                    await _stop(serving)
                    serving = None
        finally:
            if serving is not None:
                await _stop(serving)
            self._closing = True
            try:
                await asyncio.wait_for(asyncio.shield(thread.call(consumer.close)), 3.0)
            except TimeoutError:
                log.warning("the inference lease consumer did not close in time")
            thread.close()

    def _served(self, serving: asyncio.Task[None]) -> None:
        """Inference ended by itself: an error (logged; it starts again while this worker
        holds the lease, so the lease never sits with a worker that does not serve)."""
        error = None if serving.cancelled() else serving.exception()
        self.engine = None
        if error is not None:
            log.error(
                "inference failed (%s: %s); starting it again in %.0f s",
                type(error).__name__,
                error,
                RESTART_SECONDS,
                exc_info=error,
            )

    async def _serve(self) -> None:
        feed = StateFeed(self.settings, self.codec, self.last_stored_tick)
        engine = self.engine = InferenceEngine(self.settings, feed.recent, on_tick=feed.commit)
        live = asyncio.create_task(
            feed.run(engine.add_states, engine.drained), name="inference-feed"
        )
        try:
            await engine.run()
            if engine.disabled:
                await asyncio.Event().wait()  # inference is off; hold the lease all the same
        finally:
            await _stop(live)

    def status(self) -> dict[str, str]:
        if not self.leader:
            return {"inference": "ok (standby: another worker runs the models)"}
        if self.engine is None:
            return {"inference": "starting the model process"}
        return self.engine.status()


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait({task}, timeout=10.0)
