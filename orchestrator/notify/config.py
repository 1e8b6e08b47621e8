"""Where notifications go: Slack channels and Teams webhooks per owner or policy (settings).

    ORCHESTRATOR_SLACK_TOKEN      bot token (xoxb-...) with chat:write; unset: no Slack
    ORCHESTRATOR_SLACK_API_URL    https://slack.com/api (a Slack-compatible server in tests)
    ORCHESTRATOR_SLACK_CHANNELS   "team:growth=#growth-data, finance@example.com=#finance,
                                   policy:exec=#exec-dash #leadership, *=#data-alerts"
    ORCHESTRATOR_TEAMS_WEBHOOKS   "team:growth=https://...webhook.office.com/..., *=https://..."
    ORCHESTRATOR_NOTIFY           on | off (default on: sends when a route is configured)

A key is an owner as the policies write it (``team:<name>`` or an e-mail address),
``policy:<name>`` (every asset that policy governs, directly or by propagation) or ``*`` (the
catch-all: incidents whose owners have no route of their own). Several destinations per key are
separated by spaces. Teams webhook URLs carry their secret in the path: they are registered as
secrets (scrubbed from every log record) and only their key is ever shown.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.scrubbing import scrub_pii

CATCH_ALL = "*"


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    notify: str = "on"
    slack_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api"
    slack_channels: str = ""
    teams_webhooks: str = ""
    # at most one message per destination per this many seconds (Slack: ~1 message/s/channel)
    notify_min_interval: float = Field(1.0, ge=0.0)
    # the longest a tick waits on a 429 Retry-After before leaving the message for the next tick
    notify_max_wait: float = Field(10.0, ge=0.0)
    notify_timeout: float = Field(10.0, gt=0.0)
    # incidents older than this are not announced (turning notifications on does not replay history)
    notify_lookback_hours: float = Field(72.0, gt=0.0)


def parse_routes(text: str) -> dict[str, list[str]]:
    """``key=dest dest2, key2=dest3`` -> {key: [dest, ...]}; a bare destination is the catch-all."""
    routes: dict[str, list[str]] = {}
    for part in (text or "").replace(";", ",").replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "=" in part and not part.lower().startswith(("http://", "https://")):
            key, _, dests = part.partition("=")
        else:
            key, dests = CATCH_ALL, part
        key = key.strip() or CATCH_ALL
        for d in dests.split():
            if d and d not in routes.setdefault(key, []):
                routes[key].append(d)
    return routes


@dataclass(frozen=True)
class Destination:
    provider: str  # slack | teams
    name: str  # Slack channel, or "<route key, scrubbed>#<digest of the URL>" for a webhook
    target: str  # channel, or the webhook URL

    @property
    def recipient(self) -> str:
        """Who an approval link is issued to (recorded as the actor when it is used)."""
        return f"{self.provider}:{self.name}"


@dataclass
class Routing:
    slack: dict[str, list[str]] = field(default_factory=dict)
    teams: dict[str, list[str]] = field(default_factory=dict)
    slack_enabled: bool = False

    @classmethod
    def from_settings(cls, s: NotifySettings) -> Routing:
        teams = parse_routes(s.teams_webhooks)
        from orchestrator.scrubbing import register_secret

        for urls in teams.values():
            for url in urls:
                register_secret(url)
        return cls(slack=parse_routes(s.slack_channels), teams=teams, slack_enabled=s.slack_token is not None)

    @property
    def empty(self) -> bool:
        return not ((self.slack and self.slack_enabled) or self.teams)

    def destinations(self, owners: tuple[str, ...] | list[str], policies: tuple[str, ...] | list[str] = ()
                     ) -> list[Destination]:
        """Every destination of these owners and policies; the catch-all when none has a route."""
        keys = [*owners, *(f"policy:{p}" for p in policies)]
        out: list[Destination] = []

        def pick(routes: dict[str, list[str]], provider: str) -> None:
            hit = [k for k in keys if k in routes] or ([CATCH_ALL] if CATCH_ALL in routes else [])
            for k in hit:
                for d in routes[k]:
                    # a webhook is named by its route (personal data scrubbed) and a digest of its
                    # URL: the URL carries a secret, an owner's address is personal data
                    name = d if provider == "slack" else \
                        f"{scrub_pii(k)}#{hashlib.sha256(d.encode()).hexdigest()[:8]}"
                    dest = Destination(provider, name, d)
                    if all(o.target != dest.target or o.provider != provider for o in out):
                        out.append(dest)

        if self.slack_enabled:
            pick(self.slack, "slack")
        pick(self.teams, "teams")
        return out
