"""Approval-link tokens: HMAC-SHA256 signed, expiring, single-use, bound to one action (of one
proposal) and one decision.

    token = issue(action_id, proposal_id, "approve", "ana@example.com", secret=..., now=..., ttl=...)
    claims = verify(token, secret, action_id=..., decision="approve", now=...)   # GET: read-only
    spend(store, claims, actor=..., client_addr=..., user_agent=...)             # POST: exactly once

Format: ``base64url(json claims) "." base64url(hmac_sha256(secret, "apv1." + claims part))``.
Claims: ``a`` action id, ``p`` proposal id, ``d`` decision, ``r`` recipient, ``e`` expiry (unix
seconds), ``n`` random nonce. The signature is checked in constant time before anything in the
claims is trusted. Single use: the nonce is the primary key of ``approval_token_uses``.

The secret: ``ORCHESTRATOR_APPROVAL_SECRET`` (at least 16 characters). Only in the sandbox (both
connector APIs are the loopback emulators) a random secret is generated once per
ORCHESTRATOR_HOME in ``<home>/approval_secret`` (mode 0600); anywhere else a missing secret is
an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, urlsplit

UTC = timezone.utc
DECISIONS = ("approve", "reject", "cancel")  # cancel: withdraw an approved action before it runs
_DOMAIN = b"apv1."
MIN_SECRET_LEN = 16
SECRET_FILE = "approval_secret"


class MissingSecret(RuntimeError):
    pass


class TokenError(Exception):
    """A refused token. ``code``: malformed | forged | expired | mismatch | replayed."""

    TITLES = {
        "malformed": "This approval link is incomplete or damaged",
        "forged": "This approval link is not valid",
        "expired": "This approval link has expired",
        "mismatch": "This approval link belongs to a different proposal",
        "replayed": "This approval link has already been used",
    }

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def title(self) -> str:
        return self.TITLES.get(self.code, "This approval link cannot be used")


@dataclass(frozen=True)
class Claims:
    action_id: str
    proposal_id: str | None
    decision: str
    recipient: str
    expires_at: datetime
    nonce: str

    def as_json(self) -> dict:
        return {"a": self.action_id, "p": self.proposal_id, "d": self.decision, "r": self.recipient,
                "e": int(self.expires_at.timestamp()), "n": self.nonce}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> bytes:
    return hmac.new(secret, _DOMAIN + body.encode("ascii"), hashlib.sha256).digest()


def sign(claims: Claims, secret: bytes) -> str:
    body = _b64(json.dumps(claims.as_json(), separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_b64(_mac(secret, body))}"


def issue(action_id: str, proposal_id: str | None, decision: str, recipient: str, *, secret: bytes,
          now: datetime | None = None, ttl: timedelta = timedelta(hours=12),
          not_after: datetime | None = None) -> str:
    """A fresh token; it expires after ``ttl`` or at ``not_after`` (the action's own expiry),
    whichever comes first."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}")
    now = now or datetime.now(UTC)
    exp = now + ttl
    if not_after is not None:
        not_after = not_after if not_after.tzinfo else not_after.replace(tzinfo=UTC)
        exp = min(exp, not_after)
    return sign(Claims(action_id, proposal_id, decision, recipient, exp, secrets.token_hex(16)), secret)


def verify(token: str, secret: bytes, *, action_id: str, decision: str,
           now: datetime | None = None) -> Claims:
    """Check a token against the link it came with (read-only: GET may call this freely)."""
    now = now or datetime.now(UTC)
    if not token or token.count(".") != 1 or len(token) > 4096:
        raise TokenError("malformed", "the link has no token, or it was cut off (some mail clients wrap long links)")
    body, sig = token.split(".")
    try:
        given = _unb64(sig)
        body.encode("ascii")
    except (ValueError, UnicodeEncodeError):
        raise TokenError("malformed", "the token is not in the expected format") from None
    if not hmac.compare_digest(given, _mac(secret, body)):
        raise TokenError("forged", "the signature does not match; the link was altered or not issued by this service")
    try:
        d = json.loads(_unb64(body))
        claims = Claims(str(d["a"]), d.get("p"), str(d["d"]), str(d.get("r") or "unknown"),
                        datetime.fromtimestamp(int(d["e"]), UTC), str(d["n"]))
    except (ValueError, KeyError, TypeError):
        raise TokenError("malformed", "the token's contents cannot be read") from None
    if claims.action_id != action_id or claims.decision != decision:
        raise TokenError("mismatch", f"the token was issued to {claims.decision} action {claims.action_id}, "
                                     f"not to {decision} action {action_id}")
    if now >= claims.expires_at:
        raise TokenError("expired", f"it expired at {claims.expires_at:%Y-%m-%d %H:%M} UTC")
    return claims


def is_spent(store, nonce: str) -> bool:
    from orchestrator.store.approval_models import ApprovalTokenUse

    with store.session() as s:
        return s.get(ApprovalTokenUse, nonce) is not None


def spend(store, claims: Claims, *, actor: str, client_addr: str | None, user_agent: str | None,
          now: datetime | None = None) -> None:
    """Mark the token used, atomically (primary key on the nonce); a second use raises ``replayed``."""
    from sqlalchemy.exc import IntegrityError

    from orchestrator.store.approval_models import ApprovalTokenUse

    try:
        with store.session() as s:
            s.add(ApprovalTokenUse(nonce=claims.nonce, action_id=claims.action_id, proposal_id=claims.proposal_id,
                                   decision=claims.decision, actor=actor[:255], client_addr=(client_addr or "")[:255],
                                   user_agent=(user_agent or "")[:1000], used_at=now or datetime.now(UTC)))
    except IntegrityError:
        raise TokenError("replayed", "each link works once; this one was already used") from None


def set_outcome(store, nonce: str, outcome: str) -> None:
    from orchestrator.store.approval_models import ApprovalTokenUse

    with store.session() as s:
        row = s.get(ApprovalTokenUse, nonce)
        if row is not None:
            row.outcome = outcome[:255]


# -- the secret and the links ---------------------------------------------------------------------
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def in_sandbox() -> bool:
    """Both connector APIs are the loopback emulators (the embedded default, ``orchestrator dev``
    / ``sandbox``): no real account is reachable from this configuration."""
    ft = os.environ.get("FIVETRAN_API_BASE_URL") or ("" if os.environ.get("FIVETRAN_API_KEY") else "http://127.0.0.1")
    ab = os.environ.get("AIRBYTE_REST_API_BASE_URL") or "http://127.0.0.1"
    return all(urlsplit(u).hostname in LOOPBACK for u in (ft, ab))


def approval_secret(settings=None, *, sandbox: bool | None = None) -> bytes:
    """``ORCHESTRATOR_APPROVAL_SECRET``; in the sandbox only, a generated per-home secret file."""
    if settings is None:
        from orchestrator.settings import Settings

        settings = Settings()
    if settings.approval_secret is not None:
        value = settings.approval_secret.get_secret_value()
        if len(value) < MIN_SECRET_LEN:
            raise MissingSecret(f"ORCHESTRATOR_APPROVAL_SECRET must be at least {MIN_SECRET_LEN} characters")
        return value.encode()
    if not (in_sandbox() if sandbox is None else sandbox):
        raise MissingSecret("ORCHESTRATOR_APPROVAL_SECRET is not set: approval links cannot be signed or "
                            "checked (generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    path = Path(settings.home) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_urlsafe(32).encode())
        finally:
            os.close(fd)
    value = path.read_text().strip()
    from orchestrator.scrubbing import register_secret

    register_secret(value)  # a secret read from a file is redacted like the configured ones
    return value.encode()


def token_ttl(settings) -> timedelta:
    from orchestrator.policies.model import parse_duration

    return parse_duration(settings.approval_token_ttl)


def decision_url(base_url: str, action_id: str, decision: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/decide/{quote(action_id, safe='')}/{decision}?token={token}"
