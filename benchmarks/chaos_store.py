"""Chaos loop: the project store (a real PostgreSQL started here on a random port) is killed
over and over while planning ticks and two concurrent execution ticks run against the Fivetran
and Airbyte emulators. Prints duplicates, unsettled actions, audit gaps and breaker trips.

    .venv/bin/python benchmarks/chaos_store.py                     # 300 s, a kill every ~8 s
    .venv/bin/python benchmarks/chaos_store.py --duration 60 --kill-every 5 --json

Execution ticks act on: connector actions on the emulators' real connectors (Fivetran table
resyncs, Airbyte stream resets, pauses/resumes), run actions from planning cycles on a synthetic
fleet (the script plays Dagster's sensor daemon: a RunRequest becomes a run unless its run key
already has one, and the run succeeds), and automatic actions on a connector the API does not
know (404: they fail, and the circuit breaker must trip after exactly its threshold).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("ORCHESTRATOR_CALL_LEASE", "3")  # settle abandoned calls quickly here
os.environ.setdefault("ORCHESTRATOR_TICK_BUDGET", "20")
os.environ.setdefault("ORCHESTRATOR_APPROVED_TTL", "off")

import dagster as dg  # noqa: E402
import yaml  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

THRESHOLD = 3
warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument("--kill-every", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)

    from pg_server import PgServer

    from orchestrator.core.records import Action
    from orchestrator.emulators.server import start_emulators
    from orchestrator.planning import action_to_dict, subjects
    from orchestrator.planning.synthetic import fleet
    from orchestrator.proposals import CALL_LEASE, Proposals
    from orchestrator.resources.airbyte import AirbyteWorkspaceResource
    from orchestrator.resources.errors import api_deadline
    from orchestrator.resources.fivetran import FivetranWorkspaceResource
    from orchestrator.settings import get_settings
    from orchestrator.store import open_store
    from orchestrator.store.agent_models import ActionRow, ApprovalRow, BreakerTripRow, ExecutionRow, ProposalRow
    import sensors.execution as ex

    tmp = Path(tempfile.mkdtemp(prefix="chaos-"))
    pg = PgServer()
    url = pg.create_db("chaos")
    scenario = get_settings().scenario
    emu = start_emulators(scenario, tmp / "emu_state", tmp / "landing", time_scale=0.02, auto_sync=False)
    sc = yaml.safe_load(Path(scenario).read_text())
    ft = FivetranWorkspaceResource(account_id="sandbox", api_key=emu.fivetran_api_key,
                                   api_secret=emu.fivetran_api_secret, api_base_url=emu.fivetran_url,
                                   request_retry_delay=0.1, request_timeout=5).get_client()
    ab = AirbyteWorkspaceResource(rest_api_base_url=emu.airbyte_rest_url,
                                  configuration_api_base_url=emu.airbyte_config_url,
                                  workspace_id=sc["airbyte"]["workspace_id"], client_id=emu.airbyte_client_id,
                                  client_secret=emu.airbyte_client_secret, request_retry_delay=0.1,
                                  request_timeout=5).get_client()
    clients = {"fivetran": ft, "airbyte": ab}
    ft_conns = [(c["id"], c["schema"], next(iter(c["tables"]))) for c in sc["fivetran"]["connectors"]]
    ab_conns = [(c["id"], c["schema"], next(iter(c["streams"]))) for c in sc["airbyte"]["connections"]]

    # -- counting what reaches the connector APIs and what Dagster would launch ---------------
    calls: Counter = Counter()
    calls_lock = threading.Lock()
    real_call = ex.call_connector

    def counting_call(action, cl):
        with calls_lock:
            calls[action.action_id] += 1
        return real_call(action, cl)

    ex.call_connector = counting_call
    instance = dg.DagsterInstance.ephemeral()
    launched: dict[str, str] = {}
    reemitted: Counter = Counter()
    launch_lock = threading.Lock()

    def dagster_launches(reqs) -> None:
        from dagster._core.test_utils import create_run_for_test

        for rr in reqs:
            with launch_lock:
                if rr.run_key in launched:
                    reemitted[rr.run_key] += 1
                    continue
                run = create_run_for_test(instance, job_name="chaos_job",
                                          tags={**rr.tags, "dagster/run_key": rr.run_key},
                                          status=dg.DagsterRunStatus.SUCCESS)
                launched[rr.run_key] = run.run_id

    stats = Counter()
    stop = threading.Event()
    seq = {"n": 0}

    def props() -> Proposals:
        return Proposals(open_store(url, cached=False), breaker_threshold=THRESHOLD,
                         breaker_window=timedelta(days=1))

    def add_approved(p: Proposals, action: Action, now: datetime) -> None:
        with p.store.session() as s:
            p.store.lock(s)
            pid = f"p-chaos-{action.action_id}"
            s.add(ProposalRow(id=pid, created_at=now, planner="chaos", rationale="chaos"))
            s.flush()
            s.add(ActionRow(id=action.action_id, proposal_id=pid, type=action.type, source="planner",
                            status="approved", decision="execute", reason=action.reason,
                            subjects=subjects(action), payload=action_to_dict(action), created_at=now,
                            updated_at=now))
            s.add(ApprovalRow(action_id=action.action_id, decision="approve", actor="policy", via="policy", at=now))
            p.store.audit(s, "proposal", actor="planner", subject=f"proposal:{pid}", ts=now, payload={"actions": 1})
            p.store.audit(s, "gate.decision", actor="gate", subject=f"action:{action.action_id}", ts=now,
                          payload={"decision": "execute"})

    def planner() -> None:
        p = None
        while not stop.is_set():
            try:
                p = p or props()
                now = datetime.now(UTC)
                seq["n"] += 1
                n = seq["n"]
                f = fleet(150, seed=n, now=now)
                p.run_cycle(f.snapshot, f.assessment, f.resolution, f.durations, now=now, llm=None, use_memory=False)
                for row in p.list(status="pending", limit=3):  # an operator approves some of them
                    if row["type"] in ("materialize", "retry", "backfill"):
                        try:
                            p.approve(row["action_id"], actor="chaos@example.com", via="cli", now=now)
                        except ValueError:
                            pass
                kind = n % 4
                if kind == 0:
                    cid, schema, table = rng.choice(ft_conns)
                    a = Action(action_id=f"chaos-ft-{n}", type="resync_table", reason="chaos",
                               connector=f"fivetran:{cid}", tables={schema: (table,)})
                elif kind == 1:
                    cid, schema, stream = rng.choice(ab_conns)
                    a = Action(action_id=f"chaos-ab-{n}", type="resync_table", reason="chaos",
                               connector=f"airbyte:{cid}", tables={schema: (stream,)})
                elif kind == 2:
                    cid, _, _ = rng.choice(ft_conns)
                    a = Action(action_id=f"chaos-pz-{n}", type=rng.choice(["pause_connector", "resume_connector"]),
                               reason="chaos", connector=f"fivetran:{cid}")
                else:
                    a = Action(action_id=f"chaos-ghost-{n}", type="resync_table", reason="chaos",
                               connector="fivetran:ghost_connector", tables={"ghost": ("t",)})
                add_approved(p, a, now)
                stats["planning_ticks_ok"] += 1
            except Exception:  # noqa: BLE001 - store down: this tick failed
                stats["planning_ticks_failed"] += 1
                p = None
            stop.wait(1.5)

    def executor(name: str) -> None:
        p = None
        while not stop.is_set():
            try:
                p = p or props()
                with api_deadline(20):
                    reqs = ex.evaluate(dg.build_sensor_context(instance=instance), p, clients=lambda: clients,
                                       now=datetime.now(UTC), owner=name)
                dagster_launches(reqs)
                stats["execution_ticks_ok"] += 1
            except Exception:  # noqa: BLE001
                stats["execution_ticks_failed"] += 1
                p = None
            stop.wait(0.7)

    def killer() -> None:
        while not stop.is_set():
            stop.wait(args.kill_every * rng.uniform(0.6, 1.4))
            if stop.is_set():
                break
            pg.kill()
            time.sleep(rng.uniform(0.3, 1.5))
            pg.start()

    threads = [threading.Thread(target=planner), threading.Thread(target=executor, args=("exec-a",)),
               threading.Thread(target=executor, args=("exec-b",)), threading.Thread(target=killer)]
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        while time.monotonic() - started < args.duration:
            time.sleep(1)
            if not args.json and int(time.monotonic() - started) % 30 == 0:
                print(f"  t={time.monotonic() - started:5.0f}s kills={pg.kills} {dict(stats)}", flush=True)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    try:
        pg.start()
    except Exception:  # noqa: BLE001 - already up
        pass

    # -- recovery: two ticks after the store is back ----------------------------------------------
    p = props()
    for _ in range(2):
        time.sleep(CALL_LEASE.total_seconds() + 0.5)
        with api_deadline(20):
            dagster_launches(ex.evaluate(dg.build_sensor_context(instance=instance), p, clients=lambda: clients,
                                         now=datetime.now(UTC), owner="recovery"))
    # run actions whose runs were launched during recovery settle on the next look
    with api_deadline(20):
        ex.evaluate(dg.build_sensor_context(instance=instance), p, clients=lambda: clients,
                    now=datetime.now(UTC), owner="recovery")

    # -- figures --------------------------------------------------------------------------------------
    store = p.store
    with store.session() as s:
        rows = s.execute(select(ActionRow.id, ActionRow.status, ActionRow.type)).all()
        open_execs = s.scalar(select(func.count()).select_from(ExecutionRow)
                              .where(ExecutionRow.status.in_(("calling", "launched"))))
        per_key = s.execute(text("select idempotency_key, count(*) from executions where idempotency_key is not null "
                                 "group by idempotency_key having count(*) > 1")).all()
        trips = s.scalars(select(BreakerTripRow)).all()
        ghost_failures = s.scalar(text("select count(*) from breaker_events where subject = "
                                       "'connector:fivetran:ghost_connector' and not success"))
        proposals = set(s.scalars(select(ProposalRow.id)).all())
    events = store.audit_events(limit=10_000_000)
    by_subject: dict[str, Counter] = {}
    for e in events:
        by_subject.setdefault(e["subject"] or "", Counter())[e["kind"]] += 1
    executed = [r for r in rows if r.status in ("succeeded", "failed")]
    gaps = []
    for r in rows:
        k = by_subject.get(f"action:{r.id}", Counter())
        if r.status in ("succeeded", "failed"):
            if k["outcome"] != 1:
                gaps.append(f"{r.id}: {k['outcome']} outcome events")
            if k["execution"] < 1 and r.type not in ("materialize", "retry", "backfill", "defer"):
                gaps.append(f"{r.id}: no execution event")
        if r.status not in ("rejected",) and k["gate.decision"] < 1 and not r.id.startswith("brk-"):
            gaps.append(f"{r.id}: no gate.decision")
    for pid in proposals:
        if by_subject.get(f"proposal:{pid}", Counter())["proposal"] != 1:
            gaps.append(f"{pid}: proposal event count {by_subject.get(f'proposal:{pid}', Counter())['proposal']}")
    chain = store.verify_audit()
    dup_calls = {a: n for a, n in calls.items() if n > 1}
    unsettled = [r.id for r in rows if r.status == "executing"]
    ghost_trips = [t for t in trips if t.subject == "connector:fivetran:ghost_connector"]
    out = {
        "duration_s": round(time.monotonic() - started, 1),
        "store_kills": pg.kills,
        "planning_ticks": {"ok": stats["planning_ticks_ok"], "failed": stats["planning_ticks_failed"]},
        "execution_ticks": {"ok": stats["execution_ticks_ok"], "failed": stats["execution_ticks_failed"]},
        "actions": len(rows), "settled": len(executed),
        "connector_calls": sum(calls.values()), "duplicate_connector_calls": len(dup_calls),
        "runs_launched": len(launched), "run_keys_reemitted_after_launch": sum(reemitted.values()),
        "duplicate_execution_keys": len(per_key),
        "unsettled_after_2_recovery_ticks": len(unsettled), "open_executions": open_execs,
        "audit_events": len(events), "audit_gaps": len(gaps), "audit_chain_ok": chain["ok"],
        "breaker": {"threshold": THRESHOLD, "ghost_failures": ghost_failures, "trips": len(ghost_trips),
                    "tripped_after": [t.failures for t in ghost_trips]},
    }
    if not args.json:
        print(f"store killed {out['store_kills']} times in {out['duration_s']} s; "
              f"planning ticks ok/failed {stats['planning_ticks_ok']}/{stats['planning_ticks_failed']}, "
              f"execution ticks ok/failed {stats['execution_ticks_ok']}/{stats['execution_ticks_failed']}")
        print(f"actions {len(rows)}, settled {len(executed)}; connector calls {out['connector_calls']}, "
              f"runs launched {len(launched)}")
        print(f"duplicates: connector calls {len(dup_calls)}, execution keys {len(per_key)}, "
              f"run keys re-emitted after launch {out['run_keys_reemitted_after_launch']}")
        print(f"unsettled after 2 recovery ticks: {len(unsettled)} {unsettled[:5]}")
        print(f"audit gaps: {len(gaps)} {gaps[:5]}; chain {'intact' if chain['ok'] else chain['first_broken']}")
        print(f"breaker: {ghost_failures} failures on the ghost connector -> {len(ghost_trips)} trip(s) "
              f"after {[t.failures for t in ghost_trips]} (threshold {THRESHOLD})")
    print(json.dumps(out))
    emu.stop()
    store.dispose()
    pg.stop()


if __name__ == "__main__":
    main()
