"""Impact of a source column change by column lineage, down to exposures and their deadlines.

Definitions (what the tests assert exactly):

- ``columns``: every (model, column) whose lineage includes the changed source column, transitively.
- ``models``: models with such a column or naming one explicitly (a join, a filter, a grouping).
- ``broken_models`` (breaking changes): models whose SQL stops working -- for a removed or renamed
  column, those naming it (or a copy of it passed through ``*``); for a type change, those using it
  in a way the new type does not support (a cast that cannot convert, arithmetic on a string ...).
  Models with an enforced contract (``contract: {enforced: true}``) also break when what reaches
  them no longer matches it: a contracted column that was a copy of a removed/renamed one, a
  contracted column that passes the retyped one through unchanged into another type family than
  its ``data_type``, an added column arriving through ``*`` (dbt refuses columns the contract does
  not list).
- ``blocked_models``: models downstream of a broken one (dbt skips them), not broken themselves.
- ``exposures``: exposures (dashboards) reading any impacted, broken or blocked model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.schema_changes.detect import ColumnChange, TableDiff
from orchestrator.schema_changes.lineage import ProjectLineage, Ref, Use
from orchestrator.schema_changes.types import cast_is_safe, family, implicitly_compatible


@dataclass(frozen=True)
class Deadline:
    exposure: str
    at: datetime | None  # the next deadline (aware)
    label: str  # "06:00 America/New_York"
    owners: tuple[str, ...] = ()
    tier: str | None = None


@dataclass
class ChangeImpact:
    table: str  # "stripe.invoice"
    change: ColumnChange
    breaking: bool
    reason: str
    columns: set[tuple[str, str]] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    broken_models: set[str] = field(default_factory=set)
    blocked_models: set[str] = field(default_factory=set)
    exposures: set[str] = field(default_factory=set)
    deadlines: list[Deadline] = field(default_factory=list)
    # models naming the source column itself, with how: what a patch rewrites
    direct_readers: dict[str, set[Use]] = field(default_factory=dict)
    owners: set[str] = field(default_factory=set)

    def summary(self) -> str:
        text = self.change.describe(self.table)
        if not self.breaking:
            n = len(self.models)
            return f"{text}: non-breaking" + (f" ({n} model{'s' * (n != 1)} read it)" if n else "")
        n, d = len(self.broken_models), len(self.exposures)
        parts = [f"breaks {n} model{'s' * (n != 1)}"]
        if self.blocked_models:
            parts.append(f"blocks {len(self.blocked_models)}")
        if d:
            due = sorted((x for x in self.deadlines if x.at is not None), key=lambda x: x.at)
            dashboards = f"{d} dashboard{'s' * (d != 1)}"
            parts.append(f"{dashboards} due {due[0].label}" if due else dashboards)
        return f"{text}: " + ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table, "change": self.change.as_dict(), "breaking": self.breaking,
            "reason": self.reason, "summary": self.summary(),
            "columns": sorted(f"{m}.{c}" for m, c in self.columns), "models": sorted(self.models),
            "broken_models": sorted(self.broken_models), "blocked_models": sorted(self.blocked_models),
            "exposures": sorted(self.exposures), "owners": sorted(self.owners),
            "deadlines": [{"exposure": d.exposure, "at": d.at.isoformat() if d.at else None,
                           "label": d.label} for d in self.deadlines],
        }


def analyze(diff: TableDiff, lineage: ProjectLineage,
            deadlines: Mapping[str, Deadline] | None = None) -> list[ChangeImpact]:
    source = lineage.source_refs.get(diff.ref)
    deadlines = deadlines if deadlines is not None else {}
    return [analyze_change(diff.ref, source, change, lineage, deadlines) for change in diff.changes]


def analyze_change(table: str, source: str | None, change: ColumnChange, lineage: ProjectLineage,
                   deadlines: Mapping[str, Deadline]) -> ChangeImpact:
    names = lineage.names
    impact = ChangeImpact(table, change, breaking=False, reason="")
    if change.kind == "added" and source is not None and lineage.contracts:
        return _added_into_contracts(impact, source, lineage, deadlines)
    if change.kind == "added" or source is None:
        impact.reason = "no model reads a column that was not there" if change.kind == "added" \
            else f"{table} is not a source of the dbt project"
        return impact
    origin: Ref = (source, change.column.lower())
    columns, models = _downstream(origin, lineage)
    impact.columns = {(names[m], c) for m, c in columns}
    impact.models = {names[m] for m in models}
    copies = _copies(origin, lineage)  # the column and its copies passed along by '*'
    impact.direct_readers = {
        m: {use for ref in copies if ref in ml.reads for use in ml.reads[ref]}
        for m, ml in lineage.models.items() if any(ref in ml.reads for ref in copies)
    }
    broken: set[str] = set()
    if change.kind in ("removed", "renamed"):
        broken = _readers_of_vanished(origin, lineage)
        verb = "reads" if change.kind == "removed" else "reads the old name"
        impact.reason = (f"{len(broken)} model(s) {verb} {change.column}" if broken
                         else "no model names the column")
        contracted = {m for m, c in copies if c in lineage.contracts.get(m, {})} - broken
        if contracted:
            broken |= contracted
            impact.reason += "; enforced contract of " + ", ".join(sorted(names[m] for m in contracted)) + \
                f" lists {change.column}"
    elif change.kind == "type_changed":
        broken, why = _unsafe_uses(origin, family(change.old_type), family(change.new_type), lineage)
        impact.reason = why or "every use converts the new type"
    else:
        impact.reason = "nullability only: models keep building (tests on it may fail)"
    impact.breaking = bool(broken)
    impact.broken_models = {names[m] for m in broken}
    blocked = _descendants(broken, lineage) - broken
    impact.blocked_models = {names[m] for m in blocked}
    touched = models | broken | blocked
    impact.exposures = {
        names[e] for e, parents in lineage.exposures.items() if parents & touched
    }
    impact.deadlines = [deadlines[e] for e in sorted(impact.exposures) if e in deadlines]
    for deadline in impact.deadlines:
        impact.owners.update(deadline.owners)
    return impact


def _downstream(origin: Ref, lineage: ProjectLineage) -> tuple[set[Ref], set[str]]:
    frontier = {origin}
    columns: set[Ref] = set()
    models: set[str] = set()
    pending = [origin[0]]
    seen_nodes: set[str] = set()
    while pending:
        node = pending.pop()
        for model in sorted(lineage.consumers(node)):
            ml = lineage.models[model]
            new = {(model, out) for out, refs in ml.outputs.items() if refs & frontier} - columns
            if new or any(ref in frontier for ref in ml.reads):
                models.add(model)
            if new:
                columns |= new
                frontier |= new
                pending.append(model)
            elif model not in seen_nodes:
                seen_nodes.add(model)
    return columns, models


def _copies(origin: Ref, lineage: ProjectLineage) -> set[Ref]:
    copies = {origin}
    pending = [origin[0]]
    while pending:
        node = pending.pop()
        for model in lineage.consumers(node):
            passed = {(model, out) for out, ref in lineage.models[model].passthrough.items() if ref in copies}
            if passed - copies:
                copies |= passed
                pending.append(model)
    return copies


def _readers_of_vanished(origin: Ref, lineage: ProjectLineage) -> set[str]:
    copies = _copies(origin, lineage)
    return {m for m, ml in lineage.models.items() if any(ref in ml.reads for ref in copies)}


def _unsafe_uses(origin: Ref, old: str, new: str, lineage: ProjectLineage) -> tuple[set[str], str]:
    """Models using the retyped column in a way the new type breaks (through pass-throughs)."""
    broken: set[str] = set()
    reasons: list[str] = []
    typed = {origin}
    pending = [origin[0]]
    while pending:
        node = pending.pop()
        for model in lineage.consumers(node):
            ml = lineage.models[model]
            for ref, uses in ml.reads.items():
                if ref not in typed:
                    continue
                for use in uses:
                    if use.kind == "cast":
                        if not cast_is_safe(new, family(use.target)):
                            broken.add(model)
                            reasons.append(f"{lineage.names[model]} casts {ref[1]} ({new}) to {use.target}")
                    elif use.kind == "passthrough":
                        if (model, use.target) not in typed:
                            typed.add((model, use.target))
                            pending.append(model)
                    elif not implicitly_compatible(old, new):
                        broken.add(model)
                        reasons.append(f"{lineage.names[model]} uses {ref[1]} as {old}, now {new}")
            passed = {(model, out) for out, ref in ml.passthrough.items() if ref in typed}
            if passed - typed:
                typed |= passed
                pending.append(model)
    for model, column in typed:  # the new type reaches a contracted column unchanged
        declared = lineage.contracts.get(model, {}).get(column)
        # dbt compares the built column's type with the contract's: any other family fails
        if declared and family(declared) not in (new, "other"):
            broken.add(model)
            reasons.append(f"{lineage.names[model]}'s enforced contract declares {column} {declared}, now {new}")
    return broken, "; ".join(sorted(set(reasons))[:5])


def _added_into_contracts(impact: ChangeImpact, source: str, lineage: ProjectLineage,
                          deadlines: Mapping[str, Deadline]) -> ChangeImpact:
    """An added column breaks the contracted models it reaches through '*' (an extra column)."""
    reached, pending = set(), [source]
    while pending:
        node = pending.pop()
        for model in lineage.consumers(node):
            if node in lineage.star_parents.get(model, set()) and model not in reached:
                reached.add(model)
                pending.append(model)
    broken = {m for m in reached if m in lineage.contracts}
    if not broken:
        impact.reason = "no model reads a column that was not there"
        return impact
    names = lineage.names
    impact.breaking = True
    impact.broken_models = {names[m] for m in broken}
    impact.blocked_models = {names[m] for m in _descendants(broken, lineage) - broken}
    impact.reason = ("'*' brings it into the enforced contract of " + ", ".join(sorted(impact.broken_models))
                     + ", which does not list it")
    touched = broken | _descendants(broken, lineage)
    impact.exposures = {names[e] for e, parents in lineage.exposures.items() if parents & touched}
    impact.deadlines = [deadlines[e] for e in sorted(impact.exposures) if e in deadlines]
    for deadline in impact.deadlines:
        impact.owners.update(deadline.owners)
    return impact


def _descendants(models: set[str], lineage: ProjectLineage) -> set[str]:
    out: set[str] = set()
    stack = list(models)
    while stack:
        node = stack.pop()
        for child in lineage.consumers(node):
            if child not in out:
                out.add(child)
                stack.append(child)
    return out | models


def deadlines_from_resolution(resolution: Any, lineage: ProjectLineage,
                              key_of_exposure=lambda name: f"dashboard/{name}") -> dict[str, Deadline]:
    """Exposure name -> its next SLA deadline and owners, from resolved SLA policies (when valid)."""
    out: dict[str, Deadline] = {}
    if resolution is None or not getattr(resolution, "ok", False):
        return out
    for uid in lineage.exposures:
        sla = resolution.sla(key_of_exposure(lineage.names[uid]))
        if sla is None:
            continue
        deadline = sla.deadline
        at = deadline.target_deadline if deadline is not None else None
        label = ""
        if at is not None:
            local = at.astimezone(deadline.schedule.zone)
            label = f"{local:%H:%M} {deadline.schedule.zone}"
        out[lineage.names[uid]] = Deadline(lineage.names[uid], at, label, tuple(sla.owners), str(sla.tier.value)
                            if hasattr(sla.tier, "value") else str(sla.tier))
    return out
