"""Degradation precursors and known maintenance windows in the simulator (scenario ``precursors``
and ``maintenance``), and what the health sensor would tell the planner about them.

* ``latency_creep``: from ``at`` (each day), each of the next ``loads`` syncs of the target
  connectors takes ``factor`` x the previous hit's duration (compounding, capped at
  ``max_factor``); the multiplier stays until the day's occurrence is over, then resets.
* ``warning_rate``: the same syncs succeed leaving ``warnings`` more warnings/429s each time
  (rising) -- the precursor of what ``faults`` scripts next (an outage, a rate-limit storm).
* ``maintenance``: every attempt in ``[at, at + lasts)`` fails as ``source_unavailable`` and the
  window clears by itself; ``announced`` windows are known to the planner ahead.

The engine calls :meth:`PrecursorScript.sync_started` (the duration of a sync) and
:meth:`PrecursorScript.sync_ended` (the sync log: start, end, outcome, warnings). The ``sla``
adapter reads :meth:`PrecursorScript.risks`: per connector, the health module's early warning
(``orchestrator.health.early.connector_risk``) over the connector's sync signals -- a fortnight
of prior syncs on its own schedule (the durations the world knew before the start, no
warnings) followed by what the simulation ran -- and the announced maintenance windows.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase

UTC = timezone.utc
PRIOR_DAYS = 14
MAINTENANCE_MESSAGE = ("Source is under scheduled maintenance (announced window {start:%H:%M}-{end:%H:%M} UTC): "
                       "connection refused, retrying after the window")


class PrecursorScript:
    def __init__(self, sim) -> None:
        from orchestrator.simulator.scenario import FaultEpisode

        self.sim = sim
        spec = sim.spec
        conns = sorted(sim.sc.connectors)
        days = int(sim.horizon // 86400) + 2
        self._occ: list[list] = []  # [start, kind, targets, loads_left, spec, level]
        self.mult: dict[str, float] = {}
        self.warn: dict[str, int] = {}
        for sp in getattr(spec, "precursors", None) or []:
            targets = frozenset(c for c in conns if any(fnmatchcase(c, p) for p in sp.targets))
            for start in self._starts(sp.at, days, None):
                self._occ.append([start, sp.kind, targets, sp.loads, sp, 1.0 if sp.kind == "latency_creep" else 0])
        self._occ.sort(key=lambda o: o[0])
        self.windows: list[tuple[float, float, frozenset[str], bool]] = []
        extra = []
        for i, mw in enumerate(getattr(spec, "maintenance", None) or []):
            targets = frozenset(c for c in conns if any(fnmatchcase(c, p) for p in mw.targets))
            for j, start in enumerate(self._starts(mw.at, days, mw.day)):
                end = start + mw.lasts.total_seconds()
                self.windows.append((start, end, targets, mw.announced))
                msg = MAINTENANCE_MESSAGE.format(start=sim.dt(start), end=sim.dt(end))
                for c in sorted(targets):
                    extra.append(FaultEpisode(f"maintenance-{i}", "source_unavailable", c, start, end, "retry", msg,
                                              False, j))
        if extra:  # after the world's episodes (indices stay unique), sorted by start per target
            base = 1_000_000
            for n, ep in enumerate(extra):
                lst = sim._episodes.setdefault(ep.target, [])
                lst.append((base + n, ep))
                lst.sort(key=lambda x: x[1].start)
        # the sync log: connector -> [(start, end, ok, warnings)]; a fortnight of prior syncs first
        self.log: dict[str, list[tuple[float, float, bool, int]]] = {c: self._prior(c) for c in conns}

    def _starts(self, at: list[str], days: int, only_day: int | None) -> list[float]:
        out = []
        t0 = self.sim.t0
        for d in range(-1, days):
            if only_day is not None and d != only_day:
                continue
            day = (t0 + timedelta(days=d)).date()
            for hhmm in at:
                h, m = (int(x) for x in hhmm.split(":"))
                s = (datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=h, minutes=m)
                     - t0).total_seconds()
                if (-86400 if only_day is None else 0) <= s < self.sim.horizon:
                    out.append(s)
        return out

    def _prior(self, cid: str) -> list[tuple[float, float, bool, int]]:
        from cronsim import CronSim

        sim = self.sim
        c = sim.sc.connectors[cid]
        hist = []
        for t in c.tables:
            hist = list(sim.world.history.get(t, ())) or hist
        if not hist:
            hist = [sim.world.duration(cid, k) for k in range(10)]
        out = []
        first = sim.t0 - timedelta(days=PRIOR_DAYS)
        for i, tick in enumerate(CronSim(c.schedule, first)):
            s = (tick - sim.t0).total_seconds()
            if s >= 0:
                break
            out.append((s, s + float(hist[i % len(hist)]), True, 0))
        return out

    # -- engine hooks ------------------------------------------------------------------------------
    def sync_started(self, st, dur: float) -> float:
        """The duration of a sync that starts now (latency creep); notes its warnings (rising rate)."""
        now = self.sim.now
        st.precursor_warnings = 0
        for occ in self._occ:
            start, kind, targets, left, sp, level = occ
            if start > now:
                break
            if left <= 0 or st.unit not in targets or (now - start) > 86400:
                continue
            occ[3] -= 1
            if kind == "latency_creep":
                occ[5] = min(level * sp.factor, sp.max_factor)
                dur *= occ[5]
            else:
                occ[5] = level + sp.warnings
                st.precursor_warnings = max(st.precursor_warnings, int(occ[5]))
        return dur

    def sync_ended(self, st, ok: bool) -> None:
        if st.start is None:
            return
        self.log.setdefault(st.unit, []).append((st.start, self.sim.now, ok, getattr(st, "precursor_warnings", 0)))

    # -- what the planner is told ------------------------------------------------------------------
    def signals(self, cid: str):
        from orchestrator.health.signals import SyncSignal

        sim = self.sim
        c = sim.sc.connectors[cid]
        table = c.tables[0] if c.tables else cid
        return [SyncSignal(connector=cid, table=table, sync_id=f"{cid}#{i}", started_at=sim.dt(s), ended_at=sim.dt(e),
                           status="succeeded" if ok else "failed", rows=None, warnings=w)
                for i, (s, e, ok, w) in enumerate(self.log.get(cid, ()))]

    def maintenance_windows(self, cid: str) -> list[tuple[datetime, datetime]]:
        return [(self.sim.dt(s), self.sim.dt(e)) for s, e, targets, announced in self.windows
                if announced and cid in targets and e > self.sim.now]

    def risks(self) -> dict:
        """connector -> ``ConnectorRisk`` (early warning and announced maintenance windows)."""
        from orchestrator.health.early import connector_risk

        now = self.sim.dt()
        return {cid: connector_risk(self.signals(cid), now, maintenance=self.maintenance_windows(cid),
                                    connector=cid)
                for cid in sorted(self.sim.sc.connectors)}
