"""Dagster sensors and schedules, each module contributing a Definitions fragment.

Each entry is "module:function"; the function takes a ``ProjectContext`` and returns a
``dagster.Definitions`` (sensors, schedules, jobs, asset checks) merged into the code location.
Add a line here per module; keep modules independent of each other.

Shipped in the installed library as ``orchestrator.lib.sensors`` (this folder is not an installed
package of its own); from the repository root ``sensors`` is an alias of it (``orchestrator/lib/_alias.py``).
Inside this folder, import siblings relatively (``from .execution import ...``).
"""

import importlib

if __name__ == "sensors":  # the repository checkout: one module object per file
    from orchestrator.lib._alias import alias

    alias("sensors", "orchestrator.lib.sensors")

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
        if module_name.startswith("sensors."):  # this package, whatever name it is imported under
            module_name = module_name[len("sensors"):]
        fragments.append(getattr(importlib.import_module(module_name, __package__), attr)(context))
    return fragments
