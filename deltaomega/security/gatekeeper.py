"""Who calls and whether they may: credentials to a principal, its role against the
route's, and its rate limit. No HTTP here; the API's guard turns the answers into 401, 403
and 429 problems."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from deltaomega.config import Settings
from deltaomega.errors import DeltaOmegaError
from deltaomega.security.keys import KeyFollower, KeyRejectedError
from deltaomega.security.people import People
from deltaomega.security.rate_limits import (
    FAILED_AUTHENTICATIONS,
    RateLimiter,
    RouteClass,
    Verdict,
    budget,
)
from deltaomega.security.roles import Role, Tier
from deltaomega.security.tokens import (
    InsecureSecretError,
    Principal,
    TokenError,
    TokenVerifier,
)
from deltaomega.threads import in_thread

log = logging.getLogger(__name__)

ANONYMOUS = Principal("anonymous", Role.VIEWER, Tier.STANDARD, method="anonymous")


class UnauthenticatedError(DeltaOmegaError):
    """No credentials, or credentials that prove nothing: a 401 with a challenge."""

    def __init__(self, reason: str, scheme: str = "Bearer", error: str | None = None) -> None:
        super().__init__(reason)
        self.scheme = scheme
        self.error = error

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value (RFC 6750 for bearer tokens)."""
        text = f'{self.scheme} realm="deltaomega"'
        if self.error is not None:
            text += f', error="{self.error}", error_description="{self}"'
        return text


class ForbiddenError(DeltaOmegaError):
    """A known caller without the role the route needs: a 403."""

    def __init__(self, principal: Principal, needed: Role) -> None:
        super().__init__(
            f"this route needs the {needed.label} role or above; "
            f"{principal.subject} is a {principal.role.label}"
        )
        self.principal = principal
        self.needed = needed


class RateLimitedError(DeltaOmegaError):
    """Over budget: a 429 with Retry-After."""

    def __init__(self, what: str, verdict: Verdict) -> None:
        super().__init__(
            f"{verdict.limit} {what} per minute for this caller; retry in {verdict.retry_after} s"
        )
        self.verdict = verdict


@dataclass
class Gatekeeper:
    settings: Settings
    keys: KeyFollower
    limiter: RateLimiter | None
    tokens: TokenVerifier | None
    #: why bearer tokens are refused when ``tokens`` is None
    tokens_off: str = ""

    @functools.cached_property
    def people(self) -> People:
        return People(self.settings, self.keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> Gatekeeper:
        tokens: TokenVerifier | None = None
        off = ""
        try:
            tokens = TokenVerifier(settings)
        except InsecureSecretError as exc:
            off = "bearer tokens are not accepted by this deployment (no usable secret)"
            log.warning("bearer tokens are refused: %s; API keys still work", exc)
        limiter = (
            RateLimiter(settings.rate_limit_storage, f"{settings.topic_prefix}{settings.app_id}")
            if settings.rate_limits
            else None
        )
        return cls(settings, KeyFollower(settings), limiter, tokens, off)

    async def authenticate(
        self, authorization: str | None, api_key: str | None
    ) -> Principal | None:
        """The caller, or None when there are no credentials at all. A provider's token may
        need its keys fetched (a new key id): that happens off the event loop."""
        if api_key:
            try:
                record = self.keys.check(api_key)
            except KeyRejectedError as exc:
                raise UnauthenticatedError(str(exc), "ApiKey", "invalid_key") from None
            return Principal(f"key:{record.key_id}", record.role, record.tier, method="api_key")
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError(
                "the Authorization header must be 'Bearer <token>'", error="invalid_request"
            )
        if self.tokens is None:
            raise UnauthenticatedError(self.tokens_off, error="invalid_token")
        try:
            if self.settings.auth_jwks_url:
                principal = await in_thread(self.tokens.verify, token.strip())
            else:
                principal = self.tokens.verify(token.strip())
        except TokenError as exc:
            raise UnauthenticatedError(str(exc), error="invalid_token") from None
        if principal.session is not None:
            ended = self.people.ended(principal.session)
            if ended is not None:
                raise UnauthenticatedError(ended, error="invalid_token")
        return principal

    def admit(self, principal: Principal | None, needed: Role) -> Principal:
        """The principal the request runs as, if it may call a route needing ``needed``."""
        if principal is None:
            if not self.settings.auth_anonymous:
                raise UnauthenticatedError(
                    "credentials required: an X-API-Key header or an Authorization: Bearer token"
                )
            principal = ANONYMOUS
        if not principal.may(needed):
            raise ForbiddenError(principal, needed)
        return principal

    async def spend(self, principal: Principal, route_class: RouteClass, client: str) -> None:
        """Count the request against the caller's budget; RateLimitedError when over it."""
        if self.limiter is None:
            return
        anonymous = principal.method == "anonymous"
        limit = budget(route_class, None if anonymous else principal.role, principal.tier)
        who = f"ip:{client}" if anonymous else principal.subject
        verdict = await self.limiter.hit(limit, route_class.value, who)
        if not verdict.allowed:
            raise RateLimitedError(f"{route_class.value} requests", verdict)

    async def before_authentication(self, client: str) -> None:
        """RateLimitedError for an address that failed authentication too often lately."""
        if self.limiter is None:
            return
        verdict = await self.limiter.check(FAILED_AUTHENTICATIONS, "auth-failed", f"ip:{client}")
        if not verdict.allowed:
            raise RateLimitedError("failed authentications", verdict)

    async def failed_authentication(self, client: str) -> None:
        if self.limiter is not None:
            await self.limiter.hit(FAILED_AUTHENTICATIONS, "auth-failed", f"ip:{client}")
