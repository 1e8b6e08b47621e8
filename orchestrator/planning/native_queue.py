"""The connectors' own scheduled syncs that wait for a slot of their source (no Dagster imports).

A connector's scheduled sync starts when its source has a free slot, not at its cron tick. On a
busy source (several connectors sharing one slot, syncs longer than the schedules' periods) it
queues behind the others, for hours. The planner counted on such a sync twice over: it left a
table to the schedule because the schedule "starts a sync before the latest start", then, once
that sync was queued, held the table as being rebuilt -- and its deadline waited for a sync that
started hours after the tick, where a job at the window's opening, ranked above the routine
traffic, met it (generated worlds 14030, 14183: ``ran_late``).

``ScheduledSyncQueue(snapshot, now)`` reads the run records once per planning cycle:

* ``waiting`` -- the run ids of scheduled syncs still queued (not started). They rebuild nothing
  yet: a sync of the orchestrator's at a deadline's priority starts ahead of them, and one that
  starts while it runs joins it (Fivetran and Airbyte do not run two syncs of a connector).
* ``lag(connector)`` -- how long after its tick the connector's next scheduled sync is expected
  to start: the longest a scheduled sync of it is waiting now, or the wait of its latest one that
  started (a source's queue drains no faster than it filled).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from orchestrator.core.records import RunStatus, Snapshot
from orchestrator.planning.common import aware as _aware
from orchestrator.planning.inflight import is_scheduled_run

# a scheduled sync that started longer ago than this says nothing about the source's queue now
LAG_MEMORY = timedelta(hours=24)


class ScheduledSyncQueue:
    """The connectors' scheduled syncs queued for a source slot, and how late the next ones start."""

    def __init__(self, snapshot: Snapshot, now: datetime) -> None:
        self.waiting: frozenset[str] = frozenset()
        self._lag: dict[str, float] = {}
        graph = snapshot.graph
        now = _aware(now)
        waiting: set[str] = set()
        queued_for: dict[str, float] = {}  # connector -> longest wait of a queued scheduled sync
        started: dict[str, tuple[datetime, float]] = {}  # connector -> (start, wait) of its latest
        for run in snapshot.runs:
            if not is_scheduled_run(run):
                continue
            conn = next((n.connector for k in run.asset_keys if (n := graph.get(k)) is not None and n.connector),
                        None)
            if conn is None:
                continue
            created = _aware(run.created_at)
            if run.status is RunStatus.queued and run.started_at is None:
                waiting.add(run.run_id)
                queued_for[conn] = max(queued_for.get(conn, 0.0), (now - created).total_seconds())
            elif run.started_at is not None:
                at = _aware(run.started_at)
                if now - at > LAG_MEMORY:
                    continue
                prev = started.get(conn)
                if prev is None or at > prev[0]:
                    started[conn] = (at, max(0.0, (at - created).total_seconds()))
        self.waiting = frozenset(waiting)
        for conn in set(queued_for) | set(started):
            self._lag[conn] = max(queued_for.get(conn, 0.0), started[conn][1] if conn in started else 0.0)

    def lag(self, connector: str) -> float:
        """Seconds after its tick the connector's next scheduled sync is expected to start (0: on time)."""
        return self._lag.get(connector, 0.0)
