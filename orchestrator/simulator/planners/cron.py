"""Fixed schedules, as teams run them today: a Dagster schedule per connector sync job and per
dbt job, every step retried per Dagster's RetryPolicy (max_retries, delay, backoff). Retries are
per step (as ``dbt retry`` would), which is kinder to cron than re-running the whole dbt op."""

from __future__ import annotations

import fnmatch

from orchestrator.simulator.planners import Planner


class CronPlanner(Planner):
    name = "cron"

    def start(self, sim) -> None:
        retry = sim.spec.baseline.retry
        for cid, c in sim.sc.connectors.items():
            sim.cron(c.schedule, lambda s, cid=cid: s.submit((), units=[cid], source=f"schedule:sync:{cid}",
                                                              retry=retry))
        for job in sim.spec.baseline.jobs:
            keys = [k for k in sim.sc.models if any(fnmatch.fnmatchcase(k, p) for p in job.select)]
            if keys:
                sim.cron(job.cron, lambda s, keys=tuple(keys), name=job.name: s.submit(
                    keys, source=f"schedule:{name}", retry=retry))
