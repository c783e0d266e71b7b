"""JWT bearer tokens: the API's own (HS256) and an identity provider's (RS256/ES256 from a
JWKS URL, served here by a loopback HTTP server), each check refusing with its reason."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from deltaomega.cli import main
from deltaomega.config import DEVELOPMENT_AUTH_SECRET, Settings
from deltaomega.security.roles import Role, Tier
from deltaomega.security.tokens import (
    InsecureSecretError,
    Principal,
    TokenError,
    TokenVerifier,
    issue_token,
)

SECRET = "s" * 40


def settings(**overrides: Any) -> Settings:
    return Settings(**({"auth_secret": SECRET} | overrides))


def signed(
    claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256", **headers: Any
) -> str:
    now = int(time.time())
    base = {"sub": "alice", "role": "analyst", "iss": "deltaomega", "aud": "deltaomega-api"}
    full = base | {"exp": now + 60} | claims
    return jwt.encode(
        {k: v for k, v in full.items() if v is not None}, key, algorithm, headers=headers or None
    )


def test_an_issued_token_verifies_as_its_subject_role_and_tier() -> None:
    token = issue_token(settings(), "alice", Role.OPERATOR, 3600, Tier.PREMIUM)
    assert TokenVerifier(settings()).verify(token) == Principal(
        "alice", Role.OPERATOR, Tier.PREMIUM
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3600
    assert (claims["iss"], claims["aud"], claims["role"]) == (
        "deltaomega",
        "deltaomega-api",
        "operator",
    )


def test_roles_are_ordered() -> None:
    assert Role.VIEWER < Role.ANALYST < Role.OPERATOR < Role.ADMIN
    assert Principal("a", Role.OPERATOR).may(Role.ANALYST)
    assert not Principal("a", Role.ANALYST).may(Role.OPERATOR)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": -120}, "token expired"),
        ({"nbf": 120}, "token not valid yet (nbf)"),
        ({"iss": "someone-else"}, "token from another issuer"),
        ({"aud": "another-api"}, "token for another audience"),
        ({"exp": None}, "token without the exp claim"),
        ({"sub": None}, "token without the sub claim"),
        ({"aud": None}, "token without the aud claim"),
        (
            {"role": None},
            "token claims: role must be one of viewer, analyst, operator, admin; got None",
        ),
        (
            {"role": "root"},
            "token claims: role must be one of viewer, analyst, operator, admin; got 'root'",
        ),
        ({"tier": "gold"}, "token claims: tier must be one of standard, premium; got 'gold'"),
    ],
)
def test_each_check_refuses_with_its_reason(claims: dict[str, Any], reason: str) -> None:
    now = int(time.time())  # exp and nbf given relative to now, at run time
    claims = {k: now + v if k in ("exp", "nbf") and v is not None else v for k, v in claims.items()}
    with pytest.raises(TokenError) as refused:
        TokenVerifier(settings()).verify(signed(claims))
    assert str(refused.value) == reason


def test_within_the_leeway_a_token_still_verifies() -> None:
    token = signed({"exp": int(time.time()) - 10, "nbf": int(time.time()) + 10})
    assert TokenVerifier(settings()).verify(token).subject == "alice"


def test_another_secret_an_unsigned_token_and_garbage_are_refused() -> None:
    verifier = TokenVerifier(settings())
    with pytest.raises(TokenError, match="^token signature does not verify$"):
        verifier.verify(signed({}, key="t" * 40))
    unsigned = jwt.encode({"sub": "a", "role": "admin"}, None, algorithm="none")
    with pytest.raises(TokenError, match=r"^invalid token \(InvalidAlgorithmError\)$"):
        verifier.verify(unsigned)
    with pytest.raises(TokenError, match=r"^invalid token \(DecodeError\)$"):
        verifier.verify("not-a-token")


def test_the_development_secret_is_refused_outside_development() -> None:
    with pytest.raises(InsecureSecretError, match="built-in development secret"):
        TokenVerifier(Settings(auth_secret=DEVELOPMENT_AUTH_SECRET, env="production"))
    with pytest.raises(InsecureSecretError, match="at least 32 characters"):
        TokenVerifier(settings(auth_secret="short", env="development"))
    development = Settings(auth_secret=DEVELOPMENT_AUTH_SECRET, env="development")
    token = issue_token(development, "dev", Role.ADMIN, 60)
    assert TokenVerifier(development).verify(token).role is Role.ADMIN


class Keys:
    """An identity provider's signing keys, published as a JWKS document."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> bytes:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        rsa_jwk |= {"kid": "rsa-1", "use": "sig", "alg": "RS256"}
        ec_jwk |= {"kid": "ec-1", "use": "sig", "alg": "ES256"}
        return json.dumps({"keys": [rsa_jwk, ec_jwk]}).encode()


@pytest.fixture
def provider() -> Iterator[tuple[str, Keys]]:
    keys = Keys()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = keys.jwks()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", keys
    finally:
        server.shutdown()
        server.server_close()


def test_an_identity_providers_rs256_and_es256_tokens_verify_against_its_jwks(
    provider: tuple[str, Keys],
) -> None:
    url, keys = provider
    verifier = TokenVerifier(settings(auth_jwks_url=url))
    by_rsa = signed({"role": "admin"}, keys.rsa, "RS256", kid="rsa-1")
    by_ec = signed({"role": "viewer", "tier": "premium"}, keys.ec, "ES256", kid="ec-1")
    assert verifier.verify(by_rsa) == Principal("alice", Role.ADMIN)
    assert verifier.verify(by_ec) == Principal("alice", Role.VIEWER, Tier.PREMIUM)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(TokenError, match="^token signature does not verify$"):
        verifier.verify(signed({}, other, "RS256", kid="rsa-1"))
    with pytest.raises(TokenError, match="^token key not found at the identity provider"):
        verifier.verify(signed({}, other, "RS256", kid="rsa-2"))
    # With a provider, a token of this API's own kind (HS256) is not accepted.
    with pytest.raises(TokenError, match=r"^invalid token \(InvalidAlgorithmError\)$"):
        verifier.verify(signed({}, "x" * 40, "HS256", kid="rsa-1"))
    with pytest.raises(TokenError, match="issued by the identity provider"):
        issue_token(settings(auth_jwks_url=url), "alice", Role.ADMIN, 60)


def test_the_cli_prints_a_token_the_api_verifies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELTAOMEGA_AUTH_SECRET", SECRET)
    assert main(["auth", "token", "--sub", "bob", "--role", "admin", "--ttl", "15m"]) == 0
    token = capsys.readouterr().out.strip()
    assert TokenVerifier(settings()).verify(token) == Principal("bob", Role.ADMIN)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900

    monkeypatch.delenv("DELTAOMEGA_AUTH_SECRET")
    monkeypatch.setenv("DELTAOMEGA_ENV", "production")
    assert main(["auth", "token", "--sub", "bob", "--role", "admin"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        "deltaomega: error: DELTAOMEGA_AUTH_SECRET is the built-in development secret"
    )
    with pytest.raises(SystemExit) as refused:
        main(["auth", "token", "--sub", "bob", "--role", "admin", "--ttl", "400d"])
    assert refused.value.code == 2
    assert "argument --ttl: must be at most 366d, got 400d" in capsys.readouterr().err
