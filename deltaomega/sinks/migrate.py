"""Versioned DDL: ordered ``migrations/NNN_name.sql`` files, applied once each, at start.

On a cluster the database is created by the operator with the ``Replicated`` engine: its
DDL is replicated by ClickHouse itself (no ``ON CLUSTER``), so the migrations run once,
from any process, against any replica. Tables in it must be replicated too, so there each
``*MergeTree`` engine of the files becomes ``Replicated*MergeTree``, without the Keeper
path and replica arguments, which a Replicated database supplies.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import Any

from deltaomega.errors import SinkError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENGINE = re.compile(r"\bENGINE\s*=\s*(\w*MergeTree)\b")


def replicated(statement: str) -> str:
    """``statement`` with every ``*MergeTree`` engine made its ``Replicated*`` form."""
    return _ENGINE.sub(
        lambda m: (
            m.group(0)
            if m.group(1).startswith("Replicated")
            else m.group(0).replace(m.group(1), f"Replicated{m.group(1)}")
        ),
        statement,
    )


def migration_files() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) in version order."""
    folder = resources.files("deltaomega.sinks").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    return sorted(found)


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def apply_migrations(client: Any, database: str) -> list[str]:
    """Create ``database`` and apply what is missing; returns the names applied now."""
    if not _DATABASE.match(database):
        raise SinkError(f"invalid database name {database!r}")
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    engine = client.query(
        "SELECT engine FROM system.databases WHERE name = {db:String}",
        parameters={"db": database},
    ).result_rows[0][0]
    adapt = replicated if engine == "Replicated" else str
    client.command(
        adapt(
            f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
            "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
            "ENGINE = MergeTree ORDER BY version"
        )
    )
    done = {
        row[0]
        for row in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows
    }
    applied = []
    for version, name, sql in migration_files():
        if version in done:
            continue
        for statement in _statements(sql.replace("{db}", database)):
            try:
                client.command(adapt(statement))
            except Exception as exc:  # noqa: BLE001 - wrap whatever the driver raises
                raise SinkError(f"migration {name} failed: {exc}") from exc
        client.insert(
            "schema_migrations",
            [[version, name]],
            column_names=["version", "name"],
            database=database,
        )
        log.info("applied migration %s to %s", name, database)
        applied.append(name)
    return applied
