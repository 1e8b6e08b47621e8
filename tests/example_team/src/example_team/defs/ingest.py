"""The team's Airbyte connections, with dagster-airbyte's own asset builder and default keys
(``accounts``, ``invoices``). The workspace is the library's Airbyte resource (configured from the
AIRBYTE_* environment variables), the one the SLA sensors read too (resource key ``airbyte``). The
library's translator gives the tables their owner and group from the Airbyte workspace (its name),
keeping dagster-airbyte's keys."""

import dagster as dg
from dagster_airbyte import build_airbyte_assets_definitions

from orchestrator.lib.assets.airbyte import AirbyteTranslator
from orchestrator.resources import airbyte_workspace


@dg.definitions
def defs() -> dg.Definitions:
    workspace = airbyte_workspace()
    translator = AirbyteTranslator.for_workspace(workspace, owners="*=source", groups="source", key_style="dagster")
    return dg.Definitions(assets=build_airbyte_assets_definitions(workspace=workspace,
                                                                  dagster_airbyte_translator=translator))
