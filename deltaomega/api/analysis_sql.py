"""Analysts' SQL: one read-only statement on the project's database, checked by ClickHouse's
own parser and run under ClickHouse's own guards.

The statement is parsed with ``EXPLAIN AST`` (ClickHouse's parser, not ours) and refused
when it is not a SELECT, names another database (``system`` included), uses a table function
or a function that reaches outside (``file``, ``url``, ``remote`` …) or carries its own
SETTINGS. It then runs on a connection of its own (``readonly = 2``: no writes, and the
limits of `limits` per role) with ``max_execution_time``, ``max_result_rows`` (throw),
``max_rows_to_read`` and ``max_memory_usage``; a query over a limit is stopped by
ClickHouse and answered with a 422 naming the limit.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.exceptions import DatabaseError

from deltaomega.config import Settings
from deltaomega.errors import ValidationError
from deltaomega.security.roles import Role
from deltaomega.sinks.clickhouse import ClickHouse, connect


@dataclass(frozen=True)
class Limits:
    rows: int
    seconds: float
    rows_to_read: int
    memory_bytes: int

    def settings(self) -> dict[str, Any]:
        return {
            "readonly": 2,
            "max_execution_time": self.seconds,
            "max_result_rows": self.rows,
            "result_overflow_mode": "throw",
            "max_rows_to_read": self.rows_to_read,
            "max_memory_usage": self.memory_bytes,
        }


def limits(settings: Settings, role: Role) -> Limits:
    """Analysts and operators get the settings' limits; admins ten times the rows and
    three times the time."""
    admin = role >= Role.ADMIN
    return Limits(
        rows=settings.analysis_max_result_rows * (10 if admin else 1),
        seconds=settings.analysis_max_execution_seconds * (3 if admin else 1),
        rows_to_read=settings.analysis_max_rows_to_read * (5 if admin else 1),
        memory_bytes=settings.analysis_max_memory_bytes * (2 if admin else 1),
    )


#: Functions that read or reach outside the database, wherever they appear.
OUTSIDE = frozenset(
    {
        "file",
        "url",
        "urlcluster",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "s3",
        "s3cluster",
        "gcs",
        "azureblobstorage",
        "hdfs",
        "mysql",
        "postgresql",
        "mongodb",
        "redis",
        "sqlite",
        "jdbc",
        "odbc",
        "executable",
        "input",
        "dictionary",
        "dictget",
        "iceberg",
        "deltalake",
        "hudi",
        "merge",
    }
)
_LINE = re.compile(r"^(?P<indent> *)(?P<node>\w+)(?: (?P<value>\S+))?")
#: ClickHouse's codes for what a query did wrong, and what the answer names
_STOPPED = {
    159: "it ran longer than {seconds:g} s (max_execution_time)",
    396: "its result has more than {rows} rows (max_result_rows)",
    158: "it would read more than {rows_to_read} rows (max_rows_to_read)",
    241: "it needs more than {memory_bytes} bytes of memory (max_memory_usage)",
}


class AnalysisSql:
    """The analysts' connection (created on first use) and the checks before it runs."""

    def __init__(self, settings: Settings, server: Settings | None = None) -> None:
        """``server``: where ClickHouse is, when another process's settings say (the
        API's reads share the worker's engine); the limits and database are ``settings``'."""
        self.settings = settings
        self.server = server or settings
        self.database = settings.clickhouse_database
        self._pool: ClickHouse | None = None

    @property
    def pool(self) -> ClickHouse:
        if self._pool is None:
            # its own sessions: a session that ran with readonly stays so
            self._pool = connect(self.server, size=1, database=self.database)
        return self._pool

    def check(self, sql: str, databases: set[str]) -> None:
        """ValidationError naming ``sql`` when the statement may not run."""
        if _statements(sql) > 1:
            raise ValidationError(
                "sql", "one statement at a time (Multi-statements are not allowed)"
            )
        ast = self._ast(sql)
        if not ast or not ast[0][1].startswith("SelectWithUnionQuery"):
            kind = ast[0][1] if ast else "nothing"
            raise ValidationError("sql", f"only a SELECT may run here, not {kind}")
        previous = ""
        for _, node, value in ast:
            if node == "Set":
                raise ValidationError("sql", "a query may not carry SETTINGS")
            if node == "TableIdentifier" and value:
                self._check_table(value)
            if node == "Identifier" and value and value.split(".", 1)[0] in databases:
                self._check_table(value)
            if node == "Function" and value:
                if previous == "TableExpression":
                    raise ValidationError("sql", f"table functions are not allowed here ({value})")
                if value.lower() in OUTSIDE or value.lower().startswith("dictget"):
                    raise ValidationError("sql", f"the function {value} reaches outside")
            previous = node

    def _check_table(self, name: str) -> None:
        database, dot, _ = name.partition(".")
        if dot and database != self.database:
            raise ValidationError(
                "sql", f"only the {self.database} database may be read (not {database})"
            )

    def _ast(self, sql: str) -> list[tuple[int, str, str | None]]:
        def explain(client: Any) -> list[str] | str:
            try:
                return [row[0] for row in client.query(f"EXPLAIN AST {sql}").result_rows]
            except DatabaseError as exc:
                return _first_line(exc)

        lines = self.pool.call(explain)
        if isinstance(lines, str):
            raise ValidationError("sql", lines)
        out = []
        for line in lines:
            match = _LINE.match(line)
            if match:
                out.append((len(match["indent"]), match["node"], match["value"]))
        return out

    def check_statement(self, sql: str) -> None:
        """:meth:`check` against the databases there are now."""
        self.check(sql, self.databases())

    def schema(self) -> dict[str, list[tuple[str, str]]]:
        """The project's tables and their columns (name, type), for analysts at work."""
        rows = self.pool.call(
            lambda c: (
                c.query(
                    "SELECT table, name, type FROM system.columns WHERE database = {db:String} "
                    "ORDER BY table, position",
                    parameters={"db": self.database},
                ).result_rows
            )
        )
        out: dict[str, list[tuple[str, str]]] = {}
        for table, name, kind in rows:
            out.setdefault(table, []).append((name, kind))
        return out

    def databases(self) -> set[str]:
        rows = self.pool.call(lambda c: c.query("SHOW DATABASES").result_rows)
        return {r[0] for r in rows}

    def run(self, sql: str, role: Role, arrow: bool) -> tuple[Any, float]:
        """(rows or an Arrow table, seconds taken); ValidationError when ClickHouse stopped
        it or refused it."""
        bounds = limits(self.settings, role)
        self.check_statement(sql)
        started = time.monotonic()

        def execute(client: Any) -> Any:
            try:
                if arrow:
                    return client.query_arrow(sql, settings=bounds.settings())
                return client.query(sql, settings=bounds.settings())
            except DatabaseError as exc:
                return exc

        result = self.pool.call(execute)
        if isinstance(result, DatabaseError):
            code = getattr(result, "code", None)
            stopped = _STOPPED.get(code) if isinstance(code, int) else None
            if stopped is not None:
                raise ValidationError("sql", "stopped: " + stopped.format(**vars(bounds)))
            raise ValidationError("sql", _first_line(result))
        # ClickHouse does not hold a constant result (no table read) to max_result_rows
        rows = result.num_rows if arrow else len(result.result_rows)
        if rows > bounds.rows:
            raise ValidationError("sql", "stopped: " + _STOPPED[396].format(**vars(bounds)))
        return result, time.monotonic() - started


def _first_line(exc: Exception) -> str:
    """ClickHouse's message without its code prefix, version and stack."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^(Code: \d+\. )?(DB::Exception: )?", "", text)
    text = re.sub(r"^(Code: \d+\. )?(DB::Exception: )?", "", text)
    return re.sub(r" \(version [^)]*\)", "", text)[:500]


_QUOTES = {"'", '"', "`"}


def _statements(sql: str) -> int:
    """How many statements ``sql`` holds: ``;`` outside quotes and comments, with more text
    after it, separates two."""
    count, i, n, pending = 1, 0, len(sql), False
    while i < n:
        c = sql[i]
        if c in _QUOTES:
            i += 1
            while i < n and sql[i] != c:
                i += 2 if sql[i] == "\\" else 1
        elif sql.startswith("--", i):
            i = sql.find("\n", i)
            i = n if i < 0 else i
        elif sql.startswith("/*", i):
            i = sql.find("*/", i + 2)
            i = n if i < 0 else i + 1
        elif c == ";":
            pending = True
        elif pending and not c.isspace():
            count, pending = count + 1, False
        i += 1
    return count
