"""Actions for untrusted loads (no Dagster imports): re-sync the table before the deadlines that
depend on it, through validation and the gate like any planner action. A load that landed
nothing with its cursor unmoved (``zero_rows`` only) gets a plain sync instead: the next
incremental sync reads from the same cursor.

A zero-row, partial or stuck-cursor load is not repaired by the next incremental sync (the rows
it missed are behind its cursor), so the answer is a table-level re-sync (``resync_table``); the
policies decide whether it runs by itself (``auto`` + ``resync_table`` in ``auto_approve``) or
waits for a person. Downstream models are held meanwhile by the data-time cap
(``orchestrator.health.hold``).
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.core.graph import DASHBOARD
from orchestrator.core.records import Action, Assessment, Snapshot


RESYNC_COST_FACTOR = 3.0  # a table re-sync reads the table's history: priced at 3 usual syncs


def _estimate(snapshot: Snapshot, conn: str, tables: list[str]) -> float:
    """What the re-sync may cost (for the gate's budget rule): 3 x the connector's usual sync."""
    per_conn = [c.amount_usd for c in snapshot.costs if c.connector == conn and not c.asset_key]
    per_table: dict[str, list[float]] = {}
    for c in snapshot.costs:
        if c.asset_key in tables:
            per_table.setdefault(c.asset_key, []).append(c.amount_usd)
    if per_table:
        usual = sum(sum(v) / len(v) for v in per_table.values())
    elif per_conn:
        usual = sum(per_conn) / len(per_conn)
    else:
        return 0.0
    return round(RESYNC_COST_FACTOR * usual, 4)


def _kinds(why: str) -> set[str]:
    """The anomaly kinds a hold's reason names ("zero_rows: ...; stuck_cursor: ...")."""
    return {part.strip().split(":")[0].split(" ")[0] for part in why.split("; ") if part.strip()}


def resync_untrusted(snapshot: Snapshot, assessment: Assessment, planned=(), *, now: datetime) -> list[Action]:
    from orchestrator.planning.common import action_id

    loads = getattr(snapshot, "anomalous_loads", None) or {}
    if not loads:
        return []
    graph = snapshot.graph
    busy = {a.connector for a in planned if a.connector and a.type in ("resync_table", "full_resync")}
    busy |= {s.connector for s in snapshot.syncs if s.status in ("running", "rescheduled")}
    by_conn: dict[str, list[str]] = {}
    for table in sorted(loads):
        node = graph.get(table)
        if node is None or not node.connector or node.connector in busy:
            continue
        by_conn.setdefault(node.connector, []).append(table)
    out = []
    for conn, tables in by_conn.items():
        governed = [(k, fa) for k, fa in assessment.freshness.items()
                    if fa.deadline is not None and (set(tables) & graph.upstream_closure(k, include_self=True))]
        if not governed:
            continue  # nothing depends on it under a deadline: the check says it, no action
        key, first = min(governed, key=lambda kv: kv[1].deadline)
        dashboards = sorted(k for k, _ in governed if getattr(graph.get(k), "role", None) == DASHBOARD)
        why = "; ".join(f"{t}: {loads[t][1]}" for t in tables)
        marker = "|".join(f"{t}@{loads[t][0].isoformat() if loads[t][0] else 'none'}" for t in tables)
        held = (f"{len(governed)} governed asset(s) held meanwhile"
                + (f"; dashboards {', '.join(dashboards[:5])}" if dashboards else ""))
        if all(_kinds(loads[t][1]) <= {"zero_rows"} for t in tables):
            # nothing landed and the cursor stayed: the next sync picks the rows up -- sync now
            out.append(Action(
                action_id=action_id("materialize", conn, tuple(tables), marker), type="materialize",
                asset_keys=tuple(tables), estimated_cost_usd=_estimate(snapshot, conn, tables) / RESYNC_COST_FACTOR,
                reason=(f"untrusted load ({why}); the cursor did not move, so a new sync picks the rows up: "
                        f"sync now, before the deadline {first.deadline.isoformat()} of {key} ({held})"),
                cause="silent_failure", cycle=marker,
            ))
            continue
        tabs: dict[str, tuple[str, ...]] = {}
        for t in tables:
            schema, _, name = t.partition("/")
            tabs[schema] = tabs.get(schema, ()) + (name,)
        out.append(Action(
            estimated_cost_usd=_estimate(snapshot, conn, tables),
            action_id=action_id("resync_table", conn, tabs, marker), type="resync_table", connector=conn,
            tables=tabs, asset_keys=tuple(tables),
            reason=(f"untrusted load ({why}); re-sync {len(tables)} table(s) before the deadline "
                    f"{first.deadline.isoformat()} of {key} ({held})"),
            cause="silent_failure", cycle=marker,
        ))
    return out
