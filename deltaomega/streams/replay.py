"""After a crash, the first batch of a partition re-forms exactly the batch that landed
but was not committed, so its raw rows carry the same deduplication token.

A batch's raw rows go into ClickHouse in one insert whose token is made of the source
ranges they came from (each partition's first and last offset), and only after the
changelog marker that covers those records was delivered. A marker ahead of the committed
offset therefore means: that range of records may already be in ClickHouse. If the replay
puts the same records in one insert, ClickHouse drops the repeat by its token; had it cut
them differently (a poll returns what it has), the token would differ and the rows would
land twice. So until every such range is complete, the consumer holds its records back
and takes them, all partitions' together, as the batch that landed.

A worker that restarts gets its partitions back (static membership), so its replays are
exact. When another worker takes the partitions of one that died, it may get only part of
that worker's last batch: those rows can then land twice until ClickHouse merges them
(reads with FINAL are exact either way).
"""

from __future__ import annotations

import logging
import time
from typing import cast

from confluent_kafka import Message

log = logging.getLogger(__name__)

#: A range still incomplete after this long (its records gone to retention, say) is
#: given up on: its rows may then land twice, which FINAL reads collapse.
_GIVE_UP_SECONDS = 60.0


class ReplayShaper:
    def __init__(self) -> None:
        #: partition → last offset of the range that may have landed uncommitted
        self.pending: dict[int, int] = {}
        self._taken: list[Message] = []
        self._held: list[Message] = []
        self._seen: dict[int, int] = {}
        self._since = 0.0

    def expect(self, partition: int, last: int) -> None:
        """Records of ``partition`` up to ``last`` must form their first batch together."""
        if not self.pending:
            self._since = time.monotonic()
        self.pending[partition] = last

    def forget(self, partitions: list[int]) -> None:
        """Revoked: nothing of theirs is to be taken or held any more."""
        gone = set(partitions)
        for partition in gone:
            self.pending.pop(partition, None)
            self._seen.pop(partition, None)
        self._taken = [m for m in self._taken if m.partition() not in gone]
        self._held = [m for m in self._held if m.partition() not in gone]

    def shape(self, messages: list[Message]) -> list[Message] | None:
        """The messages to make a batch of now, or None while a range is incomplete."""
        if not self.pending:
            if not self._held:
                return messages
            out, self._held = self._held + messages, []
            return out
        for message in messages:
            partition, offset = cast(int, message.partition()), cast(int, message.offset())
            last = self.pending.get(partition)
            if last is not None and message.error() is None:
                self._seen[partition] = max(self._seen.get(partition, -1), offset)
                if offset <= last:
                    self._taken.append(message)
                    continue
            self._held.append(message)
        incomplete = [p for p, last in self.pending.items() if self._seen.get(p, -1) < last]
        if incomplete and time.monotonic() - self._since < _GIVE_UP_SECONDS:
            return None
        if incomplete:
            log.warning("replay of partitions %s incomplete; batching on without it", incomplete)
        out, self._taken = self._taken, []
        self.pending.clear()
        self._seen.clear()
        return out
