"""Approving and rejecting proposals: one decision per action, expiry that sticks."""

import threading
from datetime import timedelta

import pytest
from planning_fixtures import NOW, failure, fresh, scenario

from orchestrator.proposals import Proposals
from orchestrator.store import open_store
from orchestrator.store.agent_models import ApprovalRow


@pytest.fixture
def pending(tmp_path):
    props = Proposals(open_store(f"sqlite:///{tmp_path}/store.db", cached=False))
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")],
                  failures=[failure("f1", "unknown", "Something went wrong within the destination connector",
                                    connector="fivetran:crm", at=NOW - timedelta(hours=3))])
    props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None)
    action_id = next(p["action_id"] for p in props.list(status="pending") if p["type"] == "retry")
    return props, action_id


def test_simultaneous_approve_and_reject_have_one_winner(pending):
    props, action_id = pending
    outcomes, start = [], threading.Barrier(8)

    def decide(i: int) -> None:
        start.wait()
        try:
            (props.approve if i % 2 else props.reject)(action_id, actor=f"user{i}@example.com", via="email",
                                                       now=NOW + timedelta(minutes=1))
            outcomes.append("won")
        except ValueError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("won") == 1, outcomes
    with props.store.session() as s:
        assert s.query(ApprovalRow).filter_by(action_id=action_id).count() == 1
    assert props.show(action_id)["status"] in ("approved", "declined")


def test_an_expired_action_stays_expired(pending):
    props, action_id = pending
    expires = props.show(action_id)["expires_at"]
    late = NOW + timedelta(days=30)
    with pytest.raises(ValueError, match="expired"):
        props.approve(action_id, actor="ana@example.com", via="cli", now=late)
    assert props.show(action_id)["status"] == "expired", expires
    with pytest.raises(ValueError, match="expired, not pending"):
        props.approve(action_id, actor="ana@example.com", via="cli", now=late)
