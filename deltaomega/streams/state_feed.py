"""The closed-window states of the whole system, for inference: every partition of both
state topics, whichever worker closed them.

With several workers each one's sinks see only their own partitions' states, so a tick fed
from them would cover part of the voices. The inference leader reads both topics whole
instead: first from where the last completed tick left them, then live. After each tick
it commits, per partition, the earliest offset the next leader needs (the first state of
the oldest window the models' history still holds) with the tick in the commit's
metadata, so a new leader (after a failover, or a restart) resumes with the same history
and runs the windows after it, and no other.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)

from deltaomega.config import Settings
from deltaomega.kafka_clients import client_config
from deltaomega.schemas.codec import AvroCodec
from deltaomega.schemas.records import INTERACTION_STATE, VOICE_STATE
from deltaomega.streams.ticks import HISTORY
from deltaomega.threads import CallThread
from deltaomega.topics import Topics

log = logging.getLogger(__name__)

_TICK = "tick="
_BATCH = 10_000
_READ_TIMEOUT_SECONDS = 120.0
#: Without a commit (a first start after an upgrade), read back this far in produce time.
_FALLBACK_SECONDS = 600.0

#: → (newest window the models ran on or None, voice states, interaction states, newest
#: window read per (state schema, partition))
Recent = tuple[int | None, list[dict[str, Any]], list[dict[str, Any]], dict[tuple[str, int], int]]
Feed = Callable[[str, list[dict[str, Any]], list[int]], None]


class StateFeed:
    def __init__(
        self,
        settings: Settings,
        codec: AvroCodec,
        last_stored_tick: Callable[[], int | None] | None = None,
    ) -> None:
        self.settings = settings
        self.codec = codec
        #: the newest tick in storage: where to start when nothing was committed yet
        self.last_stored_tick = last_stored_tick
        topics = Topics.from_settings(settings)
        self.schemas = {
            topics.voice_states: VOICE_STATE,
            topics.interaction_states: INTERACTION_STATE,
        }
        self.group = f"{settings.app_id}-inference"
        self.window_ms = settings.window_ms
        #: (topic, partition) → window start → first offset of a state of that window
        self._first: dict[tuple[str, int], dict[int, int]] = defaultdict(dict)
        #: (state schema, partition) → newest window read from it
        self.newest: dict[tuple[str, int], int] = {}
        #: (topic, partition) → next offset to read
        self.positions: dict[tuple[str, int], int] = {}
        self._restored = threading.Event()
        self._thread: CallThread | None = None
        self._consumer: Consumer | None = None

    def _config(self) -> dict[str, Any]:
        return {
            **client_config(self.settings, f"{self.settings.app_id}-inference"),
            "group.id": self.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }

    def _partitions(self, consumer: Consumer) -> list[TopicPartition]:
        out = []
        for topic in self.schemas:
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            out += [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        return out

    # -- where the last tick left the topics -------------------------------------------------

    def recent(self, windows: int) -> Recent:
        """Read the state topics from the last commit to their end (blocking): the last
        completed tick, the states of its history and of the windows after it, and how far
        each partition had got (a partition whose worker died is behind, not done)."""
        consumer = Consumer(self._config())
        try:
            return self._read_recent(consumer, windows)
        finally:
            consumer.close()

    def _read_recent(self, consumer: Consumer, windows: int) -> Recent:
        partitions = self._partitions(consumer)
        found = consumer.committed(partitions, timeout=10)
        last: int | None = None
        starts: dict[tuple[str, int], int] = {}
        for tp in found:
            if tp.metadata and tp.metadata.startswith(_TICK):
                tick = int(tp.metadata[len(_TICK) :])
                last = tick if last is None else max(last, tick)
            starts[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
        if last is None:
            last, starts = self._without_commit(consumer, partitions, starts)
        ends: dict[tuple[str, int], int] = {}
        for tp in partitions:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            key = (tp.topic, tp.partition)
            ends[key] = int(high)
            if starts[key] == OFFSET_END:  # nothing after the time looked for
                starts[key] = ends[key]
        todo = [
            TopicPartition(t, p, starts[(t, p)])
            for (t, p), end in ends.items()
            if end > 0 and (starts[(t, p)] < 0 or starts[(t, p)] < end)
        ]
        records: dict[str, list[dict[str, Any]]] = {VOICE_STATE: [], INTERACTION_STATE: []}
        position = {key: starts[key] if starts[key] >= 0 else -1 for key in ends}
        if todo:
            consumer.assign(todo)
            deadline = time.monotonic() + _READ_TIMEOUT_SECONDS
            while any(
                position[(t.topic, t.partition)] < ends[(t.topic, t.partition)] for t in todo
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError("reading the state topics back took too long")
                for message in consumer.consume(10_000, 0.5):
                    taken = self._take(message)
                    if taken is not None:
                        key, offset, schema, record = taken
                        position[key] = offset + 1
                        if record is not None:
                            records[schema].append(record)
        if not self._restored.is_set():
            # The first read: live reading goes on from its end.
            self.positions = dict(ends)
            self._restored.set()
        first = -1 if last is None else last - (windows - 1) * self.window_ms
        keep = [r for r in records[VOICE_STATE] if r["window_start"] >= first]
        links = [r for r in records[INTERACTION_STATE] if r["window_start"] >= first]
        log.info(
            "inference resumes after tick %s: %d voice and %d interaction states read back",
            last,
            len(keep),
            len(links),
        )
        return last, keep, links, dict(self.newest)

    def _without_commit(
        self,
        consumer: Consumer,
        partitions: list[TopicPartition],
        starts: dict[tuple[str, int], int],
    ) -> tuple[int | None, dict[tuple[str, int], int]]:
        """No tick committed: a new system reads everything; one that ran before this feed
        existed (its ticks are in storage) reads the last minutes only."""
        last = self.last_stored_tick() if self.last_stored_tick is not None else None
        if last is None:
            return None, starts
        since = int((time.time() - _FALLBACK_SECONDS) * 1000)
        found = consumer.offsets_for_times(
            [TopicPartition(tp.topic, tp.partition, since) for tp in partitions], timeout=10
        )
        return last, {(tp.topic, tp.partition): tp.offset for tp in found}

    def _take(
        self, message: Message
    ) -> tuple[tuple[str, int], int, str, dict[str, Any] | None] | None:
        """((topic, partition), offset, schema, state or None when it does not decode) of a
        message, noting where its window's states begin; None for a consumer error."""
        if message.error() is not None:
            return None
        key = (cast(str, message.topic()), cast(int, message.partition()))
        offset = cast(int, message.offset())
        schema = self.schemas[key[0]]
        good, errors = self.codec.decode_many([message.value()], schema)
        if errors:
            log.warning("inference skips %s[%d]@%d: %s", *key, offset, errors[0].reason)
            return key, offset, schema, None
        record = good[0][1]
        window = int(record["window_start"]) // self.window_ms * self.window_ms
        firsts = self._first[key]
        firsts[window] = min(offset, firsts.get(window, offset))
        source = (schema, key[1])
        self.newest[source] = max(window, self.newest.get(source, window))
        return key, offset, schema, record

    # -- live ---------------------------------------------------------------------------------

    async def run(self, feed: Feed, drained: Callable[[bool], None] | None = None) -> None:
        """Hand every new state to ``feed`` (the engine's add_states) until cancelled, and
        after each read tell ``drained`` whether it has read every partition up to the end
        the broker last reported (nothing more is in the topics yet)."""
        while not self._restored.is_set():
            await asyncio.sleep(0.05)
        thread = self._thread = CallThread("inference-feed")
        consumer = self._consumer = Consumer(self._config())
        consumer.assign([TopicPartition(t, p, o) for (t, p), o in self.positions.items()])
        try:
            while True:
                messages = await thread.call(_arrived, consumer)
                records: dict[str, tuple[list[dict[str, Any]], list[int]]] = {
                    VOICE_STATE: ([], []),
                    INTERACTION_STATE: ([], []),
                }
                for message in messages:
                    taken = self._take(message)
                    if taken is None:
                        continue
                    key, offset, schema, record = taken
                    self.positions[key] = offset + 1
                    if record is not None:
                        records[schema][0].append(record)
                        records[schema][1].append(key[1])
                for schema, (states, partitions) in records.items():
                    if states:
                        feed(schema, states, partitions)
                if drained is not None:
                    drained(self._drained(consumer))
        finally:
            self._consumer = None
            try:
                await asyncio.wait_for(asyncio.shield(thread.call(consumer.close)), 3.0)
            except TimeoutError:
                log.warning("the inference feed did not close in time")
            thread.close()

    def _drained(self, consumer: Consumer) -> bool:
        """Every partition read up to its high watermark of the consumer's last fetch
        (cached: no request to the broker)."""
        for (topic, partition), position in self.positions.items():
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                return False
            if high < 0 or position < high:
                return False
        return True

    async def commit(self, tick: int) -> None:
        """After ``tick`` ran: each partition's resume point for a leader after this one."""
        consumer, thread = self._consumer, self._thread
        if consumer is None or thread is None:
            return
        keep_from = tick - (HISTORY - 1) * self.window_ms
        offsets = []
        for key, end in self.positions.items():
            firsts = self._first.get(key, {})
            for window in [w for w in firsts if w < keep_from]:
                del firsts[window]
            offset = min(firsts.values()) if firsts else end
            offsets.append(TopicPartition(key[0], key[1], offset, metadata=f"{_TICK}{tick}"))
        try:
            await thread.call(consumer.commit, offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("could not record tick %d for a later leader (%s)", tick, exc)


def _arrived(consumer: Consumer) -> list[Message]:
    """What has arrived, as soon as anything has (up to 0.2 s): ``consume(n, t)`` waits
    until it has n messages or t has passed, so a window's states would sit in the queue
    for up to t before the tick could hear of them."""
    first = consumer.poll(0.2)
    if first is None:
        return []
    return [first, *consumer.consume(_BATCH - 1, 0)]
