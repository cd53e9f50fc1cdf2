"""`shipyard audit privacy`: a membership-inference audit of a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.errors import handle_errors
from shipyard.cli.output import print_json

audit_app = typer.Typer(no_args_is_help=True, help="Audit a trained run (privacy).")


@audit_app.command("privacy")
@handle_errors
def audit_privacy_command(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    samples: Annotated[int, typer.Option(help="Most rows per side (members / non-members).")] = 5000,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Membership-inference audit (loss threshold + calibrated offline LiRA); writes RUN/privacy_audit.json."""
    from shipyard.evaluation.membership import audit_privacy  # lazy: pulls pandas, too slow for `shipyard --help`

    print_json(audit_privacy(run, max_samples=samples, seed=seed))
