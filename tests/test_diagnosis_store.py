"""Project store: Alembic migrations on a fresh SQLite database, append-only audit trail."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchestrator.store import default_store_url, open_store


@pytest.fixture()
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'fresh.db'}", cached=False)
    yield s
    s.dispose()


def test_migrations_create_tables(store):
    insp = sa.inspect(store.engine)
    tables = set(insp.get_table_names())
    assert {"failure_signatures", "failure_occurrences", "resolutions", "audit_events", "alembic_version"} <= tables
    with store.engine.connect() as c:
        # at the newest revision (later revisions add tables; 0001 is the failure memory's)
        from alembic.script import ScriptDirectory

        from orchestrator.store import MIGRATIONS_DIR, _alembic_config

        head = ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()
        assert c.execute(sa.text("select version_num from alembic_version")).scalar() == head
        assert "0001_failure_memory" in {r.revision for r in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()}
    cols = {c["name"] for c in insp.get_columns("failure_signatures")}
    assert {"signature_hash", "signature", "category", "label_weight", "embedding"} <= cols


def test_open_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    a = open_store(url, cached=False)
    a.append_audit("test.first")
    a.dispose()
    b = open_store(url, cached=False)  # upgrade head again: no-op
    assert [e["kind"] for e in b.audit_events()] == ["test.first"]
    b.dispose()


def test_audit_is_append_only(store):
    eid = store.append_audit("proposal.created", actor="planner", subject="asset:orders", payload={"n": 1})
    store.append_audit("proposal.approved", actor="alice", subject="asset:orders")
    events = store.audit_events(subject="asset:orders")
    assert [e["kind"] for e in events] == ["proposal.created", "proposal.approved"]
    assert events[0]["payload"] == {"n": 1}
    assert not hasattr(store, "update_audit") and not hasattr(store, "delete_audit")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with store.engine.begin() as c:
            c.execute(sa.text("update audit_events set actor = 'mallory' where id = :i"), {"i": eid})
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with store.engine.begin() as c:
            c.execute(sa.text("delete from audit_events"))
    assert len(store.audit_events()) == 2


def test_default_url_under_dagster_home(tmp_path, monkeypatch):
    monkeypatch.delenv("ORCHESTRATOR_STORE_URL", raising=False)
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path))
    assert default_store_url() == f"sqlite:///{tmp_path / 'dagster_home' / 'orchestrator.db'}"
    monkeypatch.setenv("ORCHESTRATOR_STORE_URL", "postgresql+psycopg://u@h/db")
    assert default_store_url() == "postgresql+psycopg://u@h/db"


@pytest.mark.skipif(not __import__("os").environ.get("ORCHESTRATOR_TEST_PG_URL"),
                    reason="set ORCHESTRATOR_TEST_PG_URL=postgresql+psycopg://... to run on PostgreSQL")
def test_postgres_migrations_and_append_only():
    import os

    from orchestrator.store import downgrade

    s = open_store(os.environ["ORCHESTRATOR_TEST_PG_URL"], cached=False)
    try:
        assert {"failure_signatures", "audit_events"} <= set(sa.inspect(s.engine).get_table_names())
        s.append_audit("pg.test", payload={"a": [1, 2]})
        for stmt in ("update audit_events set actor = 'x'", "delete from audit_events", "truncate audit_events"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                with s.engine.begin() as c:
                    c.execute(sa.text(stmt))
    finally:
        downgrade(s.engine, "base")
        s.dispose()
