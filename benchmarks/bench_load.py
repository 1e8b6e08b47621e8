"""Load benchmark: this project's code location vs plain dagster-dbt on the real dbt manifests.

For each manifest in ../shared/data/dbt_manifests, two fresh processes (imports done before the
clock starts, so only the build is timed):

* plain: ``@dbt_assets(manifest, project)`` with dagster-dbt's default translator, in a
  ``Definitions`` with a ``DbtCliResource``, asset graph resolved;
* ours: ``orchestrator.definitions.build_definitions()`` with ``ORCHESTRATOR_DBT_PROJECT_DIR``
  pointing at the manifest, SLA policies generated for its graph (one per exposure or dbt folder,
  each a distinct cron; every model governed), the connector workspaces from the local emulators,
  asset graph resolved.

Each repeat runs the two processes of a manifest back to back, alternating which goes first (A B,
B A, ...), so load on the shared machine hits both sides of a pair alike. Prints the median times,
the ratio of each pair and their median (target <= 1.3x) for the build's CPU time (the figure to
quote: wall time is noise on a shared box), the whole process's CPU time (imports included, from
the kernel's accounting) beside it, and the growth exponent of our build between the two
manifests' sizes (log(t2/t1) / log(n2/n1), n = assets).

    .venv/bin/python benchmarks/bench_load.py [--repeat 3] [--only NAME] [--manifests DIR] [--json]

With ``BENCH_LOAD_PROFILE=DIR`` both builds run under cProfile (CPU timer) and their stats are
written to ``DIR/{ours,plain}_<manifest>.prof``.
"""

import argparse
import gzip
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

ZONES = ["America/New_York", "Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles"]


def policies_for(manifest: dict) -> str:
    """One policy per exposure (teamster) or per dbt folder (mitodl), each its own cron, plus
    every model governed by a weekday deadline: the shape of a real team's policy files."""
    lines = ["policies:"]
    exposures = sorted(e["name"] for e in manifest.get("exposures", {}).values())
    if exposures:
        targets = [("exposure", name) for name in exposures]
    else:
        folders = sorted({n["fqn"][1] for n in manifest["nodes"].values()
                          if n["resource_type"] == "model" and len(n["fqn"]) > 2})
        targets = [("group", f"dbt_{f}") for f in folders]
    for i, (kind, value) in enumerate(targets):
        lines += [f"  - name: p{i}", f"    select: [{{{kind}: {value}}}]",
                  f"    deadline: {{cron: '{(i * 7) % 60} {5 + i % 5} * * *', timezone: {ZONES[i % 4]}}}",
                  f"    tier: {['critical', 'high', 'standard', 'low'][i % 4]}"]
    lines += ["  - name: all-models", "    select: [{role: dbt_model}]",
              "    deadline: {cron: '0 9 * * 1-5', timezone: America/New_York}", "    max_lag: 30h"]
    return "\n".join(lines) + "\n"


# -- one measurement, in its own process ------------------------------------------------------------

def _profiler():
    """cProfile of our build when BENCH_LOAD_PROFILE names a directory (times then include its overhead)."""
    if not os.environ.get("BENCH_LOAD_PROFILE"):
        return None
    import cProfile

    prof = cProfile.Profile(time.process_time)
    prof.enable()
    return prof


def _one(variant: str, project: Path) -> dict:
    import dagster as dg
    import dagster_dbt  # noqa: F401
    import dbt.graph.cli  # noqa: F401  (dagster-dbt's selection imports it on first use)
    from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

    if variant == "ours":
        import orchestrator.definitions as od
        from orchestrator.resources import dbt_project
        from orchestrator.settings import get_settings

        get_settings.cache_clear()
        dbt_project.cache_clear()
        prof = _profiler()
        c0, t0 = time.process_time(), time.perf_counter()
        defs = od.build_definitions()
        graph = defs.resolve_asset_graph()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if prof is not None:
            prof.disable()
            prof.dump_stats(os.path.join(os.environ["BENCH_LOAD_PROFILE"], f"ours_{project.name}.prof"))
    else:
        prof = _profiler()
        c0, t0 = time.process_time(), time.perf_counter()
        dbt_proj = DbtProject(project_dir=project, profiles_dir=project)

        @dbt_assets(manifest=dbt_proj.manifest_path, project=dbt_proj,
                    dagster_dbt_translator=DagsterDbtTranslator())
        def plain(context: dg.AssetExecutionContext, dbt: DbtCliResource):
            yield from dbt.cli(["build"], context=context).stream()

        defs = dg.Definitions(assets=[plain], resources={"dbt": DbtCliResource(
            project_dir=dbt_proj, dbt_executable=str(Path(sys.executable).with_name("dbt")))})
        graph = defs.resolve_asset_graph()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if prof is not None:
            prof.disable()
            prof.dump_stats(os.path.join(os.environ["BENCH_LOAD_PROFILE"], f"plain_{project.name}.prof"))
    n = len(list(graph.get_all_asset_keys()))
    out = {"variant": variant, "wall_s": wall, "cpu_s": cpu, "assets": n}
    if variant == "ours":
        out["policies"] = defs.metadata["sla_policies/status"].text
        out["governed"] = int(defs.metadata.get("sla_policies/governed_assets").text
                              if "sla_policies/governed_assets" in defs.metadata else 0)
    return out


def _run_child(variant: str, project: Path, env: dict) -> dict:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, __file__, "--one", variant, "--project", str(project)],
        env=env, capture_output=True, text=True, check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} on {project.name} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the whole process (imports, build, exit) as the kernel accounted it
    out["process_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out


def _median(values) -> float:
    return statistics.median(values) if values else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", choices=["plain", "ours"], help=argparse.SUPPRESS)
    ap.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--manifests", type=Path, default=ROOT.parent / "shared/data/dbt_manifests")
    ap.add_argument("--repeat", type=int, default=1,
                    help="pairs of fresh processes per manifest (plain and ours, order alternating)")
    ap.add_argument("--only", choices=["mitodl_ol_dbt", "teamster_kipptaf"], action="append",
                    help="measure only this manifest (repeatable; default both)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.one, args.project)))
        return 0

    from dbt_manifest_fixtures import make_dbt_project

    from orchestrator.emulators.server import start_emulators
    from orchestrator.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="bench_load_"))
    home = tmp / "home"
    settings = Settings(home=home)
    emulators = start_emulators(settings.scenario, settings.emulator_state_dir, settings.landing_dir,
                                time_scale=0.05, auto_sync=False)
    names = args.only or ["mitodl_ol_dbt", "teamster_kipptaf"]
    prepared: dict[str, tuple[Path, dict]] = {}
    rows = []
    try:
        for name in names:
            path = args.manifests / f"{name}.manifest.json.gz"
            if not path.exists():
                print(f"{name}: manifest not found at {path}")
                continue
            project = make_dbt_project(name, tmp)
            with gzip.open(path) as fh:
                manifest = json.load(fh)
            policies = tmp / f"policies_{name}"
            policies.mkdir(exist_ok=True)
            (policies / "bench.yaml").write_text(policies_for(manifest))
            del manifest
            prepared[name] = (project, {**os.environ, **emulators.env(), "ORCHESTRATOR_HOME": str(home),
                                        "ORCHESTRATOR_DBT_PROJECT_DIR": str(project),
                                        "ORCHESTRATOR_POLICIES_DIR": str(policies)})
        runs = {name: {"plain": [], "ours": []} for name in prepared}
        # Repeats outermost and both sides of a manifest back to back (A B, then B A next repeat),
        # so a change in the machine's load between repeats hits both sides of each pair alike:
        # the ratio is taken pair by pair, and its median quoted.
        for i in range(args.repeat):
            for name, (project, env) in prepared.items():
                order = ("plain", "ours") if i % 2 == 0 else ("ours", "plain")
                for variant in order:
                    runs[name][variant].append(_run_child(variant, project, env))
        for name, r in runs.items():
            plain_r, ours_r = r["plain"], r["ours"]
            cpu_ratios = [o["cpu_s"] / p["cpu_s"] for p, o in zip(plain_r, ours_r)]
            wall_ratios = [o["wall_s"] / p["wall_s"] for p, o in zip(plain_r, ours_r)]
            proc_ratios = [o["process_cpu_s"] / p["process_cpu_s"] for p, o in zip(plain_r, ours_r)]
            last = ours_r[-1]
            rows.append({"manifest": name, "assets_plain": plain_r[-1]["assets"], "assets_ours": last["assets"],
                         "plain_s": _median([x["wall_s"] for x in plain_r]),
                         "ours_s": _median([x["wall_s"] for x in ours_r]),
                         "ratio": _median(wall_ratios),
                         "plain_cpu_s": _median([x["cpu_s"] for x in plain_r]),
                         "ours_cpu_s": _median([x["cpu_s"] for x in ours_r]),
                         "cpu_ratio": _median(cpu_ratios), "cpu_ratios": cpu_ratios,
                         "process_cpu_ratio": _median(proc_ratios), "process_cpu_ratios": proc_ratios,
                         "plain_process_cpu_s": _median([x["process_cpu_s"] for x in plain_r]),
                         "ours_process_cpu_s": _median([x["process_cpu_s"] for x in ours_r]),
                         "policies": last.get("policies"), "governed": last.get("governed")})
    finally:
        emulators.stop()

    for r in rows:
        print(f"{r['manifest']:<18} assets plain={r['assets_plain']:>5} ours={r['assets_ours']:>5} "
              f"(governed {r['governed']}, policies {r['policies']})  plain dagster-dbt "
              f"{r['plain_s']:6.2f} s  this code location {r['ours_s']:6.2f} s  "
              f"ratio {r['ratio']:.2f}x (target <= 1.3x); CPU {r['plain_cpu_s']:.2f} s vs "
              f"{r['ours_cpu_s']:.2f} s, ratio {r['cpu_ratio']:.2f}x")
        print(f"{'':<18} CPU ratio per repeat (median {r['cpu_ratio']:.2f}x, target <= 1.3x): "
              + " ".join(f"{x:.2f}x" for x in r["cpu_ratios"])
              + f"; whole process (imports included) {r['plain_process_cpu_s']:.2f} s vs "
              f"{r['ours_process_cpu_s']:.2f} s, median ratio {r['process_cpu_ratio']:.2f}x")
    if len(rows) == 2:
        a, b = sorted(rows, key=lambda r: r["assets_ours"])
        for key, label in (("ours_s", "this code location"), ("plain_s", "plain dagster-dbt"),
                           ("ours_cpu_s", "this code location (CPU)"), ("plain_cpu_s", "plain dagster-dbt (CPU)")):
            exp = math.log(b[key] / a[key]) / math.log(b["assets_ours"] / a["assets_ours"])
            print(f"growth exponent {label} {a['assets_ours']} -> {b['assets_ours']} assets: {exp:.2f}")
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
