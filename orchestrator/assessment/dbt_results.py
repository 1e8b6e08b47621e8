"""dbt node failures of one failed dbt step, per asset (pure Python, no Dagster imports).

A ``dbt build`` step fails as one Dagster step whose error is dagster-dbt's wrapper ("The dbt CLI
process ... failed"). What explains it is per dbt node: ``run_results.json`` of the invocation
(``results[]`` with ``status`` error/fail and dbt's ``message``) or, when that file is not
readable from here, the "Errors parsed from dbt logs" dagster-dbt appends to the step error.

* a model/seed/snapshot that errored -> a record on its asset with dbt's (warehouse's) message;
* a test that failed or errored -> a record on the asset it tests ("Failure in test ...", which
  the rules read as data_quality);
* a model dbt skipped (an upstream node failed in the same invocation) -> a record on its asset
  that ``link_root_causes`` links to the failing node's record (its root), so it is never
  diagnosed on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from orchestrator.core.records import FailureRecord

FAILED = ("error", "fail", "runtime error")
REFABLE = ("model", "seed", "snapshot")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TARGET = re.compile(r"view the dbt debug log: (.+?)[/\\]dbt\.log")
_HEADER = re.compile(
    r"^\s*(?:Failure|Warning|(?:Runtime|Database|Compilation|Dependency|Parsing) Error) in "
    r"(model|test|seed|snapshot|unit_test) (\S+)(?: \(([^)]*)\))?\s*$")
_SECTION = "Errors parsed from dbt logs:"
_STACK = "\nStack Trace:"


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text or "")


def target_path_from_message(message: str) -> str | None:
    """The invocation's target folder dagster-dbt names in its error ("view the dbt debug log:
    <target>/dbt.log")."""
    m = _TARGET.search(message or "")
    return m.group(1).strip() if m else None


class DbtNodeIndex:
    """dbt unique_id / node name -> asset key, from the graph's ``dbt_name`` (a model's
    unique_id)."""

    def __init__(self, graph):
        self.by_uid: dict[str, str] = {}
        self.by_name: dict[str, str] = {}
        for node in graph:
            uid = node.dbt_name or ""
            if uid.split(".", 1)[0] in REFABLE:
                self.by_uid[uid] = node.key
                self.by_name.setdefault(uid.rsplit(".", 1)[-1], node.key)

    def asset(self, uid: str) -> str | None:
        return self.by_uid.get(uid) or self.by_name.get(uid.split(".")[2] if uid.count(".") >= 2 else uid)

    def tested(self, test_name: str) -> str | None:
        """The asset a test is about when only its name is known: the longest model name in it."""
        best = None
        for name, key in self.by_name.items():
            if name in test_name and (best is None or len(name) > len(best[0])):
                best = (name, key)
        return best[1] if best else None


def _test_asset(uid: str, manifest: Callable[[], Mapping[str, Any] | None] | None, index: DbtNodeIndex) -> str | None:
    nodes = (manifest() or {}).get("nodes", {}) if manifest is not None else {}
    node = nodes.get(uid) or {}
    for parent in [node.get("attached_node"), *((node.get("depends_on") or {}).get("nodes") or [])]:
        key = index.asset(parent) if parent else None
        if key:
            return key
    return index.tested(uid.split(".")[2] if uid.count(".") >= 2 else uid)


def node_failures_from_run_results(
    run_results: Mapping[str, Any],
    graph,
    *,
    run_id: str,
    at: datetime,
    partition: str | None = None,
    manifest: Callable[[], Mapping[str, Any] | None] | None = None,
    index: DbtNodeIndex | None = None,
) -> list[FailureRecord]:
    """Records of the failed, errored and skipped nodes of one invocation's ``run_results``."""
    index = index or DbtNodeIndex(graph)
    out: list[FailureRecord] = []
    failed_names: list[str] = []
    skipped: list[tuple[str, str]] = []
    for res in run_results.get("results") or []:
        uid = res.get("unique_id") or ""
        kind = uid.split(".", 1)[0]
        status = str(res.get("status") or "").lower()
        name = uid.split(".")[2] if uid.count(".") >= 2 else uid
        if status in FAILED:
            message = strip_ansi(res.get("message") or "").strip()
            if kind == "test":
                key = _test_asset(uid, manifest, index)
                failures = res.get("failures")
                if status == "fail" or not message.lower().startswith(("database error", "runtime error", "compilation error")):
                    message = f"Failure in test {name}" + (f" on {key}" if key else "") + (
                        f": {message}" if message else f" ({failures} failing rows)" if failures else "")
            else:
                key = index.asset(uid)
                if not message:
                    message = f"dbt {kind} {name} failed ({status})"
            if key is None:
                continue
            failed_names.append(name)
            out.append(FailureRecord(failure_id=f"dbt:{run_id}:{uid}", at=at, message=message, system="dbt",
                                     asset_key=key, run_id=run_id, partition=partition))
        elif status == "skipped" and kind in REFABLE:
            key = index.asset(uid)
            if key is not None:
                skipped.append((uid, key))
    if out:  # skipped nodes only matter when something in the invocation failed
        cause = ", ".join(failed_names[:3]) + (" ..." if len(failed_names) > 3 else "")
        for uid, key in skipped:
            out.append(FailureRecord(
                failure_id=f"dbt:{run_id}:{uid}", at=at, system="dbt", asset_key=key, run_id=run_id,
                partition=partition,
                message=f"dbt skipped {uid.split('.')[-1]}: an upstream node failed in the same invocation ({cause})"))
    return out


def node_failures_from_message(
    message: str,
    graph,
    *,
    run_id: str,
    at: datetime,
    partition: str | None = None,
    index: DbtNodeIndex | None = None,
) -> list[FailureRecord]:
    """Records of the nodes named in dagster-dbt's "Errors parsed from dbt logs" (no skipped
    nodes: the logs do not list them)."""
    text = strip_ansi(message or "")
    if _SECTION not in text:
        return []
    text = text.split(_SECTION, 1)[1].split(_STACK, 1)[0]
    index = index or DbtNodeIndex(graph)
    blocks: dict[tuple[str, str], list[str]] = {}
    current: tuple[str, str] | None = None
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            current = (m.group(1), m.group(2))
            blocks.setdefault(current, []).append(line.strip())
        elif current is not None and line.strip():
            blocks[current].append(line.strip())
    out = []
    for (kind, name), lines in blocks.items():
        key = index.tested(name) if kind == "test" else index.by_name.get(name)
        if key is None:
            continue
        body = [ln for ln in dict.fromkeys(lines)]  # "Failure in model x" + "Runtime Error in model x"
        msg = "\n".join(body)
        if kind == "test" and not msg.lower().startswith("failure in test"):
            msg = f"Failure in test {name} on {key}\n{msg}"
        out.append(FailureRecord(failure_id=f"dbt:{run_id}:{kind}.{name}", at=at, message=msg, system="dbt",
                                 asset_key=key, run_id=run_id, partition=partition))
    return out
