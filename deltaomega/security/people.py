"""People who sign in to the console: accounts an admin creates (argon2id password hashes)
and sign-ins (sessions) with short-lived access tokens and rotating refresh tokens.

Each sign-in is a family: every refresh returns a new refresh token and retires the one
presented. A retired token presented again means two parties hold the family's tokens (one
of them stole it), so the whole family is ended and its access tokens are refused from then
on (the guard asks :meth:`People.ended` about every token with a session id). Accounts and
sessions are records on the API keys' compacted topic, which every API process follows, so
a sign-in made through one process refreshes through any other.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from deltaomega.config import Settings
from deltaomega.errors import DeltaOmegaError, NotFoundError
from deltaomega.security.keys import ACCOUNT, SESSION, KeyFollower
from deltaomega.security.roles import Role, Tier
from deltaomega.security.security_keys import (
    SIGN_IN,
    STEP_UP,
    Ceremony,
    RelyingParty,
    SecurityKeys,
)
from deltaomega.security.tokens import Principal, issue_token

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
MIN_PASSWORD = 12
_REFRESH = re.compile(r"^dor_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")
_HASHER = PasswordHasher()
#: Sign-ins ended or expired this long ago are deleted from the topic (their access tokens
#: ran out long before), a few at each new sign-in.
FORGET_AFTER_MS = 24 * 3600 * 1000
_FORGET_AT_ONCE = 50
#: A hash to check against when the account does not exist, so that a wrong name takes
#: as long as a wrong password.
_DUMMY = _HASHER.hash("not-a-password-of-anyone")


class SignInError(DeltaOmegaError):
    """Credentials that do not sign anyone in; the text is fit to return (a 401)."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    username: str
    role: Role
    session: str
    access_token: str
    refresh_token: str
    expires_in: int

    def body(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "role": self.role.label,
            "session": self.session,
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


def public_account(record: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: record.get(k) for k in ("username", "role", "created_ms", "disabled_ms")},
        "security_keys": len(record.get("security_keys") or []),
    }


class People:
    """Blocking (argon2 takes tens of milliseconds, writes wait for the broker): the API
    calls these off its event loop."""

    def __init__(self, settings: Settings, follower: KeyFollower) -> None:
        self.settings = settings
        self.follower = follower
        self.keys = SecurityKeys(settings, follower)

    # -- accounts (admins) ----------------------------------------------------------------------

    def create_account(self, username: str, password: str, role: Role) -> dict[str, Any]:
        if USERNAME.fullmatch(username) is None:
            raise ValueError(
                "username must be 2-63 characters: lower-case letters, digits, '.', '_', '-'"
            )
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"password must be at least {MIN_PASSWORD} characters")
        current = self.follower.book.accounts.get(username)
        if current is not None and current.get("disabled_ms") is None:
            raise ValueError(f"an account {username!r} exists already")
        record = {
            "username": username,
            "role": role.label,
            "password": _HASHER.hash(password),
            "created_ms": _now_ms(),
            "disabled_ms": None,
        }
        self.follower.publish(f"{ACCOUNT}{username}", json.dumps(record).encode())
        return public_account(record)

    def accounts(self) -> list[dict[str, Any]]:
        book = self.follower.book
        return [public_account(book.accounts[name]) for name in sorted(book.accounts)]

    def disable(self, username: str) -> dict[str, Any]:
        """Ends the account's sign-ins as well."""
        current = self.follower.book.accounts.get(username)
        if current is None:
            raise NotFoundError("account", username)
        record = {**current, "disabled_ms": current.get("disabled_ms") or _now_ms()}
        self.follower.publish(f"{ACCOUNT}{username}", json.dumps(record).encode())
        for session in list(self.follower.book.sessions.values()):
            if session["username"] == username and session.get("ended_ms") is None:
                self._end(session, "account disabled")
        return public_account(record)

    # -- sign-ins ------------------------------------------------------------------------------

    def sign_in(self, username: str, password: str, rp: RelyingParty) -> SignedIn | Ceremony:
        """Signed in, or (the account has a security key) the key's ceremony to finish
        with :meth:`finish_sign_in`."""
        account = self.follower.book.accounts.get(username)
        try:
            _HASHER.verify(account["password"] if account else _DUMMY, password)
        except (VerificationError, InvalidHashError):
            raise SignInError("wrong username or password") from None
        if account is None:
            raise SignInError("wrong username or password")
        if account.get("disabled_ms") is not None:
            raise SignInError("this account is disabled")
        if account.get("security_keys"):
            return self.keys.challenge(username, SIGN_IN, rp)
        return self._start(username, account, None)

    def finish_sign_in(
        self, ceremony: str, credential: dict[str, Any], rp: RelyingParty
    ) -> SignedIn:
        """The second factor: the security key answered the ceremony's challenge (which
        counts as a step-up as well)."""
        username = self.keys.prove(ceremony, credential, SIGN_IN, rp)
        return self._start(username, self.follower.book.accounts[username], int(time.time()))

    def step_up(
        self, principal: Principal, ceremony: str, credential: dict[str, Any], rp: RelyingParty
    ) -> dict[str, Any]:
        """An access token of the same sign-in that says a security key was just proved."""
        username = self.keys.prove(ceremony, credential, STEP_UP, rp)
        if principal.subject != f"user:{username}" or principal.session is None:
            raise SignInError("the security key is not the signed-in person's")
        if (why := self.ended(principal.session)) is not None:
            raise SignInError(why)
        role = Role.parse(self.follower.book.accounts[username]["role"])
        now = int(time.time())
        ttl = min(self.settings.session_access_seconds, self.settings.step_up_seconds)
        access = issue_token(
            self.settings, principal.subject, role, ttl, Tier.STANDARD, principal.session, now
        )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "stepped_up_until": now + self.settings.step_up_seconds,
        }

    def forget_old_sign_ins(self) -> int:
        """Tombstones for sign-ins over for a day (a few at a time): the topic and every
        process's copy of it stay the size of the sign-ins in use."""
        horizon = _now_ms() - FORGET_AFTER_MS
        old = [
            s["session"]
            for s in list(self.follower.book.sessions.values())
            if (s.get("ended_ms") or s["expires_ms"]) < horizon
        ][:_FORGET_AT_ONCE]
        for session in old:
            self.follower.publish(f"{SESSION}{session}", None)
        return len(old)

    def _start(self, username: str, account: dict[str, Any], stepped_up_at: int | None) -> SignedIn:
        self.forget_old_sign_ins()
        now = _now_ms()
        session = {
            "session": secrets.token_hex(16),
            "username": username,
            "role": account["role"],
            "created_ms": now,
            "expires_ms": now + self.settings.session_refresh_seconds * 1000,
            "generation": 0,
            "current": "",
            "ended_ms": None,
            "reason": "",
        }
        return self._rotate(session, stepped_up_at)

    def refresh(self, token: str) -> SignedIn:
        """A new access token and refresh token for a live refresh token; a retired one
        ends its whole sign-in."""
        match = _REFRESH.fullmatch(token)
        if match is None:
            raise SignInError("malformed refresh token")
        session = self.follower.book.sessions.get(match.group(1))
        if session is None:
            raise SignInError("unknown refresh token")
        if session.get("ended_ms") is not None:
            raise SignInError(f"this sign-in has ended ({session['reason']})")
        if session["expires_ms"] <= _now_ms():
            raise SignInError("this sign-in has expired; sign in again")
        if not hmac.compare_digest(session["current"], _digest(token)):
            self._end(session, "a refresh token was used twice")
            raise SignInError(
                "this refresh token was already used: the sign-in is ended; sign in again"
            )
        account = self.follower.book.accounts.get(session["username"])
        if account is None or account.get("disabled_ms") is not None:
            self._end(session, "account disabled")
            raise SignInError("this account is disabled")
        # the role is the account's now: an admin's change applies at the next refresh
        return self._rotate({**session, "role": account["role"]})

    def sign_out(self, token: str) -> None:
        match = _REFRESH.fullmatch(token)
        session = self.follower.book.sessions.get(match.group(1)) if match else None
        if session is None or not hmac.compare_digest(session["current"], _digest(token)):
            raise SignInError("unknown refresh token")
        if session.get("ended_ms") is None:
            self._end(session, "signed out")

    def ended(self, session: str) -> str | None:
        """Why a sign-in's tokens are no longer good (None: they are)."""
        record = self.follower.book.sessions.get(session)
        if record is None:
            return "unknown sign-in"
        if record.get("ended_ms") is not None:
            return f"the sign-in has ended ({record['reason']})"
        return None

    def _rotate(self, session: dict[str, Any], stepped_up_at: int | None = None) -> SignedIn:
        refresh = f"dor_{session['session']}_{secrets.token_urlsafe(32)}"
        record = {**session, "generation": session["generation"] + 1, "current": _digest(refresh)}
        self.follower.publish(f"{SESSION}{session['session']}", json.dumps(record).encode())
        role = Role.parse(record["role"])
        ttl = self.settings.session_access_seconds
        access = issue_token(
            self.settings,
            f"user:{record['username']}",
            role,
            ttl,
            Tier.STANDARD,
            record["session"],
            stepped_up_at,
        )
        return SignedIn(record["username"], role, record["session"], access, refresh, ttl)

    def _end(self, session: dict[str, Any], reason: str) -> None:
        record = {**session, "ended_ms": _now_ms(), "reason": reason}
        self.follower.publish(f"{SESSION}{session['session']}", json.dumps(record).encode())
