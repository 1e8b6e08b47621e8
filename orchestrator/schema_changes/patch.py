"""Patches for breaking schema changes: rewrite the dbt project, verify it in a scratch database.

Renames and type changes are answered deterministically:

- in every model that names the source column (the direct readers found by the lineage), each
  reference in the SQL is rewritten -- the new name, or ``cast(col as <expected type>)`` -- with
  sqlglot's tokenizer over the raw model file (Jinja blocks masked, formatting kept); a bare
  projection keeps its output name (``amount_due_total as amount_due``) so nothing downstream moves;
  a string argument naming the column in a macro call (``{{ cents_to_dollars('amount_due') }}``)
  is rewritten the same way;
- the source's YAML gets the new column name / delivered type.

``verify`` copies the project to a temporary folder, applies the patch, writes a profile for a
fresh scratch DuckDB file there (never the production target), and runs ``dbt compile`` and
``dbt build --select +<affected models>`` against the new data; the per-node results from
``run_results.json`` are the evidence shown with the proposal. Nothing is written to the real
project here: ``publish`` does that on a new branch once a person approves.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from sqlglot.tokens import TokenType

from orchestrator.schema_changes.impact import ChangeImpact
from orchestrator.schema_changes.types import CANONICAL, family

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_CLAUSES = {
    TokenType.SELECT: "select", TokenType.FROM: "from", TokenType.WHERE: "where",
    TokenType.GROUP_BY: "group", TokenType.ORDER_BY: "order", TokenType.HAVING: "having",
    TokenType.QUALIFY: "qualify", TokenType.JOIN: "join", TokenType.ON: "on",
    TokenType.PARTITION_BY: "partition", TokenType.USING: "using", TokenType.LIMIT: "limit",
}
_IDENT = (TokenType.VAR, TokenType.IDENTIFIER)
_PROJECTION_START = (TokenType.SELECT, TokenType.COMMA, TokenType.DISTINCT)
_PROJECTION_END = (TokenType.COMMA, TokenType.FROM, TokenType.R_PAREN)


class PatchError(Exception):
    """A change the deterministic patcher cannot answer (named in the message)."""


@dataclass
class Patch:
    """File edits (path relative to the project -> (before, after)) answering some changes."""

    files: dict[str, tuple[str, str]] = field(default_factory=dict)
    answered: list[str] = field(default_factory=list)  # change summaries this patch answers
    unanswered: list[str] = field(default_factory=list)  # breaking changes it does not (why)
    models: set[str] = field(default_factory=set)  # models the patch rewrites
    affected: set[str] = field(default_factory=set)  # those + every model downstream: built and tested
    author: str = "rules"  # "rules" (sqlglot rewrite), "llm:<model>", or both joined by "+"

    def diff(self) -> str:
        out = []
        for path in sorted(self.files):
            before, after = self.files[path]
            out.extend(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                            f"a/{path}", f"b/{path}"))
        return "".join(out)

    def apply_to(self, root: Path) -> None:
        for path, (_, after) in self.files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(after, encoding="utf-8")

    def _edit(self, root: Path, path: str, edit) -> None:
        before = self.files[path][1] if path in self.files else (root / path).read_text(encoding="utf-8")
        original = self.files[path][0] if path in self.files else before
        after = edit(before)
        if after != before:
            self.files[path] = (original, after)


# --- SQL rewriting ---------------------------------------------------------------------------


def rewrite_column(sql: str, column: str, replacement: str, dialect: str = "duckdb",
                   macro_replacement: str | None = None) -> str:
    """Every reference to `column` in raw (Jinja) model SQL replaced by `replacement`.

    `replacement` may contain ``{ref}`` for the original reference (``t.col``) and ``{qualifier}``
    for its qualifier (``t.`` or nothing). A bare projection
    keeps its output name. String arguments of macro calls equal to the column become
    `macro_replacement` (default: `replacement` with ``{ref}`` = the column).
    """
    masked = _JINJA.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), sql)
    tokens = sqlglot.tokenize(masked, read=dialect)
    clause = ["select"]
    edits: list[tuple[int, int, str]] = []
    target = column.lower()
    for i, token in enumerate(tokens):
        if token.token_type == TokenType.L_PAREN:
            clause.append(clause[-1])
            continue
        if token.token_type == TokenType.R_PAREN:
            if len(clause) > 1:
                clause.pop()
            continue
        if token.token_type in _CLAUSES:
            clause[-1] = _CLAUSES[token.token_type]
            continue
        if token.token_type not in _IDENT or token.text.lower() != target:
            continue
        prev = tokens[i - 1] if i else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if nxt is not None and nxt.token_type in (TokenType.DOT, TokenType.L_PAREN):
            continue  # a table alias or a function name
        if prev is not None and prev.token_type == TokenType.ALIAS:
            continue  # an output name
        start = token.start
        before = prev
        if prev is not None and prev.token_type == TokenType.DOT and i >= 2:
            start = tokens[i - 2].start
            before = tokens[i - 3] if i >= 3 else None
        elif prev is not None and prev.token_type in (*_IDENT, TokenType.R_PAREN, TokenType.NUMBER,
                                                       TokenType.STRING) and clause[-1] == "select":
            continue  # an implicit alias: `expr amount_due`
        ref = sql[start:token.end + 1]
        qualifier = sql[start:token.start]
        text = replacement.replace("{ref}", ref).replace("{qualifier}", qualifier)
        standalone = (clause[-1] == "select" and (before is None or before.token_type in _PROJECTION_START)
                      and (nxt is None or nxt.token_type in _PROJECTION_END or nxt.token_type in _CLAUSES))
        if standalone and text.lower() != ref.lower():
            text = f"{text} as {token.text}"
        edits.append((start, token.end + 1, text))
    out = sql
    for start, end, text in sorted(edits, reverse=True):
        out = out[:start] + text + out[end:]
    macro_text = macro_replacement if macro_replacement is not None else \
        replacement.replace("{ref}", column).replace("{qualifier}", "")
    return _rewrite_macro_args(out, column, macro_text)


def _rewrite_macro_args(sql: str, column: str, text: str) -> str:
    def block(match: re.Match) -> str:
        body = match.group(0)
        if not body.startswith("{{"):
            return body
        # leave source('x', 'y') / ref('y') alone
        protected = [(m.start(), m.end()) for m in re.finditer(r"\b(?:source|ref)\s*\([^)]*\)", body)]

        def literal(m: re.Match) -> str:
            if any(a <= m.start() < b for a, b in protected):
                return m.group(0)
            if m.group(2).lower() != column.lower():
                return m.group(0)
            quote = m.group(1)
            return f"{quote}{text}{quote}"

        return re.sub(r"(['\"])([A-Za-z_][A-Za-z0-9_]*)\1", literal, body)

    return _JINJA.sub(block, sql)


def _bounded_yaml(text: str, what: str):
    """YAML parsed with the policy files' bounds (size, depth, aliases, alias cycles): a hostile
    file is a :class:`PatchError` naming the line, not minutes of CPU or all the memory."""
    from orchestrator.policies.model import YAMLLimitError, load_yaml_document

    try:
        return load_yaml_document(text)[1]
    except YAMLLimitError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise PatchError(f"{what}:{mark.line + 1 if mark else 1}: YAML refused: {exc.problem}") from None


def rewrite_source_yaml(text: str, source: str, table: str, column: str, *, new_name: str | None = None,
                        new_type: str | None = None) -> str:
    """The source table's column entry renamed / retyped in place (comments and layout kept)."""
    data = _bounded_yaml(text, f"source YAML of {source}.{table}") or {}
    found = any(
        s.get("name") == source and any(
            t.get("name") == table and any(c.get("name") == column for c in t.get("columns") or [])
            for t in s.get("tables") or [])
        for s in data.get("sources") or [])
    if not found:
        raise PatchError(f"{source}.{table}.{column} is not declared in this file")
    lines = text.splitlines(keepends=True)
    in_source = in_table = False
    table_indent = column_indent = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        m = re.match(r"-\s*name:\s*['\"]?([^'\"#\s]+)", stripped)
        if m and m.group(1) == source and not in_source:
            in_source, source_indent = True, indent
            continue
        if in_source and m and indent <= source_indent and m.group(1) != source:
            in_source = False
        if in_source and m and m.group(1) == table and table_indent is None:
            in_table, table_indent = True, indent
            continue
        if in_table and m and indent <= table_indent:
            in_table = False
        if in_table and m and m.group(1) == column:
            column_indent = indent
            if new_name:
                lines[i] = line.replace(column, new_name, 1)
            if new_type:
                for j in range(i + 1, len(lines)):
                    nxt = lines[j]
                    nindent = len(nxt) - len(nxt.lstrip())
                    if nxt.strip().startswith("-") and nindent <= column_indent:
                        lines.insert(j, " " * (column_indent + 2) + f"data_type: {new_type}\n")
                        break
                    if re.match(r"\s*data_type:", nxt):
                        lines[j] = re.sub(r"data_type:.*", f"data_type: {new_type}", nxt.rstrip("\n")) + "\n"
                        break
            return "".join(lines)
    raise PatchError(f"{source}.{table}.{column}: entry not found line by line")


# --- building a patch --------------------------------------------------------------------------


def build_patch(project_dir: Path, manifest: Mapping[str, Any], impacts: Iterable[ChangeImpact],
                dialect: str = "duckdb") -> Patch:
    """A patch answering every breaking rename and type change among `impacts`."""
    project_dir = Path(project_dir)
    patch = Patch()
    nodes = manifest.get("nodes", {})
    sources = {f"{s['source_name']}.{s['name']}": s for s in manifest.get("sources", {}).values()}
    for impact in impacts:
        if not impact.breaking:
            continue
        change = impact.change
        source = sources.get(impact.table)
        if change.kind == "renamed":
            replacement, macro = "{qualifier}" + change.new_column, change.new_column
            yaml_edit = {"new_name": change.new_column}
        elif change.kind == "type_changed":
            expected = CANONICAL.get(family(change.old_type))
            if expected is None:
                patch.unanswered.append(f"{impact.summary()} (no cast back to {change.old_type})")
                continue
            replacement = f"cast({{ref}} as {expected})"
            macro = f"cast({change.column} as {expected})"
            yaml_edit = {"new_type": CANONICAL.get(family(change.new_type), change.new_type)}
        else:
            patch.unanswered.append(f"{impact.summary()} (no deterministic patch for a {change.kind} column)")
            continue
        for uid in sorted(impact.direct_readers):
            node = nodes.get(uid)
            if node is None:
                continue
            path = node["original_file_path"]
            patch._edit(project_dir, path, lambda sql: rewrite_column(
                sql, change.column, replacement, dialect, macro_replacement=macro))
            patch.models.add(node["name"])
            patch.affected.add(node["name"])
        patch.affected |= impact.models | impact.blocked_models
        if source is not None:
            patch._edit(project_dir, source["original_file_path"], lambda text: rewrite_source_yaml(
                text, source["source_name"], source["name"], change.column, **yaml_edit))
        patch.answered.append(impact.summary())
    return patch


# --- verification in a scratch database -------------------------------------------------------


@dataclass
class Verification:
    ok: bool
    compile_ok: bool
    nodes: dict[str, dict[str, Any]]  # unique_id -> {status, message}
    duration_s: float
    commands: list[str]
    scratch_db: str
    log_tail: str = ""
    author: str = "rules"

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "compile_ok": self.compile_ok, "nodes": self.nodes,
                "duration_s": round(self.duration_s, 1), "commands": self.commands,
                "scratch_db": self.scratch_db, "log_tail": self.log_tail[-2000:], "author": self.author}

    def passed(self, model: str) -> bool:
        """The model and every test attached to it passed (by name)."""
        hits = {uid: r for uid, r in self.nodes.items()
                if uid.split(".")[-1] == model or r.get("attached_to") == model}
        return bool(hits) and all(r["status"] in ("success", "pass", "warn") for r in hits.values())


def dbt_executable() -> str:
    local = Path(sys.executable).parent / "dbt"
    return str(local) if local.exists() else (shutil.which("dbt") or "dbt")


def scratch_project(project_dir: Path, work: Path, patch: Patch | None = None) -> tuple[Path, Path]:
    """A copy of the project with a profile for a fresh scratch DuckDB file; (project, db)."""
    project_dir = Path(project_dir)
    copy = work / "project"
    shutil.copytree(project_dir, copy, ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", ".git",
                                                                      "*.duckdb", "*.duckdb.wal"))
    if patch is not None:
        patch.apply_to(copy)
    profile = (_bounded_yaml((copy / "dbt_project.yml").read_text(), "dbt_project.yml") or {}).get("profile", "default")
    db = work / "scratch.duckdb"
    (copy / "profiles.yml").write_text(yaml.safe_dump({profile: {"target": "scratch", "outputs": {"scratch": {
        "type": "duckdb", "path": str(db), "threads": 1, "settings": {"TimeZone": "UTC"}}}}}))
    return copy, db


def _run_dbt(args: list[str], project: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([dbt_executable(), *args, "--project-dir", str(project), "--profiles-dir", str(project)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


# What dbt needs to run; a patch someone else wrote (the LLM's) is verified with only these, so
# no credential of this process is in reach of the SQL or Jinja being verified.
_MINIMAL_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT", "VIRTUAL_ENV", "PYTHONPATH")


def _env(landing_dir: Path | None, db: Path, minimal: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _MINIMAL_ENV} if minimal else dict(os.environ)
    env["ORCHESTRATOR_DUCKDB_PATH"] = str(db)
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    if landing_dir is not None:
        env["ORCHESTRATOR_LANDING_DIR"] = str(landing_dir)
    return env


def compile_manifest(project_dir: Path, landing_dir: Path | None = None, timeout: float = 600) -> dict[str, Any]:
    """`dbt compile` of a copy of the project against a scratch DuckDB; the manifest (compiled SQL)."""
    with tempfile.TemporaryDirectory(prefix="schema-compile-") as tmp:
        project, db = scratch_project(project_dir, Path(tmp))
        result = _run_dbt(["compile", "--quiet"], project, _env(landing_dir, db), timeout)
        manifest_path = project / "target" / "manifest.json"
        if result.returncode != 0 or not manifest_path.exists():
            raise PatchError(f"dbt compile of {project_dir} failed: {(result.stdout + result.stderr)[-1500:]}")
        return json.loads(manifest_path.read_text())


def verify(project_dir: Path, patch: Patch, landing_dir: Path | None, *, production_db: Path | None = None,
           models: Iterable[str] | None = None, timeout: float = 900, compile_first: bool = True,
           minimal_env: bool | None = None) -> Verification:
    """`dbt compile` + `dbt build --select +<models>` of the patched project on a scratch DuckDB."""
    selected = sorted(models if models is not None else (patch.affected or patch.models))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="schema-verify-") as tmp:
        project, db = scratch_project(project_dir, Path(tmp), patch)
        if production_db is not None and Path(production_db).resolve() == db.resolve():
            raise PatchError("refusing to verify against the production database")
        # an LLM-written patch runs with only what dbt needs (its SQL/Jinja cannot read our secrets)
        env = _env(landing_dir, db, patch.author != "rules" if minimal_env is None else minimal_env)
        commands: list[str] = []
        log = ""
        selector = [f"+{m}" for m in selected]
        if compile_first:
            args = ["compile", "--select", *selected] if selected else ["compile"]
            commands.append("dbt " + " ".join(args))
            compiled = _run_dbt(args, project, env, timeout)
            log += compiled.stdout + compiled.stderr
            if compiled.returncode != 0:
                return Verification(False, False, {}, time.monotonic() - started, commands, str(db), log,
                                    patch.author)
        # cautious: a test runs only when every model it reads is built (a relationships test to a
        # model outside the selection would fail for want of its table, not because of the patch)
        args = (["build", "--select", *selector, "--indirect-selection", "cautious"] if selector else ["build"])
        commands.append("dbt " + " ".join(args))
        built = _run_dbt(args, project, env, timeout)
        log += built.stdout + built.stderr
        nodes = _run_results(project / "target" / "run_results.json", project / "target" / "manifest.json")
        ok = built.returncode == 0 and bool(nodes) and all(
            r["status"] in ("success", "pass", "warn", "no-op") for r in nodes.values())
        return Verification(ok, True, nodes, time.monotonic() - started, commands, str(db), log, patch.author)


def _run_results(path: Path, manifest_path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    nodes = manifest.get("nodes", {})
    out = {}
    for result in json.loads(path.read_text()).get("results", []):
        uid = result["unique_id"]
        node = nodes.get(uid, {})
        attached = node.get("attached_node") or ""
        out[uid] = {"status": result["status"], "message": (result.get("message") or "")[:500],
                    "attached_to": attached.split(".")[-1] if attached else None}
    return out
