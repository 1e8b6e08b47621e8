"""`orchestrator incidents list|show`: root failure + cascade + actions -> summary and post-mortem,
read from a real project store (SQLite) filled the way the failure sensor and the agent fill it."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.diagnosis.incidents import build_incidents
from orchestrator.store import open_store
from orchestrator.store.agent_models import ActionRow, ProposalRow

T0 = datetime(2026, 3, 2, 5, 0, tzinfo=timezone.utc)


def _failure(store, fid, *, at, root=None, asset=None, connector=None, category="rate_limit"):
    store.append_audit("failure.diagnosed", actor="failure_diagnosis_sensor", subject=fid, payload={
        "category": category, "transient": category == "rate_limit", "confidence": 0.91,
        "evidence": ["HTTP 429 Too Many Requests"] if category == "rate_limit" else ["boom"],
        "root": root, "system": "salesforce", "asset_key": asset, "connector": connector,
        "run_id": None, "at": at.isoformat(),
    })


def _action(store, aid, failure_ids, *, atype="retry", decision="await_approval", status="succeeded"):
    with store.session() as s:
        if s.get(ProposalRow, "p-" + aid) is None:
            s.add(ProposalRow(id="p-" + aid, planner="sla", rationale="", created_at=T0))
            s.flush()
        s.add(ActionRow(id=aid, proposal_id="p-" + aid, type=atype, status=status, decision=decision,
                        payload={"type": atype}, created_at=T0 + timedelta(minutes=2),
                        failures=[{"failure_id": f, "message": "x", "category": "rate_limit"} for f in failure_ids]))


@pytest.fixture
def store(tmp_path):
    st = open_store(f"sqlite:///{tmp_path}/store.db", cached=False)
    yield st
    st.dispose()


@pytest.fixture
def filled(store, tmp_path):
    _failure(store, "F1", at=T0, connector="salesforce")
    _failure(store, "F2", at=T0 + timedelta(minutes=5), root="F1", asset="staging/stg_accounts")
    _failure(store, "F3", at=T0 + timedelta(minutes=6), root="F1", asset="marts/accounts")
    _failure(store, "F4", at=T0 + timedelta(hours=2), asset="marts/orders", category="code_error")
    _action(store, "A1", ["F1"])
    store.append_audit("approval", actor="alice@example.com", subject="action:A1", payload={"via": "email"})
    store.append_audit("execution", actor="executor", subject="action:A1", payload={"status": "launched"})
    store.append_audit("outcome", actor="executor", subject="action:A1", payload={"success": True})
    _action(store, "A2", ["F4"], atype="rerun", status="rejected")
    store.append_audit("rejection", actor="bob@example.com", subject="action:A2", payload={})
    return f"sqlite:///{tmp_path}/store.db"


def test_incident_groups_the_cascade_under_its_root_with_summary_and_postmortem(store, filled):
    incs = {i.id: i for i in build_incidents(store)}
    assert set(incs) == {"F1", "F4"}  # cascade failures are not incidents of their own
    f1 = incs["F1"]
    assert [c["failure_id"] for c in f1.cascade] == ["F2", "F3"]
    assert f1.affected == ["connector:salesforce", "marts/accounts", "staging/stg_accounts"]
    assert "rate-limit" in f1.summary or "rate" in f1.summary and "429" in f1.summary
    assert f1.remediation and f1.status == "resolved"
    assert f1.actions[0].decided_by == "alice@example.com" and f1.actions[0].outcome is True
    assert "alice@example.com" in f1.postmortem and "2 downstream" in f1.postmortem
    assert f1.time_to_recovery_s is not None and f1.time_to_recovery_s > 0
    f4 = incs["F4"]
    assert f4.status == "open" and f4.postmortem is None
    assert f4.actions[0].verdict == "rejected" and f4.actions[0].decided_by == "bob@example.com"


def test_cli_list_and_show(filled):
    runner = CliRunner()
    res = runner.invoke(cli, ["incidents", "list", "--store-url", filled])
    assert res.exit_code == 0, res.output
    assert "F1" in res.output and "F4" in res.output and "resolved" in res.output and "open" in res.output
    res = runner.invoke(cli, ["incidents", "list", "--status", "open", "--json", "--store-url", filled])
    rows = [json.loads(x) for x in res.output.splitlines()]
    assert [r["id"] for r in rows] == ["F4"]
    res = runner.invoke(cli, ["incidents", "show", "F1", "--store-url", filled])
    assert res.exit_code == 0, res.output
    assert "post-mortem:" in res.output and "alice@example.com" in res.output
    assert "evidence: HTTP 429 Too Many Requests" in res.output
    res = runner.invoke(cli, ["incidents", "show", "F9", "--store-url", filled])
    assert res.exit_code != 0 and "no incident 'F9'" in res.output


def test_empty_store_says_so(tmp_path):
    res = CliRunner().invoke(cli, ["incidents", "list", "--store-url", f"sqlite:///{tmp_path}/e.db"])
    assert res.exit_code == 0 and "no incidents" in res.output


@pytest.mark.parametrize("seed", range(8))
def test_random_worlds_every_failure_belongs_to_exactly_one_incident(tmp_path, seed):
    rng = random.Random(seed)
    store = open_store(f"sqlite:///{tmp_path}/w{seed}.db", cached=False)
    try:
        roots = [f"R{i}" for i in range(rng.randint(1, 6))]
        at = T0
        for r in roots:
            at += timedelta(minutes=rng.randint(1, 30))
            _failure(store, r, at=at, connector=f"c{r}")
        cascade = {}
        for j in range(rng.randint(0, 15)):
            r = rng.choice(roots)
            cascade[f"C{j}"] = r
            _failure(store, f"C{j}", at=at + timedelta(minutes=j), root=r, asset=f"a/{j}")
        resolved = set()
        for k, r in enumerate(roots):
            if rng.random() < 0.5:
                member = rng.choice([r] + [c for c, rr in cascade.items() if rr == r])
                _action(store, f"A{k}", [member])
                ok = rng.random() < 0.7
                store.append_audit("outcome", actor="executor", subject=f"action:A{k}", payload={"success": ok})
                if ok:
                    resolved.add(r)
        incs = {i.id: i for i in build_incidents(store)}
        assert set(incs) == set(roots)
        seen = [c["failure_id"] for i in incs.values() for c in i.cascade]
        assert sorted(seen) == sorted(cascade)
        for c, r in cascade.items():
            assert c in [x["failure_id"] for x in incs[r].cascade]
        assert {i.id for i in incs.values() if i.status == "resolved"} == resolved
    finally:
        store.dispose()
