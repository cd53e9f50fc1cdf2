"""`shipyard tune JOB.yaml --trials N [--timeout S] [--storage URL]`: hyper-parameter search with Optuna.

The job's ``search:`` section names the ranges (config/search.py). Each trial is the job with drawn values, run
as a whole run (its own folder ``<runs_root>/<study>/trial-<n>/``, recorded in the run store like any run); its
score is the validation metric. Optuna's TPE sampler proposes the values and the median pruner stops a trial whose
per-epoch validation score trails the median of earlier trials at the same epoch (a training callback reads each
epoch's score; the stopped run finishes early and is recorded, the trial counts as pruned). Tree models train in
one boosting pass and are not pruned.

The study lives in the run store's SQLite file (``<runs_root>/<study>/shipyard.db``) unless ``--storage`` names
any database Optuna supports, so several workers, on one machine or several, share one study: each runs
``shipyard tune`` with the same job, study name and storage. When the search ends the best trial's job is written
to ``best.yaml`` and the search report (history, parameter importance, every trial) to ``tune_report.html``.
"""

from __future__ import annotations

import copy
import html
import logging
import time
from pathlib import Path
from typing import Any

import yaml

from shipyard.config.schema import Job
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_text
from shipyard.training.callbacks import Callback

log = logging.getLogger(__name__)

LOWER_IS_BETTER = ("loss", "log_loss", "mse", "rmse", "mae")


class PruneOnEpoch(Callback):
    """Reports each epoch's validation score to the trial; stops the fit when the pruner says so."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.pruned_at: int | None = None

    def on_epoch_end(self, fit: Any, entry: dict[str, Any]) -> None:
        value = entry.get(f"val_{self.metric}")
        if not isinstance(value, int | float):
            return
        self.trial.report(float(value), int(entry["epoch"]))
        if self.trial.should_prune():
            self.pruned_at = int(entry["epoch"])
            fit.state.stopped_early = True


def metric_and_direction(job: Job) -> tuple[str, str]:
    search = job.search
    assert search is not None
    metric = search.metric or ("accuracy" if job.task == "classification" else "r2")
    direction = search.direction
    if direction == "auto":
        direction = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    return metric, direction


def apply_changes(job: Job, changes: dict[str, Any]) -> Job:
    """The job with each dotted path set to its value, validated (and without its search section)."""
    raw = job.model_dump(mode="json")
    raw.pop("search", None)
    for path, value in changes.items():
        node = raw
        *parents, last = path.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[last] = value
    try:
        return Job.model_validate(raw)
    except ValueError as exc:
        raise ShipyardError(f"a searched value makes the job invalid: {exc}", where="search.params") from None


def suggest(trial: Any, path: str, spec: Any) -> Any:
    if spec.choices is not None:
        # Optuna stores choices as they are only for plain values; lists (an MLP's hidden sizes) by position
        plain = all(isinstance(c, str | int | float | bool) or c is None for c in spec.choices)
        if plain:
            return trial.suggest_categorical(path, spec.choices)
        return copy.deepcopy(spec.choices[trial.suggest_categorical(path, list(range(len(spec.choices))))])
    if spec.type == "int":
        return trial.suggest_int(path, int(spec.low), int(spec.high), log=spec.log)
    return trial.suggest_float(path, float(spec.low), float(spec.high), log=spec.log)


def default_storage(runs_root: Path, study: str) -> str:
    """The run store's SQLite file for the study's runs (created first by the store, so it gets its 0600 mode)."""
    from shipyard.store.runs import RunStore

    folder = runs_root / study
    folder.mkdir(parents=True, exist_ok=True)
    RunStore.for_root(folder)
    return f"sqlite:///{(folder / 'shipyard.db').resolve()}"


def tune(
    job_file: Path,
    *,
    trials: int,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    runs_root: Path | None = None,
) -> dict[str, Any]:
    """Run ``trials`` trials of the job's search (this worker's share of the study); returns the summary."""
    import optuna

    from shipyard.pipeline import run_job

    job = Job.from_yaml(job_file)
    if job.search is None:
        raise ShipyardError("the job has no `search:` section to tune", where=str(job_file),
                            hint="add e.g. `search: {params: {training.learning_rate: {low: 0.0001, high: 0.01, "
                            "log: true}}}`")  # fmt: skip
    if job.model.type == "auto":
        raise ShipyardError("model type auto searches by itself; tune one model type", where="model.type")
    metric, direction = metric_and_direction(job)
    base_dir = job.base_dir or Path.cwd()
    root = Path(runs_root) if runs_root else Path(job.output.runs_root)
    root = root if root.is_absolute() else base_dir / root
    name = study_name or job.name or Path(job_file).stem
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner: Any = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if job.search.pruner == "none":
        pruner = optuna.pruners.NopPruner()
    study = _open_study(
        optuna,
        study_name=name,
        storage=storage or default_storage(root, name),
        direction=direction,
        sampler=optuna.samplers.TPESampler(n_startup_trials=min(5, max(trials // 2, 1))),
        pruner=pruner,
    )

    def objective(trial: Any) -> float:
        changes = {path: suggest(trial, path, spec) for path, spec in job.search.params.items()}
        trial_job = apply_changes(job, changes)
        prune = PruneOnEpoch(trial, metric)
        run_dir = root / name / f"trial-{trial.number:04d}"
        result = run_job(trial_job, base_dir=base_dir, run_dir=run_dir, show_progress=False, callbacks=[prune])
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("run_id", result.run_id)
        if prune.pruned_at is not None:
            trial.set_user_attr("pruned_at_epoch", prune.pruned_at)
            raise optuna.TrialPruned()
        value = result.metrics.get("validation", {}).get(metric)
        if not isinstance(value, int | float):
            raise ShipyardError(f"the run has no validation {metric} to optimise", where="search.metric")
        return float(value)

    study.optimize(objective, n_trials=trials, timeout=timeout, catch=(ShipyardError,))
    return finish(study, job, root / name, metric)


def _open_study(optuna: Any, **options: Any) -> Any:
    """Create the study or join it. Workers that start together on a new database race to create its tables and
    the study; the loser sees a database error and simply tries again (then finds them)."""
    for attempt in range(6):
        try:
            return optuna.create_study(load_if_exists=True, **options)
        except Exception as exc:  # SQLAlchemy's IntegrityError / OperationalError, optuna's DuplicatedStudyError
            if attempt == 5:
                raise ShipyardError(f"cannot open the study: {exc}", where="--storage") from None
            log.info("study storage busy (%s); retrying", type(exc).__name__)
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def finish(study: Any, job: Job, folder: Path, metric: str) -> dict[str, Any]:
    """best.yaml (the best trial's job) and tune_report.html; returns the summary."""
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    summary: dict[str, Any] = {
        "study": study.study_name,
        "metric": metric,
        "trials": len(study.trials),
        "complete": len(done),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        "failed": sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials),
    }
    if done:
        best = study.best_trial
        best_job = apply_changes(job, _values(job, best.params))
        best_raw = best_job.model_dump(mode="json", exclude={"search"})  # a job to train, not to search again
        atomic_write_text(folder / "best.yaml", yaml.safe_dump(best_raw, sort_keys=False))
        summary.update(best_value=best.value, best_params=best.params, best_run=best.user_attrs.get("run_dir"))
        summary["best_job"] = str(folder / "best.yaml")
    summary["report"] = str(write_report(study, folder, metric))
    return summary


def _values(job: Job, params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's stored params back to job values (list choices were stored by position)."""
    assert job.search is not None
    out = {}
    for path, value in params.items():
        spec = job.search.params[path]
        plain = spec.choices is None or all(isinstance(c, str | int | float | bool) or c is None for c in spec.choices)
        out[path] = value if plain else copy.deepcopy(spec.choices[int(value)])
    return out


def write_report(study: Any, folder: Path, metric: str) -> Path:
    """History, parameter importance (when two or more trials completed) and the trials table, as one page."""
    import warnings

    import optuna
    from optuna.visualization import matplotlib as ovm

    from shipyard.evaluation.report import figure_to_img_tag, table_html

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the matplotlib plots
    parts = [f"<h1>Search {html.escape(study.study_name)}</h1><p>Validation {html.escape(metric)} per trial.</p>"]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if done:
        ax = ovm.plot_optimization_history(study)
        parts.append("<h2>History</h2>" + figure_to_img_tag(ax.figure, alt="optimisation history"))
    if len(done) >= 2 and len(done[0].params) >= 1:
        try:
            ax = ovm.plot_param_importances(study)
            parts.append("<h2>Parameter importance</h2>" + figure_to_img_tag(ax.figure, alt="parameter importance"))
        except (ValueError, RuntimeError) as exc:  # e.g. every completed trial drew the same values
            parts.append(f"<p>Parameter importance unavailable: {html.escape(str(exc))}</p>")
    rows = [
        {
            "trial": t.number,
            "state": t.state.name.lower(),
            metric: t.value,
            **t.params,
            "run": t.user_attrs.get("run_dir", ""),
        }
        for t in study.trials
    ]
    parts.append("<h2>Trials</h2>" + table_html(rows))
    page = "<!doctype html><meta charset='utf-8'><title>shipyard tune</title>" + "".join(parts)
    return atomic_write_text(folder / "tune_report.html", page)
