"""The fast ``multi_asset_check`` (sensors/_checks.py) builds the very definitions Dagster's own
decorator builds -- check keys, specs, op inputs/outputs and their types -- for any set of assets,
runs like it, and leaves Dagster's type resolver as it found it."""

import dagster as dg
import pytest
from dagster._core.definitions import input as dg_input
from dagster._core.definitions import output as dg_output
from dagster._core.types import dagster_type as dt
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.lib.sensors._checks import fast_type_resolution, multi_asset_check

_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8).map(
    lambda s: "t" + s)  # a letter first, and never a Python keyword Dagster refuses
_keys = st.lists(st.lists(_name, min_size=1, max_size=3).map(tuple), min_size=1, max_size=25, unique=True)


def _shape(checks: dg.AssetChecksDefinition) -> dict:
    op = checks.node_def
    return {
        "check_keys": sorted(str(k) for k in checks.check_keys),
        "specs": sorted((str(s.key), s.description, tuple(sorted(s.metadata or {}))) for s in checks.check_specs),
        "inputs": sorted((i.name, i.dagster_type.key, i.dagster_type.is_nothing) for i in op.input_defs),
        "outputs": sorted((o.name, o.dagster_type.key, o.is_required) for o in op.output_defs),
        "keys_by_input": sorted((n, str(k)) for n, k in checks.keys_by_input_name.items()),
        "subsettable": checks.can_subset,
    }


def _build(decorator, keys, can_subset):
    specs = [dg.AssetCheckSpec("freshness_sla", asset=dg.AssetKey(list(k)), description=f"d {k}") for k in keys]

    @decorator(specs=specs, can_subset=can_subset, name="sla_checks")
    def sla_checks(context):
        yield from ()

    return sla_checks


@settings(max_examples=40, deadline=None)
@given(keys=_keys, can_subset=st.booleans())
def test_same_definition_as_dagsters_decorator(keys, can_subset):
    assert _shape(_build(multi_asset_check, keys, can_subset)) == _shape(_build(dg.multi_asset_check, keys, can_subset))


def test_resolver_restored_even_when_the_build_fails():
    original = dt.resolve_dagster_type
    with pytest.raises(RuntimeError):
        with fast_type_resolution() as active:
            assert active
            assert dg_output.resolve_dagster_type is not original
            raise RuntimeError("boom")
    assert dg_output.resolve_dagster_type is original and dg_input.resolve_dagster_type is original


def test_non_trivial_types_still_resolved_by_dagster():
    with fast_type_resolution():
        assert dg_output.resolve_dagster_type(int).key == dt.resolve_dagster_type(int).key
        with pytest.raises(dg.DagsterInvalidDefinitionError):
            dg_output.resolve_dagster_type({"not": "a type"})


def test_checks_built_fast_run_and_report_per_asset():
    @dg.asset
    def orders():
        return 1

    @dg.asset
    def customers():
        return 2

    specs = [dg.AssetCheckSpec("freshness_sla", asset=k) for k in ("orders", "customers")]

    @multi_asset_check(specs=specs, can_subset=True, name="sla_checks")
    def sla_checks(context):
        for key in sorted(k.asset_key.to_user_string() for k in context.selected_asset_check_keys):
            yield dg.AssetCheckResult(asset_key=key, check_name="freshness_sla", passed=key == "orders",
                                      metadata={"status": "ok" if key == "orders" else "breached"})

    result = dg.materialize([orders, customers, sla_checks])
    evals = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
    assert evals["orders"].passed and not evals["customers"].passed
    assert evals["customers"].metadata["status"].value == "breached"
