"""The hold on untrusted loads: the predicate the assessment consults (no Dagster imports).

``Snapshot.anomalous_loads`` maps a connector table whose latest load is untrusted (zero rows,
a sharp drop, a stuck cursor: ``orchestrator.health.detect``) to ``(trusted data time, why)`` --
the data time of its newest load that was not anomalous (None when there is none). The data
times the assessment and the planner judge freshness by are capped there, for the table and for
everything built on it: a dashboard rebuilt on a zero-row load is *not* fresh for its deadline,
it is held by the table (``data_held_by``), and its models are not run on that load.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.health.detect import LoadVerdict


def holds_from_verdicts(verdicts: dict[str, LoadVerdict]) -> dict[str, tuple[datetime | None, str]]:
    """``Snapshot.anomalous_loads`` from the detectors' verdicts (untrusted loads only)."""
    return {k: (v.trusted_data_time, v.reason) for k, v in verdicts.items() if v.untrusted}


def is_untrusted(snapshot, key: str) -> bool:
    """Whether ``key``'s latest load is untrusted (the predicate the assessment consults)."""
    return key in (getattr(snapshot, "anomalous_loads", None) or {})


def cap_untrusted(snapshot, dts: dict[str, datetime], held: dict[str, str]) -> None:
    """Cap data times at the trusted data time of every untrusted load upstream (in place)."""
    loads = getattr(snapshot, "anomalous_loads", None) or {}
    if not loads:
        return
    graph = snapshot.graph
    cap: dict[str, tuple[datetime | None, str]] = {}
    for key in graph.topological_order():
        best: tuple[datetime | None, str] | None = None
        if key in loads:
            best = (loads[key][0], key)
        for p in graph.parents(key):
            c = cap.get(p)
            if c is not None and (best is None or _older(c[0], best[0])):
                best = c
        if best is None:
            continue
        cap[key] = best
        trusted, by = best
        cur = dts.get(key)
        if trusted is None:
            dts.pop(key, None)
            held[key] = by
        elif cur is None or trusted < cur:
            dts[key] = trusted
            held[key] = by


def _older(a: datetime | None, b: datetime | None) -> bool:
    if a is None:
        return b is not None
    return b is not None and a < b


def annotate(snapshot, freshness: dict) -> dict:
    """Say in each assessment held by an untrusted load which load and why (same statuses)."""
    loads = getattr(snapshot, "anomalous_loads", None) or {}
    if not loads:
        return freshness
    from dataclasses import replace

    out = dict(freshness)
    for key, fa in freshness.items():
        src = key if key in loads else fa.data_held_by
        if src in loads:
            trusted, why = loads[src]
            note = (f"untrusted load of {src} ({why}); trusted data as of "
                    f"{trusted.isoformat() if trusted else 'none'}")
            out[key] = replace(fa, reason=f"{fa.reason}; {note}" if fa.reason else note,
                               data_held_by=fa.data_held_by or (src if src != key else None))
    return out
