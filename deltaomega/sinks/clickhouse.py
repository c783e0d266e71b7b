"""ClickHouse access: the connection pool, error mapping, and the column-batch writer.

The embedded engine (chdb) hosts one database path per process, but any number of
connections to it run queries in parallel; a client serialises the calls made on it. So
the worker's inserts and the API's reads use connections of their own and never wait on
each other's locks. A failure to reach the engine or server is a
:class:`ClickHouseUnavailableError`, reported to the ``clickhouse`` outage tracker; callers
retry (the sink) or answer 503 (the API).
"""

from __future__ import annotations

import functools
import queue
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import clickhouse_connect
import numpy as np
import pyarrow as pa
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from deltaomega import faults
from deltaomega.config import Settings
from deltaomega.errors import ClickHouseUnavailableError
from deltaomega.metrics import SINK_ROWS, SINK_SECONDS
from deltaomega.outages import outage
from deltaomega.schemas._loader import timestamp_fields
from deltaomega.schemas.records import (
    INTERACTION_KINDS,
    METRICS,
    InteractionEventColumns,
    VoiceEventColumns,
)
from deltaomega.threads import in_thread

T = TypeVar("T")

_CONTEXT = pa.map_(pa.string(), pa.string())
_TS = pa.timestamp("ms", tz="UTC")
_STRINGS = pa.list_(pa.string())
_KINDS = pa.array(INTERACTION_KINDS, pa.string())
#: Every ``timestamp-millis`` field of the record types (decoded as epoch-millis ints),
#: read from the schemas; a unit test checks no schema uses one of these names otherwise.
TIMESTAMP_FIELDS = timestamp_fields()
#: Server errors that mean "try again later", not "this query is wrong": network and
#: socket errors, timeouts, too many queries, memory limits, read-only replicas, and a
#: database or table the migrations have not created yet.
_UNAVAILABLE_CODES = frozenset({60, 81, 159, 202, 209, 210, 241, 242, 425})


def _unavailable(exc: Exception) -> bool:
    if isinstance(exc, faults.InjectedFaultError | OperationalError):
        return True
    return isinstance(exc, DatabaseError) and getattr(exc, "code", None) in _UNAVAILABLE_CODES


class ClickHouse:
    """A pool of clickhouse-connect clients on one DSN; call it from threads, or ``acall``.

    Clients are made when first needed, so a process starts while ClickHouse is away.
    """

    def __init__(
        self, settings: Settings, size: int = 1, *, database: str | None = None, **options: Any
    ) -> None:
        self.settings = settings
        self._factory = functools.partial(create_client, settings, database=database, **options)
        self._where = settings.clickhouse_url or "the embedded engine"
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = queue.Queue[None]()
        for _ in range(size):
            self._slots.put(None)

    @property
    def client(self) -> Any:
        """One client, for code that drives clickhouse-connect itself (migrations, tests)."""
        return self.call(lambda client: client)

    def call(self, fn: Callable[[Any], T]) -> T:
        self._slots.get()
        client = None
        try:
            faults.hit("clickhouse.call")
            client = self._idle.get_nowait() if not self._idle.empty() else self._factory()
            result = fn(client)
        except Exception as exc:
            if not _unavailable(exc):
                raise
            # A client that lost its server is dropped; the next call makes a new one.
            client = None
            outage("clickhouse").failed(f"{type(exc).__name__}: {exc}"[:300])
            raise ClickHouseUnavailableError(self._where, type(exc).__name__) from exc
        finally:
            if client is not None:
                self._idle.put(client)
            self._slots.put(None)
        outage("clickhouse").recovered()
        return result

    async def acall(self, fn: Callable[[Any], T]) -> T:
        return await in_thread(self.call, fn)

    def rows(self, sql: str, **parameters: Any) -> list[dict[str, Any]]:
        """A query's rows as dicts keyed by column name (parameters bound, not formatted)."""
        result = self.call(lambda c: c.query(sql, parameters=parameters))
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    async def arows(self, sql: str, **parameters: Any) -> list[dict[str, Any]]:
        return await in_thread(self.rows, sql, **parameters)


def create_client(settings: Settings, *, database: str | None = None, **options: Any) -> Any:
    """A new clickhouse-connect client for ``settings.clickhouse_dsn`` (raises if it is away);
    ``database``: the one unqualified names mean."""
    dsn = settings.clickhouse_dsn
    chosen: dict[str, Any] = {"database": database} if database is not None else {}
    if dsn.startswith("chdb:"):
        return clickhouse_connect.get_client(dsn=dsn, settings=options or None, **chosen)
    return clickhouse_connect.get_client(
        dsn=dsn,
        **chosen,
        username=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        # Concurrent queries from the API would collide on one server session.
        autogenerate_session_id=False,
        # https:// URLs verify the server against this CA bundle (else the system's)
        ca_cert=str(settings.clickhouse_ca_file) if settings.clickhouse_ca_file else None,
        settings=options or None,
    )


def connect(
    settings: Settings, size: int = 1, *, database: str | None = None, **options: Any
) -> ClickHouse:
    """A pool of ``size`` clients; ``options`` are ClickHouse settings for their queries."""
    return ClickHouse(settings, size, database=database, **options)


class ClickHouseSink:
    """Column-oriented (Arrow) inserts of raw events, closed windows and model outputs."""

    def __init__(self, clickhouse: ClickHouse, database: str) -> None:
        self.clickhouse = clickhouse
        self.database = database

    def _insert(self, table: str, columns: dict[str, Any], token: str | None = None) -> int:
        """One insert; with ``token``, a repeat of it (same token) inserts nothing (tables
        keep the tokens of their last ``non_replicated_deduplication_window`` blocks)."""
        arrow = pa.table(columns)
        if arrow.num_rows == 0:
            return 0
        started = time.perf_counter()
        options = None if token is None else {"insert_deduplication_token": token}

        def insert(client: Any) -> None:
            faults.hit("clickhouse.insert")
            client.insert_arrow(table, arrow, database=self.database, settings=options)
            faults.hit("clickhouse.inserted")

        self.clickhouse.call(insert)
        SINK_SECONDS.labels(table).observe(time.perf_counter() - started)
        SINK_ROWS.labels(table).inc(arrow.num_rows)
        return int(arrow.num_rows)

    def insert_voice_events(
        self,
        cols: VoiceEventColumns,
        partitions: np.ndarray,
        offsets: np.ndarray,
        token: str | None = None,
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
        return self._insert("voice_events", columns, token)

    def insert_interaction_events(
        self,
        cols: InteractionEventColumns,
        partitions: np.ndarray,
        offsets: np.ndarray,
        token: str | None = None,
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
        return self._insert("interaction_events", columns, token)

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
