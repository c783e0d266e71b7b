"""Versioned DDL: ordered ``migrations/NNN_name.sql`` files, applied once each, at start."""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import Any

from deltaomega.errors import SinkError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
        "ENGINE = MergeTree ORDER BY version"
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
                client.command(statement)
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
