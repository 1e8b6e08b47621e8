"""One notification tick: every incident change not yet told to each of its destinations, once.

Deduplication lives in the project store (``notification_messages``, unique ``dedup_key`` per
destination, incident and change): a message is claimed by inserting its row (``sending``, with
a lease) *before* the provider is called, so repeated ticks, concurrent tickers and restarts
never send a change twice. If the process dies between the call and recording it, the row's
lease runs out and the message is sent again (at least once after a crash, never twice
otherwise). Changes of one incident go out in order; a follow-up waits for its thread.

Rate limits: at most one message per destination per ``notify_min_interval`` seconds; a 429
(``Retry-After``) stops every call to that provider until it has passed: the tick waits when that
fits in ``notify_max_wait``, else the message is left for a later tick (``retry``, ``not_before``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from orchestrator.notify.config import Destination, NotifySettings, Routing
from orchestrator.notify.render import slack_message, teams_card
from orchestrator.notify.threads import Change, IncidentThread, OwnersOf, _aware, _no_owners, collect_threads
from orchestrator.notify.transports import RateLimited, Refused, SlackClient, TeamsWebhook, Transient
from orchestrator.scrubbing import scrub_pii

log = logging.getLogger(__name__)
UTC = timezone.utc
LEASE = timedelta(minutes=2)
MAX_BACKOFF_S = 3600.0


@dataclass
class TickReport:
    sent: list[dict] = field(default_factory=list)  # {"destination", "incident", "change"}
    already_sent: int = 0
    deferred: list[dict] = field(default_factory=list)  # {"destination", "incident", "change", "why"}
    failed: list[dict] = field(default_factory=list)
    incidents: int = 0
    skipped: str | None = None  # why nothing was looked at

    def as_dict(self) -> dict:
        return {"incidents": self.incidents, "sent": self.sent, "already_sent": self.already_sent,
                "deferred": self.deferred, "failed": self.failed, "skipped": self.skipped}


def dedup_key(dest: Destination, incident_id: str, change: str) -> str:
    return f"{dest.provider}:{dest.name}|{incident_id}|{change}"[:512]


class Notifier:
    def __init__(self, store, settings: NotifySettings | None = None, *, routing: Routing | None = None,
                 owners_of: OwnersOf = _no_owners, slack: SlackClient | None = None,
                 teams: TeamsWebhook | None = None, approval_settings=None,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
                 budget_s: float = 40.0):
        self.store = store
        self.settings = settings or NotifySettings()
        self.routing = routing or Routing.from_settings(self.settings)
        self.owners_of = owners_of
        token = self.settings.slack_token.get_secret_value() if self.settings.slack_token else None
        self.slack = slack or (SlackClient(token, self.settings.slack_api_url, timeout=self.settings.notify_timeout)
                               if token else None)
        self.teams = teams or TeamsWebhook(timeout=self.settings.notify_timeout)
        self._approval_settings = approval_settings
        self._sleep, self._mono = sleep, monotonic
        self.budget_s = budget_s
        self._last_sent: dict[str, float] = {}
        self._blocked_until: dict[str, float] = {}
        self._secret: bytes | None | bool = False  # False: not read yet

    # -- approval links ---------------------------------------------------------------------------
    def _links(self, change: Change, dest: Destination, now: datetime) -> dict[str, str] | None:
        if change.pending is None:
            return None
        from orchestrator.approvals.tokens import MissingSecret, approval_secret, decision_url, issue, token_ttl

        if self._approval_settings is None:
            from orchestrator.settings import Settings

            self._approval_settings = Settings()
        if self._secret is False:
            try:
                self._secret = approval_secret(self._approval_settings)
            except MissingSecret as exc:
                log.warning("notifications carry no approval links: %s", exc)
                self._secret = None
        if not self._secret:
            return None
        p, st = change.pending, self._approval_settings
        return {d: decision_url(st.approval_base_url, p.action_id, d,
                                issue(p.action_id, p.proposal_id, d, dest.recipient, secret=self._secret, now=now,
                                      ttl=token_ttl(st), not_after=p.expires_at))
                for d in ("approve", "reject")}

    # -- the store --------------------------------------------------------------------------------
    def _claim(self, key: str, dest: Destination, incident_id: str, change: str, now: datetime) -> str:
        """'claimed', or the row's state: 'sent' | 'failed' | 'busy' (another ticker, or not yet due)."""
        from orchestrator.store.notify_models import NotificationMessageRow as Row

        try:
            with self.store.session() as s:
                s.add(Row(dedup_key=key, provider=dest.provider, destination=dest.name[:255],
                          incident_id=incident_id[:255], change=change[:255], status="sending", attempts=1,
                          lease_until=now + LEASE, created_at=now))
            return "claimed"
        except IntegrityError:
            pass
        with self.store.session() as s:
            row = s.scalars(select(Row).where(Row.dedup_key == key)).one()
            if row.status in ("sent", "failed"):
                return row.status
            due = (row.status == "retry" and (row.not_before is None or _aware(row.not_before) <= now)) or (
                row.status == "sending" and row.lease_until is not None and _aware(row.lease_until) <= now)
            if not due:
                return "busy"
            res = s.execute(update(Row).where(Row.id == row.id, Row.status == row.status,
                                              Row.attempts == row.attempts)
                            .values(status="sending", attempts=row.attempts + 1, lease_until=now + LEASE))
            return "claimed" if res.rowcount == 1 else "busy"

    def _settle(self, key: str, status: str, *, now: datetime, message_id: str | None = None,
                error: str | None = None, not_before: datetime | None = None) -> None:
        from orchestrator.store.notify_models import NotificationMessageRow as Row

        with self.store.session() as s:
            s.execute(update(Row).where(Row.dedup_key == key).values(
                status=status, message_id=message_id, error=scrub_pii(error)[:2000] if error else None,
                not_before=not_before, lease_until=None, sent_at=now if status == "sent" else None))

    def _thread(self, dest: Destination, incident_id: str) -> tuple[str, str | None] | None:
        from orchestrator.store.notify_models import NotificationThreadRow as T

        with self.store.session() as s:
            row = s.scalars(select(T).where(T.provider == dest.provider, T.destination == dest.name[:255],
                                            T.incident_id == incident_id[:255])).first()
            return (row.thread_id, row.channel_id) if row else None

    def _save_thread(self, dest: Destination, incident_id: str, ts: str, channel_id: str | None,
                     now: datetime) -> None:
        from orchestrator.store.notify_models import NotificationThreadRow as T

        try:
            with self.store.session() as s:
                s.add(T(provider=dest.provider, destination=dest.name[:255], incident_id=incident_id[:255],
                        thread_id=ts, channel_id=channel_id, created_at=now))
        except IntegrityError:
            pass

    def _attempts(self, key: str) -> int:
        from orchestrator.store.notify_models import NotificationMessageRow as Row

        with self.store.session() as s:
            return s.scalars(select(Row.attempts).where(Row.dedup_key == key)).first() or 1

    # -- sending ----------------------------------------------------------------------------------
    def _wait_turn(self, dest: Destination, deadline: float) -> bool:
        """Sleep until this destination may be called (rate limit, Retry-After); False when that
        would pass the tick's waiting allowance."""
        now = self._mono()
        ready = max(self._blocked_until.get(dest.provider, 0.0),
                    self._last_sent.get(dest.target, -1e18) + self.settings.notify_min_interval)
        wait = ready - now
        if wait <= 0:
            return True
        if wait > self.settings.notify_max_wait or now + wait > deadline:
            return False
        self._sleep(wait)
        return True

    def _send(self, dest: Destination, thread: IncidentThread, change: Change, now: datetime,
              parent: tuple[str, str | None] | None):
        links = self._links(change, dest, now)
        self._last_sent[dest.target] = self._mono()
        if dest.provider == "slack":
            if self.slack is None:
                raise Refused("Slack is not configured (ORCHESTRATOR_SLACK_TOKEN)")
            text, blocks = slack_message(thread, change, links, threaded=parent is not None)
            channel = (parent[1] or dest.target) if parent else dest.target
            return self.slack.post_message(channel, text, blocks=blocks, thread_ts=parent[0] if parent else None,
                                           reply_broadcast=change.final)
        return self.teams.post(dest.target, dest.name, teams_card(thread, change, links))

    def tick(self, now: datetime | None = None) -> TickReport:
        now = _aware(now) or datetime.now(UTC)
        report = TickReport()
        if self.settings.notify.strip().lower() in ("off", "false", "0", "no"):
            report.skipped = "ORCHESTRATOR_NOTIFY=off"
            return report
        if self.routing.empty:
            report.skipped = self.no_route
            return report
        deadline = self._mono() + self.budget_s
        threads = self._threads(now, timedelta(hours=self.settings.notify_lookback_hours))
        report.incidents = len(threads)
        for thread in threads:
            for dest in self.routing.destinations(thread.owners, thread.policies):
                self._thread_to(dest, thread, now, deadline, report)
        if report.sent or report.failed:
            self.store.append_audit("notification", actor=self.audit_actor,
                                    subject=f"{self.audit_prefix}:{now:%Y-%m-%dT%H:%M:%S}",
                                    payload={"sent": report.sent, "failed": report.failed,
                                             "deferred": len(report.deferred)})
        return report

    # what a subclass notifies about: its threads, and how its ticks are named
    no_route = ("no route: set ORCHESTRATOR_SLACK_TOKEN and ORCHESTRATOR_SLACK_CHANNELS, "
                "or ORCHESTRATOR_TEAMS_WEBHOOKS")
    audit_actor = "notifier"
    audit_prefix = "notify"

    def _threads(self, now: datetime, lookback: timedelta) -> list[IncidentThread]:
        return collect_threads(self.store, now=now, owners_of=self.owners_of, lookback=lookback)

    def _thread_to(self, dest: Destination, thread: IncidentThread, now: datetime, deadline: float,
                   report: TickReport) -> None:
        parent = self._thread(dest, thread.incident_id) if dest.provider == "slack" else None
        for change in thread.changes:
            key = dedup_key(dest, thread.incident_id, change.key)
            where = {"destination": dest.recipient, "incident": thread.incident_id, "change": change.key}
            if self._mono() > deadline:
                report.deferred.append({**where, "why": "tick budget spent"})
                return
            state = self._claim(key, dest, thread.incident_id, change.key, now)
            if state == "sent":
                report.already_sent += 1
                continue
            if state == "failed":
                if change.key == "opened" and dest.provider == "slack":
                    return  # no thread to follow up in
                continue
            if state == "busy":
                report.deferred.append({**where, "why": "claimed by another tick or not due yet"})
                return
            if dest.provider == "slack" and change.key != "opened" and parent is None:
                self._settle(key, "retry", now=now, error="the incident's thread is not open yet")
                report.deferred.append({**where, "why": "thread not open yet"})
                return
            outcome = self._deliver(key, dest, thread, change, now, deadline, parent, report, where)
            if outcome is None:
                return  # deferred: keep the thread's order
            if change.key == "opened" and dest.provider == "slack":
                if not outcome.message_id:
                    return  # refused: no thread to follow up in
                self._save_thread(dest, thread.incident_id, outcome.message_id, outcome.channel_id, now)
                parent = (outcome.message_id, outcome.channel_id)

    def _deliver(self, key, dest, thread, change, now, deadline, parent, report, where):
        from orchestrator.notify.transports import Sent

        for _ in range(4):
            if not self._wait_turn(dest, deadline):
                self._settle(key, "retry", now=now, error="rate limited", not_before=now + timedelta(
                    seconds=max(0.0, self._blocked_until.get(dest.provider, 0.0) - self._mono())))
                report.deferred.append({**where, "why": "rate limited"})
                return None
            try:
                sent: Sent = self._send(dest, thread, change, now, parent)
            except RateLimited as exc:
                self._blocked_until[dest.provider] = self._mono() + exc.retry_after
                log.warning("notification to %s: %s", dest.recipient, exc)
                continue
            except Transient as exc:
                backoff = min(MAX_BACKOFF_S, 30.0 * 2 ** (self._attempts(key) - 1))
                self._settle(key, "retry", now=now, error=str(exc), not_before=now + timedelta(seconds=backoff))
                log.warning("notification to %s deferred %.0f s: %s", dest.recipient, backoff, exc)
                report.deferred.append({**where, "why": str(exc)})
                return None
            except Refused as exc:
                self._settle(key, "failed", now=now, error=str(exc))
                log.error("notification to %s refused: %s", dest.recipient, exc)
                report.failed.append({**where, "why": str(exc)})
                return Sent(None)
            self._settle(key, "sent", now=now, message_id=sent.message_id)
            report.sent.append(where)
            return sent
        self._settle(key, "retry", now=now, error="rate limited", not_before=now + timedelta(
            seconds=max(1.0, self._blocked_until.get(dest.provider, 0.0) - self._mono())))
        report.deferred.append({**where, "why": "rate limited"})
        return None
