"""Work that depends only on a cron string, a time zone or a policy is done once per distinct
value, and gives exactly what the uncached Dagster / calendar code gives."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from dagster import FreshnessPolicy
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import dagster_policies as dp
from orchestrator.policies import calendar as cal

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe"]

dow_field = st.one_of(
    st.just("*"),
    st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True).map(lambda ds: ",".join(map(str, sorted(ds)))),
    st.tuples(st.integers(0, 6), st.integers(0, 7)).filter(lambda t: t[0] <= t[1]).map(lambda t: f"{t[0]}-{t[1]}"),
)
crons = st.builds(lambda m, h, dow: f"{m} {h} * * {dow}", st.integers(0, 59), st.integers(0, 23), dow_field)
other_crons = st.sampled_from(["*/15 * * * *", "0 */6 * * *", "0 5 1 * *", "30 4 1,15 * *", "0 5 * 1-6 1-5"])


def _dagster(cron, lower, tz):
    try:
        return FreshnessPolicy.cron(deadline_cron=cron, lower_bound_delta=lower, timezone=tz)
    except Exception:
        return None


@settings(max_examples=60, deadline=None)
@given(cron=st.one_of(crons, other_crons), minutes=st.integers(1, 60 * 24 * 8), tz=st.sampled_from(ZONES))
def test_cached_freshness_policy_equals_dagsters_own(cron, minutes, tz):
    lower = timedelta(minutes=minutes)
    dp._cron_freshness.cache_clear()
    got = dp._cron_freshness(cron, lower, tz)
    expected = _dagster(cron, lower, tz)
    assert got == expected
    assert type(got) is type(expected)
    assert dp._cron_freshness(cron, lower, tz) is got  # the second asset gets the same record


@settings(max_examples=150, deadline=None)
@given(cron=st.one_of(crons, other_crons))
def test_cron_min_interval_is_the_uncached_computation(cron):
    cal.cron_min_interval.cache_clear()
    assert cal.cron_min_interval(cron) == cal.cron_min_interval.__wrapped__(cron)
    assert cal.Schedule(cron, "Europe/Berlin").min_interval() == cal.cron_min_interval(cron)
    weekly = dp._weekly_min_interval(cron)
    if weekly is not None:  # the exact weekly gap agrees with sampling the cron
        assert weekly == cal.sampled_min_interval(cron)
    assert cal.cron_min_interval(cron) == cal.sampled_min_interval(cron)  # the fast path changes nothing


def test_invalid_cron_is_still_refused_every_time():
    for _ in range(2):
        with pytest.raises(ValueError, match="invalid cron expression"):
            cal.check_cron("61 5 * * *")
        with pytest.raises(ValueError, match="5 fields"):
            cal.check_cron("0 5 * *")


def test_compile_calls_dagster_once_per_distinct_shifted_deadline(monkeypatch):
    """Many governed assets on few schedules: FreshnessPolicy.cron is built once per distinct
    (cron, lower bound, zone), not once per asset."""
    from bench_policies import generated_graph, policies_for

    from orchestrator.policies.durations import DurationModel
    from orchestrator.policies.model import load_policies_from_text
    from orchestrator.policies.resolve import resolve

    graph = generated_graph(2000)
    policy_set = load_policies_from_text(policies_for(graph), "bench.yaml")
    res = resolve(policy_set, graph, DurationModel(), dp_now())
    assert res.ok
    calls = []
    real = dp._unchecked_cron_policy

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(dp, "_unchecked_cron_policy", counting)
    dp._cron_freshness.cache_clear()
    compiled = [dp.sla_attributes(res, key) for key in res.slas]
    with_cron = [a for a in compiled if a and a.freshness_policy is not None]
    assert len(with_cron) > 500
    distinct = {(a.freshness_policy.deadline_cron, a.freshness_policy.lower_bound_delta, a.freshness_policy.timezone)
                for a in with_cron if hasattr(a.freshness_policy, "deadline_cron")}
    assert len(calls) == len(distinct) < len(with_cron) / 5


def dp_now():
    from datetime import datetime, timezone

    return datetime(2025, 6, 2, 13, 0, tzinfo=timezone.utc)


def test_apply_sla_to_spec_equals_merge_then_replace():
    """One AssetSpec built instead of two, the same result as merge_attributes + replace."""
    import dagster as dg
    from bench_policies import generated_graph, policies_for

    from orchestrator.policies.durations import DurationModel
    from orchestrator.policies.model import load_policies_from_text
    from orchestrator.policies.resolve import resolve

    graph = generated_graph(400)
    res = resolve(load_policies_from_text(policies_for(graph), "bench.yaml"), graph, DurationModel(), dp_now())
    checked = 0
    for node in list(graph)[:400]:
        spec = dg.AssetSpec(dg.AssetKey.from_user_string(node.key), kinds={"dbt", "duckdb"},
                            owners=["team:x", *node.owners[:1]], tags={"layer": "a"}, metadata={"m": 1},
                            group_name="g")
        attrs = dp.sla_attributes(res, node.key)
        got = dp.apply_sla_to_spec(spec, res)
        if attrs is None:
            assert got is spec
            continue
        expected = spec.merge_attributes(metadata=attrs.metadata, tags=attrs.tags,
                                         owners=[o for o in attrs.owners if o not in spec.owners])
        if attrs.freshness_policy is not None:
            expected = expected.replace_attributes(freshness_policy=attrs.freshness_policy)
        assert got == expected
        assert got.kinds == {"dbt", "duckdb"}
        checked += 1
    assert checked > 100


def test_fast_replace_is_in_use_and_validates_what_it_adds(monkeypatch):
    """The SLA is added with only the added tags and owners validated: on this Dagster that gives
    replace_attributes' record (the test above compares the results), and an invalid tag or owner
    is refused with Dagster's own error, as replace_attributes refuses it."""
    import dagster as dg
    from dagster._core.errors import DagsterInvalidDefinitionError

    assert dp._fast_replace_ok()
    spec = dg.AssetSpec(dg.AssetKey(["s", "t"]), deps=["u", dg.AssetKey(["s", "v"])], kinds={"dbt"},
                        tags={"layer": "a"}, owners=["team:x"], metadata={"m": 1})
    base = {"metadata": {**spec.metadata, "sla/tier": "high"}, "owners": list(spec.owners)}
    good = {**base, "tags": {"layer": "a", "sla/tier": "high"}}
    fast = dp._replace_added(spec, good, {"sla/tier": "high"}, [])
    assert fast == dp._replace_checked(spec, good)
    assert fast.deps == spec.deps and fast.kinds == {"dbt"} and list(fast.tags)[-1] == "dagster/kind/dbt"
    bad_tag = {**base, "tags": {"layer": "a", "sla/tier": "not valid!"}}
    with pytest.raises(DagsterInvalidDefinitionError, match="Invalid tag value"):
        dp._replace_checked(spec, bad_tag)
    with pytest.raises(DagsterInvalidDefinitionError, match="Invalid tag value"):
        dp._replace_added(spec, bad_tag, {"sla/tier": "not valid!"}, [])
    bad_owner = {**good, "owners": ["team:x", "data team"]}
    with pytest.raises(DagsterInvalidDefinitionError, match="Invalid owner"):
        dp._replace_checked(spec, bad_owner)
    with pytest.raises(DagsterInvalidDefinitionError, match="Invalid owner"):
        dp._replace_added(spec, bad_owner, {"sla/tier": "high"}, ["data team"])


def test_apply_falls_back_to_replace_attributes_when_the_probe_fails(monkeypatch):
    import dagster as dg

    from bench_policies import generated_graph, policies_for
    from orchestrator.policies.durations import DurationModel
    from orchestrator.policies.model import load_policies_from_text
    from orchestrator.policies.resolve import resolve

    graph = generated_graph(60)
    res = resolve(load_policies_from_text(policies_for(graph), "bench.yaml"), graph, DurationModel(), dp_now())
    specs = [dg.AssetSpec(dg.AssetKey.from_user_string(n.key), kinds={"dbt"}, owners=["team:x"]) for n in graph]
    fast = [dp.apply_sla_to_spec(s, res) for s in specs]
    calls = []
    real = dp._replace_checked
    monkeypatch.setattr(dp, "_fast_replace_ok", lambda: False)
    monkeypatch.setattr(dp, "_replace_checked", lambda spec, kw: calls.append(spec.key) or real(spec, kw))
    slow = [dp.apply_sla_to_spec(s, res) for s in specs]
    assert calls and slow == fast


def test_policy_index_matches_by_name():
    from bench_policies import generated_graph, policies_for

    from orchestrator.policies.durations import DurationModel
    from orchestrator.policies.model import load_policies_from_text
    from orchestrator.policies.resolve import resolve

    graph = generated_graph(200)
    res = resolve(load_policies_from_text(policies_for(graph), "bench.yaml"), graph, DurationModel(), dp_now())
    for p in res.policy_set.policies:
        assert dp._policy_of(res, p.name) is res.policy(p.name)
    with pytest.raises(KeyError):
        dp._policy_of(res, "no-such-policy")


def test_freshness_compiled_once_per_distinct_deadline_and_equal_to_uncached(monkeypatch):
    """compile_freshness_policy is cached per (policy, schedule, lead, max_lag) per resolution:
    every governed asset gets what the uncached compile gives, computed once per distinct value,
    and a second resolution (other policies) never sees the first one's records."""
    from bench_policies import generated_graph, policies_for

    from orchestrator.policies.durations import DurationModel
    from orchestrator.policies.model import load_policies_from_text
    from orchestrator.policies.resolve import resolve

    graph = generated_graph(1500)
    res = resolve(load_policies_from_text(policies_for(graph), "bench.yaml"), graph, DurationModel(), dp_now())
    assert res.ok
    calls = []
    real = dp._compile_freshness_policy
    monkeypatch.setattr(dp, "_compile_freshness_policy", lambda sla, r: calls.append(1) or real(sla, r))
    slas = list(res.slas.values())
    got = [dp.compile_freshness_policy(sla, res) for sla in slas]
    assert got == [real(sla, res) for sla in slas]
    distinct = {(s.deadline.policy, s.deadline.schedule.cron, s.deadline.schedule.timezone,
                 s.deadline.schedule.calendar and s.deadline.schedule.calendar.weekdays, s.deadline.lead, s.max_lag)
                if s.deadline else s.max_lag for s in slas}
    assert len(calls) == len(distinct) < len(slas) / 2
    # another resolution with every deadline policy's window changed: nothing reused from the first
    text = policies_for(graph).replace("deadline: {", "deadline: {window: 3h, ")
    other = resolve(load_policies_from_text(text, "bench.yaml"), graph, DurationModel(), dp_now())
    assert other.ok, other.errors[:3]
    assert [dp.compile_freshness_policy(s, other) for s in other.slas.values()] == [
        real(s, other) for s in other.slas.values()]
