"""`shipyard tune JOB.yaml --trials N [--timeout S] [--storage URL] [--study NAME]`: hyper-parameter search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.errors import handle_errors
from shipyard.cli.output import console


@handle_errors
def tune(
    config: Annotated[Path, typer.Argument(help="Job file with a `search:` section.")],
    trials: Annotated[int, typer.Option(min=1, help="Trials this worker runs.")] = 10,
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after this many seconds.")] = None,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL (default: the run store's SQLite file).")
    ] = None,
    study: Annotated[str | None, typer.Option(help="Study name; workers that share it share the search.")] = None,
) -> None:
    """Search the job's `search:` ranges with Optuna (TPE, median pruning); every trial is a run."""
    from shipyard.tune import tune as run_tune  # lazy: optuna and torch are slow to import

    summary = run_tune(config, trials=trials, timeout=timeout, storage=storage, study_name=study)
    console.print_json(json.dumps(summary, default=str))
