"""The `shipyard` command assembled: global options, then every command and command group.

Thin: each command parses its options and calls one public function. Errors go through one handler
(cli/errors.py): a ShipyardError becomes one `error:` line and exit code 2; anything else is a bug, reported in
one line with exit code 1 (run with --debug for the traceback).
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.logging import RichHandler

from shipyard.apps import AppRegistry, registry
from shipyard.cli.apps import build_apps_group
from shipyard.cli.audit import audit_app
from shipyard.cli.data import data_app
from shipyard.cli.errors import STATE
from shipyard.cli.loop import feedback_app, label_app, monitor, promote, retrain, rollback
from shipyard.cli.optimize import optimize
from shipyard.cli.output import err_console
from shipyard.cli.predict import evaluate, explain, predict
from shipyard.cli.runs import runs_app
from shipyard.cli.serve import keys_app, serve_command
from shipyard.cli.train import demo, init, train, validate
from shipyard.cli.tune import tune


def _main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    STATE["debug"] = debug
    level = logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(
        level=level, format="%(message)s", handlers=[RichHandler(console=err_console, show_path=False)], force=True
    )
    logging.getLogger("shipyard").setLevel(level)
    # off a terminal the progress bar becomes INFO lines (training/progress.py): shown like the bar would be
    logging.getLogger("shipyard.training.progress").setLevel(logging.DEBUG if debug else logging.INFO)


def build_app(apps: AppRegistry = registry) -> typer.Typer:
    """The whole `shipyard` command, with the applications of ``apps`` under `shipyard app`."""
    root = typer.Typer(add_completion=False, no_args_is_help=True, help="shipyard: data -> model -> service.")
    root.callback()(_main_options)
    # commands first, then groups, in the order `shipyard --help` has always listed them
    root.command("serve")(serve_command)
    root.command("explain")(explain)  # shipyard explain RUN --input FILE
    for command in (train, validate, init, evaluate, predict, optimize, demo):
        root.command()(command)
    root.command()(tune)  # shipyard tune JOB.yaml --trials N (Optuna)
    root.add_typer(runs_app, name="runs")
    root.add_typer(keys_app, name="keys")
    root.add_typer(audit_app, name="audit")  # shipyard audit privacy RUN
    root.add_typer(data_app, name="data")  # shipyard data forget RUN --where "..."
    root.add_typer(build_apps_group(apps), name="app")  # shipyard app list | shipyard app NAME ...
    # continuous learning (docs/loop.md)
    root.add_typer(feedback_app, name="feedback")  # shipyard feedback import FILE
    root.add_typer(label_app, name="label")  # shipyard label queue MODEL --n 200 | export | import
    for command in (monitor, retrain, promote, rollback):
        root.command()(command)
    return root


app = build_app()


def main() -> None:
    app()
