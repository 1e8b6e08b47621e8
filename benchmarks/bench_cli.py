"""How long CLI commands take on the sample project (the embedded default), end to end.

    .venv/bin/python benchmarks/bench_cli.py [--runs 3] [--home DIR]

Starts the Fivetran/Airbyte emulators on free loopback ports, runs each command once to warm
(dbt manifest, connector state), then ``--runs`` times, and prints the median wall time of each
and CPU time (user + system: what the command costs on an idle machine; wall time on a shared box
is mostly waiting for a core) - ``orchestrator plan --dry-run`` target: <= 3 s - and how many
warning lines it printed. The warm-up run of ``plan --dry-run`` builds the graph cache
(``orchestrator.graph_cache``); the timed runs read it, as every run does until the dbt project,
the policies or the connector state change. ``--full`` is the old path, for comparison.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COMMANDS = [
    ["orchestrator", "--help"],
    ["orchestrator", "proposals", "list"],
    ["orchestrator", "plan", "--dry-run"],  # the plain graph cached per version of its inputs
    ["orchestrator", "plan", "--dry-run", "--full"],  # the whole code location loaded (reference)
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--home", default=None, help="ORCHESTRATOR_HOME (default: a fresh temporary directory)")
    args = ap.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="bench_cli_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIVETRAN_", "AIRBYTE_"))}
    env.update(ORCHESTRATOR_HOME=home, ORCHESTRATOR_FIVETRAN_PORT=str(free_port()),
               ORCHESTRATOR_AIRBYTE_PORT=str(free_port()))
    sandbox = subprocess.Popen([str(BIN / "orchestrator"), "sandbox"], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{env['ORCHESTRATOR_FIVETRAN_PORT']}/v1/groups", timeout=2)
                httpx.get(f"http://127.0.0.1:{env['ORCHESTRATOR_AIRBYTE_PORT']}/api/public/v1/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        print(f"ORCHESTRATOR_HOME={home}  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        for cmd in COMMANDS:
            argv = [str(BIN / cmd[0]), *cmd[1:]]
            t0 = time.perf_counter()
            warm = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
            first = time.perf_counter() - t0
            times, cpu, warnings = [], [], 0
            for _ in range(args.runs):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
                times.append(time.perf_counter() - t0)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
                warnings = sum("Warning" in line for line in out.stderr.splitlines())
            status = "ok" if out.returncode == 0 else f"exit {out.returncode}: {out.stderr.strip()[-300:]}"
            print(f"{' '.join(cmd):32} first {first:6.2f} s   median {statistics.median(times):6.2f} s wall "
                  f"(min {min(times):.2f})   CPU {statistics.median(cpu):5.2f} s   warning lines {warnings}   {status}")
            if warm.returncode != 0:
                print(f"    warm-up run failed: {warm.stderr.strip()[-300:]}")
    finally:
        os.killpg(sandbox.pid, 15)
        sandbox.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
