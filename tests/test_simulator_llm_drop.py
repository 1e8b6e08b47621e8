"""`sla-llm` in the simulator honours a person's verdict on an LLM drop (type ``drop_action``), as
``orchestrator.proposals`` does in the store: approved, the baseline action is cancelled and never
runs if it has not started; too late (already running), nothing changes; declined, it runs."""

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from orchestrator.agent.envelope import DROP_TYPE
from orchestrator.core.records import Action
from orchestrator.simulator.planners.sla import SLAPlanner

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)


class Sim:
    """What the planner's tick asks of the engine: the clock and the approval requests (a person
    answers when the test says so)."""

    def __init__(self):
        self.asked: dict[str, tuple[Action, object]] = {}
        self.spec = SimpleNamespace(sensor_tick=timedelta(minutes=5),
                                    approvals=SimpleNamespace(answer_at=lambda t0, now: now + 3600),
                                    cost=SimpleNamespace(warehouse_usd_per_hour=12.0))  # the scenario default
        self.now, self.t0 = 0.0, 0.0
        self.repairs: list = []  # repairs reported outside any action (none here)

    def dt(self):
        return NOW + timedelta(seconds=self.now)

    def request_approval(self, action, on_approved):
        self.asked[action.action_id] = (action, on_approved)

    def at(self, t, fn):
        pass

    def answer(self, action_id):
        action, on_approved = self.asked[action_id]
        on_approved(action)


def _tick(planner, sim, *actions, decision="await_approval"):
    d = SimpleNamespace(decisions=[SimpleNamespace(action=a, decision=decision) for a in actions],
                        standing_requests=[], assessment=SimpleNamespace(failures=[]))
    planner._decide = lambda *a, **k: d
    planner.snapshot = planner.resolution = lambda sim: None
    planner.tick(sim)


@pytest.fixture
def world():
    planner, sim = SLAPlanner(), Sim()
    launched = []
    planner._launch = lambda sim, a, **k: launched.append(a.action_id)
    planner._validate = lambda *a, **k: (True, [])
    base = Action("b1", "materialize", "late for its deadline", asset_keys=("fct_orders",), cause="freshness")
    drop = Action("d1", DROP_TYPE, "The LLM proposes not to run b1", asset_keys=("fct_orders",), source="llm",
                  cause="drop:b1")
    return planner, sim, launched, base, drop


def test_an_approved_drop_cancels_its_waiting_baseline_action(world):
    planner, sim, launched, base, drop = world
    _tick(planner, sim, base, drop)
    sim.answer("d1")  # the drop is approved first
    sim.answer("b1")  # then the baseline action: it was cancelled, it does not run
    assert launched == []
    assert planner.ledger.status("b1") == "cancelled" and planner.ledger.status("d1") == "succeeded"
    assert planner.decisions.get("dropped") == 1


def test_a_drop_approved_too_late_changes_nothing(world):
    planner, sim, launched, base, drop = world
    _tick(planner, sim, base, decision="execute")  # the baseline action already runs
    _tick(planner, sim, drop)
    sim.answer("d1")
    assert launched == ["b1"]  # ran, never run twice nor by the drop
    assert planner.ledger.status("b1") == "executing" and planner.ledger.status("d1") == "failed"


def test_without_the_drop_approved_the_baseline_action_runs(world):
    planner, sim, launched, base, drop = world
    _tick(planner, sim, base, drop)
    sim.answer("b1")  # the drop is never approved (declined)
    assert launched == ["b1"] and planner.ledger.status("d1") == "pending"
