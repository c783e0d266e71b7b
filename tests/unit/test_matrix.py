from __future__ import annotations

import pytest

from deltaomega.api.matrix import build_matrix


def test_harmony_and_conflict_per_pair_and_system() -> None:
    rows = [
        {"source": "a", "target": "b", "kind": "COOPERATION", "strength": 3.0},
        {"source": "a", "target": "b", "kind": "COMPETITION", "strength": 1.0},
        {"source": "b", "target": "c", "kind": "SUPPRESSION", "strength": 2.0},
        {"source": "c", "target": "a", "kind": "AMPLIFICATION", "strength": 0.5},
        {"source": "c", "target": "a", "kind": "COMPLEMENTATION", "strength": 1.5},
    ]
    result = build_matrix(rows)
    assert result.voices == ["a", "b", "c"]
    assert result.matrices["COOPERATION"] == [[0, 3.0, 0], [0, 0, 0], [0, 0, 0]]
    assert result.matrices["SUPPRESSION"][1][2] == 2.0
    # system: support 3 + 0.5 + 1.5 = 5, antagonism 1 + 2 = 3, total 8
    assert result.harmony == pytest.approx(2 / 8)
    assert result.conflict == pytest.approx(3 / 8)
    pairs = {(p["source"], p["target"]): p for p in result.pairs}
    assert pairs[("a", "b")]["harmony"] == pytest.approx(0.5)
    assert pairs[("a", "b")]["conflict"] == pytest.approx(0.25)
    assert pairs[("b", "c")]["harmony"] == pytest.approx(-1.0)
    assert pairs[("c", "a")]["strength"] == pytest.approx(2.0)


def test_empty_matrix_has_no_scores() -> None:
    result = build_matrix([])
    assert result.voices == [] and result.harmony is None and result.conflict is None
