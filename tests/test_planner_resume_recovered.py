"""A connector we paused for a failure that needs a person is resumed once its tables synced
after the pause and nothing of it fails any more. The on-call engineer often fixes a credential
without reporting it; a retry (or a cycle's fresh attempt) then succeeds, no failure is left for
the repair path to answer, and the connector stayed paused for good with its own schedule stopped
(generated world 17683: the next days' syncs never ran, 0.667 -> 0.917 with this stage)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from planning_fixtures import NOW, failure, scenario

from orchestrator.core.decide import decide
from orchestrator.core.incidents import ActionLedger
from orchestrator.core.records import Action

AUTH = "401 Unauthorized: the OAuth access token has expired; re-authenticate the connection"
CONN = "fivetran:crm"
TABLES = ("crm/account", "crm/contact")


def _case(cause, synced_after_min, *, resumed=False, failing_again=False, by_person=True):
    """The crm connector failed at NOW-3h and was paused at NOW-2h (``cause`` None: paused by a
    person outside the ledger); each table's last sync is ``synced_after_min`` minutes after the
    pause (negative: before it)."""
    failed_at, paused_at = NOW - timedelta(hours=3), NOW - timedelta(hours=2)
    failures = [failure("f1", "auth_expired", AUTH, connector=CONN, transient=False, at=failed_at)]
    if failing_again:
        failures.append(failure("f2", "auth_expired", AUTH, connector=CONN, transient=False,
                                at=NOW - timedelta(minutes=5)))
    sc = scenario(failures=failures)
    for key, minutes in zip(TABLES, synced_after_min):
        sc.snapshot.last_success[key] = paused_at + timedelta(minutes=minutes)
    ledger = ActionLedger()
    if cause is None:
        sc.snapshot.paused_connectors = {CONN}
    else:
        pause = Action("pause-1", "pause_connector", "paused", connector=CONN, cause=cause, cycle="f1")
        ledger.record(pause, "pending", failed_at + timedelta(minutes=1))
        ledger.update("pause-1", "approved", paused_at, by_person=by_person)
        ledger.update("pause-1", "succeeded", paused_at)
        if resumed:
            ledger.record(Action("resume-0", "resume_connector", "resumed", connector=CONN, cause="repair:" + cause),
                          "succeeded", paused_at + timedelta(minutes=30))
    d = decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=NOW, ledger=ledger)
    return [g for g in d.decisions if g.action.type == "resume_connector" and g.action.connector == CONN]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(cause=st.sampled_from(["auth_expired", "permission_denied", "early_warning", None]),
       synced=st.tuples(st.integers(-90, 90), st.integers(-90, 90)).filter(lambda t: 0 not in t),
       resumed=st.booleans(), failing_again=st.booleans())
def test_a_connector_paused_for_a_failure_is_resumed_exactly_when_it_synced_since_and_nothing_fails(
        cause, synced, resumed, failing_again):
    resumes = _case(cause, synced, resumed=resumed, failing_again=failing_again)
    ours_for_a_person = cause in ("auth_expired", "permission_denied")
    expected = ours_for_a_person and all(m > 0 for m in synced) and not resumed and not failing_again
    assert bool(resumes) == expected, (cause, synced, resumed, failing_again, resumes)
    if expected:
        (g,) = resumes
        assert "synced after its pause" in g.action.reason and g.action.cause == f"repair:{cause}"


def test_the_person_who_approved_the_pause_covers_the_resume():
    (g,) = _case("auth_expired", (20, 40))
    assert g.decision == "execute", g.reason
    assert g.authorised_by == "incident:pause-1"
    # a pause nobody approved (run by policy) covers nothing: the resume waits for a person
    (g,) = _case("auth_expired", (20, 40), by_person=False)
    assert g.decision == "await_approval"
