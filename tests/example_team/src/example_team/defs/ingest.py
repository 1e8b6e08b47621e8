"""The team's Airbyte connections, with dagster-airbyte's own asset builder and default keys
(``accounts``, ``invoices``). The workspace is the library's Airbyte resource (configured from the
AIRBYTE_* environment variables), the one the SLA sensors read too (resource key ``airbyte``)."""

import dagster as dg
from dagster_airbyte import build_airbyte_assets_definitions

from orchestrator.resources import airbyte_workspace


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=build_airbyte_assets_definitions(workspace=airbyte_workspace()))
