"""Install the library the way a team does and drive the example project with Dagster's `dg` CLI.

Too slow for the suite (a fresh virtualenv, a git clone, a build): run it by hand, it prints each
step's wall time and fails (exit 1) on the first step that does not hold.

1. a fresh virtualenv with the locked dependencies (`uv pip sync requirements.lock`, from uv's
   cache when it holds them);
2. `pip install --no-deps "sla-orchestrator @ git+file://<this checkout>@<HEAD>"`: pip clones the
   committed tree and builds the wheel (setuptools, the `orchestrator` package only);
3. outside the checkout, in that venv: `orchestrator` is imported from site-packages, no top-level
   `assets` / `sensors` is installed, `orchestrator.lib.sensors.failures` and the component import;
4. `dagster-dg-cli` (PyPI, the version of the pinned dagster) into the same venv, then in a copy of
   `tests/example_team` (its manifest from tests/data, its own Airbyte emulator):
   `dg list components` lists `orchestrator.components.SlaPoliciesComponent`, `dg check yaml`
   validates its `defs.yaml`, `dg check defs` loads the project, and `dg list defs --json` shows the
   team's assets with the policies compiled onto the governed dbt models and the SLA sensors.

    .venv/bin/python benchmarks/bench_install.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
DG_VERSION = "1.13.27"  # dagster-dg-cli of the pinned dagster (pyproject.toml)


def step(name: str, cmd: list[str], *, cwd: Path, env: dict, check=None, timeout=1200) -> str:
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    ok = out.returncode == 0 and (check is None or check(out.stdout))
    print(f"{'ok  ' if ok else 'FAIL'} {wall:7.1f} s  {name}", flush=True)
    if not ok:
        print(" ".join(cmd), "\n--- stdout\n", out.stdout[-4000:], "\n--- stderr\n", out.stderr[-4000:])
        sys.exit(1)
    return out.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="with --keep: reuse the venv installed there")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="sla-install-"))
    work.mkdir(parents=True, exist_ok=True)
    venv = work / "venv"
    py, uv = venv / "bin" / "python", Path(sys.executable).with_name("uv")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    # the machine's registry settings (certificates, pip/uv options, proxies), nothing else
    passed = {k: v for k, v in os.environ.items()
              if any(t in k.upper() for t in ("CERT", "SSL", "CA_BUNDLE", "PIP_", "UV_", "PROXY"))}
    base = {**passed, "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(work)),
            "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv")),
            "VIRTUAL_ENV": str(venv), "PYTHONDONTWRITEBYTECODE": "1"}
    total = time.perf_counter()
    reuse = args.reuse and (venv / "bin" / "dg").exists()
    if not reuse:
        install(py, uv, head, work, venv, base)
    run_dg(venv, work, base)
    print(f"total {time.perf_counter() - total:.1f} s in {work}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


def install(py: Path, uv: Path, head: str, work: Path, venv: Path, base: dict) -> None:
    if not py.exists():
        step("fresh venv", [str(uv), "venv", "--seed", "--python", sys.executable, str(venv)], cwd=work, env=base)
    step("locked dependencies (uv pip sync requirements.lock)",
         [str(uv), "pip", "sync", "--python", str(py), str(ROOT / "requirements.lock")], cwd=work, env=base)
    step("pip install --no-deps sla-orchestrator @ git+file://... (clone + wheel build)",
         [str(py), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall",
          f"sla-orchestrator @ git+file://{ROOT}@{head}"], cwd=work, env=base)
    probe = (
        "import importlib.util as u, orchestrator, orchestrator.lib.sensors.failures, orchestrator.lib.assets.airbyte\n"
        "from orchestrator.components import SlaPoliciesComponent\n"
        "print(orchestrator.__file__)\n"
        "print(u.find_spec('assets'), u.find_spec('sensors'))\n"
    )
    out = step("import from site-packages, no top-level assets/sensors", [str(py), "-P", "-c", probe], cwd=work, env=base,
               check=lambda o: "site-packages" in o.splitlines()[0] and o.splitlines()[1] == "None None")
    print(f"        {out.splitlines()[0]}")
    step(f"pip install dagster-dg-cli=={DG_VERSION}",
         [str(uv), "pip", "install", "--python", str(py), f"dagster-dg-cli=={DG_VERSION}"], cwd=work, env=base)



def run_dg(venv: Path, work: Path, base: dict) -> None:
    import example_team_support as support
    from orchestrator.emulators.server import start_emulators

    project = work / "example_team"
    shutil.rmtree(project, ignore_errors=True)
    support.copy_project(work)
    print(f"        manifest: {support.parse_dbt(project)}")
    home = work / "home"
    os.environ["ORCHESTRATOR_HOME"] = str(home)
    handle = start_emulators(project / "scenario.yaml", home / "emulators", home / "landing",
                             fivetran_port=0, airbyte_port=0, time_scale=0.05, auto_sync=False)
    try:
        env = {**base, **handle.env(), "ORCHESTRATOR_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
               "ORCHESTRATOR_STORE_URL": f"sqlite:///{home}/store.db"}
        (home / "dagster").mkdir(parents=True, exist_ok=True)
        dg = str(venv / "bin" / "dg")
        step("pip install --no-deps -e <the team's project> (as the team's venv holds it)",
             [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
              "-e", str(project)], cwd=project, env=env)
        step("dg list components (the entry point registers SlaPoliciesComponent)",
             [dg, "list", "components", "--json"], cwd=project, env=env,
             check=lambda o: "orchestrator.components.SlaPoliciesComponent" in o)
        step("dg check yaml (defs/sla/defs.yaml against the component's schema)",
             [dg, "check", "yaml"], cwd=project, env=env)
        step("dg check defs (the project loads: component, governed models, sensors)",
             [dg, "check", "defs"], cwd=project, env=env)
        out = step("dg list defs --json", [dg, "list", "defs", "--json"], cwd=project, env=env)
        (work / "dg_list_defs.json").write_text(out)
        listed = json.loads(out)
        text = json.dumps(listed)
        wanted = ["accounts", "invoices", "fct_weekly_revenue", "sla/policy", "weekly-revenue",
                  "sla_freshness_sensor", "failure_diagnosis_sensor", "orchestrator_planning", "orchestrator_execution"]
        missing = [w for w in wanted if f'"{w}' not in text and w not in text]
        print(f"        dg list defs: {len(text)} chars, sections {sorted(listed) if isinstance(listed, dict) else type(listed).__name__}; "
              f"found {len(wanted) - len(missing)}/{len(wanted)} of {wanted}")
        if missing:
            print(f"FAIL: dg list defs does not show {missing} (output in {work / 'dg_list_defs.json'})")
            sys.exit(1)
    finally:
        handle.stop()


if __name__ == "__main__":
    main()
