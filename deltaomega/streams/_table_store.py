"""Bind a Faust table to one partition of a batch, so each key is written once per batch.

Faust's RocksDB store and changelog pick the partition from ``faust.current_event()``,
which in an agent is the stream's last event. A batch mixes partitions, so while the keys
of partition *p* are touched, an event of *p* must be the current one. Faust has no public
setter: we set the context variable ``current_event()`` reads, for the duration of a
``with`` block, and restore it after. (``Stream._set_current_event`` would also replace
``stream.current_event``, which ``noack_take`` reads to buffer the next event: the next
event would be lost and an old one buffered twice.)
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event


@contextmanager
def bound_to_partition_of(event: Any) -> Iterator[None]:
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class FaustTableStore:
    """:class:`~deltaomega.streams.windows.PartitionStore` over a Faust table."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: bytes) -> bytes | None:
        value = self.table.get(key)
        return None if value is None else bytes(value)

    def set(self, key: bytes, value: bytes) -> None:
        self.table[key] = value

    def delete(self, key: bytes) -> None:
        if key in self.table:
            del self.table[key]

    def keys(self) -> list[bytes]:
        return [bytes(k) for k in self.table.keys()]
