"""`shipyard data forget`: data requests on a run's stored data (erasure)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.errors import handle_errors
from shipyard.cli.output import print_json

data_app = typer.Typer(no_args_is_help=True, help="Data requests on a run's stored data (erasure).")


@data_app.command("forget")
@handle_errors
def forget_command(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    where: Annotated[
        str, typer.Option("--where", help='Rows to erase, e.g. "user_id == 123" or "user_id in [1, 2]".')
    ] = ...,  # type: ignore[assignment]
    actor: Annotated[str, typer.Option(help="Who asked (recorded in the audit log).")] = "shipyard-cli",
) -> None:
    """Erase rows matching WHERE from the run's stored data, regenerate its summaries, report and model card from
    the remaining rows, flag the model for retraining, audit-log it.

    WHERE is a small language: columns compared with literals (== != < <= > >= in, not in, is None), joined by
    and / or / not; `backticks` quote odd column names. It is parsed, never run as code.
    """
    from shipyard.erasure import forget_run  # lazy: pulls pandas, too slow for `shipyard --help`

    print_json(forget_run(run, where, actor=actor))
