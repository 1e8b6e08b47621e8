"""Risk gate, confidence from the failure memory, and the circuit breaker."""

from datetime import timedelta

from planning_fixtures import NOW, failure, fresh, scenario

from orchestrator.core.records import Action
from orchestrator.planning import CircuitBreaker, gate, plan, validate
from orchestrator.store import open_store


def _gate(sc, actions, **kw):
    return gate(actions, sc.snapshot, sc.assessment, sc.resolution, now=NOW, **kw)


def test_auto_low_risk_runs_everything_else_waits():
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")])
    p = plan(sc.snapshot, sc.assessment, sc.resolution, now=NOW)
    accepted, _ = validate(p, sc.snapshot, sc.resolution, now=NOW)
    (d,) = _gate(sc, accepted)
    assert d.decision == "execute" and d.risk == "low" and d.confidence == 1.0
    # the same work proposed by the LLM with its own (high) confidence is capped
    llm = Action("l1", "materialize", "llm", asset_keys=accepted[0].asset_keys, confidence=1.0, source="llm")
    (d,) = _gate(sc, [llm])
    assert d.confidence == 0.9 and d.factors["llm"] > 0
    # a full resync never runs on its own, even in auto mode on a critical asset
    fr = Action("fr", "full_resync", "x", connector="fivetran:crm")
    (d,) = _gate(sc, [fr])
    assert d.decision == "await_approval" and d.risk == "high"
    # an action type not listed in auto_approve waits
    pause = Action("pz", "pause_connector", "x", connector="fivetran:crm")
    assert _gate(sc, [pause])[0].decision == "await_approval"
    # ungoverned assets (no policy) never act on their own
    un = Action("u1", "materialize", "x", asset_keys=("stg_events",))
    d = gate([un], sc.snapshot, sc.assessment, None, now=NOW)[0]
    assert d.decision == "await_approval" and "ungoverned" in d.reason


def test_rollout_shadow_records_only():
    shadow = '  - name: watch\n    select: [{key: "stg_contact"}]\n    max_lag: 48h\n    rollout: shadow\n'
    sc = scenario(blackout=shadow)
    (d,) = _gate(sc, [Action("s1", "materialize", "x", asset_keys=("stg_contact",))])
    assert d.decision == "record_only"


def test_confidence_comes_from_the_failure_memory(tmp_path):
    from orchestrator.diagnosis.memory import FailureMemory

    # a class without a prescribed resolution (a transient-looking ``unknown``): only history helps
    msg = "Something went wrong within the destination connector (internal error 7731)"
    sc = scenario(failures=[failure("f1", "unknown", msg, connector="fivetran:crm", at=NOW - timedelta(hours=2))])
    p = plan(sc.snapshot, sc.assessment, sc.resolution, now=NOW)
    accepted, _ = validate(p, sc.snapshot, sc.resolution, now=NOW)
    assert [a.type for a in accepted] == ["retry"]
    # no memory: a never-seen failure goes to a person
    (d,) = _gate(sc, accepted)
    assert d.decision == "await_approval" and "confidence" in d.reason
    mem = FailureMemory(open_store(f"sqlite:///{tmp_path}/m.db", cached=False), embeddings=False)
    (d,) = _gate(sc, accepted, memory=mem)
    assert d.decision == "await_approval"  # empty memory: still never seen
    for _ in range(4):
        mem.record_resolution(msg, "unknown", "retry", True)
    (d,) = _gate(sc, accepted, memory=mem)
    assert d.decision == "execute" and d.confidence >= 0.5, d.reason
    # the LLM's own number can only lower it
    low = Action(**{**{k: getattr(accepted[0], k) for k in accepted[0].__slots__}, "confidence": 0.2, "source": "llm"})
    assert _gate(sc, [low], memory=mem)[0].confidence == 0.2
    # a resolution that keeps failing for this class loses confidence
    for _ in range(8):
        mem.record_resolution(msg, "unknown", "retry", False)
    (d,) = _gate(sc, accepted, memory=mem)
    assert d.decision == "await_approval"


def test_circuit_breaker_trips_serialises_and_blocks():
    br = CircuitBreaker(threshold=3, window=timedelta(hours=1))
    s = "connector:fivetran:crm"
    assert br.record(s, False, NOW) is None
    assert br.record(s, False, NOW + timedelta(minutes=5), automatic=False) is None  # manual: not counted
    assert br.record(s, False, NOW + timedelta(minutes=10)) is None
    assert br.record(s, True, NOW + timedelta(minutes=11)) is None  # success resets
    for i in range(2):
        br.record(s, False, NOW + timedelta(minutes=20 + i))
    trip = br.record(s, False, NOW + timedelta(minutes=30))
    assert trip is not None and trip.failures == 3
    # failures outside the window do not count
    br2 = CircuitBreaker(threshold=2, window=timedelta(minutes=10))
    br2.record("asset:a", False, NOW)
    assert br2.record("asset:a", False, NOW + timedelta(minutes=30)) is None
    clone = CircuitBreaker.from_dict(br.to_dict())
    assert clone.is_open(s) and clone.open_subjects() == [s] and clone.to_dict() == br.to_dict()
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")])
    p = plan(sc.snapshot, sc.assessment, sc.resolution, now=NOW)
    retry = Action("r", "retry", "x", asset_keys=("crm/account", "crm/contact"), connector="fivetran:crm")
    decisions = _gate(sc, [*p.actions, retry], breaker=clone)
    assert [d.decision for d in decisions] == ["execute", "record_only"]
    clone.reset(s)
    assert not clone.is_open(s)


def test_transient_retry_runs_without_history_other_classes_wait(tmp_path):
    from orchestrator.diagnosis.memory import FailureMemory

    msg = "HTTP 429 Too Many Requests from the Salesforce API (rate limit exceeded)"
    sc = scenario(failures=[failure("f1", "rate_limit", msg, connector="fivetran:crm", confidence=0.73)])
    retry = Action("r1", "retry", "x", asset_keys=("crm/account", "crm/contact"), connector="fivetran:crm")
    (d,) = _gate(sc, [retry])  # no memory at all: the class prior and the diagnosis decide
    assert d.decision == "execute" and d.confidence >= 0.5 and "prescribed" in d.reason
    # non-transient classes still wait for a person, even with a retry on the table
    for cat in ("auth_expired", "permission_denied", "config_error", "code_error", "data_quality"):
        sc2 = scenario(failures=[failure("f2", cat, "something failed", connector="fivetran:crm", transient=False)])
        assert _gate(sc2, [retry])[0].decision == "await_approval", cat
    # history raises or lowers it: a retry schedule that never works loses the prior
    mem = FailureMemory(open_store(f"sqlite:///{tmp_path}/m.db", cached=False), embeddings=False)
    for _ in range(4):
        mem.record_resolution(msg, "rate_limit", "retry", True)
    up = _gate(sc, [retry], memory=mem)[0]
    assert up.decision == "execute" and up.confidence > d.confidence
    for _ in range(40):
        mem.record_resolution(msg, "rate_limit", "retry", False)
    assert _gate(sc, [retry], memory=mem)[0].decision == "await_approval"


def test_drift_resync_runs_by_itself_only_where_the_policy_auto_approves_it():
    drift = "Number of columns in file (2) does not match that of the corresponding table (16)"
    sc = scenario(failures=[failure("f1", "schema_drift", drift, connector="fivetran:crm", transient=False,
                                    confidence=0.73)])
    resync = Action("s1", "resync_table", "x", connector="fivetran:crm", tables={"crm": ("account",)},
                    asset_keys=("crm/account",))
    (d,) = _gate(sc, [resync])  # crm/account serves exec (critical): auto, resync_table auto-approved
    assert d.decision == "execute" and d.risk == "low" and d.factors["tier"] == 0.0
    sc2 = scenario(failures=[failure("f2", "schema_drift", drift, connector="airbyte:events", transient=False)])
    ev = Action("s2", "resync_table", "x", connector="airbyte:events", tables={"events": ("page_view",)},
                asset_keys=("events/page_view",))
    (d2,) = _gate(sc2, [ev])  # growth does not list resync_table
    assert d2.decision == "await_approval" and "not in auto_approve" in d2.reason


def test_preauthorised_materialize_is_low_risk_cost_and_budget_still_count():
    from orchestrator.core.records import CostAssessment

    keys = ("crm/account", "crm/contact", "stg_account", "stg_contact", "fct_revenue", "dashboard/exec")
    sc = scenario()
    (d,) = _gate(sc, [Action("m1", "materialize", "x", asset_keys=keys)])
    assert d.decision == "execute" and d.factors["tier"] == 0.0  # critical, but its owners pre-authorised it
    assert d.factors["size"] == 0.02  # 5 units of work: the two CRM tables are one sync
    # cost still counts (assets no budget covers: over cost_high_usd)
    (d,) = _gate(sc, [Action("m2", "materialize", "x", asset_keys=keys, estimated_cost_usd=40.0)])
    assert d.factors["cost"] == 0.2 and d.risk_score > 0.3
    # growth has a 50 USD/day budget: forecast over only nudges, overspending waits
    burn = CostAssessment(scope="policy:growth", spent_today_usd=10, spent_month_usd=100, forecast_day_usd=80,
                          forecast_month_usd=900, budget_day_usd=50, budget_month_usd=None, spike=False,
                          baseline_day_usd=30, reason="t")
    sc.assessment.cost.append(burn)
    g = ("stg_events", "dashboard/growth")
    (d,) = _gate(sc, [Action("g1", "materialize", "x", asset_keys=g, estimated_cost_usd=5.0)])
    assert d.decision == "execute" and d.factors["budget"] == 0.05 and d.factors["cost"] == 0.0
    (d,) = _gate(sc, [Action("g2", "materialize", "x", asset_keys=g, estimated_cost_usd=45.0)])
    assert d.decision == "await_approval" and d.factors["budget"] == 0.2
