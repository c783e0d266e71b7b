"""The webhook signature: ``X-DeltaOmega-Signature: t=<unix seconds>,v1=<hex>`` where hex is
HMAC-SHA256, keyed by the channel's secret, over ``<t>.`` followed by the raw body.

A receiver recomputes it over the bytes it received, compares in constant time and refuses
a timestamp further than its tolerance from its own clock (a replayed request).
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-DeltaOmega-Signature"
#: How far from the receiver's clock a signature's timestamp may be, in seconds.
TOLERANCE_SECONDS = 300


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, now: float, tolerance: float = TOLERANCE_SECONDS
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is no older (or newer) than
    ``tolerance`` seconds at ``now``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(parts.get("v1", ""), _mac(secret, timestamp, body))
