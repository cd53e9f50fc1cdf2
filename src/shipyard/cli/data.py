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
    database_url: Annotated[
        str | None,
        typer.Option(envvar="SHIPYARD_LOOP_DATABASE_URL", help="The prediction log's database (default: shipyard.db)."),
    ] = None,
) -> None:
    """Erase rows matching WHERE from the run's stored data, regenerate its summaries, report and model card from
    the remaining rows, flag the model for retraining, audit-log it; and erase the matching predictions its
    served models logged (with their feedback).

    WHERE is a small language: columns compared with literals (== != < <= > >= in, not in, is None), joined by
    and / or / not; `backticks` quote odd column names. It is parsed, never run as code.
    """
    from shipyard.erasure import forget_run  # lazy: pulls pandas, too slow for `shipyard --help`

    result = forget_run(run, where, actor=actor)
    result["prediction_log"] = forget_logged_predictions(run, where, actor=actor, database_url=database_url)
    print_json(result)


def forget_logged_predictions(run: Path, where: str, *, actor: str, database_url: str | None) -> dict:
    """The loop's part of an erasure request: predictions logged by models of this run folder (docs/loop.md).

    `shipyard.erasure` sits below the loop layer and cannot call it; this command calls both."""
    from shipyard.loop.erasure import forget_predictions
    from shipyard.loop.store import LoopStore
    from shipyard.store.audit import AuditLog

    runs_root = run.resolve().parent
    store = LoopStore.open(runs_root, database_url)
    audit = AuditLog.for_root(runs_root)
    return forget_predictions(store, where, under=run, actor=actor, audit=audit, strict=False)
