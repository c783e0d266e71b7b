"""Where alert notifications go: channels, routes by severity, escalation, quiet hours.

A YAML file named by ``DELTAOMEGA_ALERT_ROUTING_FILE`` (``routing.example.yaml`` in this
package is the demo's) holds them; ``${NAME}`` anywhere in it is the environment variable
NAME, so secrets stay out of the file. Without a file, alerts are grouped, kept and shown
(console only) and sent nowhere. The seed's routing is the default shape: CRITICAL to every
channel at once and escalated while nobody acknowledges it, WARNING to email and Slack,
INFO to the console only.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from deltaomega.errors import ConfigurationError
from deltaomega.yaml_files import load_model

SEVERITY_RANK = {"INFO": 0, "WARNING": 1, "CRITICAL": 2}
Severity = Literal["INFO", "WARNING", "CRITICAL"]
EXAMPLE = Path(__file__).with_name("routing.example.yaml")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ChannelName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Url = Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookChannel(_Strict):
    type: Literal["webhook"]
    url: Url
    secret: SecretStr = Field(description="HMAC-SHA256 key of X-DeltaOmega-Signature.")
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("the signing secret needs 16 characters or more")
        return value


class SlackChannel(_Strict):
    type: Literal["slack"]
    url: Url = Field(description="The incoming webhook's URL.")
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class EmailChannel(_Strict):
    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    #: a CA to trust besides the system's (a private mail relay)
    ca_file: Path | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class PagerDutyChannel(_Strict):
    type: Literal["pagerduty"]
    routing_key: SecretStr = Field(description="The service integration's key.")
    url: Url = PAGERDUTY_EVENTS_URL
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class WebPushChannel(_Strict):
    """The console's notifications: every browser or phone a person subscribed."""

    type: Literal["webpush"]
    min_role: Literal["viewer", "analyst", "operator", "admin"] = Field(
        default="operator", description="People below this role are not sent to."
    )
    ttl_seconds: int = Field(default=3600, ge=0, le=28 * 86400)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


Channel = Annotated[
    WebhookChannel | SlackChannel | EmailChannel | PagerDutyChannel | WebPushChannel,
    Field(discriminator="type"),
]


class EscalationLevel(_Strict):
    after_minutes: float = Field(gt=0, le=10080, description="Since it opened or turned CRITICAL.")
    channels: list[ChannelName] = Field(min_length=1)


class Route(_Strict):
    channels: Literal["all"] | list[ChannelName] = Field(default_factory=list)
    escalation: list[EscalationLevel] = Field(default_factory=list)


class QuietHours(_Strict):
    start: time
    end: time
    timezone: str = "UTC"
    #: severities held until the quiet hours end (CRITICAL always goes)
    hold: tuple[Literal["INFO", "WARNING"], ...] = ("INFO", "WARNING")

    @field_validator("timezone")
    @classmethod
    def _known(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def holds(self, severity: str, now_ms: int) -> bool:
        if severity not in self.hold:
            return False
        local = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(self.timezone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # over midnight


def _default_routes() -> dict[Severity, Route]:
    return {"CRITICAL": Route(channels="all"), "WARNING": Route(), "INFO": Route()}


class Routing(_Strict):
    channels: dict[ChannelName, Channel] = Field(default_factory=dict)
    routes: dict[Severity, Route] = Field(default_factory=_default_routes)
    #: an open, unacknowledged condition is notified again this often
    reminder_minutes: float = Field(default=60.0, gt=0, le=10080)
    #: a condition that has not fired for this many closed windows resolves
    resolve_after_windows: int = Field(default=3, ge=1, le=1000)
    quiet_hours: QuietHours | None = None
    #: links in notifications point here (the console's alert page)
    console_url: Url = "http://127.0.0.1:8000/console"

    def route(self, severity: str) -> Route:
        found = self.routes.get(cast(Severity, severity))
        return found if found is not None else Route()

    def channels_for(self, severity: str) -> list[str]:
        wanted = self.route(severity).channels
        return sorted(self.channels) if wanted == "all" else list(wanted)

    def escalation(self, severity: str) -> list[EscalationLevel]:
        return self.route(severity).escalation

    def held(self, severity: str, now_ms: int) -> bool:
        return self.quiet_hours is not None and self.quiet_hours.holds(severity, now_ms)


def _expand(value: Any, what: str, where: str = "") -> Any:
    if isinstance(value, str):

        def variable(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigurationError(f"{what}: {where}: the environment has no {name}")
            return os.environ[name]

        return _ENV.sub(variable, value)
    if isinstance(value, dict):
        return {k: _expand(v, what, f"{where}.{k}".lstrip(".")) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, what, f"{where}.{i}".lstrip(".")) for i, v in enumerate(value)]
    return value


def load_routing(path: Path | None) -> Routing:
    """The routing in ``path`` (console only without one); ConfigurationError naming the file
    and the field when it cannot be read, is not valid or names a channel it lacks."""
    if path is None:
        return Routing()
    what = f"alert routing file {path}"
    routing = load_model(path, Routing, "alert routing file", lambda raw: _expand(raw, what))
    for severity, route in routing.routes.items():
        named = [] if route.channels == "all" else [(f"routes.{severity}.channels", route.channels)]
        named += [
            (f"routes.{severity}.escalation.{i}.channels", level.channels)
            for i, level in enumerate(route.escalation)
        ]
        for where, names in named:
            for name in names:
                if name not in routing.channels:
                    raise ConfigurationError(f"{what}: {where}: no channel named {name!r}")
    return routing
