"""`shipyard runs list|show|compare`: browse the run store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.errors import handle_errors
from shipyard.cli.output import console
from shipyard.store.run_tables import compare_table, run_detail, runs_plain, runs_table
from shipyard.store.runs import RunStore

runs_app = typer.Typer(no_args_is_help=True, help="Browse the run store.")


@runs_app.command("list")
@handle_errors
def runs_list(
    root: Annotated[Path, typer.Option(help="Runs root folder.")] = Path("runs"),
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """List recorded runs, newest first."""
    records = RunStore.for_root(root).list_runs(limit=limit)
    if console.is_terminal:
        console.print(runs_table(records))
    else:  # a pipe or a file: whole fields, tab-separated, never wrapped to the 80-column default
        typer.echo(runs_plain(records))


@runs_app.command("show")
@handle_errors
def runs_show(
    run: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    root: Annotated[Path, typer.Option(help="Runs root folder.")] = Path("runs"),
) -> None:
    """Show one run: config, metrics, status."""
    console.print(run_detail(RunStore.for_root(root).get(run)))


@runs_app.command("compare")
@handle_errors
def runs_compare(
    a: Annotated[str, typer.Argument()],
    b: Annotated[str, typer.Argument()],
    root: Annotated[Path, typer.Option(help="Runs root folder.")] = Path("runs"),
) -> None:
    """Compare two runs' configs and metrics."""
    console.print(compare_table(RunStore.for_root(root).compare(a, b)))
