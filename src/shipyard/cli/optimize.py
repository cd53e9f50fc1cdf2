"""`shipyard optimize`: export, quantise, prune or distil a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli.errors import handle_errors
from shipyard.cli.output import console


def parse_students(items: list[str]) -> dict[str, Any]:
    """``--student layers=3 --student hidden=64,32`` -> {"layers": 3, "hidden": [64, 32]}."""
    student: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        parts = [p for p in value.split(",") if p]
        student[key] = [int(p) for p in parts] if len(parts) > 1 or key in ("hidden", "channels") else int(value)
    return student


@handle_errors
def optimize(
    run: Annotated[Path, typer.Argument(help="A finished run folder.")],
    methods: Annotated[str, typer.Option(help="Comma-separated: onnx,int8,prune,distill.")] = "onnx,int8",
    sparsity: Annotated[float, typer.Option(help="Pruning: fraction of weights or units removed.")] = 0.5,
    structured: Annotated[bool, typer.Option(help="Structured pruning (really shrinks the matrices).")] = False,
    student: Annotated[
        list[str] | None, typer.Option(help="Distillation student, e.g. layers=3 or hidden=64,32 (repeatable).")
    ] = None,
    distill_epochs: Annotated[int | None, typer.Option(help="Student epochs (default: the run's).")] = None,
    finetune_epochs: Annotated[int, typer.Option(help="Fine-tune epochs after pruning.")] = 1,
    threads: Annotated[int | None, typer.Option(help="Threads for latency measurement.")] = None,
) -> None:
    """Export, quantise, prune or distil a trained run; writes optimized/<method>/ and a trade-off table."""
    from shipyard.optimize import format_table, optimize_run  # lazy: pulls numpy, too slow for `shipyard --help`

    cfg: dict[str, Any] = {
        "methods": [m.strip() for m in methods.split(",") if m.strip()],
        "sparsity": sparsity,
        "structured": structured,
        "student": parse_students(student or []),
        "prune_finetune_epochs": finetune_epochs,
    }
    if distill_epochs:
        cfg["distill_epochs"] = distill_epochs
    if threads:
        cfg["threads"] = threads
    table = optimize_run(run, cfg)
    console.print(format_table(table), markup=False, highlight=False)
    console.print(f"trade-off table: {Path(run) / 'optimized' / 'optimize.json'}")
