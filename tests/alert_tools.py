"""What the alert tests publish and route: one webhook route, and a window's pattern record
(the clock that clears alert conditions)."""

from __future__ import annotations

import time
from typing import Any

from deltaomega.alerting.routing import Routing


def webhook_routing(url: str, **extra: Any) -> Routing:
    """CRITICAL to one signed webhook at ``url``."""
    return Routing.model_validate(
        {
            "channels": {"hook": {"type": "webhook", "url": url, "secret": "s" * 32}},
            "routes": {"CRITICAL": {"channels": ["hook"]}},
            **extra,
        }
    )


def pattern_record(window: int) -> dict[str, Any]:
    """A tick's pattern record for ``window``: to the control plane, the window closed."""
    return {
        "window_start": window,
        "pattern": "cooperative",
        "confidence": 0.9,
        "complexity": 0.5,
        "novelty": 0.1,
        "model_version": "v1",
        "produced_at": int(time.time() * 1000),
    }
