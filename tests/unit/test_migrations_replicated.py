"""In a Replicated database every MergeTree of the migrations becomes its replicated form."""

from __future__ import annotations

import re

from deltaomega.sinks.migrate import _statements, migration_files, replicated


def test_engines_become_replicated_and_nothing_else_changes() -> None:
    assert replicated("CREATE TABLE t (a Int8) ENGINE = ReplacingMergeTree(v) ORDER BY a") == (
        "CREATE TABLE t (a Int8) ENGINE = ReplicatedReplacingMergeTree(v) ORDER BY a"
    )
    assert replicated("CREATE TABLE t (a Int8)\nENGINE=MergeTree ORDER BY a") == (
        "CREATE TABLE t (a Int8)\nENGINE=ReplicatedMergeTree ORDER BY a"
    )
    already = "CREATE TABLE t (a Int8) ENGINE = ReplicatedMergeTree ORDER BY a"
    assert replicated(already) == already
    view = "CREATE MATERIALIZED VIEW v TO t AS SELECT a FROM u"
    assert replicated(view) == view


def test_every_table_of_the_migrations_is_replicated_there() -> None:
    engines = []
    for _, _, sql in migration_files():
        for statement in _statements(sql.replace("{db}", "d")):
            changed = replicated(statement)
            assert re.sub(r"Replicated(\w*MergeTree)", r"\1", changed) == statement
            engines += re.findall(r"ENGINE\s*=\s*(\w+)", changed)
    assert engines and all(e.startswith("Replicated") for e in engines), engines
    assert len(engines) == 19
