"""A CLI error is one clear line on stderr and a non-zero exit, never a traceback; bad
arguments are refused by the parser. Run as a user would: a new process each time."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from deltaomega.config import Settings
from tests.conftest import closed_port


def deltaomega(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple:
    """(exit code, stdout, stderr lines) of ``deltaomega ARGS`` in a fresh process."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DELTAOMEGA_")} | (
        env or {}
    )
    done = subprocess.run(
        [sys.executable, "-m", "deltaomega.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr.splitlines()


def assert_one_error_line(stderr: list[str], *fragments: str) -> None:
    errors = [line for line in stderr if line.startswith("deltaomega: error: ")]
    assert len(errors) == 1, stderr
    assert not any("Traceback" in line for line in stderr), stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_no_broker_is_one_line_naming_the_address_and_how_to_start_one(tmp_path: Path) -> None:
    port = closed_port()
    code, out, err = deltaomega(
        "simulate",
        "--duration",
        "1",
        env={
            "DELTAOMEGA_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
            "DELTAOMEGA_DATA_DIR": str(tmp_path),
        },
    )
    assert code == 1 and out == ""
    assert err == [
        f"deltaomega: error: Kafka is not reachable at 127.0.0.1:{port} (Failed to get "
        "metadata: Local: Broker transport failure); start the local broker with `deltaomega "
        "kafka start`, or set DELTAOMEGA_KAFKA_BOOTSTRAP to a running one"
    ]


def test_no_clickhouse_is_one_line_naming_where(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    code, out, err = deltaomega("migrate", env={"DELTAOMEGA_CLICKHOUSE_URL": url})
    assert code == 1 and out == ""
    assert err == [f"deltaomega: error: ClickHouse is not reachable at {url} (OperationalError)"]


def test_no_schema_registry_is_one_line_naming_where(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    url = f"http://127.0.0.1:{closed_port()}"
    code, _, err = deltaomega(
        "simulate",
        "--duration",
        "1",
        "--fast",
        env={
            "DELTAOMEGA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "DELTAOMEGA_TOPIC_PREFIX": settings.topic_prefix,
            "DELTAOMEGA_SCHEMA_REGISTRY_URL": url,
        },
    )
    assert code == 1
    assert_one_error_line(err, f"the schema registry at {url} is not reachable")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--voices", "-3"], "argument --voices: must be a whole number of at least 1"),
        (["simulate", "--voices", "many"], "argument --voices: must be a whole number, got 'many'"),
        (["simulate", "--rate", "0"], "argument --rate: must be a number above 0, got 0"),
        (["simulate", "--duration", "nan"], "argument --duration: must be a number above 0"),
        (["simulate", "--batch-size", "0"], "argument --batch-size: must be a whole number of"),
        (["simulate", "--seed", "-1"], "argument --seed: must be a whole number of at least 0"),
        (["run", "--rate", "-5"], "argument --rate: must be a number above 0, got -5"),
        (["kafka", "restart"], "argument action: invalid choice: 'restart'"),
    ],
)
def test_bad_arguments_are_refused_by_the_parser(args: list[str], message: str) -> None:
    code, out, err = deltaomega(*args)
    assert code == 2 and out == ""
    assert err[-1].startswith("deltaomega") and message in err[-1], err
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize(
    ("env", "args", "fragments"),
    [
        (
            {"DELTAOMEGA_PARTITIONS": "0"},
            ["models", "list"],
            ["DELTAOMEGA_PARTITIONS: Input should be greater than or equal to 1"],
        ),
        ({}, ["models", "activate", "v-none"], ["no model version at "]),
        ({}, ["models", "activate"], ["models activate needs a VERSION"]),
    ],
)
def test_other_failures_are_one_line(
    env: dict[str, str], args: list[str], fragments: list[str], tmp_path: Path
) -> None:
    code, _, err = deltaomega(*args, env={"DELTAOMEGA_DATA_DIR": str(tmp_path), **env})
    assert code == 1
    assert_one_error_line(err, *fragments)


def test_an_unwritable_labels_file_is_one_line(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    code, _, err = deltaomega(
        "simulate",
        "--duration",
        "1",
        "--fast",
        "--labels",
        str(tmp_path / "missing" / "labels.jsonl"),
        env={
            "DELTAOMEGA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "DELTAOMEGA_TOPIC_PREFIX": settings.topic_prefix,
        },
    )
    assert code == 1
    assert_one_error_line(err, "No such file or directory", "labels.jsonl")
