"""A service behind the API that does not answer is a 503 problem+json with Retry-After,
readiness says which (never the driver's text), and the API recovers when it returns."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from deltaomega.config import Settings
from tests import api_client
from tests.conftest import RunningService, closed_port, wait_for

READ_ROUTES = [
    "/api/v1/voices",
    "/api/v1/voices/v1/state",
    "/api/v1/voices/v1/history",
    "/api/v1/interactions/matrix",
    "/api/v1/interactions/conflicts",
    "/api/v1/predictions",
    "/api/v1/emergence",
    "/api/v1/patterns",
    "/api/v1/alerts",
]
# What a driver or the fault hook would say; none of it may reach a caller.
INTERNALS = ("InjectedFault", "Traceback", "OperationalError", "DatabaseError", "Code:")


def assert_unavailable(response: httpx.Response, service: str, name: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert response.json() == {
        "type": "about:blank",
        "title": "Service unavailable",
        "status": 503,
        "detail": f"{name} is unavailable; try again later",
        "service": service,
    }


def test_clickhouse_unavailable_is_a_503_on_every_read_and_readiness_names_it(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    armed: Callable[[str], None],
) -> None:
    # No read cache: every request must reach ClickHouse for this test.
    service = service_factory(settings_factory(api_cache_seconds=0), worker=False)
    for route in READ_ROUTES:
        assert api_client.get(service.url + route).status_code in (200, 404), route
    armed("clickhouse.call=fail_for:600@1")
    for route in READ_ROUTES:
        assert_unavailable(api_client.get(service.url + route), "clickhouse", "ClickHouse")
    ready = api_client.get(f"{service.url}/readyz")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["checks"]["clickhouse"].startswith("unavailable")
    assert not any(text in ready.text for text in INTERNALS), ready.text

    from deltaomega import faults

    faults.disarm()
    assert api_client.get(f"{service.url}/api/v1/voices").status_code == 200
    wait_for(lambda: api_client.get(f"{service.url}/readyz").status_code == 200, what="ready again")


def test_kafka_unavailable_is_a_503_on_the_feeds_and_readiness_names_it(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
) -> None:
    settings = settings_factory(kafka_bootstrap=f"127.0.0.1:{closed_port()}")
    service = service_factory(settings, worker=False, wait_ready=False)
    for feed in ("voice-states", "predictions", "conflicts", "emergence", "alerts"):
        response = api_client.get(f"{service.url}/api/v1/stream/{feed}", timeout=30)
        assert_unavailable(response, "kafka", "Kafka")
    # The reads that need only ClickHouse still answer.
    wait_for(
        lambda: api_client.get(f"{service.url}/api/v1/voices").status_code == 200,
        what="the tables, which do not wait for Kafka",
    )
    ready = api_client.get(f"{service.url}/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["kafka"].startswith("unavailable for ")
    assert checks["setup"] == "creating topics and tables"
    assert not any(text in ready.text for text in INTERNALS), ready.text
