"""Handing the C heap's free pages back to the system between sensor ticks.

A tick allocates and frees tens of MiB (the snapshot's rows, the assessment's objects). What
Python frees in blocks above 512 bytes (lists, dicts, sets, arrays) goes back to glibc's heap,
which keeps it: Python's own small-object arenas are mapped apart from that heap and never reuse
it, so the next tick's small objects take new pages while the freed heap pages stay resident.
After the cold tick at 100,000 assets about 14 MiB of the process's resident memory is such free
heap (``benchmarks/bench_sensors.py``). ``release_free_heap`` returns it with ``malloc_trim``
(glibc; elsewhere it does nothing), when at least ``min_free`` bytes are free."""

from __future__ import annotations

import ctypes
import threading

MIN_FREE = 4 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


_LIBC: list = []
_LOCK = threading.Lock()


def _libc():
    """(malloc_trim, mallinfo2 or None) of the process's C library, or None when it has no
    malloc_trim (not glibc)."""
    with _LOCK:
        if not _LIBC:
            try:
                lib = ctypes.CDLL(None)
                trim = lib.malloc_trim
                trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
                info = getattr(lib, "mallinfo2", None)
                if info is not None:
                    info.argtypes, info.restype = [], _MallInfo2
                _LIBC.append((trim, info))
            except (OSError, AttributeError):
                _LIBC.append(None)
        return _LIBC[0]


def free_heap() -> int | None:
    """Bytes free in the C heap's arenas (glibc's ``mallinfo2().fordblks``); None: not known."""
    lib = _libc()
    if lib is None or lib[1] is None:
        return None
    return int(lib[1]().fordblks)


def release_free_heap(min_free: int = MIN_FREE) -> bool:
    """Return the C heap's free pages to the system when at least ``min_free`` bytes are free
    (always when that is not known); whether any memory was released. Objects are untouched."""
    lib = _libc()
    if lib is None:
        return False
    free = free_heap()
    if free is not None and free < min_free:
        return False
    return bool(lib[0](0))
