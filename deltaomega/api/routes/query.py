"""SQL for analysts: one read-only statement on the project's database (see
:mod:`deltaomega.api.analysis_sql` for what is refused and the limits per role)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep
from deltaomega.security.roles import Role
from deltaomega.security.tokens import Principal
from deltaomega.threads import in_thread

router = APIRouter(prefix="/api/v1/query", tags=["analysis"])

ARROW = "application/vnd.apache.arrow.stream"


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=100_000, description="One SELECT statement.")
    format: Literal["json", "arrow"] = Field(
        default="json", description=f"'arrow': an Arrow IPC stream ({ARROW})."
    )


class Column(BaseModel):
    name: str
    type: str


class QueryResult(BaseModel):
    columns: list[Column]
    rows: list[list[Any]]
    row_count: int
    elapsed_ms: float


def _utc(value: Any) -> Any:
    """ClickHouse's times come without a zone; the project's are all UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


_ACCESS = requires(Role.ANALYST)
_ACCESS["responses"][200] = {"content": {ARROW: {"schema": {"type": "string", "format": "binary"}}}}


@router.post(
    "",
    response_model=QueryResult,
    summary="Run one read-only SELECT on the project's database, within the role's limits",
    **_ACCESS,
)
async def run_query(ctx: ContextDep, request: Request, body: QueryRequest) -> Any:
    principal: Principal = request.state.principal
    arrow = body.format == "arrow"
    result, seconds = await in_thread(ctx.analysis.run, body.sql, principal.role, arrow)
    if arrow:
        table: pa.Table = result
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return Response(sink.getvalue().to_pybytes(), media_type=ARROW)
    return QueryResult(
        columns=[
            Column(name=n, type=t.name)
            for n, t in zip(result.column_names, result.column_types, strict=True)
        ],
        rows=jsonable_encoder([[_utc(v) for v in r] for r in result.result_rows]),
        row_count=len(result.result_rows),
        elapsed_ms=round(seconds * 1000, 1),
    )
