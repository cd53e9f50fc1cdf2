"""Benchmark: `shipyard optimize` trade-offs on an MNIST CNN run and (when given) an SST-2 MiniLM run.

MNIST: trains `examples/mnist_cnn.yaml` through the pipeline unless `--mnist-run` names a finished run, then
measures fp32 ONNX, static int8, magnitude pruning, structured pruning and (optionally) a distilled student.
SST-2: with `--run RUN_DIR` (a finished transformer run) measures fp32 ONNX, dynamic int8 and a distilled
`--student-layers`-layer student. Prints each trade-off table and checks the issue's targets:

- SST-2 int8 ONNX: >= 3.9x smaller than the fp32 safetensors, batch-1 p50 >= 4x lower than torch fp32 eager,
  accuracy at most 0.5 points lower;
- SST-2 distilled 3-layer student: >= 1.8x faster than the teacher, accuracy at most 2 points lower;
- MNIST CNN static int8: accuracy at most 0.3 points lower.

    SHIPYARD_DATA_DIR=../shared/data .venv/bin/python bench/optimize.py [--run runs/sst2-minilm] [--mnist-run DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import shipyard
from shipyard.config.schema import Job
from shipyard.optimize import format_table, optimize_run

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench.optimize")


def _row(table: dict[str, Any], method: str) -> dict[str, Any] | None:
    return next((r for r in table["rows"] if r["method"] == method and r["status"] == "ok"), None)


def _check(name: str, ok: bool, detail: str) -> bool:
    print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {detail}")
    return ok


def _show(title: str, table: dict[str, Any]) -> None:
    print(f"\n=== {title} ({table['seconds']} s, {table['threads']} threads, {table['eval_rows']} rows) ===")
    print(format_table(table))


def mnist(args: argparse.Namespace) -> list[bool]:
    from shipyard.data.prepare import prepare_data

    run_dir = Path(args.mnist_run) if args.mnist_run else Path(args.out) / "mnist-cnn"
    if not (run_dir / "model" / "shipyard.json").is_file():
        job = Job.from_yaml(ROOT / "examples" / "mnist_cnn.yaml")
        if args.mnist_epochs:
            job.training.epochs = args.mnist_epochs  # a quicker run on a busy machine
        print(f"training {ROOT / 'examples/mnist_cnn.yaml'} -> {run_dir}")
        tick = time.perf_counter()
        result = shipyard.run(job, run_dir=run_dir)
        print(f"trained in {time.perf_counter() - tick:.0f} s, test accuracy {result.test['accuracy']:.4f}")
    job = Job.from_yaml(run_dir / "config.yaml")
    prepared = prepare_data(job, base_dir=ROOT / "examples")  # once, shared by every call below
    common = {
        "latency_repeats": args.repeats,
        "calibration_samples": args.calibration,
        "prune_finetune_epochs": args.finetune_epochs,
    }
    tables = {}
    tables["main"] = optimize_run(run_dir, {"methods": ["onnx", "int8", "prune"], **common}, prepared=prepared)
    _show("MNIST CNN: ONNX, static int8, magnitude pruning", tables["main"])
    tables["structured"] = optimize_run(
        run_dir, {"methods": ["prune"], "structured": True, "sparsity": args.sparsity, **common}, prepared=prepared
    )
    _show("MNIST CNN: structured channel pruning", tables["structured"])
    if args.mnist_distill_epochs:
        tables["distill"] = optimize_run(
            run_dir,
            {"methods": ["distill"], "distill_epochs": args.mnist_distill_epochs, **common},
            prepared=prepared,
        )
        _show("MNIST CNN: distilled student (half the channels)", tables["distill"])
    print("\nMNIST targets")
    int8 = _row(tables["main"], "int8")
    results = [
        _check(
            "static int8 loses <= 0.3 points",
            int8 is not None and int8["delta"] >= -0.003,
            "failed"
            if int8 is None
            else f"{100 * int8['delta']:+.2f} points, {int8['size_ratio']}x smaller, {int8['speedup_p50']}x faster p50",
        )
    ]
    _save(args, "mnist", tables)
    return results


def sst2(args: argparse.Namespace) -> list[bool]:
    if not args.run:
        print("\nSST-2: skipped (no --run given; train an SST-2 transformer run first and pass its folder)")
        return []
    run_dir = Path(args.run)
    common = (
        {"latency_repeats": args.repeats, "threads": args.threads}
        if args.threads
        else {"latency_repeats": args.repeats}
    )
    table = optimize_run(
        run_dir,
        {
            "methods": ["onnx", "int8", "distill"],
            "student": {"layers": args.student_layers},
            "distill_epochs": args.distill_epochs,
            **common,
        },
        base_dir=Path(args.base_dir) if args.base_dir else None,
    )
    _show(f"SST-2 transformer ({run_dir})", table)
    int8, student = _row(table, "int8"), _row(table, "distill")
    print("\nSST-2 targets")
    res = []
    if int8 is None:
        res.append(_check("int8", False, "the int8 row failed"))
    else:
        res.append(_check("int8 >= 3.9x smaller", int8["size_ratio"] >= 3.9, f"{int8['size_ratio']}x"))
        res.append(_check("int8 p50 >= 4x lower", int8["speedup_p50"] >= 4.0, f"{int8['speedup_p50']}x"))
        res.append(_check("int8 accuracy -0.5 points at most", int8["delta"] >= -0.005, f"{100 * int8['delta']:+.2f}"))
    if student is None:
        res.append(_check("distilled student", False, "the distill row failed"))
    else:
        res.append(_check("student >= 1.8x faster", student["speedup_p50"] >= 1.8, f"{student['speedup_p50']}x"))
        res.append(_check("student -2 points at most", student["delta"] >= -0.02, f"{100 * student['delta']:+.2f}"))
    _save(args, "sst2", {"main": table})
    return res


def _save(args: argparse.Namespace, name: str, tables: dict[str, Any]) -> None:
    path = Path(args.out) / f"bench_optimize_{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: {kk: vv for kk, vv in t.items() if kk != "section"} for k, t in tables.items()}
    path.write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")
    print(f"  tables saved to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a finished SST-2 transformer run folder (else the SST-2 part is skipped)")
    parser.add_argument("--base-dir", help="folder that relative data paths of --run's config are relative to")
    parser.add_argument("--mnist-run", help="a finished MNIST CNN run (else one is trained)")
    parser.add_argument("--skip-mnist", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-optimize"))
    parser.add_argument("--repeats", type=int, default=200, help="batch-1 latency calls per model")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--calibration", type=int, default=512, help="static int8 calibration rows")
    parser.add_argument("--sparsity", type=float, default=0.5, help="structured pruning fraction")
    parser.add_argument("--student-layers", type=int, default=3)
    parser.add_argument("--distill-epochs", type=int, default=2, help="SST-2 student epochs")
    parser.add_argument("--mnist-epochs", type=int, default=0, help="override the example's epochs (0: keep)")
    parser.add_argument("--finetune-epochs", type=int, default=1, help="fine-tune epochs after pruning")
    parser.add_argument("--mnist-distill-epochs", type=int, default=0, help="0 skips the MNIST student")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore")
    results = [] if args.skip_mnist else mnist(args)
    results += sst2(args)
    print(f"\n{sum(results)}/{len(results)} targets met")


if __name__ == "__main__":
    main()
