"""Airbyte workspace resource with the last-known-state fallback.

dagster-airbyte's ``AirbyteWorkspace`` already takes its base URLs as configuration; this adds
only what the code location needs to keep loading while the API is down.
"""

from __future__ import annotations

from pathlib import Path

from dagster_airbyte import AirbyteWorkspace
from dagster_airbyte.translator import AirbyteWorkspaceData
from pydantic import Field

from orchestrator.resources.connector_state import fetch_or_restore


class AirbyteWorkspaceResource(AirbyteWorkspace):
    connector_state_dir: str | None = Field(
        default=None,
        description="Where the last known workspace state is kept for loading while the API is down.",
    )

    def fetch_airbyte_workspace_data(self) -> AirbyteWorkspaceData:
        live = super().fetch_airbyte_workspace_data
        if not self.connector_state_dir:
            return live()
        return fetch_or_restore("airbyte", self.workspace_id, live, Path(self.connector_state_dir))
