"""Fivetran workspace resource: dagster-fivetran's own client, pointed where configuration says.

dagster-fivetran hard-codes ``https://api.fivetran.com`` as a module constant. Rather than
rewriting that global, the client here carries its base URL per instance, so a code location can
talk to a real account and tests can talk to a local emulator in the same process. It also adds
the poll interval and timeout that dagster-fivetran's asset path never passes (a hung sync would
otherwise be waited on forever), and the last-known-state fallback.
"""

from pathlib import Path

import dagster as dg
import requests
from dagster_fivetran import FivetranWorkspace
from dagster_fivetran.resources import (
    DAGSTER_FIVETRAN_LIST_CONNECTIONS_FOR_GROUP_INDIVIDUAL_REQUEST_LIMIT,
    FIVETRAN_API_VERSION,
    FivetranClient,
)
from dagster_fivetran.translator import FivetranMetadataSet, FivetranWorkspaceData
from pydantic import Field

from orchestrator.resources.connector_state import fetch_or_restore
from orchestrator.resources.load_init import LoadWithoutInstance
from orchestrator.resources.errors import ConnectorAPIError, count_traffic, current_traffic, json_body, send
from orchestrator.resources.sync_failures import explain_fivetran_failure

REAL_FIVETRAN_API_BASE = "https://api.fivetran.com"


class ConfiguredFivetranClient(FivetranClient):
    def __init__(
        self,
        *,
        api_base: str,
        poll_interval: float,
        poll_timeout: float | None,
        request_timeout: float = 10.0,
        **client_kwargs,
    ):
        super().__init__(**client_kwargs)
        self._api_base = api_base.rstrip("/")
        self._poll_interval = poll_interval
        self._poll_timeout = poll_timeout
        self._request_timeout = request_timeout
        self._reschedules: dict[str, set] = {}

    @property
    def api_base_url(self) -> str:
        return f"{self._api_base}/{FIVETRAN_API_VERSION}"

    def _make_request(self, method, endpoint, data=None, params=None):
        """dagster-fivetran's request, read right: an unreachable API, 429/5xx and timeouts raise
        a typed transient ``ConnectorAPIError`` with the status code and Fivetran's message
        (dagster-fivetran's own loop hits ``UnboundLocalError`` when no response ever came),
        ``Retry-After`` is honoured, each request is bounded by ``request_timeout`` and by the
        sensor tick's ``api_deadline``."""
        from dagster_fivetran import __version__

        url = f"{self.api_base_url}/{endpoint}"
        headers = {"User-Agent": f"dagster-fivetran/{__version__}", "Content-Type": "application/json;version=2"}
        return send("fivetran", method, endpoint,
                    lambda t: requests.request(method=method, url=url, headers=headers, auth=self._auth, data=data,
                                               params=params, timeout=t),
                    timeout=self._request_timeout, max_retries=self.request_max_retries,
                    retry_delay=self.request_retry_delay, backoff=self.request_backoff_factor, key=self._api_base)

    def _make_and_handle_request(self, method, endpoint, data=None, params=None):
        response = self._make_request(method=method, endpoint=endpoint, data=data, params=params)
        body = json_body("fivetran", method, endpoint, response)
        return body["data"] if "data" in body else body

    def paginate(self, endpoint: str, limit: int = 1000, params: dict | None = None) -> list:
        """Every item of a Fivetran list endpoint. Fivetran returns ``data.next_cursor``
        (https://fivetran.com/docs/rest-api/pagination); dagster-fivetran 0.29.27 reads
        ``nextCursor`` and so never asks for page 2 of a real account. A cursor seen twice is an
        API fault, not a reason to loop forever."""
        items: list = []
        cursor, seen = None, set()
        while True:
            data = self._make_and_handle_request(
                method="GET", endpoint=endpoint,
                params={**(params or {}), "limit": limit, **({"cursor": cursor} if cursor else {})},
            )
            items.extend(data.get("items") or [])
            cursor = data.get("next_cursor")
            if not cursor:
                return items
            if cursor in seen:
                raise ConnectorAPIError("fivetran", "GET", endpoint, status_code=200, transient=False,
                                        vendor_message=f"next_cursor {cursor!r} returned twice; stopped paging")
            seen.add(cursor)

    def list_connectors_for_group(self, group_id: str):
        return self.paginate(f"groups/{group_id}/connectors",
                             DAGSTER_FIVETRAN_LIST_CONNECTIONS_FOR_GROUP_INDIVIDUAL_REQUEST_LIMIT)

    def get_groups(self):
        # dagster-fivetran reads only the first page (100 groups by default)
        return {"items": self.paginate("groups")}

    def get_connector_details(self, connector_id):
        details = super().get_connector_details(connector_id)
        traffic = current_traffic()
        status = (details or {}).get("status") or {} if isinstance(details, dict) else {}
        if traffic is not None and status.get("sync_state") == "rescheduled" and status.get("rescheduled_for"):
            # Fivetran rescheduled the sync: the source's API quota is spent (a rate limit upstream)
            seen = self._reschedules.setdefault(connector_id, set())
            if status["rescheduled_for"] not in seen:
                seen.add(status["rescheduled_for"])
                traffic.rescheduled += 1
        return details

    def _sync_and_poll(self, sync_fn, connector_id, poll_interval=10.0, poll_timeout=None):
        """dagster-fivetran's sync and poll, counting the HTTP 429s, the retries and the
        reschedules it meets (``count_traffic``); they are recorded for the sync it completed
        (``<id>@<succeeded_at|failed_at>``, the id the health sensor reads) or, when the poll
        ended without one (rescheduled, API errors), for the connector's next completed sync."""
        from datetime import datetime, timezone

        from orchestrator.resources.traffic import note_sync_traffic
        from orchestrator.snapshot import _iso

        started = datetime.now(timezone.utc)
        self._reschedules = {}
        sync_id = None
        with count_traffic() as traffic:
            try:
                out = super()._sync_and_poll(sync_fn=sync_fn, connector_id=connector_id,
                                             poll_interval=poll_interval, poll_timeout=poll_timeout)
                if out is not None:
                    at = _iso(out.connector_details.get("succeeded_at"))
                    sync_id = f"{connector_id}@{at.isoformat()}" if at else None
                return out
            except dg.Failure as failure:
                md = getattr(failure, "metadata", None) or {}
                details = getattr(md.get("connector_details"), "data", None) or {}
                at = _iso(details.get("failed_at")) if isinstance(details, dict) else None
                sync_id = f"{connector_id}@{at.isoformat()}" if at else None
                raise
            finally:
                note_sync_traffic(f"fivetran:{connector_id}", traffic, sync_id=sync_id, started_at=started)

    def sync_and_poll(self, connector_id, poll_interval=None, poll_timeout=None):
        return super().sync_and_poll(
            connector_id=connector_id,
            poll_interval=poll_interval or self._poll_interval,
            poll_timeout=poll_timeout or self._poll_timeout,
        )

    def resync_and_poll(
        self, connector_id, poll_interval=None, poll_timeout=None, resync_parameters=None
    ):
        return super().resync_and_poll(
            connector_id=connector_id,
            poll_interval=poll_interval or self._poll_interval,
            poll_timeout=poll_timeout or self._poll_timeout,
            resync_parameters=resync_parameters,
        )


class FivetranWorkspaceResource(LoadWithoutInstance, FivetranWorkspace):
    """``FivetranWorkspace`` with a configurable API base URL, poll timing and state fallback."""

    api_base_url: str = Field(
        default=REAL_FIVETRAN_API_BASE,
        description="Fivetran REST API base URL without the /v1 suffix (env FIVETRAN_API_BASE_URL).",
    )
    poll_interval: float = Field(default=10.0, description="Seconds between sync status polls.")
    poll_timeout: float | None = Field(
        default=3600.0,
        description=(
            "Seconds after which a sync that has not finished fails the run. Fivetran has no "
            "cancel endpoint, so this is what stops a hung sync from holding a run forever."
        ),
    )
    connector_state_dir: str | None = Field(
        default=None,
        description="Where the last known workspace state is kept for loading while the API is down.",
    )
    request_timeout: float = Field(
        default=10.0, description="Seconds one API request may take (connect + read) before it is retried.",
    )
    disable_schedule_on_trigger: bool = Field(
        default=False,
        description=(
            "Keep the connector on Fivetran's own schedule when Dagster triggers a sync (False, this "
            "project's choice): the planner leaves connectors to their schedule until their latest start, "
            "which a switch to manual scheduling would contradict. dagster-fivetran's default (True) "
            "switches the connector to manual on the first sync Dagster triggers."
        ),
    )

    def get_client(self) -> ConfiguredFivetranClient:
        return ConfiguredFivetranClient(
            api_base=self.api_base_url,
            poll_interval=self.poll_interval,
            poll_timeout=self.poll_timeout,
            request_timeout=self.request_timeout,
            api_key=self.api_key,
            api_secret=self.api_secret,
            request_max_retries=self.request_max_retries,
            request_retry_delay=self.request_retry_delay,
            request_backoff_factor=self.request_backoff_factor,
            disable_schedule_on_trigger=self.disable_schedule_on_trigger,
            retry_on_reschedule=self.retry_on_reschedule,
        )

    def sync_and_poll(self, context, config=None):
        try:
            yield from super().sync_and_poll(context=context, config=config)
        except ConnectorAPIError:  # the API itself failed: nothing to explain from the connector
            raise
        except dg.Failure as failure:
            connector_id = next(
                FivetranMetadataSet.extract(spec.metadata).connector_id for spec in context.assets_def.specs
            )
            raise explain_fivetran_failure(failure, self.get_client(), connector_id) from None

    def _fetch_live_workspace_data(self) -> FivetranWorkspaceData:
        """dagster-fivetran's fetch, except that a connector whose setup is broken (expired
        credentials, revoked grants) stays in the graph: dagster-fivetran drops it ("Ignoring
        incomplete or broken connector"), so the CLI, the sensors and the digest would each see
        another graph depending on when they loaded, and its escalation would lose its owners.
        Connectors never synced (no schemas yet) are still left out: they have no tables."""
        from dagster_fivetran.translator import FivetranConnector, FivetranDestination, FivetranSchemaConfig

        connectors_by_id, destinations_by_id, schema_configs = {}, {}, {}
        client = self.get_client()
        for group in client.get_groups()["items"]:
            destination = FivetranDestination.from_destination_details(
                destination_details=client.get_destination_details(destination_id=group["id"]))
            destinations_by_id[destination.id] = destination
            for details in client.list_connectors_for_group(group_id=group["id"]):
                connector = FivetranConnector.from_connector_details(connector_details=details)
                raw = client.get_schema_config_for_connector(connector_id=connector.id, raise_on_not_found_error=False)
                schema_config = FivetranSchemaConfig.from_schema_config_details(schema_config_details=raw) if raw else None
                if not schema_config or not schema_config.has_schemas:
                    self._log.info(f"Fivetran connector `{connector.name}` has no schema yet (never synced); left out")
                    continue
                if not connector.is_connected:
                    self._log.warning(f"Fivetran connector `{connector.name}` is {connector.setup_state} "
                                      "(kept in the asset graph; its syncs fail until it is repaired)")
                connectors_by_id[connector.id] = connector
                schema_configs[connector.id] = schema_config
        return FivetranWorkspaceData(connectors_by_id=connectors_by_id, destinations_by_id=destinations_by_id,
                                     schema_configs_by_connector_id=schema_configs)

    def fetch_fivetran_workspace_data(self) -> FivetranWorkspaceData:
        live = self._fetch_live_workspace_data
        if not self.connector_state_dir:
            return live()
        return fetch_or_restore("fivetran", self.account_id, live, Path(self.connector_state_dir))
