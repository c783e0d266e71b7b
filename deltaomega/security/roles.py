"""Roles, from least to most trusted: each may do what the ones below it may.

viewer: states, the matrix, alerts and the feeds; analyst: + model outputs' history,
exports and pattern analysis; operator: + parameter changes, orchestration requests and
approvals, alert management; admin: + keys, the audit log, emergency orchestration alone,
settings. Tiers set rate limits only, never rights.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Role(IntEnum):
    VIEWER = 1
    ANALYST = 2
    OPERATOR = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: object) -> Role:
        """A role from its name (as tokens and keys carry it); ValueError names the choices."""
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        raise ValueError(f"role must be one of {', '.join(r.label for r in cls)}; got {value!r}")


class Tier(StrEnum):
    STANDARD = "standard"
    PREMIUM = "premium"

    @classmethod
    def parse(cls, value: object) -> Tier:
        if value is None:
            return cls.STANDARD
        for tier in cls:
            if value == tier.value:
                return tier
        raise ValueError(f"tier must be one of {', '.join(t.value for t in cls)}; got {value!r}")
