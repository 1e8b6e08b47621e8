"""Column lineage of a dbt project from its compiled SQL (sqlglot, warehouse dialect).

For every model, in dependency order: the compiled SQL is parsed with the references to its
parents (``relation_name``: a table, or an external ``read_parquet(...)`` for sources read from
landed files) replaced by placeholders, qualified against the parents' columns (sources: the
manifest's columns; models: the columns worked out before them) with ``select *`` kept as is,
then walked scope by scope (CTEs, subqueries, unions):

- ``outputs[model][column]``: the parent columns each output column is computed from, through
  stars too (a ``select *`` passes a column along);
- ``reads[model]``: the parent columns the model's SQL names explicitly (in a projection, a join,
  a filter, a grouping, a window), each with how it is used: cast to a type, passed through
  unchanged under some name, or used in an expression. A model whose parent loses a column it
  reads fails; one that only passes it along through ``*`` does not.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope

Ref = tuple[str, str]  # (node unique_id, column name lower-case)
_PLACEHOLDER_SCHEMA = "__dbt_parents__"


@dataclass(frozen=True)
class Use:
    """How a model uses one parent column where it names it."""

    kind: str  # "cast" | "passthrough" | "expression"
    target: str | None = None  # cast: the type; passthrough: the output column


@dataclass
class ModelLineage:
    unique_id: str
    outputs: dict[str, set[Ref]] = field(default_factory=dict)  # ordered output columns
    reads: dict[Ref, set[Use]] = field(default_factory=lambda: defaultdict(set))
    # output columns that are a parent column passed through '*' unchanged (vanish with it)
    passthrough: dict[str, Ref] = field(default_factory=dict)
    error: str | None = None


@dataclass
class ProjectLineage:
    models: dict[str, ModelLineage]
    children: dict[str, set[str]]  # node -> models/exposures depending on it
    exposures: dict[str, set[str]]  # exposure unique_id -> nodes it depends on
    names: dict[str, str]  # unique_id -> short name
    source_refs: dict[str, str]  # "source.table" -> source unique_id
    errors: dict[str, str] = field(default_factory=dict)
    # models with an enforced contract (``contract: {enforced: true}``): column -> declared data_type
    contracts: dict[str, dict[str, str | None]] = field(default_factory=dict)
    # model -> parents it passes whole through '*' (a column added there reaches the model)
    star_parents: dict[str, set[str]] = field(default_factory=dict)

    def consumers(self, node: str) -> set[str]:
        return {c for c in self.children.get(node, set()) if c in self.models}

    def passthrough_origin(self, model: str, column: str) -> Ref | None:
        """The source column an output column is, unchanged (through '*' and bare projections /
        renames, no expression or cast on the way); None when it is computed."""
        seen: set[Ref] = set()
        ref: Ref = (model, column.lower())
        while ref[0] in self.models and ref not in seen:
            seen.add(ref)
            ml = self.models[ref[0]]
            if ref[1] in ml.passthrough:
                ref = ml.passthrough[ref[1]]
                continue
            parents = ml.outputs.get(ref[1]) or set()
            if len(parents) != 1:
                return None
            parent = next(iter(parents))
            if Use("passthrough", ref[1]) not in ml.reads.get(parent, set()):
                return None
            ref = parent
        return ref if ref[0] not in self.models else None


def build_lineage(manifest: dict[str, Any], dialect: str | None = None) -> ProjectLineage:
    dialect = dialect or (manifest.get("metadata") or {}).get("adapter_type") or "duckdb"
    nodes = manifest.get("nodes", {})
    sources = manifest.get("sources", {})
    models = {uid: n for uid, n in nodes.items() if n.get("resource_type") in ("model", "snapshot")}
    columns_of: dict[str, list[str]] = {}
    for uid, source in sources.items():
        cols = [c.get("name") or name for name, c in (source.get("columns") or {}).items()]
        relation = source.get("relation_name") or ""
        # read_parquet(..., filename='x', file_row_number=true) adds columns of its own
        if m := re.search(r"filename\s*=\s*'([^']+)'", relation):
            cols.append(m.group(1))
        elif re.search(r"filename\s*=\s*true", relation, re.I):
            cols.append("filename")
        if re.search(r"file_row_number\s*=\s*true", relation, re.I):
            cols.append("file_row_number")
        columns_of[uid] = [c.lower() for c in cols]

    children: dict[str, set[str]] = defaultdict(set)
    for uid, node in models.items():
        for parent in (node.get("depends_on") or {}).get("nodes", []):
            children[parent].add(uid)
    exposures = {}
    for uid, exposure in (manifest.get("exposures") or {}).items():
        parents = set((exposure.get("depends_on") or {}).get("nodes", []))
        exposures[uid] = parents
        for parent in parents:
            children[parent].add(uid)

    result: dict[str, ModelLineage] = {}
    errors: dict[str, str] = {}
    for uid in _topological(models):
        node = models[uid]
        lineage = model_lineage(uid, node, {**nodes, **sources}, columns_of, dialect)
        result[uid] = lineage
        if lineage.error:
            errors[uid] = lineage.error
        columns_of[uid] = list(lineage.outputs) or [c.lower() for c in node.get("columns") or {}]
    names = {uid: n.get("name", uid) for uid, n in {**nodes, **sources, **(manifest.get("exposures") or {})}.items()}
    source_refs = {f"{s['source_name']}.{s['name']}": uid for uid, s in sources.items()}
    contracts = {uid: {(c.get("name") or name).lower(): c.get("data_type") for name, c in (n.get("columns") or {}).items()}
                 for uid, n in models.items() if ((n.get("config") or {}).get("contract") or {}).get("enforced")}
    star_parents: dict[str, set[str]] = {}
    for uid, ml in result.items():
        passed = set(ml.passthrough.values())
        for parent in (models[uid].get("depends_on") or {}).get("nodes", []):
            known = columns_of.get(parent) or []
            if known and all((parent, c) in passed for c in known):
                star_parents.setdefault(uid, set()).add(parent)
    return ProjectLineage(result, dict(children), exposures, names, source_refs, errors, contracts, star_parents)


def _topological(models: dict[str, Any]) -> list[str]:
    order, seen = [], set()

    def visit(uid: str) -> None:
        if uid in seen or uid not in models:
            return
        seen.add(uid)
        for parent in (models[uid].get("depends_on") or {}).get("nodes", []):
            visit(parent)
        order.append(uid)

    for uid in sorted(models):
        visit(uid)
    return order


def model_lineage(uid: str, node: dict[str, Any], all_nodes: dict[str, Any],
                  columns_of: dict[str, list[str]], dialect: str) -> ModelLineage:
    lineage = ModelLineage(uid)
    sql = node.get("compiled_code") or node.get("compiled_sql")
    if not sql:
        lineage.error = "no compiled SQL (run dbt compile)"
        return lineage
    placeholders: dict[str, str] = {}
    parents = sorted(
        (p for p in (node.get("depends_on") or {}).get("nodes", []) if p in all_nodes),
        key=lambda p: -len(all_nodes[p].get("relation_name") or ""),
    )
    schema: dict[str, dict[str, str]] = {}
    for i, parent in enumerate(parents):
        relation = all_nodes[parent].get("relation_name")
        if not relation:
            continue
        name = f"p{i}"
        placeholders[name] = parent
        sql = sql.replace(relation, f'"{_PLACEHOLDER_SCHEMA}"."{name}"')
        schema[name] = {c: "unknown" for c in columns_of.get(parent, [])}
    try:
        tree = sqlglot.parse_one(sql, dialect=dialect)
        # Mark what the author wrote, so columns a '*' expands to stay pass-throughs.
        for select in tree.find_all(exp.Select):
            for projection in select.expressions:
                if not isinstance(projection, exp.Star) and not (
                    isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
                ):
                    projection.meta["explicit"] = True
        tree = qualify(tree, dialect=dialect, schema={_PLACEHOLDER_SCHEMA: schema},
                       validate_qualify_columns=False, quote_identifiers=False, identify=False)
        root = build_scope(tree)
    except (sqlglot.errors.SqlglotError, KeyError, ValueError) as exc:
        lineage.error = f"{type(exc).__name__}: {exc}"[:500]
        return lineage
    if root is None:
        lineage.error = "no query"
        return lineage
    walker = _Walker(placeholders)
    for name, expr, explicit in walker.outputs(root):
        lineage.outputs[name] = walker.resolve_name(root, name) if _is_set(root) else walker.resolve_expression(root, expr)
        column = expr.this if isinstance(expr, exp.Alias) else expr
        if not explicit and isinstance(column, exp.Column):
            through = walker.passthrough(root, column.table, column.name.lower())
            if len(through) == 1:
                lineage.passthrough[name] = next(iter(through))
    walker.collect_reads(root, lineage.reads)
    return lineage


def _is_set(scope: Scope) -> bool:
    return isinstance(scope.expression, exp.SetOperation)


def _explicit(projection: exp.Expression) -> bool:
    return bool(projection.meta.get("explicit") or (
        isinstance(projection, exp.Alias) and projection.this.meta.get("explicit")))


class _Walker:
    def __init__(self, placeholders: dict[str, str]):
        self.placeholders = placeholders
        self._active: set[tuple[int, str, str]] = set()

    @staticmethod
    def outputs(scope: Scope) -> list[tuple[str, exp.Expression, bool]]:
        """(name, projection, written by the author) of what a scope produces."""
        while _is_set(scope):
            scope = scope.set_operation_scopes[0]
        if not isinstance(scope.expression, exp.Select):
            return []
        return [(p.alias_or_name.lower(), p, _explicit(p)) for p in scope.expression.expressions]

    def resolve_expression(self, scope: Scope, expression: exp.Expression) -> set[Ref]:
        refs: set[Ref] = set()
        for column in expression.find_all(exp.Column):
            if isinstance(column.this, exp.Star):
                continue
            refs |= self.resolve_column(scope, column.table, column.name.lower())
        for subquery in expression.find_all(exp.Subquery):
            sub = next((s for s in scope.subquery_scopes if s.expression is subquery.this), None)
            if sub is not None:
                for _, expr, _ in self.outputs(sub):
                    refs |= self.resolve_expression(sub, expr)
        return refs

    def resolve_column(self, scope: Scope, table: str, name: str) -> set[Ref]:
        key = (id(scope), table, name)
        if key in self._active:
            return set()
        self._active.add(key)
        try:
            source = scope.sources.get(table) if table else None
            if isinstance(source, exp.Table):
                parent = self.placeholders.get(source.name)
                return {(parent, name)} if parent else set()
            if isinstance(source, Scope) and not isinstance(source.expression, (exp.Select, exp.SetOperation)):
                # a table function (unnest(generate_series(...)) as t(x)): from its arguments
                return {ref for column in source.expression.find_all(exp.Column)
                        for ref in self.resolve_column(scope, column.table, column.name.lower())}
            if isinstance(source, Scope):
                return self.resolve_name(source, name)
            return set()
        finally:
            self._active.discard(key)

    def resolve_name(self, scope: Scope, name: str) -> set[Ref]:
        """The parent columns behind output column `name` of `scope`."""
        branches = scope.set_operation_scopes if _is_set(scope) else [scope]
        names = [n for n, _, _ in self.outputs(scope)]
        if name not in names:
            return set()
        index = names.index(name)
        refs: set[Ref] = set()
        for branch in branches:
            if _is_set(branch):
                refs |= self.resolve_name(branch, name)
                continue
            outs = self.outputs(branch)
            if index < len(outs):
                refs |= self.resolve_expression(branch, outs[index][1])
        return refs

    def passthrough(self, scope: Scope, table: str, name: str) -> set[Ref]:
        """Parent columns reached from `table.name` through '*' only (no expression between)."""
        source = scope.sources.get(table) if table else None
        if isinstance(source, exp.Table):
            parent = self.placeholders.get(source.name)
            return {(parent, name)} if parent else set()
        if not isinstance(source, Scope):
            return set()
        refs: set[Ref] = set()
        branches = source.set_operation_scopes if _is_set(source) else [source]
        names = [n for n, _, _ in self.outputs(source)]
        if name not in names:
            return refs
        index = names.index(name)
        for branch in branches:
            outs = self.outputs(branch)
            if index >= len(outs) or outs[index][2]:
                continue  # computed by the author in that scope: its reads are counted there
            projection = outs[index][1]
            column = projection.this if isinstance(projection, exp.Alias) else projection
            if isinstance(column, exp.Column):
                refs |= self.passthrough(branch, column.table, column.name.lower())
        return refs

    def collect_reads(self, root: Scope, reads: dict[Ref, set[Use]]) -> None:
        """Every parent column the author names in any scope, with how it is used there."""
        for scope in root.traverse():
            for column in scope.columns:
                if isinstance(column.this, exp.Star) or _from_star(column):
                    continue
                for ref in self.passthrough(scope, column.table, column.name.lower()):
                    reads[ref].add(_use(column))


def _from_star(column: exp.Column) -> bool:
    node = column
    while node.parent is not None and not isinstance(node.parent, exp.Select):
        node = node.parent
    select = node.parent
    return isinstance(select, exp.Select) and node in select.expressions and not _explicit(node)


def _use(column: exp.Column) -> Use:
    parent = column.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    if isinstance(parent, (exp.Cast, exp.TryCast)) and parent.this is column or (
        isinstance(parent, (exp.Cast, exp.TryCast)) and isinstance(parent.this, exp.Paren)
    ):
        return Use("cast", parent.to.sql("duckdb").lower())
    if isinstance(parent, exp.Alias):
        return Use("passthrough", parent.alias.lower())
    if isinstance(parent, exp.Select) and column in parent.expressions:
        return Use("passthrough", column.name.lower())
    return Use("expression")
