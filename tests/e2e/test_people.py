"""People signing in to the console: accounts from `deltaomega auth create-account` and the
admin API, argon2id hashes (never a password) on the keys topic, sign-in on one API process
and refresh on another, rotation, and a rotated refresh token used again ending the whole
sign-in, its access tokens included, on every process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
from confluent_kafka import Producer

from deltaomega.config import Settings
from deltaomega.security.roles import Role
from deltaomega.topics import Topics
from tests.api_client import auth
from tests.conftest import RunningService
from tests.e2e.test_api_keys import _records
from tests.kafka_tools import read_topic
from tests.processes import settings_env

PASSWORD = "correct horse battery staple"


def _create_account(settings: Settings, name: str, role: str, password: str) -> tuple:
    done = subprocess.run(
        [sys.executable, "-m", "deltaomega.cli", "auth", "create-account", "--name", name]
        + ["--role", role],
        env=settings_env(settings),
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr.splitlines()


def _sign_in(url: str, username: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/auth/sign-in", json={"username": username, "password": password}
    )


def _refresh(url: str, token: str) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/auth/refresh", json={"refresh_token": token})


def _me(url: str, access: str) -> httpx.Response:
    return httpx.get(f"{url}/api/v1/auth/me", headers={"Authorization": f"Bearer {access}"})


def test_sign_in_rotation_and_a_reused_refresh_token_ending_the_sign_in(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(rate_limits=False)
    first = service_factory(settings, worker=False)
    second = service_factory(settings, worker=False)

    code, out, err = _create_account(settings, "alice", "operator", PASSWORD)
    assert (code, out) == (0, "created account alice (operator)\n"), err
    code, _, err = _create_account(settings, "bob", "viewer", "short")
    assert code == 1 and err == ["deltaomega: error: password must be at least 12 characters"], err
    created = httpx.post(
        f"{first.url}/api/v1/accounts",
        json={"username": "vera", "password": PASSWORD, "role": "viewer"},
        headers=auth(Role.ADMIN),
    )
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"username", "role", "created_ms", "disabled_ms", "security_keys"}
    again = httpx.post(
        f"{first.url}/api/v1/accounts",
        json={"username": "vera", "password": PASSWORD, "role": "viewer"},
        headers=auth(Role.ADMIN),
    )
    assert again.status_code == 409 and again.json()["detail"] == "an account 'vera' exists already"
    assert httpx.get(f"{first.url}/api/v1/accounts", headers=auth(Role.OPERATOR)).status_code == 403

    # wrong password and unknown name: the same answer
    for name, password in (("alice", "not her password"), ("mallory", PASSWORD)):
        refused = _sign_in(first.url, name, password)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["detail"] == "wrong username or password"
        assert refused.headers["www-authenticate"].endswith('error="invalid_grant"')

    signed = _sign_in(first.url, "alice", PASSWORD)
    assert signed.status_code == 200, signed.text
    one = signed.json()
    assert (one["username"], one["role"], one["token_type"], one["expires_in"]) == (
        "alice",
        "operator",
        "Bearer",
        900,
    )
    me = _me(first.url, one["access_token"])
    assert me.json() == {
        "subject": "user:alice",
        "role": "operator",
        "method": "token",
        "session": one["session"],
        "stepped_up_at": None,
    }

    # refresh through the other process: the next pair, same sign-in
    deadline = time.monotonic() + 5
    while (rotated := _refresh(second.url, one["refresh_token"])).status_code != 200:
        assert time.monotonic() < deadline, rotated.text  # the sign-in not seen there yet
        time.sleep(0.1)
    two = rotated.json()
    assert two["session"] == one["session"]
    assert two["refresh_token"] != one["refresh_token"]
    assert two["access_token"] != one["access_token"]
    assert _me(second.url, two["access_token"]).status_code == 200

    # the first refresh token again: refused, and the whole sign-in is over
    reused = _refresh(first.url, one["refresh_token"])
    assert reused.status_code == 401
    assert reused.json()["detail"] == (
        "this refresh token was already used: the sign-in is ended; sign in again"
    )
    after = _refresh(second.url, two["refresh_token"])
    assert after.status_code == 401
    assert after.json()["detail"] == "this sign-in has ended (a refresh token was used twice)"
    for service in (first, second):
        deadline = time.monotonic() + 5
        while (me := _me(service.url, two["access_token"])).status_code != 401:
            assert time.monotonic() < deadline, "an ended sign-in's token still worked"
            time.sleep(0.1)
        assert me.json()["detail"] == "the sign-in has ended (a refresh token was used twice)"

    # a new sign-in, then signing out ends it
    three = _sign_in(second.url, "alice", PASSWORD).json()
    out = httpx.post(
        f"{second.url}/api/v1/auth/sign-out", json={"refresh_token": three["refresh_token"]}
    )
    assert out.status_code == 204
    assert _refresh(second.url, three["refresh_token"]).json()["detail"] == (
        "this sign-in has ended (signed out)"
    )

    # a disabled account signs in no more
    disabled = httpx.delete(f"{first.url}/api/v1/accounts/vera", headers=auth(Role.ADMIN))
    assert disabled.status_code == 200 and disabled.json()["disabled_ms"] is not None
    assert _sign_in(first.url, "vera", PASSWORD).json()["detail"] == "this account is disabled"
    listed = httpx.get(f"{first.url}/api/v1/accounts", headers=auth(Role.ADMIN)).json()
    assert [(a["username"], a["role"]) for a in listed] == [
        ("alice", "operator"),
        ("vera", "viewer"),
    ]

    # the topic holds argon2id hashes and token digests, never a password or a token
    records = _records(settings)
    texts = [value.decode() for _, value in records]
    assert not any(PASSWORD in text for text in texts)
    for token in (one, two, three):
        assert not any(token["refresh_token"] in text for text in texts)
    accounts = {k.decode(): json.loads(v) for k, v in records if k.startswith(b"account/")}
    assert accounts["account/alice"]["password"].startswith("$argon2id$")


def test_sign_ins_over_for_a_day_are_deleted_from_the_topic(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    """A sign-in deletes (tombstones) the records of sign-ins ended or expired more than a
    day ago, and keeps the rest: the topic stays the size of the sign-ins in use."""
    settings = settings_factory(rate_limits=False)
    url = service_factory(settings, worker=False).url
    topic = Topics.from_settings(settings).api_keys
    now = int(time.time() * 1000)
    day = 24 * 3600 * 1000
    base = {"username": "old", "role": "viewer", "generation": 1, "current": "", "reason": ""}
    sessions = {
        "a" * 32: {"created_ms": now - 3 * day, "expires_ms": now - 2 * day, "ended_ms": None},
        "b" * 32: {"created_ms": now - 3 * day, "expires_ms": now + day, "ended_ms": now - 2 * day},
        "c" * 32: {"created_ms": now - day, "expires_ms": now + day, "ended_ms": now - 3_600_000},
        "d" * 32: {"created_ms": now - 60_000, "expires_ms": now + day, "ended_ms": None},
    }
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for sid, times in sessions.items():
        value = json.dumps({**base, "session": sid, **times}).encode()
        producer.produce(topic, value, f"session/{sid}".encode())
    assert producer.flush(10) == 0
    created = httpx.post(
        f"{url}/api/v1/accounts",
        json={"username": "newcomer", "password": PASSWORD, "role": "viewer"},
        headers=auth(Role.ADMIN),
    )
    assert created.status_code == 201, created.text
    # the API follows the topic: once it has read the four, a sign-in forgets two
    deadline = time.monotonic() + 10
    while True:
        signed = _sign_in(url, "newcomer", PASSWORD)
        assert signed.status_code == 200, signed.text
        tombstones = [
            r.key.decode()
            for r in read_topic(settings.kafka_bootstrap, topic)
            if r.key is not None and r.key.startswith(b"session/") and r.value is None
        ]
        if tombstones or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(tombstones) == [f"session/{'a' * 32}", f"session/{'b' * 32}"]
