"""`orchestrator policies check|explain`."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click


def _graph(manifest: str | None):
    from orchestrator.core.graph import AssetGraph

    if manifest:
        return AssetGraph.from_dbt_manifest(manifest)
    try:
        from orchestrator.project_graph import load_project_graph
    except ImportError as exc:
        raise click.ClickException(
            f"cannot load the project's asset graph ({exc}); pass --manifest PATH"
        ) from None
    return load_project_graph()


def _durations(path: str | None):
    from orchestrator.policies.durations import DurationModel

    return DurationModel.from_json(path) if path else DurationModel()


def _now(at: str | None) -> datetime:
    if not at:
        return datetime.now(timezone.utc)
    value = datetime.fromisoformat(at)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


_common = [
    click.option("--manifest", type=click.Path(exists=True, dir_okay=False),
                 help="Build the asset graph from this dbt manifest (.json or .json.gz) "
                      "instead of the project's."),
    click.option("--durations", "durations_path", type=click.Path(exists=True, dir_okay=False),
                 help='Duration history JSON: {"asset/key": [seconds, ...]}.'),
    click.option("--at", "at", help="Resolve as of this ISO instant (default: now; naive = UTC)."),
]


def common(fn):
    for opt in reversed(_common):
        fn = opt(fn)
    return fn


@click.group("policies")
def policies_group() -> None:
    """Validate and explain SLA policies (policies/*.yaml)."""


def _offline_graph(state_dir: str | None):
    """The project's graph built without calling any connector API: connector tables from the last
    known state, dbt models from the manifest (re-parsed by dbt when stale). Returns (graph,
    systems not checked -> why, systems read from a saved state -> description)."""
    import os

    from orchestrator.resources.connector_state import LOAD_OUTCOMES, NOT_LOADED, OFFLINE_ENV
    from orchestrator.settings import get_settings

    before = {k: os.environ.get(k) for k in (OFFLINE_ENV, "ORCHESTRATOR_CONNECTOR_STATE_DIR")}
    os.environ[OFFLINE_ENV] = "1"
    if state_dir:
        os.environ["ORCHESTRATOR_CONNECTOR_STATE_DIR"] = str(Path(state_dir).resolve())
    get_settings.cache_clear()
    LOAD_OUTCOMES.clear()
    try:
        from orchestrator.project_graph import load_project_graph

        graph = load_project_graph()
    finally:
        for k, v in before.items():  # leave the environment as found (the CLI may run in-process)
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
    cached = {key.split("/", 1)[0]: o.describe() for key, o in LOAD_OUTCOMES.items()}
    return graph, dict(NOT_LOADED), cached


@policies_group.command("check")
@click.argument("paths", nargs=-1, type=click.Path())
@common
@click.option("--strict", is_flag=True, help="Also fail on warnings (deadlines that cannot be met).")
@click.option("--offline", is_flag=True,
              help="Call no connector API (a CI job without credentials): connector tables from the last "
                   "known state, dbt models from the project's manifest; prints what was not checked.")
@click.option("--state", "state_dir", type=click.Path(file_okay=False),
              help="With --offline: directory of saved connector states (fivetran-*.json, airbyte-*.json; "
                   "default ORCHESTRATOR_CONNECTOR_STATE_DIR or <ORCHESTRATOR_HOME>/connector_state).")
def check_command(paths, manifest, durations_path, at, strict, offline, state_dir) -> None:
    """Validate policy files against the asset graph (default PATH: policies/)."""
    from orchestrator.policies.model import load_policies
    from orchestrator.policies.resolve import resolve

    paths = paths or ("policies",)
    policy_set = load_policies(paths)
    not_checked: dict[str, str] = {}
    if offline:
        if manifest:
            raise click.UsageError("--offline builds the project's graph; use it without --manifest")
        graph, not_checked, cached = _offline_graph(state_dir)
        for system, how in sorted(cached.items()):
            click.echo(f"{system}: connector tables from the {how.replace(' (API unreachable: ', ' (')}", err=True)
        for system, why in sorted(not_checked.items()):
            click.echo(f"not checked: {system} ({why}); policies selecting kind {system} were disabled, "
                       "not validated", err=True)
    else:
        graph = _graph(manifest)
    res = resolve(policy_set, graph, _durations(durations_path), _now(at), unavailable_kinds=list(not_checked))
    for err in sorted(res.errors, key=lambda e: (e.file, e.line)):
        click.echo(str(err), err=True)
    for warn in res.warnings:
        click.echo(str(warn), err=True)
    if not res.ok:
        click.echo(f"{len(res.errors)} error(s) in {len(policy_set.files)} file(s); "
                   "no policy applies until they are fixed", err=True)
        sys.exit(1)
    governed = len(res.slas)
    with_deadline = sum(1 for s in res.slas.values() if s.deadline is not None)
    click.echo(
        f"OK: {len(policy_set.policies)} policies in {len(policy_set.files)} file(s) govern "
        f"{governed} assets ({with_deadline} with a deadline); "
        f"{len(res.infeasible)} deadline(s) cannot be met"
        + (f"; not checked: {', '.join(sorted(not_checked))}" if not_checked else "")
    )
    if strict and res.warnings:
        sys.exit(1)


@policies_group.command("explain")
@click.argument("asset")
@click.option("--policies", "paths", multiple=True, type=click.Path(),
              help="Policy files/directories (default: policies/). Repeatable.")
@common
def explain_command(asset, paths, manifest, durations_path, at) -> None:
    """Print the effective SLA of ASSET and the chain of assets that produced its deadline."""
    from orchestrator.policies.model import load_policies
    from orchestrator.policies.resolve import resolve
    from orchestrator.policies.selectors import suggest

    graph = _graph(manifest)
    if asset not in graph:
        hint = suggest(asset, graph.keys)
        raise click.ClickException(
            f"unknown asset key {asset!r}" + (f"; did you mean {hint!r}?" if hint else "")
        )
    res = resolve(load_policies(paths or ("policies",)), graph, _durations(durations_path), _now(at))
    if not res.ok:
        for err in res.errors:
            click.echo(str(err), err=True)
        raise click.ClickException(res.skip_reason or "invalid policies")
    click.echo(res.explain(asset))


if __name__ == "__main__":  # pragma: no cover
    policies_group()
    Path  # noqa
