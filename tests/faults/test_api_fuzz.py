"""The whole OpenAPI fuzzed with schemathesis against a running worker and API with data in
it: no 5xx, and every response fits the schema the API publishes (status, content type,
headers, body). Feeds answer with a stream, which is checked by its status and headers
and then closed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis

# Loaded now, at a shallow stack: pytest rewrites schemathesis' modules as it imports them,
# and CPython 3.11 can fail such a parse deep in a fixture ("AST constructor recursion depth
# mismatch"), which schemathesis.openapi.from_url would otherwise trigger.
import schemathesis.specs.openapi.schemas  # noqa: F401, E402
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.security.roles import Role
from deltaomega.sinks.clickhouse import ClickHouse
from tests import api_client
from tests.conftest import RunningService, voice_event, wait_for

pytestmark = pytest.mark.faults

#: No 5xx, and responses as documented. Not "schema-valid requests are accepted": some
#: rules span parameters (``from`` before ``to``), which a schema cannot say.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

T0 = 1_800_000_000_000


@pytest.fixture
def api_schema(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> Any:
    settings = settings_factory(models_enabled=False, rate_limits=False)
    service = service_factory(settings)
    with VoiceProducer(settings) as producer:
        for window in range(4):
            for voice in ("v1", "v2", "team/x"):
                ts = T0 + window * 10_000 + 7_000
                producer.send_voice_event(voice_event(f"{voice}-{window}", voice, ts))
                producer.send_interaction(
                    {
                        "event_id": f"{voice}-i{window}",
                        "ts": ts,
                        "source": voice,
                        "target": "v1",
                        "kind": "COOPERATION",
                        "strength": 0.5,
                        "context": {},
                    }
                )
    db = settings.clickhouse_database
    wait_for(
        lambda: (
            clickhouse.call(
                lambda c: c.query(f"SELECT count() FROM {db}.voice_states").result_rows[0][0]
            )
            >= 6
        ),
        what="closed windows to read",
    )
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json"), service.url


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.label)
def test_no_input_gets_a_server_error_or_a_response_outside_the_schema(
    api_schema: Any, role: Role
) -> None:
    """Authenticated as each role: routes above it answer 403, as documented."""
    schema, url = api_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    headers = api_client.auth(role)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40 if role is Role.ADMIN else 10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            check(case, url, headers)

        fuzz()


def check(case: Any, url: str, auth: dict[str, str]) -> None:
    live = case.operation.path == "/api/v1/interactions/monitor" and str(
        (case.query or {}).get("real_time", "")
    ).lower() in ("true", "1", "yes", "on")
    if case.operation.path.startswith("/api/v1/stream/") or live:
        kwargs = case.as_transport_kwargs(base_url=url, headers=auth)
        with httpx.stream(
            kwargs["method"],
            kwargs["url"],
            params=kwargs.get("params"),
            headers=kwargs.get("headers"),
            timeout=15,
        ) as response:
            assert response.status_code < 500, response.read()
            if response.status_code == 200:
                assert response.headers["content-type"].startswith("text/event-stream")
            else:
                assert response.headers["content-type"] == "application/problem+json"
                response.read()
        return
    case.call_and_validate(base_url=url, headers=auth, checks=CHECKS)
