"""Airbyte workspace resource: connection namespaces honoured, last-known-state fallback.

dagster-airbyte's ``AirbyteWorkspace`` already takes its base URLs as configuration. Two gaps are
filled here:

* dagster-airbyte reads the destination's default schema but not a connection's own namespace
  (``namespaceDefinition: customformat``), so two connections writing ``users`` into different
  schemas would collide. Each such connection gets a destination record carrying its namespace,
  which makes the table props (and the fully qualified table name) point at the real table.
* the code location keeps loading from the last known state when the API is down.
"""

from pathlib import Path

from dagster_airbyte import AirbyteWorkspace
from dagster_shared.record import copy
from dagster_airbyte.translator import AirbyteConnection, AirbyteDestination, AirbyteWorkspaceData
from pydantic import Field

from orchestrator.resources.connector_state import fetch_or_restore

CUSTOM_NAMESPACE = {"customformat", "custom_format"}


def with_connection_namespaces(
    data: AirbyteWorkspaceData, namespaces: dict[str, str]
) -> AirbyteWorkspaceData:
    """Re-point each connection with a fixed custom namespace at a destination in that schema."""
    connections: dict[str, AirbyteConnection] = dict(data.connections_by_id)
    destinations: dict[str, AirbyteDestination] = dict(data.destinations_by_id)
    for connection_id, namespace in namespaces.items():
        connection = connections[connection_id]
        base = destinations[connection.destination_id]
        if base.schema == namespace:
            continue
        scoped_id = f"{base.id}/{namespace}"
        destinations[scoped_id] = AirbyteDestination(
            id=scoped_id, type=base.type, database=base.database, schema=namespace
        )
        connections[connection_id] = copy(connection, destination_id=scoped_id)
    return AirbyteWorkspaceData(connections_by_id=connections, destinations_by_id=destinations)


class AirbyteWorkspaceResource(AirbyteWorkspace):
    connector_state_dir: str | None = Field(
        default=None,
        description="Where the last known workspace state is kept for loading while the API is down.",
    )

    def _fetch_live(self) -> AirbyteWorkspaceData:
        data = super().fetch_airbyte_workspace_data()
        client = self.get_client()
        namespaces = {}
        for connection_id in data.connections_by_id:
            details = client.get_connection_details(connection_id=connection_id)
            namespace = details.get("namespaceFormat")
            # "${SOURCE_NAMESPACE}"-style formats resolve per stream; only fixed names are used.
            if details.get("namespaceDefinition") in CUSTOM_NAMESPACE and namespace and "${" not in namespace:
                namespaces[connection_id] = namespace
        return with_connection_namespaces(data, namespaces)

    def fetch_airbyte_workspace_data(self) -> AirbyteWorkspaceData:
        if not self.connector_state_dir:
            return self._fetch_live()
        return fetch_or_restore("airbyte", self.workspace_id, self._fetch_live, Path(self.connector_state_dir))
