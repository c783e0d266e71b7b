"""Open windows of the partitions this worker owns: a dict, a RocksDB checkpoint, a changelog.

The compacted changelog topic (one partition per source partition) is the truth. Each
batch's changes are produced to it once per key, in an order that keeps every delivered
prefix consistent: upserts, then the partition's commit marker (the watermark entry,
which holds the last source offset folded in), and, only after the closed windows' states
were delivered, their tombstones. Kafka keeps a partition's records in order, so a
delivered marker means the upserts before it were delivered too, and a replay skips
exactly what the changelog already holds; a window whose entry is gone had its state out.

RocksDB holds a prefix of the changelog (written only after the producer confirmed it)
and the offset of the last upsert it holds, so a restart reads only the changelog's tail.
Not the last tombstone's: a batch's tombstones go out after the next batch's upserts, which
RocksDB does not hold yet, so the tail read at a restore starts before them (deleting a
key twice changes nothing). Checkpoints are persisted in batch order. Lose the RocksDB
files and the whole changelog is read instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from rocksdict import Options, Rdict, WriteBatch

from deltaomega import faults
from deltaomega.errors import DeliveryError, DeltaOmegaError
from deltaomega.kafka_clients import watermarks

log = logging.getLogger(__name__)

_META = b"\x00changelog\x1f"
_RESTORE_REPORT_SECONDS = 2.0
_WATERMARK_TIMEOUT_SECONDS = 60.0

_ABSENT = object()


class RestoreAbandonedError(DeltaOmegaError):
    """A restore stopped half-way because the worker is stopping."""

    def __init__(self, changelog: str) -> None:
        super().__init__(f"restore of {changelog} abandoned: the worker is stopping")


class PartitionState:
    """One partition's open windows (:class:`~deltaomega.streams.windows.PartitionStore`).

    Between :meth:`begin` and :meth:`commit` every change is also noted in an undo log, so
    a batch that fails half-way is undone with :meth:`rollback` and leaves nothing behind:
    not in memory, and so not in what the next stage writes to the changelog.
    """

    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data
        #: since the last stage: each key's last value set (kept when it is then deleted,
        #: so the changelog holds a closed window's full entry until its tombstone lands)
        self.upserts: dict[bytes, bytes] = {}
        #: since the last stage: keys deleted, in order
        self.deleted: dict[bytes, None] = {}
        #: key → (value, pending upsert, pending delete) before the batch; None: no batch
        self._undo: dict[bytes, tuple[Any, Any, bool]] | None = None

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def _remember(self, key: bytes) -> None:
        if self._undo is not None and key not in self._undo:
            self._undo[key] = (
                self.data.get(key, _ABSENT),
                self.upserts.get(key, _ABSENT),
                key in self.deleted,
            )

    def set(self, key: bytes, value: bytes) -> None:
        self._remember(key)
        self.data[key] = value
        self.upserts[key] = value
        self.deleted.pop(key, None)

    def delete(self, key: bytes) -> None:
        self._remember(key)
        if self.data.pop(key, None) is not None:
            self.deleted[key] = None

    def begin(self) -> None:
        self._undo = {}

    def commit(self) -> None:
        self._undo = None

    def rollback(self) -> None:
        """Put every key the batch touched back as it was before :meth:`begin`."""
        undo, self._undo = self._undo or {}, None
        for key, (value, upsert, deleted) in undo.items():
            if value is _ABSENT:
                self.data.pop(key, None)
            else:
                self.data[key] = value
            if upsert is _ABSENT:
                self.upserts.pop(key, None)
            else:
                self.upserts[key] = upsert
            if deleted:
                self.deleted[key] = None
            else:
                self.deleted.pop(key, None)

    def take_changes(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        changes = self.upserts, list(self.deleted)
        self.upserts, self.deleted = {}, {}
        return changes

    def keys(self) -> list[bytes]:
        return list(self.data)


@dataclass
class Checkpoint:
    """One batch's store changes: produced to the changelog, persisted once delivered."""

    upserts: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    tombstones: dict[int, list[bytes]] = field(default_factory=dict)
    #: partition → highest changelog offset of an upsert delivered
    delivered: dict[int, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.failed.append(str(err))
            return
        partition = msg.partition()
        self.delivered[partition] = max(self.delivered.get(partition, -1), msg.offset())

    def on_tombstone(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self.failed.append(str(err))


class WindowStore:
    def __init__(
        self,
        path: Path,
        changelog: str,
        kafka_config: dict[str, Any],
        is_marker: Callable[[bytes], bool],
    ) -> None:
        self.path = path
        self.changelog = changelog
        #: connection settings for the restore consumer (kafka_clients.client_config)
        self.kafka_config = kafka_config
        self.is_marker = is_marker
        #: set to abandon a restore (the worker is stopping); the store is then unusable
        self.stopping = threading.Event()
        self.partitions: dict[int, PartitionState] = {}
        self._db: Rdict | None = None
        self._open_lock = threading.Lock()
        #: changelog records the last :meth:`assign` read (0: RocksDB was up to date)
        self.restored = 0

    # -- lifecycle -------------------------------------------------------------------------

    def _open(self) -> Rdict:
        # Checkpoints are persisted from a worker thread while the consumer's thread assigns.
        with self._open_lock:
            if self._db is None:
                self.path.mkdir(parents=True, exist_ok=True)
                self._db = Rdict(str(self.path), options=Options(raw_mode=True))
            return self._db

    def close(self) -> None:
        self.partitions.clear()
        if self._db is not None:
            self._db.close()
            self._db = None

    def assign(self, partitions: Iterable[int]) -> None:
        """Load the partitions from RocksDB, then bring them up to the changelog's end."""
        db = self._open()
        self.restored = 0
        start: dict[int, int] = {}
        for partition in sorted(set(partitions) - set(self.partitions)):
            prefix = f"{partition}\x1f".encode()
            data: dict[bytes, bytes] = {}
            for key, value in db.items(from_key=prefix):
                if not cast(bytes, key).startswith(prefix):
                    break
                data[cast(bytes, key)] = cast(bytes, value)
            self.partitions[partition] = PartitionState(data)
            raw = db.get(_META + str(partition).encode())
            start[partition] = -1 if raw is None else int(raw)
        if start:
            self._restore(start)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions (their changes are checkpointed after every batch)."""
        for partition in partitions:
            self.partitions.pop(partition, None)

    # -- one batch, all or nothing -----------------------------------------------------------

    def begin(self) -> None:
        for state in self.partitions.values():
            state.begin()

    def commit(self) -> None:
        for state in self.partitions.values():
            state.commit()

    def rollback(self) -> None:
        for state in self.partitions.values():
            state.rollback()

    # -- the batch -------------------------------------------------------------------------

    def stage(self, producer: Producer) -> Checkpoint:
        """Produce every partition's upserts since the last stage, its commit marker last."""
        checkpoint = Checkpoint()
        for partition, state in self.partitions.items():
            upserts, deleted = state.take_changes()
            if upserts:
                checkpoint.upserts[partition] = upserts
                ordered = [kv for kv in upserts.items() if not self.is_marker(kv[0])]
                ordered += [kv for kv in upserts.items() if self.is_marker(kv[0])]
                self._produce(producer, partition, ordered, checkpoint.on_delivery)
            if deleted:
                checkpoint.tombstones[partition] = deleted
        return checkpoint

    def stage_tombstones(self, checkpoint: Checkpoint, producer: Producer) -> None:
        """Produce the closed windows' tombstones: only once their states were delivered."""
        for partition, keys in checkpoint.tombstones.items():
            records: list[tuple[bytes, bytes | None]] = [(k, None) for k in keys]
            self._produce(producer, partition, records, checkpoint.on_tombstone)

    def _produce(
        self,
        producer: Producer,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        on_delivery: Callable[[KafkaError | None, Any], None],
    ) -> None:
        for key, value in records:
            produce(
                producer, self.changelog, key, value, partition=partition, on_delivery=on_delivery
            )

    def persist(self, checkpoint: Checkpoint) -> None:
        """After the producer was flushed: RocksDB takes what the changelog now holds.

        The changes and the offset of the last upsert go in one write, so the offset never
        claims more than the data holds (a restore rereads from there). Called in batch
        order: an older checkpoint after a newer one would put an older marker back.
        """
        if checkpoint.failed:
            raise DeliveryError(f"changelog {self.changelog} writes failed: {checkpoint.failed[0]}")
        partitions = checkpoint.upserts.keys() | checkpoint.tombstones.keys()
        if not partitions:
            return
        batch = WriteBatch(raw_mode=True)
        for partition in partitions:
            for key, value in checkpoint.upserts.get(partition, {}).items():
                batch.put(key, value)
            for key in checkpoint.tombstones.get(partition, []):
                batch.delete(key)
            offset = checkpoint.delivered.get(partition)
            if offset is not None:
                batch.put(_META + str(partition).encode(), str(offset).encode())
        self._open().write(batch)

    # -- restore ---------------------------------------------------------------------------

    def _restore(self, last_applied: dict[int, int]) -> None:
        consumer = Consumer(
            {
                **self.kafka_config,
                "group.id": f"{self.changelog}.restore",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
        )
        try:
            self._restore_with(consumer, last_applied)
        finally:
            consumer.close()

    def _restore_with(self, consumer: Consumer, last_applied: dict[int, int]) -> None:
        ends: dict[int, int] = {}
        assignment = []
        for partition, applied in last_applied.items():
            low, high = _watermarks(
                consumer, TopicPartition(self.changelog, partition), self.stopping
            )
            if applied >= high or (applied >= 0 and applied + 1 < low):
                # The checkpoint is not a prefix of this changelog (topic recreated).
                log.warning(
                    "checkpoint of %s[%d] at %d does not fit the changelog [%d, %d); "
                    "restoring from the start",
                    self.changelog,
                    partition,
                    applied,
                    low,
                    high,
                )
                self.partitions[partition] = PartitionState({})
                self._drop_local(partition)
                applied = -1
            if applied + 1 < high:
                ends[partition] = high
                offset = OFFSET_BEGINNING if applied < 0 else applied + 1
                assignment.append(TopicPartition(self.changelog, partition, offset))
        if not assignment:
            return
        consumer.assign(assignment)
        started = last_report = time.monotonic()
        applied_records = 0
        position = dict.fromkeys(ends, -1)
        while any(position[p] + 1 < ends[p] for p in ends):
            if self.stopping.is_set():
                raise RestoreAbandonedError(self.changelog)
            faults.hit("restore.batch")
            for msg in consumer.consume(10_000, timeout=0.5):
                if msg.error() is not None:
                    log.warning("restoring %s: %s", self.changelog, msg.error())
                    continue
                partition, offset = cast(int, msg.partition()), cast(int, msg.offset())
                state = self.partitions[partition]
                key, value = cast(bytes, msg.key()), msg.value()
                if value is None:
                    state.delete(key)
                else:
                    state.set(key, value)
                position[partition] = offset
                applied_records += 1
            if time.monotonic() - last_report > _RESTORE_REPORT_SECONDS:
                last_report = time.monotonic()
                log.info(
                    "restoring %s: %d records, %d of %d partitions done",
                    self.changelog,
                    applied_records,
                    sum(position[p] + 1 >= ends[p] for p in ends),
                    len(ends),
                )
        self.restored = applied_records
        restored = Checkpoint(delivered=dict(position))
        for partition in position:
            upserts, deleted = self.partitions[partition].take_changes()
            restored.upserts[partition] = upserts
            restored.tombstones[partition] = deleted
        self.persist(restored)
        log.info(
            "restored %d changelog records of %s into %d partitions in %.2fs",
            applied_records,
            self.changelog,
            len(ends),
            time.monotonic() - started,
        )

    def _drop_local(self, partition: int) -> None:
        db = self._open()
        prefix = f"{partition}\x1f".encode()
        batch = WriteBatch(raw_mode=True)
        for key in db.keys(from_key=prefix):
            if not cast(bytes, key).startswith(prefix):
                break
            batch.delete(key)
        batch.delete(_META + str(partition).encode())
        db.write(batch)


def _watermarks(
    consumer: Consumer, tp: TopicPartition, stopping: threading.Event
) -> tuple[int, int]:
    """The partition's (low, high) offsets, waiting out a new topic's leader election."""
    try:
        return watermarks(consumer, tp, _WATERMARK_TIMEOUT_SECONDS, stopping)
    except KafkaException as exc:
        if stopping.is_set():
            raise RestoreAbandonedError(tp.topic) from exc
        raise


def produce(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    **kwargs: Any,
) -> None:
    """``producer.produce`` that waits for room when the local queue is full."""
    while True:
        try:
            producer.produce(topic, value, key, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)
