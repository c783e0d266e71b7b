"""Harmony and conflict over time, per pair and system-wide, against values computed here
from the interactions published."""

from __future__ import annotations

from collections.abc import Callable
from xml.etree import ElementTree  # noqa: S405 - parsing our own server's answer

import httpx
import pytest

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.schemas.json_records import iso as _iso
from deltaomega.security.roles import Role
from deltaomega.sinks.clickhouse import ClickHouse
from tests import api_client
from tests.conftest import RunningService, wait_for

T0 = 1_800_000_000_000
SUPPORTIVE = {"COOPERATION", "COMPLEMENTATION", "AMPLIFICATION"}
SVG = "{http://www.w3.org/2000/svg}"
#: (window, source, target, kind, strength)
LINKS = [
    (0, "a", "b", "COOPERATION", 0.5),
    (0, "a", "b", "COMPETITION", 0.3),
    (0, "c", "a", "SUPPRESSION", 0.2),
    (1, "a", "b", "COOPERATION", 0.4),
    (1, "a", "b", "COOPERATION", 0.6),
    (1, "b", "a", "AMPLIFICATION", 0.5),
    (2, "a", "b", "COMPETITION", 0.9),
]


def _expected(pair: tuple[str, str] | None) -> list[tuple[str, float, float, float]]:
    out = []
    for window in range(3):
        links = [x for x in LINKS if x[0] == window and (pair is None or x[1:3] == pair)]
        if not links:
            continue
        support = sum(s for *_, k, s in links if k in SUPPORTIVE)
        total = sum(s for *_, s in links)
        against = total - support
        out.append(
            (_iso(T0 + window * 10_000), total, (support - against) / total, against / total)
        )
    return out


def test_harmony_per_window_for_a_pair_and_the_system(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = settings_factory(models_enabled=False, grace_seconds=1, rate_limits=False)
    service = service_factory(settings)
    with VoiceProducer(settings) as producer:
        for n, (window, source, target, kind, strength) in enumerate(LINKS):
            producer.send_interaction(
                {
                    "event_id": f"h{n}",
                    "ts": T0 + window * 10_000 + 1_000 + n,
                    "source": source,
                    "target": target,
                    "kind": kind,
                    "strength": strength,
                    "context": {},
                }
            )
        for source in ("a", "b", "c"):  # each source's partition moves past window 2
            producer.send_interaction(
                {
                    "event_id": f"h-close-{source}",
                    "ts": T0 + 35_000,
                    "source": source,
                    "target": "z",
                    "kind": "COOPERATION",
                    "strength": 0.1,
                    "context": {},
                }
            )
    db = settings.clickhouse_database
    wait_for(
        lambda: (
            clickhouse.rows(
                f"SELECT count() AS n FROM {db}.interaction_states FINAL WHERE target != 'z'"
            )[0]["n"]
            == 6
        ),
        60,
        "6 closed interaction windows",
    )
    url = f"{service.url}/api/v1/interactions/harmony"
    span = {"start": _iso(T0), "end": _iso(T0 + 30_000)}
    for pair in (None, ("a", "b")):
        params = span | ({"source": pair[0], "target": pair[1]} if pair else {})
        series = api_client.get(url, params=params).json()
        assert (series["source"], series["target"]) == (pair or (None, None))
        got = [
            (w["window_start"], w["strength"], w["harmony"], w["conflict"])
            for w in series["windows"]
        ]
        expected = _expected(pair)
        assert [g[0] for g in got] == [e[0] for e in expected]
        assert [g[1:] for g in got] == [pytest.approx(e[1:], abs=1e-9) for e in expected]
    # pictures of a window, for reports: its network (a link per source, target and kind)
    # and its heat map
    picture = f"{service.url}/api/v1/patterns/visualize"
    analyst = api_client.auth(Role.ANALYST)
    network = httpx.get(picture, params={"window_start": _iso(T0)}, headers=analyst)
    assert network.status_code == 200
    assert network.headers["content-type"] == "image/svg+xml"
    svg = ElementTree.fromstring(network.content)
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert {"a", "b", "c"} <= set(texts)
    links = [g for g in svg.iter(f"{SVG}g") if (g.get("id") or "").startswith("link-")]
    assert len(links) == len({x[1:4] for x in LINKS if x[0] == 0}) == 3
    heat = httpx.get(
        picture, params={"window_start": _iso(T0 + 10_000), "view": "heatmap"}, headers=analyst
    )
    assert heat.status_code == 200
    assert {"a", "b"} <= {t.text for t in ElementTree.fromstring(heat.content).iter(f"{SVG}text")}
    empty = httpx.get(picture, params={"window_start": _iso(T0 + 50_000)}, headers=analyst)
    assert empty.status_code == 404

    half = api_client.get(url, params={**span, "source": "a"})
    assert half.status_code == 422
    assert half.json()["errors"][0]["field"] == "target"
