"""The load-time shortcuts change nothing a user sees: the code location built on a real dbt
manifest with every shortcut (SLA merged with only the added attributes validated, per-value
caches, the checks' type resolution, the collector paused and the heap frozen at the manifest
parse) has the same assets, deps, owners, groups, tags, metadata (in order), freshness policies,
checks, sensors, jobs, resources and location metadata as the one built through Dagster's own
checked paths."""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import sys
from pathlib import Path

import dagster as dg
import pytest
from dbt_manifest_fixtures import build_location, make_dbt_project, manifest_path


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

NAME = "teamster_kipptaf"  # exposures, dagster meta, odd owners: the richer of the two


def _reference_paths(patch: pytest.MonkeyPatch) -> None:
    """Every load shortcut off: Dagster's checked replace_attributes and type resolution, the
    uncached helpers, the collector left alone."""
    import orchestrator.definitions as od
    from orchestrator import dagster_policies as dp
    from orchestrator.lib.sensors import _checks
    from orchestrator.policies.calendar import shift_cron, weekly_min_interval
    from orchestrator.policies.model import format_duration

    patch.setattr(dp, "_fast_replace_ok", lambda: False)
    patch.setattr(dp, "_shift_cron", shift_cron)
    patch.setattr(dp, "_weekly_min_interval", weekly_min_interval)
    patch.setattr(dp, "_format_duration", format_duration)
    patch.setattr(dp, "_tag_value", dp.tag_value)
    patch.setattr(dp, "_policy_of", lambda resolution, name: resolution.policy(name))
    patch.setattr(dp, "compile_freshness_policy", dp._compile_freshness_policy)

    @contextlib.contextmanager
    def no_shortcut():
        yield False

    patch.setattr(_checks, "fast_type_resolution", no_shortcut)
    patch.setattr(od, "long_lived_load", lambda load: load())
    patch.setenv("ORCHESTRATOR_GC_FREEZE", "0")


def _build(tmp_path: Path, reference: bool) -> dg.Definitions:
    from bench_load import policies_for

    with gzip.open(manifest_path(NAME)) as fh:
        manifest = json.load(fh)
    project = make_dbt_project(NAME, tmp_path)
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "bench.yaml").write_text(policies_for(manifest))
    return build_location(project, policies, _reference_paths if reference else None)


def _value(v) -> str:
    # MetadataValues by value; anything else (dagster-dbt's manifest wrapper: the whole parsed
    # manifest, one shared object) by its type
    return repr(v) if isinstance(v, dg.MetadataValue | str | int | float | bool) else type(v).__name__


def _meta(values) -> list[tuple[str, str]]:
    out = [(k, _value(v)) for k, v in values.items()]
    # "live from the API at <time of the fetch>": each build fetches anew
    return [(k, re.sub(r" at \S+", " at <fetch time>", v) if k == "connector_state" else v) for k, v in out]


def fingerprint(defs: dg.Definitions) -> dict:
    """What a user of the code location can observe of it."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "group": node.group_name,
            "owners": list(node.owners),
            "tags": sorted(node.tags.items()),
            "kinds": sorted(node.kinds),
            "metadata": _meta(node.metadata),  # in order: the UI shows it in this order
            "freshness": repr(node.freshness_policy),
            "description": node.description,
            "executable": (node.is_materializable, node.is_observable, node.is_executable),
            "partitions": repr(node.partitions_def),
            "automation": repr(node.automation_condition),
            "code_version": node.code_version,
            "checks": sorted(str(c) for c in node.check_keys),
        }
    checks = {}
    for check_key in sorted(graph.asset_check_keys, key=str):
        spec = graph.get_check_spec(check_key)
        checks[str(check_key)] = (spec.description, spec.blocking, _meta(spec.metadata or {}),
                                  sorted(str(d.asset_key) for d in spec.additional_deps or []))
    sensors = sorted((s.name, s.minimum_interval_seconds, repr(s.default_status), s.description)
                     for s in defs.sensors or [])
    jobs = sorted(getattr(j, "name", repr(j)) for j in defs.jobs or [])
    checks_defs = sorted(c.node_def.name for c in defs.asset_checks or [] if hasattr(c, "node_def"))
    return {"assets": assets, "checks": checks, "check_definitions": checks_defs, "sensors": sensors,
            "jobs": jobs, "schedules": sorted(s.name for s in defs.schedules or []),
            "resources": sorted(defs.resources or {}), "metadata": _meta(defs.metadata or {})}


@pytest.fixture(scope="module")
def both(sandbox, tmp_path_factory):
    if not manifest_path(NAME).exists():
        pytest.skip(f"{manifest_path(NAME)} not present")
    reference = fingerprint(_build(tmp_path_factory.mktemp("reference"), reference=True))
    fast = fingerprint(_build(tmp_path_factory.mktemp("fast"), reference=False))
    return reference, fast


def test_shortcuts_change_nothing_observable(both):
    reference, fast = both
    assert len(reference["assets"]) > 1400 and reference["sensors"] and reference["checks"]
    governed = [a for a in reference["assets"].values() if any(k == "sla/tier" for k, _ in a["metadata"])]
    assert len(governed) > 900  # the SLA compiled onto the specs is part of what is compared
    for key in reference["assets"]:
        assert fast["assets"].get(key) == reference["assets"][key], key
    assert fast == reference
