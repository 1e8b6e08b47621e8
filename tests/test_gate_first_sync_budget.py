"""A connector's first sync under a budget is charged what it may bill (issue 11: 0 unsafe actions).

A routine refresh of a connector's tables starts a sync of the connector. With no bill of its own
yet, the gate priced that sync at the other connectors' dearest fit -- but generated connectors
differ 200x in rows per hour, so the others' fit is no upper estimate of its first bill. On the fresh
worlds 15200-15399, three of the four unsafe actions were such first syncs: 15284 (fivetran:src1,
13.7 h of backlog, counted $5.80, billed $29.11 over dash-3's $16.09), 15323 (26 h, $8.93 counted,
$55.43 billed over dash-0's $3.52 + $37 granted) and 15394 (13.3 h, $10.56 counted, $31.83 billed
over dash-0's $27.61 and dash-2's $29.85). The gate now charges such a sync at least the assumed
``GateConfig.unpriced_sync_usd_per_hour`` per hour of backlog (``SyncPricer.first_sync_bound``), as
it already charged a retry.

The yardstick is the simulator's own bill (``Simulation.sync_cost``) for the same connector and backlog.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_gate_retry_resync_budget import NOW, TABLES, _bill, _state

from orchestrator.core.pricing import SyncPricer
from orchestrator.core.records import Action, Plan
from orchestrator.planning import gate, validate

CONN = next(iter(TABLES))
ROWS_PER_HOUR = [2000.0, 20000.0, 100000.0, 400000.0]  # what the world generator draws (worlds.py)


def _refresh(cost: float = 0.0) -> Action:
    """A routine refresh of CONN's tables and a model on them, as the planner proposes it."""
    return Action("m1", "materialize", "deadline refresh", asset_keys=("sis/students", "stg_students"),
                  priority=50, estimated_cost_usd=cost, cause="freshness")


@settings(max_examples=150, deadline=None)
@given(
    budget=st.floats(2, 60), spent=st.floats(0, 0.9), gap_h=st.floats(0.1, 48),
    rows=st.sampled_from(ROWS_PER_HOUR), other_rows=st.sampled_from(ROWS_PER_HOUR),
    n_own=st.sampled_from([0, 2, 6]), n_other=st.sampled_from([2, 6]), every_h=st.floats(0.5, 12),
)
def test_a_refresh_the_gate_runs_unasked_keeps_the_budget_whatever_the_connectors_history(
        budget, spent, gap_h, rows, other_rows, n_own, n_other, every_h):
    """Whatever rows per hour the connector and the others land, its backlog and the budget: the
    first sync of a connector (no sync of its own) is charged at least what the simulator bills it,
    so a refresh the gate executes keeps the policy's day within its budget. (A priced cadence of
    its own is charged its fit's bound, which can be exceeded: the strict xfail below.)"""
    spent *= budget
    snap, asm, res = _state(budget=budget, spent=spent, gap_h=gap_h, rows=rows, other_rows=other_rows,
                            n_own=n_own, n_other=n_other, every_h=every_h)
    (g,) = gate([_refresh()], snap, asm, res, now=NOW)
    usd, _ = _bill(rows, gap_h)
    if n_own == 0:  # a first sync is charged at least what it bills, so what runs keeps the budget
        assert g.budget_usd >= usd - 1e-6, (g.budget_usd, usd)
        if g.decision == "execute":
            assert spent + usd <= budget + 1e-6, (g.reason, g.budget_usd, usd)


@pytest.mark.xfail(strict=True, reason="known gap: a connector with a priced cadence of its own is charged its "
                   "fit's 95% bound, which a fast connector's bill can exceed (CI's hypothesis run found it: "
                   "charged $0.60, billed $0.875 over a $2.00 budget with $1.25 spent)")
def test_a_priced_cadence_refresh_the_gate_runs_keeps_the_budget():
    budget, spent = 2.0, 1.25
    snap, asm, res = _state(budget=budget, spent=spent, gap_h=1.0, rows=100000.0, other_rows=2000.0,
                            n_own=6, n_other=6, every_h=1.0)
    (g,) = gate([_refresh()], snap, asm, res, now=NOW)
    usd, _ = _bill(100000.0, 1.0)
    assert g.decision != "execute" or spent + usd <= budget + 1e-6, (g.reason, g.budget_usd, usd)


def test_the_first_sync_is_charged_its_backlog_at_the_assumed_price_world_15284():
    """World 15284's shape: a fast connector (400,000 rows an hour) with 13.7 h of backlog and no
    sync of its own, the others slow: counted from the others' fit it ran and billed ~5x what the
    gate counted, over a $16.09 budget. Now it waits for a person; a connector with a priced history
    of its own is still priced from it, and with room for the assumed price the refresh runs."""
    snap, asm, res = _state(budget=16.09, spent=0.0, gap_h=13.67, rows=400000.0, other_rows=20000.0,
                            n_own=0, n_other=6, every_h=2.0)
    bill = _bill(400000.0, 13.67)[0]
    assert SyncPricer(snap).estimate(CONN, NOW) < 16.09 < bill  # the others' fit: what ran unasked
    (g,) = gate([_refresh()], snap, asm, res, now=NOW)
    assert g.decision == "await_approval" and g.reason.startswith("over budget"), g.reason
    assert g.budget_usd >= bill
    _, rejected = validate(Plan(NOW, [_refresh()], "t"), snap, res, now=NOW)
    assert rejected and "over budget" in rejected[0][1], rejected
    # room for the backlog at the assumed price: it runs by itself
    roomy = _state(budget=200.0, spent=0.0, gap_h=13.67, rows=400000.0, other_rows=20000.0,
                   n_own=0, n_other=6, every_h=2.0)
    (g,) = gate([_refresh()], *roomy, now=NOW)
    assert g.decision == "execute", g.reason
    # its own priced history (a slow connector): priced from it, within the small budget it runs
    own = _state(budget=16.09, spent=0.0, gap_h=2.0, rows=2000.0, other_rows=400000.0,
                 n_own=6, n_other=6, every_h=2.0)
    (g,) = gate([_refresh()], *own, now=NOW)
    assert g.decision == "execute", g.reason


def test_in_flight_first_sync_counts_at_the_same_price():
    """A first sync the orchestrator launched and that is still running counts against the budget at
    the price the gate charged it (``inflight``: the bound), so a second refresh does not spend it twice."""
    from orchestrator.core.pricing import UNPRICED_SYNC_USD_PER_HOUR
    from orchestrator.core.records import RunRecord, RunStatus
    from orchestrator.planning.inflight import in_flight_spend

    snap, _, _ = _state(budget=16.09, spent=0.0, gap_h=13.67, rows=400000.0, other_rows=20000.0,
                        n_own=0, n_other=6, every_h=2.0)
    snap.runs = [RunRecord("r1", RunStatus.running, ("sis/students",), NOW - timedelta(minutes=5),
                           started_at=NOW - timedelta(minutes=5))]
    spend = in_flight_spend(snap)
    began_gap_h = 13.67 - 5 / 60
    assert spend[f"connector:{CONN}"] >= max(_bill(400000.0, began_gap_h)[0], UNPRICED_SYNC_USD_PER_HOUR * began_gap_h)


@pytest.mark.parametrize("seed", [15284, 15323, 15394])
def test_the_fresh_worlds_whose_first_sync_crossed_a_budget_stay_within_it(tmp_path, seed):
    """The generated worlds (fresh check 15200-15399) where a routine refresh's first sync of a
    connector took a policy over its budget unasked: no unsafe action, every deadline still met
    or as many as before (15284: all, 15323: all, 15394: 8 of 9)."""
    from test_gate_retry_resync_budget import _world

    r = _world(seed, tmp_path)
    assert r.unsafe_actions == 0, r.unsafe_by_kind
    assert r.sla_attainment >= {15284: 1.0, 15323: 1.0, 15394: 0.8889}[seed], (r.met, r.deadlines, r.note)
