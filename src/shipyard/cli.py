"""The `shipyard` command. Thin: each command parses its options and calls one public function.

A ShipyardError becomes one `error:` line and exit code 2; anything else is a bug, reported in one line with
exit code 1 (run with --debug for the traceback).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from shipyard.cli_support import STATE, _err, handle_errors
from shipyard.errors import ShipyardError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="shipyard: data -> model -> service.")
runs_app = typer.Typer(no_args_is_help=True, help="Browse the run store.")
app.add_typer(runs_app, name="runs")


def _register_serving() -> None:
    from shipyard.serve.cli import keys_app, serve_command

    app.command("serve")(serve_command)
    app.add_typer(keys_app, name="keys")
    from shipyard.responsible_cli import audit_app, data_app, explain_command

    app.add_typer(audit_app, name="audit")  # shipyard audit privacy RUN
    app.add_typer(data_app, name="data")  # shipyard data forget RUN --where "..."
    app.command("explain")(explain_command)  # shipyard explain RUN --input FILE


_register_serving()
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("shipyard")


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    STATE["debug"] = debug
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING),
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )
    logging.getLogger("shipyard").setLevel(logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING))
    # off a terminal the progress bar becomes INFO lines (training/progress.py): shown like the bar would be
    logging.getLogger("shipyard.training.progress").setLevel(logging.DEBUG if debug else logging.INFO)


def _load(config: Path) -> Any:
    from shipyard.config.schema import Job

    return Job.from_yaml(config)


def _print_metrics(result: Any) -> None:
    if not result.metrics:  # a torchrun rank other than 0: rank 0 prints the run's results
        return
    test = result.metrics.get("test", {})
    keys = [k for k in ("accuracy", "f1_macro", "log_loss", "roc_auc", "r2", "rmse", "mae") if k in test]
    shown = ", ".join(f"{k}={test[k]:.4f}" for k in keys)
    console.print(f"test: {shown}")
    for warning in result.metrics.get("warnings", []):  # e.g. a classifier stuck at the majority class
        console.print(f"WARNING: {warning}", style="bold yellow", markup=False, highlight=False)
    console.print(f"run folder: {result.run_dir}")
    if result.report:
        console.print(f"report: {result.report}")


@app.command()
@handle_errors
def train(
    config: Annotated[Path | None, typer.Argument(help="Job YAML file (with --resume: default the run's own).")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Run folder (default runs/<run-id>).")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue the run in this folder from its last checkpoint (the config must not differ)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train, evaluate and package a model described by CONFIG."""
    from shipyard.pipeline import load_run_job, run_job

    if config is not None:
        job, base = _load(config), config.resolve().parent
    elif resume is not None:
        job, base = load_run_job(resume)
    else:
        raise ShipyardError("give a job config file (or --resume RUN_DIR)", where="CONFIG")
    if resume is not None:
        result = run_job(job, base_dir=base, run_dir=resume, resume=True, show_progress=not quiet)
    else:
        result = run_job(job, base_dir=base, run_dir=run_dir, show_progress=not quiet)
    _print_metrics(result)


@app.command()
@handle_errors
def validate(config: Annotated[Path, typer.Argument(help="Job YAML file.")]) -> None:
    """Check CONFIG against the schema and report every problem at once."""
    from shipyard.config.loader import ConfigError

    try:
        _load(config)
    except ConfigError as exc:
        for problem in exc.problems:
            _err(f"error: {problem.render()}")
        _err(f"{len(exc.problems)} problem(s) in {config}")
        raise typer.Exit(2) from None
    from shipyard.data.target import check_target_sample

    checked = check_target_sample(_load(config), base_dir=config.resolve().parent)
    console.print(f"{config}: valid" + (f" ({checked})" if checked else ""))


@app.command()
@handle_errors
def init(
    data: Annotated[Path, typer.Option(help="Data file to infer the starter config from.")],
    target: Annotated[str, typer.Option(help="Target column.")],
    task: Annotated[
        str | None, typer.Option(help="classification or regression (default: inferred from the target).")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write here instead of printing.")] = None,
) -> None:
    """Write a starter job config inferred from a data file."""
    from shipyard.data.starter import starter_job
    from shipyard.io import atomic_write_text

    starter = starter_job(data, task, target)
    for note in starter.notes:  # on stderr, so `init > job.yaml` still writes clean YAML
        err_console.print(f"init: {note}", markup=False, highlight=False)
    text = starter.text
    if output is None:
        sys.stdout.write(text)
    else:
        if output.exists():
            raise ShipyardError("file exists; not overwriting", where=str(output))
        atomic_write_text(output, text)
        console.print(f"wrote {output}")


@app.command()
@handle_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder or model folder.")],
    data: Annotated[
        Path | None, typer.Option(help="Labelled data file (default: the run's stored test split).")
    ] = None,
) -> None:
    """Evaluate a saved model on labelled data."""
    from shipyard.evaluation.saved import evaluate_run

    metrics = evaluate_run(run, data)
    console.print_json(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, list | dict)}))


@app.command()
@handle_errors
def predict(
    run: Annotated[Path | None, typer.Argument(help="Run folder or model folder.")] = None,
    input: Annotated[Path, typer.Option("--input", help="CSV or JSONL rows to predict.")] = ...,  # type: ignore[assignment]
    output: Annotated[Path | None, typer.Option(help="Write predictions here (CSV or JSONL).")] = None,
    url: Annotated[str | None, typer.Option(help="Call a running shipyard server instead.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name on the server (with --url).")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="SHIPYARD_API_KEY", help="Bearer key (with --url).")] = None,
) -> None:
    """Predict with a saved model (or a running server) and write one row per input row."""
    from shipyard.inference import default_output_for, predict_file
    from shipyard.serve.client import predict_remote

    if output is None:  # never compute predictions only to drop them: write them next to the input
        output = default_output_for(input)
    if url:
        if not model:
            raise ShipyardError("--model is required with --url", where="--model")
        rows = predict_remote(url, model, input, output, api_key)
    else:
        if run is None:
            raise ShipyardError("give a run or model folder, or --url", where="RUN")
        rows = predict_file(run, input, output)
    console.print(f"{rows} predictions written to {output}")


@app.command()
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
    from shipyard.optimize import format_table, optimize_run

    student_cfg: dict[str, Any] = {}
    for item in student or []:
        key, _, value = item.partition("=")
        parts = [p for p in value.split(",") if p]
        student_cfg[key] = [int(p) for p in parts] if len(parts) > 1 or key in ("hidden", "channels") else int(value)
    cfg: dict[str, Any] = {
        "methods": [m.strip() for m in methods.split(",") if m.strip()],
        "sparsity": sparsity,
        "structured": structured,
        "student": student_cfg,
        "prune_finetune_epochs": finetune_epochs,
    }
    if distill_epochs:
        cfg["distill_epochs"] = distill_epochs
    if threads:
        cfg["threads"] = threads
    table = optimize_run(run, cfg)
    console.print(format_table(table), markup=False, highlight=False)
    console.print(f"trade-off table: {Path(run) / 'optimized' / 'optimize.json'}")


@app.command()
@handle_errors
def demo(
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train the built-in example: the MNIST CNN (scikit-learn's 8x8 digits when the shared data is absent)."""
    from shipyard.examples import demo_job
    from shipyard.pipeline import run_job

    job, base, label = demo_job()
    console.print(f"demo: {label}")
    result = run_job(job, base_dir=base, show_progress=not quiet)
    _print_metrics(result)


@runs_app.command("list")
@handle_errors
def runs_list(
    root: Annotated[Path, typer.Option(help="Runs root folder.")] = Path("runs"),
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """List recorded runs, newest first."""
    from shipyard.store.runs import RunStore, runs_plain, runs_table

    records = RunStore.for_root(root).list_runs(limit=limit)
    if console.is_terminal:
        console.print(runs_table(records))
    else:  # a pipe or a file: whole fields, tab-separated, never wrapped to the 80-column default
        typer.echo(runs_plain(records))


@runs_app.command("show")
@handle_errors
def runs_show(
    run: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    root: Annotated[Path, typer.Option(help="Runs root folder.")] = Path("runs"),
) -> None:
    """Show one run: config, metrics, status."""
    from shipyard.store.runs import RunStore, run_detail

    console.print(run_detail(RunStore.for_root(root).get(run)))


@runs_app.command("compare")
@handle_errors
def runs_compare(
    a: Annotated[str, typer.Argument()],
    b: Annotated[str, typer.Argument()],
    root: Annotated[Path, typer.Option(help="Runs root folder.")] = Path("runs"),
) -> None:
    """Compare two runs' configs and metrics."""
    from shipyard.store.runs import RunStore, compare_table

    console.print(compare_table(RunStore.for_root(root).compare(a, b)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
