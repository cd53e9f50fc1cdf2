"""`shipyard app list` and `shipyard app <name> ...`: the applications' commands, one sub-group each."""

from __future__ import annotations

import typer

from shipyard.apps import AppRegistry, registry
from shipyard.cli.errors import handle_errors


def with_error_handler(group: typer.Typer) -> typer.Typer:
    """Put every command of an application's group (and its sub-groups) under the one error handler: applications
    sit below the CLI, so they raise ShipyardError and the CLI turns it into an `error:` line and exit code 2."""
    for command in group.registered_commands:
        if command.callback is not None:
            command.callback = handle_errors(command.callback)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            with_error_handler(sub.typer_instance)
    return group


def build_apps_group(apps: AppRegistry = registry) -> typer.Typer:
    """The `shipyard app` group: `list`, then each application's own CLI under its name."""
    group = typer.Typer(no_args_is_help=True, help="Applications built on shipyard: list them, run their commands.")

    @group.command("list")
    @handle_errors
    def apps_list() -> None:
        """List the installed applications and what each adds (cli, routers, pages)."""
        found = apps.available()
        if not found:
            typer.echo("no applications installed")
        for application in found:
            parts = ", ".join(application.contributes()) or "nothing to mount"
            typer.echo(f"{application.name}\t{application.summary} [{parts}]")  # tab-separated: fit for a pipe

    for application in apps.available():
        if application.cli is not None:
            group.add_typer(with_error_handler(application.cli), name=application.name, help=application.summary)
    return group
