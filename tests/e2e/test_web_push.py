"""Web push end to end: people subscribe their browsers (one per device) through the API;
a critical alert through the broker reaches the control plane's ``webpush`` channel, which
encrypts it for each operator's subscription (RFC 8291) and signs it with the server's
VAPID key (RFC 8292). The loopback push service here checks the signature and decrypts the
payload with the subscription's own keys, as a browser's push service and the browser
would; a viewer (below the channel's role) gets nothing, and a subscription the push
service calls gone (410) is removed."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import http_ece
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from deltaomega.cli import main
from deltaomega.config import Settings
from deltaomega.security.push import application_server_key
from deltaomega.security.roles import Role
from tests.api_client import auth
from tests.conftest import RunningService, wait_for
from tests.e2e.test_alert_delivery import Publisher, W
from tests.processes import settings_env
from tests.receivers import HttpReceiver, http_receiver

PASSWORD = "correct horse battery staple"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Device:
    """A browser's side of a subscription: its P-256 key pair and auth secret."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def keys(self) -> dict[str, str]:
        point = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(point), "auth": b64url(self.auth)}

    def decrypt(self, body: bytes) -> dict[str, Any]:
        plain = http_ece.decrypt(
            body, private_key=self.private, auth_secret=self.auth, version="aes128gcm"
        )
        return dict(json.loads(plain))


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from http_receiver()


def _person(url: str, username: str, role: str) -> dict[str, str]:
    created = httpx.post(
        f"{url}/api/v1/accounts",
        json={"username": username, "password": PASSWORD, "role": role},
        headers=auth(Role.ADMIN),
    )
    assert created.status_code == 201, created.text
    signed = httpx.post(
        f"{url}/api/v1/auth/sign-in", json={"username": username, "password": PASSWORD}
    )
    assert signed.status_code == 200, signed.text
    return {"Authorization": f"Bearer {signed.json()['access_token']}"}


def _subscribe(
    url: str, who: dict[str, str], endpoint: str, keys: dict[str, str]
) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/push/subscriptions",
        json={"endpoint": endpoint, "keys": keys, "expirationTime": None, "device": "test"},
        headers=who,
    )


def test_a_critical_alert_reaches_operators_devices_encrypted_and_signed(
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
    receiver: HttpReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        json.dumps(
            {
                "channels": {"phones": {"type": "webpush", "min_role": "operator"}},
                "routes": {"CRITICAL": {"channels": ["phones"]}},
                "console_url": "http://console.example/console",
            }
        )
    )
    settings = settings_factory(
        models_enabled=False,
        alert_routing_file=routing,
        push_endpoint_hosts=["127.0.0.1"],
        rate_limits=False,
    )
    url = service_factory(settings, control=True).url
    olga = _person(url, "olga", "operator")
    vera = _person(url, "vera", "viewer")

    key = httpx.get(f"{url}/api/v1/push/key", headers=vera)
    assert key.status_code == 200
    assert key.json() == {"public_key": application_server_key(settings)}
    assert len(unb64url(key.json()["public_key"])) == 65  # an uncompressed P-256 point

    phone, gone, vera_phone = Device(), Device(), Device()
    made = _subscribe(url, olga, f"{receiver.url}/push/olga", phone.keys())
    assert made.status_code == 201, made.text
    assert set(made.json()) == {"id", "endpoint", "device", "created_ms"}
    assert _subscribe(url, olga, f"{receiver.url}/push/gone", gone.keys()).status_code == 201
    assert _subscribe(url, vera, f"{receiver.url}/push/vera", vera_phone.keys()).status_code == 201
    elsewhere = _subscribe(url, olga, "https://push.evil.example/x/1", phone.keys())
    assert elsewhere.status_code == 422
    assert elsewhere.json()["errors"][0]["field"] == "endpoint"
    assert "is not a push service this server sends to" in elsewhere.json()["detail"]
    broken = _subscribe(
        url, olga, f"{receiver.url}/push/olga2", {**phone.keys(), "p256dh": "A" * 87}
    )
    assert broken.status_code == 422 and broken.json()["errors"][0]["field"] == "keys"
    machine = _subscribe(url, auth(Role.OPERATOR), f"{receiver.url}/push/m", phone.keys())
    assert machine.status_code == 409
    mine = httpx.get(f"{url}/api/v1/push/subscriptions", headers=olga).json()
    assert sorted(s["endpoint"].rsplit("/", 1)[1] for s in mine) == ["gone", "olga"]

    # a critical alert through the broker
    w0 = (int(time.time() * 1000) - 120_000) // W * W
    Publisher(settings).alert("conflict", "a->b", w0)
    condition = f"conflict:a->b@{w0}"
    wait_for(lambda: len(receiver.on("/push/olga")) == 1, 30, "the push to olga's phone")
    wait_for(
        lambda: len(httpx.get(f"{url}/api/v1/push/subscriptions", headers=olga).json()) == 1,
        30,
        "the gone subscription removed",
    )
    (push,) = receiver.on("/push/olga")
    headers = {k.lower(): v for k, v in push.headers.items()}
    assert headers["content-encoding"] == "aes128gcm"
    assert (headers["ttl"], headers["urgency"]) == ("3600", "high")

    # the VAPID signature: the server's key, for this push service's origin
    scheme, _, params = headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert fields["k"] == application_server_key(settings)
    signer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
    claims = jwt.decode(fields["t"], signer, algorithms=["ES256"], audience=receiver.url)
    assert claims["sub"] == settings.push_subject
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600

    # the payload, decrypted with the subscription's keys
    assert phone.decrypt(push.body) == {
        "title": "[CRITICAL] conflict on a->b",
        "body": "conflict on a->b",
        "url": f"http://console.example/console/alerts?condition={quote(condition)}",
        "tag": condition,
        "severity": "CRITICAL",
        "kind": "opened",
    }
    with pytest.raises(http_ece.ECEException):
        gone.decrypt(push.body)  # another device's keys open nothing

    # delivered once, recorded; the viewer's phone was not sent to; the gone one was tried once
    def deliveries() -> list[dict[str, Any]]:
        response = httpx.get(
            f"{url}/api/v1/alerts/conditions/{condition}/deliveries", headers=auth(Role.ADMIN)
        )
        if response.status_code == 404:  # the condition has not reached ClickHouse yet
            return []
        assert response.status_code == 200, response.text
        return list(response.json()["deliveries"])

    wait_for(lambda: len(deliveries()) == 1, 30, "the delivery record")
    (delivery,) = deliveries()
    assert (delivery["channel"], delivery["outcome"], delivery["status_code"]) == (
        "phones",
        "DELIVERED",
        201,
    )
    assert len(receiver.on("/push/gone")) == 1
    assert receiver.on("/push/vera") == []

    # `deltaomega alerts test` reaches the same devices
    env = settings_env(settings, push_endpoint_hosts='["127.0.0.1"]')
    for name, value in env.items():
        if name.startswith("DELTAOMEGA_"):
            monkeypatch.setenv(name, value)
    assert main(["alerts", "test", "--file", str(routing), "--channel", "phones"]) == 0
    assert capsys.readouterr().out == "phones: delivered (status 201)\n"
    test_push = receiver.on("/push/olga")[-1]
    assert phone.decrypt(test_push.body)["kind"] == "test"
    assert receiver.on("/push/vera") == []
