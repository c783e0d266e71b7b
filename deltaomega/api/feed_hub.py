"""One Kafka tail per topic, many subscribers (the SSE feeds and the WebSocket).

Each API process reads each feed topic once: a consumer over all its partitions, started
for the topic's first subscriber, decodes every record once and offers it to every
subscriber, each with its own filter, position and bounded queue. A subscriber that falls
``feed_queue_records`` behind is dropped with a reason and never holds up the tail or the
others.

Resuming: a subscriber's cursor (the last ``partition:offset`` it had, see
:mod:`deltaomega.api.sse`) may be behind the tail. A short-lived reader replays the
records between the two while the live ones wait behind them; a subscriber takes a record
only past its own position, so the handover neither repeats nor misses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from confluent_kafka import KafkaException

from deltaomega.api.sse import format_cursor
from deltaomega.config import Settings
from deltaomega.errors import (
    DecodeError,
    ServiceUnavailableError,
    TooManySubscribersError,
    ValidationError,
)
from deltaomega.kafka_clients import admin_client, aiokafka_config, unavailable
from deltaomega.metrics import FEED_DROPPED, FEED_TAILS
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.json_records import record_json
from deltaomega.threads import in_thread

log = logging.getLogger(__name__)

_OPEN_TIMEOUT_SECONDS = 10.0
_FETCH_RECORDS = 2000


@dataclass
class FeedRecord:
    """A decoded record of a feed topic, shared by every subscriber that takes it."""

    partition: int
    offset: int
    schema: str
    record: dict[str, Any]
    codec: AvroCodec = field(repr=False)

    @cached_property
    def json(self) -> str:
        """The record as JSON (timestamps ISO-8601), built once for every subscriber."""
        return record_json(self.codec, self.schema, self.record)


#: (record, the subscriber's cursor just past it)
Delivery = tuple[FeedRecord, str]


class LiveBatch(list[FeedRecord]):
    """A fetch of the tail, with its position before and after and the cursor just past
    each record: a subscriber in step with the tail takes those instead of making its own
    (at 1,000 subscribers, formatting cursors was most of the fan-out's time)."""

    def __init__(self) -> None:
        super().__init__()
        self.before: dict[int, int] = {}
        self.after: dict[int, int] = {}
        self.cursors: list[str] = []


class Subscriber:
    """One client's view of a topic: what it keeps, how far it has been offered, and the
    deliveries waiting for it."""

    def __init__(
        self,
        tail: TopicTail,
        principal: str,
        keep: Callable[[FeedRecord], bool],
        position: dict[int, int],
        limit: int,
    ) -> None:
        self.tail = tail
        self.principal = principal
        self.keep = keep
        self.position = dict(position)
        self.limit = limit
        #: why it was dropped, once it was
        self.dropped: str | None = None
        self._queue: asyncio.Queue[list[Delivery] | None] = asyncio.Queue()
        self._queued = 0
        #: live batches that come while the history is replayed (None: not replaying)
        self._held: list[list[FeedRecord]] | None = None
        self._replay: asyncio.Task[None] | None = None

    def cursor(self) -> str:
        return format_cursor(self.position)

    def replay_until(self, until: dict[int, int]) -> None:
        """Replay the history up to ``until`` (the tail's position when this subscriber
        joined) before any live record."""
        self._held = []
        self._replay = asyncio.create_task(self._replaying(until))

    def offer(self, batch: list[FeedRecord]) -> None:
        """A live batch of the tail (on its loop)."""
        if self.dropped is not None:
            return
        if self._queued > self.limit:  # still this far behind when more comes
            self.drop(f"too slow: more than {self.limit} records waiting")
        elif self._held is None:
            self._take(batch)
        else:
            self._held.append(batch)
            self._queued += len(batch)

    def _take(self, batch: list[FeedRecord]) -> None:
        """The records of ``batch`` past this subscriber's position, kept or not."""
        out: list[Delivery] = []
        if isinstance(batch, LiveBatch) and self.position == batch.before:
            # in step with the tail (the usual case): its cursors are this one's too
            self.position = dict(batch.after)
            out = [(r, c) for r, c in zip(batch, batch.cursors, strict=True) if self.keep(r)]
            batch = LiveBatch()
        for r in batch:
            if r.offset <= self.position.get(r.partition, -1):
                continue
            self.position[r.partition] = r.offset
            if self.keep(r):
                out.append((r, self.cursor()))
        if out:
            self._queued += len(out)
            self._queue.put_nowait(out)

    def drop(self, reason: str) -> None:
        if self.dropped is None:
            self.dropped = reason
            self.tail.subscribers.discard(self)
            FEED_DROPPED.labels(self.tail.topic, reason.split(":")[0]).inc()
            self._queue.put_nowait(None)

    async def deliveries(self) -> AsyncIterator[list[Delivery]]:
        """Batches of deliveries until dropped."""
        while True:
            batch = await self._queue.get()
            if batch is None:
                return
            self._queued -= len(batch)
            yield batch

    def close(self) -> None:
        self.tail.subscribers.discard(self)
        if self._replay is not None:
            self._replay.cancel()

    async def _replaying(self, until: dict[int, int]) -> None:
        try:
            behind = {p: o for p, o in until.items() if self.position.get(p, -1) < o}
            if behind:
                async for batch in self.tail.history(self.position, behind):
                    self._take(batch)
                    if self.dropped is not None:
                        return
        except ServiceUnavailableError as exc:
            self.drop(f"history unavailable: {exc}")
            return
        held, self._held = self._held or [], None
        self._queued -= sum(len(b) for b in held)
        for batch in held:
            self._take(batch)


class TopicTail:
    """The one consumer of a topic in this process, and its subscribers."""

    def __init__(self, settings: Settings, codec: AvroCodec, topic: str) -> None:
        self.settings = settings
        self.codec = codec
        self.topic = topic
        #: partition → the offset of the last record offered
        self.position: dict[int, int] = {}
        self.subscribers: set[Subscriber] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        partitions = await in_thread(self._partitions)
        consumer = AIOKafkaConsumer(
            **aiokafka_config(self.settings), group_id=None, enable_auto_commit=False
        )
        try:
            await asyncio.wait_for(consumer.start(), _OPEN_TIMEOUT_SECONDS)
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            ends = await asyncio.wait_for(consumer.end_offsets(tps), _OPEN_TIMEOUT_SECONDS)
        except (KafkaError, OSError, TimeoutError) as exc:
            await consumer.stop()
            raise unavailable(self.settings, exc) from exc
        except BaseException:
            await consumer.stop()
            raise
        for tp, end in ends.items():
            consumer.seek(tp, end)
            self.position[tp.partition] = end - 1
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name=f"feed-tail {self.topic}")
        FEED_TAILS.labels(self.topic).set(1)
        log.info("following %s for its feeds (%d partitions)", self.topic, len(partitions))

    def _partitions(self) -> list[int]:
        try:
            metadata = admin_client(self.settings).list_topics(self.topic, timeout=3)
        except KafkaException as exc:
            raise unavailable(self.settings, exc) from exc
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise ServiceUnavailableError("kafka", f"topic {self.topic} is not available")
        return sorted(topic.partitions)

    async def stop(self) -> None:
        for subscriber in list(self.subscribers):
            subscriber.drop("the server is stopping")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        FEED_TAILS.labels(self.topic).set(0)

    async def end_offsets(self) -> dict[int, int]:
        assert self._consumer is not None
        tps = [TopicPartition(self.topic, p) for p in self.position]
        try:
            ends = await asyncio.wait_for(self._consumer.end_offsets(tps), _OPEN_TIMEOUT_SECONDS)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise unavailable(self.settings, exc) from exc
        return {tp.partition: end for tp, end in ends.items()}

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                fetched = await self._consumer.getmany(timeout_ms=1000, max_records=_FETCH_RECORDS)
            except KafkaError as exc:  # the client reconnects on its own; try again
                log.debug("fetching %s: %s", self.topic, exc)
                await asyncio.sleep(1.0)
                continue
            batch = self._decoded(fetched)
            if batch:
                for subscriber in list(self.subscribers):
                    try:
                        subscriber.offer(batch)
                    except Exception:  # noqa: BLE001 - one subscriber's filter, not the tail
                        log.exception("a subscriber of %s failed on a record", self.topic)
                        subscriber.drop("failed: its filter could not read a record")

    def _decoded(self, fetched: dict[TopicPartition, list[Any]]) -> LiveBatch:
        batch = LiveBatch()
        batch.before = dict(self.position)
        for tp in sorted(fetched, key=lambda t: t.partition):
            for message in fetched[tp]:
                self.position[tp.partition] = message.offset
                decoded = self._decode(tp.partition, message)
                if decoded is not None:
                    batch.append(decoded)
                    batch.cursors.append(format_cursor(self.position))
        batch.after = dict(self.position)
        return batch

    def _decode(self, partition: int, message: Any) -> FeedRecord | None:
        try:
            name, record = self.codec.decode(message.value)
        except DecodeError as exc:
            log.warning(
                "skipping undecodable %s@%d:%d: %s", self.topic, partition, message.offset, exc
            )
            return None
        return FeedRecord(partition, message.offset, name, record, self.codec)

    async def history(
        self, since: dict[int, int], until: dict[int, int]
    ) -> AsyncIterator[list[FeedRecord]]:
        """Records after ``since`` up to ``until`` (inclusive) of the partitions in
        ``until``, from a reader of their own."""
        reader = AIOKafkaConsumer(
            **aiokafka_config(self.settings), group_id=None, enable_auto_commit=False
        )
        try:
            await asyncio.wait_for(reader.start(), _OPEN_TIMEOUT_SECONDS)
            tps = [TopicPartition(self.topic, p) for p in until]
            reader.assign(tps)
            for tp in tps:
                reader.seek(tp, since.get(tp.partition, -1) + 1)
            left = dict(until)
            while left:
                fetched = await reader.getmany(
                    *[TopicPartition(self.topic, p) for p in left],
                    timeout_ms=1000,
                    max_records=_FETCH_RECORDS,
                )
                batch = []
                for tp in sorted(fetched, key=lambda t: t.partition):
                    for message in fetched[tp]:
                        if tp.partition not in left or message.offset > left[tp.partition]:
                            continue
                        decoded = self._decode(tp.partition, message)
                        if decoded is not None:
                            batch.append(decoded)
                        if message.offset >= left[tp.partition]:
                            del left[tp.partition]
                if batch:
                    yield batch
        except (KafkaError, OSError, TimeoutError) as exc:
            raise unavailable(self.settings, exc) from exc
        finally:
            await reader.stop()


class FeedHub:
    """The process's tails, started on demand, with its subscriber caps."""

    def __init__(self, settings: Settings, codec: AvroCodec) -> None:
        self.settings = settings
        self.codec = codec
        self._tails: dict[str, TopicTail] = {}
        self._starting: dict[str, asyncio.Lock] = {}

    def subscribers(self) -> list[Subscriber]:
        return [s for tail in self._tails.values() for s in tail.subscribers]

    async def tail(self, topic: str) -> TopicTail:
        found = self._tails.get(topic)
        if found is not None:
            return found
        lock = self._starting.setdefault(topic, asyncio.Lock())
        async with lock:
            found = self._tails.get(topic)
            if found is None:
                found = TopicTail(self.settings, self.codec, topic)
                await found.start()
                self._tails[topic] = found
        return found

    async def subscribe(
        self,
        topic: str,
        principal: str,
        keep: Callable[[FeedRecord], bool],
        cursor: dict[int, int] | None,
        field: str,
    ) -> Subscriber:
        """A subscriber from ``cursor`` (None: from now), history replayed in the
        background; 422 naming ``field`` for a cursor not of this topic, 503 when Kafka
        does not answer, TooManySubscribersError over a cap."""
        everyone = self.subscribers()
        if len(everyone) >= self.settings.feed_max_subscribers:
            raise TooManySubscribersError(
                f"this API process serves {self.settings.feed_max_subscribers} feed "
                "subscribers already",
                per_principal=False,
            )
        mine = sum(1 for s in everyone if s.principal == principal)
        if mine >= self.settings.feed_max_subscribers_per_principal:
            raise TooManySubscribersError(
                f"{mine} feeds are open for this caller already (the most is "
                f"{self.settings.feed_max_subscribers_per_principal})",
                per_principal=True,
            )
        tail = await self.tail(topic)
        if cursor is not None:
            _check_cursor(cursor, await tail.end_offsets(), topic, field)
            position = {p: cursor.get(p, -1) for p in tail.position}
        else:
            position = dict(tail.position)
        subscriber = Subscriber(tail, principal, keep, position, self.settings.feed_queue_records)
        if any(position[p] < o for p, o in tail.position.items()):
            subscriber.replay_until(dict(tail.position))
        tail.subscribers.add(subscriber)
        return subscriber

    async def close(self) -> None:
        for tail in list(self._tails.values()):
            await tail.stop()
        self._tails.clear()


def _check_cursor(cursor: dict[int, int], ends: dict[int, int], topic: str, field: str) -> None:
    unknown = sorted(set(cursor) - set(ends))
    if unknown:
        raise ValidationError(field, f"names partition {unknown[0]}, which {topic} does not have")
    for partition, last in sorted(cursor.items()):
        end = ends[partition]
        if last >= end:
            raise ValidationError(
                field,
                f"offset {last} of partition {partition} is past the partition's end"
                f" (its next offset is {end}); the cursor is not from this feed",
            )
