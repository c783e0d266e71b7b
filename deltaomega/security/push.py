"""Web push for people's browsers and phones: the server's VAPID key, and each person's
subscriptions (records ``push/<username>/<endpoint digest>`` on the API keys' compacted
topic, which the API processes and the control plane follow).

The VAPID key (RFC 8292) is ``push_vapid_private_key`` when set, otherwise derived from
the token secret with HKDF: every process that shares the secret signs with the same key,
and none has to store or hand one out. Changing the secret changes the key; the console
then subscribes again.

The server posts to a URL the browser gave it, so endpoints are held to the push services
of ``push_endpoint_hosts`` over HTTPS (plain HTTP only to a loopback host that is listed,
for tests and local receivers).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from deltaomega.config import Settings
from deltaomega.errors import DeltaOmegaError
from deltaomega.security.keys import PUSH, KeyFollower
from deltaomega.security.roles import Role
from deltaomega.security.tokens import checked_secret

#: order of the P-256 group: a derived private scalar lies in [1, n - 1]
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_SUBSCRIPTIONS = 10


class PushError(DeltaOmegaError):
    """A subscription this server will not send to; the text is fit to return, ``field``
    the part of the subscription at fault."""

    def __init__(self, message: str, field: str = "endpoint") -> None:
        super().__init__(message)
        self.field = field


def _digest(endpoint: str) -> str:
    """A subscription's id: its endpoint's digest (the endpoint itself is a capability)."""
    return hashlib.sha256(endpoint.encode()).hexdigest()[:32]


def vapid_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    """The server's VAPID signing key (P-256)."""
    if settings.push_vapid_private_key is not None:
        key = serialization.load_pem_private_key(
            settings.push_vapid_private_key.get_secret_value().encode(), password=None
        )
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise PushError("DELTAOMEGA_PUSH_VAPID_PRIVATE_KEY must be a P-256 key (PEM)")
        return key
    material = HKDF(
        algorithm=hashes.SHA256(), length=48, salt=b"deltaomega", info=b"web push VAPID key"
    ).derive(checked_secret(settings).encode())
    scalar = int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def application_server_key(settings: Settings) -> str:
    """The public key browsers subscribe with (base64url of the uncompressed point)."""
    point = (
        vapid_key(settings)
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return bytes_to_base64url(point)


def check_endpoint(settings: Settings, endpoint: str) -> None:
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    allowed = any(
        host == h or host.endswith(f".{h}")
        for h in (x.lower() for x in settings.push_endpoint_hosts)
    )
    if not allowed:
        raise PushError(
            f"{host or endpoint!r} is not a push service this server sends to "
            "(DELTAOMEGA_PUSH_ENDPOINT_HOSTS)"
        )
    if parts.scheme != "https" and not (parts.scheme == "http" and host in _LOOPBACK):
        raise PushError("a push endpoint must be https (plain http only on loopback)")


def _check_keys(keys: dict[str, str]) -> None:
    try:
        point = base64url_to_bytes(keys["p256dh"])
        auth = base64url_to_bytes(keys["auth"])
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (KeyError, ValueError, TypeError) as exc:
        raise PushError(f"the subscription's keys are not usable ({exc})", "keys") from None
    if len(auth) != 16:
        raise PushError("the subscription's auth secret must be 16 bytes", "keys.auth")


class PushSubscriptions:
    """Blocking writes (they wait for the broker): the API calls these off its loop."""

    def __init__(self, settings: Settings, follower: KeyFollower) -> None:
        self.settings = settings
        self.follower = follower

    @staticmethod
    def _name(username: str, endpoint: str) -> str:
        return f"{username}/{_digest(endpoint)}"

    def subscribe(
        self, username: str, endpoint: str, keys: dict[str, str], device: str
    ) -> dict[str, Any]:
        check_endpoint(self.settings, endpoint)
        _check_keys(keys)
        name = self._name(username, endpoint)
        mine = self.of(username)
        if name not in {self._name(username, s["endpoint"]) for s in mine}:
            if len(mine) >= MAX_SUBSCRIPTIONS:
                raise PushError(
                    f"a person has at most {MAX_SUBSCRIPTIONS} devices subscribed", "device"
                )
        record = {
            "username": username,
            "endpoint": endpoint,
            "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]},
            "device": device[:200],
            "created_ms": int(time.time() * 1000),
        }
        self.follower.publish(f"{PUSH}{name}", json.dumps(record).encode())
        return public_subscription(record)

    def unsubscribe(self, username: str, subscription_id: str) -> bool:
        name = f"{username}/{subscription_id}"
        if name not in self.follower.book.push:
            return False
        self.follower.publish(f"{PUSH}{name}", None)
        return True

    def forget(self, record: dict[str, Any]) -> None:
        """A subscription the push service says is gone (404, 410)."""
        self.follower.publish(f"{PUSH}{self._name(record['username'], record['endpoint'])}", None)

    def of(self, username: str) -> list[dict[str, Any]]:
        return [s for s in self.follower.book.push.values() if s["username"] == username]

    def recipients(self, least: Role) -> list[dict[str, Any]]:
        """Subscriptions of active accounts with ``least`` role or above."""
        accounts = self.follower.book.accounts
        out = []
        for sub in list(self.follower.book.push.values()):
            account = accounts.get(sub["username"])
            if account is None or account.get("disabled_ms") is not None:
                continue
            if Role.parse(account["role"]) >= least:
                out.append(sub)
        return out


def public_subscription(record: dict[str, Any]) -> dict[str, Any]:
    """What a person sees of a subscription (no keys)."""
    return {
        "id": _digest(record["endpoint"]),
        **{k: record[k] for k in ("endpoint", "device", "created_ms")},
    }
