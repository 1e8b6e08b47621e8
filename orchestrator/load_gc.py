"""The cyclic garbage collector while the code location builds its Definitions.

Parsing a 14 MB manifest allocates ~200,000 containers. Each 700 allocations start a young
collection, and every few of those a full one over the whole heap (the ~260,000 objects the
imports left, plus the manifest so far): three full collections during the parse, ~0.25 s of
CPU each, which cannot free anything (a JSON document is a tree and the rest of the heap did not
change), and every full collection afterwards rescans the manifest and the imports again.

The rest of the build is the same: ~300,000 more objects (specs, asset and check definitions,
the policy resolution) that all live as long as the code location, and next to no cyclic garbage
(~150 objects on teamster); every collection during it rescans the growing heap and frees nothing
(0.39 s of CPU on teamster with only the parse paused).

``long_lived_load(load)`` runs ``load`` with the collector paused and, the first time in the
process, moves everything alive at that point into the permanent generation (``gc.freeze()``):
later collections, in every sensor tick of the code server, skip it. The code location runs its
whole build under it (``orchestrator.definitions.build_project``): what is frozen is the imports,
the parsed manifest and the built Definitions. Dagster's own asset-graph resolution afterwards
(which does leave cyclic garbage: ~40,000 objects of intermediate graphs) runs with the collector
on as usual. The build's own ~150 cyclic objects are frozen with the rest, never collected (~0.1 MB,
once per process). Reference counting is unchanged (a frozen object whose
count drops to zero is freed as usual); only a reference cycle that was alive at the freeze and
becomes garbage later is never collected, which is why it happens once per process (a code
server loads its definitions once) and can be turned off with ``ORCHESTRATOR_GC_FREEZE=0``.
"""

from __future__ import annotations

import atexit
import gc
import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_frozen = False


def freeze_enabled() -> bool:
    return os.environ.get("ORCHESTRATOR_GC_FREEZE", "1").strip().lower() not in {"0", "false", "no", "off"}


def long_lived_load(load: Callable[[], T]) -> T:
    """``load()`` with the garbage collector paused; the heap frozen after it once per process."""
    global _frozen
    enabled = gc.isenabled()
    if enabled:
        gc.disable()
    try:
        out = load()
        if enabled and not _frozen and freeze_enabled():
            gc.freeze()
            _frozen = True
            # at exit the frozen objects go back to the collector, so interpreter shutdown
            # finalizes them as it would have (extension modules check for leaks then)
            atexit.register(gc.unfreeze)
        return out
    finally:
        if enabled:
            gc.enable()
