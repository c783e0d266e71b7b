"""Real notification receivers on loopback: an HTTP server (webhooks, Slack, PagerDuty) with
paths that answer, fail their first attempts or never answer, and an SMTP server (aiosmtpd)
that takes mail only after STARTTLS."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.certs import self_signed
from tests.conftest import free_port

#: Attempts of each delivery (by X-DeltaOmega-Delivery or body) that /flaky refuses first.
FLAKY_FAILURES = 2


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    #: requests on /silent still unanswered when this one arrived
    silent_waiting: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)
    silent_waiting: int = 0
    #: attempts per (path, delivery)
    tries: dict[tuple[str, bytes], int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def on(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


def http_receiver() -> Iterator[HttpReceiver]:
    state: HttpReceiver

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests.append(
                    Request(
                        self.path,
                        dict(self.headers.items()),
                        body,
                        time.time(),
                        state.silent_waiting,
                    )
                )
                delivery = self.headers.get("X-DeltaOmega-Delivery")
                key = (self.path, body if delivery is None else delivery.encode())
                state.tries[key] = state.tries.get(key, 0) + 1
                tries = state.tries[key]
                if self.path == "/silent":
                    state.silent_waiting += 1
            if self.path == "/silent":
                state.release.wait(120)
                with state.lock:
                    state.silent_waiting -= 1
                return  # no answer at all: the connection just closes
            if self.path == "/flaky" and tries <= FLAKY_FAILURES:
                self._answer(503, b"busy")
            elif self.path.startswith("/push/gone"):
                self._answer(410, b"push subscription has unsubscribed or expired")
            elif self.path.startswith("/push/"):
                self._answer(201, b"")
            elif self.path == "/pagerduty":
                self._answer(202, b'{"status":"success","message":"Event processed"}')
            else:
                self._answer(200, b"ok")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    state = HttpReceiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


@dataclass
class MailReceiver:
    port: int
    cert: Path
    messages: list[EmailMessage] = field(default_factory=list)
    #: whether each message's session had switched to TLS
    tls: list[bool] = field(default_factory=list)


class _Mailbox:
    def __init__(self, receiver: MailReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(  # noqa: N802 - aiosmtpd's name for the hook
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.receiver.messages.append(message)
        self.receiver.tls.append(session.ssl is not None)
        return "250 Message accepted for delivery"


def mail_receiver(directory: Path) -> Iterator[MailReceiver]:
    cert, key = self_signed(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    receiver = MailReceiver(free_port(), cert)
    controller = Controller(
        _Mailbox(receiver),
        hostname="127.0.0.1",
        port=receiver.port,
        tls_context=context,
        require_starttls=True,
    )
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()


def hook_routing(path: Path, url: str, severities: tuple[str, ...], **extra: Any) -> Path:
    """A routing file with one signed webhook to ``url`` for ``severities``."""
    hook = {"type": "webhook", "url": url, "secret": "s" * 16}
    routes = {severity: {"channels": ["hook"]} for severity in severities}
    path.write_text(json.dumps({"channels": {"hook": hook}, "routes": routes, **extra}))
    return path
