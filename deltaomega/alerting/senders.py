"""One sender per configured channel: a signed webhook, a Slack incoming webhook, email over
SMTP, PagerDuty's Events API v2. Each raises :class:`ChannelError` saying whether trying
again could help; retries and records are the dispatcher's.

HTTP goes through one aiohttp session: a notification is a small POST, and its client's
cost per request is what bounds how many a control plane sends in a window (httpx spent
about three times as much CPU per request here)."""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

import aiohttp

from deltaomega.alerting import signature
from deltaomega.alerting.notifications import Notification
from deltaomega.alerting.routing import (
    Channel,
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
    WebhookChannel,
    WebPushChannel,
)
from deltaomega.config import Settings
from deltaomega.security.push import PushSubscriptions
from deltaomega.threads import in_thread

_PAGERDUTY_SEVERITY = {"CRITICAL": "critical", "WARNING": "warning", "INFO": "info"}
_PAGERDUTY_ACTION = {"acknowledged": "acknowledge", "resolved": "resolve"}


class ChannelError(Exception):
    def __init__(self, message: str, status_code: int | None = None, retry: bool = True) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry = retry


class Sender(Protocol):
    name: str
    type: str

    def wants(self, kind: str) -> bool: ...

    async def send(self, notification: Notification) -> int | None:
        """Delivers or raises ChannelError; returns the receiver's status code."""
        ...


class HttpClient:
    """The HTTP channels' one session, made on first use in the event loop that sends (a
    session belongs to its loop), with connections kept alive per receiver."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=32)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _retryable_http(status: int) -> bool:
    return status >= 500 or status in (408, 425, 429)


class _HttpSender:
    type = "http"

    def __init__(
        self,
        name: str,
        url: str,
        timeout: float,
        console_url: str,
        client: HttpClient,
    ) -> None:
        self.name = name
        self.url = url
        self.timeout = timeout
        self.console_url = console_url
        self.client = client

    def wants(self, kind: str) -> bool:
        return kind != "acknowledged"  # an acknowledgement matters to an incident tool only

    async def _post(self, body: bytes, headers: dict[str, str]) -> int:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self.client.session().post(
                self.url, data=body, headers=headers, timeout=timeout
            ) as response:
                text = await response.text(errors="replace")
        except TimeoutError as exc:
            raise ChannelError(f"no answer within {self.timeout:g} s") from exc
        except aiohttp.ClientError as exc:
            raise ChannelError(f"{type(exc).__name__}: {exc}") from exc
        if response.status >= 300:
            raise ChannelError(
                f"HTTP {response.status}: {text[:200]}",
                response.status,
                _retryable_http(response.status),
            )
        return response.status


class WebhookSender(_HttpSender):
    type = "webhook"

    def __init__(
        self, name: str, channel: WebhookChannel, console_url: str, client: HttpClient
    ) -> None:
        super().__init__(name, channel.url, channel.timeout_seconds, console_url, client)
        self.secret = channel.secret.get_secret_value()

    async def send(self, notification: Notification) -> int | None:
        body = json.dumps(notification.payload(self.console_url), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            signature.HEADER: signature.sign(self.secret, int(time.time()), body),
            "X-DeltaOmega-Event": notification.kind,
            "X-DeltaOmega-Delivery": notification.notification_id,
        }
        return await self._post(body, headers)


class SlackSender(_HttpSender):
    type = "slack"

    def __init__(
        self, name: str, channel: SlackChannel, console_url: str, client: HttpClient
    ) -> None:
        super().__init__(name, channel.url, channel.timeout_seconds, console_url, client)

    async def send(self, notification: Notification) -> int | None:
        body = json.dumps(notification.slack(self.console_url)).encode()
        return await self._post(body, {"Content-Type": "application/json"})


def pagerduty_event(
    notification: Notification, routing_key: str, console_url: str
) -> dict[str, Any]:
    """An Events API v2 event: trigger (with its payload), acknowledge or resolve, deduplicated
    by the condition's id so the three land on one incident."""
    c = notification.condition
    action = _PAGERDUTY_ACTION.get(notification.kind, "trigger")
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": c["condition_id"],
    }
    if action == "trigger":
        event["payload"] = {
            "summary": f"{notification.headline()}: {c['message']}"[:1024],
            "source": "deltaomega",
            "severity": _PAGERDUTY_SEVERITY.get(c["severity"], "error"),
            "timestamp": notification.payload(console_url)["condition"]["last_window"],
            "component": c["subject"],
            "group": c["rule"],
            "class": c["rule"],
            "custom_details": {
                "message": c["message"],
                "recommended_actions": c["recommended_actions"],
                "value": c["value"],
                "threshold": c["threshold"],
                "windows": c["windows"],
                "kind": notification.kind,
            },
        }
        event["client"] = "Meta-ΔDΩΛ"
        event["client_url"] = console_url
        event["links"] = [{"href": notification.link(console_url), "text": "Open in the console"}]
    return event


class PagerDutySender(_HttpSender):
    type = "pagerduty"

    def __init__(
        self, name: str, channel: PagerDutyChannel, console_url: str, client: HttpClient
    ) -> None:
        super().__init__(name, channel.url, channel.timeout_seconds, console_url, client)
        self.routing_key = channel.routing_key.get_secret_value()

    def wants(self, kind: str) -> bool:
        return True

    async def send(self, notification: Notification) -> int | None:
        event = pagerduty_event(notification, self.routing_key, self.console_url)
        return await self._post(json.dumps(event).encode(), {"Content-Type": "application/json"})


class EmailSender:
    type = "email"

    def __init__(self, name: str, channel: EmailChannel, console_url: str) -> None:
        self.name = name
        self.channel = channel
        self.console_url = console_url

    def wants(self, kind: str) -> bool:
        return kind != "acknowledged"

    def message(self, notification: Notification) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = notification.headline()
        message["From"] = self.channel.sender
        message["To"] = ", ".join(self.channel.to)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="deltaomega")
        message["X-DeltaOmega-Condition"] = notification.condition["condition_id"]
        message.set_content(notification.text(self.console_url))
        message.add_alternative(notification.html(self.console_url), subtype="html")
        return message

    def _send(self, message: EmailMessage) -> int:
        c = self.channel
        try:
            with smtplib.SMTP(c.host, c.port, timeout=c.timeout_seconds) as smtp:
                smtp.ehlo()
                if c.starttls:
                    context = ssl.create_default_context(
                        cafile=str(c.ca_file) if c.ca_file else None
                    )
                    context.minimum_version = ssl.TLSVersion.TLSv1_2
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if c.username:
                    password = c.password.get_secret_value() if c.password else ""
                    smtp.login(c.username, password)
                refused = smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            # 4xx: try later; 5xx: the server will not take it
            raise ChannelError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", exc.smtp_code, exc.smtp_code < 500
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise ChannelError(
                f"recipients refused: {sorted(exc.recipients)}", retry=False
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(f"{type(exc).__name__}: {exc}") from exc
        if refused:
            raise ChannelError(f"recipients refused: {sorted(refused)}", retry=False)
        return 250

    async def send(self, notification: Notification) -> int | None:
        return await in_thread(self._send, self.message(notification))


def build_senders(
    channels: dict[str, Channel],
    console_url: str,
    client: HttpClient,
    settings: Settings | None = None,
    subscriptions: PushSubscriptions | None = None,
) -> dict[str, Sender]:
    """A sender per channel; web push needs the settings (its key) and the people's
    subscriptions."""
    out: dict[str, Sender] = {}
    for name, channel in channels.items():
        if isinstance(channel, WebPushChannel):
            if settings is None or subscriptions is None:
                raise ValueError(f"channel {name}: web push needs the subscriptions")
            # here: the web push sender is built on this module's ChannelError
            from deltaomega.alerting.web_push import WebPushSender

            out[name] = WebPushSender(name, channel, console_url, client, settings, subscriptions)
        elif isinstance(channel, WebhookChannel):
            out[name] = WebhookSender(name, channel, console_url, client)
        elif isinstance(channel, SlackChannel):
            out[name] = SlackSender(name, channel, console_url, client)
        elif isinstance(channel, PagerDutyChannel):
            out[name] = PagerDutySender(name, channel, console_url, client)
        else:
            out[name] = EmailSender(name, channel, console_url)
    return out
