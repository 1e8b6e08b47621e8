"""``orchestrator.heap``: the C heap's free pages handed back between sensor ticks (glibc)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import heap

glibc = pytest.mark.skipif(heap._libc() is None, reason="no malloc_trim (not glibc)")


def _rss_anon_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon")


@glibc
def test_freed_blocks_leave_the_resident_memory_and_live_objects_keep_their_contents():
    """What a tick frees in blocks above Python's small-object size stays resident in the C heap
    until it is released; released, the process's resident memory drops by most of it, and the
    objects still alive are untouched."""
    rng = random.Random(19)
    blocks = [bytearray(rng.randbytes(8)) * 128 for _ in range(40_000)]  # ~40 MiB of 1 KiB blocks
    keep = blocks[::50]
    kept = [bytes(b) for b in keep]
    del blocks
    freed = heap.free_heap()
    assert freed is None or freed >= 20 << 20
    before = _rss_anon_kib()
    assert heap.release_free_heap() is True
    after = _rss_anon_kib()
    assert before - after >= 16 << 10  # KiB: at least 16 MiB of the ~39 MiB freed
    assert [bytes(b) for b in keep] == kept


@glibc
@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(600, 300_000), max_size=200), seed=st.integers(0, 2**16))
def test_release_never_changes_live_objects(sizes, seed):
    rng = random.Random(seed)
    objs = [bytearray(rng.randbytes(16)) * (n // 16) for n in sizes]
    snapshot = [bytes(o) for o in objs]
    for i in sorted(rng.sample(range(len(objs)), len(objs) // 2), reverse=True):
        del objs[i], snapshot[i]
    heap.release_free_heap(0)
    assert [bytes(o) for o in objs] == snapshot


@glibc
def test_nothing_is_released_below_the_threshold():
    free = heap.free_heap()
    if free is None:
        pytest.skip("mallinfo2 not available")
    assert heap.release_free_heap(min_free=free + (1 << 40)) is False
