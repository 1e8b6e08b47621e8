"""`orchestrator` console script.

Subcommands live next to the code they drive and are imported only when called, so
`orchestrator --help` stays fast and a broken optional module cannot break the others.
"""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command or group. Add new commands here.
COMMANDS: dict[str, str] = {
    "diagnose": "orchestrator.diagnosis.cli:diagnose_command",
    "incidents": "orchestrator.diagnosis.incidents:incidents_group",
    "sandbox": "orchestrator.emulators.sandbox:sandbox_command",
    "dev": "orchestrator.devserver:dev_command",
    "policies": "orchestrator.policies.cli:policies_group",
    "bench": "orchestrator.simulator.cli:bench_command",
    "plan": "orchestrator.planning.cli:plan_command",
    "proposals": "orchestrator.planning.cli:proposals_group",
    "digest": "orchestrator.digest.cli:digest_command",
    "serve-approvals": "orchestrator.approvals.cli:serve_approvals_command",
    "schema-changes": "orchestrator.schema_changes.cli:schema_changes_group",
    "audit": "orchestrator.store.cli:audit_group",
    "health": "orchestrator.health.cli:health_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:
            # One broken optional module must not take the whole CLI down with it.
            why = str(exc)

            @click.command(cmd_name, help=f"(unavailable: {why})")
            def unavailable() -> None:
                raise click.ClickException(f"'{cmd_name}' cannot be loaded: {why}")

            return unavailable


@click.group(cls=LazyGroup)
def cli() -> None:
    """SLA-aware orchestration for Fivetran, Airbyte and dbt on Dagster."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
