"""Issue 14, item 1: the engine is one namespaced package a team installs.

* nothing is installed as a top-level ``assets`` or ``sensors`` package (they collided with most
  Dagster projects): outside this repository those names do not import, while the library's
  ``orchestrator.lib.assets`` / ``orchestrator.lib.sensors`` and the component do;
* the wheel built from pyproject.toml holds the code location's asset builders and sensor
  factories under ``orchestrator/lib/`` and no other top-level package;
* in the checkout, ``sensors.x`` / ``assets.x`` are the very module objects of the library (one
  module per file: a monkeypatch on one is seen by the other);
* the component is registered for ``dg`` (entry point ``dagster_dg_cli.registry_modules``).
"""

import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_names_are_free_outside_the_repository(tmp_path):
    code = (
        "import importlib, sys\n"
        "for name in ('assets', 'sensors'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError:\n"
        "        pass\n"
        "    else:\n"
        "        sys.exit(f'{name} is importable outside the repository')\n"
        "import orchestrator.lib.sensors.failures, orchestrator.lib.assets.airbyte\n"
        "from orchestrator.components import SlaPoliciesComponent\n"
        "from orchestrator.lib import sla_definitions, with_sla_policies, connector_resources\n"
        "print('ok', orchestrator.lib.sensors.failures.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split()[-2:] == ["ok", "orchestrator.lib.sensors.failures"]


def test_checkout_names_are_the_library_modules():
    import assets.dbt
    import orchestrator.lib.assets.dbt
    import orchestrator.lib.sensors.execution
    import sensors
    import sensors.execution

    assert sensors.execution is orchestrator.lib.sensors.execution
    assert assets.dbt is orchestrator.lib.assets.dbt
    assert sensors.ProjectContext is orchestrator.lib.sensors.ProjectContext
    from orchestrator.definitions import ProjectContext

    assert ProjectContext is sensors.ProjectContext


def test_wheel_ships_one_namespaced_package(tmp_path):
    """What setuptools puts in the wheel (``build_py``, the wheel's whole payload, from the
    pyproject.toml configuration; ``bdist_wheel`` itself needs the `wheel` package, not installed)."""
    out = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                          "--build-lib", str(tmp_path / "lib")], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    built = tmp_path / "lib"
    names = {p.relative_to(built).as_posix() for p in built.rglob("*.py")}
    assert {n.split("/")[0] for n in names} == {"orchestrator"}, sorted({n.split("/")[0] for n in names})
    for module in ("orchestrator/lib/sensors/__init__.py", "orchestrator/lib/sensors/failures.py",
                   "orchestrator/lib/sensors/execution.py", "orchestrator/lib/assets/__init__.py",
                   "orchestrator/lib/assets/airbyte.py", "orchestrator/lib/assets/dbt_meta.py",
                   "orchestrator/components.py", "orchestrator/lib/project.py"):
        assert module in names, module
    assert not (built / "orchestrator" / "lib" / "sensors").is_symlink()  # real files in the wheel
    assert (built / "orchestrator" / "emulators" / "scenarios" / "default.yaml").is_file()  # package data kept


def test_library_folders_import_themselves_relatively():
    """An absolute ``from sensors.x import`` inside sensors/ (or ``from assets.x`` inside assets/)
    works in the checkout through the alias but breaks every installed copy: refused here."""
    import re

    bad = re.compile(r"^\s*(from|import)\s+(sensors|assets)(\.|\s|$)", re.M)
    offenders = [f"{path.relative_to(ROOT)}:{source[:m.start()].count(chr(10)) + 1}"
                 for folder in ("sensors", "assets") for path in sorted((ROOT / folder).glob("*.py"))
                 for source in [path.read_text()] for m in bad.finditer(source)]
    assert not offenders, f"use relative imports (from .x import ...) in {offenders}"


def test_component_registered_for_dg():
    found = {ep.value for ep in metadata.entry_points(group="dagster_dg_cli.registry_modules")}
    assert "orchestrator.components" in found
