"""API keys as a user handles them: `deltaomega auth create-key | list-keys | revoke-key` in
processes of their own, two API processes that accept a key and refuse it within 5 s of
its revocation, and a keys topic that never holds a key, only its hash."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable

import httpx
from confluent_kafka import Consumer, TopicPartition

from deltaomega.config import Settings
from deltaomega.topics import Topics
from tests.conftest import RunningService
from tests.integration.test_cli_errors import assert_one_error_line, deltaomega
from tests.processes import settings_env


def _create(env: dict[str, str], *args: str) -> tuple[str, str]:
    code, out, err = deltaomega("auth", "create-key", *args, env=env)
    assert code == 0, err
    key = out.strip()
    assert re.fullmatch(r"dok_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", key), out
    key_id = key.split("_")[1]
    assert err == [
        f"created key {key_id} ({args[1]}, {args[3]}, "
        f"{args[5] if len(args) > 5 else 'standard'}); it is shown this once: store it now"
    ]
    return key_id, key


def _records(settings: Settings) -> list[tuple[bytes, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "inspect",
            "enable.auto.commit": False,
        }
    )
    topic = Topics.from_settings(settings).api_keys
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, 0)])
    out: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 20
    while len(out) < high and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            out.append((message.key(), message.value()))
    consumer.close()
    return out


def test_a_key_works_on_every_api_process_until_revoked(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(rate_limits=False)
    env = settings_env(settings)
    first = service_factory(settings, worker=False)
    second = service_factory(settings, worker=False)

    key_id, key = _create(env, "--name", "ci-bot", "--role", "analyst", "--tier", "premium")
    viewer_id, viewer = _create(env, "--name", "wall screen", "--role", "viewer")
    headers = {"X-API-Key": key}
    for service in (first, second):
        deadline = time.monotonic() + 5
        while httpx.get(f"{service.url}/api/v1/predictions", headers=headers).status_code != 200:
            assert time.monotonic() < deadline, "a new key was not accepted within 5 s"
            time.sleep(0.1)
    forbidden = httpx.get(f"{first.url}/api/v1/predictions", headers={"X-API-Key": viewer})
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"] == (
        f"this route needs the analyst role or above; key:{viewer_id} is a viewer"
    )

    code, out, _ = deltaomega("auth", "list-keys", env=env)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "KEY",
        "ID",
        "NAME",
        "ROLE",
        "TIER",
        "CREATED",
        "LAST",
        "USED",
        "REVOKED",
    ]
    rows = {line[:16]: line for line in lines[1:]}
    assert set(rows) == {key_id, viewer_id}
    assert rows[key_id][18:].split()[:3] == ["ci-bot", "analyst", "premium"]
    assert rows[key_id].endswith("Z  -")  # used, not revoked
    assert rows[viewer_id][18:38].strip() == "wall screen"

    # the topic holds hashes, never a key
    records = _records(settings)
    assert all(key.encode() not in value and viewer.encode() not in value for _, value in records)
    stored = {k.decode(): json.loads(v) for k, v in records if not k.startswith(b"used/")}
    assert stored[key_id]["sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert stored[key_id]["revoked_ms"] is None

    code, out, _ = deltaomega("auth", "revoke-key", key_id, env=env)
    assert code == 0 and out.startswith(f"revoked key {key_id} (ci-bot) at ")
    revoked_at = time.monotonic()
    refused: dict[str, float] = {}
    while len(refused) < 2 and time.monotonic() - revoked_at < 10:
        for service in (first, second):
            if service.url in refused:
                continue
            response = httpx.get(f"{service.url}/api/v1/voices", headers=headers)
            if response.status_code == 401:
                assert response.headers["www-authenticate"] == (
                    'ApiKey realm="deltaomega", error="invalid_key", '
                    'error_description="API key revoked"'
                )
                refused[service.url] = time.monotonic() - revoked_at
            else:
                assert response.status_code == 200
        time.sleep(0.05)
    assert len(refused) == 2 and max(refused.values()) < 5.0, refused
    print(f"revocation refused after {sorted(round(s, 2) for s in refused.values())} s")
    # the other key is untouched
    assert (
        httpx.get(f"{second.url}/api/v1/voices", headers={"X-API-Key": viewer}).status_code == 200
    )

    code, out, _ = deltaomega("auth", "list-keys", env=env)
    revoked_row = next(line for line in out.splitlines() if line.startswith(key_id))
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$", revoked_row)


def test_key_commands_refuse_bad_input_in_one_line(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    env = settings_env(settings)
    code, _, err = deltaomega("auth", "revoke-key", "0123456789abcdef", env=env)
    assert code == 1
    assert_one_error_line(err, "API key '0123456789abcdef' not found")
    code, _, err = deltaomega("auth", "revoke-key", "nope", env=env)
    assert code == 2 and "must be a key id (16 hex digits, as list-keys shows)" in err[-1]
    code, _, err = deltaomega("auth", "create-key", "--name", "x", "--role", "root", env=env)
    assert code == 2 and "invalid choice: 'root'" in err[-1]
