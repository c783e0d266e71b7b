"""Exports: any output table over a range of windows as CSV, Parquet or Arrow, written to
the response a batch at a time, up to a row limit by role."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from enum import StrEnum
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep
from deltaomega.api.params import End, Start, time_range
from deltaomega.security.roles import Role
from deltaomega.security.tokens import Principal

router = APIRouter(prefix="/api/v1/export", tags=["analysis"])

_BATCH_ROWS = 10_000
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}


class Table(StrEnum):
    VOICE_STATES = "voice_states"
    INTERACTION_STATES = "interaction_states"
    PREDICTIONS = "predictions"
    CONFLICT_PREDICTIONS = "conflict_predictions"
    EMERGENCE = "emergence"
    PATTERNS = "patterns"
    ALERTS = "alerts"


def row_limit(role: Role, per_analyst: int) -> int:
    return per_analyst * (10 if role >= Role.ADMIN else 1)


_ACCESS = requires(Role.ANALYST)
_ACCESS["responses"][200] = {
    "content": {
        media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA.values()
    }
}


@router.get(
    "/{table}",
    summary="An output table's rows with window start in [start, end), as a file",
    response_class=StreamingResponse,
    **_ACCESS,
)
async def export_table(
    ctx: ContextDep,
    request: Request,
    table: Table,
    start: Start = None,
    end: End = None,
    format: Literal["csv", "parquet", "arrow"] = Query(default="csv"),  # noqa: B008
) -> StreamingResponse:
    """Rows in window order; ``DeltaOmega-Truncated: true`` when the range held more than
    the caller's limit (``DeltaOmega-Row-Limit``)."""
    principal: Principal = request.state.principal
    from_ms, to_ms = time_range(start, end, ctx.settings.api_default_range_ms)
    limit = row_limit(principal.role, ctx.settings.export_max_rows)
    rows = await ctx.queries.export(table.value, from_ms, to_ms, limit + 1)
    truncated = rows.num_rows > limit
    rows = rows.slice(0, limit)
    if format == "csv":
        rows = _flat(rows)
    name = f"{table.value}.{format}"
    return StreamingResponse(
        _write(rows, format),
        media_type=MEDIA[format],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "DeltaOmega-Row-Limit": str(limit),
            "DeltaOmega-Truncated": "true" if truncated else "false",
        },
    )


def _write(rows: pa.Table, format: str) -> Iterator[bytes]:
    """The file, a batch of rows at a time."""
    sink = io.BytesIO()
    writer: Any
    if format == "arrow":
        writer = pa.ipc.new_stream(sink, rows.schema)
    elif format == "parquet":
        writer = pq.ParquetWriter(sink, rows.schema)
    else:
        writer = pacsv.CSVWriter(sink, rows.schema)
    for batch in rows.to_batches(max_chunksize=_BATCH_ROWS):
        if format == "parquet":
            writer.write_table(pa.Table.from_batches([batch], rows.schema))
        else:
            writer.write_batch(batch)
        yield _drain(sink)
    writer.close()
    yield _drain(sink)


def _flat(rows: pa.Table) -> pa.Table:
    """CSV has no nested values: lists and maps (an alert's recommended actions) become JSON."""
    for i, field in enumerate(rows.schema):
        if pa.types.is_nested(field.type):
            text = pa.array([json.dumps(v) for v in rows.column(i).to_pylist()], pa.string())
            rows = rows.set_column(i, pa.field(field.name, pa.string()), text)
    return rows


def _drain(sink: io.BytesIO) -> bytes:
    data = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return data
