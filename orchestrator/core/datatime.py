"""Data time: the time an asset's data is current as of (no Dagster imports).

Freshness is judged by how old the data is, not by when the asset last ran:

* a connector table: when the sync that landed it *started* (rows changed after the start may
  be missing);
* a model (or dashboard): the oldest data time of the inputs it read when its run started.

``Snapshot.data_time`` carries it when the source knows it (the simulator does, exactly). For the
rest it is derived here from the snapshot: syncs (start of the succeeded sync that landed a
table), runs (start of the run that materialized a model) and the materialization history (the
inputs' data time as of that start). Without any of that, the data time is the latest
materialization (the old behaviour).

The snapshot's materializations start at its window's edge (``orchestrator.snapshot``). A model
that read an input's data from before it (no row of the input at or before the run's start) has
a data time only known to predate the edge: ``BEFORE_HISTORY``, a fixed value (not the edge, nor
the input's first recorded data time, which both move with the edge), held back by the input it
read (the first such input in the graph's order of its parents). An input with no row in the
window (its latest materialization only, older than the edge) bounds it by that one's data time
instead, as before: older than the edge too, and the edge does not move it.
So every data time computed from the window equals the one the whole history gives, or both
predate the edge; the edge passing an hour moves only data times older than the new edge; and a
comparison with any window opening or max_lag limit after the edge (freshness, the planner) has
the answer the whole history gives (``tests/test_datatime_edge.py``).

:func:`data_times` returns ``(data_time, held_by)``: ``held_by[k]`` is the upstream asset whose
data time ``k`` inherits (the input that holds it back), ``k`` itself for a source.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from operator import is_

from orchestrator.core.records import Snapshot

UTC = timezone.utc
# The data time of an asset that read an input's data from before the history window (the
# snapshot's materializations start at its edge): only known to be older than the edge. A fixed
# value, not the edge itself nor an input's first recorded data time, so that the edge moving
# does not move it; older than any window opening or max_lag limit the history covers, so every
# freshness decision is the one the true (older) data time gives when those lie inside the
# window (``orchestrator.assessment.freshness.history_reach``).
BEFORE_HISTORY = datetime(1970, 1, 1, tzinfo=UTC)
BEFORE_HISTORY_TEXT = "a time before the history window"


def next_cron_tick(cron: str | None, after: datetime) -> datetime | None:
    """The first tick of a cron schedule (a connector's own sync schedule) at or after ``after``,
    in UTC (None: no schedule, or one that cannot be read)."""
    if not cron:
        return None
    try:
        from cronsim import CronSim

        return _aware(next(iter(CronSim(cron, _aware(after).astimezone(timezone.utc) - timedelta(seconds=1)))))
    except Exception:  # noqa: BLE001 - an unreadable schedule counts as unknown
        return None


def data_time_text(dt: datetime) -> str:
    """A data time as shown (UI metadata, reasons): ISO format, or that it predates the history."""
    return BEFORE_HISTORY_TEXT if dt == BEFORE_HISTORY else dt.isoformat()


_SYNC_MATCH = timedelta(minutes=10)  # a sync ending this close to a table's materialization landed it


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def data_times(snapshot: Snapshot) -> tuple[Mapping[str, datetime], Mapping[str, str]]:
    """(asset key -> data time, asset key -> the input holding it back): read-only mappings
    (``ByPosition`` when derived, dicts when the source gives every data time). Memoised per
    snapshot."""
    memo = getattr(snapshot, "_data_times_memo", None)
    sig = (id(snapshot.data_time), len(snapshot.data_time), len(snapshot.last_success),
           len(snapshot.materializations), len(snapshot.syncs), snapshot.taken_at,
           tuple(sorted(getattr(snapshot, "anomalous_loads", None) or ())))
    if memo is not None and memo[0] == sig:
        return memo[1], memo[2]
    dts, held = _carried(snapshot)
    if getattr(snapshot, "anomalous_loads", None):  # untrusted loads are not fresh (orchestrator.health)
        from orchestrator.health.hold import cap_untrusted

        dts, held = dict(dts), dict(held)  # the carried result stays as computed
        cap_untrusted(snapshot, dts, held)
    try:
        snapshot._data_times_memo = (sig, dts, held)  # type: ignore[attr-defined]
    except AttributeError:  # a slotted snapshot: no memo
        pass
    return dts, held


_NOT_ROW = object()  # the run of a history entry that is not a window row (see ``_Hist``)
_NO_RUNS: dict = {}  # an asset with no run ids in its history (shared, never written)
_EPOCH = BEFORE_HISTORY  # microseconds are counted from it: BEFORE_HISTORY is 0
_US = timedelta(microseconds=1)
_SYNC_MATCH_US = _SYNC_MATCH // _US


def _us(t: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact)."""
    return (t - _EPOCH) // _US


def _at_us(us: int) -> datetime:
    return BEFORE_HISTORY if us == 0 else _EPOCH + timedelta(microseconds=us)


def _row_at(row) -> int:
    return row[0]


class _Hist:
    """Every asset's history of (landed at, data time), carried between ticks in flat columns, no
    object per asset or per row: asset ``i`` (its position in the graph's topological order) has
    ``cnt[i]`` entries from ``off[i]``, sorted by when they landed (stable: rows at the same time
    keep the snapshot's order): ``at`` and ``dt`` (its data time as of then, never going back) as
    integer microseconds since the epoch (``BEFORE_HISTORY`` is 0), with the row's run id
    (``run``) and step duration (``dur``, 0.0 when not known) - what the asset is computed from
    again when its rows change (no list of the snapshot's rows per asset is kept). An entry that is
    not a window row (the latest materialization, later than every row; a given data time with no
    row) has the run ``_NOT_ROW``: at most one per asset, its last. ``cnt[i] == 0``: no history.
    A history replaced by a longer one goes to the end of the columns; they are compacted
    once more than half of them is dead; a shorter one is written in place (the window's edge
    passing an hour shortens every history it drops rows from: those add nothing to the columns)."""

    __slots__ = ("off", "cnt", "at", "dt", "dur", "run", "dead")
    MIN_DEAD = 4096  # dead entries below which the columns are not compacted

    def __init__(self, n: int) -> None:
        self.off = array("q", bytes(8 * n))
        self.cnt = array("l", bytes(array("l").itemsize * n))
        self.at = array("q")
        self.dt = array("q")
        self.dur = array("d")
        self.run: list = []
        self.dead = 0

    def windowed(self, i: int) -> bool:
        """The asset has rows in the window (its first entry is one: the other is the last)."""
        return self.cnt[i] > 0 and self.run[self.off[i]] is not _NOT_ROW

    def rows(self, i: int) -> list:
        """The asset's window rows as ``(at, run id, duration, None)``, oldest first."""
        o = self.off[i]
        at, run, dur = self.at, self.run, self.dur
        return [(at[j], run[j], dur[j], None) for j in range(o, o + self.cnt[i]) if run[j] is not _NOT_ROW]

    def same(self, i: int, at_l: list, dt_l: list) -> bool:
        n = self.cnt[i]
        if n != len(at_l):
            return False
        o = self.off[i]
        return self.at[o:o + n].tolist() == at_l and self.dt[o:o + n].tolist() == dt_l

    def put(self, i: int, at_l: list, dt_l: list, dur_l: list, run_l: list) -> None:
        n, old = len(at_l), self.cnt[i]
        if n <= old:  # in place (a shorter one leaves its tail dead: the window's edge drops rows)
            o = self.off[i]
            for j in range(n):
                self.at[o + j], self.dt[o + j], self.dur[o + j], self.run[o + j] = at_l[j], dt_l[j], dur_l[j], run_l[j]
            if n < old:
                for j in range(n, old):  # (no run id kept alive by a dead entry)
                    self.run[o + j] = None
                self.cnt[i] = n
                self.dead += old - n
                if self.dead > self.MIN_DEAD and 2 * self.dead > len(self.at):
                    self._compact()
            return
        self.dead += old
        self.off[i] = len(self.at)
        self.cnt[i] = n
        self.at.extend(at_l)
        self.dt.extend(dt_l)
        self.dur.extend(dur_l)
        self.run.extend(run_l)
        if self.dead > self.MIN_DEAD and 2 * self.dead > len(self.at):
            self._compact()

    def clear(self, i: int) -> None:
        self.dead += self.cnt[i]
        self.cnt[i] = 0
        if self.dead > self.MIN_DEAD and 2 * self.dead > len(self.at):
            self._compact()

    def _compact(self) -> None:
        at, dt, dur, run = array("q"), array("q"), array("d"), []
        off, cnt = self.off, self.cnt
        for i in range(len(cnt)):
            n = cnt[i]
            if n:
                o = off[i]
                off[i] = len(at)
                at.extend(self.at[o:o + n])
                dt.extend(self.dt[o:o + n])
                dur.extend(self.dur[o:o + n])
                run.extend(self.run[o:o + n])
        self.at, self.dt, self.dur, self.run, self.dead = at, dt, dur, run, 0

    def history(self, i: int) -> tuple[list[datetime], list[datetime]] | None:
        """(landed at, data time) as datetimes (UTC), as the plain computation keeps them."""
        n = self.cnt[i]
        if not n:
            return None
        o = self.off[i]
        return [_at_us(x) for x in self.at[o:o + n]], [_at_us(x) for x in self.dt[o:o + n]]


class ByPosition(Mapping):
    """A read-only mapping of asset key -> value (a data time, a holder) kept as a list by the
    graph's topological position (None: no entry), iterated in that order: what ``data_times``
    returns when it derives the data times. A pointer per asset where a dict of 100,000 keys takes
    3.7 MiB, and an update copies the list, not a dict (two generations of both dicts stayed in
    the heap after a tick). Compares equal to the dict with the same items."""

    __slots__ = ("_pos", "_order", "_vals", "_n")

    def __init__(self, pos: dict[str, int], order: tuple[str, ...], vals: list | None = None, n: int = 0):
        self._pos = pos
        self._order = order
        self._vals = vals if vals is not None else [None] * len(order)
        self._n = n

    def __getitem__(self, key):
        i = self._pos.get(key)
        v = None if i is None else self._vals[i]
        if v is None:
            raise KeyError(key)
        return v

    def get(self, key, default=None):
        i = self._pos.get(key)
        if i is None:
            return default
        v = self._vals[i]
        return default if v is None else v

    def __contains__(self, key) -> bool:
        i = self._pos.get(key)
        return i is not None and self._vals[i] is not None

    def __iter__(self):
        order = self._order
        return (order[i] for i, v in enumerate(self._vals) if v is not None)

    def __len__(self) -> int:
        return self._n

    def items(self):  # type: ignore[override]  (no lookup per key)
        order = self._order
        return [(order[i], v) for i, v in enumerate(self._vals) if v is not None]

    def values(self):  # type: ignore[override]
        return [v for v in self._vals if v is not None]

    def __repr__(self) -> str:
        return f"ByPosition({dict(self.items())!r})"

    def __reduce__(self):
        return (dict, (self.items(),))

    # -- the carry's own writes (a caller never changes a result) --------------------------------
    def _copy(self) -> ByPosition:
        return ByPosition(self._pos, self._order, list(self._vals), self._n)

    def _set(self, i: int, v) -> None:
        if self._vals[i] is None:
            self._n += 1
        self._vals[i] = v

    def _drop(self, i: int) -> None:
        if self._vals[i] is not None:
            self._n -= 1
            self._vals[i] = None


class _Carry:
    """The last computation's inputs, per-asset intermediate results and result, for the next
    snapshot (the next sensor tick) of the same graph. When every input is equal the result is
    returned again, read-only (``hits``). Otherwise only the assets whose own inputs changed (a
    materialization added or gone, a latest materialization, a given data time, a run's start, a
    sync landing it) are computed again, then their children, in topological order, as long as an
    asset's result (history of data times, the input holding it back, the data times per run)
    differs from the one held (``partial``; ``recomputed``: assets computed by the last update).
    A new graph, or a source that gives every data time, computes everything (``misses``).

    Held per asset: its history in ``store`` (``_Hist``: flat columns, with the window rows it is
    computed from), the data time per run id of the assets with run ids (``of_run``), and the
    result's two dicts (the holders are the result's own)."""

    __slots__ = ("graph", "inputs", "result", "hits", "misses", "partial", "recomputed",
                 "store", "of_run", "changed")

    def __init__(self) -> None:
        self.graph = None
        self.inputs: tuple | None = None
        self.result: tuple[dict[str, datetime], dict[str, str]] | None = None
        self.hits = self.misses = self.partial = self.recomputed = 0
        self.store: _Hist | None = None  # None: every data time was given, nothing per asset
        self.of_run: dict[str, dict[str, int]] = {}  # key -> run id -> data time (us) it materialized with
        # (the result before the last update, keys whose data time or holder it changed): lets
        # the next caller holding that result find what moved without comparing every key (read
        # once: ``changed_since``)
        self.changed: tuple = (None, set())


_CARRY = _Carry()
_CARRY_LOCK = threading.Lock()


class HeldLastSuccess(dict):
    """The carry's private copy of the latest successes, brought to the next snapshot's in place
    (``edit``): a copy of every asset (~5 MiB at 100,000 assets) is not built while the last one
    is still held. ``version`` counts the edits; ``log`` keeps the keys of the recent ones, for
    another holder of this dict to learn what changed since the version it read
    (``last_success_moved``)."""

    __slots__ = ("version", "log")
    LOG = 16  # edits remembered; a holder further behind treats every key as changed

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.version = 0
        self.log: deque[tuple[int, frozenset]] = deque(maxlen=self.LOG)

    def edit(self, new: Mapping, keys: set[str]) -> None:
        """Make it equal ``new``, ``keys`` being every key whose value differs (``_changed_keys``)."""
        for k in keys:
            v = new.get(k, _MISSING)
            if v is _MISSING:
                self.pop(k, None)
            else:
                self[k] = v
        self.version += 1
        self.log.append((self.version, frozenset(keys)))

    def moved_since(self, version: int) -> set[str] | None:
        """Keys edited since ``version``; None: not known (the log no longer reaches it)."""
        if version == self.version:
            return set()
        if not self.log or self.log[0][0] > version + 1 or version > self.version:
            return None
        out: set[str] = set()
        for v, keys in self.log:
            if v > version:
                out |= keys
        return out


def _inputs(snapshot: Snapshot, held: tuple | None = None) -> tuple[tuple, set[str]]:
    """The snapshot's parts the carry compares with the next snapshot's, and the keys whose latest
    success differs from the ``held`` one. The latest successes are the held ``HeldLastSuccess``
    edited in place (never the snapshot's dict: its owner may change it); the rows are the
    ``held`` ones when they hold the same objects in the same order (``_same_objects``): a tick
    where they did not change does not copy them (a list of every row, held at once with the
    carried one)."""
    last, mats = snapshot.last_success, snapshot.materializations
    moved: set[str] = set()
    if held is not None and isinstance(held[1], HeldLastSuccess):
        moved = _changed_keys(held[1], last)
        if moved:
            held[1].edit(last, moved)
        last = held[1]
    else:
        last = HeldLastSuccess(last)
    if held is not None and _same_objects(held[2], mats):
        mats = held[2]
    else:
        mats = list(mats)
    return (dict(snapshot.data_time or {}), last, mats,
            {r.run_id: r.started_at or r.created_at for r in snapshot.runs}, list(snapshot.syncs)), moved


def _same_objects(held, new) -> bool:
    """``new`` (a dict or a list) holds the very objects ``held`` holds, in the same order: a copy
    of it would be indistinguishable from ``held``."""
    if held.__class__ is not new.__class__ or len(held) != len(new):
        return False
    if isinstance(new, dict):
        return all(map(is_, held, new)) and all(map(is_, held.values(), new.values()))
    return all(map(is_, held, new))


def _all_given(graph, given: dict, last: dict) -> bool:
    """The source gives the data time of every materialized asset (the simulator)."""
    return bool(given) and all(k in given or k not in last for k in graph.topological_order())


def _changed_keys(old: dict, new: dict) -> set[str]:
    """Keys whose value differs between two dicts (added and removed ones too)."""
    if old is new:
        return set()
    out = {k for k, v in new.items() if (o := old.get(k, _MISSING)) is not v and o != v}
    added = sum(1 for k in out if k not in old)
    if len(new) - added < len(old):  # some keys of ``old`` are gone
        out.update(k for k in old if k not in new)
    return out


_MISSING = object()


def _mats_delta(old: list, new: list) -> tuple[list, list] | None:
    """(rows added, rows removed) when ``new`` is ``old`` with rows dropped from its front (the
    window's edge) and rows appended (the usual tick); None: anything else."""
    d = 0
    if new:
        first = new[0]
        for d, m in enumerate(old):
            if m is first:
                break
        else:
            d = len(old)
    k = len(old) - d
    if new[:k] != old[d:]:
        return None
    return new[k:], old[:d]


def changed_since(old: tuple, new: tuple) -> set[str] | None:
    """Keys whose data time or holder may differ between ``old`` and ``new``, two results
    ``(data times, held by)`` of ``data_times`` in a row; None: not known (compare them). Known
    once: the earlier result is not kept for a second caller (it would stay held a whole tick)."""
    with _CARRY_LOCK:
        prev, keys = _CARRY.changed
        cur = _CARRY.result
        if (prev is not None and cur is not None and prev[0] is old[0] and prev[1] is old[1]
                and cur[0] is new[0] and cur[1] is new[1]):
            _CARRY.changed = (None, set())
            return keys
    return None


def carried_last_success(snapshot: Snapshot) -> tuple[HeldLastSuccess, int]:
    """A copy of ``snapshot.last_success`` and its version (the one the data-time carry holds when
    ``data_times`` last read an equal one, else a new copy): another per-tick carry that keeps the
    latest materializations to compare with the next snapshot's can hold this one instead of a
    copy of its own (one dict of every asset fewer). Never change it; the data-time carry edits it
    in place: ask ``last_success_moved`` what changed before comparing it."""
    last = snapshot.last_success
    with _CARRY_LOCK:
        inputs = _CARRY.inputs
        if inputs is not None and inputs[1] == last:
            return inputs[1], inputs[1].version
    return HeldLastSuccess(last), 0


def last_success_moved(held: HeldLastSuccess, version: int, last: Mapping) -> set[str]:
    """Keys whose latest success differs between ``last`` and ``held`` as it was at ``version``
    (``carried_last_success``): the keys the data-time carry edited since, and the ones that
    differ now; every key when the edits are no longer known."""
    with _CARRY_LOCK:
        edited = held.moved_since(version) if isinstance(held, HeldLastSuccess) else set()
        if edited is None:
            return set(held) | set(last)
        if last != held:
            edited |= _changed_keys(held, last)
        return edited


@contextmanager
def gc_paused():
    """The cyclic garbage collector paused for a block that builds many objects but no reference
    cycles (the carried per-asset results): at 100,000 assets a collection walks millions of
    live objects, and the allocations of one tick would start several."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _carried(snapshot: Snapshot) -> tuple[dict[str, datetime], dict[str, str]]:
    with gc_paused():
        return _carried_unpaused(snapshot)


def _carried_unpaused(snapshot: Snapshot) -> tuple[dict[str, datetime], dict[str, str]]:
    with _CARRY_LOCK:
        c = _CARRY
        inputs, moved = _inputs(snapshot, c.inputs if c.graph is snapshot.graph else None)
        if c.graph is snapshot.graph and c.inputs is not None and c.result is not None:
            if not moved and c.inputs == inputs:
                c.hits += 1
                c.recomputed = 0
                c.changed = (c.result, set())
                return c.result
            if c.store is not None and not _all_given(snapshot.graph, inputs[0], inputs[1]):
                try:
                    result = _update(c, snapshot, inputs, moved)
                except BaseException:  # the held latest successes are edited already: start over
                    c.graph = c.inputs = c.result = c.store = None
                    c.of_run, c.changed = {}, (None, set())
                    raise
                c.inputs, c.result = inputs, result
                c.partial += 1
                return result
        # a full computation: what the last one carried goes first (it is not read again)
        c.graph = c.inputs = c.result = c.store = None
        c.of_run, c.changed = {}, (None, set())
    result = _compute(snapshot, keep := _Carry())
    with _CARRY_LOCK:
        c = _CARRY
        c.graph, c.inputs, c.result = snapshot.graph, inputs, result
        c.store, c.of_run = keep.store, keep.of_run  # (store None: every data time was given)
        c.misses += 1
        c.recomputed = len(result[0])
        c.changed = (None, set())
    return result


def _run_starts(runs) -> dict[str, tuple[int, datetime]]:
    out = {}
    for r in runs:
        t = _aware(r.started_at or r.created_at)
        out[r.run_id] = (_us(t), t)
    return out


def _syncs_of(syncs) -> dict[str, list[tuple[int, int, datetime]]]:
    """Table -> (ended, started, the start as given) of the succeeded syncs that landed it."""
    out: dict[str, list[tuple[int, int, datetime]]] = {}
    for s in syncs:
        if s.status == "succeeded" and s.ended_at is not None:
            started = _aware(s.started_at)
            for t in s.tables:
                out.setdefault(t, []).append((_us(_aware(s.ended_at)), _us(started), started))
    return out


def _syncs_by_table(syncs) -> dict[str, list]:
    out: dict[str, list] = {}
    for s in syncs:
        for t in s.tables:
            out.setdefault(t, []).append(s)
    return out


def _row(m) -> tuple:
    at = _aware(m.at)
    return _us(at), m.run_id, float(m.duration_s or 0.0), at


def _update(c: _Carry, snapshot: Snapshot, inputs: tuple, last_moved: set[str]) -> tuple[dict[str, datetime], dict[str, str]]:
    """Bring the carried per-asset results to ``snapshot`` (see ``_Carry``).

    What is dirty is a byte per topological position, walked in increasing order (a child's
    position is after its parents'), and the rows that left or came are grouped by position and
    applied when their asset is computed: when the window's edge passes many hours at once (a
    sensor resuming, a clock jump) nearly every asset is touched, and a set, a heap entry and a
    list of rows per asset held at once took ~40 MiB at 100,000 assets."""
    old_given, _, old_mats, old_starts, old_syncs = c.inputs  # type: ignore[misc]
    given, last, mats, starts, syncs = inputs
    graph = snapshot.graph
    pos = graph.topological_index()
    order = graph.topological_order()
    store = c.store
    assert store is not None
    # -- the assets whose own inputs changed ----------------------------------------------------
    dirty = bytearray(len(order))

    def mark(keys) -> None:
        for k in keys:
            i = pos.get(k)
            if i is not None:
                dirty[i] = 1

    if given != old_given:
        mark(_changed_keys(old_given, given))
    mark(last_moved)  # (the held latest successes are edited in place: ``_inputs`` found what moved)
    # rows that left (``gone``) and came (``came``) per asset, as ``_edits`` gives them; or, when
    # the rows did not just move (``rows_of``): every changed asset's rows in snapshot order
    gone = came = _NO_EDITS
    rows_of: dict[str, list] = {}
    if mats != old_mats:
        delta = _mats_delta(old_mats, mats)
        if delta is not None:  # rows dropped from the front, rows appended: the rows follow
            added, removed = delta
            mark(m.asset_key for m in removed)
            mark(m.asset_key for m in added)
            gone, came = _edits(removed, pos), _edits(added, pos)
        else:
            # by identity: the snapshot reader hands out the same objects for rows it carried
            before = {id(m) for m in old_mats}
            now_ids = set()
            changed = set()
            for m in mats:
                now_ids.add(id(m))
                if id(m) not in before:
                    changed.add(m.asset_key)
            changed.update(m.asset_key for m in old_mats if id(m) not in now_ids)
            mark(changed)
            for k in changed:  # their own rows, in snapshot order
                if k in pos:
                    rows_of[k] = []
            for m in mats:
                if m.partition is None and m.asset_key in changed:
                    rows = rows_of.get(m.asset_key)
                    if rows is not None:
                        rows.append(_row(m))
    runs_changed = _changed_keys(old_starts, starts) if starts != old_starts else ()
    if runs_changed:
        mark(m.asset_key for m in mats if m.run_id in runs_changed)
        mark(m.asset_key for m in old_mats if m.run_id in runs_changed)
    if syncs != old_syncs:
        # per table, its syncs in order (the last one matching a row gives its data time: a sync
        # listed again, or listed in another order, changes it though the set of syncs is the same)
        a, b = _syncs_by_table(syncs), _syncs_by_table(old_syncs)
        mark(t for t in a.keys() | b.keys() if a.get(t) != b.get(t))
    c.changed = (c.result, set())
    i = dirty.find(1)
    if i < 0:
        c.recomputed = 0
        return c.result  # type: ignore[return-value]
    run_start = _run_starts(snapshot.runs)
    syncs_of = _syncs_of(syncs)
    upstream = graph.upstream_map()
    children = graph.children
    of_run = c.of_run
    dts = c.result[0]._copy()  # type: ignore[index, union-attr]
    held = c.result[1]._copy()  # type: ignore[index, union-attr]
    moved = c.changed[1]  # keys whose data time or holder is not the same object as before
    n = 0
    while i >= 0:
        k = order[i]
        n += 1
        # its rows: the ones carried, with the rows that left taken out and the rows that came
        # appended (in the snapshot's order), or all of them when they did not just move
        rows = rows_of.get(k)
        edited = rows is not None
        if rows is None:
            rows = store.rows(i)
            for m in gone.at(i):
                edited = True
                # the row, or an equal one (its fields the computation reads equal): a snapshot
                # equal to the last (an equal row read again) leaves the earlier one carried
                at, run_id, dur, _ = _row(m)
                for j, x in enumerate(rows):
                    if x[0] == at and x[1] == run_id and x[2] == dur:
                        del rows[j]
                        break
            for m in came.at(i):
                edited = True
                rows.append(_row(m))
        had = store.windowed(i)  # (whether it had rows in the window: the children's rule)
        out = _one(k, rows, last.get(k), given, upstream[k], graph.get(k), run_start, syncs_of, store, pos,
                   held, of_run, dts)
        del rows
        before_dt, before_held = dts.get(k), held.get(k)
        if out is None:
            changed = store.cnt[i] > 0
            store.clear(i)
            of_run.pop(k, None)
            dts._drop(i), held._drop(i)
        else:
            at_l, dt_l, dur_l, run_l, v, src, hb, mine = out
            changed = (not store.same(i, at_l, dt_l) or before_held != hb
                       or of_run.get(k, _NO_RUNS) != mine)
            store.put(i, at_l, dt_l, dur_l, run_l)
            if mine:
                of_run[k] = mine
            else:
                of_run.pop(k, None)
            dts._set(i, _obj(v, src, dts, store, pos, before_dt))
            held._set(i, hb)
        if dts.get(k) is not before_dt or held.get(k) is not before_held:
            moved.add(k)
        if changed or (edited and had != store.windowed(i)):
            for ch in children(k):
                dirty[pos[ch]] = 1  # (after ``i``: the positions are topological)
        i = dirty.find(1, i + 1)
    c.recomputed = n
    return dts, held


class _Edits:
    """Rows grouped by their asset's topological position, each asset's in the order given: one
    ``array('q')`` of ``position * len(rows) + index`` sorted, read forward as the positions are
    computed in increasing order (``at``). Partitioned rows and rows of keys outside the graph
    are left out (the computation reads neither)."""

    __slots__ = ("rows", "keys", "next")

    def __init__(self, rows: list, keys: array):
        self.rows = rows
        self.keys = keys
        self.next = 0

    def at(self, i: int) -> list:
        keys, rows, n = self.keys, self.rows, len(self.rows)
        j = self.next
        while j < len(keys) and keys[j] // n < i:  # (an asset not computed: none, the caller marks each)
            j += 1
        out = []
        while j < len(keys) and keys[j] // n == i:
            out.append(rows[keys[j] % n])
            j += 1
        self.next = j
        return out


_NO_EDITS = _Edits([], array("q"))


def _edits(rows: list, pos: dict) -> _Edits:
    n = len(rows)
    if not n:
        return _NO_EDITS
    keys = array("q")
    for j, m in enumerate(rows):
        if m.partition is None:
            i = pos.get(m.asset_key)
            if i is not None:
                keys.append(i * n + j)
    return _Edits(rows, array("q", sorted(keys)))


def _obj(v: int, src, dts: dict, store: _Hist, pos: dict, before: datetime | None) -> datetime:
    """The data time ``v`` (us) as a datetime: the object it was computed from (a row's time, a
    run's start, a given data time), an input's own data time when it is that one, the one held
    before when equal; else made (UTC)."""
    if isinstance(src, str):  # an input's data time
        o = dts.get(src)
        if o is not None:
            i = pos[src]
            if store.dt[store.off[i] + store.cnt[i] - 1] == v:
                return o
    elif src is not None:
        return src
    if v == 0:
        return BEFORE_HISTORY
    if before is not None and _us(before) == v:
        return before
    return _at_us(v)


def _one(k, rows, latest, given, ps, node, run_start, syncs_of, store, pos, held, of_run, dts):
    """One asset's history from its window rows (``(at, run id, duration, at as datetime or
    None)``, in snapshot order), its latest materialization and its parents' results: None (never
    materialized) or ``(landed at, data time, durations, run ids)`` per entry (what
    ``_Hist.put`` takes), its data time and where that came from (for ``_obj``), the input
    holding it back, and its data time per run id."""
    tu = None
    if latest is not None:
        latest = _aware(latest)
        tu = _us(latest)
        if not rows or max(r[0] for r in rows) < tu:  # the window does not hold its latest one
            rows = [*rows, (tu, _NOT_ROW, 0.0, latest)]
    if k in given:
        g = _aware(given[k])
        gu = _us(g)
        rows = sorted(rows, key=_row_at) if rows else [(gu, _NOT_ROW, 0.0, g)]
        return ([r[0] for r in rows], [gu] * len(rows), [r[2] for r in rows], [r[1] for r in rows],
                gu, g, k, _NO_RUNS)
    if not rows:
        return None
    rows = sorted(rows, key=_row_at)
    is_table = node is not None and node.connector is not None
    off, cnt, h_at, h_dt, h_run = store.off, store.cnt, store.at, store.dt, store.run
    at_l: list[int] = []
    dt_l: list[int] = []
    mine: dict | None = None
    cur = cur_src = None
    hb = k
    for at, run_id, dur, at_obj in rows:
        if run_id is _NOT_ROW:
            run_id = None
        s = run_start.get(run_id) if run_id else None
        if s is not None:
            start, start_src = s
        elif dur:
            start, start_src = at - timedelta(seconds=dur) // _US, None
        else:
            start, start_src = at, at_obj
        if is_table or not ps:
            dt, src = start, start_src
            for ended, started, started_obj in syncs_of.get(k, ()):
                if abs(ended - at) <= _SYNC_MATCH_US and started <= at:
                    dt, src = started, started_obj
            hb = k
        else:
            best = bp = None
            for p in ps:
                t = None
                if run_id is not None:  # built in the same run: read that output
                    r = of_run.get(p)
                    if r is not None:
                        t = r.get(run_id)
                if t is None:
                    i = pos[p]
                    n = cnt[i]
                    if not n:
                        continue  # no history at all: unknown
                    o = off[i]
                    j = bisect_right(h_at, start, o, o + n)
                    if j > o:
                        t = h_dt[j - 1]
                    else:
                        # no data of the input recorded at or before the start: what it read
                        # landed before the history window, so its data time is only known to
                        # predate it; an input with no row in the window (its latest only,
                        # older than the edge): older than that latest one's data time, which
                        # the edge does not move
                        t = 0 if h_run[o] is not _NOT_ROW else h_dt[o]
                if best is None or t < best:
                    best, bp = t, p
            if bp is not None:
                dt, src = best, bp
                # data from before the history: held back by the input it read it from (where
                # that data came from is outside the window; and a change of that input's own
                # holder does not travel down the graph each time the edge passes an hour)
                hb = bp if dt == 0 else held.get(bp, bp)
            else:
                dt, src = start, start_src
        if at < dt:
            dt, src = at, at_obj
        at_l.append(at)
        dt_l.append(dt)
        if run_id is not None:
            if mine is None:
                mine = {}
            mine[run_id] = dt
        # data time never goes back (a late run on older data does not make it older)
        if cur is None or dt >= cur:
            cur, cur_src = dt, src
        else:
            dt_l[-1] = cur
    if cur_src is None and cur == tu:
        cur_src = latest
    return (at_l, dt_l, [r[2] for r in rows], [r[1] for r in rows], cur, cur_src, hb,
            mine if mine else _NO_RUNS)


def _compute(snapshot: Snapshot, keep: _Carry | None = None) -> tuple[dict[str, datetime], dict[str, str]]:
    """Everything from scratch (``keep``: receives the per-asset results for ``_update``)."""
    graph = snapshot.graph
    given = snapshot.data_time or {}
    last = snapshot.last_success
    parents = graph.parents
    order = graph.topological_order()
    held: dict[str, str] = {}
    if _all_given(graph, given, last):
        # the source knows every data time: only find who holds each one back
        dts = {k: _aware(v) for k, v in given.items()}
        for k in order:
            ps = [p for p in parents(k) if p in dts]
            if not ps:
                held[k] = k
                continue
            p = min(ps, key=lambda x: dts[x])
            held[k] = held.get(p, p) if k not in dts or dts[p] <= dts[k] else k
        return dts, held

    # derive: per asset, its history of (landed at, data time), in topological order
    run_start = _run_starts(snapshot.runs)
    pos = graph.topological_index()
    n = len(order)
    # the window's unpartitioned rows grouped by asset: a counting sort of their indexes into one
    # array (no list per asset), each asset's in snapshot order
    mats = snapshot.materializations
    where = array("q")
    first = array("q", bytes(8 * (n + 1)))
    for m in mats:
        i = pos.get(m.asset_key, -1) if m.partition is None else -1
        where.append(i)
        if i >= 0:
            first[i + 1] += 1
    for i in range(n):
        first[i + 1] += first[i]
    fill = array("q", first)
    by_asset = array("q", bytes(8 * first[n]))
    for j, i in enumerate(where):
        if i >= 0:
            by_asset[fill[i]] = j
            fill[i] += 1
    del where, fill
    syncs_of = _syncs_of(snapshot.syncs)
    store = _Hist(n)
    dts = ByPosition(pos, order)
    held = ByPosition(pos, order)
    of_run: dict[str, dict[str, int]] = {}  # key -> run id -> data time it materialized with
    upstream = graph.upstream_map()
    for i, k in enumerate(order):
        rows = [_row(mats[j]) for j in by_asset[first[i]:first[i + 1]]]
        out = _one(k, rows, last.get(k), given, upstream[k], graph.get(k), run_start, syncs_of, store, pos,
                   held, of_run, dts)
        if out is None:
            continue
        at_l, dt_l, dur_l, run_l, v, src, hb, mine = out
        store.put(i, at_l, dt_l, dur_l, run_l)
        dts._set(i, _obj(v, src, dts, store, pos, None))
        held._set(i, hb)
        if mine:
            of_run[k] = mine
    if keep is not None:
        keep.store, keep.of_run = store, of_run
    return dts, held
