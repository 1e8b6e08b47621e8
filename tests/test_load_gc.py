"""orchestrator.load_gc: the manifest parse runs with the collector paused, the heap is frozen
once per process, and nothing else about garbage collection changes."""

import gc

import pytest

from orchestrator import load_gc


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(load_gc, "_frozen", False)
    monkeypatch.delenv("ORCHESTRATOR_GC_FREEZE", raising=False)
    was = gc.isenabled()
    gc.enable()
    before = gc.get_freeze_count()
    yield before
    gc.unfreeze()  # the test process keeps collecting as before
    if not was:
        gc.disable()


def _nested(n=2000):
    return {"nodes": {f"model.p.m{i}": {"tags": [str(i)], "config": {"meta": {}}} for i in range(n)}}


def test_collector_paused_during_load_and_restored(fresh):
    seen = []

    def load():
        seen.append(gc.isenabled())
        return _nested()

    out = load_gc.long_lived_load(load)
    assert seen == [False]
    assert gc.isenabled()
    assert len(out["nodes"]) == 2000


def test_freezes_once_per_process(fresh, monkeypatch):
    calls = []
    real = gc.freeze
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(1) or real())
    load_gc.long_lived_load(_nested)
    assert calls == [1]
    assert gc.get_freeze_count() > fresh  # the parsed document (and what was alive) is in the permanent generation
    garbage = [_nested(50) for _ in range(20)]  # noqa: F841 - new objects after the freeze
    load_gc.long_lived_load(_nested)
    assert calls == [1]  # the second load freezes nothing more


def test_collector_restored_when_load_raises(fresh):
    def load():
        raise ValueError("truncated manifest")

    with pytest.raises(ValueError, match="truncated manifest"):
        load_gc.long_lived_load(load)
    assert gc.isenabled()
    assert gc.get_freeze_count() == fresh


@pytest.mark.parametrize("value", ["0", "false", "off"])
def test_freeze_can_be_turned_off(fresh, monkeypatch, value):
    monkeypatch.setenv("ORCHESTRATOR_GC_FREEZE", value)
    load_gc.long_lived_load(_nested)
    assert gc.isenabled()
    assert gc.get_freeze_count() == fresh


def test_collector_left_off_when_caller_disabled_it(fresh):
    gc.disable()
    try:
        load_gc.long_lived_load(_nested)
        assert not gc.isenabled()
        assert gc.get_freeze_count() == fresh  # the caller manages collection: no freeze either
    finally:
        gc.enable()


def test_frozen_tree_still_freed_by_reference_counting(fresh):
    import weakref

    class Node(dict):
        pass

    holder = {}

    def load():
        holder["doc"] = Node(_nested(10))
        return holder["doc"]

    ref = weakref.ref(load_gc.long_lived_load(load))
    assert gc.get_freeze_count() > fresh
    del holder["doc"]
    assert ref() is None  # no cycle: freed at once although frozen


def test_code_location_build_runs_with_the_collector_paused(fresh, monkeypatch):
    """build_project runs the whole build (manifest parse, dbt specs, SLA compile, sensors) under
    long_lived_load: collector paused, heap frozen once at the end, collector back on after."""
    from orchestrator import definitions as od

    seen = []

    def build():
        seen.append(gc.isenabled())
        return _nested()

    monkeypatch.setattr(od, "_build_project", build)
    out = od.build_project()
    assert seen == [False]
    assert gc.isenabled()
    assert gc.get_freeze_count() > fresh
    assert len(out["nodes"]) == 2000
