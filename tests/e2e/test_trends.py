"""A voice's trends against the running service, checked against values computed here from
what was published: slope, change, hopping windows and the change point of a step."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from deltaomega.config import Settings
from deltaomega.producer import VoiceProducer
from deltaomega.schemas.json_records import iso as _iso
from deltaomega.sinks.clickhouse import ClickHouse
from tests import api_client
from tests.conftest import RunningService, voice_event, wait_for

T0 = 1_800_000_000_000
#: window → the stress of its events (window 3 has two)
STRESS = {w: [0.2] * (2 if w == 3 else 1) if w < 6 else [0.8] for w in range(12)}


def test_slope_change_hopping_windows_and_change_points(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    clickhouse: ClickHouse,
) -> None:
    settings = settings_factory(models_enabled=False, grace_seconds=1, rate_limits=False)
    service = service_factory(settings)
    with VoiceProducer(settings) as producer:
        for window, values in STRESS.items():
            for k, stress in enumerate(values):
                ts = T0 + window * 10_000 + 2_000 + k
                producer.send_voice_event(voice_event(f"t-{window}-{k}", "t1", ts, stress=stress))
        producer.send_voice_event(voice_event("t-close", "t1", T0 + 12 * 10_000 + 5_000))
    db = settings.clickhouse_database
    wait_for(
        lambda: clickhouse.rows(f"SELECT count() AS n FROM {db}.voice_states FINAL")[0]["n"] == 12,
        60,
        "12 closed windows",
    )
    params = {"metric": "stress", "from": _iso(T0), "to": _iso(T0 + 120_000)}
    response = api_client.get(f"{service.url}/api/v1/voices/t1/trends", params=params)
    assert response.status_code == 200, response.text
    trend = response.json()

    starts = [T0 + w * 10_000 for w in STRESS]
    means = [float(np.mean(v)) for v in STRESS.values()]
    counts = [len(v) for v in STRESS.values()]
    assert trend["windows"] == 12
    expected_slope = np.polyfit([(s - T0) / 60_000 for s in starts], means, 1)[0]
    assert trend["slope_per_minute"] == pytest.approx(expected_slope, rel=1e-9)
    assert trend["change"] == pytest.approx(0.6, abs=1e-12)
    # 60 s windows every 10 s: every hop that holds at least one closed window
    hops = []
    for start in range(T0 - 50_000, T0 + 120_000, 10_000):
        inside = [i for i, s in enumerate(starts) if start <= s < start + 60_000]
        if inside:
            total = sum(counts[i] for i in inside)
            mean = sum(means[i] * counts[i] for i in inside) / total
            hops.append((_iso(start), _iso(start + 60_000), mean, total))
    got = [(h["start"], h["end"], h["mean"], h["count"]) for h in trend["hopping"]]
    assert [(s, e, c) for s, e, _, c in got] == [(s, e, c) for s, e, _, c in hops]
    assert [m for _, _, m, _ in got] == pytest.approx([m for _, _, m, _ in hops], abs=1e-12)
    assert len(trend["change_points"]) == 1
    (point,) = trend["change_points"]
    assert point["at"] == _iso(T0 + 60_000)
    assert (point["before"], point["after"]) == pytest.approx((0.2, 0.8), abs=1e-12)

    # a shorter range, another metric: activation stayed at 0.5, no change point
    flat = api_client.get(
        f"{service.url}/api/v1/voices/t1/trends",
        params={**params, "metric": "activation", "to": _iso(T0 + 40_000)},
    ).json()
    assert (flat["windows"], flat["slope_per_minute"], flat["change"]) == (4, 0.0, 0.0)
    assert flat["change_points"] == []

    for bad, field in (
        ({"metric": "mood"}, "metric"),
        ({"hop_seconds": 120}, "hop_seconds"),
        ({"size_seconds": 0}, "size_seconds"),
    ):
        refused = api_client.get(f"{service.url}/api/v1/voices/t1/trends", params={**params, **bad})
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == field
    # the history's range ends where `to` says (it once compared against the wrong column)
    history = f"{service.url}/api/v1/voices/t1/history"
    short = api_client.get(history, params={"from": _iso(T0), "to": _iso(T0 + 40_000)}).json()
    assert [s["window_start"] for s in short["states"]] == [_iso(T0 + w * 10_000) for w in range(4)]
    missing = api_client.get(f"{service.url}/api/v1/voices/nobody/trends")
    assert missing.status_code == 404
