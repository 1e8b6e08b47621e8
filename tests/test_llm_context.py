"""The context sent to the LLM stays small and cheap to build whatever the fleet's size: top-N
targets at risk and failures with a count by kind of the rest, each distinct string scrubbed
once, messages scrubbed whole before they are clipped, a time budget that stops it growing."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from planning_fixtures import NOW, failure, fresh, scenario

import orchestrator.planning.context as context_mod
from orchestrator.planning import build_context, plan
from orchestrator.planning.synthetic import fleet


@pytest.fixture(scope="module")
def big():
    f = fleet(3000, seed=1, at_risk_rate=0.6, failure_rate=0.3)
    base = plan(f.snapshot, f.assessment, f.resolution, f.durations, now=f.now)
    return f, base


def test_a_large_fleet_sends_the_top_targets_and_counts_the_rest(big):
    f, base = big
    ctx, tokens = build_context(base, f.snapshot, f.assessment, f.resolution, f.durations)
    assert tokens <= 4000
    json.loads(json.dumps(ctx))
    risky = [fa for fa in f.assessment.freshness.values() if fa.status.value in ("at_risk", "breached")]
    assert ctx["n_at_risk"] == len(risky) > len(ctx["at_risk"])
    rest = ctx["not_shown"]["at_risk"]
    assert rest["n"] + len(ctx["at_risk"]) == len(risky)
    assert sum(rest["by_status"].values()) == rest["n"]
    # least slack first: nothing left out is more urgent than what is listed
    worst_shown = max(a["slack_min"] for a in ctx["at_risk"])
    shown = {a["key"] for a in ctx["at_risk"]}
    assert all(round(fa.slack_s / 60) >= worst_shown for fa in risky if fa.asset_key not in shown)
    roots = [d for d in f.assessment.failures if d.root_failure_id is None]
    if len(roots) > len(ctx["failures"]):
        assert ctx["not_shown"]["failures"]["n"] + len(ctx["failures"]) == len(roots)
        assert sum(ctx["not_shown"]["failures"]["by_class"].values()) == ctx["not_shown"]["failures"]["n"]


def test_each_distinct_string_is_scrubbed_once(big, monkeypatch):
    f, base = big
    seen: Counter = Counter()
    real = context_mod.scrub_pii

    def counting(text):
        seen[text] += 1
        return real(text)

    monkeypatch.setattr(context_mod, "scrub_pii", counting)
    build_context(base, f.snapshot, f.assessment, f.resolution, f.durations)
    assert seen and max(seen.values()) == 1


def test_no_time_left_sends_the_smallest_context(big):
    f, base = big
    ctx, _ = build_context(base, f.snapshot, f.assessment, f.resolution, f.durations, time_budget_s=0)
    full, _ = build_context(base, f.snapshot, f.assessment, f.resolution, f.durations)
    smallest = context_mod.SIZES[0]
    assert len(ctx["at_risk"]) <= smallest[0] < len(full["at_risk"])
    assert ctx["not_shown"]["at_risk"]["n"] + len(ctx["at_risk"]) == ctx["n_at_risk"]


def test_a_secret_cut_by_the_clip_does_not_leak_its_prefix():
    key = "sk-" + "Zq8vLm3Np7Rt2Wx9Yb4Kc6Hd"
    for pad in range(20, 200, 9):  # the key straddles the 60-200 character clips
        msg = "x" * pad + f" upstream said {key} was refused"
        sc = scenario(freshness=[fresh("dashboard/exec", blocker="crm/account")],
                      failures=[failure("f1", "auth_expired", msg, connector="fivetran:crm", transient=False)])
        base = plan(sc.snapshot, sc.assessment, sc.resolution, now=NOW)
        for max_tokens in (150, 400, 4000):
            ctx, _ = build_context(base, sc.snapshot, sc.assessment, sc.resolution, max_tokens=max_tokens)
            assert key[:10] not in json.dumps(ctx)
