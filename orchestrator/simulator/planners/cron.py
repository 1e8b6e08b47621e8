"""Fixed schedules, as teams run them today: connector syncs on their own schedules (retried per
Dagster's RetryPolicy), and Dagster jobs over asset selections: a cron in an execution time zone,
``dagster/priority``, graph selectors (``+exposure:x`` also syncs the connectors upstream, then
builds), and jobs chained after others (a run status sensor). Retries are per step (as ``dbt
retry`` would), which is kinder to cron than re-running the whole dbt op.

``cron-tuned`` (:mod:`.cron_tuned`) searches these settings per scenario; this module runs one
setting: the scenario's ``baseline`` as written, or a :class:`CronSetting` given to it."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.simulator.planners import Planner
from orchestrator.simulator.scenario import JobSpec, RetrySpec
from orchestrator.simulator.selection import select_all


@dataclass(frozen=True)
class TimedJob:
    """A job fired at explicit instants (seconds since the start): how the tuned baseline writes
    "the build N minutes before each deadline" on calendars a cron string cannot express."""

    name: str
    keys: tuple[str, ...]
    at: tuple[float, ...]
    priority: int = 0


@dataclass(frozen=True)
class CronSetting:
    jobs: tuple[JobSpec, ...] = ()
    timed: tuple[TimedJob, ...] = ()
    retry: RetrySpec | None = None
    shift_s: float = 0.0  # every cron job fired this much later (negative: earlier)
    label: str = "as written"
    extra: dict = field(default_factory=dict, compare=False)


def job_keys(sim, job: JobSpec) -> tuple[str, ...]:
    models = sim.sc.models
    model_set = set(models)
    chosen = select_all(sim.graph, job.select, model_set)
    ordered = [k for k in models if k in chosen]
    ordered += [k for k in sim.graph.keys if k in chosen and k not in model_set]
    return tuple(ordered)


class CronPlanner(Planner):
    name = "cron"

    def __init__(self, setting: CronSetting | None = None) -> None:
        self.setting = setting
        self._jobs: dict[str, tuple[JobSpec, tuple[str, ...]]] = {}
        self._waiting: dict[str, set[str]] = {}  # chained job -> upstream jobs not yet succeeded
        self._retry: RetrySpec | None = None

    def start(self, sim) -> None:
        setting = self.setting or CronSetting(jobs=tuple(sim.spec.baseline.jobs))
        self._retry = setting.retry or sim.spec.baseline.retry
        retry = self._retry
        # connector syncs stay on the connectors' own schedules (what Fivetran/Airbyte run)
        for cid, c in sim.sc.connectors.items():
            sim.cron(c.schedule, lambda s, cid=cid: s.submit((), units=[cid], source="native", retry=retry))
        for job in setting.jobs:
            keys = job_keys(sim, job)
            if not keys:
                continue
            self._jobs[job.name] = (job, keys)
            if job.after:
                self._waiting[job.name] = set(job.after)
            if job.cron:
                sim.cron(job.cron, self._fire_cb(job.name), tz=job.timezone, offset_s=setting.shift_s)
        for tj in setting.timed:
            for t in tj.at:
                if 0 <= t < sim.horizon:
                    sim.at(t, self._fire_timed, sim, tj)
        if self._waiting:
            sim.listeners.append(self)

    def _fire_cb(self, name: str):
        return lambda s: self._fire(s, name)

    def _fire(self, sim, name: str) -> None:
        job, keys = self._jobs[name]
        sim.submit(keys, priority=job.priority, source=f"schedule:{name}", retry=job.retry or self._retry)

    def _fire_timed(self, sim, tj: TimedJob) -> None:
        sim.submit(tj.keys, priority=tj.priority, source=f"schedule:{tj.name}", retry=self._retry)

    def on_step_end(self, sim, step, ok: bool) -> None:
        pass

    def on_run_end(self, sim, run) -> None:
        if run.failed or run.canceled or not run.source.startswith("schedule:"):
            return
        done = run.source.split(":", 1)[1]
        for name, waiting in self._waiting.items():
            job, _ = self._jobs[name]
            if done in job.after:
                waiting.discard(done)
                if not waiting:
                    self._waiting[name] = set(job.after)
                    self._fire(sim, name)
