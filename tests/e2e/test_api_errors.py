"""Invalid requests get problem+json naming the field; unknown voices get 404."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from deltaomega.config import Settings
from tests import api_client
from tests.api_client import assert_invalid
from tests.conftest import RunningService


@pytest.fixture
def api(
    settings_factory: Callable[..., Settings], service_factory: Callable[..., RunningService]
) -> str:
    return service_factory(settings_factory(), worker=False).url


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/interactions/matrix", {"window": "ten minutes"}, "window"),
        ("/api/v1/interactions/matrix", {"window": "0s"}, "window"),
        ("/api/v1/interactions/matrix", {"window": "367d"}, "window"),
        ("/api/v1/interactions/matrix", {"window": "999999d"}, "window"),
        ("/api/v1/voices/v1/history", {"from": "not-a-date"}, "from"),
        ("/api/v1/voices/v1/history", {"limit": "0"}, "limit"),
        ("/api/v1/voices/v1/state", {"include_history": "maybe"}, "include_history"),
        (
            "/api/v1/voices/v1/history",
            {"from": "2027-01-01T00:00:10Z", "to": "2027-01-01T00:00:00Z"},
            "from",
        ),
    ],
)
def test_bad_query_is_422_problem_naming_the_parameter(
    api: str, path: str, params: dict, field: str
) -> None:
    assert_invalid(api_client.get(api + path, params=params), field)


def test_unknown_voice_is_404_problem(api: str) -> None:
    for path in ("/api/v1/voices/nobody/state", "/api/v1/voices/nobody/history"):
        response = api_client.get(api + path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json() == {
            "type": "about:blank",
            "title": "Voice not found",
            "status": 404,
            "detail": "voice 'nobody' not found",
        }


def test_empty_system_answers_with_empty_collections(api: str) -> None:
    assert api_client.get(f"{api}/api/v1/voices").json() == {"voices": []}
    matrix = api_client.get(f"{api}/api/v1/interactions/matrix", params={"window": "1h"}).json()
    assert matrix["voices"] == [] and matrix["harmony"] is None and matrix["pairs"] == []
    assert api_client.get(f"{api}/healthz").json() == {"status": "ok"}
    metrics = api_client.get(f"{api}/metrics").text
    assert "deltaomega_http_requests_total" in metrics
