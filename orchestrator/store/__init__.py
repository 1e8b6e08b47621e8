"""The project store: SQLAlchemy 2 + Alembic, SQLite under DAGSTER_HOME by default, PostgreSQL by URL.

Public API::

    from orchestrator.store import open_store
    store = open_store()                      # ORCHESTRATOR_STORE_URL or sqlite under dagster_home
    with store.session() as s: ...            # SQLAlchemy Session, commits on success
    store.append_audit("diagnosis", actor="failure_sensor", subject="run:123", payload={...})
    store.audit_events(kind="diagnosis", limit=100)

``open_store`` runs ``alembic upgrade head`` on open (idempotent), so a fresh database gets every
table. Adding tables later: put models in ``orchestrator/store/models.py`` (or a module that
imports ``Base``) and add a revision file ``migrations/versions/NNNN_<slug>.py`` with
``revision = "NNNN_<slug>"`` and ``down_revision`` = the current head (``0001_failure_memory``
now). Keep revisions linear and portable (SQLite + PostgreSQL); see ``migrations/README.md``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.store.models import (
    AuditEvent,
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


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        db_path = url.split(":///", 1)[-1] if ":///" in url else ""
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

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
            ev = AuditEvent(kind=kind, actor=actor, subject=subject, payload=payload)
            s.add(ev)
            s.flush()
            return ev.id

    def audit_events(
        self, *, kind: str | None = None, subject: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        with self.session() as s:
            q = select(AuditEvent).order_by(AuditEvent.id)
            if kind is not None:
                q = q.where(AuditEvent.kind == kind)
            if subject is not None:
                q = q.where(AuditEvent.subject == subject)
            rows = s.scalars(q.limit(limit)).all()
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
        if migrate:
            upgrade(engine)
        store = Store(engine)
        if cached:
            _STORES[url] = store
        return store
