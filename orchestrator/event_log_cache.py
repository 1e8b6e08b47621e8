"""What a SQL event log held at the last sensor tick, kept in this process and brought up to date
by reading only the materializations stored since (a cursor on the event log's storage id).

A sensor tick reads, for every asset of the graph, its latest materialization and the
materializations of the last days (duration samples, data times). At 100,000 assets with 30 days
of history that is 100,000 index seeks and ~200,000 rows per tick, although between two ticks a
few hundred events at most were stored. Here, per event log database (its URL, password hidden:
a sensor gets a new ``DagsterInstance`` per evaluation, the database is the same):

* the latest materialization per asset: asset key (user string, the graph's own key object) ->
  (storage id, timestamp) of its newest one, or None when read in full and none is stored, held
  by slot (``latest_of``): one dict key -> slot, the ids in an ``array('q')``, the datetimes in a
  list (the objects the snapshot's ``last_success`` and its window rows share). The slots are
  also the cache's key interner: a row read from the database takes the key object its slot
  holds (the graph's), so no db string -> user string map is kept;
* ``rows``: (storage id, user key, timestamp, run id, partition) of every materialization stored
  after ``covered_after``, ascending by id (what ``_materialization_rows`` reads), by column
  (``Rows``: ids and timestamps in arrays, the graph's key objects, interned run ids);
* each tick: ``SELECT ... WHERE id > cursor AND dagster_event_type = 'ASSET_MATERIALIZATION'``
  (a primary-key range), applied to both. Ids stored in the last ``OVERLAP_S`` seconds are read
  again and de-duplicated: PostgreSQL takes an id at insert and shows the row at commit, so a row
  with a lower id can appear after a higher one was read.

What a cursor cannot see is caught as follows: wipes (``asset_keys.asset_details`` set; the wiped
keys go through Dagster's public API every tick, as before; a new wipe is read in full once, since
SQLite's storage deletes the asset's rows from its index shard), a storage wiped or recreated (its
highest id below the cursor, or fewer ``asset_keys`` rows than before: full re-read), and
events deleted with a run (``delete_run``) or by retention: a full re-read every
``ORCHESTRATOR_SNAPSHOT_RESYNC_S`` seconds (default 600; ``0`` turns the cache off: every tick
reads everything, as before). A window wider than the one held, or a read that hits the
materialization cap, is read in full too.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from array import array
from bisect import bisect_left
from collections import deque
from datetime import datetime, timedelta, timezone

from orchestrator.core.graph import shared_ints

UTC = timezone.utc
RESYNC_ENV = "ORCHESTRATOR_SNAPSHOT_RESYNC_S"
DEFAULT_RESYNC_S = 600.0
OVERLAP_S = 60.0
OVERLAP_IDS = 1000  # after a full read: ids below its cursor read again once (late commits)
_MAT = "ASSET_MATERIALIZATION"
NOT_HELD = -2  # a slot's id: its key's latest materialization is not held (read it in full)
NONE_STORED = -1  # a slot's id: read in full, none stored

Row = tuple[int, str, float, str, "str | None"]  # (storage id, user key, timestamp, run id, partition)


class Rows:
    """Materialization rows by column, ascending by storage id: ids and timestamps in arrays of
    8-byte values, asset keys (the graph's own key objects), run ids and partitions (interned
    strings) in lists. ~40 bytes a row, where a tuple per row (with its int and float objects)
    took ~150; nothing per row is allocated to hold one. ``ids`` is None for rows read without
    storage ids (the public API, the plain instance)."""

    __slots__ = ("ids", "ts", "keys", "runs", "parts")

    def __init__(self, ids=None, ts=None, keys=None, runs=None, parts=None, *, with_ids: bool = True):
        self.ids = (ids if ids is not None else array("q")) if with_ids else None
        self.ts = ts if ts is not None else array("d")
        self.keys = keys if keys is not None else []
        self.runs = runs if runs is not None else []
        self.parts = parts if parts is not None else []

    def __len__(self) -> int:
        return len(self.ts)

    def append(self, sid, key, ts: float, run_id, partition) -> None:
        if self.ids is not None:
            self.ids.append(sid)
        self.ts.append(ts)
        self.keys.append(key)
        self.runs.append(run_id)
        self.parts.append(partition)

    def insert(self, i: int, sid, key, ts: float, run_id, partition) -> None:
        if self.ids is not None:
            self.ids.insert(i, sid)
        self.ts.insert(i, ts)
        self.keys.insert(i, key)
        self.runs.insert(i, run_id)
        self.parts.insert(i, partition)

    def reverse(self) -> None:
        for col in (self.ids, self.ts, self.keys, self.runs, self.parts):
            if col is not None:
                col.reverse()

    def __getitem__(self, sl: slice) -> Rows:
        if not isinstance(sl, slice):
            raise TypeError("Rows are sliced, not indexed: use tuples() for one row at a time")
        return Rows(self.ids[sl] if self.ids is not None else None, self.ts[sl], self.keys[sl], self.runs[sl],
                    self.parts[sl], with_ids=self.ids is not None)

    def take(self, index: list[int]) -> Rows:
        ids = self.ids
        return Rows(array("q", [ids[i] for i in index]) if ids is not None else None,
                    array("d", [self.ts[i] for i in index]), [self.keys[i] for i in index],
                    [self.runs[i] for i in index], [self.parts[i] for i in index], with_ids=ids is not None)

    def after(self, cut: float) -> Rows:
        """The rows with a timestamp after ``cut``, in the same order (self when all are)."""
        ts = self.ts
        n = len(ts)
        f = 0
        while f < n and ts[f] <= cut:
            f += 1
        if f == n:
            return self[n:]
        if min(ts[f:]) > cut:  # the usual case: ids grow with time, the old rows lead
            return self if f == 0 else self[f:]
        return self.take([i for i in range(f, n) if ts[i] > cut])

    def keep_after(self, cut: float) -> None:
        """Keep only the rows ``after(cut)`` gives, in place: the old rows leave the front of each
        column without a second copy of every column (8 MiB at 100,000 assets) held beside the
        first while it is made."""
        ts = self.ts
        n = len(ts)
        f = 0
        while f < n and ts[f] <= cut:
            f += 1
        cols = [c for c in (self.ids, self.ts, self.keys, self.runs, self.parts) if c is not None]
        with memoryview(ts) as view:  # (no copy of the column to find its least timestamp)
            rest_after = f == n or min(view[f:]) > cut
        if rest_after:
            for c in cols:
                del c[:f]
            return
        index = [i for i in range(f, n) if ts[i] > cut]
        for c in cols:
            c[:] = array(c.typecode, [c[i] for i in index]) if isinstance(c, array) else [c[i] for i in index]

    def tuples(self):
        """(storage id | None, key, timestamp, run id, partition) per row, in order."""
        ids = self.ids if self.ids is not None else [None] * len(self.ts)
        return zip(ids, self.keys, self.ts, self.runs, self.parts)

    @classmethod
    def from_tuples(cls, rows) -> Rows:
        """From (storage id | None, key, timestamp, run id, partition) tuples, in their order."""
        rows = list(rows)
        with_ids = bool(rows) and all(r[0] is not None for r in rows)
        out = cls(with_ids=with_ids or not rows)
        for r in rows:
            out.append(r[0], r[1], r[2], r[3], r[4])
        return out


def resync_seconds(environ=None) -> float:
    env = os.environ if environ is None else environ
    raw = env.get(RESYNC_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_RESYNC_S
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"{RESYNC_ENV} must be a number of seconds (0: no cache), got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{RESYNC_ENV} must be a number of seconds (0: no cache), got {raw!r}")
    return value


class EventLogState:
    """One event log database's materializations as of ``cursor`` (see the module doc)."""

    def __init__(self, clock=time.monotonic):
        self.lock = threading.Lock()
        self.clock = clock
        self.cursor: int | None = None  # highest storage id applied
        self.synced_at: float | None = None  # clock() of the last full read
        self.asset_key_rows: int | None = None
        # The latest materialization per user key, by slot (``latest_of``): a key is held once
        # read in full or once a row of it was applied (ids grow: nothing older can be its
        # latest). ``_lat_id``: its storage id, NONE_STORED (read in full, none stored) or
        # NOT_HELD; ``_lat_at``: its time. Slots outlive a full re-read (they intern the keys).
        self._slot: dict[str, int] = {}
        self._names: list[str] = []  # slot -> the key object rows take (the graph's)
        self._lat_id = array("q")
        self._lat_at: list[datetime | None] = []
        self._other: dict[str, str] = {}  # keys of rows read in full that no slot holds
        self.rows: Rows | None = None  # None: not held (never read, or the cap was hit)
        self.covered_after: datetime | None = None  # naive UTC: rows hold every row after it
        self.span_s = 0.0  # the widest window asked for (now - since), kept across re-reads
        self.marks: deque[tuple[float, int]] = deque()  # (clock, cursor) of recent ticks
        self.recent_ids: set[int] = set()  # ids applied above the overlap's start
        self.out_of_order = 0  # rows inserted below the highest id held (late commits)
        self.wiped: set[str] = set()  # db keys whose asset was wiped (public API)
        self.wiped_keys: set[str] = set()  # the same as user keys
        self.wipes: dict[str, str] = {}  # db key -> its asset_details (the last wipe's time)
        self.reads = {"full": 0, "incremental": 0, "rows_full": 0}

    # -- queries ---------------------------------------------------------------------------
    def refresh(self, conn, resync_s: float) -> None:
        """Bring the state up to the event log's newest id (or re-read it all)."""
        import sqlalchemy as db
        from dagster._core.storage.event_log.schema import AssetKeyTable, SqlEventLogStorageTable as E

        now = self.clock()
        top = conn.execute(db.select(db.func.max(E.c.id))).scalar()
        n_keys = conn.execute(db.select(db.func.count()).select_from(AssetKeyTable)).scalar() or 0
        wipes = dict(conn.execute(db.select(AssetKeyTable.c.asset_key, AssetKeyTable.c.asset_details)
                                  .where(AssetKeyTable.c.asset_details.isnot(None))).all())
        # a new wipe: SQLite's storage deletes the asset's rows from its index shard
        rewiped = wipes != self.wipes
        self.wipes = wipes
        self.wiped = set(wipes)
        if rewiped or len(self.wiped_keys) != len(wipes):
            self.wiped_keys = {self.user_key(d) for d in wipes if d}
        stale = (
            rewiped or self.cursor is None or self.synced_at is None or now - self.synced_at >= resync_s
            or (top or 0) < self.cursor or (self.asset_key_rows is not None and n_keys < self.asset_key_rows)
        )
        self.asset_key_rows = n_keys
        if stale:
            self._reset(top or 0, now)
            return
        # re-read from the cursor of OVERLAP_S ago (late commits), skip what was applied
        start = min(self.marks[0][1], self.cursor) if self.marks else self.cursor
        if top is not None and top > start:
            query = (db.select(E.c.id, E.c.asset_key, E.c.timestamp, E.c.run_id, E.c.partition)
                     .where(E.c.id > start, E.c.dagster_event_type == _MAT).order_by(E.c.id))
            self._apply(conn.execute(query))
            self.reads["incremental"] += 1
        self.cursor = max(self.cursor, top or 0)
        self.marks.append((now, self.cursor))
        while len(self.marks) > 1 and now - self.marks[1][0] >= OVERLAP_S:
            self.marks.popleft()  # marks[0]: the newest cursor at least OVERLAP_S old
        floor = self.marks[0][1]
        if len(self.recent_ids) > 1024:
            self.recent_ids = {i for i in self.recent_ids if i > floor}

    def _reset(self, top: int, now: float) -> None:
        self.cursor = top
        self.synced_at = now
        self._lat_id = array("q", [NOT_HELD]) * len(self._names)  # nothing held, the slots kept
        self._lat_at = [None] * len(self._names)
        self._other = {}
        self.rows = None
        self.covered_after = None
        # the first incremental read also re-reads the last OVERLAP_IDS ids below ``top``
        self.marks = deque([(now - OVERLAP_S, max(0, top - OVERLAP_IDS)), (now, top)])
        self.recent_ids = set()
        self.out_of_order = 0
        self.reads["full"] += 1

    # -- the latest materialization per key, by slot -----------------------------------------
    def _hold(self, key: str) -> int:
        """``key``'s slot, made (not held yet) when it has none."""
        i = self._slot.get(key)
        if i is None:
            i = self._slot[key] = shared_ints(len(self._names) + 1)[len(self._names)]  # (the graph's ints)
            self._names.append(key)
            self._lat_id.append(NOT_HELD)
            self._lat_at.append(None)
        return i

    def user_key(self, db_key: str) -> str:
        """The user string of a db key string, as the key object its slot holds (the graph's)
        when it has one: rows of one asset share one string, nothing per row is kept."""
        from orchestrator.snapshot import _user_key

        key = _user_key(db_key)
        i = self._slot.get(key)
        if i is not None:
            return self._names[i]
        return self._other.setdefault(key, key)

    def latest_of(self, key: str) -> tuple[int, datetime] | None | bool:
        """(storage id, time) of ``key``'s latest materialization; None: read in full and none
        stored; False: not held."""
        i = self._slot.get(key)
        if i is None or self._lat_id[i] == NOT_HELD:
            return False
        sid = self._lat_id[i]
        return None if sid == NONE_STORED else (sid, self._lat_at[i])

    def _apply(self, result) -> None:
        from orchestrator.snapshot import _utc

        rows = self.rows
        lat_id, lat_at = self._lat_id, self._lat_at
        seen = self.recent_ids
        intern = sys.intern
        for sid, db_key, ts, run_id, partition in result:
            if sid in seen or not db_key:
                continue
            seen.add(sid)
            at = _utc(ts)
            key = self.user_key(db_key)
            i = self._hold(key)
            if sid > lat_id[i]:  # (NOT_HELD and NONE_STORED are below every id)
                lat_id[i] = sid
                lat_at[i] = at
            if rows is not None:
                run_id = intern(run_id) if run_id else run_id
                partition = intern(partition) if partition else partition
                ids = rows.ids
                if ids and sid < ids[-1]:  # a late commit below the highest id held
                    rows.insert(bisect_left(ids, sid), sid, key, at.timestamp(), run_id, partition)
                    self.out_of_order += 1
                else:
                    rows.append(sid, key, at.timestamp(), run_id, partition)

    def last_success(self, conn, keys: list[str], db_key, read, chunk: int = 2500) -> dict[str, datetime]:
        """Asset key -> latest materialization time for ``keys`` (user strings) not wiped;
        ``db_key(key)`` is a key's db string, ``read(conn, db keys)`` the full query (db key ->
        (id, timestamp) | None), both only for keys not held yet, ``chunk`` keys at a time (the
        cold read holds no db string, id or tuple per asset beyond one chunk)."""
        slot, lat_id, lat_at = self._slot, self._lat_id, self._lat_at
        missing = [k for k in keys if (i := slot.get(k)) is None or lat_id[i] == NOT_HELD]
        for c in range(0, len(missing), chunk):
            part = missing[c:c + chunk]
            db_keys = [db_key(k) for k in part]
            got = read(conn, db_keys)
            for k, d in zip(part, db_keys):
                i = self._hold(k)
                lat_id, lat_at = self._lat_id, self._lat_at
                self._names[i] = k  # rows read from now on take the caller's (the graph's) key object
                hit = got.get(d)
                if hit is None:
                    lat_id[i], lat_at[i] = NONE_STORED, None
                else:
                    lat_id[i], lat_at[i] = hit
            del got, db_keys, part
        lat_at = self._lat_at
        wiped = self.wiped_keys
        out = {}
        for k in keys:
            at = lat_at[slot[k]]
            if at is not None and k not in wiped:
                out[k] = at
        return out

    def window_rows(self, conn, after: datetime, wall_now: datetime, limit: int, read, *,
                    copy: bool = True) -> Rows | None:
        """Rows with timestamp > ``after`` (naive UTC), ascending by id, the newest ``limit`` at
        most; ``read(conn, after, limit, key_of)`` is the full read (``Rows``, ascending;
        ``key_of(db key)`` gives each row's key object). None: not cacheable (cap hit).
        ``copy=False``: when the window is every row held, the held rows themselves, which the next
        ``refresh`` changes in place: read them under ``lock`` and keep none of their columns (at
        100,000 assets the copy was 8 MB a tick, and its churn left ~12 MiB more resident)."""
        self.span_s = max(self.span_s, (wall_now - after).total_seconds())
        if self.rows is None or self.covered_after is None or after < self.covered_after:
            wide = min(after, wall_now - timedelta(seconds=self.span_s))
            self.rows = None  # the old rows go before the new ones are read (peak)
            got = read(conn, wide, limit, self.user_key)
            self.reads["rows_full"] += 1
            if limit and len(got) >= limit:
                self.rows = None
                self.covered_after = None
                return None
            self.rows = got
            self.covered_after = wide
            if self.marks:
                floor_id = self.marks[0][1]
                self.recent_ids.update(i for i in got.ids if i > floor_id)
        cut = after.replace(tzinfo=UTC).timestamp()
        rows = self.rows
        # drop what no window needs any more (older than the widest window asked for)
        floor = (wall_now - timedelta(seconds=self.span_s)).replace(tzinfo=UTC).timestamp()
        if len(rows) and rows.ts[0] <= floor:
            held = len(rows)
            rows.keep_after(floor)  # (rows handed out uncopied are read under the lock, none kept)
            if len(rows) < held:
                self.covered_after = max(self.covered_after, datetime.fromtimestamp(floor, UTC).replace(tzinfo=None))
        out = rows.after(cut)
        if out is rows and copy:
            out = rows[:]
        if limit and len(out) > limit:
            out = out[len(out) - limit:]
        return out


_STATES: dict[str, EventLogState] = {}
_STATES_LOCK = threading.Lock()


def state_for(conn) -> EventLogState:
    """The state of the database ``conn`` is connected to (by URL, password hidden)."""
    url = conn.engine.url
    try:
        name = url.render_as_string(hide_password=True)
    except AttributeError:  # pragma: no cover - older SQLAlchemy
        name = repr(url)
    with _STATES_LOCK:
        state = _STATES.get(name)
        if state is None:
            state = _STATES[name] = EventLogState()
        return state


def clear() -> None:
    """Forget every held state (tests; a process that wants a cold read)."""
    with _STATES_LOCK:
        _STATES.clear()
