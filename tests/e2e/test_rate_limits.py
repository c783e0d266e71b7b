"""Rate limits as callers meet them: the 101st read in a minute is a 429 problem with
Retry-After, the premium tier has ten times the budget, and two API processes sharing a
real Redis hold one budget between them."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from deltaomega.config import Settings
from deltaomega.security.roles import Role, Tier
from tests import api_client
from tests.conftest import RunningService, closed_port


def _reads(url: str, count: int, headers: dict[str, str]) -> list[int]:
    with httpx.Client(headers=headers, timeout=10) as client:
        return [client.get(f"{url}/api/v1/voices").status_code for _ in range(count)]


def _assert_limited(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= 60
    assert response.headers["ratelimit-limit"] == str(limit)
    body = response.json()
    assert body["title"] == "Too many requests"
    assert body["detail"] == f"{limit} read requests per minute for this caller; retry in {retry} s"


def test_the_101st_read_in_a_minute_is_refused_with_retry_after(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    service = service_factory(settings_factory(), worker=False)
    standard = api_client.auth(Role.VIEWER, Tier.STANDARD)
    assert _reads(service.url, 100, standard) == [200] * 100
    _assert_limited(httpx.get(f"{service.url}/api/v1/voices", headers=standard), 100)
    # another caller's budget is its own; the premium tier's is 1000
    premium = api_client.auth(Role.ANALYST, Tier.PREMIUM)
    assert _reads(service.url, 101, premium) == [200] * 101
    # health stays open to the limited caller
    assert httpx.get(f"{service.url}/healthz", headers=standard).status_code == 200


def test_two_api_processes_sharing_redis_hold_one_budget(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    redis_url: str,
) -> None:
    settings = settings_factory(rate_limit_storage=redis_url)
    first = service_factory(settings, worker=False)
    second = service_factory(settings, worker=False)
    caller = api_client.auth(Role.OPERATOR, Tier.STANDARD)
    assert _reads(first.url, 60, caller) == [200] * 60
    assert _reads(second.url, 40, caller) == [200] * 40
    _assert_limited(httpx.get(f"{first.url}/api/v1/voices", headers=caller), 100)
    _assert_limited(httpx.get(f"{second.url}/api/v1/voices", headers=caller), 100)


def test_an_unreachable_redis_lets_requests_through(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    settings = settings_factory(rate_limit_storage=f"redis://127.0.0.1:{closed_port()}")
    service = service_factory(settings, worker=False)
    caller = api_client.auth(Role.VIEWER, Tier.STANDARD)
    assert _reads(service.url, 101, caller) == [200] * 101
    ready = httpx.get(f"{service.url}/readyz")
    assert ready.status_code == 200
    assert re.fullmatch(
        r"ok \(unavailable for \d+ s; rate limits not enforced\)", ready.json()["checks"]["redis"]
    )


def test_an_address_that_keeps_failing_authentication_waits(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> None:
    service = service_factory(settings_factory(), worker=False)
    url = f"{service.url}/api/v1/voices"
    guessing = {"X-API-Key": "dok_" + "0" * 43}
    with httpx.Client(timeout=10) as client:
        assert [client.get(url, headers=guessing).status_code for _ in range(30)] == [401] * 30
        # the 31st attempt from the address is not even checked: not a key, not a token
        for headers in (guessing, api_client.auth(Role.VIEWER)):
            refused = client.get(url, headers=headers)
            assert refused.status_code == 429
            assert refused.json()["detail"] == (
                f"30 failed authentications per minute for this caller; "
                f"retry in {refused.headers['retry-after']} s"
            )
            assert 1 <= int(refused.headers["retry-after"]) <= 60
    # another address is not held up (both are this machine's loopback)
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=other, timeout=10) as client:
        assert client.get(url, headers=api_client.auth(Role.VIEWER)).status_code == 200
        assert client.get(url, headers=guessing).status_code == 401
