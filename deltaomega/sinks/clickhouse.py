"""ClickHouse access: the client factory and the column-batch writer.

chdb runs one engine per process and one process owns a data path, so clients for a
``chdb://`` DSN are shared process-wide and every call on them is serialised.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import clickhouse_connect
import numpy as np
import pyarrow as pa

from deltaomega.config import Settings
from deltaomega.metrics import SINK_ROWS, SINK_SECONDS
from deltaomega.schemas.records import (
    INTERACTION_KINDS,
    METRICS,
    InteractionEventColumns,
    VoiceEventColumns,
)

T = TypeVar("T")

_SHARED: dict[str, Any] = {}
_SHARED_LOCK = threading.Lock()
_CONTEXT = pa.map_(pa.string(), pa.string())
_TS = pa.timestamp("ms", tz="UTC")
_STRINGS = pa.list_(pa.string())
_KINDS = pa.array(INTERACTION_KINDS, pa.string())
#: Every ``timestamp-millis`` field of the record types stored through ``insert_states``
#: (decoded as epoch-millis ints); a unit test keeps this in step with the schemas.
TIMESTAMP_FIELDS = frozenset({"window_start", "window_end", "target_window_start", "produced_at"})


class ClickHouse:
    """A clickhouse-connect client plus the lock that chdb needs; run calls off the loop."""

    def __init__(self, client: Any, serialise: bool) -> None:
        self.client = client
        self._lock: threading.Lock | None = threading.Lock() if serialise else None

    def call(self, fn: Callable[[Any], T]) -> T:
        if self._lock is None:
            return fn(self.client)
        with self._lock:
            return fn(self.client)

    async def acall(self, fn: Callable[[Any], T]) -> T:
        return await asyncio.to_thread(self.call, fn)

    def rows(self, sql: str, **parameters: Any) -> list[dict[str, Any]]:
        """A query's rows as dicts keyed by column name (parameters bound, not formatted)."""
        result = self.call(lambda c: c.query(sql, parameters=parameters))
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    async def arows(self, sql: str, **parameters: Any) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.rows, sql, **parameters)


def create_client(settings: Settings) -> Any:
    """A raw clickhouse-connect client for ``settings.clickhouse_dsn``."""
    dsn = settings.clickhouse_dsn
    if dsn.startswith("chdb:"):
        with _SHARED_LOCK:
            if dsn not in _SHARED:
                _SHARED[dsn] = clickhouse_connect.get_client(dsn=dsn)
            return _SHARED[dsn]
    return clickhouse_connect.get_client(
        dsn=dsn,
        username=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        # Concurrent queries from the API would collide on one server session.
        autogenerate_session_id=False,
    )


def connect(settings: Settings) -> ClickHouse:
    return ClickHouse(create_client(settings), settings.clickhouse_dsn.startswith("chdb:"))


class ClickHouseSink:
    """Column-oriented (Arrow) inserts of raw events, closed windows and model outputs."""

    def __init__(self, clickhouse: ClickHouse, database: str) -> None:
        self.clickhouse = clickhouse
        self.database = database

    def _insert(self, table: str, columns: dict[str, Any]) -> int:
        arrow = pa.table(columns)
        if arrow.num_rows == 0:
            return 0
        started = time.perf_counter()
        self.clickhouse.call(lambda c: c.insert_arrow(table, arrow, database=self.database))
        SINK_SECONDS.labels(table).observe(time.perf_counter() - started)
        SINK_ROWS.labels(table).inc(arrow.num_rows)
        return int(arrow.num_rows)

    def insert_voice_events(
        self, cols: VoiceEventColumns, partitions: np.ndarray, offsets: np.ndarray
    ) -> int:
        columns: dict[str, Any] = {
            "event_id": cols.event_id,
            "voice_id": cols.voice_id,
            "ts": pa.array(cols.ts, _TS),
        }
        for j, name in enumerate(METRICS):
            columns[name] = pa.array(cols.metrics[:, j], pa.float64())
        columns["context"] = cols.context
        columns["kafka_partition"] = pa.array(partitions, pa.uint32())
        columns["kafka_offset"] = pa.array(offsets, pa.uint64())
        return self._insert("voice_events", columns)

    def insert_interaction_events(
        self, cols: InteractionEventColumns, partitions: np.ndarray, offsets: np.ndarray
    ) -> int:
        columns: dict[str, Any] = {
            "event_id": cols.event_id,
            "ts": pa.array(cols.ts, _TS),
            "source": cols.source,
            "target": cols.target,
            "kind": _KINDS.take(cols.kind),
            "strength": pa.array(cols.strength, pa.float64()),
            "context": cols.context,
            "kafka_partition": pa.array(partitions, pa.uint32()),
            "kafka_offset": pa.array(offsets, pa.uint64()),
        }
        return self._insert("interaction_events", columns)

    def insert_states(
        self,
        table: str,
        records: Sequence[dict[str, Any]],
        partitions: Sequence[int],
        offsets: Sequence[int],
    ) -> int:
        """Insert decoded Avro records whose field names are the table's column names.

        Serves closed windows and model outputs alike. Types are set rather than inferred
        where inference would be wrong: epoch-millis fields become timestamps, and a column
        of empty lists must still be ``list<string>`` to fit ``Array(String)``.
        """
        if not records:
            return 0
        columns: dict[str, Any] = {}
        for name in records[0]:
            values = [r[name] for r in records]
            columns[name] = pa.array(values, _arrow_type(name, values))
        columns["kafka_partition"] = pa.array(partitions, pa.uint32())
        columns["kafka_offset"] = pa.array(offsets, pa.uint64())
        return self._insert(table, columns)


def _arrow_type(name: str, values: Sequence[Any]) -> Any:
    """The Arrow type for one record field; None lets pyarrow infer (numbers, strings).

    Every array in the contract is an array of strings (``recommended_actions``).
    """
    if name in TIMESTAMP_FIELDS:
        return _TS
    sample = values[0]
    if isinstance(sample, bool):  # before int: bool is an int subclass
        return pa.bool_()
    if isinstance(sample, list):
        return _STRINGS
    if isinstance(sample, dict):
        return _CONTEXT
    return None
