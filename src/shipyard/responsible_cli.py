"""Command-line entry points for the responsible-AI layer: ``shipyard audit privacy``, ``shipyard explain`` and
``shipyard data forget``.

Light at import (torch, Opacus, Captum load only when a command runs). The main CLI wires them in with::

    from shipyard.responsible_cli import audit_app, data_app, explain_command
    app.add_typer(audit_app, name="audit")
    app.add_typer(data_app, name="data")
    app.command("explain")(explain_command)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli_support import handle_errors

audit_app = typer.Typer(no_args_is_help=True, help="Audit a trained run (privacy).")
data_app = typer.Typer(no_args_is_help=True, help="Data requests on a run's stored data (erasure).")


_errors = handle_errors  # one `error:` line and exit code 2, as in the main CLI


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


@audit_app.command("privacy")
@_errors
def audit_privacy_command(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    samples: Annotated[int, typer.Option(help="Most rows per side (members / non-members).")] = 5000,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Membership-inference audit (loss threshold + calibrated offline LiRA); writes RUN/privacy_audit.json."""
    from shipyard.evaluation.membership import audit_privacy

    result = audit_privacy(run, max_samples=samples, seed=seed)
    _print_json(result)


@_errors
def explain_command(
    run: Annotated[Path, typer.Argument(help="Run folder or model folder.")],
    input: Annotated[Path, typer.Option("--input", help="CSV / JSONL / Parquet rows to explain.")] = ...,  # type: ignore[assignment]
    n: Annotated[int, typer.Option("--n", help="How many rows (from the top of the file).")] = 10,
) -> None:
    """Explain predictions: feature attributions (tabular), saliency (images) or token attributions (text)."""
    from shipyard.evaluation.explain import explain_run

    _print_json(explain_run(run, input, n))


@data_app.command("forget")
@_errors
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
    from shipyard.erasure import forget_run

    _print_json(forget_run(run, where, actor=actor))
