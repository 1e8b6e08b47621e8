"""The project store: SQLAlchemy 2 + Alembic, SQLite under DAGSTER_HOME by default, PostgreSQL by URL.

Public API::

    from orchestrator.store import open_store
    store = open_store()                      # ORCHESTRATOR_STORE_URL or sqlite under dagster_home
    with store.session() as s: ...            # SQLAlchemy Session, commits on success
    store.append_audit("diagnosis", actor="failure_sensor", subject="run:123", payload={...})
    with store.session() as s:                # records and their audit events, one transaction
        store.audit(s, "approval", actor="ana", subject="action:a1", payload={...})
    store.verify_audit()                      # the hash chain: {"ok", "checked", "first_broken"}
    store.audit_events(kind="diagnosis", limit=100)

``open_store`` runs ``alembic upgrade head`` on open (idempotent), so a fresh database gets every
table; a database already at the head revision of the migration files is opened without
importing Alembic (``is_current``). Adding tables later: put models in ``orchestrator/store/models.py`` (or a module that
imports ``Base``) and add a revision file ``migrations/versions/NNNN_<slug>.py`` with
``revision = "NNNN_<slug>"`` and ``down_revision`` = the current head
(``0018_sync_signals`` now). Keep revisions linear and portable (SQLite + PostgreSQL); see ``migrations/README.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from datetime import datetime, timezone

from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.store.models import (
    AuditEvent,
    AuditHead,
    Base,
    FailureOccurrence,
    FailureSignature,
    Resolution,
)

__all__ = [
    "AuditEvent",
    "Base",
    "FailureOccurrence",
    "FailureSignature",
    "Resolution",
    "Store",
    "audit_hash",
    "default_store_url",
    "open_store",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
STORE_URL_ENV = "ORCHESTRATOR_STORE_URL"


def default_store_url() -> str:
    """``ORCHESTRATOR_STORE_URL`` if set, else SQLite at ``<dagster_home>/orchestrator.db``."""
    url = os.environ.get(STORE_URL_ENV)
    if url:
        return url
    # Read ORCHESTRATOR_HOME at call time (get_settings() is cached per process).
    home = os.environ.get("ORCHESTRATOR_HOME")
    if home:
        dagster_home = Path(home) / "dagster_home"
    else:
        from orchestrator.settings import get_settings

        dagster_home = get_settings().dagster_home
    return f"sqlite:///{dagster_home / 'orchestrator.db'}"


GENESIS_HASH = "0" * 64


def _canonical_payload(payload: Any) -> Any:
    """The payload as the JSON column gives it back (tuples -> lists, keys -> strings)."""
    return None if payload is None else json.loads(json.dumps(payload, default=str))


def audit_hash(prev_hash: str, ts: datetime, actor: str | None, kind: str, subject: str | None,
               payload: Any) -> str:
    """sha256(prev_hash + canonical JSON of the event). Timestamps compare in UTC (SQLite gives
    them back naive)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    body = json.dumps([ts.astimezone(timezone.utc).isoformat(), actor, kind, subject, payload],
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        db_path = url.split(":///", 1)[-1] if ":///" in url else ""
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        # how long a writer waits for SQLite's lock before a "database is locked" store error
        engine = create_engine(url, connect_args={"timeout": float(os.environ.get("ORCHESTRATOR_SQLITE_TIMEOUT", "30"))})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if db_path and db_path != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


_REV = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+)$", re.M)


def migration_head(directory: Path | None = None) -> str | None:
    """The one head revision of the migration files, read from their ``revision`` /
    ``down_revision`` lines without importing Alembic; None when it cannot be told for sure
    (several heads, an unparsable file): the caller then asks Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(((directory or MIGRATIONS_DIR) / "versions").glob("*.py")):
        if path.name == "__init__.py":
            continue
        found = dict((k, v.strip()) for k, v in _REV.findall(path.read_text(encoding="utf-8")))
        rev = re.fullmatch(r"""["']([^"']+)["']""", found.get("revision", ""))
        if rev is None or "down_revision" not in found:
            return None
        revisions.add(rev.group(1))
        parents.update(re.findall(r"""["']([^"']+)["']""", found["down_revision"]))
    heads = revisions - parents
    return next(iter(heads)) if len(heads) == 1 else None


def is_current(engine: Engine) -> bool:
    """True when the database is already at the migrations' head (``alembic_version`` holds
    exactly it): opening it then needs no Alembic (its import alone is ~0.3 s of CPU)."""
    head = migration_head()
    if head is None:
        return False
    from sqlalchemy import inspect, text

    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return False
            rows = [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
    except Exception:  # noqa: BLE001 - unreadable: let Alembic say what is wrong
        return False
    return rows == [head]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision`` on ``engine``."""
    from alembic import command

    cfg = _alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    cfg = _alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


class Store:
    """Handle on the project store. Cheap to share; sessions are short-lived."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessionmaker = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self._sessionmaker()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    # -- append-only audit trail -------------------------------------------------------------
    @staticmethod
    def lock(s: Session) -> str:
        """Take the audit chain's head (a row lock on PostgreSQL, the write lock on SQLite) for
        the rest of ``s``'s transaction and return its hash. Write transactions that append audit
        events call this first, so they serialise in one order and never deadlock."""
        head = s.info.get("audit_head")
        if head is None:
            res = s.execute(update(AuditHead).where(AuditHead.id == 1).values(appends=AuditHead.appends + 1))
            if res.rowcount != 1:
                raise RuntimeError("audit_head row missing: run the store migrations (0004)")
            head = s.execute(select(AuditHead.last_hash).where(AuditHead.id == 1)).scalar_one()
            s.info["audit_head"] = head
        return head

    def audit(self, s: Session, kind: str, *, actor: str = "system", subject: str | None = None,
              payload: Any | None = None, ts: datetime | None = None) -> AuditEvent:
        """Append one audit event inside ``s`` (commits or rolls back with the caller's records)."""
        prev = self.lock(s)
        ts = ts or datetime.now(timezone.utc)
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        payload = _canonical_payload(payload)
        subject = subject[:255] if subject else subject
        h = audit_hash(prev, ts, actor, kind, subject, payload)
        ev = AuditEvent(ts=ts, kind=kind, actor=actor, subject=subject, payload=payload, prev_hash=prev, hash=h)
        s.add(ev)
        s.flush()
        s.execute(update(AuditHead).where(AuditHead.id == 1).values(last_id=ev.id, last_hash=h))
        s.info["audit_head"] = h
        return ev

    def append_audit(
        self,
        kind: str,
        *,
        actor: str = "system",
        subject: str | None = None,
        payload: Any | None = None,
    ) -> int:
        """Append one audit event and return its id. There is deliberately no update/delete."""
        with self.session() as s:
            return self.audit(s, kind, actor=actor, subject=subject, payload=payload).id

    def verify_audit(self) -> dict[str, Any]:
        """Walk the hash chain in id order. Returns ``{"ok", "checked", "first_broken"}`` where
        ``first_broken`` is ``{"id", "reason"}`` for the first event that does not link."""
        prev = GENESIS_HASH
        checked = 0
        last_id = None
        with self.engine.connect() as conn:
            rows = conn.execute(select(AuditEvent.__table__).order_by(AuditEvent.id)).mappings()
            for r in rows:
                checked += 1
                last_id = r["id"]
                if r["hash"] is None:
                    return {"ok": False, "checked": checked, "first_broken": {
                        "id": r["id"], "reason": "event has no hash (written around the store API)"}}
                if r["prev_hash"] != prev:
                    return {"ok": False, "checked": checked, "first_broken": {
                        "id": r["id"], "reason": "prev_hash does not match the previous event's hash "
                                                 "(an event before it was removed, inserted or altered)"}}
                payload = r["payload"]
                if isinstance(payload, str):
                    payload = json.loads(payload)
                want = audit_hash(prev, r["ts"], r["actor"], r["kind"], r["subject"], payload)
                if want != r["hash"]:
                    return {"ok": False, "checked": checked, "first_broken": {
                        "id": r["id"], "reason": "content does not match its hash (the event was altered)"}}
                prev = r["hash"]
            head = conn.execute(select(AuditHead.last_id, AuditHead.last_hash).where(AuditHead.id == 1)).first()
        if head is not None and (head.last_id != last_id or head.last_hash != prev):
            return {"ok": False, "checked": checked, "first_broken": {
                "id": head.last_id, "reason": f"chain head says event {head.last_id} but the trail ends at "
                                              f"{last_id} (events at the end were removed)"}}
        return {"ok": True, "checked": checked, "first_broken": None}

    def audit_events(
        self, *, kind: str | None = None, subject: str | None = None, limit: int = 1000,
        newest: bool = False,
    ) -> list[dict[str, Any]]:
        """Audit events oldest first: the first ``limit`` of them, or with ``newest`` the last ``limit``
        (a long-lived store keeps growing, and readers that look for recent events must not stop at
        an old window)."""
        with self.session() as s:
            q = select(AuditEvent).order_by(AuditEvent.id.desc() if newest else AuditEvent.id)
            if kind is not None:
                q = q.where(AuditEvent.kind == kind)
            if subject is not None:
                q = q.where(AuditEvent.subject == subject)
            rows = list(s.scalars(q.limit(limit)).all())
            if newest:
                rows.reverse()
            return [
                {
                    "id": r.id,
                    "ts": r.ts,
                    "actor": r.actor,
                    "kind": r.kind,
                    "subject": r.subject,
                    "payload": r.payload,
                }
                for r in rows
            ]

    def dispose(self) -> None:
        self.engine.dispose()


_STORES: dict[str, Store] = {}
_LOCK = threading.Lock()


def open_store(url: str | None = None, *, migrate: bool = True, cached: bool = True) -> Store:
    """Open (and migrate to head) the project store.

    ``url``: SQLAlchemy URL; default :func:`default_store_url`. Stores are cached per URL within a
    process (pass ``cached=False`` for an independent handle, e.g. in tests).
    """
    url = url or default_store_url()
    with _LOCK:
        if cached and url in _STORES:
            return _STORES[url]
        engine = _make_engine(url)
        if migrate and not is_current(engine):
            upgrade(engine)
        store = Store(engine)
        if cached:
            _STORES[url] = store
        return store
