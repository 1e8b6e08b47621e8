"""Opening the project store at its head revision imports no Alembic; anything else migrates.

``open_store`` reads the head from the migration files (``migration_head``) and the database's
``alembic_version``; only a database not exactly at that head goes through ``alembic upgrade``.
"""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import inspect, text

from orchestrator.store import MIGRATIONS_DIR, downgrade, is_current, migration_head, open_store


def _version(store) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]


def test_the_head_read_from_the_files_is_alembics_head():
    from alembic.script import ScriptDirectory

    from orchestrator.store import _alembic_config

    script = ScriptDirectory.from_config(_alembic_config("sqlite://"))
    assert migration_head() == script.get_current_head()


def test_an_ambiguous_or_unreadable_history_defers_to_alembic(tmp_path):
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "0001_a.py").write_text('revision = "0001_a"\ndown_revision = None\n')
    (versions / "0002_b.py").write_text('revision = "0002_b"\ndown_revision = "0001_a"\n')
    assert migration_head(tmp_path) == "0002_b"
    (versions / "0003_c.py").write_text('revision = "0003_c"\ndown_revision = "0001_a"\n')  # two heads
    assert migration_head(tmp_path) is None
    (versions / "0003_c.py").write_text("revision = make_revision()\n")  # not a literal
    assert migration_head(tmp_path) is None


def test_a_store_behind_the_head_is_still_migrated(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    store = open_store(url, cached=False)
    assert is_current(store.engine) and _version(store) == [migration_head()]
    downgrade(store.engine, "0011_notifications")  # an older deployment's database
    assert not is_current(store.engine)
    assert "sync_signals" not in set(inspect(store.engine).get_table_names())
    store.dispose()
    again = open_store(url, cached=False)
    assert _version(again) == [migration_head()] and is_current(again.engine)
    assert "sync_signals" in set(inspect(again.engine).get_table_names())


def test_a_current_store_opens_without_importing_alembic(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    open_store(url, cached=False).dispose()  # a fresh database: migrated by Alembic
    code = ("import sys; from orchestrator.store import open_store; "
            f"s = open_store({url!r}); s.audit_events(limit=1); print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
    assert MIGRATIONS_DIR.is_dir()
