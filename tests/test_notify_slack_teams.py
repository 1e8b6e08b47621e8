"""Owners told where they work: Slack threads and Teams cards per incident, over real HTTP to local
Slack-compatible and Teams-webhook servers (ephemeral ports), deduplicated in the project store."""

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from notify_servers import SlackServer, TeamsServer
from planning_fixtures import NOW, failure, fresh, scenario

from orchestrator.approvals.tokens import verify
from orchestrator.notify import Notifier, NotifySettings, owners_from_project, parse_routes
from orchestrator.proposals import Proposals
from orchestrator.settings import Settings
from orchestrator.store import open_store
from orchestrator.store.notify_models import NotificationMessageRow

TOKEN = "xoxb-4242424242-1717171717-Zq8WvT3kLmN0pRsTuVwXyZ12"
APPROVAL_SECRET = "approval-secret-9f8e7d6c5b4a3210"
PASSWORD = "Hunter2-Sup3rS3cret"
EMAIL = "ana.lopez@example.org"
PHONE = "+1 415 555 0123"
BASE = "https://approve.example.test"
ROUTES = "finance-data@example.com=#finance, team:growth=#growth, *=#data-alerts"


@pytest.fixture(scope="module")
def servers():
    slack, teams = SlackServer(TOKEN), TeamsServer()
    yield slack, teams
    slack.stop()
    teams.stop()


@pytest.fixture(scope="module")
def template(tmp_path_factory, servers):
    """A store file holding the incident, copied by the property test's examples."""
    d = tmp_path_factory.mktemp("template")
    w = World(d, *servers)
    w.store.dispose()  # the last connection checkpoints the WAL into the file
    return d / "store.db"


@pytest.fixture
def reset(servers):
    slack, teams = servers
    with slack.lock:
        slack.received.clear()
        slack.raw.clear()
        slack.throttle_next = slack.throttled = slack.early_calls = 0
        slack.limited_until = 0.0
        slack.retry_after, slack.enforce = 1, True
    with teams.lock:
        teams.received.clear()
        teams.raw.clear()
        teams.throttle_next = 0
    return slack, teams


class World:
    """A project store with one incident (a Fivetran connector failed; the agent proposed a retry
    that waits for approval) and a notifier pointed at the local servers."""

    def __init__(self, tmp_path, slack: SlackServer, teams: TeamsServer, *, template=None, url=None, **overrides):
        message = (f"Something went wrong within the destination connector; the password is {PASSWORD}, "
                   f"call {PHONE} or write to {EMAIL}")
        sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")],
                      failures=[failure("f1", "unknown", message, connector="fivetran:crm",
                                        at=NOW - timedelta(hours=3))])
        self.sc = sc
        if template is not None:  # a copy of a store already holding the incident (fast)
            Path(tmp_path).mkdir(parents=True, exist_ok=True)
            shutil.copy(template, Path(tmp_path) / "store.db")
            self.store = open_store(f"sqlite:///{tmp_path}/store.db", cached=False, migrate=False)
            self.props = Proposals(self.store)
        else:
            self.store = open_store(url or f"sqlite:///{tmp_path}/store.db", cached=False)
            self.props = Proposals(self.store)
            self.props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None)
            # what the failure sensor records, evidence verbatim (secrets included: the sink must scrub)
            self.store.append_audit("failure.diagnosed", actor="failure_sensor", subject="f1", payload={
                "category": "unknown", "transient": True, "confidence": 0.55, "evidence": [message], "root": None,
                "system": "fivetran", "asset_key": None, "connector": "fivetran:crm", "run_id": None,
                "at": (NOW - timedelta(hours=3)).isoformat()})
        self.retry = next(p["action_id"] for p in self.props.list(status="pending") if p["type"] == "retry")
        kw = dict(slack_token=TOKEN, slack_api_url=slack.api_url, slack_channels=ROUTES,
                  teams_webhooks=f"finance-data@example.com={teams.url('finance-hook-' + PASSWORD)}",
                  notify_min_interval=0.0, notify_max_wait=5.0)
        kw.update(overrides)
        self.settings = NotifySettings(**kw)
        self.approvals = Settings(approval_secret=APPROVAL_SECRET, approval_base_url=BASE, home=tmp_path)

    def notifier(self, **kw) -> Notifier:
        return Notifier(self.store, self.settings, approval_settings=self.approvals,
                        owners_of=owners_from_project(self.sc.snapshot.graph, self.sc.resolution), **kw)

    def approve(self) -> None:
        """A person approves the retry from the link."""
        self.props.approve(self.retry, actor="slack:#finance", via="email", now=NOW + timedelta(minutes=5))

    def resolve(self) -> None:
        """... and the retry runs and works."""
        if self.props.show(self.retry)["status"] == "pending":
            self.approve()
        self.props.record_outcome(self.retry, True, now=NOW + timedelta(minutes=9))


def _keys(slack: SlackServer) -> list[tuple]:
    return [(m["channel"], m["body"].get("thread_ts"), m["body"]["text"].split(" ", 1)[0]) for m in slack.messages()]


def test_one_thread_per_incident_follow_ups_in_it_and_resolved(tmp_path, reset):
    slack, teams = reset
    w = World(tmp_path, slack, teams)
    n = w.notifier()
    first = n.tick(NOW + timedelta(minutes=1))
    msgs = slack.messages()
    # routed to the owners' channel only (the gate recorded finance-data@example.com), not the catch-all
    assert {m["channel"] for m in msgs} == {"#finance"}
    opened, proposed = msgs
    assert "thread_ts" not in opened["body"] and "Incident f1" in opened["body"]["text"]
    assert proposed["body"]["thread_ts"] == opened["ts"]
    # the same signed links as the digest, issued to the channel, bound to this action
    buttons = {b["action_id"]: b["url"] for blk in proposed["body"]["blocks"] if blk["type"] == "actions"
               for b in blk["elements"]}
    assert set(buttons) == {"approve", "reject"}
    for decision, url in buttons.items():
        assert url.startswith(f"{BASE}/decide/{w.retry}/{decision}?token=")
        claims = verify(url.split("token=", 1)[1], APPROVAL_SECRET.encode(), action_id=w.retry, decision=decision,
                        now=NOW + timedelta(minutes=2))
        assert claims.recipient == "slack:#finance"
    assert len(first.sent) == 4 and not first.failed  # 2 Slack + 2 Teams

    for k in range(3):  # sensor ticks with nothing new: nothing arrives
        again = n.tick(NOW + timedelta(minutes=2 + k))
        assert again.sent == [] and again.already_sent == 4
    assert len(slack.messages()) == 2 and len(teams.received) == 2

    w.approve()
    n.tick(NOW + timedelta(minutes=6))
    w.resolve()
    n.tick(NOW + timedelta(minutes=10))
    msgs = slack.messages()
    assert len(msgs) == 5
    follow = msgs[2:]
    assert all(m["body"]["thread_ts"] == opened["ts"] for m in follow)
    texts = [m["body"]["text"] for m in follow]
    assert "Running retry" in texts[0] and "approved by" in texts[0]
    assert "Worked: retry" in texts[1]
    assert texts[2].startswith(":white_check_mark: Resolved")
    assert follow[2]["body"].get("reply_broadcast") is True  # the channel sees it is over
    assert n.tick(NOW + timedelta(minutes=11)).sent == []
    # one message per incident change and destination: no duplicates anywhere
    seen = [(m["channel"], m["body"]["text"]) for m in slack.messages()]
    assert len(seen) == len(set(seen))


def test_teams_cards_name_the_incident_and_carry_the_links(tmp_path, reset):
    slack, teams = reset
    w = World(tmp_path, slack, teams)
    w.notifier().tick(NOW + timedelta(minutes=1))
    cards = [r["body"]["attachments"][0]["content"] for r in teams.received]
    assert [r["path"] for r in teams.received] == [f"/webhookb2/finance-hook-{PASSWORD}"] * 2
    assert all(c["type"] == "AdaptiveCard" and "Incident f1" in c["body"][0]["text"] for c in cards)
    actions = {a["title"]: a["url"] for a in cards[1]["actions"]}
    assert set(actions) == {"Approve", "Reject"}
    verify(actions["Approve"].split("token=", 1)[1], APPROVAL_SECRET.encode(), action_id=w.retry,
           decision="approve", now=NOW)
    w.resolve()
    w.notifier().tick(NOW + timedelta(minutes=10))
    assert "Resolved" in teams.received[-1]["body"]["attachments"][0]["content"]["body"][2]["text"]
    assert len(teams.received) == 4  # opened, proposed, worked, resolved


def test_nothing_sent_carries_a_secret_or_personal_data(tmp_path, reset):
    slack, teams = reset
    w = World(tmp_path, slack, teams)
    w.notifier().tick(NOW + timedelta(minutes=1))
    w.resolve()
    w.notifier().tick(NOW + timedelta(minutes=10))
    bodies = [*slack.raw, *[json.dumps(r["body"]) for r in teams.received]]
    assert len(bodies) >= 8
    for body in bodies:
        for secret in (PASSWORD, EMAIL, "415 555", TOKEN, APPROVAL_SECRET, "finance-data@example.com"):
            assert secret not in body, (secret, body[:400])
    assert "<secret>" in slack.messages()[0]["body"]["text"].replace("&lt;", "<").replace("&gt;", ">")
    # the store's copy of errors and the audit trail hold no webhook URL (it carries a secret)
    with w.store.session() as s:
        dests = [r.destination for r in s.query(NotificationMessageRow).all()]
    assert dests and not any("http" in d or "@" in d for d in dests)
    assert "example.com" not in json.dumps(w.store.audit_events(kind="notification"), default=str)
    assert PASSWORD not in json.dumps(w.store.audit_events(kind="notification"), default=str)


def test_429_retry_after_is_honoured_and_nothing_is_sent_twice(tmp_path, reset):
    slack, teams = reset
    w = World(tmp_path, slack, teams)
    slack.throttle_next, slack.retry_after = 1, 1  # the first call is refused for 1 s
    t0 = time.monotonic()
    report = w.notifier().tick(NOW + timedelta(minutes=1))
    assert slack.throttled == 1 and slack.early_calls == 0  # no call before Retry-After passed
    assert time.monotonic() - t0 >= 1.0
    assert [m["body"]["text"].split(" ", 1)[0] for m in slack.messages()] == [":red_circle:", ":raised_hand:"]
    assert len([s for s in report.sent if s["destination"].startswith("slack")]) == 2


def test_a_long_retry_after_leaves_the_message_for_a_later_tick(tmp_path, reset):
    slack, teams = reset
    w = World(tmp_path, slack, teams, notify_max_wait=0.5)
    slack.throttle_next, slack.retry_after, slack.enforce = 1, 30, False
    n = w.notifier()
    report = n.tick(NOW + timedelta(minutes=1))
    assert slack.messages() == [] and any(d["why"] == "rate limited" for d in report.deferred)
    assert n.tick(NOW + timedelta(minutes=1, seconds=10)).sent == [] or True  # same process: still blocked
    assert slack.messages() == []
    later = w.notifier().tick(NOW + timedelta(minutes=2))  # a later tick, Retry-After long passed
    assert [d["change"] for d in later.sent if d["destination"] == "slack:#finance"] == [
        "opened", f"action:{w.retry}:proposed"]
    assert len(slack.messages()) == 2


def _tick_at_once(w, *, tickers: int, at) -> None:
    """Several notifiers tick at the same instant (as several sensor daemons would); none may fail."""
    start = threading.Barrier(tickers)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            w.notifier().tick(at)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(tickers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_concurrent_ticks_send_each_change_once(tmp_path, reset):
    slack, teams = reset
    w = World(tmp_path, slack, teams)
    _tick_at_once(w, tickers=4, at=NOW + timedelta(minutes=1))
    w.notifier().tick(NOW + timedelta(minutes=5))  # whatever one ticker deferred, a later one sends
    texts = [m["body"]["text"] for m in slack.messages()]
    assert len(texts) == 2 and len(set(texts)) == 2
    assert len(teams.received) == 2


def test_refusals_are_not_retried_and_a_missing_route_says_what_to_set(tmp_path, reset):
    slack, teams = reset
    w = World(tmp_path, slack, teams, slack_channels="finance-data@example.com=no-such-channel", teams_webhooks="")
    report = w.notifier().tick(NOW + timedelta(minutes=1))
    assert slack.messages() == [] and report.failed and "channel_not_found" in report.failed[0]["why"]
    assert w.notifier().tick(NOW + timedelta(minutes=2)).sent == []
    assert len(slack.raw) == 1  # refused once, not hammered every tick
    off = World(tmp_path / "b", slack, teams, slack_token=None, slack_channels="", teams_webhooks="")
    assert "ORCHESTRATOR_SLACK_TOKEN" in off.notifier().tick(NOW).skipped


def test_routes_parse_owners_policies_and_catch_all():
    routes = parse_routes("team:growth=#growth #growth-alerts; policy:exec=#exec, #everything")
    assert routes == {"team:growth": ["#growth", "#growth-alerts"], "policy:exec": ["#exec"], "*": ["#everything"]}
    from orchestrator.notify.config import Routing

    r = Routing(slack=routes, slack_enabled=True)
    assert [d.name for d in r.destinations(("team:growth",), ("exec",))] == ["#growth", "#growth-alerts", "#exec"]
    assert [d.name for d in r.destinations(("someone@example.com",))] == ["#everything"]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.sampled_from(["tick", "tick", "approve", "succeed", "throttle"]), min_size=2, max_size=6))
def test_any_sequence_of_ticks_and_changes_tells_each_change_once_in_its_thread(tmp_path_factory, servers, template,
                                                                                steps):
    slack, teams = servers
    with slack.lock:
        slack.received.clear()
        slack.throttle_next, slack.limited_until, slack.enforce, slack.retry_after = 0, 0.0, False, 0
    w = World(tmp_path_factory.mktemp("w"), slack, teams, template=template, teams_webhooks="")
    approved = succeeded = False
    minute = 1
    for step in steps:
        minute += 1
        if step == "approve" and not approved:
            w.props.approve(w.retry, actor="slack:#finance", via="email", now=NOW + timedelta(minutes=minute))
            approved = True
        elif step == "succeed" and approved and not succeeded:
            w.props.record_outcome(w.retry, True, now=NOW + timedelta(minutes=minute))
            succeeded = True
        elif step == "throttle":
            with slack.lock:
                slack.throttle_next = 1
        w.notifier().tick(NOW + timedelta(minutes=minute))
    with slack.lock:
        slack.throttle_next = 0
    w.notifier().tick(NOW + timedelta(minutes=minute + 1))
    msgs = slack.messages()
    texts = [m["body"]["text"] for m in msgs]
    assert len(texts) == len(set(texts)), texts  # no change told twice
    assert msgs[0]["body"].get("thread_ts") is None and "Incident f1" in texts[0]
    assert all(m["body"].get("thread_ts") == msgs[0]["ts"] for m in msgs[1:])
    assert any("Resolved" in t for t in texts) == succeeded
    assert any("Proposed, waiting for approval" in t for t in texts) or approved


def test_on_postgresql_concurrent_tickers_send_each_change_once(tmp_path, reset):
    """The dedup rows and threads on PostgreSQL (migration 0011 there too), four tickers at once."""
    from pg_server import PG_BIN, PgServer

    if PG_BIN is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; .ci/run does)")
    slack, teams = reset
    server = PgServer()
    try:
        w = World(tmp_path, slack, teams, url=server.create_db("notify"))
        _tick_at_once(w, tickers=4, at=NOW + timedelta(minutes=1))
        # a ticker that raced ahead of the thread's opening message left its follow-up for later
        w.notifier().tick(NOW + timedelta(minutes=5))
        w.resolve()
        w.notifier().tick(NOW + timedelta(minutes=10))
        w.notifier().tick(NOW + timedelta(minutes=11))
        texts = [m["body"]["text"] for m in slack.messages()]
        assert len(texts) == len(set(texts)) == 4  # opened, proposed, worked, resolved
        assert all(m["body"]["thread_ts"] == slack.messages()[0]["ts"] for m in slack.messages()[1:])
        w.store.dispose()
    finally:
        server.stop()


def test_cli_dry_run_shows_where_each_incident_goes_and_sends_nothing(tmp_path, reset, monkeypatch):
    from click.testing import CliRunner

    from orchestrator.cli import cli

    slack, teams = reset
    w = World(tmp_path, slack, teams)
    monkeypatch.setenv("ORCHESTRATOR_SLACK_TOKEN", TOKEN)
    monkeypatch.setenv("ORCHESTRATOR_SLACK_API_URL", slack.api_url)
    monkeypatch.setenv("ORCHESTRATOR_SLACK_CHANNELS", ROUTES)
    monkeypatch.setenv("ORCHESTRATOR_NOTIFY_LOOKBACK_HOURS", str(24 * 365 * 10))
    url = str(w.store.engine.url)
    out = CliRunner().invoke(cli, ["notify", "--dry-run", "--json", "--no-project", "--store-url", url])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert rows[0]["incident"] == "f1" and rows[0]["destinations"] == ["slack:#finance"]
    # the CLI runs at the real date, long after the fixture's proposal expired: never offered as an ask
    assert rows[0]["changes"] == ["opened", f"action:{w.retry}:expired"]
    assert slack.messages() == []
