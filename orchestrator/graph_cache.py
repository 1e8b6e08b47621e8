"""The plain project graph the decision core needs, without loading the Dagster code location.

``orchestrator plan --dry-run`` needs the asset graph (keys, roles, upstream, owners, connectors,
partitioning), which job/step materializes which assets (to attribute failures) and where dbt
writes its run results. The graph is the very one the sensors were given
(``ProjectContext.graph``: one graph for the CLI, the sensors and the digest; not one re-derived
from the Definitions' specs, which carry the SLA owners and tags merged in and the sensors' own
assets), with the connector systems that loaded nothing (their policies disabled, as in the
code location). Building them from ``build_definitions()`` imports dagster-dbt and dbt,
parses the manifest and fetches every connector's workspace: ~10 s of CPU for a graph that only
changes when its inputs do. So the full build runs once per version of its inputs and its plain
result is kept in ``<ORCHESTRATOR_HOME>/cache/plan_inputs.json``:

* the dbt project (every file's size and mtime, manifest included: a model edit or a new
  manifest is a new version);
* the SLA policies (content);
* the last known connector state the code location loaded (``<home>/connector_state``,
  content: rewritten with the same bytes on every load, so a reload is not a new version);
* the code that builds the graph (``assets/``, ``orchestrator/definitions.py``,
  ``orchestrator/project_graph.py``) and the settings choosing connectors
  (``ORCHESTRATOR_CONNECTORS``, ``ORCHESTRATOR_FIVETRAN_CONNECTORS``,
  ``ORCHESTRATOR_AIRBYTE_CONNECTIONS``, the API base URLs and accounts).

A connector added in Fivetran/Airbyte shows once the code location has reloaded (it rewrites the
connector state) or with ``--refresh``. ``tests/test_plan_fast_path.py`` checks that the plan is
the same through this path and through the full Definitions.

This module imports no Dagster unless the cache misses.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.core.graph import AssetGraph, AssetNode

CACHE_VERSION = 4  # 2: the sensors' graph and unavailable kinds; 3: the Airbyte workspace id; 4: owners/groups settings
ROOT = Path(__file__).resolve().parent.parent
CODE = ("assets", "orchestrator/lib/ownership.py", "orchestrator/definitions.py", "orchestrator/project_graph.py", "orchestrator/graph_cache.py")
ENV = ("ORCHESTRATOR_CONNECTORS", "ORCHESTRATOR_FIVETRAN_CONNECTORS", "ORCHESTRATOR_AIRBYTE_CONNECTIONS",
       "FIVETRAN_API_KEY", "FIVETRAN_ACCOUNT_ID", "FIVETRAN_API_BASE_URL", "AIRBYTE_REST_API_BASE_URL",
       "AIRBYTE_WORKSPACE_ID", "ORCHESTRATOR_FIVETRAN_PORT", "ORCHESTRATOR_AIRBYTE_PORT", "ORCHESTRATOR_SCENARIO",
       "ORCHESTRATOR_CONNECTOR_OWNERS", "ORCHESTRATOR_CONNECTOR_GROUPS", "ORCHESTRATOR_AIRBYTE_ASSET_KEYS")
SKIP_DIRS = {"target", "logs", "dbt_packages", ".user.yml", "__pycache__"}


@dataclass
class PlainInputs:
    """What the dry-run takes from the code location, as plain data."""

    graph: AssetGraph
    ops: dict[str, tuple[str, ...]]  # op name -> asset keys it materializes
    jobs: dict[str, tuple[str, ...]]  # job name -> its selected asset keys
    dbt_roots: dict[str, tuple[str, ...]]  # op name -> dbt target roots
    unavailable_kinds: tuple[str, ...] = ()  # connector systems that loaded nothing (policies disabled)
    airbyte_workspace_id: str | None = None  # the resource's (the sandbox scenario's when no API is set)
    key: str = ""
    cached: bool = False  # True: read from the cache, no Definitions loaded

    # the same resolvers as orchestrator.snapshot.resolvers_from_repository / dbt_target_roots
    def job_assets(self, job_name: str) -> tuple[str, ...]:
        return self.jobs.get(job_name, ())

    def step_assets(self, job_name: str, step_key: str) -> tuple[str, ...]:
        op = step_key.split("[", 1)[0]
        keys = self.ops.get(op) or self.ops.get(op.rsplit(".", 1)[-1]) or ()
        selected = set(self.job_assets(job_name))
        return tuple(k for k in keys if not selected or k in selected) or tuple(keys)

    def dbt_targets(self, op: str) -> tuple[Path, ...]:
        return tuple(Path(p) for p in self.dbt_roots.get(op, ()))

    def resolvers(self) -> dict[str, Callable]:
        return {"job_assets": self.job_assets, "step_assets": self.step_assets, "dbt_targets": self.dbt_targets}


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        out.extend(Path(dirpath) / f for f in sorted(filenames) if not f.endswith((".pyc", ".log")))
    return out


def inputs_key(settings=None, environ=None) -> str:
    """The version of everything the plain graph is built from (see the module docstring)."""
    from orchestrator.settings import get_settings

    settings = settings or get_settings()
    env = os.environ if environ is None else environ
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + hashlib.sha256(data).digest())

    dbt_dir = Path(settings.dbt_project_dir)
    for path in _files(dbt_dir):
        st = path.stat()
        add(f"dbt:{path.relative_to(dbt_dir)}", f"{st.st_size}:{st.st_mtime_ns}".encode())
    manifest = dbt_dir / "target" / "manifest.json"
    if manifest.exists():
        st = manifest.stat()
        add("manifest", f"{st.st_size}:{st.st_mtime_ns}".encode())
    for label, root in (("policy", Path(settings.policies_dir)), ("state", Path(settings.connector_state_dir))):
        for path in _files(root):
            add(f"{label}:{path.relative_to(root)}", path.read_bytes())
    for rel in CODE:
        for path in _files(ROOT / rel):
            if path.suffix == ".py":
                add(f"code:{path.relative_to(ROOT)}", path.read_bytes())
    add("env", json.dumps({k: env.get(k) for k in ENV}, sort_keys=True).encode())
    add("paths", json.dumps([str(settings.dbt_project_dir), str(settings.policies_dir)]).encode())
    return h.hexdigest()


def cache_path(settings=None) -> Path:
    from orchestrator.settings import get_settings

    return Path((settings or get_settings()).home) / "cache" / "plan_inputs.json"


def _node_json(node: AssetNode) -> dict:
    data = asdict(node)
    data["upstream"] = list(node.upstream)
    data["kinds"] = sorted(node.kinds)
    data["owners"] = list(node.owners)
    data["tags"] = dict(node.tags)
    return data


def _node(data: dict) -> AssetNode:
    return AssetNode(**{**data, "upstream": tuple(data["upstream"]), "kinds": frozenset(data["kinds"]),
                        "owners": tuple(data["owners"]), "tags": dict(data["tags"])})


def from_definitions(defs, graph: AssetGraph | None = None, unavailable_kinds=(),
                     airbyte_workspace_id: str | None = None) -> PlainInputs:
    """The plain inputs of a loaded ``Definitions`` (the full path; imports Dagster). ``graph``:
    the sensors' graph (``orchestrator.definitions.build_project().context.graph``); without it,
    the graph of the Definitions' specs (a library user's ``Definitions``)."""
    from orchestrator.project_graph import asset_graph_from_definitions
    from orchestrator.lib.recorded import job_asset_keys, op_name
    from orchestrator.snapshot import _dbt_target_root

    graph = graph if graph is not None else asset_graph_from_definitions(defs)
    repo = defs.get_repository_def()
    ops: dict[str, tuple[str, ...]] = {}
    roots: dict[str, set[str]] = {}
    for assets_def in repo.assets_defs_by_key.values():
        name = op_name(assets_def)  # external assets: the op of the job recording them, if any
        spec = next(iter(assets_def.specs), None)
        if name is None or spec is None:
            continue
        keys = tuple(k.to_user_string() for k in assets_def.keys)
        ops[name] = tuple(sorted({*ops[name], *keys})) if name in ops else keys
        project = (spec.metadata or {}).get("dagster_dbt/project")
        project = getattr(project, "value", project)
        root = _dbt_target_root(project) if project is not None else None
        if root is not None:
            roots.setdefault(name, set()).add(str(root))
    jobs: dict[str, tuple[str, ...]] = {}
    for job in repo.get_all_jobs():
        jobs[job.name] = job_asset_keys(job)  # an op job recording assets: its metadata
    return PlainInputs(graph=graph, ops=ops, jobs=jobs, dbt_roots={k: tuple(sorted(v)) for k, v in roots.items()},
                       unavailable_kinds=tuple(unavailable_kinds), airbyte_workspace_id=airbyte_workspace_id)


def from_project(project) -> PlainInputs:
    """The plain inputs of ``orchestrator.definitions.build_project()``: its sensors' graph."""
    workspace = getattr(project.defs.resources.get("airbyte"), "workspace_id", None)
    return from_definitions(project.defs, project.context.graph, project.unavailable_kinds,
                            workspace if isinstance(workspace, str) else None)


def save(inputs: PlainInputs, key: str, path: Path) -> None:
    payload = {"version": CACHE_VERSION, "key": key,
               "nodes": [_node_json(n) for n in inputs.graph],
               "ops": {k: list(v) for k, v in inputs.ops.items()},
               "jobs": {k: list(v) for k, v in inputs.jobs.items()},
               "dbt_roots": {k: list(v) for k, v in inputs.dbt_roots.items()},
               "unavailable_kinds": list(inputs.unavailable_kinds),
               "airbyte_workspace_id": inputs.airbyte_workspace_id}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, sort_keys=True), encoding="utf-8")
    tmp.replace(path)  # never a half-written cache


def load(path: Path, key: str) -> PlainInputs | None:
    """The cached inputs when they were built from this version of the inputs, else None
    (missing, another version, unreadable: rebuilt)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if payload.get("version") != CACHE_VERSION or payload.get("key") != key:
            return None
        return PlainInputs(
            graph=AssetGraph(_node(n) for n in payload["nodes"]),
            ops={k: tuple(v) for k, v in payload["ops"].items()},
            jobs={k: tuple(v) for k, v in payload["jobs"].items()},
            dbt_roots={k: tuple(v) for k, v in payload["dbt_roots"].items()},
            unavailable_kinds=tuple(payload["unavailable_kinds"]),
            airbyte_workspace_id=payload.get("airbyte_workspace_id"), key=key, cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def plain_inputs(refresh: bool = False, settings=None) -> PlainInputs:
    """The project's plain inputs: from the cache when its inputs have not changed, else built
    from the full Definitions (which also refreshes the connector state) and cached."""
    path = cache_path(settings)
    if not refresh:
        hit = load(path, inputs_key(settings))
        if hit is not None:
            return hit
    from orchestrator.definitions import build_project

    inputs = from_project(build_project())
    # keyed after the build: it may have rewritten the connector state or the manifest
    inputs.key = inputs_key(settings)
    save(inputs, inputs.key, path)
    return inputs
