"""A retry or a resync the gate lets run by itself never takes a budget over (issue 11: 0 unsafe).

Two unsafe actions on fresh generated worlds were budget crossings by actions the gate rated low risk:

* world 15032: a ``retry`` of a sync after ``resource_exhausted``, 1.4 h into the world, before any
  sync was priced: retries were exempt from "a sync no history can price waits for a person under a
  budget", and the retry's backlog took dash-0's $2.86 day over;
* world 15051: a ``resync_table`` of fivetran:src1 floored at 4 x its dearest sync ($46.16) cost
  $149.94 (9.6M rows: a reload bills every row at full price, an incremental sync only its new
  rows), over dash-0's $28.98 + $45.00 granted.

The yardstick is the simulator's own bill (``Simulation.sync_cost``), called here for the same
connector, backlog and resync the gate judged.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_gate_sync_budget import CONN, GRAPH, NOW, OTHER, POLICIES, _resolution, _spent

from orchestrator.core.pricing import ResyncPrices
from orchestrator.core.records import Action, Assessment, CostRecord, Snapshot, SyncRecord
from orchestrator.planning import gate
from orchestrator.planning.gate import UNPRICED_RELOAD, GateConfig

# the switch measured before the bound: every first resync under a budget held for a person
HOLD_RESYNCS = GateConfig(hold_unpriced_resyncs=True, bound_unpriced_resyncs=False)
BOUND = GateConfig(bound_unpriced_resyncs=True)
from orchestrator.policies import DurationModel, load_policies, resolve
from orchestrator.simulator.engine import Simulation
from orchestrator.simulator.scenario import CostSpec

COST = CostSpec()
TABLES = {CONN: ("sis/students", "sis/contacts"), OTHER: ("hr/staff",)}


def _bill(rows_per_hour: float, gap_h: float, resync: str | None = None, minutes: float = 5.0) -> tuple[float, int]:
    """What the simulator charges for a sync of a connector with ``rows_per_hour`` whose tables'
    data is ``gap_h`` old (its own ``Simulation.sync_cost``, warehouse at its list price)."""
    start = gap_h * 3600.0
    sim = SimpleNamespace(
        sc=SimpleNamespace(connectors={"c": SimpleNamespace(rows_per_hour=rows_per_hour, tables=("t",))}),
        spec=SimpleNamespace(cost=COST), data_time={"t": 0.0}, _wh_rate=COST.warehouse_usd_per_hour / 3600.0,
        price_integral=lambda a, b: b - a)
    return Simulation.sync_cost(sim, "c", start, start + minutes * 60.0, resync)


def _history(conn: str, rows_per_hour: float, n: int, every_h: float, last_h: float):
    """n good scheduled syncs of ``conn`` every ``every_h`` h, the last ``last_h`` h ago, billed
    (and their rows reported) as the simulator bills them."""
    syncs, costs = [], []
    for i in range(n):
        start = NOW - timedelta(hours=last_h + (n - 1 - i) * every_h)
        end = start + timedelta(minutes=5)
        usd, rows = _bill(rows_per_hour, every_h)
        syncs.append(SyncRecord(conn, f"{conn}-{i}", "succeeded", start, end, triggered_by="schedule",
                                rows=rows if i else None))
        if i:
            costs.append(CostRecord(end, usd, "sync", connector=conn,
                                    detail={"triggered_by": "schedule", "rows": rows}))
    return syncs, costs


def _state(*, budget: float, spent: float, gap_h: float, rows: float, other_rows: float, n_own: int, n_other: int,
           every_h: float):
    """CONN (pa's and pb's tables) with ``n_own`` past syncs, OTHER with ``n_other``; CONN's data
    ``gap_h`` old. pa's budget ``budget`` with ``spent`` spent; pb has room for anything."""
    res = _resolution(budget, 10_000.0)
    s1, c1 = _history(CONN, rows, n_own, every_h, gap_h) if n_own else ([], [])
    s2, c2 = _history(OTHER, other_rows, n_other, every_h, 1.0) if n_other else ([], [])
    data_time = {k: NOW - timedelta(hours=gap_h) for k in TABLES[CONN]} | {"hr/staff": NOW - timedelta(hours=1)}
    snap = Snapshot(taken_at=NOW, graph=GRAPH, syncs=s1 + s2, costs=c1 + c2, data_time=data_time,
                    last_success={k: NOW - timedelta(hours=gap_h) for k in GRAPH.keys})
    asm = Assessment(taken_at=NOW, freshness={}, failures=[],
                     cost=[_spent("pa", spent, budget), _spent("pb", 0.0, 10_000.0)])
    return snap, asm, res


def _retry(snap: Snapshot) -> Action:
    """As the planner proposes it: the connector's tables, priced at its mean past sync."""
    bills = [c.amount_usd for c in snap.costs if c.connector == CONN]
    return Action("r1", "retry", "retry after resource_exhausted", asset_keys=TABLES[CONN], connector=CONN,
                  priority=60, estimated_cost_usd=sum(bills) / len(bills) if bills else 0.0,
                  cause="resource_exhausted")


def _resync() -> Action:
    return Action("s1", "resync_table", "schema drift: resync the tables", connector=CONN, priority=60,
                  estimated_cost_usd=0.0, cause="schema_drift")


@settings(max_examples=120, deadline=None)
@given(
    budget=st.floats(2, 60), spent=st.floats(0, 0.9), gap_h=st.floats(0.1, 48),
    rows=st.sampled_from([2000.0, 20000.0, 100000.0, 400000.0]),
    other_rows=st.sampled_from([2000.0, 20000.0, 100000.0, 400000.0]),
    n_own=st.sampled_from([0, 1, 2, 6]), n_other=st.sampled_from([0, 2, 6]), every_h=st.floats(0.5, 12),
    resync=st.booleans(), resynced_before=st.sampled_from([None, CONN, OTHER]),
    config=st.sampled_from([BOUND, HOLD_RESYNCS]),
)
def test_a_retry_or_resync_the_gate_runs_unasked_keeps_the_budget(
        budget, spent, gap_h, rows, other_rows, n_own, n_other, every_h, resync, resynced_before, config):
    """Whatever the connectors' history (none at all, a single sync, a priced cadence), backlog,
    rows per hour and budget: what the gate executes of a retry or a table resync, billed as the
    simulator bills it, keeps pa's day within its budget (a first resync priced at its bound,
    GateConfig.bound_unpriced_resyncs, or held for a person: both off by default)."""
    spent *= budget
    snap, asm, res = _state(budget=budget, spent=spent, gap_h=gap_h, rows=rows, other_rows=other_rows,
                            n_own=n_own, n_other=n_other, every_h=every_h)
    resyncs = None
    seen = {CONN: (n_own, rows), OTHER: (n_other, other_rows)}.get(resynced_before)
    if seen is not None and seen[0] > 1:  # the ledger shows one resync of that connector and what it cost
        incremental = max(c.amount_usd for c in snap.costs if c.connector == resynced_before)
        bill = _bill(seen[1], every_h, "resync_table")[0]
        resyncs = ResyncPrices({"resync_table": bill / incremental}, {resynced_before: incremental},
                               {(resynced_before, "resync_table"): bill})
    a = _resync() if resync else _retry(snap)
    (g,) = gate([a], snap, asm, res, now=NOW, resyncs=resyncs, config=config)
    if g.decision != "execute":
        return
    usd, _ = _bill(rows, gap_h, "resync_table" if resync else None)
    assert spent + usd <= budget + 1e-6, (g.reason, g.budget_usd, usd)


def test_a_retry_no_history_prices_waits_under_a_small_budget_and_runs_without_one(tmp_path):
    """Before any sync of its connector is priced, a retry's backlog is priced at the assumed
    ``unpriced_sync_usd_per_hour``: under a small budget a person decides (world 15032), with room it
    runs; where no budget governs the connector, the failed sync is retried by itself."""
    snap, asm, res = _state(budget=2.86, spent=0.0, gap_h=6.0, rows=100000.0, other_rows=2000.0,
                            n_own=0, n_other=0, every_h=1.0)
    (g,) = gate([_retry(snap)], snap, asm, res, now=NOW)
    assert g.decision == "await_approval" and g.reason.startswith("over budget"), g.reason
    assert g.budget_usd >= _bill(100000.0, 6.0)[0] > 2.86  # what it would have cost
    # a connector that never delivered data (no data time, no good sync): its first sync counts
    # one hour at the assumed price, over this budget: a person decides
    blind = Snapshot(taken_at=NOW, graph=GRAPH)
    (g,) = gate([_retry(blind)], blind, asm, res, now=NOW)
    assert g.decision == "await_approval" and g.reason.startswith("over budget"), g.reason
    assert g.budget_usd >= GateConfig().unpriced_sync_usd_per_hour > 2.86
    # with room in the budget for the backlog at the assumed price, it is retried by itself
    snap, asm, res = _state(budget=150.0, spent=0.0, gap_h=6.0, rows=100000.0, other_rows=2000.0,
                            n_own=0, n_other=0, every_h=1.0)
    (g,) = gate([_retry(snap)], snap, asm, res, now=NOW)
    assert g.decision == "execute", g.reason
    # no budget on the connector's tables: retried by itself
    text = "\n".join(line for line in POLICIES.splitlines() if "budget:" not in line)
    p = tmp_path / "p.yaml"
    p.write_text(text)
    unbudgeted = resolve(load_policies([p]), GRAPH, DurationModel(), NOW)
    (g,) = gate([_retry(snap)], snap, Assessment(taken_at=NOW, freshness={}, failures=[], cost=[]), unbudgeted, now=NOW)
    assert g.decision == "execute", g.reason
    # once syncs are priced, a retry with room in the budget runs by itself
    snap, asm, res = _state(budget=50.0, spent=0.0, gap_h=1.0, rows=2000.0, other_rows=2000.0,
                            n_own=6, n_other=6, every_h=1.0)
    (g,) = gate([_retry(snap)], snap, asm, res, now=NOW)
    assert g.decision == "execute", g.reason


def test_a_resync_no_past_resync_prices_waits_under_a_budget():
    """A reload bills every row its tables hold at full price: 4 x the dearest incremental sync is
    no upper estimate (world 15051: $46.16 floored, $149.94 billed). The first resync is priced at
    its bound from the rows per hour the connector's syncs reported: over the budget a person
    decides, with room for the bound it runs by itself; once one was seen, its bill prices the next.
    The bound is off by default (GateConfig.bound_unpriced_resyncs): it cost the shipped silent
    scenario's seed 1 three of four deadlines (a $435 bound held the resync for a person), and world
    105 one of four (a $49.12 bound held a resync billed $36.60 that fit its $44.95 budget)."""
    bill = _bill(400000.0, 4.75, "resync_table")[0]
    snap, asm, res = _state(budget=73.98, spent=0.0, gap_h=4.75, rows=400000.0, other_rows=2000.0,
                            n_own=2, n_other=6, every_h=4.75)
    (g,) = gate([_resync()], snap, asm, res, now=NOW, config=BOUND)
    assert g.decision == "await_approval" and g.reason.startswith("over budget"), g.reason
    assert g.budget_usd >= bill > 73.98
    # the floor alone (neither bounded nor held) let it run: what world 15051 did
    floored = GateConfig(bound_unpriced_resyncs=False)
    (g,) = gate([_resync()], snap, asm, res, now=NOW, config=floored)
    assert g.decision == "execute" and g.budget_usd < bill, g.reason
    (g,) = gate([_resync()], snap, asm, res, now=NOW, config=HOLD_RESYNCS)
    assert g.decision == "await_approval" and g.reason.startswith(UNPRICED_RELOAD), g.reason
    # with room for the bound (and the budget reserve kept over estimates), the first resync runs by itself
    roomy = _state(budget=2 * bill, spent=0.0, gap_h=4.75, rows=400000.0, other_rows=2000.0,
                   n_own=2, n_other=6, every_h=4.75)
    (g,) = gate([_resync()], *roomy, now=NOW, config=BOUND)
    assert g.decision == "execute", g.reason
    # a single sync shows no rows per hour: nothing bounds the reload, a person decides
    lone = _state(budget=1.5 * bill, spent=0.0, gap_h=4.75, rows=400000.0, other_rows=2000.0,
                  n_own=1, n_other=6, every_h=4.75)
    (g,) = gate([_resync()], *lone, now=NOW, config=BOUND)
    assert g.decision == "await_approval" and g.reason.startswith(UNPRICED_RELOAD), g.reason
    incremental = max(c.amount_usd for c in snap.costs if c.connector == CONN)
    seen = ResyncPrices({"resync_table": bill / incremental}, {CONN: incremental}, {(CONN, "resync_table"): bill})
    (g,) = gate([_resync()], snap, asm, res, now=NOW, resyncs=seen, config=BOUND)
    assert g.decision == "await_approval" and "over budget" in g.reason, g.reason
    assert g.budget_usd >= bill
    # with room for that bill, the next resync of the connector runs by itself
    snap, asm, res = _state(budget=4 * bill, spent=0.0, gap_h=4.75, rows=400000.0, other_rows=2000.0,
                            n_own=2, n_other=6, every_h=4.75)
    (g,) = gate([_resync()], snap, asm, res, now=NOW, resyncs=seen, config=BOUND)
    assert g.decision == "execute", g.reason


def _world(seed: int, tmp_path):
    from orchestrator.simulator import load_scenario
    from orchestrator.simulator.bench import resolve_policies, simulate
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.planners.sla import SLAPlanner
    from orchestrator.simulator.worlds import generate_world

    sc = load_scenario(generate_world(seed, tmp_path))
    res = resolve_policies(sc, sc.realise(seed))
    return simulate(sc, seed, SLAPlanner(), res, deadlines_of(res, sc.t0, sc.horizon_s))


@pytest.mark.parametrize("seed, met", [(15032, 1), (15051, 2), (15382, 2), (105, 3)])
def test_the_worlds_that_crossed_a_budget_make_no_unsafe_action(tmp_path, seed, met):
    """15032 (an unpriced retry); 15051 and 15382 (a first table resync floored at $46.16 / $39.23,
    billed $149.94 / $145.02, run by the gate on a budget extension sized on that floor: now a person
    approves the resync itself); 105 (a first resync that fits its own budget at its floor still runs
    by itself, as before): no unsafe action, and the deadlines met as before (1 of 2, 2 of 3, 2 of 3,
    3 of 4)."""
    r = _world(seed, tmp_path)
    assert r.unsafe_actions == 0, r.unsafe_by_kind
    assert r.met >= met, (r.met, r.deadlines, r.note)


@settings(max_examples=80, deadline=None)
@example(budget=2.0, spent=0.0, extension=1.0, gap_h=1.0, rows=20000.0, n_own=2, every_h=1.0,
         resynced=False)  # held by the reserve the gate keeps, within the bare budget
@given(budget=st.floats(2, 60), spent=st.floats(0, 1.2), extension=st.floats(1, 500), gap_h=st.floats(0.5, 24),
       rows=st.sampled_from([2000.0, 20000.0, 100000.0, 400000.0]), n_own=st.sampled_from([1, 2, 6]),
       every_h=st.floats(0.5, 12), resynced=st.booleans())
def test_a_first_resync_never_runs_on_a_budget_extension_alone(budget, spent, extension, gap_h, rows, n_own,
                                                               every_h, resynced):
    """Whatever the budget, the spend so far, the extension a person granted and the connector's
    history: a resync no past resync of its connector prices never executes on that extension
    alone (the extension was sized on its floor; worlds 15051, 15382) -- it waits for a person's
    approval of the resync itself. One the ledger prices (a past resync's bill) may use it, and
    one within the policy's own budget still runs by itself."""
    from orchestrator.core.incidents import ActionLedger
    from orchestrator.core.standing import ACTIVE, BudgetBook, BudgetCover, extension_request

    spent *= budget
    snap, asm, res = _state(budget=budget, spent=spent, gap_h=gap_h, rows=rows, other_rows=2000.0,
                            n_own=n_own, n_other=6, every_h=every_h)
    req = extension_request(res.policy("pa"), res.governed_by("pa"), NOW, NOW.date(), 1, extension,
                            budget, budget + extension)
    ledger = ActionLedger()
    ledger.record(req, ACTIVE, NOW, by_person=True)
    cover = BudgetCover(BudgetBook.from_ledger(ledger), res, NOW)
    assert cover.extra("pa") > 0
    resyncs = None
    if resynced and n_own > 1:
        incremental = max(c.amount_usd for c in snap.costs if c.connector == CONN)
        bill = _bill(rows, every_h, "resync_table")[0]
        resyncs = ResyncPrices({"resync_table": bill / incremental}, {CONN: incremental}, {(CONN, "resync_table"): bill})
    (g,) = gate([_resync()], snap, asm, res, now=NOW, resyncs=resyncs, budgets=cover)
    on_extension = g.decision == "execute" and req.action_id in (g.authorised_by or "")
    if resyncs is None:
        assert not on_extension, (g.reason, g.budget_usd)
        if g.decision == "await_approval" and g.reason.startswith(UNPRICED_RELOAD):
            # held only where the policy's own budget does not hold it, counting the reserve the
            # gate keeps on what is only estimated (GateConfig.budget_reserve)
            assert spent + g.budget_usd * (1 + GateConfig().budget_reserve) > budget
