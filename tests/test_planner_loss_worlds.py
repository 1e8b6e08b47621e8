"""The generated worlds where `sla` lost to `cron-tuned` on seeds 13000-13039 (main 00560ba), by cause.

All under ``SLAPlanner.native_wait_share = 0.5`` (off by default: on seeds 700-799 it won 5 worlds
and lost 7).

* 13006, 13021: a pre-authorised sync left to the connector's own scheduled sync late in the
  window (08:00 for a 06:30-09:30 window; 16:15 for 12:30-18:30); a fault arriving meanwhile (code
  error at 07:23, config error at 14:46: a person must fix them) failed that sync, with no time
  left before the deadline. cron-tuned synced at the opening, before the fault. Now the connector's
  own sync is waited for only within ``PlannerConfig.native_wait_share`` of the time to the latest
  start (tests/test_planner_native_sync.py draws the schedules).
* 13008: the same for fivetran:src2 (its own 08:00 sync for an 08:30 deadline, the chain after it
  ended a minute late), and an input whose own cycle was served worked for a weekly consumer's
  cycle three days ahead instead of the one open now, so airbyte:src0 synced only at its latest
  start and ran long (tests/test_planner_served_input_cycles.py draws the cycles).

cron-tuned met every deadline of these worlds: 1/1, 2/2 and 7/7.

Not waiting for the connector's own sync must not cost what waiting saved (main met every deadline
of both): world 103, syncs ahead of their connectors' own spent a budgeted policy's day and the
run bundling them with a budgeted model waited for a person all morning (now: only within half of
what the budget's forecast leaves, ``_Cycles.budget_room``); world 112, one sync slot per source,
an extra sync 30 minutes before the connector's own queued the other connector of the source behind
both (now: a scheduled sync within the hour is waited for, ``native_wait_min_s``).
"""

from __future__ import annotations

import pytest

from orchestrator.simulator import load_scenario
from orchestrator.simulator.bench import resolve_policies, simulate
from orchestrator.simulator.metrics import deadlines_of
from orchestrator.simulator.planners.sla import SLAPlanner
from orchestrator.simulator.worlds import generate_world


def _run(sc, seed, share):
    planner = SLAPlanner()
    planner.native_wait_share = share
    res = resolve_policies(sc, sc.realise(seed))
    return simulate(sc, seed, planner, res, deadlines_of(res, sc.t0, sc.horizon_s))


@pytest.mark.parametrize("seed", [13006, 13008, 13021, 103, pytest.param(112, marks=pytest.mark.xfail(
    strict=True, reason="a known loss of PlannerConfig.queued_native_aware: an extra sync queues the source's "
                        "other connector behind two syncs (won 25 / lost 7 worlds on seeds 14000-14199 and 16000-16099)"))])
def test_sla_meets_every_deadline_of_the_world(tmp_path, seed):
    sc = load_scenario(generate_world(seed, tmp_path))
    r = _run(sc, seed, 0.5)
    assert r.unsafe_actions == 0, r.unsafe_by_kind
    assert r.met == r.deadlines, (seed, r.met, r.deadlines, r.note)
