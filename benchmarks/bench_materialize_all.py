""""Materialize all" on the global asset lineage of the real `dagster dev`, on the embedded default.

    .venv/bin/python benchmarks/bench_materialize_all.py [--keep]

Starts what `orchestrator dev` starts (emulators + `dagster dev`, free ports, a fresh
ORCHESTRATOR_HOME, no setting changed), waits until the code location is loaded, then clicks
"Materialize all" on the global lineage the way the UI does (tests/ui_materialize.py: the UI's
GraphQL requests in its order) and follows the run the click launched until it ends. Prints: what
the click opened (``launched`` is one click), the time from click to run created, the assets in
the run (and the external ones left out: the daily-partitioned model, the digest), and the run's
status and duration (the daemon dequeues and executes it like any run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from bench_recovery import Dev, wait_ready  # noqa: E402 - the same `dagster dev` start-up
from ui_materialize import click_materialize_all  # noqa: E402

RUN_Q = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime
  stepStats { stepKey status } } } }"""


def gql(dev: Dev, query: str, variables: dict) -> dict:
    """The UI's requests have no client timeout: the launch (one "planned" event per asset and
    check in the instance's SQLite event log) is waited for however long it takes."""
    r = httpx.post(f"{dev.ui}/graphql", json={"query": query, "variables": variables}, timeout=900)
    r.raise_for_status()
    body = r.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the ORCHESTRATOR_HOME for a look")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the run")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench_materialize_all_"))
    dev = Dev(home, backoff_scale=None)
    started = time.monotonic()
    try:
        dev.start()
        wait_ready(dev)
        print(f"dagster dev ready in {time.monotonic() - started:.0f} s (home {home})")
        click_at = time.monotonic()
        click = click_materialize_all(lambda q, **v: gql(dev, q, v))
        clicked_s = time.monotonic() - click_at
        print(f"click: {click['outcome']} in {clicked_s:.1f} s", {k: v for k, v in click.items()
                                                                  if k in ("job", "detail")})
        if click["outcome"] != "launched":
            raise SystemExit(1)
        external = sorted(k.to_user_string() for k in click["external"])
        print(f"run {click['run_id']}: {len(click['assets'])} assets; external (not selected): {external}")
        deadline = time.monotonic() + args.timeout
        while True:
            run = dev.gql(RUN_Q, {"id": click["run_id"]})["runOrError"]
            if run.get("status") in ("SUCCESS", "FAILURE", "CANCELED") or time.monotonic() > deadline:
                break
            time.sleep(5)
        failed = [s["stepKey"] for s in run.get("stepStats") or [] if s["status"] == "FAILURE"]
        took = (run["endTime"] - run["startTime"]) if run.get("endTime") and run.get("startTime") else None
        print(f"run status: {run.get('status')}; run time {took:.0f} s" if took else f"run status: {run.get('status')}",
              f"; failed steps: {failed}" if failed else "")
        print(f"click to run end: {time.monotonic() - click_at:.0f} s")
    finally:
        dev.stop()
        if args.keep:
            print(f"kept {home}")


if __name__ == "__main__":
    main()
