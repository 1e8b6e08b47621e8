"""One pass over the landed tables a dbt project reads: diff, impact, and what to do about it.

Pure Python: the sensor (``sensors/schema_changes.py``) and the patch job call it; tests call it
directly. A table is looked at again only when its newest landed file changed (fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.schema_changes import detect
from orchestrator.schema_changes.impact import ChangeImpact, Deadline, analyze
from orchestrator.schema_changes.lineage import ProjectLineage
from orchestrator.schema_changes.patch import compile_manifest

# Fivetran schema_change_handling / Airbyte nonBreakingSchemaUpdatesBehavior that propagate changes
PROPAGATING = {"ALLOW_ALL", "ALLOW_COLUMNS", "propagate_columns", "propagate_fully"}


@dataclass
class TableReport:
    key: str  # connector table asset key, "stripe/invoice"
    table: str  # dbt source ref, "stripe.invoice"
    fingerprint: str
    diff: detect.TableDiff
    impacts: list[ChangeImpact] = field(default_factory=list)
    handling: list[tuple[str, str]] = field(default_factory=list)  # (summary, action)
    delivered: list[str] = field(default_factory=list)  # the columns the newest landed file has

    @property
    def breaking(self) -> list[ChangeImpact]:
        return [i for i in self.impacts if i.breaking]

    @property
    def owners(self) -> set[str]:
        return {o for i in self.impacts for o in i.owners}


def handling(impact: ChangeImpact, setting: str | None, llm: bool = False) -> str:
    """What happens to a change: ``patch`` (a verified patch proposed for approval), ``llm_patch``
    (breaking, no rule answers it, an LLM is configured: its patch is verified like the others),
    ``person`` (breaking, no patch), ``resync_table`` (non-breaking but the landed history has
    the old shape: re-land it, as the connector's setting propagates it), or ``none``."""
    kind = impact.change.kind
    if impact.breaking:
        if kind in ("renamed", "type_changed"):
            return "patch"
        return "llm_patch" if llm else "person"
    if kind in ("type_changed", "renamed") and (setting is None or setting in PROPAGATING):
        return "resync_table"
    return "none"


def fingerprint(folder: Path) -> str | None:
    files = sorted(Path(folder).glob("*.parquet"), key=lambda p: (p.stat().st_mtime_ns, p.name)) \
        if Path(folder).exists() else []
    if not files:
        return None
    newest = files[-1]
    return hashlib.sha256(f"{newest.name}:{newest.stat().st_mtime_ns}:{len(files)}".encode()).hexdigest()[:16]


def scan(manifest: Mapping[str, Any], landing_dir: Path, lineage: Callable[[], ProjectLineage], *,
         seen: Mapping[str, str] | None = None, deadlines: Mapping[str, Deadline] | None = None,
         settings: Mapping[str, str] | None = None, owners_of: Callable[[str], set[str]] | None = None,
         connector_keys: set[str] | None = None, llm: bool = False) -> list[TableReport]:
    """Reports for the source tables whose newest landed file changed since `seen` (key -> fingerprint).

    `lineage` is called only when some table differs (it may compile the project). `settings`:
    asset key -> the connector's schema-change setting. `owners_of(model name)`: owners of models.
    """
    seen = seen or {}
    expected = detect.expected_from_manifest(manifest)
    reports: list[TableReport] = []
    project_lineage: ProjectLineage | None = None
    contracts, contract_typed = detect.has_contracts(dict(manifest)), False
    for source in manifest.get("sources", {}).values():
        table = source.get("identifier") or source["name"]
        key = f"{source['schema']}/{table}"
        if connector_keys is not None and key not in connector_keys:
            continue
        folder = Path(landing_dir) / source["schema"] / table
        print_ = fingerprint(folder)
        if print_ is None or seen.get(key) == print_:
            continue
        delivered = detect.delivered_from_parquet(folder, source["source_name"], source["name"])
        if contracts and not contract_typed:  # enforced model contracts add expected types
            project_lineage = project_lineage or lineage()
            expected = detect.with_contract_types(expected, project_lineage)
            contract_typed = True
        diff = detect.diff(expected[(source["source_name"], source["name"])], delivered)
        report = TableReport(key, diff.ref, print_, diff, delivered=list(delivered.columns))
        if diff:
            project_lineage = project_lineage or lineage()
            report.impacts = analyze(diff, project_lineage, deadlines)
            for found in report.impacts:
                if owners_of is not None:
                    for model in found.broken_models | found.models:
                        found.owners |= owners_of(model)
                report.handling.append((found.summary(), handling(found, (settings or {}).get(key), llm)))
        reports.append(report)
    return reports


def project_hash(project_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(project_dir).rglob("*")):
        if path.suffix in {".sql", ".yml", ".yaml"} and not {"target", "logs", "dbt_packages"} & set(path.parts):
            digest.update(str(path.relative_to(project_dir)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def compiled_manifest(project_dir: Path, landing_dir: Path, cache_dir: Path) -> dict[str, Any]:
    """The project's compiled manifest, compiled once per version of its files (cached as JSON)."""
    cache = Path(cache_dir) / f"compiled-{project_hash(project_dir)}.json"
    if cache.exists():
        try:
            return json.loads(cache.read_text())
        except ValueError:  # a torn file (a crash mid-write elsewhere): compile again
            pass
    manifest = compile_manifest(project_dir, landing_dir)
    cache.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own: two processes compiling at once each replace the cache whole
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(manifest))
    tmp.replace(cache)
    return manifest
