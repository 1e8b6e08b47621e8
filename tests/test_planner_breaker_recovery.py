"""An open circuit breaker closes once its subject succeeds again, whoever ran it.

Found on generated world 431 (seeds 400-439): a recurring source outage (90 min, twice a day)
failed three automatic retries and opened the breaker on the connector; the connector's own
schedule synced it fine after the outage, but the breaker stayed open for the whole horizon, so
every later retry of the next outage was recorded only and the dashboard lost every day's
deadline that a cron job with a RetryPolicy met.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from orchestrator.planning import CircuitBreaker

UTC = timezone.utc
T0 = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


def _tripped(subject: str) -> CircuitBreaker:
    br = CircuitBreaker(threshold=3)
    for i in range(3):
        br.record(subject, False, T0 + timedelta(minutes=10 * i))
    assert br.is_open(subject, T0 + timedelta(hours=1))
    return br


def test_a_connector_breaker_closes_when_all_its_tables_landed_after_it_opened():
    br = _tripped("connector:fivetran:src2")
    tables = {"fivetran:src2": ("src2/a", "src2/b")}.get
    opened = T0 + timedelta(minutes=20)
    # one table landed since, the other not: still open
    assert br.close_recovered({"src2/a": opened + timedelta(hours=2), "src2/b": opened - timedelta(hours=1)},
                              tables) == []
    assert br.is_open("connector:fivetran:src2")
    # both landed after it opened (the connector's own schedule): closed, acting again
    closed = br.close_recovered({"src2/a": opened + timedelta(hours=2), "src2/b": opened + timedelta(hours=2)}, tables)
    assert closed == ["connector:fivetran:src2"]
    assert not br.is_open("connector:fivetran:src2")
    # and its failure count starts again: one new failure does not re-open it
    br.record("connector:fivetran:src2", False, opened + timedelta(hours=3))
    assert not br.is_open("connector:fivetran:src2")


def test_an_asset_breaker_stays_open_without_a_newer_success():
    br = _tripped("asset:fct_orders")
    opened = T0 + timedelta(minutes=20)
    assert br.close_recovered({"fct_orders": opened - timedelta(minutes=1)}) == []
    assert br.close_recovered({}) == []
    assert br.is_open("asset:fct_orders")
    assert br.close_recovered({"fct_orders": opened + timedelta(minutes=1)}) == ["asset:fct_orders"]


def test_decide_acts_again_on_an_asset_once_its_connector_synced_it():
    from planning_fixtures import NOW, fresh, scenario

    from orchestrator.core.decide import decide

    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")])
    br = CircuitBreaker(threshold=3)
    for i in range(3):
        br.record("asset:crm/account", False, NOW - timedelta(minutes=40 - 10 * i))
    d = decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=NOW, breaker=br)
    assert [g.decision for g in d.decisions] == ["record_only"]  # open: recorded only
    # the connector's own schedule synced the table after the breaker opened
    sc.snapshot.last_success["crm/account"] = NOW - timedelta(minutes=5)
    d = decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=NOW, breaker=br)
    assert not br.is_open("asset:crm/account", NOW)
    assert "record_only" not in [g.decision for g in d.decisions]
