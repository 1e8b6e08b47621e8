"""Per-sync signals on the project store: migration, idempotent recording, bounded retention."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from orchestrator.health.signals import SyncSignal
from orchestrator.health.store import load_signals, prune, record_signals
from orchestrator.store import open_store

UTC = timezone.utc
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _sig(i, table="crm/account", rows=100, status="succeeded"):
    s = T0 + timedelta(hours=i)
    return SyncSignal("fivetran:crm", table, f"s{i}", s, s + timedelta(minutes=5), status, rows,
                      warnings=i % 2, rate_limited=1, cursor=s)


def test_signals_round_trip_idempotently_and_retention_is_bounded(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'o.db'}", cached=False)
    with store.engine.connect() as c:
        assert "sync_signals" in sa.inspect(c).get_table_names()
    sigs = [_sig(i) for i in range(48)] + [_sig(i, table="crm/contact") for i in range(48)]
    assert record_signals(store, sigs) == 96
    assert record_signals(store, sigs[:10]) == 0  # seen again: no new rows
    # a sync seen failed first, then reported with rows: updated, not duplicated
    record_signals(store, [_sig(3, rows=7)])
    got = load_signals(store, connector="fivetran:crm", tables=["crm/account"])
    assert len(got) == 48 and got[3].rows == 7 and got[3].duration_s == 300.0
    assert got[0].cursor == T0 and got[1].warnings == 1 and got[1].rate_limited == 1
    # retention: older than 1 day from T0+48h goes; then at most 10 loads a table
    removed = prune(store, T0 + timedelta(hours=48), retention=1.0)
    assert removed == 48
    assert len(load_signals(store)) == 48
    assert prune(store, T0 + timedelta(hours=48), retention=30, max_per_table=10) == 28
    left = load_signals(store, tables=["crm/account"])
    assert len(left) == 10 and left[-1].sync_id == "s47"
    store.dispose()
