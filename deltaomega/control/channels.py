"""Faust topics of raw bytes: records are Avro, encoded and decoded with the pipeline's codec
(single-object or schema registry), not by a Faust serializer."""

from __future__ import annotations

from typing import Any

import faust


def raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )
