"""An incident's summary where people look: on its assets in the Dagster UI (the ``agent_proposal``
check's ``incident/*`` metadata), in the digest (HTML and text), in the Slack / Teams messages of its
thread, and, once resolved, its post-mortem in all three. A real SQLite project store is filled the
way the failure sensor (``failure.diagnosed`` events, cascade under its root) and the agent
(actions, approval, outcome) fill it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from planning_fixtures import NOW, failure, fresh, scenario

from orchestrator.diagnosis.incidents import build_incidents, deadlines_from_resolution, incidents_by_asset
from orchestrator.diagnosis.summaries import summarize
from orchestrator.store import open_store
from orchestrator.store.agent_models import ActionRow, ProposalRow

ROOT_MSG = "HTTP 429 Too Many Requests: API rate limit exceeded for connector crm"
EVIDENCE = "HTTP 429 Too Many Requests"


def _diagnosed(store, fid, *, at, root=None, asset=None, connector=None, assets=(), category="rate_limit"):
    store.append_audit("failure.diagnosed", actor="failure_diagnosis_sensor", subject=fid, payload={
        "category": category, "transient": category == "rate_limit", "confidence": 0.93,
        "evidence": [EVIDENCE] if category == "rate_limit" else ["boom"], "root": root, "system": "fivetran",
        "asset_key": asset, "connector": connector, "run_id": None, "at": at.isoformat(),
        "subject": asset or connector, "assets": list(assets),
    })


def _action(store, aid, fid, *, status="pending", at=None):
    with store.session() as s:
        s.add(ProposalRow(id="p-" + aid, planner="sla", rationale="", created_at=at or NOW))
        s.flush()
        s.add(ActionRow(id=aid, proposal_id="p-" + aid, type="retry", status=status, decision="await_approval",
                        payload={"type": "retry", "connector": "fivetran:crm", "asset_keys": ["crm/account"]},
                        subjects=["connector:fivetran:crm", "asset:crm/account"], risk="low", risk_score=0.1,
                        reason="retry after the rate-limit window", created_at=at or NOW, updated_at=at or NOW,
                        failures=[{"failure_id": fid, "message": ROOT_MSG, "category": "rate_limit"}]))


def _fill(store, *, resolved: bool):
    t0 = NOW - timedelta(hours=3)
    _diagnosed(store, "f1", at=t0, connector="fivetran:crm", assets=["crm/account", "crm/contact"])
    _diagnosed(store, "f2", at=t0 + timedelta(minutes=4), root="f1", asset="stg_account", assets=["stg_account"])
    _action(store, "a1", "f1", status="succeeded" if resolved else "pending", at=t0 + timedelta(minutes=5))
    if resolved:
        store.append_audit("approval", actor="oncall-ana", subject="action:a1", payload={"via": "slack"})
        store.append_audit("outcome", actor="executor", subject="action:a1", payload={"success": True})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two stores (open / resolved incident) over the planning fixtures' project."""
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")],
                  failures=[failure("f1", "rate_limit", ROOT_MSG, connector="fivetran:crm",
                                    at=NOW - timedelta(hours=3))])
    out = {"sc": sc}
    for name in ("open", "resolved"):
        d = tmp_path_factory.mktemp(name)
        st = open_store(f"sqlite:///{d}/store.db", cached=False)
        _fill(st, resolved=name == "resolved")
        out[name] = st
    yield out
    for name in ("open", "resolved"):
        out[name].dispose()


def test_incident_knows_its_assets_and_the_deadlines_they_serve(world):
    sc = world["sc"]
    inc = build_incidents(world["open"], deadlines_of=deadlines_from_resolution(sc.resolution))[0]
    assert inc.assets == ["crm/account", "crm/contact", "stg_account"]
    # crm/account feeds dashboard/exec (policy exec, deadline 10:00): the incident puts it at stake
    assert "exec" in inc.deadlines
    by_asset = incidents_by_asset([inc], sc.graph)
    assert {"crm/account", "crm/contact", "stg_account"} <= set(by_asset)
    assert by_asset["stg_account"].id == "f1"  # a cascade asset shows its root's incident


def test_ui_check_metadata_carries_the_summary_then_the_postmortem(world):
    from sensors import ProjectContext
    from sensors.notify import proposals_tick

    sc = world["sc"]
    ctx = ProjectContext(graph=sc.snapshot.graph, resolution=sc.resolution)
    expected = str(summarize("rate_limit", [EVIDENCE], "fivetran", True)["summary"])
    events, state = proposals_tick(ctx, {}, now=NOW, store=world["open"])
    by_key = {e.asset_key.to_user_string(): e for e in events}
    # a cascade asset with no proposal of its own still shows the incident it is part of
    stg = by_key["stg_account"]
    assert stg.passed and stg.metadata["incident/id"].value == "f1"
    assert stg.metadata["incident/summary"].value == expected
    assert stg.metadata["incident/status"].value == "open" and "incident/postmortem" not in stg.metadata
    assert "exec" in stg.metadata["incident/deadlines"].value
    assert "Incident f1 open" in stg.description
    # the asset whose proposal waits shows both the proposal and the incident
    acct = by_key["crm/account"]
    assert not acct.passed and acct.metadata["action_id"].value == "a1"
    assert acct.metadata["incident/summary"].value == expected

    # once resolved, the same assets change (new evaluation) and carry the post-mortem
    events2, _ = proposals_tick(ctx, state, now=NOW, store=world["resolved"])
    by_key2 = {e.asset_key.to_user_string(): e for e in events2}
    pm = by_key2["stg_account"].metadata["incident/postmortem"].value
    assert by_key2["stg_account"].metadata["incident/status"].value == "resolved"
    assert "oncall-ana" in pm and "time to recovery" in pm and "Deadlines at stake: exec" in pm
    # nothing changed -> nothing reported again
    events3, _ = proposals_tick(ctx, {k: v for k, v in proposals_tick(ctx, {}, now=NOW, store=world["resolved"])[1]
                                      .items()}, now=NOW, store=world["resolved"])
    assert events3 == []


def _digest(store, sc):
    from orchestrator.digest.content import build_digest

    return build_digest(store, sc.snapshot, sc.assessment, sc.resolution, now=NOW, since=NOW - timedelta(hours=24))


def test_digest_html_and_text_carry_the_summary_and_the_postmortem(world):
    from orchestrator.digest.render import render_html, render_text

    sc = world["sc"]
    expected = str(summarize("rate_limit", [EVIDENCE], "fivetran", True)["summary"])
    d = _digest(world["open"], sc)
    sec = next(s for s in d.owners if s.failures)
    item = sec.failures[0]
    assert item.summary == expected and item.remediation and item.postmortem is None
    html, text = render_html(d, sec), render_text(d, sec)
    assert 'class="incident-summary"' in html and "rate limit" in html.lower()
    assert "Deadlines at stake: exec" in html and "incident-postmortem" not in html
    assert f"Summary: {expected}" in text and "Next: " in text and "Post-mortem" not in text

    d2 = _digest(world["resolved"], sc)
    sec2 = next(s for s in d2.owners if s.failures)
    html2, text2 = render_html(d2, sec2), render_text(d2, sec2)
    assert 'class="incident-postmortem"' in html2 and "oncall-ana" in html2
    pm_line = next(line for line in text2.splitlines() if "Post-mortem:" in line)
    assert "retry (approved by oncall-ana, worked)" in pm_line and "time to recovery" in pm_line


def test_digest_without_a_recorded_incident_still_summarizes_and_writes_a_postmortem_on_recovery(tmp_path):
    from orchestrator.digest.render import render_text

    sc = scenario(failures=[failure("g1", "schema_drift", "column AMOUNT type changed from NUMBER to VARCHAR",
                                    asset="crm/account", at=NOW - timedelta(hours=2))])
    sc.snapshot.last_success["crm/account"] = NOW - timedelta(minutes=30)  # it succeeded again since
    st = open_store(f"sqlite:///{tmp_path}/s.db", cached=False)
    try:
        d = _digest(st, sc)
    finally:
        st.dispose()
    sec = next(s for s in d.owners if s.failures)
    item = sec.failures[0]
    assert item.resolved and "structure of the data changed" in item.summary
    assert "column AMOUNT type changed" in item.summary
    assert item.postmortem and "time to recovery 90 min" in item.postmortem
    assert f"Post-mortem: {item.subject} failed at 07:00 (schema_drift)" in render_text(d, sec)


def test_slack_and_teams_payloads_carry_the_summary_and_the_postmortem(world):
    from orchestrator.notify import owners_from_project
    from orchestrator.notify.render import slack_message, teams_card
    from orchestrator.notify.threads import collect_threads

    sc = world["sc"]
    expected = str(summarize("rate_limit", [EVIDENCE], "fivetran", True)["summary"])
    owners_of = owners_from_project(sc.graph, sc.resolution)
    th = collect_threads(world["open"], now=NOW, owners_of=owners_of)[0]
    opened = th.changes[0]
    text, blocks = slack_message(th, opened, None, threaded=False)
    assert expected in blocks[0]["text"]["text"] and "Deadlines at stake: exec" in text
    card = teams_card(th, opened, None)
    assert expected in card["body"][2]["text"]
    assert not th.resolved

    th2 = collect_threads(world["resolved"], now=NOW, owners_of=owners_of)[0]
    resolved = th2.changes[-1]
    assert resolved.key == "resolved" and resolved.final
    text2, blocks2 = slack_message(th2, resolved, None, threaded=True)
    assert "Resolved in" in text2 and "approved by oncall-ana, worked" in blocks2[0]["text"]["text"]
    assert "Deadlines at stake: exec" in text2
    assert "oncall-ana" in teams_card(th2, resolved, None)["body"][2]["text"]
