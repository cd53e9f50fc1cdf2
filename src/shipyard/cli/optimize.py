"""`shipyard optimize`: export, quantise, prune or distil a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli.errors import handle_errors
from shipyard.cli.output import console
from shipyard.errors import ShipyardError


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
    from shipyard.artifact_recommend import is_recommender  # lazy: pulls torch, too slow for `shipyard --help`
    from shipyard.optimize import format_table, optimize_run  # lazy: pulls numpy, too slow for `shipyard --help`

    # a recommender: the two-tower model's towers (optimize/recommend_onnx.py), not the predict trade-off table
    if is_recommender(run / "model" if (run / "model").is_dir() else run):
        _towers(run, methods, threads)
        return
    if _is_retrieval(run):  # a retrieval run: its search encoder, to ONNX (and int8), used by /search
        _search_encoder(run, methods, threads)
        return
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


def _towers(run: Path, methods: str, threads: int | None) -> None:
    """A two-tower recommender's towers to ONNX (and int8); MF/BPR are refused with the reason by export_towers."""
    from shipyard.optimize.recommend_onnx import export_towers

    chosen = {m.strip() for m in methods.split(",") if m.strip()}
    if not chosen <= {"onnx", "int8"}:
        raise ShipyardError(f"a recommender supports --methods onnx,int8, not {sorted(chosen)}", where="--methods")
    report = export_towers(run, int8="int8" in chosen, threads=threads or 1)
    console.print_json(data=report)
    console.print(f"towers: {Path(run) / 'optimized' / 'towers'}")


def _is_retrieval(run: Path) -> bool:
    import json

    meta = Path(run) / "model" / "shipyard.json"
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("task") == "retrieval"
    except (OSError, ValueError):
        return False  # optimize_run reports an unreadable run


def _search_encoder(run: Path, methods: str, threads: int | None) -> None:
    from shipyard.errors import ShipyardError
    from shipyard.optimize.search_encoder import export_search_encoder

    chosen = {m.strip() for m in methods.split(",") if m.strip()}
    if not chosen <= {"onnx", "int8"}:
        raise ShipyardError(
            f"a retrieval run's encoder is exported to ONNX (and int8) only, not {sorted(chosen - {'onnx', 'int8'})}",
            where="--methods",
        )
    record = export_search_encoder(run, int8="int8" in chosen, threads=threads or 2)
    for kind, row in record["files"].items():
        verdict = "passed" if row["ok"] else "failed: not served"
        console.print(
            f"{kind}: cosine with torch min {row['cosine_min']:.4f} mean {row['cosine_mean']:.5f}, same best passage "
            f"{row['same_best_passage']:.3f}, {row['bytes'] / 1e6:.1f} MB, {verdict}",
            markup=False,
            highlight=False,
        )
    console.print(f"search uses: {record['serve']} ({Path(run) / 'model' / 'onnx'})", markup=False, highlight=False)
