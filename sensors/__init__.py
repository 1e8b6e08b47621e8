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
    # op jobs recording external assets (orchestrator.lib.recorded): the sensors that launch runs
    # then target jobs (one asset job over every executable asset, and these) instead of
    # ``AssetSelection.all()``, which cannot request an op job's run
    recording_jobs: tuple = ()

    def run_target(self) -> dict:
        """The target keyword of a sensor launching the agent's runs (``@dg.sensor(**...)``)."""
        if not self.recording_jobs:
            return {"target": dg.AssetSelection.all()}
        from orchestrator.lib.recorded import AGENT_ASSET_JOB

        job = self.__dict__.get("_agent_job")
        if job is None:
            job = self.__dict__["_agent_job"] = dg.define_asset_job(
                AGENT_ASSET_JOB, selection=dg.AssetSelection.all(),
                description="The runs the scheduling agent launches for executable assets (its sensors "
                            "target jobs: assets recorded by an op job run in that job).")
        return {"jobs": [job, *self.recording_jobs]}


def sensor_definitions(context: ProjectContext) -> list[dg.Definitions]:
    fragments = []
    for target in CONTRIBUTORS:
        module_name, attr = target.split(":")
        if module_name.startswith("sensors."):  # this package, whatever name it is imported under
            module_name = module_name[len("sensors"):]
        fragments.append(getattr(importlib.import_module(module_name, __package__), attr)(context))
    return fragments
