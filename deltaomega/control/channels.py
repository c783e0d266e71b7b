"""Faust topics of raw bytes: records are Avro, encoded and decoded with the pipeline's codec
(single-object or schema registry), not by a Faust serializer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import faust

from deltaomega.errors import DecodeError
from deltaomega.schemas.codec import AvroCodec

log = logging.getLogger(__name__)


def raw_topic(app: faust.App, name: str | tuple[str, ...], partitions: int) -> Any:
    """One topic, or several read by one agent (co-partitioned: the same keys and count)."""
    return app.topic(
        *((name,) if isinstance(name, str) else name),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


async def decoded(
    stream: Any, codec: AvroCodec, schema: str
) -> AsyncIterator[tuple[bytes, dict[str, Any]]]:
    """(key, record) of each record of ``stream``; one that does not decode, or is not a
    ``schema`` record, is logged and skipped: it changes nothing."""
    async for key, value in stream.items():
        try:
            name, record = codec.decode(value)
        except DecodeError as exc:
            log.warning("skipping an unreadable record (key %r): %s", key, exc)
            continue
        if name != schema:
            log.warning("skipping a %s where %s records go (key %r)", name, schema, key)
            continue
        yield key, record
