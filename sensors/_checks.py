"""``multi_asset_check`` for checks on thousands of assets, built in a fraction of the time.

Dagster builds one output and one input per check spec, and resolves the Dagster type of each
through ``resolve_dagster_type`` five times (Out, OutputDefinition, AssetIn, In, InputDefinition):
about 0.3 ms per spec, most of it ``is_typing_type`` asking ``typing.get_origin`` a dozen
questions about an argument that is ``None`` or already a ``DagsterType``. For those two the
answer is fixed (``Any``'s type; the type itself), so while the decorator runs, the modules that
build inputs and outputs see a resolver that answers them directly and hands anything else to
Dagster's own. Same definitions, same check keys, names and metadata
(``tests/test_fast_checks.py`` compares both builds). If a Dagster release moves the resolver,
nothing is patched and the plain decorator runs.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import dagster as dg

_MODULES = (
    "dagster._core.definitions.input",
    "dagster._core.definitions.output",
    "dagster._core.definitions.assets.job.asset_in",
)
_LOCK = threading.Lock()


def _fast_resolver(original: Callable, dagster_type_cls: type) -> Callable:
    any_type = original(None)

    def resolve(dagster_type: object):
        if dagster_type is None:
            return any_type
        if isinstance(dagster_type, dagster_type_cls):
            return dagster_type
        return original(dagster_type)

    return resolve


@contextmanager
def fast_type_resolution() -> Iterator[bool]:
    """Within the block, Dagster's input/output constructors resolve ``None`` and ``DagsterType``
    instances without the typing checks. Yields whether the shortcut is in place."""
    try:
        from dagster._core.types import dagster_type as dt

        original = dt.resolve_dagster_type
        modules = [importlib.import_module(name) for name in _MODULES]
    except (ImportError, AttributeError):
        yield False
        return
    modules = [m for m in modules if getattr(m, "resolve_dagster_type", None) is original]
    if not modules:
        yield False
        return
    with _LOCK:
        fast = _fast_resolver(original, dt.DagsterType)
        for m in modules:
            m.resolve_dagster_type = fast
        try:
            yield True
        finally:
            for m in modules:
                m.resolve_dagster_type = original


def multi_asset_check(*, specs: Sequence[dg.AssetCheckSpec], **kwargs) -> Callable:
    """``dagster.multi_asset_check`` with the same arguments, built under ``fast_type_resolution``."""
    decorator = dg.multi_asset_check(specs=specs, **kwargs)

    def inner(fn: Callable) -> dg.AssetChecksDefinition:
        with fast_type_resolution():
            return decorator(fn)

    return inner
