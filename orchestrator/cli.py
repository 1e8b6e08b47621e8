"""`orchestrator` console script.

Subcommands live next to the code they drive and are imported only when called, so
`orchestrator --help` stays fast and a broken optional module cannot break the others.
"""

from __future__ import annotations

import importlib
import warnings

import click

# Library notices about their own API status (dagster's BetaWarning / PreviewWarning /
# ExperimentalWarning on dagster-airbyte and dagster-dbt classes) say nothing to an operator:
# filtered by message, so this module does not import dagster to name the classes.
QUIET = (r".* is currently in (beta|preview|alpha)", r".* is experimental", r".*is currently experimental")


def quiet_library_warnings() -> None:
    for pattern in QUIET:
        warnings.filterwarnings("ignore", message=pattern)

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
    "notify": "orchestrator.notify.cli:notify_command",
    "health": "orchestrator.health.cli:health_command",
}


# Short help of each command for `orchestrator --help`, so listing them imports none of them
# (click otherwise loads every command, dagster included, to print one line each).
SHORT_HELP: dict[str, str] = {
    "diagnose": "Classify failure messages (rules + model + failure memory).",
    "incidents": "Incidents: a root failure, its cascade, actions and post-mortem.",
    "sandbox": "Only the Fivetran and Airbyte emulators, in the foreground.",
    "dev": "Emulators + dagster dev on the embedded default; prints the UI URL.",
    "policies": "Validate SLA policies; explain an asset's deadline.",
    "bench": "Compare planners in the simulator.",
    "plan": "What the scheduling agent would do now, and why.",
    "proposals": "The agent's proposals and their decisions.",
    "digest": "Build (and send) the daily digest per owner.",
    "serve-approvals": "The one-click Approve/Reject service behind the links.",
    "schema-changes": "Schema changes in the landed tables and their impact.",
    "audit": "Verify the audit trail's hash chain.",
    "notify": "Tell incident owners in Slack / Teams what changed.",
    "health": "Connector health scores, load anomalies and early warnings.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            text = SHORT_HELP.get(name)
            if text is None:  # a command added without a line here: ask it (imports it)
                cmd = self.get_command(ctx, name)
                text = cmd.get_short_help_str(formatter.width) if cmd is not None else ""
            rows.append((name, text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

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
    quiet_library_warnings()
    cli()


if __name__ == "__main__":
    main()
