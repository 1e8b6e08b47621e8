"""Recovery out of the box: the real `dagster dev` on the embedded default, faults injected through
the emulators' control API, figures against issue 15's targets.

    .venv/bin/python benchmarks/bench_recovery.py [--rounds 1] [--backoff-scale X] [--keep]

What it does, like a new user after `python3 dev.py up`:

1. starts what `orchestrator dev` starts (emulators + `dagster dev`) on free ports with a fresh
   ORCHESTRATOR_HOME, and waits until the failure sensor has ticked (sensors run by default: no
   flag, no UI click);
2. **transient**: per round, a `sync_failure` (HTTP 502, retryable) is injected into every
   Fivetran connector but one and every Airbyte connection, and a sync of each is started through
   the vendor's API (not by Dagster, as a vendor schedule would). For each failure it measures,
   from the vendor's failure time: the stored diagnosis, the retry run created in Dagster (tag
   ``orchestrator/action_type=retry``), and the backoff the failure class prescribed (the retry
   action's ``not_before``). The figure against the target is ``launched - failed - backoff``.
   Each failure is waited for until its due time plus an allowance scaled to the sensor tick
   intervals observed on the webserver (a loaded machine stretches them; 120-600 s, printed);
   a retry not seen by then is a MISS, printed with where it stuck (store and Dagster state);
3. **auth**: an `expired_credentials` fault on the remaining Fivetran connector, a sync, then the
   time until the escalation is in the project store and in the digest built from it (the section
   of the connector's owners, not the catch-all);
4. **duplicates**: after a few more sensor ticks, per incident: extra `escalation` events, extra
   digest items, extra stored diagnoses and extra retry runs (target 0).

By default NO setting is changed: the failure class's prescribed backoff (600 s for a 502,
``source_unavailable``) is waited in full, counted apart and printed, and the figure against the
target is the latency beyond it (a round takes ~12 minutes). ``--backoff-scale 0.05``
(``ORCHESTRATOR_BACKOFF_SCALE``) shortens only the backoff (30 s) for a quicker look;
``--backoff-scale 0`` measures the same-evaluation path (no backoff: the failure sensor launches
the retry itself). The report says which was used.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
UTC = timezone.utc
MESSAGE = "Source API returned HTTP 502 Bad Gateway (upstream timeout); please try again later"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


class Dev:
    def __init__(self, home: Path, backoff_scale: float | None):
        self.home = home
        self.ui_port, self.ft_port, self.ab_port = free_port(), free_port(), free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "ORCHESTRATOR_", "FIVETRAN_",
                                                                         "AIRBYTE_", "OPENAI_"))},
            "ORCHESTRATOR_HOME": str(home), "ORCHESTRATOR_FIVETRAN_PORT": str(self.ft_port),
            "ORCHESTRATOR_AIRBYTE_PORT": str(self.ab_port),
            "ORCHESTRATOR_DIGEST_SCHEDULE": "off",  # the bench builds the digest itself
        }
        if backoff_scale is not None:  # default: the prescribed backoff, unchanged
            self.env["ORCHESTRATOR_BACKOFF_SCALE"] = str(backoff_scale)
        self.ui = f"http://127.0.0.1:{self.ui_port}"
        self.ft = f"http://127.0.0.1:{self.ft_port}"
        self.ab = f"http://127.0.0.1:{self.ab_port}"
        self.proc: subprocess.Popen | None = None
        self.log = open(home / "dev.log", "w")  # noqa: SIM115

    def start(self) -> None:
        """What `orchestrator dev` (`python3 dev.py up`) starts: the emulators, then `dagster dev` on
        the project workspace with the instance config it writes; started here directly so a slow
        code-location load (a busy machine) is waited for as long as it takes."""
        from orchestrator.devserver import prepare_dagster_home

        self.env["DAGSTER_HOME"] = str(prepare_dagster_home(self.home / "dagster_home"))
        self.sandbox = subprocess.Popen([str(BIN / "orchestrator"), "sandbox"], env=self.env, cwd=ROOT,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        for url in (f"{self.ft}/v1/groups", f"{self.ab}/api/public/v1/health"):
            end = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(url, timeout=2).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > end or self.sandbox.poll() is not None:
                    raise SystemExit(f"emulators did not start; see {self.home / 'dev.log'}")
                time.sleep(0.5)
        self.proc = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p",
             str(self.ui_port)], env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def stop(self) -> None:
        for proc in (self.proc, getattr(self, "sandbox", None)):
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, signal.SIGTERM)  # the process groups this script started, by their ids
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def gql(self, query: str, variables: dict | None = None) -> dict:
        r = httpx.post(f"{self.ui}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]


SENSORS_Q = """{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { __typename
  ... on RepositoryLocation { repositories { sensors { name sensorState { status ticks(limit: 1) { timestamp } } } } }
  ... on PythonError { message } } } } } }"""

TICKS_Q = """query($sel: SensorSelector!) { sensorOrError(sensorSelector: $sel) { ... on Sensor {
  sensorState { ticks(limit: 40) { timestamp endTimestamp status runIds error { message } } } } } }"""

RUNS_Q = """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}, limit: 50) { ... on Runs {
  results { runId status creationTime tags { key value } } } } }"""


def wait_ready(dev: Dev, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if dev.proc.poll() is not None:
            raise SystemExit(f"dagster dev exited ({dev.proc.returncode}); see {dev.home / 'dev.log'}")
        try:
            data = dev.gql(SENSORS_Q)
            sensors = {}
            for entry in data["workspaceOrError"]["locationEntries"]:
                loc = entry.get("locationOrLoadError") or {}
                if loc.get("__typename") == "PythonError":
                    raise SystemExit(f"code location failed to load: {loc.get('message', '')[:2000]}")
                for repo in loc.get("repositories") or []:
                    for s in repo["sensors"]:
                        sensors[s["name"]] = s["sensorState"]
            last = sensors
            fs = sensors.get("failure_diagnosis_sensor")
            if fs and fs["status"] == "RUNNING" and fs["ticks"]:
                return sensors
        except (httpx.HTTPError, RuntimeError, KeyError, TypeError):
            pass
        time.sleep(2)
    raise SystemExit(f"the failure sensor never ticked within {timeout:.0f} s (sensors: {last})")


def aware(t: datetime | None) -> datetime | None:
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)


def store_events(kind: str) -> list[dict]:
    from orchestrator.store import open_store

    events = open_store().audit_events(kind=kind, limit=100000)
    for e in events:
        e["ts"] = aware(e["ts"])
    return events


def retry_actions() -> dict[str, dict]:
    """failure id -> {action_id, not_before} of the retry actions in the store."""
    from sqlalchemy import select

    from orchestrator.store import open_store
    from orchestrator.store.agent_models import ActionRow

    out = {}
    with open_store().session() as s:
        for row in s.scalars(select(ActionRow).where(ActionRow.type == "retry")).all():
            for f in row.failures or []:
                nb = row.not_before
                out.setdefault(f["failure_id"], []).append(
                    {"action_id": row.id, "status": row.status,
                     "not_before": (nb if nb is None or nb.tzinfo else nb.replace(tzinfo=UTC))})
    return out


def sensor_ticks(dev: Dev, name: str) -> list[dict]:
    """The sensor's latest ticks (oldest first), read through the webserver like the UI does."""
    try:
        loc = dev.gql("""{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
          ... on RepositoryLocation { repositories { name } } } } } } }""")
        for entry in loc["workspaceOrError"]["locationEntries"]:
            for repo in (entry.get("locationOrLoadError") or {}).get("repositories") or []:
                data = dev.gql(TICKS_Q, {"sel": {"repositoryLocationName": entry["name"],
                                                 "repositoryName": repo["name"], "sensorName": name}})
                state = (data.get("sensorOrError") or {}).get("sensorState")
                if state:
                    return sorted(state["ticks"], key=lambda t: t["timestamp"])
    except (httpx.HTTPError, RuntimeError, KeyError, TypeError):
        pass
    return []


def tick_interval_s(ticks: list[dict], default: float = 15.0) -> float:
    """The observed time between tick starts (median): what a wait should scale with under load."""
    gaps = [b["timestamp"] - a["timestamp"] for a, b in zip(ticks, ticks[1:])]
    return statistics.median(gaps) if gaps else default


def allowance_s(dev: Dev) -> tuple[float, dict]:
    """How long a failure may wait beyond its due time before it counts as a miss: the time of a
    few ticks of the failure and execution sensors as they are observed now (a loaded machine
    stretches them), bounded to [120, 600] s."""
    ex, fs = sensor_ticks(dev, "orchestrator_execution"), sensor_ticks(dev, "failure_diagnosis_sensor")
    longest = max([(t["endTimestamp"] or t["timestamp"]) - t["timestamp"] for t in ex + fs] or [0.0])
    stats = {"execution_tick_interval_s": round(tick_interval_s(ex), 1),
             "failure_tick_interval_s": round(tick_interval_s(fs), 1), "longest_tick_s": round(longest, 1)}
    wait = 4 * stats["execution_tick_interval_s"] + 2 * stats["failure_tick_interval_s"] + 2 * longest + 60
    return min(600.0, max(120.0, wait)), stats


def miss_state(conn: str, v: dict) -> str:
    """Where a retry that was not seen got stuck (the store's view), for the report."""
    if "failure_id" not in v:
        return "no diagnosis stored for a failure after the injection"
    if "action_id" not in v:
        return f"diagnosed {v.get('category')} ({v['failure_id']}) but no retry action in the store"
    from sqlalchemy import select

    from orchestrator.store import open_store
    from orchestrator.store.agent_models import ActionRow, ExecutionRow

    with open_store().session() as s:
        row = s.get(ActionRow, v["action_id"])
        exs = s.scalars(select(ExecutionRow).where(ExecutionRow.action_id == v["action_id"])).all()
        ex = "; ".join(f"{e.kind} {e.status} owner={e.owner} started={e.started_at:%H:%M:%S}"
                       + (f" lease_until={e.lease_until:%H:%M:%S}" if e.lease_until else "")
                       for e in exs) or "no execution written"
        return (f"retry {v['action_id']} status={row.status if row else '?'} decision={row.decision if row else '?'} "
                f"not_before={v.get('not_before')}: {ex}; no run with its tag in Dagster")


def inject(base: str, fault: dict) -> None:
    r = httpx.post(f"{base}/_emulator/faults", json=fault, timeout=10)
    if r.status_code >= 300:
        raise SystemExit(f"fault refused: {r.status_code} {r.text}")


def start_sync(dev: Dev, system: str, cid: str) -> None:
    if system == "fivetran":
        r = httpx.post(f"{dev.ft}/v1/connectors/{cid}/force", auth=("sandbox-api-key", "sandbox-api-secret"),
                       json={}, timeout=10)
    else:
        r = httpx.post(f"{dev.ab}/api/public/v1/jobs", auth=("sandbox-client-id", "sandbox-client-secret"),
                       json={"connectionId": cid, "jobType": "sync"}, timeout=10)
    if r.status_code >= 300:
        raise SystemExit(f"could not start a {system} sync of {cid}: {r.status_code} {r.text[:300]}")


def targets(dev: Dev) -> tuple[list[tuple[str, str]], str]:
    ft = httpx.get(f"{dev.ft}/_emulator/state", timeout=10).json()
    ab = httpx.get(f"{dev.ab}/_emulator/state", timeout=10).json()
    ft_ids = sorted((ft.get("connectors") or {}).keys()) if isinstance(ft.get("connectors"), dict) else sorted(
        c["id"] for c in ft.get("connectors") or [])
    ab_ids = sorted((ab.get("connections") or {}).keys()) if isinstance(ab.get("connections"), dict) else sorted(
        c.get("connectionId") or c.get("id") for c in ab.get("connections") or [])
    auth = "dapper_ledger" if "dapper_ledger" in ft_ids else ft_ids[-1]
    return [("fivetran", c) for c in ft_ids if c != auth] + [("airbyte", c) for c in ab_ids], auth


def diagnosed_after(connector: str, t0: datetime) -> dict | None:
    best = None
    for e in store_events("failure.diagnosed"):
        p = e["payload"] or {}
        if p.get("connector") != connector or p.get("root"):
            continue
        at = aware(datetime.fromisoformat(p["at"]))
        if at >= t0 and (best is None or at < best["at"]):
            best = {"failure_id": e["subject"], "at": at, "ts": e["ts"], "category": p.get("category")}
    return best


def transient_round(dev: Dev, tgts: list[tuple[str, str]], timeout: float) -> list[dict]:
    t0 = datetime.now(UTC).replace(microsecond=0)
    for system, cid in tgts:
        inject(dev.ft if system == "fivetran" else dev.ab,
               {"kind": "sync_failure", "target": cid, "next_syncs": 1, "attempts": 1, "code": "transient_error",
                "failure_origin": "source", "retryable": True, "message": MESSAGE})
        start_sync(dev, system, cid)
    pending = {f"{s}:{c}": {"connector": f"{s}:{c}"} for s, c in tgts}
    # each failure is waited for on its own: until its due time (the failure, or the retry's
    # not_before) plus an allowance scaled to the sensor tick intervals observed now; ``timeout``
    # (from the injection) is only the ceiling of the whole round
    hard = time.monotonic() + timeout
    allowance, ticks = allowance_s(dev)
    t_inject = time.monotonic()
    checked = time.monotonic()

    def overdue(v: dict) -> bool:
        due = v.get("not_before") or v.get("failed")
        if due is None:  # not diagnosed yet: the allowance counts from the injection
            return time.monotonic() - t_inject > allowance
        return (datetime.now(UTC) - due).total_seconds() > allowance

    while time.monotonic() < hard and any("launched" not in v and not overdue(v) for v in pending.values()):
        if time.monotonic() - checked > 60:  # the ticks slow down or speed up with the load
            allowance, ticks = allowance_s(dev)
            checked = time.monotonic()
        actions = retry_actions()
        for conn, v in pending.items():
            if "failure_id" not in v:
                d = diagnosed_after(conn, t0)
                if d:
                    v.update(failure_id=d["failure_id"], failed=d["at"], diagnosed=d["ts"], category=d["category"])
            if "failure_id" in v and "action_id" not in v and actions.get(v["failure_id"]):
                a = actions[v["failure_id"]][0]
                v.update(action_id=a["action_id"], not_before=a["not_before"], n_actions=len(actions[v["failure_id"]]))
            if "action_id" in v and "launched" not in v:
                runs = dev.gql(RUNS_Q, {"tags": [{"key": "orchestrator/action_id", "value": v["action_id"]}]})
                res = runs["runsOrError"]["results"]
                if res:
                    v["launched"] = datetime.fromtimestamp(min(r["creationTime"] for r in res), UTC)
                    v["run_ids"] = [r["runId"] for r in res]
        time.sleep(0.5)
    for conn, v in pending.items():
        v["allowance_s"] = round(allowance, 1)
        v["ticks"] = ticks
        if "launched" not in v:
            v["miss"] = miss_state(conn, v)
    # let the retries finish (a success resets the attempt count before the next round)
    wait_runs = [rid for v in pending.values() for rid in v.get("run_ids", [])]
    end = time.monotonic() + 180
    while wait_runs and time.monotonic() < end:
        statuses = []
        for v in pending.values():
            if v.get("action_id"):
                res = dev.gql(RUNS_Q, {"tags": [{"key": "orchestrator/action_id", "value": v["action_id"]}]})
                statuses += [r["status"] for r in res["runsOrError"]["results"]]
                v["run_status"] = [r["status"] for r in res["runsOrError"]["results"]]
        if statuses and all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses):
            break
        time.sleep(2)
    return list(pending.values())


def auth_incident(dev: Dev, cid: str, timeout: float) -> dict:
    from orchestrator.core.graph import AssetGraph
    from orchestrator.core.records import Snapshot
    from orchestrator.digest.content import CATCH_ALL, build_digest
    from orchestrator.store import open_store

    t0 = datetime.now(UTC).replace(microsecond=0)
    inject(dev.ft, {"kind": "expired_credentials", "target": cid, "next_syncs": 1})
    start_sync(dev, "fivetran", cid)
    out: dict = {"connector": f"fivetran:{cid}"}
    subject = f"connector:fivetran:{cid}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "failed" not in out:
            d = diagnosed_after(f"fivetran:{cid}", t0)
            if d:
                out.update(failed=d["at"], category=d["category"], failure_id=d["failure_id"])
        esc = [e for e in store_events("escalation") if e["subject"] == subject and "failure_id" in out
               and (e["payload"] or {}).get("failure_id") == out["failure_id"]]
        if esc and "failed" in out:
            # when it became visible in the store (the event's own ts is its cycle's start)
            out["escalated"] = datetime.now(UTC)
            out["escalation_ts"] = min(e["ts"] for e in esc)
            out["owners"] = esc[0]["payload"].get("owners") or []
            now = datetime.now(UTC)
            digest = build_digest(open_store(), Snapshot(taken_at=now, graph=AssetGraph([])), None, None, now=now,
                                  since=t0)
            out["digest_sections"] = [s.owner for s in digest.owners if any(e.subject == subject for e in s.escalations)]
            out["digest_at"] = now
            out["catch_all"] = CATCH_ALL in out["digest_sections"]
            break
        time.sleep(0.5)
    return out


def duplicates(dev: Dev, samples: list[dict], auth: dict) -> dict:
    from orchestrator.core.graph import AssetGraph
    from orchestrator.core.records import Snapshot
    from orchestrator.digest.content import build_digest
    from orchestrator.store import open_store

    esc: dict = {}
    for e in store_events("escalation"):
        if e["actor"] == "planner":
            k = (e["subject"], (e["payload"] or {}).get("failure_id"))
            esc[k] = esc.get(k, 0) + 1
    diag: dict = {}
    for e in store_events("failure.diagnosed"):
        diag[e["subject"]] = diag.get(e["subject"], 0) + 1
    now = datetime.now(UTC)
    digest = build_digest(open_store(), Snapshot(taken_at=now, graph=AssetGraph([])), None, None, now=now,
                          since=now.replace(hour=0, minute=0, second=0))
    items: dict = {}
    for s in digest.owners:
        for e in s.escalations:
            k = (s.owner, e.subject, e.failure_id)
            items[k] = items.get(k, 0) + 1
    retry_runs = {}
    for v in samples:
        if v.get("action_id"):
            res = dev.gql(RUNS_Q, {"tags": [{"key": "orchestrator/action_id", "value": v["action_id"]}]})
            retry_runs[v["failure_id"]] = len(res["runsOrError"]["results"]) + (v.get("n_actions", 1) - 1)
    return {
        "escalation_events": sum(n - 1 for n in esc.values()),
        "digest_items": sum(n - 1 for n in items.values()),
        "diagnoses": sum(n - 1 for n in diag.values()),
        "retry_runs": sum(max(0, n - 1) for n in retry_runs.values()),
        "incidents": len(esc) + len(retry_runs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=1, help="transient rounds (one failure per connector each)")
    ap.add_argument("--backoff-scale", type=float, default=None,
                    help="ORCHESTRATOR_BACKOFF_SCALE (default: not set, the prescribed backoff)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="ceiling of each round, from the injection (default 900 + the prescribed 600 s backoff "
                         "x scale); each failure is waited for until its due time plus an allowance scaled to "
                         "the observed sensor tick intervals (120-600 s)")
    ap.add_argument("--settle", type=float, default=45, help="seconds of extra sensor ticks before counting duplicates")
    ap.add_argument("--keep", action="store_true", help="keep the temporary ORCHESTRATOR_HOME")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.timeout is None:
        args.timeout = 900 + 600 * (1.0 if args.backoff_scale is None else args.backoff_scale)

    home = Path(tempfile.mkdtemp(prefix="bench_recovery_"))
    dev = Dev(home, args.backoff_scale)
    os.environ.update({k: v for k, v in dev.env.items() if k.startswith("ORCHESTRATOR_")})
    os.environ.pop("ORCHESTRATOR_STORE_URL", None)
    t_start = time.monotonic()
    dev.start()
    try:
        sensors = wait_ready(dev)
        ready_s = time.monotonic() - t_start
        running = sorted(n for n, s in sensors.items() if s["status"] == "RUNNING")
        tgts, auth_cid = targets(dev)
        samples: list[dict] = []
        for _ in range(args.rounds):
            samples += transient_round(dev, tgts, args.timeout)
        auth = auth_incident(dev, auth_cid, 120)
        time.sleep(args.settle)
        dups = duplicates(dev, [s for s in samples if s.get("failure_id")], auth)
        httpx.post(f"{dev.ft}/_emulator/repair/{auth_cid}", timeout=10)
    finally:
        dev.stop()

    (home / "samples.json").write_text(json.dumps({"samples": samples, "auth": auth, "dups": dups}, default=str,
                                                  indent=2))
    ok = [s for s in samples if "launched" in s]
    raw = [(s["launched"] - s["failed"]).total_seconds() for s in ok]
    backoff = [max(0.0, ((s["not_before"] or s["failed"]) - s["failed"]).total_seconds()) for s in ok]
    beyond = [(s["launched"] - max(s["failed"], s["not_before"] or s["failed"])).total_seconds() for s in ok]
    detect = [(s["diagnosed"] - s["failed"]).total_seconds() for s in samples if "diagnosed" in s]
    esc_s = (auth["escalated"] - auth["failed"]).total_seconds() if "escalated" in auth else None
    report = {
        "startup_s": round(ready_s, 1), "sensors_running_by_default": running,
        "backoff_scale": args.backoff_scale, "settings_changed": [] if args.backoff_scale is None else [
            f"ORCHESTRATOR_BACKOFF_SCALE={args.backoff_scale}"],
        "transient": {
            "failures": len(samples), "retries_launched": len(ok),
            "categories": sorted({s.get("category") or "?" for s in samples}),
            "detect_p50_s": round(pct(detect, 0.5), 1), "detect_p95_s": round(pct(detect, 0.95), 1),
            "prescribed_backoff_s": sorted({round(b, 1) for b in backoff}),
            "launch_after_backoff_p50_s": round(pct(beyond, 0.5), 1),
            "launch_after_backoff_p95_s": round(pct(beyond, 0.95), 1),
            "failure_to_launch_p50_s": round(pct(raw, 0.5), 1), "failure_to_launch_p95_s": round(pct(raw, 0.95), 1),
            "retry_runs": {s["connector"]: s.get("run_status") for s in ok},
            "allowance_s": sorted({s.get("allowance_s") for s in samples if s.get("allowance_s")}),
            "ticks": samples[-1].get("ticks") if samples else {},
            "misses": [{"connector": s["connector"], "where": s["miss"]} for s in samples if "miss" in s],
        },
        "auth": {"category": auth.get("category"), "failure_to_escalation_s": esc_s,
                 "owners": auth.get("owners"), "digest_sections": auth.get("digest_sections"),
                 "catch_all": auth.get("catch_all")},
        "duplicates_per_incident": dups,
    }
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        t = report["transient"]
        print(f"dagster dev ready (failure sensor ticked) after {report['startup_s']} s; running by default: "
              f"{', '.join(running)}")
        print(f"transient failures: {t['failures']} ({', '.join(t['categories'])}), retries launched: "
              f"{t['retries_launched']}")
        print(f"  waited per failure up to its due time + {t['allowance_s']} s (sensor ticks observed: {t['ticks']})")
        for m in t["misses"]:
            print(f"  MISS {m['connector']}: {m['where']}")
        print(f"  detected + diagnosed after the failure: p50 {t['detect_p50_s']} s, p95 {t['detect_p95_s']} s")
        scale = "no setting changed" if args.backoff_scale is None else f"x{args.backoff_scale}"
        print(f"  prescribed backoff ({scale}): {t['prescribed_backoff_s']} s  (counted apart)")
        print(f"  retry launched after the backoff: p50 {t['launch_after_backoff_p50_s']} s (target <= 30), "
              f"p95 {t['launch_after_backoff_p95_s']} s (target <= 60)")
        print(f"  failure -> retry launched incl. backoff: p50 {t['failure_to_launch_p50_s']} s, "
              f"p95 {t['failure_to_launch_p95_s']} s")
        a = report["auth"]
        print(f"auth failure ({a['category']}) -> escalation in the store: {a['failure_to_escalation_s']} s "
              f"(target <= 60); owners {a['owners']}; digest sections {a['digest_sections']}"
              f"{' (catch-all!)' if a['catch_all'] else ''}")
        d = report["duplicates_per_incident"]
        print(f"duplicates over {d['incidents']} incidents (target 0): escalation events {d['escalation_events']}, "
              f"digest items {d['digest_items']}, diagnoses {d['diagnoses']}, retry runs {d['retry_runs']}")
    if args.keep:
        print(f"kept {home}")
    else:
        import shutil

        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
