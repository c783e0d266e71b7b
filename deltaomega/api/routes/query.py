"""SQL for analysts: one read-only statement on the project's database (see
:mod:`deltaomega.api.analysis_sql` for what is refused and the limits per role)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Path, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from deltaomega.api.auth.access import requires
from deltaomega.api.deps import ContextDep, audit_request
from deltaomega.errors import NotFoundError
from deltaomega.security.audit import Outcome
from deltaomega.security.rate_limits import RouteClass
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


SavedName = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$", description="1–100 letters, digits, ' _.-'."
    ),
]


class SaveQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=100_000)
    description: str = Field(default="", max_length=2000)


class SavedQuery(BaseModel):
    name: str
    sql: str
    description: str
    saved_at: datetime


class SavedQueryList(BaseModel):
    queries: list[SavedQuery]


def _saved(row: dict[str, Any]) -> SavedQuery:
    return SavedQuery(**{**row, "saved_at": datetime.fromtimestamp(row["saved_at"] / 1000, UTC)})


class SchemaColumn(BaseModel):
    name: str
    type: str


class SchemaTable(BaseModel):
    name: str
    columns: list[SchemaColumn]


class QuerySchema(BaseModel):
    database: str
    tables: list[SchemaTable]


@router.get(
    "/schema",
    response_model=QuerySchema,
    summary="The tables a query may read, with their columns",
    **requires(Role.ANALYST),
)
async def query_schema(ctx: ContextDep) -> QuerySchema:
    tables = await in_thread(ctx.analysis.schema)
    return QuerySchema(
        database=ctx.analysis.database,
        tables=[
            SchemaTable(name=t, columns=[SchemaColumn(name=n, type=k) for n, k in columns])
            for t, columns in tables.items()
        ],
    )


@router.get(
    "/saved",
    response_model=SavedQueryList,
    summary="The caller's saved queries, by name",
    **requires(Role.ANALYST),
)
async def list_saved(ctx: ContextDep, request: Request) -> SavedQueryList:
    owner = request.state.principal.subject
    return SavedQueryList(queries=[_saved(r) for r in await ctx.queries.saved_queries(owner)])


@router.put(
    "/saved/{name}",
    response_model=SavedQuery,
    summary="Save (or replace) one of the caller's queries; it is checked as a run would be",
    **requires(Role.ANALYST, RouteClass.WRITE),
)
async def save_query(
    ctx: ContextDep, request: Request, name: SavedName, body: SaveQuery
) -> SavedQuery:
    await in_thread(ctx.analysis.check_statement, body.sql)
    owner = request.state.principal.subject
    now = int(time.time() * 1000)
    await ctx.queries.save_query(owner, name, body.sql, body.description, False, now)
    audit_request(ctx, request, "query.save", name, Outcome.OK, after=body.model_dump())
    return SavedQuery(name=name, sql=body.sql, description=body.description, saved_at=_at(now))


@router.delete(
    "/saved/{name}",
    status_code=204,
    summary="Delete one of the caller's saved queries",
    **requires(Role.ANALYST, RouteClass.WRITE, 404),
)
async def delete_saved(ctx: ContextDep, request: Request, name: SavedName) -> Response:
    owner = request.state.principal.subject
    found = await ctx.queries.saved_queries(owner, name)
    if not found:
        raise NotFoundError("saved query", name)
    await ctx.queries.save_query(owner, name, "", "", True, int(time.time() * 1000))
    audit_request(ctx, request, "query.delete", name, Outcome.OK, before=found[0])
    return Response(status_code=204)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
