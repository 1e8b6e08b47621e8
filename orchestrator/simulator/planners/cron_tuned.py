"""``cron-tuned``: the schedules a careful engineer would settle on, found by search.

Per scenario and seed, every candidate below is simulated on the same world and the best kept
(most deadlines met, then fewest unsafe steps, then least weighted lateness, then least cost):

1. the scenario's own jobs (as written: cron in its time zone, selection, priority, chains),
   moved earlier or later as a whole (``SHIFTS``);
2. one job per deadline policy that syncs and builds the whole lineage of its targets
   (``+target``: the connectors upstream, then the models), started a lead time before each of
   that policy's deadline ticks (its time zone, DST and business calendar included) and never
   before the deadline's window opens, with ``dagster/priority`` by tier (``LEADS``);
3. then, for the best schedule, Dagster RetryPolicy settings (``RETRIES``: delay x attempts,
   exponential backoff).

This is deliberately generous to cron: it is tuned on the very seed it is scored on.
"""

from __future__ import annotations

from datetime import timedelta

from orchestrator.simulator.planners.cron import CronPlanner, CronSetting, TimedJob
from orchestrator.simulator.scenario import RetrySpec

SHIFTS_H = (0, -1, -2, -3, -4, -6, 1)
LEADS_H = (1, 2, 3, 4, 6, 8)
RETRIES = ((60, 3), (300, 3), (900, 4), (1800, 3), (60, 0))
TIER_PRIORITY = {"critical": 30, "high": 20, "standard": 10, "low": 0}


def _score(r) -> tuple:
    return (round(r.sla_attainment, 6), -r.unsafe_actions, -r.weighted_lateness, -r.cost)


def lineage_jobs(sc, resolution, lead_s: float) -> tuple[TimedJob, ...]:
    """One timed job per deadline policy: ``+targets`` started ``lead_s`` before each tick."""
    jobs = []
    if resolution is None or not resolution.ok or resolution.policy_set is None:
        return ()
    t0, end = sc.t0, sc.t0 + timedelta(seconds=sc.horizon_s)
    for policy in resolution.policy_set.policies:
        schedule = policy.schedule()
        if schedule is None:
            continue
        window = policy.deadline.effective_window(schedule).total_seconds()
        targets = sorted(k for k, sla in resolution.slas.items() if policy.name in sla.policies)
        if not targets:
            continue
        keys = set(targets)
        keys |= sc.graph.upstream_closure(*targets)
        ordered = tuple(k for k in sc.graph.topological_order() if k in keys)
        lead = min(lead_s, window)
        ats = []
        for tick in schedule.ticks(t0 - timedelta(days=1), end + timedelta(days=1)):
            at = (tick - t0).total_seconds() - lead
            if 0 <= at < sc.horizon_s:
                ats.append(at)
        if ats:
            jobs.append(TimedJob(f"lineage:{policy.name}", ordered, tuple(ats),
                                 TIER_PRIORITY.get(policy.tier.value, 0)))
    return tuple(jobs)


def candidates(sc, resolution) -> list[CronSetting]:
    out: list[CronSetting] = []
    jobs = tuple(sc.spec.baseline.jobs)
    if jobs:
        for h in SHIFTS_H:
            out.append(CronSetting(jobs=jobs, shift_s=h * 3600, label=f"as written, shifted {h:+g}h"))
    for h in LEADS_H:
        timed = lineage_jobs(sc, resolution, h * 3600)
        if timed:
            out.append(CronSetting(timed=timed, label=f"lineage job per deadline, {h:g}h before"))
    return out


def tune(sc, seed: int, run_one) -> tuple[object, CronSetting, int]:
    """Search the grid with ``run_one(planner) -> BenchResult``; (best result, its setting,
    simulations run)."""
    from orchestrator.simulator.bench import resolve_policies

    resolution = resolve_policies(sc, sc.realise(seed))
    best, best_setting, n = None, None, 0
    for setting in candidates(sc, resolution) or [CronSetting(jobs=tuple(sc.spec.baseline.jobs))]:
        r = run_one(CronPlanner(setting))
        n += 1
        if best is None or _score(r) > _score(best):
            best, best_setting = r, setting
    base_retry = sc.spec.baseline.retry
    for delay, attempts in RETRIES:
        retry = RetrySpec(max_retries=attempts, delay=timedelta(seconds=delay), backoff=base_retry.backoff
                          if attempts else None)
        if retry == base_retry:
            continue
        setting = CronSetting(best_setting.jobs, best_setting.timed, retry, best_setting.shift_s,
                              best_setting.label)
        r = run_one(CronPlanner(setting))
        n += 1
        if _score(r) > _score(best):
            best, best_setting = r, setting
    return best, best_setting, n


def describe(setting: CronSetting) -> str:
    retry = setting.retry
    rt = (f"retry {retry.max_retries} x {int(retry.delay.total_seconds())}s {retry.backoff or 'fixed'}"
          if retry is not None else "retry as written")
    return f"{setting.label}; {rt}"
