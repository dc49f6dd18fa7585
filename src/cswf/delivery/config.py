"""Delivery settings: the `delivery:` section of cswf.yaml.

Defaults are safe: dry run on (nothing leaves), STARTTLS verified against the system's CA store,
credentials only ever read from environment variables whose names are configured here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cswf.specs.common import Float, Int, MaybeFloat, MaybeInt

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpConfig(_Strict):
    host: str = "localhost"
    port: Int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls (port 587) or tls (implicit, port 465), both verified; "
        "none is plain text and allowed only for a server on this machine.",
    )
    from_address: str = Field(default="Customer Success <cs@localhost>",
                              description="The From header.")
    envelope_from: str | None = Field(
        default=None, description="Return path for bounces (default: the From address)."
    )
    user_env: str | None = Field(default=None, description="Env variable holding the user.")
    password_env: str | None = Field(default=None,
                                     description="Env variable holding the password.")
    ca_file: Path | None = Field(
        default=None, description="Trust this CA bundle instead of the system's (private CAs)."
    )
    helo_name: str | None = Field(default=None, description="EHLO name (default: this host).")
    timeout_seconds: Float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _plain_only_locally(self) -> SmtpConfig:
        if self.security == "none" and self.host.lower() not in LOOPBACK_HOSTS:
            raise ValueError(
                f"smtp security 'none' sends in plain text: allowed only for a server on this "
                f"machine ({', '.join(sorted(LOOPBACK_HOSTS))}), not '{self.host}'"
            )
        if (self.user_env is None) != (self.password_env is None):
            raise ValueError("smtp: set both user_env and password_env, or neither")
        return self


class WebhookConfig(_Strict):
    url: str | None = Field(default=None, description="Where webhook actions are POSTed.")
    endpoints: dict[str, str] = Field(
        default_factory=dict,
        description="Named URLs; an action's payload may pick one with `endpoint`.",
    )
    headers_env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers whose values are read from these env variables (tokens).",
    )
    timeout_seconds: Float = Field(default=10.0, gt=0)
    max_attempts: Int = Field(default=3, ge=1, le=10,
                              description="HTTP tries within one delivery attempt.")
    backoff_seconds: Float = Field(default=0.5, ge=0,
                                   description="Wait before the 2nd try; doubles after each.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s): {value!r}")
        return value


class QuietHours(_Strict):
    """Local hours in which no email goes out; `start` > `end` spans midnight."""

    start: time = time(20, 0)
    end: time = time(8, 0)

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet_hours start and end must differ (set quiet_hours: null "
                             "to switch them off)")
        return self

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


class Unsubscribe(_Strict):
    """`List-Unsubscribe` targets; `{recipient}` and `{action_id}` are filled in, URL-quoted."""

    mailto: str | None = Field(default=None, examples=["unsubscribe@example.com"])
    url: str | None = Field(
        default=None, examples=["https://example.com/unsubscribe?e={recipient}&a={action_id}"]
    )
    one_click: bool = Field(default=True, description="RFC 8058 List-Unsubscribe-Post (https).")

    @field_validator("url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError(f"unsubscribe url must be https: {value!r}")
        return value

    @field_validator("mailto")
    @classmethod
    def _bare_address(cls, value: str | None) -> str | None:
        return value.removeprefix("mailto:") if value is not None else None

    @field_validator("mailto", "url")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        try:
            if value is not None:
                value.format(recipient="r", action_id="a")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{value!r}: only {{recipient}} and {{action_id}} may be filled in "
                             f"({exc})") from exc
        return value


class RetryPolicy(_Strict):
    max_attempts: Int = Field(default=5, ge=1, description="Delivery attempts per action.")
    backoff_seconds: Float = Field(default=300.0, ge=0, description="Wait before the 2nd.")
    backoff_factor: Float = Field(default=2.0, ge=1.0)

    def delay_seconds(self, attempts: int) -> float:
        """Wait after the `attempts`-th failed attempt."""
        return self.backoff_seconds * self.backoff_factor ** max(attempts - 1, 0)


class RateLimit(_Strict):
    """How fast one channel may send, in delivery's own `now` timeline. A run is one instant:
    it sends at most `per_minute` minus what the channel sent in the minute before `now`, and
    at most `per_run`; the rest waits (`deferred`, `rate limit`) for a later run. null: no limit."""

    per_minute: MaybeInt = Field(default=None, ge=1)
    per_run: MaybeInt = Field(default=None, ge=1)


# What a cautious team starts with, per channel (delivery/channels/): a mail server's and a
# receiver's usual comfort, and CSMs' task queues.
DEFAULT_RATE_LIMITS: dict[str, RateLimit] = {
    "smtp": RateLimit(per_minute=60, per_run=500),
    "webhook": RateLimit(per_minute=120, per_run=1000),
    "table": RateLimit(per_minute=None, per_run=2000),
}


class Breaker(_Strict):
    """Stops a run whose due volume on a channel is far above that channel's trailing norm
    (the median sends per run of its last `history_runs` runs that sent, within
    `history_days`): more than `factor` × the norm and more than `floor`. Nothing is sent
    until someone approves it (`cswf deliver --approve-spike`). No history: a norm of 0."""

    enabled: bool = True
    factor: Float = Field(default=10.0, ge=1.0)
    floor: Int = Field(default=50, ge=0, description="Never trips at or below this many due.")
    history_runs: Int = Field(default=20, ge=1)
    history_days: Int = Field(default=14, ge=1)


class DeliveryConfig(_Strict):
    dry_run: bool = Field(default=True, description="Nothing leaves; would-be messages → files.")
    dry_run_dir: Path = Path("data/outbox_preview")
    export_dir: Path = Path("data/exports")
    cap_per_day: MaybeInt = Field(
        default=3, ge=1, description="Emails per recipient per local day, all workflows."
    )
    quiet_hours: QuietHours | None = Field(default_factory=QuietHours)
    default_time_zone: str = "UTC"
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    unsubscribe: Unsubscribe = Field(default_factory=Unsubscribe)
    max_age_hours: MaybeFloat = Field(
        default=48, gt=0,
        description="A real run does not send an action (pending, or previewed by a dry run) "
        "whose tick is older than this: it is `expired`. null = no limit.",
    )
    message_id_domain: str | None = Field(
        default=None, description="Right side of Message-IDs (default: the From domain)."
    )
    rate_limits: dict[str, RateLimit | None] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS),
        description="Per channel (smtp, webhook, table, ...): per_minute and per_run; a "
                    "channel given here replaces its defaults field by field; null: no limits.",
    )
    breaker: Breaker = Field(default_factory=Breaker)
    brakes_in_dry_run: bool = Field(
        default=False, description="Apply the rate limits and the breaker in dry run too (to "
        "rehearse them); by default a dry run previews the whole volume.")

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _over_the_defaults(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        merged: dict[str, Any] = {name: limit.model_dump()
                                  for name, limit in DEFAULT_RATE_LIMITS.items()}
        for name, given in value.items():
            if given is None or isinstance(given, RateLimit):
                merged[name] = given
            elif isinstance(given, Mapping):
                merged[name] = {**merged.get(name, {}), **given}
            else:
                merged[name] = given  # pydantic says what is wrong
        return merged

    @field_validator("rate_limits")
    @classmethod
    def _known_channels(cls, value: dict[str, RateLimit | None]) -> dict[str, RateLimit | None]:
        from cswf.delivery.channels import channel_for, channel_names

        names = [name for name in channel_names() if name != "dry_run"]  # previews: no limits
        for name in sorted(set(value) - set(names)):
            carrier = channel_for(name)
            hint = (f"action type '{name}' goes by channel '{carrier.name}'" if carrier
                    else f"channels: {', '.join(names)}")
            raise ValueError(f"no channel '{name}' ({hint})")
        return value

    @field_validator("default_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from cswf.delivery.windows import zone_or_none

        if zone_or_none(value) is None:
            close = get_close_matches(value, sorted(available_timezones()), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "use an IANA name such as " \
                "'Europe/Paris'"
            raise ValueError(f"unknown time zone {value!r} ({hint})")
        return value

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None, root: Path | None = None
                     ) -> DeliveryConfig:
        """From the `delivery:` mapping of cswf.yaml; folders resolved against `root`."""
        config = cls.model_validate(dict(mapping or {}))
        return config.resolved(root) if root is not None else config

    def resolved(self, root: Path) -> DeliveryConfig:
        """Relative folders made absolute under the project root."""
        def under(path: Path | None) -> Path | None:
            return path if path is None or path.is_absolute() else root / path

        return self.model_copy(update={
            "dry_run_dir": under(self.dry_run_dir),
            "export_dir": under(self.export_dir),
            "smtp": self.smtp.model_copy(update={"ca_file": under(self.smtp.ca_file)}),
        })
