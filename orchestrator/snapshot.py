"""The Dagster shell's read side: the instance and the connectors' own state -> ``Snapshot``.

Batched: one query per kind of thing, never one per asset --

* latest materialization of every asset: ``get_latest_materialization_events`` in chunks;
* recent materializations: one indexed ``get_event_records``; latest check evaluations of
  the given check keys: one batched query;
* step/run failures: ``all_logs`` of each run that failed in the window (never a scan of
  every run's events, which SQLite shards per run); a failed dbt step is split per dbt node
  from the failed nodes the step carried in its failure event (``dbt_run_results`` metadata,
  ``orchestrator/resources/dbt_failures.py``), else its invocation's ``run_results.json`` when
  on this disk (the target folder dagster-dbt names in the step error, else
  ``<project target>/<op>-<run id[:7]>-*``), else the dbt log errors dagster-dbt appends to the
  step error;
* in-flight runs and recently updated runs: two ``get_run_records``;
* Fivetran: one ``GET /groups`` + one ``GET /groups/{id}/connectors`` per group (each connector
  carries ``succeeded_at``/``failed_at``/``status``); Airbyte: one paginated ``GET /jobs`` for the
  workspace, plus ``POST /jobs/get`` (config API) for each failed job not seen before, for its
  failure reasons.

Syncs Dagster did not start are included: a completed sync with no Dagster run of its
connector's assets in flight at that moment is ``triggered_by="schedule"`` (or ``external``).
dagster-fivetran's polling sensor ignores failed syncs and dagster-airbyte has none; the
failure sensor (``sensors/failures.py``) reports both from these records.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from array import array
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dateutil.parser import isoparse

from orchestrator.assessment.dbt_results import (
    DbtNodeIndex,
    node_failures_from_message,
    node_failures_from_run_results,
    target_path_from_message,
)
from orchestrator.core.graph import CONNECTOR_TABLE, DBT_MODEL, AssetGraph
from orchestrator.core.records import (
    CheckRecord,
    DiagnosedFailure,
    FailureRecord,
    Materialization,
    RunRecord,
    RunStatus,
    Snapshot,
    SyncRecord,
)
from orchestrator.heap import release_free_heap
from orchestrator.vendor_reasons import airbyte_failure_reasons, fivetran_problems

if TYPE_CHECKING:
    from orchestrator.event_log_cache import Rows

# Dagster is imported where the instance is read through it, not by this module: ``orchestrator
# plan --dry-run`` reads a SQLite instance without it (``orchestrator.plain_instance``, an
# ``instance`` whose ``plain_*`` methods answer the same questions from the tables).

log = logging.getLogger(__name__)
UTC = timezone.utc
CHUNK = 500
PAGE = 20_000  # event log rows per query when reading recent materializations newest first
# The default window's materializations are read from its edge rounded down to the hour (up to
# an hour more rows): between two hours a tick's rows only grow, so the data times computed from
# them (``orchestrator.core.datatime``) do not move with the clock; see ``window_edge``.
HISTORY_EDGE_STEP = timedelta(hours=1)


def window_edge(since: datetime, step: timedelta = HISTORY_EDGE_STEP) -> datetime:
    """``since`` rounded down to a whole multiple of ``step`` since the epoch (UTC)."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    aware = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
    return epoch + ((aware - epoch) // step) * step


STORE_SKEW = timedelta(hours=1)  # how far an event's timestamp may trail the order it was stored in
# DagsterRunStatus values (the runs table's status column)
IN_FLIGHT = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED"]
_STATUS = {
    "QUEUED": RunStatus.queued,
    "NOT_STARTED": RunStatus.queued,
    "STARTING": RunStatus.starting,
    "STARTED": RunStatus.running,
    "SUCCESS": RunStatus.success,
    "FAILURE": RunStatus.failure,
    "CANCELING": RunStatus.running,
    "CANCELED": RunStatus.canceled,
}
MATERIALIZATION = "ASSET_MATERIALIZATION"  # DagsterEventType values
STEP_FAILURE = "STEP_FAILURE"
RUN_FAILURE = "PIPELINE_FAILURE"


def _value(enum_or_str) -> str:
    return getattr(enum_or_str, "value", enum_or_str)


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def _iso(value: Any) -> datetime | None:
    if not value:
        return None
    t = isoparse(value) if isinstance(value, str) else value
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# -- the instance ---------------------------------------------------------------------------------


# SQL event log storages (SQLite, Postgres) are read by column (asset key, timestamp, run id,
# partition): the serialized event JSON -- what ``get_latest_materialization_events`` and
# ``get_event_records`` deserialize, ~90% of a tick at 10,000 assets -- is never loaded. Other
# storages (and MySQL, whose TIMESTAMP columns may drop sub-seconds) use the public API.
_SQL_DIALECTS = ("sqlite", "postgresql")
# No map between db strings and user strings is kept in the process (at 100,000 assets it held a
# second string per asset): the event log cache interns keys by its own slots
# (``EventLogState.user_key``: the graph's key objects), the uncached reads per call. (Both names
# stay, empty, for callers that clear them.)
_USER_KEY: dict[str, str] = {}
_DB_KEY: dict[str, str] = {}


def _user_key(db_key: str) -> str:
    """``AssetKey.from_db_string(db_key).to_user_string()``: the path of a db string joined by "/"
    (a new string; parsed without ``json`` when it is ``json.dumps`` of plain path parts)."""
    if db_key.startswith('["') and db_key.endswith('"]') and "\\" not in db_key:
        key = db_key[2:-2].replace('", "', "/")
        if '"' not in key:  # no other separator or quote: the parts were json.dumps'ed plainly
            return key
    return "/".join(_path_from_db(db_key))


def _path_from_db(db_key: str) -> list[str]:
    """``AssetKey.from_db_string(db_key).path``: a JSON list, else the legacy dotted form."""
    if db_key.startswith("["):
        return [str(p) for p in json.loads(db_key)]
    return db_key.split(".")


def _db_key(user_key: str, *, remember: bool = False) -> str:
    """``AssetKey.from_user_string(user_key).to_string()`` (``remember`` is ignored: nothing is
    kept, see ``_USER_KEY``)."""
    return json.dumps(user_key.split("/"))  # AssetKey.to_string()


def _sql_storage(instance):
    """The event log storage when it can be read by column, else None."""
    try:
        from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

        storage = instance.event_log_storage
        if not isinstance(storage, SqlEventLogStorage):
            return None
        with storage.index_connection() as conn:
            if conn.dialect.name not in _SQL_DIALECTS:
                return None
        return storage
    except Exception:  # noqa: BLE001 - any doubt: the public API
        return None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _latest_by_key(conn, db_keys: list[str]) -> tuple[dict[str, tuple[int, datetime] | None], list[str]]:
    """db key -> (storage id, time) of its latest materialization (None: none stored) for the
    keys with an ``asset_keys`` row, and the db keys whose asset was ever wiped."""
    import sqlalchemy as db
    from dagster._core.storage.event_log.schema import AssetKeyTable, SqlEventLogStorageTable as E

    out: dict[str, tuple[int, datetime] | None] = {}
    wiped: list[str] = []
    chunk = 5 * CHUNK
    mat = MATERIALIZATION
    # Per asset, one seek in idx_events_by_asset (asset_key, dagster_event_type, id) for its
    # latest materialization: O(assets log n), where a max(id) ... GROUP BY reads every
    # materialization ever stored (30 days of history at 100,000 assets is 3 million rows).
    inner = E.alias("latest_mat")
    latest_id = (
        db.select(db.func.max(inner.c.id))
        .where(inner.c.asset_key == AssetKeyTable.c.asset_key, inner.c.dagster_event_type == mat)
        .correlate(AssetKeyTable)
        .scalar_subquery()
    )
    latest_ts = db.select(E.c.timestamp).where(E.c.id == latest_id).correlate(AssetKeyTable).scalar_subquery()
    for i in range(0, len(db_keys), chunk):
        part = db_keys[i:i + chunk]
        for db_key, details, sid, ts in conn.execute(
            db.select(AssetKeyTable.c.asset_key, AssetKeyTable.c.asset_details, latest_id, latest_ts)
            .where(AssetKeyTable.c.asset_key.in_(part))
        ):
            if details:  # AssetDetails(last_wipe_timestamp=...): only written by a wipe
                wiped.append(db_key)
            out[db_key] = (sid, _utc(ts)) if sid is not None and ts is not None else None
    return out, wiped


def _sql_last_success(storage, keys: list[str]) -> tuple[dict[str, datetime], list[str]]:
    """Latest materialization time per key from the event log's columns (``max(id)`` per asset
    key, as Dagster's own fallback query does); keys whose asset was ever wiped are returned
    apart, for the public API (it applies the wipe filter). Kept across ticks and brought up to
    date from a cursor (``orchestrator.event_log_cache``) unless ORCHESTRATOR_SNAPSHOT_RESYNC_S=0."""
    from orchestrator import event_log_cache

    out: dict[str, datetime] = {}
    resync = event_log_cache.resync_seconds()
    with storage.index_connection() as conn:
        if resync > 0:
            state = event_log_cache.state_for(conn)
            with state.lock:
                state.refresh(conn, resync)
                # db strings only for the keys not held yet (the cold tick): none on a warm one
                found = state.last_success(conn, keys, _db_key, lambda c, ks: _latest_by_key(c, ks)[0])
                wiped = [k for k in keys if k in state.wiped_keys] if state.wiped_keys else []
            return found, wiped
        user_of = {_db_key(k): k for k in keys}  # this call's keys, as the caller's objects
        latest, wiped_db = _latest_by_key(conn, list(user_of))
    wiped_set = set(wiped_db)
    for db_key, hit in latest.items():
        if hit is not None and db_key not in wiped_set:
            out[user_of.get(db_key) or _user_key(db_key)] = hit[1]
    return out, [user_of.get(k) or _user_key(k) for k in wiped_db]


def read_last_success(instance: dg.DagsterInstance, keys: Iterable[str]) -> dict[str, datetime]:
    """Asset key -> time of its latest materialization (none for never-materialized or wiped
    assets)."""
    keys = list(keys)
    if hasattr(instance, "plain_last_success"):
        return instance.plain_last_success(keys)
    import dagster as dg

    out: dict[str, datetime] = {}
    storage = _sql_storage(instance)
    if storage is not None:
        out, keys = _sql_last_success(storage, keys)
    for i in range(0, len(keys), CHUNK):
        chunk = [dg.AssetKey.from_user_string(k) for k in keys[i:i + CHUNK]]
        for key, entry in instance.get_latest_materialization_events(chunk).items():
            if entry is not None:
                out[key.to_user_string()] = _dt(entry.timestamp)
    return out


@dataclass(frozen=True)
class SnapshotCaps:
    """How much one snapshot reads at most; a cap that is hit is logged and reported
    (``caps_hit(snapshot)``), never silent. From the environment:

    * ``ORCHESTRATOR_SNAPSHOT_MAX_RUNS``: in-flight runs, and runs updated in the window (each);
    * ``ORCHESTRATOR_SNAPSHOT_MAX_MATERIALIZATIONS``: recent materializations (duration samples).
    """

    max_runs: int = 20_000
    max_materializations: int = 250_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SnapshotCaps:
        env = os.environ if environ is None else environ
        values = {}
        for name, attr in (("ORCHESTRATOR_SNAPSHOT_MAX_RUNS", "max_runs"),
                           ("ORCHESTRATOR_SNAPSHOT_MAX_MATERIALIZATIONS", "max_materializations")):
            raw = env.get(name)
            if raw is None or not raw.strip():
                continue
            try:
                value = int(raw.replace("_", "").strip())
            except ValueError:
                raise ValueError(f"{name} must be a positive integer, got {raw!r}") from None
            if value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {raw!r}")
            values[attr] = value
        return cls(**values)


CAP_ENV = {"runs_in_flight": "ORCHESTRATOR_SNAPSHOT_MAX_RUNS", "runs_updated": "ORCHESTRATOR_SNAPSHOT_MAX_RUNS",
           "materializations": "ORCHESTRATOR_SNAPSHOT_MAX_MATERIALIZATIONS"}


def caps_hit(snapshot: Snapshot) -> dict[str, str]:
    """What a snapshot left out because a cap was hit: {what: "kept N of more (raise ENV)"}."""
    return dict(getattr(snapshot, "caps_hit", None) or {})


def _records(instance, event_type, since: datetime, limit: int, after_id: int | None = None):
    from dagster._core.event_api import EventRecordsFilter

    flt = EventRecordsFilter(event_type=event_type, after_timestamp=since.timestamp())
    if after_id is not None:
        flt = EventRecordsFilter(event_type=event_type, after_cursor=after_id)
    return instance.event_log_storage.get_event_records(flt, limit=limit, ascending=False)


def _materialization_rows(instance, since: datetime, limit: int, *, with_ids: bool = False) -> list[tuple]:
    """(asset key, timestamp, run id, partition) of materializations after ``since``, newest
    first: by column from a SQL event log (the same filter as ``get_event_records`` with
    ``after_timestamp``), else through ``get_event_records``. ``with_ids``: (storage id, ...),
    the id None when not read by column. (``_materialization_columns``: the same rows by column.)"""
    rows = _materialization_columns(instance, since, limit)
    out = list(rows.tuples())
    out.reverse()
    return out if with_ids else [r[1:] for r in out]


def _materialization_columns(instance, since: datetime, limit: int, consume: Callable[[Rows], Any] | None = None):
    """The rows of ``_materialization_rows`` by column (``event_log_cache.Rows``), oldest first
    (ascending by storage id; ``ids`` None when not read by column). ``consume(rows)``: what is
    returned instead, computed while the rows are valid: the event log cache's held rows are
    passed as they are (no copy) and its lock is held until ``consume`` returns, so ``consume``
    must keep none of their columns."""
    from contextlib import ExitStack

    from orchestrator.event_log_cache import Rows

    done = consume or (lambda rows: rows)
    if hasattr(instance, "plain_materialization_rows"):
        rows = instance.plain_materialization_rows(since, limit)
        return done(Rows.from_tuples((None, *r) for r in reversed(rows)))
    from dagster._core.events import DagsterEventType

    storage = _sql_storage(instance)
    if storage is None:
        recs = _records(instance, DagsterEventType.ASSET_MATERIALIZATION, since, limit)
        return done(Rows.from_tuples(
            (None, rec.asset_key.to_user_string(), rec.event_log_entry.timestamp, rec.event_log_entry.run_id,
             rec.partition_key)
            for rec in reversed(list(recs))))
    from orchestrator import event_log_cache

    after = datetime.fromtimestamp(since.timestamp(), UTC).replace(tzinfo=None)
    resync = event_log_cache.resync_seconds()
    with ExitStack() as held:
        with storage.index_connection() as conn:
            rows = None
            if resync > 0:
                state = event_log_cache.state_for(conn)
                held.enter_context(state.lock)  # released once ``done`` returns (the connection before)
                state.refresh(conn, resync)
                rows = state.window_rows(conn, after, datetime.now(UTC).replace(tzinfo=None), limit,
                                         _read_rows, copy=consume is None)
            if rows is None:
                rows = _read_rows(conn, after, limit)
        return done(rows)


def _read_rows(conn, after: datetime, limit: int, key_of: Callable[[str], str] | None = None) -> Rows:
    """(storage id, asset key, timestamp, run id, partition) of materializations with a timestamp
    after ``after`` (naive UTC), by column, oldest first: the newest ``limit`` (0: all). Streamed
    into the columns page by page (no row tuples held; run ids and partitions interned).
    ``key_of(db key)``: each row's key object (the event log cache's interner; default the user
    string, interned)."""
    import sys

    import sqlalchemy as db
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable as E

    from orchestrator.event_log_cache import Rows

    stop_below = after - STORE_SKEW
    out = Rows()  # newest first while reading, reversed at the end
    ids, tss, keys, runs, parts = out.ids, out.ts, out.keys, out.runs, out.parts
    intern = sys.intern
    user_key = key_of or (lambda k: intern(_user_key(k)))
    cursor: int | None = None
    # Newest first by id, in pages, stopping once a whole page is older than the window by more
    # than STORE_SKEW: ids grow in the order events are stored, and an event is stored when it
    # happens, so every older id is older still. The window's rows are read, not the whole
    # history (a SQL filter on timestamp has no index and reads every materialization stored).
    mat = E.c.dagster_event_type == MATERIALIZATION
    while True:
        # The page's id range and newest timestamp (computed by the database), then only its
        # rows inside the window come back.
        page = db.select(E.c.id.label("id"), E.c.timestamp.label("ts")).where(mat)
        if cursor is not None:
            page = page.where(E.c.id < cursor)
        page = page.order_by(E.c.id.desc()).limit(PAGE).subquery("page")
        low, newest, count = conn.execute(
            db.select(db.func.min(page.c.id), db.func.max(page.c.ts), db.func.count())).one()
        if not count:
            break
        query = (
            db.select(E.c.id, E.c.asset_key, E.c.timestamp, E.c.run_id, E.c.partition)
            .where(mat, E.c.id >= low, E.c.timestamp > after)
            .order_by(E.c.id.desc())
        )
        if cursor is not None:
            query = query.where(E.c.id < cursor)
        # one string per run id, not one per row (a run materializes many assets): at 100,000
        # assets the window holds ~200,000 rows from far fewer runs
        for sid, k, ts, run_id, part in conn.execute(query):
            if not k:
                continue
            ids.append(sid)
            keys.append(user_key(k))
            tss.append((ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)).timestamp())
            runs.append(intern(run_id) if run_id else run_id)
            parts.append(intern(part) if part else part)
        if count < PAGE or (limit and len(out) >= limit) or (newest is not None and newest < stop_below):
            break
        cursor = low
    if limit and len(out) > limit:
        out = out[:limit]
    out.reverse()
    return out


StepAssets = Callable[[str, str], tuple[str, ...]]  # (job_name, step_key) -> asset keys
_JSON_CACHE: dict[str, tuple[float, Any]] = {}  # path -> (mtime, parsed): the sensor re-reads each tick
_JSON_CACHE_MAX = 32


def _read_json(path: Path) -> Any:
    """A dbt artifact, parsed once per file version; None when unreadable."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    hit = _JSON_CACHE.get(str(path))
    if hit is not None and hit[0] == mtime:
        return hit[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if len(_JSON_CACHE) >= _JSON_CACHE_MAX:
        _JSON_CACHE.pop(next(iter(_JSON_CACHE)))
    _JSON_CACHE[str(path)] = (mtime, data)
    return data


def _dbt_target_root(project) -> Path | None:
    """Where dagster-dbt puts each invocation's target folder for a ``DbtProject``."""
    try:
        target = Path(os.environ.get("DBT_TARGET_PATH") or project.target_path or "target")
        return target if target.is_absolute() else Path(project.project_dir) / target
    except Exception:  # noqa: BLE001 - no project: only the path in the step error is used
        return None


def find_run_results(message: str, roots: Iterable[Path], op: str, run_id: str) -> Path | None:
    """The failed dbt invocation's ``run_results.json``: in the target folder dagster-dbt names
    in the step error, else the newest ``<root>/<op>-<run id[:7]>-*/run_results.json``."""
    named = target_path_from_message(message)
    if named and (Path(named) / "run_results.json").is_file():
        return Path(named) / "run_results.json"
    found = []
    for root in roots:
        found.extend(Path(root).glob(f"{op}-{run_id[:7]}-*/run_results.json"))
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _run_start(runs: Mapping[str, RunRecord], run_id: str) -> float | None:
    run = runs.get(run_id) if run_id else None
    return run.started_at.timestamp() if run is not None and run.started_at is not None else None


class _DurationsMemo:
    """The last ``InstanceReader.materializations`` result for one graph and window, carried to
    the next tick: rows that left the window are dropped from the front, rows stored since are
    computed and appended; everything is computed again when the rows are not the previous ones
    plus newer ids, a run's start changed, or a dropped row's run still has rows in the window.
    Gives what the loop over all rows gives (a test compares them). Rows come by column
    (``event_log_cache.Rows``; a list of (id, key, timestamp, run id, partition) tuples is taken
    too); the ids are kept in an array."""

    def __init__(self, graph: AssetGraph | None):
        self.graph = graph
        self.ids: array | None = None
        self.mats: list[Materialization] = []  # one per row of ``ids`` (its run id: the row's)
        self.durations: dict[str, list[float]] = defaultdict(list)
        self.in_run: dict[str, dict[str, float]] = defaultdict(dict)
        self.starts: dict[str, float | None] = {}  # run id -> the start its rows were computed with
        self.full = 0
        self.incremental = 0

    def _reset(self) -> None:
        self.ids, self.mats = None, []
        self.durations = defaultdict(list)
        self.in_run = defaultdict(dict)
        self.starts = {}
        self.full += 1

    def update(self, rows, runs: Mapping[str, RunRecord], latest: Mapping[str, datetime] | None = None) -> None:
        """``latest``: asset key -> its latest materialization's time (the snapshot's
        ``last_success``); a row at that very time takes that datetime object, not a copy."""
        from orchestrator.event_log_cache import Rows

        if not isinstance(rows, Rows):
            rows = Rows.from_tuples(rows)
        start = self._carry(rows, runs)
        if start is None:
            self._reset()
            start = 0
        else:
            self.incremental += 1
        self._extend(rows, start, runs, latest or {})
        # its own copy: ``rows`` may be the event log cache's held rows, which change in place
        self.ids = array("q", rows.ids) if rows.ids is not None else None

    def _carry(self, rows, runs: Mapping[str, RunRecord]) -> int | None:
        """The index of the first row still to compute when the previous result carries over,
        else None."""
        old, ids = self.ids, rows.ids
        if old is None or ids is None or not len(old) or not len(ids):
            return None
        from bisect import bisect_left

        d = bisect_left(old, ids[0])
        if d == len(old) or old[d] != ids[0]:
            return None
        m = len(old) - d
        with memoryview(ids) as new_ids, memoryview(old) as old_ids:  # compared in place, no copies
            if new_ids[:m] != old_ids[d:]:
                return None
        for rid, start in self.starts.items():
            if _run_start(runs, rid) != start:
                return None
        if d:
            gone = {m.run_id for m in self.mats[:d] if m.run_id}
            if gone and any(r in gone for r in rows.runs):
                return None  # a run with rows on both sides of the window's edge
            durations = self.durations
            for mat in self.mats[:d]:
                if mat.duration_s is not None:
                    lst = durations[mat.asset_key]
                    del lst[0]
                    if not lst:
                        del durations[mat.asset_key]
            for rid in gone:
                self.in_run.pop(rid, None)
                self.starts.pop(rid, None)
            del self.mats[:d]
        return m

    def _extend(self, rows, start: int, runs: Mapping[str, RunRecord], latest: Mapping[str, datetime]) -> None:
        graph = self.graph
        latest_at = latest.get
        mats, durations, in_run, starts = self.mats, self.durations, self.in_run, self.starts
        cols = (rows.keys, rows.ts, rows.runs, rows.parts)
        if start:  # the new rows of a carried tick (few): sliced; a full pass: no copy of the columns
            cols = tuple(c[start:] for c in cols)
        for key, ts, run_id, partition in zip(*cols):
            dur = None
            if run_id and run_id not in starts:
                starts[run_id] = _run_start(runs, run_id)
            begin = starts.get(run_id) if run_id else None
            if begin is not None:
                if graph is not None and key in graph:
                    done = in_run[run_id]
                    for parent in graph.parents(key):
                        t = done.get(parent)
                        if t is not None and t > begin:
                            begin = t
                dur = max(0.0, ts - begin)
                durations[key].append(dur)
                in_run[run_id][key] = ts
            at = latest_at(key)
            if at is None or at.tzinfo is not UTC or at.timestamp() != ts:
                at = _dt(ts)
            mats.append(Materialization(key, at, run_id or None, partition, dur))


_DURATIONS_MEMO: dict[tuple, _DurationsMemo] = {}
_DURATIONS_LOCK = threading.Lock()


@dataclass
class InstanceReader:
    """Reads one instance into snapshot parts. ``job_assets(job_name)`` and
    ``step_assets(job_name, step_key)`` resolve runs without an explicit asset selection and
    steps of multi-asset ops (from the repository definition, see ``resolvers_from_repository``)."""

    instance: dg.DagsterInstance
    job_assets: Callable[[str], tuple[str, ...]] = lambda job: ()
    step_assets: StepAssets = lambda job, step: ()
    # op name -> dbt target roots (from the dbt assets' DbtProject, see ``dbt_target_roots``)
    dbt_targets: Callable[[str], tuple[Path, ...]] = lambda op: ()
    history: timedelta = timedelta(days=2)
    caps: SnapshotCaps = field(default_factory=SnapshotCaps.from_env)
    # what -> "kept N of more than N (raise ENV)", for every cap hit by this reader's queries
    caps_hit: dict[str, str] = field(default_factory=dict)
    _jobs: dict[str, str] = field(default_factory=dict)

    def _capped(self, what: str, rows: list, cap: int) -> list:
        """``rows`` read with limit cap + 1: more than ``cap`` means the cap was hit."""
        if len(rows) <= cap:
            return rows
        note = f"kept the newest {cap:,} of more than {cap:,} (raise {CAP_ENV[what]})"
        if what not in self.caps_hit:
            log.warning("snapshot cap hit: %s %s", what, note)
        self.caps_hit[what] = note
        return rows[:cap]

    def runs(self, since: datetime) -> list[RunRecord]:
        cap = self.caps.max_runs
        if hasattr(self.instance, "plain_run_records"):  # the same two queries, by column
            in_flight = self.instance.plain_run_records(statuses=IN_FLIGHT, limit=cap + 1)
            updated = self.instance.plain_run_records(updated_after=since, limit=cap + 1)
        else:
            import dagster as dg

            in_flight = self.instance.get_run_records(
                dg.RunsFilter(statuses=[dg.DagsterRunStatus(s) for s in IN_FLIGHT]), limit=cap + 1)
            updated = self.instance.get_run_records(dg.RunsFilter(updated_after=since), limit=cap + 1)
        records = {r.dagster_run.run_id: r for r in self._capped("runs_in_flight", list(in_flight), cap)}
        for r in self._capped("runs_updated", list(updated), cap):
            records.setdefault(r.dagster_run.run_id, r)
        out = []
        for rec in records.values():
            run = rec.dagster_run
            self._jobs[run.run_id] = run.job_name
            if run.asset_selection:
                keys = tuple(sorted(k if isinstance(k, str) else k.to_user_string() for k in run.asset_selection))
            else:
                keys = self.job_assets(run.job_name)
            out.append(RunRecord(
                run_id=run.run_id,
                status=_STATUS.get(_value(run.status), RunStatus.failure),
                asset_keys=keys,
                created_at=rec.create_timestamp.astimezone(UTC),
                started_at=_dt(rec.start_time),
                ended_at=_dt(rec.end_time),
                partitions=(run.tags["dagster/partition"],) if "dagster/partition" in run.tags else (),
                priority=int(run.tags.get("dagster/priority", 0) or 0),
                tags=dict(run.tags),
            ))
        return out

    def materializations(
        self, since: datetime, graph: AssetGraph | None = None, runs: Mapping[str, RunRecord] | None = None,
        *, edge_step: timedelta | None = None, now: datetime | None = None,
        latest: Mapping[str, datetime] | None = None,
    ) -> tuple[list[Materialization], dict[str, list[float]]]:
        """Recent materializations (one indexed query) and durations estimated without reading
        step events (per-run shards on SQLite): time since the later of the run's start and the
        latest materialization of an upstream asset in the same run. ``edge_step``: read from
        ``since`` rounded down to a multiple of it (``window_edge``); ``now``: the snapshot's
        clock (default the wall clock), which with ``since`` names the window its result is kept for;
        ``latest``: the snapshot's ``last_success`` (its datetimes are shared with the rows)."""
        runs = runs or {}
        cap = self.caps.max_materializations
        read_since = window_edge(since, edge_step) if edge_step else since
        memo_key = (id(graph), round(((now or datetime.now(UTC)) - since).total_seconds() / 3600))  # per window length

        def computed(rows):  # oldest first; possibly the event log cache's held rows: nothing of them kept
            if len(rows) > cap:
                self._capped("materializations", range(cap + 1), cap)  # logged and reported
                rows = rows[len(rows) - cap:]  # the newest ``cap``
            with _DURATIONS_LOCK:
                memo = _DURATIONS_MEMO.get(memo_key)
                if memo is None or memo.graph is not graph:
                    memo = _DurationsMemo(graph)
                memo.update(rows, runs, latest)
                if len(_DURATIONS_MEMO) >= 4 and memo_key not in _DURATIONS_MEMO:
                    _DURATIONS_MEMO.pop(next(iter(_DURATIONS_MEMO)))
                _DURATIONS_MEMO[memo_key] = memo
                return list(memo.mats), {k: list(v) for k, v in memo.durations.items() if v}

        return _materialization_columns(self.instance, read_since, cap + 1, computed)

    def failures(self, since: datetime, graph: AssetGraph, runs: Mapping[str, RunRecord]) -> list[FailureRecord]:
        """Step failures (with dbt and vendor messages) of runs that failed since ``since``, read
        per failed run (few), and the run failure when no step explains it."""
        out: list[FailureRecord] = []
        failed = [r for r in runs.values() if r.status is RunStatus.failure and (r.ended_at or r.created_at) >= since]
        for run in failed:
            if hasattr(self.instance, "plain_failure_events"):
                entries = self.instance.plain_failure_events(run.run_id)
            else:
                from dagster._core.events import DagsterEventType

                entries = self.instance.all_logs(
                    run.run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE})
            steps = [e for e in entries if _value(e.dagster_event.event_type) == STEP_FAILURE]
            for ev in steps:
                data = ev.dagster_event.step_failure_data
                parts = []
                if data.user_failure_data is not None and data.user_failure_data.description:
                    parts.append(data.user_failure_data.description)
                if data.error is not None:
                    msg = data.error.message.strip()
                    if not any(p and p in msg for p in parts):
                        parts.append(msg)
                    cause = data.error.cause
                    while cause is not None:
                        parts.append(cause.message.strip())
                        cause = cause.cause
                job = self._jobs.get(run.run_id) or _job_of(self.instance, run.run_id)
                keys = self.step_assets(job, ev.step_key or "")
                keys = tuple(k for k in keys if k in graph) or run.asset_keys[:1]
                key = keys[0] if keys else None
                node = graph.get(key) if key else None
                if any(getattr(graph.get(k), "role", None) == DBT_MODEL for k in keys):
                    per_node = self._dbt_failures(run, ev, "\n".join(parts), graph)
                    if per_node:
                        out.extend(per_node)
                        continue
                out.append(FailureRecord(
                    failure_id=f"step:{run.run_id}:{ev.step_key}",
                    at=_dt(ev.timestamp),
                    message="\n".join(p for p in parts if p),
                    system="dbt" if node is not None and node.role == DBT_MODEL else "dagster",
                    asset_key=key,
                    connector=node.connector if node is not None else None,
                    run_id=run.run_id,
                    partition=run.partitions[0] if run.partitions else None,
                ))
            if not steps:
                for ev in entries:
                    out.append(FailureRecord(
                        failure_id=f"run:{run.run_id}", at=_dt(ev.timestamp),
                        message=ev.dagster_event.message or ev.user_message or "run failed",
                        system="dagster", asset_key=run.asset_keys[0] if run.asset_keys else None,
                        run_id=run.run_id,
                    ))
        return out

    def _dbt_failures(self, run: RunRecord, ev, message: str, graph: AssetGraph) -> list[FailureRecord]:
        """One record per failed/errored/skipped dbt node of a failed dbt step (empty: unknown)."""
        op = (ev.step_key or "").split("[", 1)[0].rsplit(".", 1)[-1]
        at = _dt(ev.timestamp)
        partition = run.partitions[0] if run.partitions else None
        index = DbtNodeIndex(graph)
        # carried in the step failure event by the dbt step itself (resources/dbt_failures.py):
        # readable wherever this runs, unlike the run pod's target folder
        if hasattr(ev, "plain_run_results"):  # read from the event's JSON (orchestrator.plain_instance)
            carried = ev.plain_run_results
        else:
            from orchestrator.resources.dbt_failures import run_results_from_failure

            carried = run_results_from_failure(ev.dagster_event.step_failure_data)
        if carried is not None:
            nodes = {r.get("unique_id"): r for r in carried["results"]}
            recs = node_failures_from_run_results(
                carried, graph, run_id=run.run_id, at=at, partition=partition, index=index,
                manifest=lambda: {"nodes": nodes})
            if recs:
                return recs
        path = find_run_results(message, self.dbt_targets(op), op, run.run_id)
        results = _read_json(path) if path is not None else None
        if isinstance(results, dict):
            manifest_path = path.with_name("manifest.json")
            recs = node_failures_from_run_results(
                results, graph, run_id=run.run_id, at=at, partition=partition, index=index,
                manifest=lambda: _read_json(manifest_path))
            if recs:
                return recs
        return node_failures_from_message(message, graph, run_id=run.run_id, at=at, partition=partition,
                                          index=index)

    def checks(self, check_keys: Iterable[tuple[str, str]]) -> list[CheckRecord]:
        """Latest evaluation of each (asset key, check name): one batched query (check events
        are not in SQLite's index shard, so never scan them by type)."""
        import dagster as dg

        keys = [dg.AssetCheckKey(dg.AssetKey.from_user_string(a), c) for a, c in check_keys]
        out = []
        for i in range(0, len(keys), CHUNK):
            latest = self.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys[i:i + CHUNK])
            for key, rec in latest.items():
                event = rec.event
                data = event.dagster_event.event_specific_data if event and event.dagster_event else None
                if data is None or not hasattr(data, "passed"):
                    continue
                out.append(CheckRecord(key.asset_key.to_user_string(), key.name, data.passed,
                                       data.severity.value, _dt(event.timestamp)))
        return out


_JOB_CACHE: dict[str, str] = {}


def _job_of(instance, run_id: str) -> str:
    job = _JOB_CACHE.get(run_id)
    if job is None:
        run = instance.get_run_by_id(run_id)
        job = _JOB_CACHE[run_id] = run.job_name if run else ""
    return job


def resolvers_from_repository(repo_def) -> tuple[Callable[[str], tuple[str, ...]], StepAssets]:
    """``job_assets`` and ``step_assets`` from a ``RepositoryDefinition`` (cached per job)."""
    job_cache: dict[str, tuple[str, ...]] = {}
    step_cache: dict[tuple[str, str], tuple[str, ...]] = {}
    assets_by_op: dict[str, tuple[str, ...]] = {}
    from orchestrator.lib.recorded import job_asset_keys, op_name

    for assets_def in repo_def.assets_defs_by_key.values():
        name = op_name(assets_def)  # external assets: the op of the job recording them, if any
        if name is None:
            continue
        keys = tuple(k.to_user_string() for k in assets_def.keys)
        assets_by_op[name] = tuple(sorted({*assets_by_op.get(name, ()), *keys})) if name in assets_by_op else keys

    def job_assets(job_name: str) -> tuple[str, ...]:
        if job_name not in job_cache:
            try:
                job = repo_def.get_job(job_name)
                job_cache[job_name] = job_asset_keys(job)  # an op job recording assets: its metadata
            except Exception:  # noqa: BLE001 - unknown job (another location, deleted)
                job_cache[job_name] = ()
        return job_cache[job_name]

    def step_assets(job_name: str, step_key: str) -> tuple[str, ...]:
        hit = step_cache.get((job_name, step_key))
        if hit is None:
            op = step_key.split("[", 1)[0]
            keys = assets_by_op.get(op) or assets_by_op.get(op.rsplit(".", 1)[-1]) or ()
            selected = set(job_assets(job_name))
            hit = tuple(k for k in keys if not selected or k in selected) or tuple(keys)
            step_cache[(job_name, step_key)] = hit
        return hit

    return job_assets, step_assets


def dbt_target_roots(repo_def) -> Callable[[str], tuple[Path, ...]]:
    """op name -> where its dbt invocations' target folders are (dbt assets carry their
    ``DbtProject`` in the ``dagster_dbt/project`` metadata); read on the first dbt failure."""
    roots: dict[str, tuple[Path, ...]] | None = None

    def read() -> dict[str, tuple[Path, ...]]:
        out: dict[str, set[Path]] = defaultdict(set)
        seen: set[int] = set()
        for assets_def in repo_def.assets_defs_by_key.values():
            if id(assets_def) in seen:
                continue
            seen.add(id(assets_def))
            from orchestrator.lib.recorded import op_name

            name = op_name(assets_def)  # external assets: the op of the job recording them, if any
            spec = next(iter(assets_def.specs), None)
            if name is None or spec is None:
                continue
            project = (spec.metadata or {}).get("dagster_dbt/project")
            project = getattr(project, "value", project)
            root = _dbt_target_root(project) if project is not None else None
            if root is not None:
                out[name].add(root)
        return {k: tuple(sorted(v)) for k, v in out.items()}

    def of(op: str) -> tuple[Path, ...]:
        nonlocal roots
        if roots is None:
            roots = read()
        return roots.get(op, ())

    return of


# -- the connectors -------------------------------------------------------------------------------


SETTINGS_TTL = 600.0
AIRBYTE_WARNING_FETCHES = 20  # succeeded Airbyte jobs whose logs one read fetches at most
# (config API, job id) -> (WARN lines, attempts) of a finished job (its logs are final)
_AIRBYTE_WARNINGS: dict[tuple[str, object], tuple[int, int]] = {}
_WARN_LINE = re.compile(r"(^|\s)WARN(ING)?(\s|$)")


def airbyte_log_warnings(job_info: Mapping[str, Any]) -> int:
    """WARN lines in a config-API ``jobs/get`` answer's attempt logs (``attempts[].logs.logLines``)."""
    n = 0
    for attempt in job_info.get("attempts") or []:
        lines = ((attempt or {}).get("logs") or {}).get("logLines") or []
        n += sum(1 for line in lines if isinstance(line, str) and _WARN_LINE.search(line))
    return n
_SETTINGS_CACHE: dict[str, tuple[float, str]] = {}
_BROKEN_CACHE: dict[tuple[str, str], tuple[datetime, bool]] = {}  # (connection, status) -> (since, breaking)
# Airbyte nonBreakingSchemaUpdatesBehavior -> the Fivetran setting with the same effect on new columns
AIRBYTE_SCHEMA_UPDATES = {"propagate_fully": "ALLOW_ALL", "propagate_columns": "ALLOW_COLUMNS",
                          "ignore": "BLOCK_ALL", "disable_connection": "BLOCK_ALL"}


@dataclass
class ConnectorReader:
    """Reads the connectors' own sync state through the project's resources' clients."""

    fivetran: Any = None  # FivetranWorkspaceResource (or its client)
    airbyte: Any = None  # AirbyteWorkspaceResource (or its client)
    reasons_cache: dict[int, str] = field(default_factory=dict)  # airbyte job id -> failure text
    # read the WARN lines of succeeded Airbyte jobs' logs (the health sensor: per-sync warnings)
    read_warnings: bool = False
    errors: list[str] = field(default_factory=list)

    @staticmethod
    def _client(resource):
        return resource.get_client() if hasattr(resource, "get_client") else resource

    def fivetran_syncs(self, tables_of: Mapping[str, list[str]]) -> list[SyncRecord]:
        client = self._client(self.fivetran)
        out = []
        groups = client.get_groups().get("items", [])
        for group in groups:
            for conn in client.list_connectors_for_group(group["id"]):
                cid = f"fivetran:{conn['id']}"
                tables = tuple(tables_of.get(cid, ()))
                status = conn.get("status") or {}
                succeeded, failed = _iso(conn.get("succeeded_at")), _iso(conn.get("failed_at"))
                auto = conn.get("schedule_type") == "auto"
                if succeeded:
                    warns = [w for w in status.get("warnings") or [] if isinstance(w, dict) and w.get("code") != "sync_failed"]
                    out.append(SyncRecord(cid, f"{conn['id']}@{succeeded.isoformat()}", "succeeded",
                                          started_at=succeeded, ended_at=succeeded,
                                          triggered_by="schedule" if auto else "unknown", tables=tables,
                                          warnings=len(warns)))
                if failed:
                    problems = fivetran_problems(conn)
                    message = f"Sync for connector '{conn['id']}' failed" + (
                        f": {' | '.join(problems)}" if problems else ""
                    ) + (f" (setup_state {status.get('setup_state')})" if status.get("setup_state") not in (None, "connected") else "")
                    out.append(SyncRecord(cid, f"{conn['id']}@{failed.isoformat()}", "failed",
                                          started_at=failed, ended_at=failed,
                                          triggered_by="schedule" if auto else "unknown",
                                          error_message=message, tables=tables))
                if status.get("sync_state") in ("syncing", "rescheduled"):
                    since = max([t for t in (succeeded, failed) if t], default=None)
                    out.append(SyncRecord(cid, f"{conn['id']}@running", "running" if status.get("sync_state") == "syncing" else "rescheduled",
                                          started_at=since or datetime.now(UTC), tables=tables))
        return out

    def airbyte_syncs(self, tables_of: Mapping[str, list[str]], since: datetime) -> list[SyncRecord]:
        client = self._client(self.airbyte)
        params = {"workspaceIds": client.workspace_id,
                  "createdAtStart": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        jobs = client._paginated_request(method="GET", url=f"{client.rest_api_base_url}/jobs", params=params)
        out = []
        # the newest succeeded jobs not read yet get their logs read (WARN lines: a precursor)
        base = str(getattr(client, "configuration_api_base_url", ""))
        fetch = {j.get("jobId") for j in sorted(
            (j for j in jobs if j.get("status") == "succeeded" and j.get("jobType", "sync") == "sync"
             and (base, j.get("jobId")) not in _AIRBYTE_WARNINGS),
            key=lambda j: str(j.get("startTime") or ""), reverse=True)[:AIRBYTE_WARNING_FETCHES]
        } if self.read_warnings else set()
        for job in jobs:
            if job.get("jobType", "sync") != "sync":
                continue
            cid = f"airbyte:{job.get('connectionId')}"
            raw = job.get("status")
            status = {"succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled"}.get(raw, "running")
            error = None
            if status in ("failed", "cancelled"):
                error = self.reasons_cache.get(job["jobId"])
                if error is None:
                    error = self._airbyte_reason(client, job["jobId"], raw)
                    self.reasons_cache[job["jobId"]] = error
            warnings, attempts = _AIRBYTE_WARNINGS.get((base, job["jobId"]), (0, 1))
            if status == "succeeded" and job["jobId"] in fetch:
                warnings, attempts = self._airbyte_warnings(client, job["jobId"])
            out.append(SyncRecord(
                cid, str(job["jobId"]), status,
                started_at=_iso(job.get("startTime")) or datetime.now(UTC),
                ended_at=_iso(job.get("lastUpdatedAt")) if status != "running" else None,
                triggered_by="unknown", error_message=error, rows=job.get("rowsSynced"),
                tables=tuple(tables_of.get(cid, ())), warnings=warnings, attempts=attempts,
            ))
        out.extend(self.airbyte_broken_connections(client, tables_of, out))
        return out

    def airbyte_broken_connections(self, client, tables_of: Mapping[str, list[str]],
                                   syncs: list[SyncRecord]) -> list[SyncRecord]:
        """Connections Airbyte itself disabled (status ``inactive``/``deprecated``/``locked``:
        after a breaking source change, repeated failures, a source check that failed) as a failed
        sync record, so a connection that can no longer sync is diagnosed, escalated to its
        owners and blocks doomed runs like a broken Fivetran connector - even when nothing tried
        to sync it. One ``GET /connections`` per read; for a disabled connection one config-API
        ``connections/get`` for ``breakingChange``, kept while its state lasts. The record's id
        and time are those of the connection's latest sync (or of when this reader first saw the
        state), so the incident is the same one every tick."""
        out: list[SyncRecord] = []
        for c in client._paginated_request(method="GET", url=f"{client.rest_api_base_url}/connections",
                                           params={"workspaceIds": client.workspace_id}):
            state = str(c.get("status") or "active").lower()
            cid = f"airbyte:{c.get('connectionId')}"
            if state == "active" or cid not in tables_of:
                continue
            key = (cid, state)
            hit = _BROKEN_CACHE.get(key)
            if hit is None:
                breaking = False
                try:
                    details = client._single_request(method="POST",
                                                     url=f"{client.configuration_api_base_url}/connections/get",
                                                     data={"connectionId": c.get("connectionId")})
                    breaking = bool((details or {}).get("breakingChange"))
                except Exception as exc:  # noqa: BLE001 - the status alone is the fact
                    self.errors.append(f"airbyte: connection {cid}: {str(exc)[:200]}")
                last = max((s.ended_at or s.started_at for s in syncs if s.connector == cid), default=None)
                hit = _BROKEN_CACHE[key] = (last or datetime.now(UTC), breaking)
            at, breaking = hit
            # worded as the configuration problem it is (config_error: pause and escalate); the
            # schema-change sensor reports the change itself
            why = " (breakingChange flag set: a source change a person must review)" if breaking else ""
            message = (f"Airbyte connection '{c.get('name') or cid}' ({cid}) is {state}: Airbyte disabled it{why}; "
                       "its syncs cannot run until a person reviews its configuration and re-enables the connection")
            out.append(SyncRecord(cid, f"{state}{'-breaking' if breaking else ''}@{at.isoformat()}", "failed",
                                  started_at=at, ended_at=at, triggered_by="unknown", error_message=message,
                                  tables=tuple(tables_of.get(cid, ()))))
        return out

    def _airbyte_warnings(self, client, job_id: int) -> tuple[int, int]:
        """The WARN lines in a succeeded job's attempt logs (config API ``jobs/get``; the public
        API has no warnings): rate-limit and back-off warnings, a precursor of failures. Read once
        per job (a finished job's logs do not change), with the job's attempts; unreadable logs
        count (0, 1) and are retried."""
        try:
            info = client._single_request(method="POST", url=f"{client.configuration_api_base_url}/jobs/get",
                                          data={"id": job_id})
        except Exception as exc:  # noqa: BLE001 - the sync still succeeded
            self.errors.append(f"airbyte: job {job_id} logs: {str(exc)[:200]}")
            return 0, 1
        n = (airbyte_log_warnings(info or {}), max(1, len((info or {}).get("attempts") or [])))
        if len(_AIRBYTE_WARNINGS) >= 20_000:  # bounded: the oldest half goes
            for k in list(_AIRBYTE_WARNINGS)[:10_000]:
                del _AIRBYTE_WARNINGS[k]
        _AIRBYTE_WARNINGS[(str(getattr(client, "configuration_api_base_url", "")), job_id)] = n
        return n

    def _airbyte_reason(self, client, job_id: int, status: str) -> str:
        try:
            info = client._single_request(method="POST", url=f"{client.configuration_api_base_url}/jobs/get",
                                          data={"id": job_id})
        except Exception as exc:  # noqa: BLE001 - the status is still the truth
            return f"Job {status}: {job_id} (failure reasons unavailable: {exc})"
        reasons = airbyte_failure_reasons(info or {})
        if not reasons:
            return f"Job {status}: {job_id}"
        last = reasons[-1]
        text = "; ".join(m for m in (last.get("externalMessage"), last.get("internalMessage")) if m)
        return f"Job {status}: {job_id}: [{last.get('failureOrigin')}/{last.get('failureType')}] {text}"

    def schema_change_handling(self, graph: AssetGraph) -> dict[str, str]:
        """Each connector's schema-change setting, read from its API: Fivetran's
        ``schema_change_handling`` (schema config endpoint, one call per connector, kept
        ``SETTINGS_TTL`` seconds in this process) and Airbyte's ``nonBreakingSchemaUpdatesBehavior``
        (one paginated list call) mapped onto Fivetran's words. A system whose API fails is left
        out (the planner then uses its default) and noted in ``errors``."""
        import time

        wanted = {n.connector for n in graph if n.connector}
        out: dict[str, str] = {}
        now = time.monotonic()
        if self.fivetran is not None:
            client = None
            for conn in sorted(c for c in wanted if c.startswith("fivetran:")):
                hit = _SETTINGS_CACHE.get(conn)
                if hit is not None and now - hit[0] < SETTINGS_TTL:
                    out[conn] = hit[1]
                    continue
                try:
                    client = client or self._client(self.fivetran)
                    value = client.get_schema_config_for_connector(conn.split(":", 1)[1]).get("schema_change_handling")
                except Exception as exc:  # noqa: BLE001 - the planner falls back to its default
                    self.errors.append(f"fivetran: schema config of {conn}: {str(exc)[:200]}")
                    break
                if value:
                    out[conn] = str(value)
                    _SETTINGS_CACHE[conn] = (now, str(value))
        if self.airbyte is not None and any(c.startswith("airbyte:") for c in wanted):
            try:
                client = self._client(self.airbyte)
                for c in client._paginated_request(method="GET", url=f"{client.rest_api_base_url}/connections",
                                                   params={"workspaceIds": client.workspace_id}):
                    conn = f"airbyte:{c.get('connectionId')}"
                    mapped = AIRBYTE_SCHEMA_UPDATES.get(str(c.get("nonBreakingSchemaUpdatesBehavior") or ""))
                    if conn in wanted and mapped:
                        out[conn] = mapped
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"airbyte: connections: {str(exc)[:200]}")
        return out

    def syncs(self, graph: AssetGraph, since: datetime) -> list[SyncRecord]:
        tables_of: dict[str, list[str]] = defaultdict(list)
        for node in graph:
            if node.connector:
                tables_of[node.connector].append(node.key)
        out: list[SyncRecord] = []
        self.errors = []
        for name, read in (("fivetran", lambda: self.fivetran_syncs(tables_of)),
                           ("airbyte", lambda: self.airbyte_syncs(tables_of, since))):
            if getattr(self, name) is None:
                continue
            try:
                out.extend(read())
            except Exception as exc:  # noqa: BLE001 - one API down must not blind the sensor
                log.warning("%s sync state unavailable: %s", name, exc)
                self.errors.append(f"{name}: {exc}")
        return out


def mark_triggered_by(syncs: list[SyncRecord], runs: list[RunRecord], graph: AssetGraph,
                      slack: timedelta = timedelta(seconds=30)) -> list[SyncRecord]:
    """``triggered_by="dagster"`` for syncs that ended while a Dagster run of one of their
    connector's tables was running; the others keep what the API said (schedule / unknown ->
    external)."""
    windows: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    now = datetime.now(UTC)
    for run in runs:
        if run.started_at is None:
            continue
        conns = {graph.node(k).connector for k in run.asset_keys if k in graph and graph.node(k).connector}
        for conn in conns:
            windows[conn].append((run.started_at - slack, (run.ended_at or now) + slack))
    out = []
    for s in syncs:
        point = s.ended_at or s.started_at
        by_dagster = any(lo <= point <= hi for lo, hi in windows.get(s.connector, ()))
        trig = "dagster" if by_dagster else ("schedule" if s.triggered_by == "schedule" else "external")
        out.append(SyncRecord(s.connector, s.sync_id, s.status, s.started_at, s.ended_at, trig,
                              s.error_message, s.rows, s.tables))
    return out


def sync_failures(syncs: Iterable[SyncRecord]) -> list[FailureRecord]:
    return [
        FailureRecord(
            failure_id=f"sync:{s.connector}:{s.sync_id}", at=s.ended_at or s.started_at,
            message=s.error_message or f"sync {s.status}", system=s.connector.split(":", 1)[0],
            connector=s.connector,
        )
        for s in syncs
        if s.status in ("failed",)
    ]


def build_snapshot(
    instance: dg.DagsterInstance,
    graph: AssetGraph,
    *,
    now: datetime | None = None,
    since: datetime | None = None,
    repository_def=None,
    connectors: ConnectorReader | None = None,
    failures: bool = True,
    history: bool = True,
    check_keys: Iterable[tuple[str, str]] = (),
    last_success: bool = True,
    caps: SnapshotCaps | None = None,
    connector_settings: bool = False,
    resolvers: Mapping[str, Callable] | None = None,
    reach: timedelta | None = None,
) -> Snapshot:
    """A full snapshot: last successes, recent materializations and durations, in-flight and
    recent runs, failures (steps, runs, connector syncs) and check results since ``since``
    (default: two days before ``now``; then the materializations from that edge rounded down to the
    hour, ``HISTORY_EDGE_STEP``). ``history=False`` / ``last_success=False`` skip the
    recent materializations / the latest materialization of every asset. ``caps`` (default: from
    the environment, ``SnapshotCaps``) bound what is read; ``caps_hit(snapshot)`` says which were hit.
    ``connector_settings`` also reads each connector's schema-change setting (for the planner).
    ``resolvers`` (``job_assets``, ``step_assets``, ``dbt_targets``) replace ``repository_def``'s.
    ``reach``: the materializations are read from at least this long before ``now``
    (``orchestrator.assessment.freshness.history_reach``: far enough back for the policies' oldest
    window opening and longest max_lag; the runs and failures keep ``since``)."""
    # what the last tick freed (its snapshot and assessment, gone by now) back to the system
    release_free_heap()
    now = now or datetime.now(UTC)
    since_given = since is not None
    since = since or now - timedelta(days=2)
    kwargs = {}
    if repository_def is not None:
        kwargs["job_assets"], kwargs["step_assets"] = resolvers_from_repository(repository_def)
        kwargs["dbt_targets"] = dbt_target_roots(repository_def)
    if resolvers is not None:  # the same three from plain data (orchestrator.graph_cache)
        kwargs.update(resolvers)
    reader = InstanceReader(instance, caps=caps or SnapshotCaps.from_env(), **kwargs)
    snap = Snapshot(taken_at=now, graph=graph)
    if last_success:
        snap.last_success = read_last_success(instance, graph.keys)
    snap.runs = reader.runs(since)
    if history:
        history_since = since if reach is None else min(since, now - reach)
        snap.materializations, snap.durations = reader.materializations(
            history_since, graph, {r.run_id: r for r in snap.runs}, edge_step=None if since_given else HISTORY_EDGE_STEP,
            now=now, latest=snap.last_success)
    if check_keys:
        snap.checks = reader.checks(check_keys)
    if failures:
        snap.failures = reader.failures(since, graph, {r.run_id: r for r in snap.runs})
    if connectors is not None:
        snap.syncs = mark_triggered_by(connectors.syncs(graph, since), snap.runs, graph)
        if connector_settings:
            snap.schema_change_handling = connectors.schema_change_handling(graph)
        if failures:
            snap.failures.extend(sync_failures(snap.syncs))
    if connectors is not None:  # untrusted loads the health sensor found (orchestrator.health)
        from orchestrator.health.shell import attach_holds

        attach_holds(snap)
    snap.caps_hit = dict(reader.caps_hit)  # type: ignore[attr-defined]  (read with caps_hit())
    release_free_heap()  # the reads' own buffers (driver rows, decoded events): the snapshot holds none
    return snap


class DiagnosisCache:
    """Diagnoses of root failures kept by failure id across sensor ticks: a failure stays in the
    sensors' window for hours and is the same failure every tick, so its message is classified
    (rules + failure memory) once, not once per tick. An entry is reused only while the failure's
    message and system are unchanged; the oldest entries go beyond ``max_entries``.

    ``diagnose(failures, graph, memory, roots=...)`` returns what
    ``orchestrator.assessment.diagnose_failures`` returns for the same arguments (failures linked
    to an upstream root inherit its diagnosis the same way; a test compares the two)."""

    def __init__(self, max_entries: int = 50_000):
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[tuple[str, str, str], DiagnosedFailure]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _scope(memory) -> str:
        """Which failure memory a diagnosis was made with: the same store across ticks (a
        FailureMemory is opened per tick), so another store never sees this store's answers."""
        if memory is None:
            return ""
        store = getattr(memory, "store", None)
        url = getattr(store, "url", None) if store is not None else None
        return f"{type(memory).__name__}:{url if isinstance(url, str) else id(store or memory)}"

    def _cached(self, f: FailureRecord, scope: str) -> DiagnosedFailure | None:
        entry = self._entries.get(f.failure_id)
        if entry is None or entry[0] != (f.message, f.system, scope):
            return None
        self._entries.move_to_end(f.failure_id)
        return entry[1] if entry[1].failure == f else replace(entry[1], failure=f)

    def diagnose(self, failures: Iterable[FailureRecord], graph: AssetGraph, memory=None, *,
                 roots: dict[str, str | None] | None = None) -> list[DiagnosedFailure]:
        from orchestrator.assessment import diagnose_failures, link_root_causes
        from orchestrator.assessment.failures import with_roots

        failures = list(failures)
        if roots is None:
            roots = link_root_causes(failures, graph)
        scope = self._scope(memory)
        diagnosed: dict[str, DiagnosedFailure] = {}
        fresh: list[FailureRecord] = []
        for f in failures:
            if roots.get(f.failure_id) is not None:
                continue
            hit = self._cached(f, scope)
            if hit is not None:
                self.hits += 1
                diagnosed[f.failure_id] = hit
            else:
                fresh.append(f)
        if fresh:
            self.misses += len(fresh)
            for d in diagnose_failures(fresh, graph, memory, roots={f.failure_id: None for f in fresh}):
                diagnosed[d.failure.failure_id] = d
                self._entries[d.failure.failure_id] = ((d.failure.message, d.failure.system, scope), d)
                self._entries.move_to_end(d.failure.failure_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return with_roots(failures, roots, diagnosed)
