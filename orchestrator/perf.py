"""One switch for the pure-performance memos (caches that must never change a result).

The simulator, the cost assessment and the deadline schedules keep memos of work they would
otherwise redo every tick. Each is exact: the same inputs give the same objects/values as the
reference computation. ``ORCHESTRATOR_MEMO=off`` (or :func:`disabled` in tests) turns them all off
so the reference path can be compared with the memoised one (``tests/test_sim_memo.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_ENABLED = os.environ.get("ORCHESTRATOR_MEMO", "on").strip().lower() not in ("off", "0", "false", "no")


def enabled() -> bool:
    return _ENABLED


@contextmanager
def disabled() -> Iterator[None]:
    """Run a block on the reference path (no memo read or written)."""
    global _ENABLED
    before, _ENABLED = _ENABLED, False
    try:
        yield
    finally:
        _ENABLED = before
