"""One module object per file for this repository's ``assets`` and ``sensors`` folders.

The installed library ships them as ``orchestrator.lib.assets`` and ``orchestrator.lib.sensors``
(``orchestrator/lib/assets`` and ``orchestrator/lib/sensors`` are symbolic links to the folders,
which setuptools follows when it builds the wheel). In a checkout, the code location, the tests
and the benchmarks also import them by their folder names (``import sensors.execution``) from the
repository root; without an alias each file would then be imported twice, as two module objects
(two ``ProjectContext`` classes, a monkeypatch on one not seen by the other). ``alias`` makes the
top-level name and every submodule under it the very module objects of the library.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, top: str, target: str) -> None:
        self.top, self.target = top, target

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(self.top + "."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(self.target + spec.name[len(self.top):])

    def exec_module(self, module) -> None:
        pass  # already executed under its library name


def alias(top: str, target: str) -> None:
    """Make ``top`` (and ``top.x``) the library package ``target`` (and ``target.x``)."""
    sys.modules[top] = importlib.import_module(target)
    if not any(isinstance(f, _AliasFinder) and f.top == top for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder(top, target))
