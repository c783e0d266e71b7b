"""The policies file: what it accepts, the one-line errors naming the field, and what a
policy matches and acts on."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltaomega.cli import main
from deltaomega.control.policies import EXAMPLE, Policy, load_policies
from deltaomega.errors import ConfigurationError

CONFLICT = {"rule": "conflict", "severity": "CRITICAL", "subject": "v2->v1"}


def _policy(**fields: object) -> Policy:
    base: dict[str, object] = {
        "name": "p",
        "when": {"rule": "conflict"},
        "propose": {"strategy": "adaptive", "duration_minutes": 10},
    }
    return Policy.model_validate(base | fields)


def test_the_shipped_example_loads() -> None:
    names = [p.name for p in load_policies(EXAMPLE)]
    assert names == ["damp-critical-conflict", "calm-stressed-voice"]
    assert load_policies(None) == []


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("policies: [", "not YAML"),
        ("policies: 3", "policies: Input should be a valid list"),
        ("nothing: []", "nothing: Extra inputs are not permitted"),
        (
            "policies: [{name: Bad Name, when: {rule: conflict}, "
            "propose: {strategy: adaptive, duration_minutes: 5}}]",
            "policies.0.name: String should match pattern",
        ),
        (
            "policies: [{name: p, when: {rule: conflicts}, "
            "propose: {strategy: adaptive, duration_minutes: 5}}]",
            "policies.0.when.rule: Input should be 'conflict', 'emergence', 'stress_trend' or "
            "'interval_breach'",
        ),
        (
            "policies: [{name: p, when: {rule: conflict}, "
            "propose: {strategy: adaptive, duration_minutes: 0}}]",
            "policies.0.propose.duration_minutes: Input should be greater than or equal to 1",
        ),
        (
            "policies: [{name: p, when: {rule: conflict}, "
            "propose: {strategy: adaptive, duration_minutes: 5, parameters: {sensitivity: 3}}}]",
            "policies.0.propose.parameters.sensitivity: Input should be less than or equal to 2",
        ),
        (
            "policies: [{name: p, when: {rule: conflict}, "
            "propose: {strategy: direct, duration_minutes: 5}}]",
            "policies.0.propose.parameters: the direct strategy needs a parameter",
        ),
        (
            "policies: [{name: p, when: {rule: conflict}, "
            "propose: {strategy: adaptive, duration_minutes: 5}}, {name: p, when: "
            "{rule: emergence}, propose: {strategy: emergency, duration_minutes: 5}}]",
            "policy 'p' is named twice",
        ),
    ],
)
def test_an_invalid_file_is_one_error_naming_the_field(
    tmp_path: Path, text: str, error: str
) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as raised:
        load_policies(path)
    assert str(raised.value).startswith(f"policies file {path}: {error}")


def test_the_cli_checks_a_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policies", "--file", str(EXAMPLE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{EXAMPLE}: 2 policies"
    assert lines[1] == (
        "  damp-critical-conflict: conflict >= CRITICAL on * -> adaptive on subject for 10 min "
        "(needs approval; quiet 30 min)"
    )
    missing = tmp_path / "missing.yaml"
    assert main(["policies", "--file", str(missing)]) == 1
    assert capsys.readouterr().err == (
        f"deltaomega: error: policies file {missing}: No such file or directory\n"
    )


def test_matching_by_rule_severity_and_subject() -> None:
    policy = _policy(when={"rule": "conflict", "severity": "WARNING", "subject": "v2->*"})
    assert policy.matches(CONFLICT)
    assert policy.matches(CONFLICT | {"severity": "WARNING"})
    assert not policy.matches(CONFLICT | {"severity": "INFO"})
    assert not policy.matches(CONFLICT | {"subject": "v1->v2"})
    assert not policy.matches(CONFLICT | {"rule": "emergence"})


def test_targets_from_the_subject() -> None:
    assert _policy().target_voices("v2->v1") == ["v1", "v2"]  # a pair, either way round
    assert _policy().target_voices("v3") == ["v3"]
    assert _policy().target_voices("system") == []
    source = _policy(propose={"strategy": "adaptive", "duration_minutes": 1, "targets": "source"})
    assert source.target_voices("v2->v1") == ["v2"]
    assert source.target_voices("v3") == []
    target = _policy(propose={"strategy": "adaptive", "duration_minutes": 1, "targets": "target"})
    assert target.target_voices("v2->v1") == ["v1"]
    listed = _policy(propose={"strategy": "emergency", "duration_minutes": 1, "targets": ["x"]})
    assert listed.target_voices("system") == ["x"]


def test_the_quiet_period_covers_the_orchestration_and_the_pause() -> None:
    # approval window 30 min + 10 min running + 30 min quiet
    assert _policy().quiet_ms(1800) == 70 * 60_000
    automatic = _policy(automatic=True, quiet_minutes=5)
    assert automatic.quiet_ms(1800) == 15 * 60_000
