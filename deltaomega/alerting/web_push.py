"""The ``webpush`` channel: a notification to every browser and phone whose person turned
notifications on in the console (and holds the channel's least role), encrypted for each
subscription (RFC 8291, aes128gcm) and signed with the server's VAPID key (RFC 8292), by
pywebpush over the control plane's HTTP session.

A subscription the push service calls gone (404, 410) is removed. The channel counts as
delivered when one device took it; with nobody subscribed there is nothing to deliver."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush_async

from deltaomega.alerting.notifications import Notification
from deltaomega.alerting.routing import WebPushChannel
from deltaomega.alerting.senders import ChannelError, HttpClient
from deltaomega.config import Settings
from deltaomega.security.keys import KeyFollower
from deltaomega.security.push import PushSubscriptions, vapid_key
from deltaomega.security.roles import Role
from deltaomega.threads import in_thread

log = logging.getLogger(__name__)

_GONE = (404, 410)


class WebPushSender:
    type = "webpush"

    def __init__(
        self,
        name: str,
        channel: WebPushChannel,
        console_url: str,
        client: HttpClient,
        settings: Settings,
        subscriptions: PushSubscriptions,
    ) -> None:
        self.name = name
        self.channel = channel
        self.console_url = console_url
        self.client = client
        self.settings = settings
        self.subscriptions = subscriptions
        self._vapid = Vapid02(private_key=vapid_key(settings))

    def wants(self, kind: str) -> bool:
        return kind != "acknowledged"

    def payload(self, notification: Notification) -> str:
        """What the console's service worker shows (its title, text and link)."""
        c = notification.condition
        return json.dumps(
            {
                "title": notification.headline(),
                "body": c["message"],
                "url": notification.link(self.console_url),
                "tag": c["condition_id"],
                "severity": c["severity"],
                "kind": notification.kind,
            }
        )

    async def send(self, notification: Notification) -> int | None:
        if not self.subscriptions.follower.loaded:
            raise ChannelError("the subscriptions are still loading")
        recipients = self.subscriptions.recipients(Role.parse(self.channel.min_role))
        if not recipients:
            return None
        data = self.payload(notification)
        results = await asyncio.gather(*(self._one(s, data) for s in recipients))
        delivered = [status for status in results if isinstance(status, int)]
        if delivered:
            return max(delivered)
        errors = [r for r in results if isinstance(r, ChannelError)]
        retry = any(e.retry for e in errors)
        raise ChannelError(
            f"no device took it ({len(recipients)} tried): {errors[0]}",
            errors[0].status_code,
            retry,
        )

    async def _one(self, subscription: dict[str, Any], data: str) -> int | ChannelError:
        try:
            response = await webpush_async(
                {"endpoint": subscription["endpoint"], "keys": subscription["keys"]},
                data=data,
                vapid_private_key=self._vapid,
                vapid_claims={"sub": self.settings.push_subject},
                ttl=self.channel.ttl_seconds,
                timeout=aiohttp.ClientTimeout(total=self.channel.timeout_seconds),
                headers={"Urgency": "high"},
                aiohttp_session=self.client.session(),
            )
        except WebPushException as exc:
            status = exc.response.status if exc.response is not None else None
            if status in _GONE:
                log.info("a push subscription of %s is gone; removing it", subscription["username"])
                await in_thread(self.subscriptions.forget, subscription)
                return ChannelError(f"HTTP {status}: subscription gone", status, retry=False)
            retry = status is None or status >= 500 or status == 429
            return ChannelError(str(exc).splitlines()[0], status, retry)
        except TimeoutError:
            return ChannelError(f"no answer within {self.channel.timeout_seconds:g} s")
        except aiohttp.ClientError as exc:
            return ChannelError(f"{type(exc).__name__}: {exc}")
        return int(response.status)


def follow_subscriptions(
    settings: Settings, channels: Mapping[str, object]
) -> PushSubscriptions | None:
    """The people's subscriptions, followed from the keys topic in a thread (stop it with
    ``.follower.stop()``), when a channel is web push; otherwise None."""
    if not any(isinstance(c, WebPushChannel) for c in channels.values()):
        return None
    follower = KeyFollower(settings)
    follower.start()
    return PushSubscriptions(settings, follower)
