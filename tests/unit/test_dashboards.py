"""The checked-in dashboards are what the code makes, and they refer to the datasources
Grafana is provisioned with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from deltaomega.dashboards import pipeline, voices
from deltaomega.dashboards.__main__ import DIRECTORY, main, rendered

PROVISIONED = DIRECTORY.parent / "provisioning" / "datasources" / "deltaomega.yaml"


def test_the_checked_in_files_are_up_to_date() -> None:
    files = {p.name: p.read_text(encoding="utf-8") for p in DIRECTORY.glob("*.json")}
    assert files == rendered()
    assert main(["--check"]) == 0


def test_check_names_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.json", "voices.json"]
    assert main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "voices.json").write_text("{}", encoding="utf-8")
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"not up to date (run `make dashboards`): {tmp_path / 'voices.json'}\n"
    )


def _targets(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for p in board["panels"] for t in p.get("targets", [])]


def test_panels_use_the_provisioned_datasources_and_unique_ids() -> None:
    provisioned = {
        d["uid"]: d["type"] for d in yaml.safe_load(PROVISIONED.read_text())["datasources"]
    }
    for name, text in rendered().items():
        board = json.loads(text)
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            if panel["type"] != "row":
                ref = panel["datasource"]
                assert provisioned[ref["uid"]] == ref["type"], (name, panel["title"])
        for target in _targets(board):
            assert provisioned[target["datasource"]["uid"]] == target["datasource"]["type"]
    board = json.loads(rendered()["voices.json"])
    assert [t["rawSql"] for t in _targets(board)] == [p.sql for p in voices.PANELS]
    assert {t["queryType"] for t in _targets(board)} == {"table", "timeSeries"}
    board = json.loads(rendered()["pipeline.json"])
    exprs = [expr for p in pipeline.PANELS for expr, _ in p.queries]
    assert [t["expr"] for t in _targets(board)] == exprs
