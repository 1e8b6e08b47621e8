"""Planners compared by the benchmark. Each one drives a :class:`~orchestrator.simulator.engine.Simulation`:

* ``cron``: Dagster schedules (connector syncs on their cron, dbt jobs on theirs), every step
  retried per Dagster's RetryPolicy (``baseline.retry``).
* ``eager``: connectors on their own sync schedules; each model runs when an upstream updated
  and nothing upstream is in progress (AutomationCondition.eager(), evaluated every
  ``baseline.eager_tick``); no retries (eager does not re-request a failed asset).
* ``sla`` / ``sla-llm``: this project's decision core (assess -> plan -> validate -> gate) at
  every sensor tick, gate in auto mode, approvals answered after ``approvals.delay``.
* ``cron-tuned``: the best ``cron`` setting found by searching build times and retry settings
  on the same seed (:mod:`.cron_tuned`): a competent baseline by construction.
* ``bound`` (alias ``oracle``): a valid upper bound on attainment, relaxed per deadline cycle
  (:mod:`orchestrator.simulator.bound`): not a schedule; no planner can exceed it.
"""

from __future__ import annotations

PLANNERS = ("cron", "cron-tuned", "eager", "sla", "sla-llm", "bound", "oracle")


class PlannerUnavailable(RuntimeError):
    """The planner cannot run here (a module or an endpoint is missing)."""


class Planner:
    name = "base"

    def start(self, sim) -> None:  # schedule work / ticks on the simulation
        raise NotImplementedError

    def on_step_end(self, sim, step, ok: bool) -> None:
        pass

    def finish(self, sim) -> None:  # after the run (e.g. record stats)
        pass


def make_planner(name: str, **kwargs) -> Planner:
    if name == "cron":
        from orchestrator.simulator.planners.cron import CronPlanner

        return CronPlanner()
    if name == "eager":
        from orchestrator.simulator.planners.eager import EagerPlanner

        return EagerPlanner()
    if name in ("sla", "sla-llm"):
        from orchestrator.simulator.planners.sla import SLAPlanner

        return SLAPlanner(llm=name == "sla-llm", **kwargs)
    raise ValueError(f"unknown planner {name!r}; one of {', '.join(PLANNERS)}")
