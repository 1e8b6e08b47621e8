"""Room for one retry before a deadline, on lineages that failed recently (no Dagster imports).

The planner starts a deadline's work at its latest start (deadline - the remaining path's p90
durations, plus a small margin). A fault that strikes that run then leaves no time: the class's
backoff puts the retry after the deadline, or the fault is still on when it comes. Faults recur --
a warehouse that runs out of memory at the same hour, a source that goes away for its nightly
maintenance -- and a cron job set hours ahead of the deadline survived them where the planner,
just in time, ran into them every day (generated world 15231: ``failure``, the warehouse out of
memory 11:32-13:02 daily, the planner's run at 12:05 for a 12:30 deadline; cron-tuned ran at 10:30).

``FaultReserves(failures, materializations, graph, seconds_of)`` reads the snapshot's failure
history (a day): every fault of an asset with a class a re-run resolves (``rate_limit``,
``source_unavailable``, ``destination_capacity``, ``resource_exhausted``) that a later success
ended is an episode; its reserve is the time it took to clear -- first failure to that success, no
longer than the class's whole retry schedule -- plus one p90 run of the asset. ``during(key, start,
end)``: when an episode on the key's lineage (the asset itself or one it feeds) recurs a day later
inside ``[start, end]`` (the key's latest start .. its target's deadline), the key's latest start
moves earlier by that reserve, so that a retry after the fault has cleared still makes the
deadline. A fault that does not come back at that hour changes nothing (random per-attempt faults
moved work around for no gain: seeds 18043, 18059 lost a deadline each when every recovered fault
counted). Failures a person must fix are not covered (their fix time is a person's), nor failures
caused by an upstream one.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.core.graph import AssetGraph
from orchestrator.core.records import DiagnosedFailure, Materialization
from orchestrator.core.vocab import DEFAULT_BACKOFF, Backoff, FailureClass
from orchestrator.planning.common import aware as _aware


def retry_schedule_s(backoff: Backoff) -> float:
    """How long the class's retries take to run out: the sum of its backoff delays."""
    return sum(backoff.delay_s(a) for a in range(1, max(1, backoff.max_attempts) + 1))


RECURS_AFTER = timedelta(days=1)  # a fault that came at this hour yesterday is expected at it today


@dataclass(frozen=True)
class FaultEpisode:
    """One recovered fault of an asset: its first failure, the success that ended it, and the room
    one retry after it needs (the time it took to clear, capped by its class's retry schedule, plus
    one run of the failed asset)."""

    asset_key: str
    first: datetime
    ended: datetime
    reserve_s: float

    def recurs_within(self, start: datetime, end: datetime) -> bool:
        """Its recurrence a day later overlaps ``[start, end]``."""
        return self.first + RECURS_AFTER <= end and self.ended + RECURS_AFTER >= start


def cleared_faults(
    failures: Iterable[DiagnosedFailure],
    materializations: Iterable[Materialization],
    graph: AssetGraph,
    backoff: Mapping[str, Backoff] | None = None,
) -> list[tuple[str, datetime, datetime, float]]:
    """``(asset key, first failure, the success that ended it, seconds it took to clear)`` for
    every recovered fault a re-run resolves (the time capped by its class's retry schedule)."""
    backoff = DEFAULT_BACKOFF if backoff is None else backoff
    eligible: list[tuple[str, datetime, float]] = []  # (key, failed at, its class's retry schedule)
    for d in failures:
        if d.root_failure_id is not None:
            continue
        cls = FailureClass.parse(d.category)
        schedule = backoff.get(cls.value)
        if not cls.rerun_resolves or schedule is None:
            continue
        f = d.failure
        keys = (f.asset_key,) if f.asset_key else graph.connector_tables(f.connector)
        eligible.extend((k, _aware(f.at), retry_schedule_s(schedule)) for k in keys if k in graph)
    if not eligible:
        return []  # the usual case: one pass over the failures, none over the materializations
    wanted = {k for k, _at, _cap in eligible}
    successes: dict[str, list[datetime]] = {}
    for m in materializations:
        if m.partition is None and m.asset_key in wanted:
            successes.setdefault(m.asset_key, []).append(_aware(m.at))
    for v in successes.values():
        v.sort()
    # (key, the success that ended it) -> [first failure of the episode, cap]
    episodes: dict[tuple[str, datetime], list] = {}
    for k, at, cap in eligible:
        times = successes.get(k, ())
        i = bisect_right(times, at)
        if i >= len(times):
            continue  # not recovered: the failure responses handle it
        ep = episodes.setdefault((k, times[i]), [at, 0.0])
        ep[0] = min(ep[0], at)
        ep[1] = max(ep[1], cap)
    return [(k, first, ended, min((ended - first).total_seconds(), cap))
            for (k, ended), (first, cap) in sorted(episodes.items())]


class FaultReserves:
    """The recovered faults on each key's lineage (its own and those of assets it feeds)."""

    def __init__(
        self,
        failures: Iterable[DiagnosedFailure],
        materializations: Iterable[Materialization],
        graph: AssetGraph,
        seconds_of: Callable[[str], float],
        backoff: Mapping[str, Backoff] | None = None,
    ) -> None:
        self._episodes: dict[str, list[FaultEpisode]] = {}
        for k, first, ended, took in cleared_faults(failures, materializations, graph, backoff):
            try:
                run_s = max(0.0, float(seconds_of(k)))
            except Exception:  # noqa: BLE001 - no duration estimate: the fault's time alone
                run_s = 0.0
            ep = FaultEpisode(k, first, ended, took + run_s)
            for a in graph.upstream_closure(k, include_self=True):
                self._episodes.setdefault(a, []).append(ep)

    def during(self, key: str, start: datetime, end: datetime) -> float:
        """Seconds ``key``'s latest start moves earlier: the largest reserve among the faults on its
        lineage that recur within ``[start, end]`` (its latest start .. its deadline), else 0."""
        return max((e.reserve_s for e in self._episodes.get(key, ()) if e.recurs_within(start, end)), default=0.0)

    def __bool__(self) -> bool:
        return bool(self._episodes)
