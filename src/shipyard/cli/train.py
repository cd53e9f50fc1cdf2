"""`shipyard train`, `validate`, `init` and `demo`: from a data file or a job config to a trained run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli.errors import handle_errors, print_config_problems, print_error
from shipyard.cli.output import console, err_console
from shipyard.config.loader import ConfigError
from shipyard.config.schema import Job
from shipyard.errors import ShipyardError
from shipyard.examples import demo_job
from shipyard.io import atomic_write_text


def print_metrics(result: Any) -> None:
    """A finished run's test metrics, its warnings and where it lies."""
    if not result.metrics:  # a torchrun rank other than 0: rank 0 prints the run's results
        return
    test = result.metrics.get("test", {})
    keys = ("accuracy", "f1_macro", "log_loss", "roc_auc", "r2", "rmse", "mae", "hr@10", "ndcg@10", "recall@10")
    keys = [k for k in keys if k in test]
    shown = ", ".join(f"{k}={test[k]:.4f}" for k in keys)
    console.print(f"test: {shown}")
    for warning in result.metrics.get("warnings", []):  # e.g. a classifier stuck at the majority class
        console.print(f"WARNING: {warning}", style="bold yellow", markup=False, highlight=False)
    console.print(f"run folder: {result.run_dir}")
    if result.report:
        console.print(f"report: {result.report}")


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
    from shipyard.pipeline import load_run_job, run_job  # lazy: pulls numpy, too slow for `shipyard --help`

    if config is not None:
        job, base = Job.from_yaml(config), config.resolve().parent
    elif resume is not None:
        job, base = load_run_job(resume)
    else:
        raise ShipyardError("give a job config file (or --resume RUN_DIR)", where="CONFIG")
    if job.task == "recommendation":  # its own data, models and metrics, same run folder (pipeline_recommend.py)
        from shipyard.pipeline_recommend import run_recommendation_job as run_job
    elif job.model is not None and job.model.type == "auto":  # candidate runs, then one ensemble (shipyard/auto)
        from shipyard.auto import run_auto as run_job
    if resume is not None:
        result = run_job(job, base_dir=base, run_dir=resume, resume=True, show_progress=not quiet)
    else:
        result = run_job(job, base_dir=base, run_dir=run_dir, show_progress=not quiet)
    print_metrics(result)


@handle_errors
def validate(config: Annotated[Path, typer.Argument(help="Job YAML file.")]) -> None:
    """Check CONFIG against the schema and report every problem at once."""
    try:
        job = Job.from_yaml(config)
    except ConfigError as exc:
        print_config_problems(exc)
        print_error(f"{len(exc.problems)} problem(s) in {config}")
        raise typer.Exit(2) from None
    from shipyard.data.target import check_target_sample  # lazy: pulls pandas, too slow for `shipyard --help`

    checked = None if job.recommend else check_target_sample(job, base_dir=config.resolve().parent)
    console.print(f"{config}: valid" + (f" ({checked})" if checked else ""))


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
    from shipyard.data.starter import starter_job  # lazy: pulls pandas, too slow for `shipyard --help`

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


@handle_errors
def demo(
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train the built-in example: the MNIST CNN (scikit-learn's 8x8 digits when the shared data is absent)."""
    from shipyard.pipeline import run_job  # lazy: pulls numpy, too slow for `shipyard --help`

    job, base, label = demo_job()
    console.print(f"demo: {label}")
    result = run_job(job, base_dir=base, show_progress=not quiet)
    print_metrics(result)
