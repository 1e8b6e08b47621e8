"""Dagster sensors and schedules, each module contributing a Definitions fragment.

Each entry is "module:function"; the function takes a ``ProjectContext`` and returns a
``dagster.Definitions`` (sensors, schedules, jobs, asset checks) merged into the code location.
Add a line here per module; keep modules independent of each other.
"""

import importlib
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from orchestrator.core.graph import AssetGraph

CONTRIBUTORS: list[str] = [
    "sensors.freshness:definitions",
    "sensors.cost:definitions",
    "sensors.failures:definitions",
    "sensors.execution:definitions",
    "sensors.digest:definitions",
    "sensors.schema_changes:definitions",
    "sensors.notify:definitions",
    "sensors.health:definitions",
]


@dataclass
class ProjectContext:
    """What sensors need to know about the project at load time."""

    graph: AssetGraph  # plain graph of every asset in the code location
    resolution: Any  # orchestrator.policies.Resolution (may be not ok: sensors then skip)
    asset_specs: dict[dg.AssetKey, dg.AssetSpec] = field(default_factory=dict)


def sensor_definitions(context: ProjectContext) -> list[dg.Definitions]:
    fragments = []
    for target in CONTRIBUTORS:
        module_name, attr = target.split(":")
        fragments.append(getattr(importlib.import_module(module_name), attr)(context))
    return fragments
