"""The daily digest: per-owner e-mail of yesterday's SLAs, today's outlook, what the agent did by
itself, what it wants approved (one-click signed links), failures, cost and the circuit breaker.

    from orchestrator.digest import run_digest
    run = run_digest(store, snapshot, assessment, resolution, send=True)   # SMTP or outbox
    run.markdown          # the Dagster UI preview
    run.report.paths      # .eml files when no SMTP is configured

Modules: ``content`` (data per owner), ``render`` (Jinja2: HTML, text, Markdown), ``mail``
(recipients, MIME, SMTP/outbox), ``cli`` (``orchestrator digest``). The schedule, the digest asset
and the ``approve_proposals`` job are in ``sensors/digest.py``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from orchestrator.digest.content import Digest, OwnerDigest, build_digest
from orchestrator.digest.mail import (
    DeliveryReport,
    Outgoing,
    Recipients,
    build_message,
    send_smtp,
    smtp_configured,
    write_outbox,
)
from orchestrator.digest.render import render_html, render_markdown, render_text, subject_line

UTC = timezone.utc
__all__ = ["DigestRun", "build_digest", "compose", "deliver", "run_digest"]


@dataclass
class DigestRun:
    digest: Digest
    markdown: str
    outgoing: list[Outgoing]
    report: DeliveryReport
    links: bool  # approval links included (a secret was available)


def _with_links(section: OwnerDigest, to: str, *, secret: bytes | None, settings, now: datetime) -> OwnerDigest:
    if secret is None or not (section.pending or any(a.status == "approved" for a in section.auto_actions)):
        return section
    from orchestrator.approvals.tokens import decision_url, issue, token_ttl

    ttl = token_ttl(settings)
    auto = [dataclasses.replace(a, cancel_url=decision_url(
                settings.approval_base_url, a.action_id, "cancel",
                issue(a.action_id, a.proposal_id, "cancel", to, secret=secret, now=now, ttl=ttl)))
            if a.status == "approved" else a for a in section.auto_actions]  # not started yet: can be withdrawn
    section = dataclasses.replace(section, auto_actions=auto)
    pending = []
    for a in section.pending:
        urls = {d: decision_url(settings.approval_base_url, a.action_id, d,
                                issue(a.action_id, a.proposal_id, d, to, secret=secret, now=now, ttl=ttl,
                                      not_after=a.expires_at))
                for d in ("approve", "reject")}
        pending.append(dataclasses.replace(a, approve_url=urls["approve"], reject_url=urls["reject"]))
    return dataclasses.replace(section, pending=pending)


def compose(digest: Digest, settings, *, secret: bytes | None, now: datetime | None = None,
            note: str | None = None, placeholder: bool = False) -> tuple[list[Outgoing], list[str]]:
    """One message per owner section and recipient (links are signed for that recipient).
    Owners without an address are returned as unaddressed; with ``placeholder`` (outbox only) their
    section is still written, to ``<owner>@unaddressed.invalid``."""
    now = now or digest.generated_at
    recipients = Recipients.parse(settings.digest_recipients)
    out: list[Outgoing] = []
    unaddressed: list[str] = []
    for section in digest.owners:
        addrs = recipients.for_owner(section.owner)
        if not addrs:
            unaddressed.append(section.owner)
            if not placeholder:
                continue
            addrs = [f"{re.sub(r'[^A-Za-z0-9._-]+', '-', section.owner).strip('-') or 'owner'}@unaddressed.invalid"]
        section.recipients = addrs
        for to in addrs:
            personal = _with_links(section, to, secret=secret, settings=settings, now=now)
            msg = build_message(sender=settings.digest_sender, to=to, subject=subject_line(digest, personal),
                                text=render_text(digest, personal, approvals_note=note),
                                html=render_html(digest, personal, approvals_note=note), now=now,
                                owner=section.owner)
            out.append(Outgoing(section.owner, to, msg))
    return out, unaddressed


def deliver(outgoing: list[Outgoing], settings, *, send: bool, now: datetime) -> DeliveryReport:
    """SMTP when ``send`` and SMTP is configured; otherwise .eml files in the outbox."""
    if send and smtp_configured(settings):
        send_smtp(outgoing, settings)
        return DeliveryReport("smtp", sent=list(outgoing))
    outbox = settings.outbox_dir
    return DeliveryReport("outbox", paths=write_outbox(outgoing, outbox, now), outbox=outbox)


def run_digest(store, snapshot, assessment, resolution, *, now: datetime | None = None,
               since: datetime | None = None, send: bool = True, deliver_messages: bool = True,
               settings=None) -> DigestRun:
    """Build, render and deliver the digest. ``deliver_messages=False``: build and render only
    (the Dagster UI preview of a run not meant to send); nothing is written or sent."""
    from orchestrator.approvals.tokens import MissingSecret, approval_secret

    if settings is None:
        from orchestrator.settings import Settings

        settings = Settings()
    now = now or datetime.now(UTC)
    if deliver_messages:  # nothing stale is sent for approval: withdrawn in the store first (audited)
        from orchestrator.proposals import Proposals
        from orchestrator.recovery import withdraw_stale

        withdraw_stale(Proposals(store), snapshot, assessment.failures if assessment is not None else (),
                       now=now, actor="digest")
    digest = build_digest(store, snapshot, assessment, resolution, now=now,
                          since=since or now - timedelta(hours=24), tz=settings.digest_tz)
    note = None
    try:
        secret: bytes | None = approval_secret(settings)
    except MissingSecret as exc:
        secret, note = None, f"Approval links are off: {exc}"
    outgoing, unaddressed = compose(digest, settings, secret=secret, now=now, note=note,
                                    placeholder=not (send and smtp_configured(settings)))
    if not deliver_messages:
        report = DeliveryReport("preview", unaddressed=unaddressed)
        return DigestRun(digest, render_markdown(digest), outgoing, report, secret is not None)
    report = deliver(outgoing, settings, send=send, now=now)
    report.unaddressed = unaddressed
    store.append_audit("digest", actor="digest", subject=f"digest:{now:%Y-%m-%d}", payload={
        "mode": report.mode, "messages": [{"owner": o.owner, "to": o.to} for o in outgoing],
        "paths": [str(p) for p in report.paths], "unaddressed": unaddressed, "totals": digest.totals,
        "links": secret is not None,
    })
    return DigestRun(digest, render_markdown(digest), outgoing, report, secret is not None)
