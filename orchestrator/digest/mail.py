"""Digest e-mails: who gets which section, the MIME message, and delivery.

Recipients (``DIGEST_RECIPIENTS``): comma/semicolon/newline separated entries,
``owner=addr [addr ...]`` maps an owner (typically a team, e.g. ``team:growth``) to addresses; a
bare address (or ``*=addr``) receives the catch-all section (assets without an owner) and the
sections of team owners that have no mapping. Owners that are e-mail addresses get their own
section unless mapped.

Delivery: SMTP when ``SMTP_HOST`` is set (``SMTP_PORT``; ``SMTP_SSL`` for implicit TLS,
``SMTP_STARTTLS`` to upgrade; ``SMTP_USERNAME``/``SMTP_PASSWORD``; ``DIGEST_SENDER``). Without
it every message is written as an ``.eml`` file to ``<ORCHESTRATOR_HOME>/outbox/<date>/``.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, format_datetime, make_msgid
from pathlib import Path

from orchestrator.digest.content import CATCH_ALL

_ADDR = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def is_address(text: str) -> bool:
    return bool(_ADDR.match(text or ""))


@dataclass
class Recipients:
    mapping: dict[str, list[str]] = field(default_factory=dict)
    catch_all: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | None) -> Recipients:
        out = cls()
        for entry in re.split(r"[,;\n]+", text or ""):
            entry = entry.strip()
            if not entry:
                continue
            if "=" in entry:
                owner, _, addrs = entry.partition("=")
                addrs_l = [a for a in addrs.split() if a]
                bad = [a for a in addrs_l if not is_address(a)]
                if bad:
                    raise ValueError(f"DIGEST_RECIPIENTS: not an e-mail address: {', '.join(bad)}")
                if owner.strip() in ("*", CATCH_ALL):
                    out.catch_all += addrs_l
                else:
                    out.mapping.setdefault(owner.strip(), []).extend(addrs_l)
            elif is_address(entry):
                out.catch_all.append(entry)
            else:
                raise ValueError(f"DIGEST_RECIPIENTS: cannot read {entry!r} (use owner=address or an address)")
        return out

    def for_owner(self, owner: str) -> list[str]:
        if owner in self.mapping:
            return list(dict.fromkeys(self.mapping[owner]))
        if owner != CATCH_ALL and is_address(owner):
            return [owner]
        return list(dict.fromkeys(self.catch_all))


@dataclass
class Outgoing:
    owner: str
    to: str
    message: EmailMessage


@dataclass
class DeliveryReport:
    mode: str  # smtp | outbox | preview
    sent: list[Outgoing] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    outbox: Path | None = None
    unaddressed: list[str] = field(default_factory=list)  # owners with no recipient (not sent)


def build_message(*, sender: str, to: str, subject: str, text: str, html: str, now: datetime,
                  owner: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender if "<" in sender else formataddr(("Data orchestrator", sender))
    msg["To"] = to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or "localhost")
    msg["X-Orchestrator-Digest-Owner"] = owner
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    return msg


def smtp_configured(settings) -> bool:
    return bool(settings.smtp_host)


def send_smtp(messages: list[Outgoing], settings, *, timeout: float = 30.0) -> None:
    host = settings.smtp_host
    port = settings.smtp_port or (465 if settings.smtp_ssl else 587 if settings.smtp_starttls else 25)
    context = ssl.create_default_context()
    if settings.smtp_ssl:
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        client.ehlo()
        if settings.smtp_starttls and not settings.smtp_ssl:
            client.starttls(context=context)
            client.ehlo()
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            client.login(settings.smtp_username, password)
        for out in messages:
            client.send_message(out.message)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "digest"


def write_outbox(messages: list[Outgoing], outbox: Path, now: datetime) -> list[Path]:
    folder = outbox / now.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, out in enumerate(messages):
        path = folder / f"{now:%H%M%S}-{i:02d}-{_slug(out.owner)}-{_slug(out.to)}.eml"
        path.write_bytes(bytes(out.message))
        paths.append(path)
    return paths
