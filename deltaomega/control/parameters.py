"""What a voice's parameters are after a sequence of changes, and what undoes a change.

Shared by the control plane (which reverts a change when its duration ends), the API
(which reports current and replaced values) and the voices' side (which applies them).
"""

from __future__ import annotations

from typing import Any

#: A voice's parameters before any change.
DEFAULTS: dict[str, Any] = {
    "sensitivity": 1.0,
    "activation_threshold": 0.5,
    "influence_weight": 1.0,
    "context_modifiers": {},
}
TUNABLE = ("sensitivity", "activation_threshold", "influence_weight")


def applied(current: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``current`` with ``change`` applied: a null parameter stays; context modifiers merge,
    except that a revert (``reverts`` set) carries the whole map it restores."""
    out = {**current, "context_modifiers": dict(current.get("context_modifiers", {}))}
    for name in TUNABLE:
        if change.get(name) is not None:
            out[name] = change[name]
    modifiers = change.get("context_modifiers") or {}
    if change.get("reverts") is not None:
        out["context_modifiers"] = dict(modifiers)
    else:
        out["context_modifiers"].update(modifiers)
    return out


def undoing(before: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """The values a revert of ``change`` carries: the parameters it set, as they were
    ``before``, and the whole context-modifier map of then."""
    restore: dict[str, Any] = {
        name: before[name] for name in TUNABLE if change.get(name) is not None
    }
    restore["context_modifiers"] = dict(before["context_modifiers"])
    return restore


def effective(changes: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the parameters in effect, what the last change replaced) after ``changes``, oldest
    first (their context modifiers as maps)."""
    current: dict[str, Any] = DEFAULTS
    replaced: dict[str, Any] | None = None
    for change in changes:
        replaced, current = current, applied(current, change)
    return current, replaced
