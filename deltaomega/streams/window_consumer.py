"""An input topic's consumer: confluent-kafka batches into a WindowAgent, then one commit.

Faust hands its agents one event at a time; at tens of thousands of events per second that
per-record path, not the batch code, bounded the worker (bench/RESULTS.md). Here one
``consume`` call returns up to ``batch_max_records`` messages and the agent's batch code
runs on them directly. Per batch: process (all or nothing) → produce its states and dead
letters (the dead letters flushed first, so a replay never sends them twice) → produce the
store's changes → flush the producer (states, changelog) → produce closed windows'
tombstones → flush → checkpoint RocksDB → commit offsets (the landing overlaps the next
batch's processing). A crash anywhere replays the batch, and the source offsets kept in
the store make the replay exact.

A batch whose processing fails is rolled back and retried; one that fails
``batch_retries`` times is split in halves until the records that fail alone are found,
and those are dead-lettered (``deltaomega_poison_records_total``): one bad record costs
its own place, not its partition's progress.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from confluent_kafka import Consumer, Message, TopicPartition

from deltaomega import faults
from deltaomega.config import Settings
from deltaomega.errors import ServiceUnavailableError
from deltaomega.metrics import BATCH_FAILURES, POISON_RECORDS
from deltaomega.streams.batch_consumer import BatchConsumer
from deltaomega.streams.deadletter import DeadLetterPublisher
from deltaomega.streams.outputs import BatchOutputs
from deltaomega.streams.replay import ReplayShaper
from deltaomega.streams.window_agent import BatchResult, RawRows, SourceBatch, WindowAgent
from deltaomega.streams.window_store import Checkpoint
from deltaomega.threads import CallThread, in_thread

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a stopping consumer lets its last batch land before leaving it to a replay.
_LAND_GRACE_SECONDS = 3.0
#: Batches landing at once: one's insert overlaps the next one's flush.
_LANDINGS_IN_FLIGHT = 2


def consume_size(events: int, records: int, max_records: int, max_events: int) -> int:
    """Records to ask for next, so a batch holds about ``max_events`` at the last ratio."""
    if events == 0 or records == 0:
        return max_records
    return max(1, min(max_records, round(max_events * records / events)))


class WindowConsumer(BatchConsumer):
    def __init__(
        self,
        settings: Settings,
        topic: str,
        agent: WindowAgent,
        outputs: BatchOutputs,
        states_topic: str,
        deadletters: DeadLetterPublisher,
    ) -> None:
        name = agent.spec.name
        super().__init__(settings, name, f"{settings.app_id}-{name}-windows", outputs)
        self.topic = topic
        self.agent = agent
        self.emit_state = outputs.emit_to(states_topic)
        self.deadletters = deadletters
        self._persisting: asyncio.Future[None] | None = None
        self.replay = ReplayShaper()

    # -- the loop --------------------------------------------------------------------------

    async def _consume(self) -> None:
        # One thread owns the consumer: librdkafka calls are serialised, and the rebalance
        # callbacks (which restore the store) run there while the event loop stays free.
        previous, self._persisting = self._persisting, None
        if previous is not None:
            await _settled(previous)
        thread = CallThread(f"{self.name}-consumer")
        call = thread.call

        consumer = Consumer(self.consumer_config())
        consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        max_records = self.settings.batch_max_records
        max_events = self.settings.batch_max_events
        within = self.settings.batch_within_seconds
        size = max_records
        # A batch's landing (flush, insert, commit) overlaps reading and processing the next
        # ones; two land at once at most, and they commit in order.
        landings: list[asyncio.Task[None]] = []
        try:
            while True:
                messages = await call(self.poll, consumer, size, within)
                for landing in landings:
                    if landing.done():
                        landing.result()  # a failed landing restarts the consumer
                shaped = self.replay.shape(messages)
                if shaped is None:
                    continue  # a range that may have landed uncommitted is not whole yet
                batch = self._batch(shaped)
                if batch is None:
                    continue
                if self.agent.progress.first_batch_at is None:
                    self.agent.progress.first_batch_at = time.perf_counter()
                result = await self._process(batch)
                if result.events:
                    size = consume_size(result.events, len(batch), max_records, max_events)
                for key, value in result.states:
                    self.emit_state(key, value)
                if result.deadletters:
                    # Delivered before the changelog marker that covers their records, so a
                    # replay (which skips what the marker covers) never sends them again.
                    self.deadletters.publish(result.deadletters)
                    await in_thread(self.outputs.flush)
                checkpoint = self.agent.store.stage(self.outputs.producer)
                # Chained here, in batch order: RocksDB must take the checkpoints in order.
                self._persisting = persisting = asyncio.ensure_future(
                    self._persist_after(self._persisting, checkpoint)
                )
                while len(landings) >= _LANDINGS_IN_FLIGHT:
                    await landings.pop(0)
                before = landings[-1] if landings else None
                landings.append(
                    asyncio.create_task(
                        self._land(call, consumer, batch, result.rows, persisting, before)
                    )
                )
        except asyncio.CancelledError:
            # Stopping: abandon a restore in progress, so the consumer thread comes free.
            self.agent.store.stopping.set()
            raise
        finally:
            await self._finish(landings, call, consumer)
            thread.close()

    async def _finish(
        self,
        landings: list[asyncio.Task[None]],
        call: Callable[..., asyncio.Future[Any]],
        consumer: Consumer,
    ) -> None:
        """Let the last batches land if they can do so soon; leave them to a replay otherwise."""
        if landings:
            await asyncio.wait(landings, timeout=_LAND_GRACE_SECONDS)
        for landing in landings:
            landing.cancel()
            try:
                await landing
            except BaseException as exc:  # noqa: BLE001 - it replays; nothing to do here
                log.info("%s: last batch did not land (%r); it replays", self.name, exc)
        try:
            await asyncio.wait_for(asyncio.shield(call(consumer.close)), _LAND_GRACE_SECONDS)
        except TimeoutError:
            log.warning("%s: the consumer did not close in time", self.name)
        self.agent.revoke(list(self.agent.store.partitions))
        persisting = self._persisting
        if persisting is None or persisting.done():
            self.agent.store.close()
        # else a checkpoint thread still writes: the store closes with the process

    def _batch(self, messages: Sequence[Message]) -> SourceBatch | None:
        return self.batches(messages, self.agent.store.partitions).get(self.topic)

    # -- processing: all or nothing, retried, isolated -------------------------------------

    async def _process(self, batch: SourceBatch) -> BatchResult:
        covered = self.agent.covered()
        retries = self.settings.batch_retries
        attempt = waited = 0
        while attempt < retries:
            attempt += 1
            try:
                return self.agent.handle(batch, covered)
            except ServiceUnavailableError:
                # Not the batch's fault (the schema registry is away): wait, do not count.
                attempt -= 1
                waited += 1
                await asyncio.sleep(min(0.5 * 2**waited, 30.0))
                continue
            except Exception as exc:  # noqa: BLE001 - undone; retried, then isolated
                BATCH_FAILURES.labels(self.name).inc()
                self.health.failed(exc)
                first, last = int(batch.offsets.min()), int(batch.offsets.max())
                if attempt == 1:
                    log.exception(
                        "%s: a batch of %d records (offsets %d-%d) failed and was rolled back;"
                        " retrying",
                        self.name,
                        len(batch),
                        first,
                        last,
                    )
                else:
                    log.warning(
                        "%s: the batch failed again (%d of %d)", self.name, attempt, retries
                    )
                if attempt < retries:
                    await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        return self._isolate(batch, covered)

    def _isolate(self, batch: SourceBatch, covered: Mapping[int, int]) -> BatchResult:
        """Process the batch in halves, and halves of those that fail, down to single
        records; dead-letter the records that fail alone."""
        result = BatchResult()
        poison = 0
        pending = [batch]
        while pending:
            part = pending.pop()
            try:
                result.extend(self.agent.handle(part, covered))
                continue
            except ServiceUnavailableError:
                raise  # not the records' fault: the consumer restarts and the batch replays
            except Exception as exc:  # noqa: BLE001 - undone; split further or dead-lettered
                if len(part) > 1:
                    middle = len(part) // 2
                    pending += [part.slice(middle, len(part)), part.slice(0, middle)]
                    continue
                poison += 1
                partition, offset = int(part.partitions[0]), int(part.offsets[0])
                if offset > covered.get(partition, -1):
                    reason = (
                        f"processing failed {self.settings.batch_retries} times: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    result.deadletters.append(part.deadletter(0, reason, "PoisonRecord"))
        self.agent.cover(batch)
        POISON_RECORDS.labels(self.name).inc(poison)
        log.error(
            "%s: isolated %d record(s) that fail on their own in a batch of %d; dead-lettered",
            self.name,
            poison,
            len(batch),
        )
        return result

    # -- landing ---------------------------------------------------------------------------

    async def _land(
        self,
        call: Callable[..., asyncio.Future[Any]],
        consumer: Consumer,
        batch: SourceBatch,
        rows: list[RawRows],
        persisting: asyncio.Future[None],
        before: asyncio.Task[None] | None,
    ) -> None:
        """States and changelog (its marker last) delivered; then the raw rows into ClickHouse,
        which must come after the marker that covers them (see ``replay``), while the closed
        windows' tombstones go out and RocksDB takes the changes; then commit."""
        await in_thread(self.outputs.flush)
        faults.hit(f"{self.name}.before_insert")

        async def insert() -> None:
            for part in rows:
                if len(part.columns):
                    await self.agent.insert(batch.topic, part)

        await asyncio.gather(insert(), asyncio.shield(persisting))
        if before is not None:
            await before  # commits in order; a failed one fails this one too
        faults.hit(f"{self.name}.before_commit")
        await call(self.commit, consumer, [batch])

    async def _persist_after(
        self, previous: asyncio.Future[None] | None, checkpoint: Checkpoint
    ) -> None:
        """RocksDB takes checkpoints in batch order."""
        if previous is not None:
            await asyncio.shield(previous)
        await in_thread(self._persist, checkpoint)

    def _persist(self, checkpoint: Checkpoint) -> None:
        """Once the upserts (and the closed windows' states) were delivered: tombstones,
        then RocksDB."""
        store = self.agent.store
        self.outputs.flush()
        store.stage_tombstones(checkpoint, self.outputs.producer)
        self.outputs.flush()
        store.persist(checkpoint)

    # -- rebalance callbacks (in the consumer's thread, inside consume) ---------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        log.info("%s: assigned partitions %s", self.name, numbers)
        self.health.state = "restoring"
        self.agent.assign(numbers)
        # A marker past the committed offset: that batch landed (maybe its rows too) but was
        # not committed; the replay takes the same records together (see ``replay``).
        covered = self.agent.covered()
        for tp in consumer.committed(partitions, timeout=30):
            last = covered.get(tp.partition, -1)
            if last >= 0 and last >= tp.offset:
                log.info(
                    "%s: partition %d landed up to offset %d past its commit (%d); replaying "
                    "that range as one batch",
                    self.name,
                    tp.partition,
                    last,
                    tp.offset,
                )
                self.replay.expect(tp.partition, last)
        self.health.state = "running"

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        log.info("%s: revoked partitions %s", self.name, numbers)
        self.agent.revoke(numbers)
        self.replay.forget(numbers)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        log.warning("%s: lost partitions %s", self.name, numbers)
        self.agent.revoke(numbers)
        self.replay.forget(numbers)


async def _settled(persisting: asyncio.Future[None]) -> None:
    """Wait for the last incarnation's checkpoint, so the next restore reads RocksDB after
    it; a failed one failed its batch too, which replays."""
    try:
        await asyncio.shield(persisting)
    except asyncio.CancelledError:
        if not persisting.cancelled():
            raise  # this consumer is stopping
    except Exception:  # noqa: BLE001, S110 - see above
        pass
