"""The cycle's one pass over the cost records (orchestrator.core.pricing.CostHistory) gives the
very means each stage computed in its own pass: the planner's prices, the gate's model prices, the
budget forecast's triggered syncs and the warehouse price seen so far -- on generated records with
repeated keys, scheduled and triggered syncs, records naming neither an asset nor a connector,
zero and negative amounts (credits)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.pricing import CostHistory
from orchestrator.core.records import CostRecord
from orchestrator.core.standing import observed_usd_per_hour

T0 = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
amounts = st.one_of(st.floats(-5.0, 500.0, allow_nan=False, allow_infinity=False),
                    st.sampled_from([0.0, -0.0, 0.1, 0.2, 0.3, 1e-9]), st.integers(0, 50))
record = st.builds(
    lambda amount, kind, key, conn, secs, trigger, minutes: CostRecord(
        at=T0 - timedelta(minutes=minutes), amount_usd=amount,
        source="run" if kind == "run" else "sync",
        asset_key=key if kind == "run" else None,
        connector=None if kind == "orphan" else conn,
        compute_s=secs if kind == "run" else None,
        detail={} if trigger is None else {"triggered_by": trigger}),
    amounts, st.sampled_from(["run", "sync", "orphan"]), st.sampled_from([f"m{i}" for i in range(6)] + [""]),
    st.sampled_from(["fivetran:a", "fivetran:b", "airbyte:c", ""]), st.one_of(st.none(), st.floats(0.0, 7200.0)),
    st.sampled_from([None, "schedule", "orchestrator", "sensor"]), st.integers(0, 3000))


def _means(groups: dict[str, list[float]]) -> dict[str, float]:
    return {k: sum(v) / len(v) for k, v in groups.items()}


def _plain(costs):
    """Each stage's own pass, as they were written before the shared one."""
    runs, syncs, triggered = {}, {}, {}
    for c in costs:
        if c.asset_key:
            runs.setdefault(c.asset_key, []).append(c.amount_usd)
        elif c.connector:
            syncs.setdefault(c.connector, []).append(c.amount_usd)
    for c in costs:  # the budget forecast's pass
        if not c.asset_key and c.connector and (c.detail or {}).get("triggered_by") != "schedule":
            triggered.setdefault(c.connector, []).append(c.amount_usd)
    gate: dict[str, list] = {}
    for c in costs:  # the gate's running sums
        if c.asset_key:
            s = gate.setdefault(c.asset_key, [0.0, 0])
            s[0] += c.amount_usd
            s[1] += 1
    return _means(runs), _means(syncs), _means(triggered), {k: v[0] / v[1] for k, v in gate.items()}


def _same(a: dict, b: dict) -> bool:  # the very floats, order of keys included
    return list(a) == list(b) and all(repr(a[k]) == repr(b[k]) for k in a)


@settings(max_examples=300, deadline=None)
@given(st.lists(record, max_size=60))
def test_one_pass_gives_every_stage_its_own_means(costs):
    h = CostHistory(costs)
    runs, syncs, triggered, gate = _plain(costs)
    assert _same(h.run_mean, runs) and _same(h.run_mean, gate)
    assert _same(h.sync_mean, syncs)
    assert _same(h.triggered_sync_mean, triggered)
    assert h.usd_per_hour == observed_usd_per_hour(costs)


def test_the_cycle_history_is_used_when_given_and_built_when_not():
    from types import SimpleNamespace

    costs = [CostRecord(T0, 3.0, "run", asset_key="m1", compute_s=600.0),
             CostRecord(T0, 5.0, "run", asset_key="m1", compute_s=900.0),
             CostRecord(T0, 2.0, "sync", connector="fivetran:a", detail={"triggered_by": "schedule"}),
             CostRecord(T0, 6.0, "sync", connector="fivetran:a")]
    snap = SimpleNamespace(costs=costs)
    given_one = CostHistory(costs)
    assert CostHistory.of(snap, given_one) is given_one
    built = CostHistory.of(snap)
    assert built.run_mean == {"m1": 4.0} and built.sync_mean == {"fivetran:a": 4.0}
    assert built.triggered_sync_mean == {"fivetran:a": 6.0}
    assert built.usd_per_hour == 8.0 / 1500.0 * 3600.0
