"""Per-sync API traffic from the live connector APIs into the signal time series: the project's
Fivetran/Airbyte clients count the HTTP 429s and retries they meet while starting and polling a
sync, the counts are kept for that sync (or, when the poll ends without one, for the connector's
next completed sync), the health sensor folds them into the sync's table signals, and the
rising-429 detector and the health score's warnings component read them. Fivetran's attempts
come from failed_at/succeeded_at; Airbyte's from the job's attempts (an emulated transient failure
the platform's retry absorbs)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from orchestrator.health.signals import SyncSignal
from orchestrator.health.store import load_signals, record_signals
from orchestrator.health.traffic import TRAFFIC_KEY, fivetran_attempts, merge_traffic, record_traffic
from orchestrator.resources.errors import ConnectorAPIError, count_traffic, send
from orchestrator.store import open_store

UTC = timezone.utc


class _Resp:
    def __init__(self, code, retry_after=None):
        self.status_code = code
        self.headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.text = '{"code":"TooManyRequests","message":"Request rate limit exceeded"}' if code == 429 else "{}"
        self.reason = "Too Many Requests" if code == 429 else "OK"


def _send(answers, **kw):
    it = iter(answers)
    return send("fivetran", "GET", "connectors/x", lambda t: next(it), timeout=1.0, retry_delay=0.0,
                max_retries=kw.pop("max_retries", 5), **kw)


def test_send_counts_the_429s_and_the_retries_of_the_block():
    with count_traffic() as t:
        assert _send([_Resp(429, "0"), _Resp(503), _Resp(429, "0"), _Resp(200)]).status_code == 200
        assert (t.requests, t.rate_limited, t.retries) == (4, 2, 3)
        with pytest.raises(ConnectorAPIError, match="HTTP 429"):  # retries spent: still counted
            _send([_Resp(429, "0")] * 3, max_retries=2)
        assert (t.requests, t.rate_limited, t.retries) == (7, 5, 5)
    _send([_Resp(429, "0"), _Resp(200)])  # outside a block nothing is counted (and nothing breaks)
    assert t.requests == 7


def _sig(conn, table, sid, at, status="succeeded", **kw):
    return SyncSignal(conn, table, sid, at, at + timedelta(minutes=5), status=status, rows=100, **kw)


def test_traffic_of_a_known_sync_and_pending_traffic_fold_into_its_signals(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'o.db'}", cached=False)
    t0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
    # the poll gave up on the API (no sync id): pending for the connector's next completed sync
    assert record_traffic(store, "fivetran:crm", sync_id=None, started_at=t0, ended_at=t0 + timedelta(minutes=1),
                          rate_limited=4, retries=4).startswith("pending@")
    record_traffic(store, "fivetran:crm", sync_id="crm@s2", started_at=t0 + timedelta(hours=1),
                   ended_at=t0 + timedelta(hours=1, minutes=6), rate_limited=2, retries=3)
    # nothing to tell about a clean sync: no row
    record_traffic(store, "fivetran:crm", sync_id="crm@s3", started_at=t0, ended_at=t0)
    assert load_signals(store) == []  # traffic rows are not loads of a table
    old = _sig("fivetran:crm", "crm/a", "crm@s0", t0 - timedelta(hours=2))
    s2 = [_sig("fivetran:crm", tb, "crm@s2", t0 + timedelta(hours=1)) for tb in ("crm/a", "crm/b")]
    got = merge_traffic(store, [old] + s2)
    assert (got[0].rate_limited, got[0].retries) == (0, 0)  # ended before the pending traffic
    # its own (2, 3) plus the pending (4, 4) that came before it
    assert [(s.rate_limited, s.retries) for s in got[1:]] == [(6, 7), (6, 7)]
    record_signals(store, got)
    assert merge_traffic(store, s2)[0].rate_limited == 6  # folded once, kept on the sync
    # a client that records after the sensor did bumps the table signals at once (never lowers)
    record_traffic(store, "fivetran:crm", sync_id="crm@s2", started_at=t0, ended_at=t0, rate_limited=9, retries=1)
    assert {(s.table, s.rate_limited, s.retries) for s in load_signals(store) if s.sync_id == "crm@s2"} == {
        ("crm/a", 9, 7), ("crm/b", 9, 7)}
    store.dispose()


def test_fivetran_attempts_are_the_failures_since_the_previous_success():
    t0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
    c = "fivetran:crm"
    hist = [_sig(c, "crm/a", "crm@ok0", t0), _sig(c, "crm/a", "crm@f0", t0 - timedelta(hours=1), status="failed")]
    new = [_sig(c, "crm/a", "crm@f1", t0 + timedelta(hours=1), status="failed"),
           _sig(c, "crm/a", "crm@f2", t0 + timedelta(hours=2), status="failed"),
           _sig(c, "crm/a", "crm@ok1", t0 + timedelta(hours=3)),
           _sig("airbyte:x", "x/a", "7", t0 + timedelta(hours=3))]
    got = {s.sync_id: s.attempts for s in fivetran_attempts(new, hist)}
    assert got == {"crm@f1": 1, "crm@f2": 1, "crm@ok1": 3, "7": 1}  # the failure before ok0 is not ok1's


# -- end to end: emulator with scripted 429s -> client poll -> sensor tick -> stored signals -------

FT, STRIPE, AB = "sf_conn", "stripe_conn", "0a1b2c3d-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import yaml

    from orchestrator.emulators.server import start_emulators

    from emulator_fixtures import SMALL_SCENARIO

    d = tmp_path_factory.mktemp("traffic")
    sc = dict(SMALL_SCENARIO)
    sc["faults"] = [
        {"kind": "rate_limit", "target": FT, "requests": 3, "retry_after_s": 0},
        {"kind": "sync_failure", "target": AB, "on_sync": 1, "attempts": 1, "recovers": True,
         "code": "transient_error", "message": "HubSpot returned 502"},
    ]
    path = d / "scenario.yaml"
    path.write_text(yaml.safe_dump(sc, sort_keys=False))
    handle = start_emulators(path, d / "state", d / "landing", time_scale=0.05, auto_sync=False)
    store_url = f"sqlite:///{d / 'o.db'}"
    open_store(store_url, cached=False).dispose()  # the project store exists (migrated)
    yield handle, store_url
    handle.stop()


def _resources(handle):
    from orchestrator.resources.airbyte import AirbyteWorkspaceResource
    from orchestrator.resources.fivetran import FivetranWorkspaceResource

    ft = FivetranWorkspaceResource(account_id="sandbox", api_key=handle.fivetran_api_key,
                                   api_secret=handle.fivetran_api_secret, api_base_url=handle.fivetran_url,
                                   request_retry_delay=0.02, poll_interval=0.1, poll_timeout=30)
    ab = AirbyteWorkspaceResource(rest_api_base_url=handle.airbyte_rest_url,
                                  configuration_api_base_url=handle.airbyte_config_url,
                                  workspace_id=handle.airbyte_workspace_id, client_id=handle.airbyte_client_id,
                                  client_secret=handle.airbyte_client_secret, request_retry_delay=0.02,
                                  poll_interval=0.1, poll_timeout=30)
    return ft, ab


def test_scripted_429s_reach_the_stored_signals_the_rate_detector_and_the_health_score(world, monkeypatch):
    from orchestrator.snapshot import ConnectorReader
    from sensors.health import health_tick

    handle, url = world
    monkeypatch.setenv("ORCHESTRATOR_STORE_URL", url)
    store = open_store(url, cached=False)
    ft, ab = _resources(handle)
    table, conn = "salesforce/account", f"fivetran:{FT}"
    now = datetime.now(UTC)
    # three weeks of clean syncs recorded by earlier ticks: no 429s
    record_signals(store, [SyncSignal(conn, table, f"{FT}@old{i}", now - timedelta(hours=6 * i + 30),
                                      now - timedelta(hours=6 * i + 30) + timedelta(minutes=4), rows=5)
                           for i in range(80)])
    out = ft.get_client().sync_and_poll(FT)  # the run's sync: 3 HTTP 429s (Retry-After: 0) absorbed
    assert out is not None
    (row,) = [r for r in _traffic_rows(store) if r.connector == conn]
    sid = f"{FT}@{datetime.fromisoformat(out.connector_details['succeeded_at'].replace('Z', '+00:00')).isoformat()}"
    assert (row.sync_id, row.rate_limited, row.retries) == (sid, 3, 3)

    reader = ConnectorReader(fivetran=ft, airbyte=None)
    syncs = [s for s in reader.fivetran_syncs({conn: [table]}) if s.connector == conn]
    events, _ = health_tick(store, syncs, {}, now=datetime.now(UTC))
    (sig,) = [s for s in load_signals(store, tables=[table]) if s.sync_id == sid]
    assert (sig.rate_limited, sig.retries) == (3, 3)
    (ev,) = [e for e in events if e.asset_key == dg.AssetKey(["salesforce", "account"])]
    md = {k: v.value if hasattr(v, "value") else v for k, v in ev.metadata.items()}
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.WARN
    assert "rate_limit_rate" in md["kinds"].split(",") and "HTTP 429s/retries" in ev.description
    assert "HTTP 429s/retries rising: 6 where" in ev.description  # 3 429s + 3 retries, none before
    # the health score's warnings component reads the same counts
    from orchestrator.health.score import connector_health

    h = connector_health(load_signals(store, connector=conn), datetime.now(UTC))
    (w,) = [c for c in h.components if c.name == "warnings"]
    assert w.points < w.max_points and "429s/retries per sync" in w.detail
    assert md["health_score"] == h.score
    store.dispose()


def test_a_poll_that_gives_up_on_429s_leaves_them_for_the_next_completed_sync(world, monkeypatch):
    """More 429s than the client retries: the run fails with the typed rate-limit error and no
    sync id; the counts wait (pending) and the sensor gives them to the connector's next sync."""
    from orchestrator.snapshot import ConnectorReader
    from sensors.health import health_tick

    handle, url = world
    monkeypatch.setenv("ORCHESTRATOR_STORE_URL", url)
    store = open_store(url, cached=False)
    ft, _ = _resources(handle)
    conn, table = f"fivetran:{STRIPE}", "stripe/customer"
    handle.inject_fault({"kind": "rate_limit", "target": STRIPE, "requests": 4, "retry_after_s": 0})
    with pytest.raises(ConnectorAPIError, match="HTTP 429"):
        ft.get_client().sync_and_poll(STRIPE)
    (row,) = [r for r in _traffic_rows(store) if r.connector == conn]
    assert row.sync_id.startswith("pending@") and (row.rate_limited, row.retries) == (4, 3)
    out = ft.get_client().sync_and_poll(STRIPE)  # no 429 this time
    syncs = [s for s in ConnectorReader(fivetran=ft, airbyte=None).fivetran_syncs({conn: [table]})
             if s.connector == conn]
    health_tick(store, syncs, {}, now=datetime.now(UTC))
    at = datetime.fromisoformat(out.connector_details["succeeded_at"].replace("Z", "+00:00"))
    (sig,) = [s for s in load_signals(store, tables=[table]) if s.sync_id == f"{STRIPE}@{at.isoformat()}"]
    assert (sig.rate_limited, sig.retries) == (4, 3)
    assert [r.sync_id for r in _traffic_rows(store) if r.connector == conn] == [sig.sync_id]  # folded once
    store.dispose()


def test_airbyte_transient_failure_retried_by_the_platform_shows_two_attempts(world, monkeypatch):
    """The emulated job fails its first attempt (``incomplete``), the platform's next attempt
    succeeds; the health reader reads the job's attempts, the stored signal has 2."""
    from orchestrator.snapshot import ConnectorReader
    from sensors.health import health_tick

    handle, url = world
    monkeypatch.setenv("ORCHESTRATOR_STORE_URL", url)
    store = open_store(url, cached=False)
    _, ab = _resources(handle)
    out = ab.get_client().sync_and_poll(AB)
    assert out.job_details["status"] == "succeeded"
    conn = f"airbyte:{AB}"
    reader = ConnectorReader(fivetran=None, airbyte=ab, read_warnings=True)
    syncs = reader.airbyte_syncs({conn: ["users"]}, datetime.now(UTC) - timedelta(days=1))
    (job,) = [s for s in syncs if s.sync_id == str(out.job_details["jobId"])]
    assert job.status == "succeeded" and job.attempts == 2
    health_tick(store, syncs, {}, now=datetime.now(UTC))
    (sig,) = [s for s in load_signals(store, tables=["users"]) if s.sync_id == job.sync_id]
    assert sig.attempts == 2
    store.dispose()


def test_fivetran_failure_retried_by_the_vendor_gives_the_success_two_attempts(tmp_path, monkeypatch):
    """``sync_failure`` with ``recovers``: Fivetran records the failure (``failed_at``) and its
    own retry succeeds; what the reader sees on the connector (failed_at, then succeeded_at) makes
    the sensor store the success with 2 attempts."""
    from orchestrator.core.records import SyncRecord
    from orchestrator.emulators import fivetran_engine
    from orchestrator.emulators.fivetran_engine import FivetranEmulator
    from orchestrator.emulators.scenario import Scenario
    from sensors.health import health_tick

    from emulator_fixtures import SMALL_SCENARIO

    sc = dict(SMALL_SCENARIO, faults=[{"kind": "sync_failure", "target": FT, "on_sync": 2, "recovers": True}])
    emu = FivetranEmulator(Scenario.model_validate(sc), tmp_path / "state", tmp_path / "landing", auto_sync=False)
    store = open_store(f"sqlite:///{tmp_path / 'o.db'}", cached=False)
    t = datetime(2026, 3, 2, 8, tzinfo=UTC)
    conn, state = f"fivetran:{FT}", None

    def records():
        c = emu.connector_json(FT)
        out = []
        for status, key in (("succeeded", "succeeded_at"), ("failed", "failed_at")):
            if c.get(key):
                at = datetime.fromisoformat(c[key].replace("Z", "+00:00"))
                out.append(SyncRecord(conn, f"{FT}@{at.isoformat()}", status, started_at=at, ended_at=at,
                                      tables=("salesforce/account",)))
        return out

    clock = [t]
    monkeypatch.setattr(fivetran_engine, "utc_now", lambda: clock[0])  # completions stamped on this clock
    for _ in range(2):
        with emu.lock:
            st = emu.connector_state(FT)
            emu._start_sync(FT, st, "incremental", None, "api", t)
            clock[0] = t + timedelta(minutes=5)
            emu._finish_sync(FT, st, st.current_sync, clock[0])
            if st.current_sync is not None:  # the vendor's retry of the failed sync
                clock[0] = t + timedelta(minutes=12)
                emu._finish_sync(FT, st, st.current_sync, clock[0])
        _, state = health_tick(store, records(), state or {}, now=t + timedelta(minutes=15))
        t += timedelta(hours=1)
    assert [h.status for h in emu.connector_state(FT).history] == ["SUCCESSFUL", "FAILURE", "SUCCESSFUL"]
    sigs = sorted(load_signals(store, connector=conn), key=lambda s: s.started_at)
    assert [(s.status, s.attempts) for s in sigs] == [("succeeded", 1), ("failed", 1), ("succeeded", 2)]
    store.dispose()


def _traffic_rows(store):
    from sqlalchemy import select

    from orchestrator.store.signal_models import SyncSignalRow

    with store.session() as s:
        return [SyncSignal(r.connector, r.table_key, r.sync_id, r.started_at, rate_limited=r.rate_limited,
                           retries=r.retries, attempts=r.attempts)
                for r in s.scalars(select(SyncSignalRow).where(SyncSignalRow.table_key == TRAFFIC_KEY))]
