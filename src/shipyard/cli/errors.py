"""The one error handler of every `shipyard` command (main CLI, serve, keys, audit, data, applications).

A ShipyardError becomes one `error:` line and exit code 2; anything else is a bug, reported in one line with
exit code 1 (run with --debug for the traceback).
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any

import typer

from shipyard.config.loader import ConfigError
from shipyard.errors import ShipyardError
from shipyard.io import storage_error

STATE: dict[str, Any] = {"debug": False}


def print_error(line: str) -> None:
    """One unwrapped line on stderr (rich would wrap long messages at the terminal width)."""
    typer.echo(" ".join(line.split("\n")), err=True)


def print_config_problems(exc: ConfigError) -> None:
    """Every problem of a bad job config, one `error:` line each."""
    for problem in exc.problems:
        print_error(f"error: {problem.render()}")


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command under the one error policy (see the module docstring)."""
    if getattr(fn, "handles_errors", False):  # already wrapped (an application's command mounted twice)
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ShipyardError as exc:
            if STATE["debug"]:
                traceback.print_exc()
            if isinstance(exc, ConfigError):
                print_config_problems(exc)
            else:
                print_error(f"error: {exc}")
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if STATE["debug"]:
                traceback.print_exc()
            storage = storage_error(exc)  # a full disk or a read-only folder: the environment, not a bug
            if storage is not None:
                print_error(f"error: {storage}")
                raise typer.Exit(2) from None
            print_error(
                f"internal error: {type(exc).__name__}: {exc} (a bug in shipyard; rerun with --debug for details)"
            )
            raise typer.Exit(1) from None

    wrapper.handles_errors = True  # type: ignore[attr-defined]
    return wrapper
