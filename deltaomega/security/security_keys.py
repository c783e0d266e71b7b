"""People's security keys (WebAuthn, with the ``webauthn`` library): the second factor of a
console sign-in and the step-up that emergency actions ask for.

A ceremony (registering a key, or proving one) is two calls: the first returns the
browser's options and a *ceremony token*, a short-lived JWT signed like access tokens that
carries the challenge, the person and what it is for; the second returns the token with
the browser's answer. No server keeps a ceremony, so any API process finishes one another
began; a ceremony token is good once in the process that finishes it, and the key's
signature counter (kept with the account) refuses an answer replayed elsewhere.

The relying party is the console's origin: ``console_origin`` when set (behind a proxy
that terminates TLS), otherwise the origin the request reached this server by. The browser
puts the page's origin into what the key signs, so a page elsewhere cannot use an answer.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidJSONStructure, WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from deltaomega.config import Settings
from deltaomega.errors import DeltaOmegaError
from deltaomega.security.keys import ACCOUNT, KeyFollower
from deltaomega.security.tokens import Principal, checked_secret

CEREMONY_SECONDS = 120
RP_NAME = "Meta-ΔDΩΛ"
#: what a ceremony token is for
REGISTER, SIGN_IN, STEP_UP = "register", "sign-in", "step-up"
MAX_KEYS = 10
#: what the library raises on an answer that is malformed or does not verify
_UNREADABLE = (
    WebAuthnException,
    InvalidJSONStructure,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
)


class SecurityKeyError(DeltaOmegaError):
    """A ceremony that does not prove what it should; the text is fit to return."""


class StepUpRequiredError(DeltaOmegaError):
    """A person's action that needs a fresh security-key proof (RFC 9470: a 401 whose
    challenge says ``insufficient_user_authentication``)."""

    def __init__(self, action: str, max_age: int) -> None:
        super().__init__(
            f"{action} needs a security-key step-up within the last {max_age} s: "
            "prove your key (POST /api/v1/auth/step-up) and try again"
        )
        self.max_age = max_age

    @property
    def challenge(self) -> str:
        return (
            'Bearer realm="deltaomega", error="insufficient_user_authentication", '
            f'error_description="{self}", max_age={self.max_age}'
        )


def require_step_up(settings: Settings, principal: Principal, action: str) -> None:
    """People (console sign-ins) must have proved a security key lately; machines (API
    keys, tokens without a sign-in) have no key to prove and are judged by role alone."""
    if principal.session is None:
        return
    at = principal.stepped_up_at
    if at is None or time.time() - at > settings.step_up_seconds:
        raise StepUpRequiredError(action, settings.step_up_seconds)


@dataclass(frozen=True)
class RelyingParty:
    """Where the console lives: the key is bound to ``rp_id``, answers to ``origin``."""

    rp_id: str
    origin: str

    @classmethod
    def of(cls, settings: Settings, scheme: str, host: str) -> RelyingParty:
        """From the settings, or from how the request reached this server."""
        origin = settings.console_origin or f"{scheme}://{host}"
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SecurityKeyError(f"cannot use security keys from {origin!r}")
        return cls(parts.hostname, f"{parts.scheme}://{parts.netloc}")


@dataclass(frozen=True)
class Ceremony:
    """What the browser needs (``public_key``: WebAuthn options as JSON) and the token to
    send back with its answer."""

    public_key: dict[str, Any]
    ceremony: str

    def body(self) -> dict[str, Any]:
        return {"ceremony": self.ceremony, "public_key": self.public_key}


def listed_keys(account: dict[str, Any]) -> list[dict[str, Any]]:
    """An account's keys without their public key material."""
    return [
        {k: key[k] for k in ("id", "name", "created_ms", "last_used_ms")}
        for key in account.get("security_keys", [])
    ]


class SecurityKeys:
    """Blocking (writes wait for the broker): the API calls these off its event loop."""

    def __init__(self, settings: Settings, follower: KeyFollower) -> None:
        self.settings = settings
        self.follower = follower
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- ceremony tokens ---------------------------------------------------------------------

    @property
    def _audience(self) -> str:
        return f"{self.settings.auth_audience}:webauthn"

    def _ceremony(self, purpose: str, username: str, challenge: bytes, rp: RelyingParty) -> str:
        now = int(time.time())
        claims = {
            "iss": self.settings.auth_issuer,
            "aud": self._audience,
            "sub": username,
            "purpose": purpose,
            "challenge": bytes_to_base64url(challenge),
            "rp": rp.rp_id,
            "origin": rp.origin,
            "iat": now,
            "exp": now + CEREMONY_SECONDS,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, checked_secret(self.settings), algorithm="HS256")

    def _open(self, token: str, purpose: str, rp: RelyingParty) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                checked_secret(self.settings),
                algorithms=["HS256"],
                audience=self._audience,
                issuer=self.settings.auth_issuer,
                options={"require": ["exp", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise SecurityKeyError("the security key ceremony expired; start again") from None
        except jwt.InvalidTokenError:
            raise SecurityKeyError("not a security key ceremony of this server") from None
        if claims.get("purpose") != purpose:
            raise SecurityKeyError(f"this ceremony is not for {purpose}")
        if (claims.get("rp"), claims.get("origin")) != (rp.rp_id, rp.origin):
            raise SecurityKeyError("this ceremony began at another origin")
        now = time.time()
        with self._lock:
            for jti in [j for j, until in self._used.items() if until < now]:
                del self._used[jti]
            if claims["jti"] in self._used:
                raise SecurityKeyError("this ceremony was used already; start again")
            self._used[claims["jti"]] = float(claims["exp"])
        return dict(claims)

    # -- registering a key ---------------------------------------------------------------------

    def registration(self, username: str, rp: RelyingParty) -> Ceremony:
        account = self._account(username)
        keys = account.get("security_keys", [])
        if len(keys) >= MAX_KEYS:
            raise SecurityKeyError(f"an account holds at most {MAX_KEYS} security keys")
        challenge = secrets.token_bytes(32)
        options = generate_registration_options(
            rp_id=rp.rp_id,
            rp_name=RP_NAME,
            user_name=username,
            user_id=username.encode(),
            challenge=challenge,
            timeout=CEREMONY_SECONDS * 1000,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.DISCOURAGED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(k["id"])) for k in keys
            ],
        )
        return Ceremony(
            json.loads(options_to_json(options)),
            self._ceremony(REGISTER, username, challenge, rp),
        )

    def register(
        self,
        username: str,
        ceremony: str,
        credential: dict[str, Any],
        name: str,
        rp: RelyingParty,
    ) -> dict[str, Any]:
        claims = self._open(ceremony, REGISTER, rp)
        if claims["sub"] != username:
            raise SecurityKeyError("this ceremony was begun by someone else")
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=base64url_to_bytes(claims["challenge"]),
                expected_rp_id=rp.rp_id,
                expected_origin=rp.origin,
            )
        except _UNREADABLE as exc:
            raise SecurityKeyError(f"the security key's answer does not verify ({exc})") from None
        account = self._account(username)
        key_id = bytes_to_base64url(verified.credential_id)
        keys = account.get("security_keys", [])
        if any(k["id"] == key_id for k in keys):
            raise SecurityKeyError("this security key is registered already")
        key = {
            "id": key_id,
            "name": name,
            "public_key": bytes_to_base64url(verified.credential_public_key),
            "sign_count": verified.sign_count,
            "created_ms": int(time.time() * 1000),
            "last_used_ms": None,
        }
        self._save({**account, "security_keys": [*keys, key]})
        return {k: key[k] for k in ("id", "name", "created_ms", "last_used_ms")}

    def remove_all(self, username: str) -> int:
        """An admin's reset for a person who lost their keys: how many were removed."""
        account = self._account(username)
        removed = len(account.get("security_keys", []))
        if removed:
            self._save({**account, "security_keys": []})
        return removed

    # -- proving a key -------------------------------------------------------------------------

    def has_keys(self, username: str) -> bool:
        account = self.follower.book.accounts.get(username)
        return bool(account and account.get("security_keys"))

    def challenge(self, username: str, purpose: str, rp: RelyingParty) -> Ceremony:
        keys = self._account(username).get("security_keys", [])
        if not keys:
            raise SecurityKeyError(
                f"{username} has no security key: register one on the console's account page"
            )
        challenge = secrets.token_bytes(32)
        options = generate_authentication_options(
            rp_id=rp.rp_id,
            challenge=challenge,
            timeout=CEREMONY_SECONDS * 1000,
            allow_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(k["id"])) for k in keys
            ],
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        return Ceremony(
            json.loads(options_to_json(options)), self._ceremony(purpose, username, challenge, rp)
        )

    def prove(
        self, ceremony: str, credential: dict[str, Any], purpose: str, rp: RelyingParty
    ) -> str:
        """The username whose key answered the ceremony's challenge."""
        claims = self._open(ceremony, purpose, rp)
        username = str(claims["sub"])
        account = self._account(username)
        keys = account.get("security_keys", [])
        key = next((k for k in keys if k["id"] == credential.get("id")), None)
        if key is None:
            raise SecurityKeyError("not a security key of this account")
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=base64url_to_bytes(claims["challenge"]),
                expected_rp_id=rp.rp_id,
                expected_origin=rp.origin,
                credential_public_key=base64url_to_bytes(key["public_key"]),
                credential_current_sign_count=int(key["sign_count"]),
            )
        except _UNREADABLE as exc:
            raise SecurityKeyError(f"the security key's answer does not verify ({exc})") from None
        used = {
            **key,
            "sign_count": verified.new_sign_count,
            "last_used_ms": int(time.time() * 1000),
        }
        self._save(
            {**account, "security_keys": [used if k["id"] == key["id"] else k for k in keys]}
        )
        return username

    # -- storage -------------------------------------------------------------------------------

    def _account(self, username: str) -> dict[str, Any]:
        account = self.follower.book.accounts.get(username)
        if account is None or account.get("disabled_ms") is not None:
            raise SecurityKeyError(f"no active account {username!r}")
        return account

    def _save(self, account: dict[str, Any]) -> None:
        self.follower.publish(f"{ACCOUNT}{account['username']}", json.dumps(account).encode())
