"""JWT bearer tokens (PyJWT): the API's own, HS256 with ``auth_secret``, or an identity
provider's, RS256/ES256 with the keys its JWKS URL publishes.

Every token must carry ``sub``, ``exp``, ``iss`` and ``aud`` (the settings' issuer and
audience) and a ``role``; ``nbf`` is checked when present, and ``tier`` (rate limits
only) defaults to standard. A refused token says why in one short phrase, never more.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from deltaomega.config import DEVELOPMENT_AUTH_SECRET, Settings
from deltaomega.errors import DeltaOmegaError
from deltaomega.security.roles import Role, Tier

#: Clock skew tolerated on ``exp`` and ``nbf``.
LEEWAY_SECONDS = 30
MIN_SECRET_LENGTH = 32
_REQUIRED = ["sub", "exp", "iss", "aud"]
_PROVIDER_ALGORITHMS = ["RS256", "ES256"]


class InsecureSecretError(DeltaOmegaError):
    """The token secret is the built-in one (outside development) or too short."""


class TokenError(DeltaOmegaError):
    """A token that does not prove who calls: the reason is fit to return to the caller."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, as a verified token or API key says."""

    subject: str
    role: Role
    tier: Tier = Tier.STANDARD
    #: how it was proven: a token, an API key, or nothing (anonymous reads)
    method: str = "token"
    #: the console sign-in the token belongs to (ended sessions' tokens are refused)
    session: str | None = None
    #: when the person last proved a security key in this sign-in (epoch seconds)
    stepped_up_at: int | None = None

    def may(self, role: Role) -> bool:
        return self.role >= role


def checked_secret(settings: Settings) -> str:
    """The HS256 secret, refused if it is the built-in one outside development or short."""
    secret = settings.auth_secret.get_secret_value()
    if secret == DEVELOPMENT_AUTH_SECRET and settings.env != "development":
        raise InsecureSecretError(
            "DELTAOMEGA_AUTH_SECRET is the built-in development secret; set a secret of "
            f"your own (at least {MIN_SECRET_LENGTH} characters) or DELTAOMEGA_ENV=development"
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise InsecureSecretError(
            f"DELTAOMEGA_AUTH_SECRET must be at least {MIN_SECRET_LENGTH} characters"
        )
    return secret


def issue_token(
    settings: Settings,
    subject: str,
    role: Role,
    ttl_seconds: float,
    tier: Tier = Tier.STANDARD,
    session: str | None = None,
    stepped_up_at: int | None = None,
) -> str:
    """A token of this API's own (HS256), as `deltaomega auth token` prints it, or for a
    person signed in to the console (``session``: the sign-in it belongs to;
    ``stepped_up_at``: when they last proved a security key, RFC 8176's ``hwk``)."""
    if settings.auth_jwks_url:
        raise TokenError(
            "tokens are issued by the identity provider at DELTAOMEGA_AUTH_JWKS_URL, not here"
        )
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "role": role.label,
        "tier": tier.value,
        "iss": settings.auth_issuer,
        "aud": settings.auth_audience,
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    if session is not None:
        claims["sid"] = session
        claims["amr"] = ["pwd"] if stepped_up_at is None else ["pwd", "hwk"]
    if stepped_up_at is not None:
        claims["hwk_at"] = stepped_up_at
    return jwt.encode(claims, checked_secret(settings), algorithm="HS256")


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jwks: jwt.PyJWKClient | None = None
        self._secret: str | None = None
        if settings.auth_jwks_url:
            # Keys are cached and fetched again for a key id not seen yet (a rotation).
            self._jwks = jwt.PyJWKClient(settings.auth_jwks_url, cache_keys=True, timeout=5)
        else:
            self._secret = checked_secret(settings)

    def verify(self, token: str) -> Principal:
        try:
            claims = self._decode(token)
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("token not valid yet (nbf)") from None
        except jwt.InvalidIssuerError:
            raise TokenError("token from another issuer") from None
        except jwt.InvalidAudienceError:
            raise TokenError("token for another audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token without the {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise TokenError("token signature does not verify") from None
        except jwt.PyJWKClientError as exc:
            raise TokenError(f"token key not found at the identity provider ({exc})") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token ({type(exc).__name__})") from None
        try:
            role = Role.parse(claims.get("role"))
            tier = Tier.parse(claims.get("tier"))
        except ValueError as exc:
            raise TokenError(f"token claims: {exc}") from None
        session = claims.get("sid")
        stepped = claims.get("hwk_at")
        return Principal(
            str(claims["sub"]),
            role,
            tier,
            session=session if isinstance(session, str) else None,
            stepped_up_at=stepped if isinstance(stepped, int) else None,
        )

    def _decode(self, token: str) -> dict[str, Any]:
        options: dict[str, Any] = {"require": _REQUIRED}
        common: dict[str, Any] = {
            "audience": self.settings.auth_audience,
            "issuer": self.settings.auth_issuer,
            "leeway": LEEWAY_SECONDS,
            "options": options,
        }
        if self._jwks is not None:
            key = self._jwks.get_signing_key_from_jwt(token).key
            return jwt.decode(token, key, algorithms=_PROVIDER_ALGORITHMS, **common)
        return jwt.decode(token, self._secret or "", algorithms=["HS256"], **common)
