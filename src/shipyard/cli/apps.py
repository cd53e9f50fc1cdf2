"""`shipyard app list` and `shipyard app <name> ...`: the applications' commands, one sub-group each."""

from __future__ import annotations

import typer

from shipyard.apps import AppRegistry, registry
from shipyard.cli.errors import handle_errors
from shipyard.cli.output import console


def build_apps_group(apps: AppRegistry = registry) -> typer.Typer:
    """The `shipyard app` group: `list`, then each application's own CLI under its name."""
    group = typer.Typer(no_args_is_help=True, help="Applications built on shipyard: list them, run their commands.")

    @group.command("list")
    @handle_errors
    def apps_list() -> None:
        """List the installed applications and what each adds (cli, routers, pages)."""
        found = apps.available()
        if not found:
            console.print("no applications installed")
        for application in found:
            parts = ", ".join(application.contributes()) or "nothing to mount"
            console.print(f"{application.name}\t{application.summary} [{parts}]", markup=False, highlight=False)

    for application in apps.available():
        if application.cli is not None:
            group.add_typer(application.cli, name=application.name, help=application.summary)
    return group
