"""Failures: link downstream failures to their upstream root, diagnose each root once.

A failure F is caused by an earlier failure G when G's asset (or one of G's connector's tables)
is upstream of F's asset and G happened within ``window`` before F (plus ``grace`` after, since
clocks and polling differ). The same event seen twice -- a Dagster step failure of a connector
asset and the connector's own failed sync -- is linked the same way: the connector's record is
the root (it carries the vendor's message).

Linking is one pass in topological order over the assets carrying a failure's influence (the
downstream closures of failed assets only), keeping per asset the few latest upstream failures.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from orchestrator.core.records import DiagnosedFailure, FailureRecord

DEFAULT_WINDOW = timedelta(hours=6)
DEFAULT_GRACE = timedelta(minutes=5)
_KEEP = 8
_CONNECTOR_SYSTEMS = ("fivetran", "airbyte")


def _assets_of(f: FailureRecord, tables_of: dict[str, list[str]]) -> list[str]:
    if f.asset_key:
        return [f.asset_key]
    if f.connector:
        return tables_of.get(f.connector, [])
    return []


def link_root_causes(
    failures: Iterable[FailureRecord],
    graph,
    *,
    window: timedelta = DEFAULT_WINDOW,
    grace: timedelta = DEFAULT_GRACE,
) -> dict[str, str | None]:
    """failure_id -> root failure_id (None for roots). Roots of roots are followed. The last
    answer is kept and returned again (a copy) for the same failures, graph and window: a sensor
    sees the same failures tick after tick, and the pass covers the failed assets' whole
    downstream closure."""
    failures = sorted(failures, key=lambda f: (f.at, f.failure_id))
    if not failures:
        return {}
    inputs = (failures, window, grace)
    with _LINK_LOCK:
        hit = _LINK_MEMO.get("last")
        if hit is not None and hit[0] is graph and hit[1] == inputs:
            return dict(hit[2])
    root = _link(failures, graph, window, grace)
    with _LINK_LOCK:
        _LINK_MEMO["last"] = (graph, inputs, dict(root))
    return root


_LINK_MEMO: dict[str, tuple] = {}
_LINK_LOCK = threading.Lock()


def _link(failures: list[FailureRecord], graph, window: timedelta, grace: timedelta) -> dict[str, str | None]:
    tables_of: dict[str, list[str]] = defaultdict(list)
    for node in graph:
        if node.connector:
            tables_of[node.connector].append(node.key)
    on_asset: dict[str, list[FailureRecord]] = defaultdict(list)
    for f in failures:
        for key in _assets_of(f, tables_of):
            if key in graph:
                on_asset[key].append(f)

    # upstream failures reaching each asset (strictly upstream), one topological pass over the
    # downstream closure of failed assets
    reach = graph.downstream_closure(*on_asset.keys(), include_self=True) if on_asset else set()
    upstream_failures: dict[str, list[FailureRecord]] = {}
    for key in graph.topological_order():
        if key not in reach:
            continue
        parents = graph.parents(key)
        # one list reaching it through every parent (a chain, or a diamond over one upstream
        # failure set), nothing failed on the parents themselves: the same already sorted, already
        # cut list, shared instead of merged and sorted again per asset (read-only below)
        shared = None
        for p in parents:
            if p in on_asset:
                shared = None
                break
            lst = upstream_failures.get(p)
            if lst is None:
                continue
            if shared is None:
                shared = lst
            elif lst is not shared:
                shared = None
                break
        if shared is not None:
            upstream_failures[key] = shared
            continue
        inherited: dict[str, FailureRecord] = {}
        for p in parents:
            for f in upstream_failures.get(p, ()):
                inherited[f.failure_id] = f
            for f in on_asset.get(p, ()):
                inherited[f.failure_id] = f
        if inherited:
            upstream_failures[key] = sorted(inherited.values(), key=lambda f: f.at)[-_KEEP * 4:]

    def caused(earlier: FailureRecord, later: FailureRecord) -> bool:
        return later.at - window <= earlier.at <= later.at + grace and earlier.failure_id != later.failure_id

    root: dict[str, str | None] = {}
    for f in failures:
        cause: FailureRecord | None = None
        # the same event reported by the connector itself (vendor message): link to it
        if f.system not in _CONNECTOR_SYSTEMS:
            conn = f.connector or None
            if conn is None and f.asset_key and f.asset_key in graph:
                conn = graph.node(f.asset_key).connector
            if conn:
                same = [
                    g for g in failures
                    if g.connector == conn and g.system in _CONNECTOR_SYSTEMS and caused(g, f)
                    and abs((g.at - f.at).total_seconds()) <= (window.total_seconds())
                ]
                if same:
                    cause = min(same, key=lambda g: abs((g.at - f.at).total_seconds()))
        if cause is None:
            candidates = []
            for key in _assets_of(f, tables_of):
                candidates.extend(g for g in upstream_failures.get(key, ()) if caused(g, f))
            if candidates:
                cause = min(candidates, key=lambda g: (g.at, g.failure_id))  # earliest = most root
        root[f.failure_id] = cause.failure_id if cause else None
    # follow chains to the ultimate root
    for fid in list(root):
        seen = {fid}
        cur = root[fid]
        while cur is not None and root.get(cur) is not None and cur not in seen:
            seen.add(cur)
            cur = root[cur]
        root[fid] = cur
    return root


def diagnose_failures(
    failures: Iterable[FailureRecord],
    graph,
    memory=None,
    *,
    roots: dict[str, str | None] | None = None,
    known=None,
) -> list[DiagnosedFailure]:
    """Diagnose root failures (rules + failure memory); link the others to their root.
    ``known``: failure id -> a diagnosis already made and stored (the failure sensor's); those
    roots are not diagnosed again."""
    from orchestrator.diagnosis import diagnose

    failures = list(failures)
    if roots is None:
        roots = link_root_causes(failures, graph)
    diagnosed: dict[str, DiagnosedFailure] = {}
    for f in failures:
        if roots.get(f.failure_id) is None:
            k = known.get(f.failure_id) if known else None
            if k is not None:
                diagnosed[f.failure_id] = DiagnosedFailure(
                    failure=f, category=k.category, transient=k.transient, confidence=k.confidence,
                    evidence=tuple(k.evidence))
                continue
            d = diagnose(f.message, f.system, memory)
            diagnosed[f.failure_id] = DiagnosedFailure(
                failure=f, category=d.category, transient=d.transient,
                confidence=d.confidence, evidence=tuple(d.evidence),
            )
    return with_roots(failures, roots, diagnosed)


def with_roots(failures: list[FailureRecord], roots: dict, diagnosed: dict[str, DiagnosedFailure]) -> list[DiagnosedFailure]:
    """Every failure in order: a root keeps its own diagnosis, a downstream one inherits its
    root's (``upstream_delay`` when the root is not among them)."""
    by_id = {f.failure_id: f for f in failures}
    out = []
    for f in failures:
        rid = roots.get(f.failure_id)
        if rid is None:
            out.append(diagnosed[f.failure_id])
            continue
        root = diagnosed.get(rid)
        rf = by_id[rid]
        where = rf.asset_key or rf.connector or rf.run_id
        out.append(DiagnosedFailure(
            failure=f,
            category=root.category if root else "upstream_delay",
            transient=root.transient if root else True,
            confidence=root.confidence if root else 0.5,
            evidence=(f"caused by upstream failure {rid} ({rf.system}, {where})",),
            root_failure_id=rid,
        ))
    return out
