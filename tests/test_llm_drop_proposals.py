"""An LLM's drop (or change of subject) of a baseline action is a proposal of its own that waits
for a person, through the whole cycle with a real OpenAI-compatible server on loopback and the
project store: approving it cancels the baseline action if it has not started, rejecting it keeps
the action, and nothing the planner would not run executes by itself."""

from __future__ import annotations

import pytest
from planning_fixtures import NOW, FakeLLM, failure, fresh, scenario

from orchestrator.agent import LLMConfig
from orchestrator.agent.envelope import DROP_TYPE
from orchestrator.core.standing import STANDING
from orchestrator.proposals import Proposals
from orchestrator.store import open_store

# crm/account under a policy that recommends: the retry of fivetran:crm waits for a person
RECOMMEND = '  - name: watch\n    select: [{key: "crm/account"}]\n    max_lag: 48h\n    rollout: recommend\n'


@pytest.fixture(scope="module")
def llm():
    server = FakeLLM()
    yield server
    server.stop()


def world():
    return scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")],
                    failures=[failure("f1", "rate_limit", "HTTP 429 rate limit", connector="fivetran:crm",
                                      asset="crm/account")], blackout=RECOMMEND)


def cycle(props, sc, llm, answer):
    llm.script = [("json", answer)]
    config = LLMConfig(fast_model="m", deep_model="m", timeout_s=5, api_key="sk-test", base_url=llm.base_url)
    return props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=config, use_memory=False)


def baseline(tmp_path, name):
    props = Proposals(open_store(f"sqlite:///{tmp_path}/{name}.db", cached=False))
    sc = world()
    plain = props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None, use_memory=False,
                            dry_run=True)
    return props, sc, plain


def test_an_approved_drop_cancels_the_pending_baseline_action(llm, tmp_path):
    props, sc, plain = baseline(tmp_path, "a")
    # the policy's standing approval of routine refreshes is a separate ask, not a baseline action
    waiting = [d.action for d in plain.decisions if d.decision == "await_approval" and d.action.type != STANDING]
    assert [a.type for a in waiting] == ["retry"]
    target = waiting[0]
    r = cycle(props, sc, llm, {"rationale": "the vendor recovers by itself", "actions": [
        {"ref": a.action_id, "type": a.type, "asset_keys": list(a.asset_keys), "connector": a.connector,
         "priority": a.priority, "rationale": "keep", "confidence": 0.9}
        for a in plain.plan.actions if a.action_id != target.action_id],
        "dropped": [{"ref": target.action_id, "rationale": "rate limits clear; key=sk-live-abcdefghijklmnop1234"}]})
    # nothing runs that the planner would not run; the baseline retry still waits
    assert {d.action.action_id for d in r.decisions if d.decision == "execute"} == {
        d.action.action_id for d in plain.decisions if d.decision == "execute"}
    drops = [d for d in r.decisions if d.action.type == DROP_TYPE]
    assert len(drops) == 1 and drops[0].decision == "await_approval"
    drop_id = drops[0].action.action_id
    assert props.status(drop_id) == "pending" and props.status(target.action_id) == "pending"
    shown = props.show(drop_id)
    text = str(shown)
    assert "rate limits clear" in text and "sk-live-abcdefghijklmnop1234" not in text
    props.approve(drop_id, "oncall@example.com", comment="agreed", now=NOW)
    assert props.status(target.action_id) == "cancelled"
    assert props.status(drop_id) == "succeeded"
    # the sensor never sees the drop; the cancelled retry is not executable either
    assert {a.action_id for a in props.executable(NOW)} & {drop_id, target.action_id} == set()


def test_a_rejected_drop_keeps_the_baseline_action(llm, tmp_path):
    props, sc, plain = baseline(tmp_path, "b")
    target = next(d.action for d in plain.decisions if d.decision == "await_approval" and d.action.type != STANDING)
    # a changed subject: the same ref, another asset
    r = cycle(props, sc, llm, {"rationale": "swap", "actions": [
        {"ref": target.action_id, "type": "materialize", "asset_keys": ["stg_contact"], "priority": 5,
         "rationale": "contact first", "confidence": 1.0}]})
    drop = next(d.action for d in r.decisions if d.action.type == DROP_TYPE)
    assert "replaced by materialize on stg_contact" in drop.reason
    props.reject(drop.action_id, "oncall@example.com", now=NOW)
    assert props.status(target.action_id) == "pending" and props.status(drop.action_id) == "declined"
    props.approve(target.action_id, "oncall@example.com", now=NOW)
    assert target.action_id in {a.action_id for a in props.executable(NOW)}


def test_a_drop_approved_after_its_action_started_is_too_late(llm, tmp_path):
    props, sc, plain = baseline(tmp_path, "c")
    target = next(d.action for d in plain.decisions if d.decision == "await_approval" and d.action.type != STANDING)
    r = cycle(props, sc, llm, {"rationale": "none", "actions": [],
                               "dropped": [{"ref": a.action_id, "rationale": "not needed"} for a in plain.plan.actions]})
    drop = next(d.action for d in r.decisions if d.action.type == DROP_TYPE)
    props.approve(target.action_id, "oncall@example.com", now=NOW)
    assert props.claim(target.action_id, NOW)
    props.approve(drop.action_id, "oncall@example.com", now=NOW)
    assert props.status(target.action_id) == "executing" and props.status(drop.action_id) == "failed"
