"""Rate limits per principal and route class, with the seed's numbers, through `limits`.

A moving window (the 21st write in any 60 s is refused, not the 21st since the minute
began), kept in memory by default or in Redis when API processes share the budget
(``DELTAOMEGA_RATE_LIMIT_STORAGE=redis://host:6379``). When Redis does not answer, requests
pass: limits protect the service, and an outage of theirs must not take it down; the
outage is logged once and summarised like any other.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from deltaomega.outages import outage
from deltaomega.security.roles import Role, Tier


class RouteClass(StrEnum):
    """What a route costs: the seed sets one budget per class."""

    READ = "read"
    WRITE = "write"
    MONITOR = "monitor"


@dataclass(frozen=True)
class Budget:
    """Requests per minute."""

    standard: int
    premium: int
    anonymous: int
    #: admins' budget where it differs from their tier's
    admin: int | None = None


#: The seed's numbers (anonymous callers exist only where anonymous reads are allowed).
BUDGETS: dict[RouteClass, Budget] = {
    RouteClass.READ: Budget(standard=100, premium=1000, anonymous=10),
    RouteClass.WRITE: Budget(standard=20, premium=20, anonymous=0, admin=100),
    RouteClass.MONITOR: Budget(standard=50, premium=200, anonymous=10),
}


#: Failed authentications per client address and minute, after which its requests wait
#: without being checked: guessing keys or tokens is slow.
FAILED_AUTHENTICATIONS = "30/minute"


def budget(route_class: RouteClass, role: Role | None, tier: Tier) -> str:
    """The caller's limit, as `limits` reads it; ``role`` None is an anonymous caller."""
    b = BUDGETS[route_class]
    if role is None:
        per_minute = b.anonymous
    elif role is Role.ADMIN and b.admin is not None:
        per_minute = b.admin
    else:
        per_minute = b.premium if tier is Tier.PREMIUM else b.standard
    return f"{per_minute}/minute"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    #: seconds until one more request would pass (0 when allowed)
    retry_after: int


class RateLimiter:
    def __init__(self, storage_uri: str, namespace: str) -> None:
        options = _options(storage_uri, namespace)
        self.storage = cast(Storage, storage_from_string(_async_uri(storage_uri), **options))
        self.limiter = MovingWindowRateLimiter(self.storage)
        self._items: dict[str, RateLimitItem] = {}

    async def hit(self, limit: str, *who: str) -> Verdict:
        """Count one request; whether it was within the limit."""
        return await self._ask(limit, who, spend=True)

    async def check(self, limit: str, *who: str) -> Verdict:
        """Whether one more request would be within the limit, counting nothing."""
        return await self._ask(limit, who, spend=False)

    async def _ask(self, limit: str, who: tuple[str, ...], spend: bool) -> Verdict:
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = parse(limit)
        try:
            if spend:
                allowed = await self.limiter.hit(item, *who)
            else:
                allowed = await self.limiter.test(item, *who)
            stats = await self.limiter.get_window_stats(item, *who)
        except StorageError as exc:
            outage("redis").failed(str(exc) or type(exc).__name__)
            return Verdict(True, item.amount, item.amount, 0)
        outage("redis").recovered()
        retry = 0 if allowed else max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, item.amount, stats.remaining, retry)


def _async_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


def _options(uri: str, namespace: str) -> dict[str, float | str | bool]:
    options: dict[str, float | str | bool] = {"wrap_exceptions": True}
    if "redis" in uri.split("://", 1)[0]:
        # deployments (and tests) sharing a Redis keep apart
        options["key_prefix"] = f"deltaomega:{namespace}"
        # redis-py's asyncio client rather than the default coredis; a Redis that does not
        # answer costs a request at most a second
        options |= {
            "implementation": "redispy",
            "socket_connect_timeout": 1.0,
            "socket_timeout": 1.0,
        }
    return options
