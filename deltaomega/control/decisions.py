"""Which decisions an orchestration's state allows: one rule for the API (a 409 at once)
and the control plane's state machine (which refuses what reaches it anyway)."""

from __future__ import annotations

#: decision → the state it needs, and how it reads once done
NEEDS = {"APPROVE": "PROPOSED", "REJECT": "PROPOSED", "ROLLBACK": "ACTIVE"}
_DONE = {"APPROVE": "approved", "REJECT": "rejected", "ROLLBACK": "rolled back"}


def refusal(action: str, current: str, requested_by: str, actor: str) -> str | None:
    """Why ``actor`` may not ``action`` an orchestration in state ``current``; None if
    they may."""
    needed = NEEDS[action]
    if current != needed:
        return (
            f"only a {needed.lower()} orchestration can be {_DONE[action]}; this one is {current}"
        )
    if action == "APPROVE" and actor == requested_by:
        return "the requester cannot approve their own request"
    return None
