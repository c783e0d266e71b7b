"""Policies: the closed loop from alerts to proposed orchestrations.

A YAML file named by ``DELTAOMEGA_POLICIES_FILE`` lists them (``policies.example.yaml``
in this package is the demo's)::

    policies:
      - name: damp-critical-conflict
        when: {rule: conflict, severity: CRITICAL}
        propose:
          strategy: adaptive
          targets: subject
          duration_minutes: 10
          strategy_parameters: {scale: 0.5}
        automatic: false
        quiet_minutes: 30

An alert matches a policy when its rule is ``when.rule``, its severity is at least
``when.severity`` (INFO < WARNING < CRITICAL) and its subject matches the glob
``when.subject`` (default ``*``). ``targets`` names the voices: ``subject`` (both voices
of a pair ``a->b``, or the voice an alert is about), ``source`` or ``target`` (one side of
a pair), or a list of voice ids.

A condition that persists raises an alert every window; a policy proposes once for its
target voices (a->b and b->a are one pair), then stays quiet for them until the
orchestration could have run its course (the approval window, unless automatic, plus its
duration) and ``quiet_minutes`` more. A rejected proposal is therefore not proposed
again at once either.

Proposals are requested by ``policy:<name>``; an automatic policy's proposal is approved
at once by ``system``. Both are audited like an operator's.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from deltaomega.control.strategies import OrchestrationTargets, Strategy, StrategyOptions
from deltaomega.errors import ConfigurationError
from deltaomega.yaml_files import load_model

SEVERITIES = ("INFO", "WARNING", "CRITICAL")
EXAMPLE = Path(__file__).with_name("policies.example.yaml")

VoiceId = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class When(_Strict):
    rule: Literal["conflict", "emergence", "stress_trend", "interval_breach"]
    severity: Literal["INFO", "WARNING", "CRITICAL"] = "WARNING"
    subject: str = Field(default="*", min_length=1, description="A glob over the subject.")


class Proposal(_Strict):
    strategy: Strategy
    targets: Literal["subject", "source", "target"] | list[VoiceId] = "subject"
    duration_minutes: int = Field(ge=1, le=1440)
    parameters: OrchestrationTargets = Field(default_factory=OrchestrationTargets)
    strategy_parameters: StrategyOptions = Field(default_factory=StrategyOptions)


class Policy(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    when: When
    propose: Proposal
    automatic: bool = False
    quiet_minutes: float = Field(default=30.0, ge=0, le=10080)

    def matches(self, alert: dict[str, Any]) -> bool:
        return (
            alert["rule"] == self.when.rule
            and SEVERITIES.index(alert["severity"]) >= SEVERITIES.index(self.when.severity)
            and fnmatch.fnmatchcase(alert["subject"], self.when.subject)
        )

    def target_voices(self, subject: str) -> list[str]:
        """The voices a proposal for ``subject`` acts on (none for a 'system' subject)."""
        targets = self.propose.targets
        if isinstance(targets, list):
            return list(targets)
        source, arrow, target = subject.partition("->")
        if not arrow:
            return [] if subject == "system" or targets != "subject" else [subject]
        if targets == "subject":  # a pair, whichever way the alert names it
            return sorted({source, target})
        return [source if targets == "source" else target]

    def quiet_ms(self, approval_seconds: float) -> int:
        """How long after a proposal the policy stays quiet for its subject."""
        waiting = 0.0 if self.automatic else approval_seconds
        return int((waiting + self.propose.duration_minutes * 60 + self.quiet_minutes * 60) * 1000)


class PolicyFile(_Strict):
    policies: list[Policy] = Field(default_factory=list, max_length=200)


def load_policies(path: Path | None) -> list[Policy]:
    """The policies in ``path`` (none without one); ConfigurationError, naming the file and
    the field, when it cannot be read or is not valid."""
    if path is None:
        return []
    policies = load_model(path, PolicyFile, "policies file").policies
    names = [p.name for p in policies]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigurationError(f"policies file {path}: policy {twice[0]!r} is named twice")
    for index, policy in enumerate(policies):
        needs = policy.propose.strategy in (Strategy.DIRECT, Strategy.EVOLUTION)
        if needs and not policy.propose.parameters.model_dump(exclude_none=True):
            raise ConfigurationError(
                f"policies file {path}: policies.{index}.propose.parameters: "
                f"the {policy.propose.strategy.value} strategy needs a parameter"
            )
    return policies
