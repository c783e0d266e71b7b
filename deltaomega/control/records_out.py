"""The control plane's busiest records through a librdkafka producer rather than Faust's.

In a tick's burst of hundreds of alerts, Faust's producer path (a future per record, its
buffer's task, aiokafka building each batch in Python) cost the dispatch agent about half
its CPU: 0.5 of 1.1 ms per alert went to the conditions table's changelog alone. Here the
same records, serialized as Faust serializes them, go out through one confluent-kafka
producer, which Faust's own flush (before every offset commit) flushes too, so a record
is out before the event that made it counts as handled, as with Faust's producer. Faust
still owns the tables: their recovery at start reads the changelog as it always does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import faust
from faust.types import FutureMessage, TableT
from faust.types.codecs import CodecArg

from deltaomega.config import Settings
from deltaomega.errors import DeliveryError
from deltaomega.outages import outage
from deltaomega.streams.outputs import BatchOutputs
from deltaomega.threads import in_thread


def control_records(app: faust.App, settings: Settings) -> BatchOutputs:
    """A producer flushed with Faust's (before each offset commit) and closed with the app."""
    outputs = BatchOutputs(settings, "control-records")
    faust_flush = app.producer.flush

    def flush_records() -> None:
        try:
            outputs.flush()
        except DeliveryError as exc:
            outage("kafka").failed(f"control plane records: {exc}")

    async def flush() -> None:
        await faust_flush()
        await in_thread(flush_records)

    app.producer.flush = flush  # type: ignore[method-assign]

    @app.on_before_shutdown.connect
    async def close_records(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await in_thread(outputs.close)

    # (delivery reports are served by the flush: a poll per record let go of the GIL)
    return outputs


class _ChangelogTable(faust.Table[Any, Any]):
    """A table whose changelog records leave through :func:`control_records`' producer."""

    emit: Callable[..., None]

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: CodecArg | None = None,
        value_serializer: CodecArg | None = None,
    ) -> FutureMessage:
        # The record as Faust's send_changelog makes it (serialized, partitioned); the
        # future is never resolved, and nothing waits on it (a memory store keeps no offsets).
        fut = self.changelog_topic.as_future_message(
            key=key,
            value=value,
            partition=partition,
            key_serializer=key_serializer or self.key_serializer,
            value_serializer=value_serializer or self.value_serializer,
            eager_partitioning=True,
        )
        message = fut.message
        extra = {"headers": message.headers} if message.headers else {}
        self.emit(message.key, message.value, partition=message.partition, **extra)
        return fut


def changelogged_table(
    app: faust.App, outputs: BatchOutputs, name: str, **kwargs: Any
) -> TableT[Any, Any]:
    """``app.Table(name, **kwargs)`` with its changelog written through ``outputs``."""
    table = _ChangelogTable(app, name=name, beacon=app.tables.beacon, **kwargs)
    table.emit = outputs.emit_to(table.changelog_topic.get_topic_name())
    return cast(TableT[Any, Any], app.tables.add(table))
