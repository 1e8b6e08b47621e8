"""SLA policies over any set of Dagster assets: what a code location adds to its own assets.

``sla_definitions(assets, policies=[...])`` resolves the policies over the plain graph of
``assets`` (the decision core's ``AssetGraph``) and returns the sensors, schedules, jobs, asset
checks and the digest asset (``orchestrator.lib.sensors``) as a ``Definitions`` to merge beside
them, with the resolution. ``compile_sla_onto_specs`` additionally compiles the policies onto the
specs (SLA tags, metadata, owners and a native FreshnessPolicy) for a team that builds its
``Definitions`` in Python. This repository's code location (``orchestrator/definitions.py``) and
the ``SlaPoliciesComponent`` (``orchestrator/components.py``) are two users of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from orchestrator.core.graph import AssetGraph
from orchestrator.dagster_policies import apply_sla_to_spec, load_resolution, policy_status_metadata
from orchestrator.policies.resolve import Resolution
from orchestrator.project_graph import asset_graph_from_assets

if TYPE_CHECKING:  # for the annotation only: sla_definitions imports the sensors package lazily
    from orchestrator.lib.sensors import ProjectContext

AssetLike = dg.AssetsDefinition | dg.AssetSpec


def assets_of(defs: dg.Definitions) -> list[AssetLike]:
    """The asset definitions and specs of ``defs`` (source assets and unresolved cacheable ones
    are not part of the plain graph)."""
    return [a for a in (defs.assets or []) if isinstance(a, dg.AssetsDefinition | dg.AssetSpec)]


@dataclass
class SlaDefinitions:
    graph: AssetGraph
    resolution: Resolution
    definitions: dg.Definitions
    governed: list[AssetLike] = field(default_factory=list)  # ``governed`` with the policies compiled on
    context: ProjectContext | None = None  # the graph and resolution the sensors decide on


def sla_definitions(
    assets: Iterable[AssetLike],
    policies: Sequence[str | Path],
    *,
    unavailable_kinds: Iterable[str] = (),
    governed: Iterable[AssetLike] = (),
    recording_jobs: Iterable[dg.JobDefinition] = (),
) -> SlaDefinitions:
    """The sensors, checks, digest and approvals for ``assets`` and ``governed`` under the
    policies in ``policies`` (files or folders), resolved over the graph of both. ``governed`` are
    assets whose specs the caller will replace by ``SlaDefinitions.governed``: the same assets
    with the policies compiled onto their specs (SLA tags, metadata, owners, a native
    FreshnessPolicy); ``assets`` are only read (another component's, or upstream ones). Never
    raises on invalid policies: they apply nothing, the reason is in the ``Definitions`` metadata
    (``sla_policies/status``) and the sensors skip with it. ``recording_jobs``: op jobs that
    record external assets (``orchestrator.lib.recorded``); the agent's sensors launch them."""
    from orchestrator.lib.sensors import ProjectContext, sensor_definitions

    assets, governed = list(assets), list(governed)
    graph = asset_graph_from_assets([*assets, *governed])
    resolution = load_resolution(graph, list(policies), unavailable_kinds=unavailable_kinds)
    compiled = compile_sla_onto_specs(governed, resolution) if governed else []
    specs = {spec.key: spec for a in [*assets, *compiled]
             for spec in (a.specs if isinstance(a, dg.AssetsDefinition) else [a])}
    context = ProjectContext(graph=graph, resolution=resolution, asset_specs=specs,
                             recording_jobs=tuple(recording_jobs))
    fragments = sensor_definitions(context)
    defs = dg.Definitions.merge(dg.Definitions(metadata=policy_status_metadata(resolution)), *fragments)
    return SlaDefinitions(graph=graph, resolution=resolution, definitions=defs, governed=compiled,
                          context=context)


def compile_sla_onto_specs(assets: Iterable[AssetLike], resolution: Resolution) -> list[AssetLike]:
    """``assets`` with the policies compiled onto their specs (unchanged when ``resolution`` is not ok)."""
    return dg.map_asset_specs(lambda spec: apply_sla_to_spec(spec, resolution), list(assets))


def replace_assets(defs: dg.Definitions, assets: Iterable[AssetLike]) -> dg.Definitions:
    """``defs`` with its asset definitions and specs replaced by ``assets`` (the same keys, other
    specs); source assets, checks, jobs, sensors, resources and the rest kept."""
    others = [a for a in (defs.assets or []) if not isinstance(a, dg.AssetsDefinition | dg.AssetSpec)]
    return dg.Definitions(
        assets=[*assets, *others], asset_checks=defs.asset_checks, jobs=defs.jobs, schedules=defs.schedules,
        sensors=defs.sensors, resources=defs.resources, executor=defs.executor, loggers=defs.loggers,
        metadata=defs.metadata,
    )


def with_sla_policies(defs: dg.Definitions, policies: Sequence[str | Path], *,
                      resources: dict | None = None) -> dg.Definitions:
    """A team's whole ``Definitions`` with its policies compiled onto its own asset specs and the
    sensors, checks, digest and approvals added (the Python alternative to the component)::

        @dg.definitions
        def defs():
            return with_sla_policies(dg.load_from_defs_folder(path_within_project=HERE), ["policies"],
                                     resources=connector_resources())
    """
    sla = sla_definitions([], policies, governed=assets_of(defs))
    parts = [replace_assets(defs, sla.governed), sla.definitions]
    if resources:
        parts.append(dg.Definitions(resources={k: v for k, v in resources.items() if k not in (defs.resources or {})}))
    return dg.Definitions.merge(*parts)


def connector_resources(systems: Iterable[str] | None = None) -> dict[str, dg.ResourceDefinition | object]:
    """The ``fivetran`` and ``airbyte`` resources the sensors read (``orchestrator.resources``:
    configured from the environment, the local emulators when no API is set); a system not in
    ``systems`` (default: ``ORCHESTRATOR_CONNECTORS`` / the configured APIs) is ``None``, which
    the sensors and checks read as "not used"."""
    from orchestrator.resources import airbyte_workspace, enabled_systems, fivetran_workspace

    chosen = tuple(enabled_systems() if systems is None else systems)
    out: dict[str, object] = {}
    for system, make in (("fivetran", fivetran_workspace), ("airbyte", airbyte_workspace)):
        out[system] = make() if system in chosen else dg.ResourceDefinition.none_resource(
            description=f"{system} is not used by this code location")
    return out
