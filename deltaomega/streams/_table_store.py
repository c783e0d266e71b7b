"""Bind a Faust table to one partition of a batch, so each key is written once per batch.

Faust's RocksDB store and changelog pick the partition from ``faust.current_event()``,
which in an agent is the stream's last event. A batch mixes partitions, so before
touching the keys of partition *p* we make an event of *p* the current one. Faust
exposes no public setter for that context; ``Stream._set_current_event`` is the one its
own stream iterator uses.
"""

from __future__ import annotations

from typing import Any


def bind_partition(stream: Any, event: Any) -> None:
    stream._set_current_event(event)  # noqa: SLF001 - see the module docstring


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
