"""The API over HTTPS: a self-signed certificate made here, TLS 1.3 negotiated, TLS 1.1
refused, plain HTTP not served, and the API behind it as over HTTP."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from deltaomega.config import Settings
from tests import api_client
from tests.certs import self_signed
from tests.conftest import RunningService


def _handshake(port: int, cert: Path, maximum: ssl.TLSVersion | None = None) -> str | None:
    context = ssl.create_default_context(cafile=str(cert))
    if maximum is not None:
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_the_api_serves_https_with_tls_1_2_or_later(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    service_factory: Callable[..., RunningService],
) -> None:
    cert, key = self_signed(tmp_path)
    settings = settings_factory(api_tls_cert=cert, api_tls_key=key, models_enabled=False)
    service = service_factory(settings, worker=False)
    assert service.url.startswith("https://127.0.0.1:")
    port = int(service.url.rsplit(":", 1)[1])

    assert _handshake(port, cert) == "TLSv1.3"
    assert _handshake(port, cert, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        _handshake(port, cert, ssl.TLSVersion.TLSv1_1)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)

    trusted = ssl.create_default_context(cafile=str(cert))
    voices = httpx.get(
        f"{service.url}/api/v1/voices", headers=api_client.auth(), verify=trusted, timeout=10
    )
    assert voices.status_code == 200 and voices.json() == {"voices": []}
    refused = httpx.get(f"{service.url}/api/v1/voices", verify=trusted, timeout=10)
    assert refused.status_code == 401


def test_a_certificate_needs_its_key() -> None:
    with pytest.raises(ValidationError, match="api_tls_cert and api_tls_key go together"):
        Settings(api_tls_cert=Path("api.crt"))
