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

import dagster as dg

from dagster_airbyte import AirbyteWorkspace
from dagster_airbyte.resources import AirbyteClient
from dagster_shared.record import copy
from dagster_shared.utils.cached_method import cached_method
from dagster_airbyte.translator import (
    AirbyteConnection,
    AirbyteConnectionTableProps,
    AirbyteDestination,
    AirbyteWorkspaceData,
)
from dagster_airbyte.utils import get_airbyte_connection_table_name
from pydantic import Field, PrivateAttr

from orchestrator.resources.connector_state import fetch_or_restore
from orchestrator.resources.load_init import LoadWithoutInstance
from orchestrator.resources.errors import ConnectorAPIError, count_traffic, current_traffic, json_body, send
from orchestrator.resources.sync_failures import explain_airbyte_failure

CUSTOM_NAMESPACE = {"customformat", "custom_format"}


def airbyte_schedule(minutes: int | None) -> dict:
    """The ``schedule`` a public-API ``PATCH /connections/{id}`` accepts for "sync every
    ``minutes``": ``AirbyteApiConnectionSchedule`` takes only ``manual`` or ``cron`` with a Quartz
    ``cronExpression`` at most hourly (``basic``/``basicTiming`` appear in responses only and are
    rejected). ``None`` or 0 = manual. Intervals round to whole hours (1-23) or whole days."""
    if not minutes:
        return {"scheduleType": "manual"}
    hours = max(1, round(minutes / 60))
    if hours < 24:
        return {"scheduleType": "cron", "cronExpression": f"0 0 */{hours} * * ?" if hours > 1 else "0 0 * * * ?"}
    days = max(1, round(hours / 24))
    return {"scheduleType": "cron", "cronExpression": "0 0 0 * * ?" if days == 1 else f"0 0 0 */{days} * ?"}


def same_cron(a: str | None, b: str | None) -> bool:
    """Quartz expressions equal once the trailing time zone the API appends ("... UTC") is dropped."""
    def norm(x):
        text = (x or "").strip()
        return " ".join(text[:-3].split() if text.endswith("UTC") else text.split())
    return bool(a) and norm(a) == norm(b)


def connection_namespace(connection_details) -> str | None:
    """The fixed schema a connection writes to, or None (destination default, per-stream formats)."""
    namespace = connection_details.get("namespaceFormat")
    # "${SOURCE_NAMESPACE}"-style formats resolve per stream; only fixed names are used.
    if connection_details.get("namespaceDefinition") in CUSTOM_NAMESPACE and namespace and "${" not in namespace:
        return namespace
    return None


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


class ConfiguredAirbyteClient(AirbyteClient):
    """dagster-airbyte's client with its requests read right: 429/5xx, timeouts, an unreachable
    API and garbage bodies raise a typed ``ConnectorAPIError`` with the status code and Airbyte's
    message (dagster-airbyte says only "Max retries exceeded"), ``Retry-After`` is honoured and
    each request is bounded by ``request_timeout`` and the sensor tick's ``api_deadline``."""

    _polled_job: dict | None = PrivateAttr(default=None)  # the job a sync_and_poll last read

    def _single_request(self, method, url, data=None, params=None, include_additional_request_headers=True):
        endpoint = url.split("://", 1)[-1].split("/", 1)[-1]
        base = url.split("/api/", 1)[0]

        def go(t):
            session = self._get_session(include_additional_request_headers=include_additional_request_headers)
            return session.request(method=method, url=url, json=data, params=params, timeout=t)

        response = send("airbyte", method, endpoint, go, timeout=float(self.request_timeout),
                        max_retries=self.request_max_retries, retry_delay=self.request_retry_delay, key=base)
        return json_body("airbyte", method, endpoint, response)

    def get_job_details(self, job_id: int):
        details = super().get_job_details(job_id)
        if current_traffic() is not None and isinstance(details, dict):
            self._polled_job = details
        return details

    def sync_and_poll(self, connection_id: str):
        """dagster-airbyte's sync and poll, counting the HTTP 429s and retries it meets
        (``count_traffic``); they are recorded for the job it polled (the job id the health sensor
        reads), or, when no job was seen, for the connection's next completed sync."""
        from datetime import datetime, timezone

        from orchestrator.resources.traffic import note_sync_traffic

        started = datetime.now(timezone.utc)
        self._polled_job = None
        with count_traffic() as traffic:
            try:
                out = super().sync_and_poll(connection_id)
                self._polled_job = out.job_details
                return out
            finally:
                job = self._polled_job or {}
                done = str(job.get("status") or "") in ("succeeded", "failed", "cancelled")
                note_sync_traffic(f"airbyte:{connection_id}", traffic,
                                  sync_id=str(job["jobId"]) if done and job.get("jobId") is not None else None,
                                  started_at=started)


class AirbyteWorkspaceResource(LoadWithoutInstance, AirbyteWorkspace):
    connector_state_dir: str | None = Field(
        default=None,
        description="Where the last known workspace state is kept for loading while the API is down.",
    )

    @cached_method
    def get_client(self) -> ConfiguredAirbyteClient:
        return ConfiguredAirbyteClient(
            rest_api_base_url=self.rest_api_base_url,
            configuration_api_base_url=self.configuration_api_base_url,
            workspace_id=self.workspace_id,
            client_id=self.client_id,
            client_secret=self.client_secret,
            username=self.username,
            password=self.password,
            request_max_retries=self.request_max_retries,
            request_retry_delay=self.request_retry_delay,
            request_timeout=self.request_timeout,
            max_items_per_page=self.max_items_per_page,
            poll_interval=self.poll_interval,
            poll_timeout=self.poll_timeout,
            cancel_on_termination=self.cancel_on_termination,
            poll_previous_running_sync=self.poll_previous_running_sync,
        )

    def _fetch_live(self) -> AirbyteWorkspaceData:
        data = super().fetch_airbyte_workspace_data()
        client = self.get_client()
        namespaces = {}
        for connection_id in data.connections_by_id:
            namespace = connection_namespace(client.get_connection_details(connection_id=connection_id))
            if namespace:
                namespaces[connection_id] = namespace
        return with_connection_namespaces(data, namespaces)

    def _generate_materialization(self, airbyte_output, dagster_airbyte_translator):
        # dagster-airbyte rebuilds the keys here with schema=None, which would not match the
        # namespaced keys the assets were defined with; pass the connection's namespace through.
        details = airbyte_output.connection_details
        connection = AirbyteConnection.from_connection_details(connection_details=details)
        namespace = connection_namespace(details)
        for stream in connection.streams.values():
            if not stream.selected:
                continue
            table_name = get_airbyte_connection_table_name(
                stream_prefix=connection.stream_prefix, stream_name=stream.name
            )
            spec = dagster_airbyte_translator.get_asset_spec(
                props=AirbyteConnectionTableProps(
                    table_name=table_name,
                    stream_prefix=connection.stream_prefix,
                    stream_name=stream.name,
                    json_schema=stream.json_schema,
                    connection_id=connection.id,
                    connection_name=connection.name,
                    destination_type=None,
                    database=None,
                    schema=namespace,
                )
            )
            yield dg.AssetMaterialization(
                asset_key=spec.key,
                description=f"Table synced by Airbyte connection {connection.name}: {table_name}",
                metadata=spec.metadata,
            )

    def sync_and_poll(self, context):
        try:
            yield from super().sync_and_poll(context=context)
        except ConnectorAPIError:
            raise
        except dg.Failure as failure:
            raise explain_airbyte_failure(failure, self.get_client()) from None

    def fetch_airbyte_workspace_data(self) -> AirbyteWorkspaceData:
        if not self.connector_state_dir:
            return self._fetch_live()
        return fetch_or_restore("airbyte", self.workspace_id, self._fetch_live, Path(self.connector_state_dir))
