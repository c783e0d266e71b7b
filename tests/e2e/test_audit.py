"""The audit trail end to end: refused requests and key changes reach ClickHouse
``audit_log`` through the audit topic and the worker's sink, exactly as they happened, and
admins read them at /api/v1/audit."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from typing import Any

import httpx

from deltaomega.config import Settings
from deltaomega.security.roles import Role, Tier
from tests import api_client
from tests.conftest import RunningService, wait_for
from tests.e2e.test_api_keys import _create
from tests.processes import settings_env


def _events(url: str, **params: str) -> list[dict[str, Any]]:
    response = api_client.get(f"{url}/api/v1/audit", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["events"])


def _without_ids(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("event_id", "occurred_at")}


def test_refusals_and_key_changes_are_audited_exactly(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(models_enabled=False)
    service = service_factory(settings)
    viewer = api_client.auth(Role.VIEWER, Tier.STANDARD)

    forbidden = httpx.get(
        f"{service.url}/api/v1/predictions", headers={**viewer, "X-Request-ID": "req-403"}
    )
    assert forbidden.status_code == 403
    assert forbidden.headers["x-request-id"] == "req-403"
    anonymous = httpx.get(f"{service.url}/api/v1/voices", headers={"X-Request-ID": "req-401"})
    assert anonymous.status_code == 401
    allowed = httpx.get(f"{service.url}/api/v1/voices", headers=viewer)
    assert allowed.status_code == 200
    assert len(allowed.headers["x-request-id"]) == 32  # one of our own when none was sent
    key_id, _ = _create(settings_env(settings), "--name", "auditor", "--role", "operator")

    wait_for(lambda: len(_events(service.url)) == 3, 30, "three audit events in ClickHouse")
    events = _events(service.url)
    assert [_without_ids(e) for e in events] == [
        {
            "principal": f"cli:{getpass.getuser()}",
            "role": "",
            "auth_method": "cli",
            "action": "api_key.create",
            "target": key_id,
            "rationale": "",
            "request_id": "",
            "client": "",
            "outcome": "OK",
            "status": 0,
            "detail": "",
            "before": "",
            "after": json.dumps(
                {
                    "key_id": key_id,
                    "name": "auditor",
                    "revoked_ms": None,
                    "role": "operator",
                    "tier": "standard",
                },
                sort_keys=True,
            ),
        },
        {
            "principal": "unknown",
            "role": "",
            "auth_method": "none",
            "action": "GET /api/v1/voices",
            "target": "/api/v1/voices",
            "rationale": "",
            "request_id": "req-401",
            "client": "127.0.0.1",
            "outcome": "DENIED",
            "status": 401,
            "detail": "credentials required: an X-API-Key header or an Authorization: Bearer token",
            "before": "",
            "after": "",
        },
        {
            "principal": "tester",
            "role": "viewer",
            "auth_method": "token",
            "action": "GET /api/v1/predictions",
            "target": "/api/v1/predictions",
            "rationale": "",
            "request_id": "req-403",
            "client": "127.0.0.1",
            "outcome": "DENIED",
            "status": 403,
            "detail": "this route needs the analyst role or above; tester is a viewer",
            "before": "",
            "after": "",
        },
    ]
    assert len({e["event_id"] for e in events}) == 3
    assert [e["principal"] for e in _events(service.url, outcome="DENIED")] == [
        "unknown",
        "tester",
    ]
    assert _events(service.url, action="api_key.create")[0]["target"] == key_id
    # the audit log is for admins only
    operator = httpx.get(f"{service.url}/api/v1/audit", headers=api_client.auth(Role.OPERATOR))
    assert operator.status_code == 403
