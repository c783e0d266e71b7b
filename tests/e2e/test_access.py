"""Who may call what, against a running API: the route × role matrix cell by cell, every way
credentials fail (401 with its challenge), anonymous reads, /metrics behind a setting,
and the README's table generated from the same declarations."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jwt
import pytest
import uvicorn

from deltaomega.api.auth.access import access_of, api_routes, routes_table
from deltaomega.config import Settings
from deltaomega.security.roles import Role, Tier
from deltaomega.service import build_app
from deltaomega.sinks.clickhouse import ClickHouse
from tests import api_client
from tests.conftest import RunningService, free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def _declared() -> list[tuple[str, str, Role]]:
    """(method, path, least role) of every route that needs credentials."""
    app = build_app(Settings(auth_secret=api_client.SECRET), worker=False)
    out = []
    for route in api_routes(app):
        access = access_of(route)
        assert access is not None, f"{route.path} declares no access"
        if access.role is not None:
            for method in sorted((route.methods or set()) - {"HEAD"}):
                out.append((method, route.path, access.role))
    return out


#: A valid body for each write route, so an allowed caller's request runs.
BODIES: dict[str, dict[str, object]] = {
    "/api/v1/voices/{voice_id:path}/parameters": {
        "parameters": {"influence_weight": 0.5},
        "rationale": "access test",
    },
    "/api/v1/orchestration/{strategy}": {
        "target_voices": ["v1"],
        "duration": 5,
        "rationale": "access test",
    },
    "/api/v1/query": {"sql": "SELECT 1"},
    "/api/v1/accounts": {"username": "cell", "password": "access test password", "role": "viewer"},
    "/api/v1/query/saved/{name}": {"sql": "SELECT 1"},
    "/api/v1/interactions/analyze": {
        "start": "2027-01-01T00:00:00Z",
        "end": "2027-01-01T01:00:00Z",
    },
    "/api/v1/alerts/conditions/{condition_id:path}/acknowledge": {"reason": "access test"},
    "/api/v1/alerts/conditions/{condition_id:path}/resolve": {"reason": "access test"},
    "/api/v1/alerts/silences": {
        "rule": "conflict",
        "duration_minutes": 5,
        "reason": "access test",
    },
    "/api/v1/patterns/analyze": {
        "start": "2027-01-01T00:00:00Z",
        "end": "2027-01-01T00:10:00Z",
    },
    **{
        f"/api/v1/orchestration/{{orchestration_id}}/{action}": {"rationale": "access test"}
        for action in ("approve", "reject", "rollback")
    },
    "/api/v1/auth/security-keys": {"ceremony": "c", "credential": {}, "name": "key"},
    "/api/v1/auth/step-up": {"ceremony": "c", "credential": {}},
    "/api/v1/push/subscriptions": {
        "endpoint": "https://fcm.googleapis.com/fcm/send/x",
        "keys": {"p256dh": "B" + "A" * 86, "auth": "A" * 22},
    },
}

#: routes for people signed in to the console: a machine's token of the right role gets a
#: 409 that says so (the route ran)
PEOPLE_ONLY = {
    "/api/v1/auth/security-keys",
    "/api/v1/auth/security-keys/challenge",
    "/api/v1/auth/step-up",
    "/api/v1/auth/step-up/challenge",
    "/api/v1/push/subscriptions",
    "/api/v1/push/subscriptions/{subscription_id}",
}

#: the query parameters a GET route requires
QUERIES: dict[str, dict[str, str]] = {
    "/api/v1/patterns/visualize": {"window_start": "2027-01-01T00:00:00Z"},
}

ROUTES = _declared()
#: (method, path, role, allowed): one cell of the route × role table each
CELLS = [(method, path, role, role >= needed) for method, path, needed in ROUTES for role in Role]


def _url(path: str) -> str:
    return (
        path.replace("{voice_id:path}", "v1")
        .replace("{strategy}", "adaptive")
        .replace("{orchestration_id}", "0" * 32)
        .replace("{table}", "alerts")
        .replace("{name}", "q1")
        .replace("{condition_id:path}", "conflict:a->b@1")
        .replace("{silence_id}", "0" * 32)
        .replace("{username}", "nobody")
        .replace("{subscription_id}", "0" * 32)
    )


@pytest.fixture(scope="module")
def api(
    kafka_bootstrap: str, clickhouse: ClickHouse, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One API (no worker) for the module: the cells only read."""
    tag = f"acc{int(time.time() * 1000) % 10**9}"
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"{tag}.",
        app_id=tag,
        data_dir=tmp_path_factory.mktemp("access"),
        clickhouse_database=f"test_{tag}",
        auth_secret=api_client.SECRET,
        sse_ping_seconds=1.0,
        rate_limits=False,
    )
    port = free_port()
    app = build_app(settings, clickhouse, worker=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        raise AssertionError("API not ready in 60 s")
    yield url
    server.should_exit = True
    thread.join(timeout=30)
    clickhouse.call(lambda c: c.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}"))


def _status(
    method: str, path: str, url: str, headers: dict[str, str]
) -> tuple[int, httpx.Headers, bytes]:
    """Status, headers and (for a non-stream) body; a feed is closed once it answers."""
    body = BODIES.get(path) if method in ("POST", "PUT") else None
    params = QUERIES.get(path) if method == "GET" else None
    with httpx.stream(
        method, url, headers=headers, json=body, params=params, timeout=10
    ) as response:
        body = b"" if response.status_code == 200 and "/stream/" in url else response.read()
        return response.status_code, response.headers, body


def _cell_id(cell: tuple[str, str, Role, bool]) -> str:
    method, path, role, allowed = cell
    verdict = "allowed" if allowed else "forbidden"
    return f"{method} {path.removeprefix('/api/v1/')}-{role.label}-{verdict}"


@pytest.mark.parametrize("cell", CELLS, ids=[_cell_id(c) for c in CELLS])
def test_route_role_cell(api: str, cell: tuple[str, str, Role, bool]) -> None:
    """Below the route's role: 403 problem+json naming both roles. At or above: the answer an
    admin gets (the route ran)."""
    method, path, role, allowed = cell
    url = api + _url(path)
    status, headers, body = _status(method, path, url, api_client.auth(role, Tier.PREMIUM))
    if allowed and path in PEOPLE_ONLY:
        assert status == 409, body
    elif allowed and method == "DELETE":  # the first of the roles to try it deletes it
        assert status in (204, 404)
    elif allowed and (method, path) == ("POST", "/api/v1/accounts"):
        assert status == 201  # only an admin may, once: a second time is a conflict
    elif allowed:
        admin_status, _, _ = _status(method, path, url, api_client.auth(Role.ADMIN))
        assert status == admin_status
        # 404: an orchestration that does not exist (a decision on it); 200: a query's answer
        assert status in ((200, 202, 404) if method == "POST" else (200, 404))
    else:
        needed = {(m, p): r for m, p, r in ROUTES}[(method, path)]
        assert status == 403
        assert headers["content-type"] == "application/problem+json"
        problem = httpx.Response(403, content=body).json()
        assert problem["title"] == "Forbidden"
        assert problem["detail"] == (
            f"this route needs the {needed.label} role or above; tester is a {role.label}"
        )


def _challenge(response: httpx.Response) -> str:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    return response.headers["www-authenticate"]


def _token(claims: dict[str, object], key: str = api_client.SECRET) -> str:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "mallory",
        "role": "admin",
        "iss": "deltaomega",
        "aud": "deltaomega-api",
        # made at collection: good for a day, whatever runs before these tests
        "exp": now + 86_400,
    }
    return jwt.encode(base | claims, key, "HS256")


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, 'Bearer realm="deltaomega"'),
        (
            {"Authorization": f"Bearer {_token({'exp': int(time.time()) - 3600})}"},
            'Bearer realm="deltaomega", error="invalid_token", error_description="token expired"',
        ),
        (
            {"Authorization": f"Bearer {_token({}, key='another-secret-' + 'x' * 30)}"},
            'Bearer realm="deltaomega", error="invalid_token", '
            'error_description="token signature does not verify"',
        ),
        (
            {"Authorization": f"Bearer {_token({'aud': 'someone-else'})}"},
            'Bearer realm="deltaomega", error="invalid_token", '
            'error_description="token for another audience"',
        ),
        (
            {"Authorization": "Basic dXNlcjpwYXNz"},
            'Bearer realm="deltaomega", error="invalid_request", '
            "error_description=\"the Authorization header must be 'Bearer <token>'\"",
        ),
        (
            {"X-API-Key": "dok_0123456789abcdef_" + "A" * 43},
            'ApiKey realm="deltaomega", error="invalid_key", error_description="unknown API key"',
        ),
        (
            {"X-API-Key": "not-a-key"},
            'ApiKey realm="deltaomega", error="invalid_key", error_description="malformed API key"',
        ),
    ],
    ids=["none", "expired", "wrong-signature", "wrong-audience", "basic", "unknown-key", "junk"],
)
def test_credentials_that_prove_nothing_get_401_with_the_reason(
    api: str, headers: dict[str, str], challenge: str
) -> None:
    response = httpx.get(f"{api}/api/v1/voices", headers=headers)
    assert _challenge(response) == challenge
    body = response.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized"
    assert body["detail"] == (
        re.search(r'error_description="(.*)"$', challenge).group(1)  # type: ignore[union-attr]
        if "error=" in challenge
        else "credentials required: an X-API-Key header or an Authorization: Bearer token"
    )


def test_health_and_metrics_stay_open_and_docs_list_both_schemes(api: str) -> None:
    assert httpx.get(f"{api}/healthz").status_code == 200
    assert httpx.get(f"{api}/readyz").status_code == 200
    assert httpx.get(f"{api}/metrics").status_code == 200
    schema = httpx.get(f"{api}/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    voices = schema["paths"]["/api/v1/voices"]["get"]
    assert voices["x-access"] == {"role": "viewer", "rate-limit": "read"}
    assert {"401", "403", "429"} <= set(voices["responses"])


def test_metrics_ask_for_credentials_when_the_setting_says_so(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    service = service_factory(settings_factory(metrics_auth=True), worker=False)
    assert _challenge(httpx.get(f"{service.url}/metrics")) == 'Bearer realm="deltaomega"'
    viewer = httpx.get(f"{service.url}/metrics", headers=api_client.auth(Role.VIEWER))
    assert viewer.status_code == 200
    assert "deltaomega_auth_denied_total" in viewer.text
    assert httpx.get(f"{service.url}/healthz").status_code == 200


def test_anonymous_reads_when_allowed_are_a_viewer_with_ten_a_minute(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    service = service_factory(settings_factory(auth_anonymous=True), worker=False)
    statuses = [httpx.get(f"{service.url}/api/v1/voices").status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]


def test_anonymous_callers_may_not_read_an_analyst_route(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    service = service_factory(settings_factory(auth_anonymous=True), worker=False)
    response = httpx.get(f"{service.url}/api/v1/predictions")
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "this route needs the analyst role or above; anonymous is a viewer"
    )


def test_readme_table_is_the_one_the_code_declares() -> None:
    app = build_app(Settings(auth_secret=api_client.SECRET), worker=False)
    text = README.read_text()
    start = text.index("<!-- routes:start -->") + len("<!-- routes:start -->")
    end = text.index("<!-- routes:end -->")
    assert text[start:end].strip() == routes_table(app), (
        "README's route table is stale: run `deltaomega auth routes` and paste it"
    )
