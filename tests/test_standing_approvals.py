"""Standing approvals (orchestrator.core.standing): a person approves a policy's routine deadline
refreshes once; later routine work inside that scope executes naming it, and nothing outside the
scope (other assets, remedial actions, over budget, in a blackout, expired or revoked, a changed
policy) ever executes on its strength."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from planning_fixtures import graph

from orchestrator.core.incidents import ActionLedger
from orchestrator.core.records import Action, Assessment, CostAssessment, CostRecord, Snapshot, SyncRecord
from orchestrator.core.standing import (
    STANDING,
    STANDING_TTL,
    StandingBook,
    StandingCover,
    lineage,
    policy_digest,
    request,
)
from orchestrator.planning import gate
from orchestrator.policies import DurationModel, load_policies, resolve

UTC = timezone.utc
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
BLACKOUT = ('    windows: {blackout: [{start: 2026-03-10T08:30, end: 2026-03-10T12:00, reason: "quarter close"}]}\n')
POLICIES = """
policies:
  - name: exec
    select: [{key: "dashboard/exec"}]
    deadline: {cron: "0 10 * * *", timezone: UTC, window: 8h}
    tier: critical
    owners: [finance-data@example.com]
    rollout: recommend
    budget: {per_day: 50, unit: usd}
BLACKOUT  - name: growth
    select: [{key: "dashboard/growth"}]
    deadline: {cron: "0 12 * * *", timezone: UTC, window: 12h}
    tier: low
    owners: [team:growth]
    rollout: auto
    auto_approve: [retry, resync_table]
"""
EXEC = {"dashboard/exec", "fct_revenue", "stg_account", "stg_contact", "crm/account", "crm/contact"}
GROWTH = {"dashboard/growth", "stg_events", "events/page_view"}


def _resolution(blackout: bool = False, tier: str = "critical"):
    text = POLICIES.replace("BLACKOUT", BLACKOUT if blackout else "").replace("tier: critical", f"tier: {tier}")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "p.yaml"
        p.write_text(text)
        res = resolve(load_policies([p]), graph(), DurationModel(), NOW)
    assert res.ok, res.skip_reason
    return res


RES = _resolution()
RES_DARK = _resolution(blackout=True)
RES_CHANGED = _resolution(tier="high")  # the exec policy file changed


def _snapshot(res) -> tuple[Snapshot, Assessment]:
    g = res.graph
    # the connectors' past syncs price the syncs a refresh starts (a budgeted sync nothing can
    # price waits for a person: orchestrator.core.pricing)
    syncs = [SyncRecord(c, f"{c}-{h}", "succeeded", NOW - timedelta(hours=h), NOW - timedelta(hours=h - 0.1))
             for c in ("fivetran:crm", "airbyte:events") for h in (26, 20)]
    snap = Snapshot(taken_at=NOW, graph=g, runs=[], failures=[], syncs=syncs,
                    costs=[CostRecord(s.ended_at, 0.01, "sync", connector=s.connector) for s in syncs],
                    last_success={k: NOW - timedelta(hours=20) for k in g.keys})
    return snap, Assessment(taken_at=NOW, freshness={}, failures=[])


def _budget(spent: float) -> CostAssessment:
    return CostAssessment(scope="policy:exec", spent_today_usd=spent, spent_month_usd=spent, forecast_day_usd=spent,
                          forecast_month_usd=spent, budget_day_usd=50.0, budget_month_usd=None, spike=False,
                          baseline_day_usd=None, reason="t")


def _ledger(entries) -> ActionLedger:
    """entries: (policy, status, approved_at, scope, definition resolution)"""
    led = ActionLedger()
    for i, (name, status, at, scope, res) in enumerate(entries):
        a = request(res.policy(name), scope, at)
        a = replace(a, action_id=f"{a.action_id}-{i}")
        led.record(a, status, at, by_person=status == "standing")
    return led


def _routine(keys, **kw) -> Action:
    return Action(action_id="m1", type="materialize", reason="deadline refresh", asset_keys=tuple(sorted(keys)),
                  cause="freshness", cycle="2026-03-10", **kw)


def _gate(actions, led, res=RES, spent: float = 0.0):
    snap, asm = _snapshot(res)
    if spent:
        asm.cost.append(_budget(spent))
    cover = StandingCover(StandingBook.from_ledger(led), res, NOW)
    return gate(actions, snap, asm, res, now=NOW, standing=cover)


def test_a_routine_refresh_inside_an_approved_scope_executes_naming_it():
    led = _ledger([("exec", "standing", NOW - timedelta(days=1), EXEC, RES)])
    (d,) = _gate([_routine({"crm/account", "stg_account", "fct_revenue"})], led)
    assert d.decision == "execute", d.reason
    assert d.authorised_by and d.authorised_by.startswith("standing-exec-")
    assert "standing approval" in d.reason and d.as_dict()["authorised_by"] == d.authorised_by
    # without it, the same work waits for a person
    (d,) = _gate([_routine({"crm/account", "stg_account", "fct_revenue"})], ActionLedger())
    assert d.decision == "await_approval" and d.authorised_by is None


def test_expired_revoked_pending_or_stale_standing_approvals_authorise_nothing():
    keys = {"stg_account", "fct_revenue"}
    for entry, res in [
        (("exec", "standing", NOW - STANDING_TTL - timedelta(minutes=1), EXEC, RES), RES),  # expired
        (("exec", "cancelled", NOW - timedelta(days=1), EXEC, RES), RES),  # revoked
        (("exec", "declined", NOW - timedelta(days=1), EXEC, RES), RES),  # refused
        (("exec", "pending", NOW - timedelta(days=1), EXEC, RES), RES),  # not answered yet
        (("exec", "standing", NOW - timedelta(days=1), EXEC, RES), RES_CHANGED),  # the policy changed
    ]:
        (d,) = _gate([_routine(keys)], _ledger([entry]), res=res)
        assert d.decision == "await_approval", (entry[1], d.reason)


def test_over_budget_blackout_remedial_and_out_of_scope_work_still_waits():
    led = _ledger([("exec", "standing", NOW - timedelta(days=1), EXEC, RES)])
    keys = {"stg_account", "fct_revenue"}
    (d,) = _gate([_routine(keys, estimated_cost_usd=5.0)], led, spent=48.0)
    assert d.decision == "await_approval" and "over budget" in d.reason
    (d,) = _gate([_routine(keys)], _ledger([("exec", "standing", NOW - timedelta(days=1), EXEC, RES_DARK)]), res=RES_DARK)
    assert d.decision == "await_approval" and "blackout" in d.reason
    for a in [Action("r", "retry", "x", asset_keys=tuple(keys), cause="rate_limit"),
              Action("f", "full_resync", "x", connector="fivetran:crm", cause="schema_drift"),
              Action("p", "pause_connector", "x", connector="fivetran:crm", cause="auth_expired"),
              _routine(keys, source="llm"),
              _routine(keys, run_id="queued-1"),  # a re-prioritisation cancels a run
              _routine(keys | {"stg_events"})]:  # outside the scope (growth's lineage)
        (d,) = _gate([a], led)
        assert d.decision != "execute", (a, d.reason)


def test_the_request_names_the_policy_its_lineage_and_definition():
    a = request(RES.policy("exec"), lineage(RES, RES.graph, "exec"), NOW)
    assert a.type == STANDING and set(a.asset_keys) == EXEC and a.cause == "standing:exec"
    assert a.cycle == policy_digest(RES.policy("exec")) != policy_digest(RES_CHANGED.policy("exec"))
    assert "30 days" in a.reason and "still wait" in a.reason


STATUSES = ["standing", "pending", "cancelled", "declined", "expired"]
ALL_KEYS = sorted(graph().keys)


def _often(common, *rare):
    return st.sampled_from([common] * 3 + list(rare))


@settings(max_examples=80, deadline=None)
@example(  # a grant recorded when another policy's file changed still stands for growth
    grants=[("growth", "standing", 0, {"dashboard/exec", "crm/account", "dashboard/growth", "crm/contact"}, False)],
    typ="materialize", cause="freshness", source="planner", run_id=None,
    keys={"dashboard/exec", "crm/account", "dashboard/growth", "crm/contact"}, cost=0.0, spent=0.0, dark=False)
@given(
    grants=st.lists(st.tuples(st.sampled_from(["exec", "growth"]), _often("standing", *STATUSES[1:]),
                              st.integers(0, 40), st.sets(st.sampled_from(ALL_KEYS)), _often(True, False)),
                    max_size=4),
    typ=_often("materialize", "retry", "resync_table", "full_resync", "pause_connector", "backfill"),
    cause=_often("freshness", "rate_limit", None),
    source=_often("planner", "llm"),
    run_id=_often(None, "r1"),
    keys=st.sets(st.sampled_from(ALL_KEYS), min_size=1, max_size=5),
    cost=st.floats(0, 30), spent=st.floats(0, 60), dark=st.booleans(),
)
def test_nothing_outside_an_approved_scope_ever_executes_on_a_standing_approval(
        grants, typ, cause, source, run_id, keys, cost, spent, dark):
    res = RES_DARK if dark else RES
    entries = [(name, status, NOW - timedelta(days=age), scope, res if same else RES_CHANGED)
               for name, status, age, scope, same in grants]
    connector = "fivetran:crm" if typ in ("resync_table", "full_resync", "pause_connector") else None
    a = Action("a", typ, "x", asset_keys=tuple(sorted(keys)), connector=connector, cause=cause, source=source,
               run_id=run_id, estimated_cost_usd=cost)
    (d,) = _gate([a], _ledger(entries), res=res, spent=spent)
    if d.decision != "execute":
        return
    if d.authorised_by is None:  # pre-authorised by the policies themselves: growth's retry/resync only
        assert typ in ("retry", "resync_table") and set(keys) <= GROWTH, d.reason
        return
    # an independent oracle of the scope a person approved
    assert typ == "materialize" and cause == "freshness" and source == "planner" and run_id is None
    # a grant recorded under RES_CHANGED still stands for a policy that file left unchanged (growth)
    unchanged = {name for name in ("exec", "growth")
                 if policy_digest(res.policy(name)) == policy_digest(RES_CHANGED.policy(name))}
    active = {name: set().union(*[set(scope) for n, status, age, scope, same in grants
                                  if n == name and status == "standing" and age < STANDING_TTL.days
                                  and (same or name in unchanged)] or [set()])
              for name in ("exec", "growth")}
    for k in keys:
        owners = [n for n, lin in (("exec", EXEC), ("growth", GROWTH)) if k in lin]
        assert owners, f"{k} is governed by no policy"
        assert all(k in active[n] for n in owners), (k, active, d.reason)
    if set(keys) & EXEC:
        assert spent + cost <= 50.0, d.reason  # never over budget
        assert not dark, d.reason  # the exec blackout covers now


# -- the project store: ask once, approve by the digest's link, revoke, expire -----------------------
def test_standing_approval_in_the_store_approve_by_link_revoke_and_expire(tmp_path, monkeypatch):
    import re
    from html import unescape

    from starlette.testclient import TestClient

    from orchestrator.approvals import tokens
    from orchestrator.approvals.app import create_app
    from orchestrator.core.decide import decide
    from orchestrator.proposals import Proposals
    from orchestrator.settings import Settings
    from orchestrator.store import open_store

    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    store = open_store(f"sqlite:///{tmp_path}/store.db", cached=False)
    props = Proposals(store)
    snap, asm = _snapshot(RES)
    first = props.run_cycle(snap, asm, RES, now=NOW, llm=None, use_memory=False)
    asked = {d.action.cause: d.action.action_id for d in first.decisions if d.action.type == STANDING}
    # asked ahead, before any work needs it: one question for both policies, not one each
    assert set(asked) == {"standing:exec,growth"}
    aid = asked["standing:exec,growth"]
    (ask,) = [d for d in first.decisions if d.action.type == STANDING]
    assert set(ask.owners) == {"finance-data@example.com", "team:growth"}  # both policies' owners
    assert "exec" in ask.action.reason and "growth" in ask.action.reason
    # asked once: the next cycle does not ask again while it is pending
    again = props.run_cycle(snap, asm, RES, now=NOW + timedelta(minutes=5), llm=None, use_memory=False)
    assert not [d for d in again.decisions if d.action.type == STANDING]
    row = props.show(aid)
    assert row["status"] == "pending" and row["type"] == STANDING

    secret = b"standing-test-secret-0123456789"
    client = TestClient(create_app(store=store, secret=secret, settings=Settings(), clock=lambda: NOW))

    def click(aid: str, decision: str, who: str):
        tok = tokens.issue(aid, props.show(aid)["proposal_id"], decision, who, secret=secret, now=NOW,
                           ttl=timedelta(hours=12))
        page = client.get(f"/decide/{aid}/{decision}", params={"token": tok})
        form = unescape(re.search(r'name="token" value="([^"]+)"', page.text).group(1))
        return client.post(f"/decide/{aid}/{decision}", data={"token": form})

    assert click(aid, "approve", "finance-data@example.com").status_code == 200
    assert props.show(aid)["status"] == "standing"
    assert aid not in [a.action_id for a in props.executable(NOW + timedelta(hours=1))]

    # the ledger carries it into the next cycles: a routine refresh of either scope executes, naming it
    later = NOW + timedelta(hours=1)
    cover = StandingCover(StandingBook.from_ledger(props.ledger(later)), RES, later)
    snap2, asm2 = _snapshot(RES)
    (d,) = gate([_routine({"stg_account", "fct_revenue"})], snap2, asm2, RES, now=later, standing=cover)
    assert d.decision == "execute" and d.authorised_by == aid
    (d,) = gate([_routine({"stg_events"})], snap2, asm2, RES, now=later, standing=cover)
    assert d.decision == "execute" and d.authorised_by == aid, d.reason
    assert not decide(snap2, RES, now=later, ledger=props.ledger(later)).standing_requests

    # cancelling it by the same links revokes it: the same work waits again, and it is not asked again
    assert click(aid, "cancel", "finance-data@example.com").status_code == 200
    assert props.show(aid)["status"] == "cancelled"
    cover = StandingCover(StandingBook.from_ledger(props.ledger(later)), RES, later)
    (d,) = gate([_routine({"stg_account", "fct_revenue"})], snap2, asm2, RES, now=later, standing=cover)
    assert d.decision == "await_approval" and d.authorised_by is None
    assert not decide(snap2, RES, now=later, ledger=props.ledger(later)).standing_requests

    second = props.run_cycle(snap, asm, RES, now=later, llm=None, use_memory=False)
    assert not [d for d in second.decisions if d.action.type == STANDING]  # revoked: not asked again
    store.dispose()


def test_a_bundled_standing_approval_covers_each_policy_and_expires_as_one():
    from orchestrator.core.standing import bundle, policies_of, requests

    a = bundle([(RES.policy("exec"), EXEC), (RES.policy("growth"), GROWTH)], NOW)
    assert policies_of(a) == [("exec", policy_digest(RES.policy("exec"))),
                              ("growth", policy_digest(RES.policy("growth")))]
    assert set(a.asset_keys) == EXEC | GROWTH
    led = ActionLedger()
    led.record(a, "standing", NOW - timedelta(days=1), by_person=True)
    book = StandingBook.from_ledger(led)
    assert book.active("exec", None, NOW) and book.active("growth", None, NOW)
    assert not requests(RES, RES.graph, book, NOW)  # nothing left to ask
    # one policy changed: only it is asked again; the term over: both, in one request
    assert [x.cause for x in requests(RES_CHANGED, RES_CHANGED.graph, book, NOW)] == ["standing:exec"]
    later = NOW + STANDING_TTL
    assert [x.cause for x in requests(RES, RES.graph, book, later)] == ["standing:exec,growth"]
    # a policy's own change does not widen the other's scope: still only its lineage is covered
    cover = StandingCover(book, RES_CHANGED, NOW)
    assert cover.covers(_routine({"stg_events"})) and not cover.covers(_routine({"stg_account"}))
