"""Initializing a connector workspace resource at definitions load without an instance.

``ConfigurableResource.process_config_and_initialize_cm`` (what dagster-fivetran's and
dagster-airbyte's ``load_asset_specs`` enter) builds an ``InitResourceContext``; with no instance
given, that context creates an ephemeral ``DagsterInstance`` -- ~1.4 s of CPU on a cold process
(its storage stack imported, in-memory schemas created) that listing the workspace's tables
never reads. This mixin processes the config the same way (defaults applied, ``EnvVar`` values
resolved, invalid config raising ``DagsterInvalidConfigError``) and yields the resource with
those values, without the instance (the Fivetran and Airbyte workspaces have no
setup_for_execution / teardown hooks to run).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator


class LoadWithoutInstance:
    @contextlib.contextmanager
    def process_config_and_initialize_cm(self) -> Generator:
        from dagster._config.post_process import post_process_config
        from dagster._core.errors import DagsterInvalidConfigError

        processed = post_process_config(self._config_schema.config_type, self._convert_to_config_dictionary())
        if not processed.success:
            raise DagsterInvalidConfigError("Errors while initializing resource", processed.errors, processed)
        yield self._with_updated_values(processed.value)
