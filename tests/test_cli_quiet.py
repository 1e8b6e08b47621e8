"""CLI commands are quiet about the libraries' API status (issue 15, item 7): dagster-airbyte and
dagster-fivetran warn (Beta/Preview) when their resources are built, which every command that
reads a connector does; ``orchestrator.cli.main`` filters those notices and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _stderr(quiet: bool) -> str:
    code = textwrap.dedent(f"""
        import warnings
        warnings.simplefilter("default")
        if {quiet!r}:
            from orchestrator.cli import quiet_library_warnings
            quiet_library_warnings()
        from orchestrator.resources import airbyte_workspace, fivetran_workspace
        airbyte_workspace(); fivetran_workspace()
        warnings.warn("an operator-facing warning stays", UserWarning)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIVETRAN_", "AIRBYTE_"))}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stderr


def test_library_status_warnings_are_filtered_and_others_kept():
    loud = _stderr(quiet=False)
    assert any(w in loud for w in ("BetaWarning", "PreviewWarning", "is currently in beta", "is currently in preview")), loud[-1500:]
    quiet = _stderr(quiet=True)
    assert "BetaWarning" not in quiet and "PreviewWarning" not in quiet and "currently in" not in quiet, quiet[-1500:]
    assert "an operator-facing warning stays" in quiet
