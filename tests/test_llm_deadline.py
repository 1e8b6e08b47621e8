"""Every call to the model ends by its deadline, whatever the server does (hang, drip, 10 MB,
endless chunks, 429/5xx, malformed): the review falls back to the baseline within
3 x ORCHESTRATOR_LLM_TIMEOUT, and the failure is recorded."""

from __future__ import annotations

import time

import pytest
from llm_adversary import Adversary
from planning_fixtures import NOW, fresh, scenario

from orchestrator.agent import LLMConfig, review
from orchestrator.planning import build_context, plan

TIMEOUT = 1.0


@pytest.fixture(scope="module")
def adversary():
    server = Adversary()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def situation():
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")])
    base = plan(sc.snapshot, sc.assessment, sc.resolution, now=NOW)
    ctx, _ = build_context(base, sc.snapshot, sc.assessment, sc.resolution)
    return base, ctx


def cfg(server, **kw):
    return LLMConfig(fast_model="m", deep_model="m", timeout_s=TIMEOUT, api_key="sk-test", base_url=server.base_url,
                     **kw)


@pytest.mark.parametrize("mode,outcome", [
    ("hang", "timeout"), ("drip", "timeout"), ("drip_headers", "timeout"), ("huge", "error"),
    ("chunked_forever", "timeout"), ("http429", "error"), ("http500", "error"), ("malformed", "error"),
    ("not_object", "error"), ("empty_choices", "error"), ("close", "error"),
])
def test_hostile_transport_ends_within_the_deadline_and_falls_back(adversary, situation, mode, outcome):
    base, ctx = situation
    adversary.mode = mode
    t0 = time.monotonic()
    out = review(base, ctx, config=cfg(adversary))
    elapsed = time.monotonic() - t0
    assert elapsed < 3 * TIMEOUT, f"{mode}: {elapsed:.2f}s"
    assert out.plan.planner == "baseline-fallback" and out.fallback_reason
    assert [a.action_id for a in out.plan.actions] == [a.action_id for a in base.actions]
    assert out.calls and out.calls[0].outcome == outcome, (mode, out.calls[0])
    assert out.calls[0].latency_s <= TIMEOUT + 0.5


def test_huge_body_is_cut_off_not_read_whole(adversary, situation):
    base, ctx = situation
    adversary.mode = "huge"
    out = review(base, ctx, config=cfg(adversary, max_response_bytes=64 * 1024))
    assert "larger than 65536 bytes" in out.calls[0].error


def test_invalid_then_slow_repair_stays_within_the_review_bound(adversary, situation):
    """Answer + repair: the whole review is bounded too, not only each call."""
    base, ctx = situation
    adversary.mode, adversary.drip_every = "drip", 0.05  # each answer takes ~ len(body) x 50 ms
    t0 = time.monotonic()
    out = review(base, ctx, config=cfg(adversary))
    assert time.monotonic() - t0 < 3 * TIMEOUT
    assert out.fallback_reason
    adversary.drip_every = 0.5


def test_a_good_answer_still_works(adversary, situation):
    base, ctx = situation
    adversary.mode = "ok"
    adversary.answer = {"rationale": "fine", "actions": []}
    out = review(base, ctx, config=cfg(adversary))
    assert out.fallback_reason is None and out.calls[0].outcome == "ok"
    assert out.calls[0].prompt_tokens == 100


def test_the_review_bound_counts_building_the_context(adversary, situation, monkeypatch):
    """The bound on one agent call starts before the context is built: a context that took the
    whole budget leaves no time to wait on the server (nothing is sent, the baseline stands)."""
    import orchestrator.planning as planning
    from orchestrator.core.decide import llm_reviewer

    base, _ = situation
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")])
    real = planning.build_context

    def slow_context(*a, **kw):
        time.sleep(0.5)
        return real(*a, **kw)

    monkeypatch.setattr(planning, "build_context", slow_context)
    adversary.mode, adversary.answer = "ok", {"rationale": "fine", "actions": []}
    before = len(adversary.requests)
    config = LLMConfig(fast_model="m", deep_model="m", timeout_s=0.2, api_key="sk-test", base_url=adversary.base_url)
    r = llm_reviewer(config)(base, sc.snapshot, sc.assessment, sc.resolution, None)
    assert r.fallback_reason == "timeout" and r.plan.planner == "baseline-fallback"
    assert "no time left" in r.calls[0].error
    assert len(adversary.requests) == before  # nothing was sent
