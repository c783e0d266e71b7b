from __future__ import annotations

import pytest

from deltaomega.api.sse import format_cursor, parse_cursor
from deltaomega.errors import ValidationError


def test_cursor_round_trip() -> None:
    assert parse_cursor("0:41,2:-1,1:17") == {0: 41, 1: 17, 2: -1}
    assert format_cursor({2: -1, 0: 41, 1: 17}) == "0:41,1:17,2:-1"
    assert parse_cursor(None) is None and parse_cursor("") is None


@pytest.mark.parametrize("text", ["x", "0:", "0:1;1:2", "a:1", "0:1,"])
def test_bad_cursor_names_the_header(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_cursor(text)
    assert info.value.field == "Last-Event-ID"
