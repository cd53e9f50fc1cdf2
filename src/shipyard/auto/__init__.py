"""``model: {type: auto, time_budget: 10m}``: candidates under a time budget, then one ensemble artifact.

:func:`run_auto` is what `shipyard train` and ``shipyard.run`` run for such a job (it sits above the pipeline);
the steps are in ``candidates`` (what to try, each candidate a ``shipyard train`` process with the time left as
its limit) and ``package`` (greedy ensemble selection, the model folder, the leaderboard). The run folder is a
run like any other: ``config.yaml``, ``data_summary.json``, ``splits/``, ``metrics.json`` (with ``auto``: the
leaderboard and the ensemble), ``model/``, ``report.html``, ``model_card.md``, plus ``candidates/<name>/`` (each
candidate's own run).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.config.schema import Job
from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)

__all__ = ["run_auto"]


def _refuse(job: Job) -> None:
    if job.privacy is not None:
        raise ShipyardError(
            "model type auto trains many models; a privacy budget would be spent once per candidate",
            where="privacy",
            hint="train one model type (linear or mlp) with the privacy section",
        )
    if job.training.soup is not None:
        raise ShipyardError("training.soup does not apply to model type auto (it ensembles already)", where="training")


def _prepare(job: Job, base_dir: Path) -> tuple[str, Any]:
    """The input kind and the data prepared as the first candidate's job would (summary, splits, labels)."""
    from shipyard import fitting
    from shipyard.auto.candidates import candidate_job, candidate_plan, input_kind
    from shipyard.data.prepare import prepare_data

    kind = input_kind(job, base_dir)
    first = None
    for _, model, training in candidate_plan(job, kind):  # the first candidate that is a valid job
        try:
            first = Job.model_validate(candidate_job(job, model, training, base_dir))
            break
        except ValueError:  # pydantic's ValidationError: this candidate fails later, with its reason
            continue
    if first is None:
        raise ShipyardError("no candidate of model type auto is a valid model section", where="model.candidates")
    prepared = prepare_data(
        fitting.data_job(first),
        base_dir=base_dir,
        text_encoder=fitting.text_encoder_for(first),
        input_kinds=fitting.family_of(first).input_kinds,
    )
    return kind, prepared


def _pool(job: Job, kind: str, prepared: Any, folder: Path) -> Any:
    """The pooled, folded rows bagged candidates train on (tabular data, ``bag_folds`` >= 2), or None. Not with
    ``prefer: speed``: a bag is k models, and that asks for one."""
    if kind != "tabular" or job.model.bag_folds < 2 or job.model.prefer == "speed":
        return None
    from shipyard.auto.bag import make_pool

    return make_pool(prepared, job.model.bag_folds, job.task, job.training.seed, folder)


def _common_rows(scored: list, prepared: Any, pool: Any) -> tuple[list, dict[str, np.ndarray]]:
    """The candidates the ensemble may mix and the targets of the rows it is chosen and scored on. Bagged: the
    candidates with the most finished folds (all k, unless the budget stopped every bag early) and the pooled
    rows those folds cover; a bag with fewer folds stays on the leaderboard, out of the ensemble."""
    val = prepared.splits["validation"].target
    if pool is None or not scored:
        return scored, {"validation": val}
    m = max(row["folds"] for row, _, _ in scored)
    for row, _, _ in scored:
        if row["folds"] < m:
            row["reason"] = f"{row['folds']} of {pool.k} folds, fewer than the other candidates: not ensembled"
    return [s for s in scored if s[0]["folds"] == m], pool.targets(m)


def _metrics(
    job: Job, prepared: Any, combined: dict[str, np.ndarray], val_target: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validation (out-of-fold when bagged) and test metrics of the ensemble, and its outputs per split."""
    from shipyard.evaluation.metrics import compute_metrics

    metrics: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for split, values in combined.items():
        out = (np.log(np.clip(values, 1e-30, None)) if job.task == "classification" else values).astype(np.float32)
        target = val_target if split == "validation" else prepared.splits[split].target
        metrics[split] = compute_metrics(job.task, target, out, prepared.labels)
        if len(target) == len(prepared.splits[split].target):  # a partial bag's rows are not the split's rows
            outputs[split] = out
    return metrics, outputs


def run_auto(  # long: the run's steps in order, one try block so a failure is recorded
    job: Job,
    *,
    base_dir: Path | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
) -> Any:
    """Run an auto job into its run folder; returns the run's ``RunResult`` (``pipeline.run_job``'s signature, so
    `shipyard train` and ``shipyard.run`` call either)."""
    from shipyard import pipeline
    from shipyard.auto import candidates, package
    from shipyard.evaluation.run_report import write_run_report
    from shipyard.io import INCOMPLETE, atomic_write_json
    from shipyard.run_folder import RunResult, record_start, resolve_run_dir

    if resume:
        raise ShipyardError(
            "a `model: {type: auto}` run cannot be resumed",
            where=str(run_dir),
            hint="start it again: each candidate is a complete run of its own",
        )
    base_dir = Path(base_dir or Path.cwd())
    run_dir = Path(run_dir) if run_dir is not None else None
    started = time.monotonic()
    budget = float(job.model.seconds)
    _refuse(job)
    kind, prepared = _prepare(job, base_dir)
    run_id, run_dir = resolve_run_dir(job, base_dir, run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ShipyardError("run folder already exists and is not empty", where=str(run_dir))
    pipeline._claim(run_dir, False)  # the same run folder as any job: .incomplete until the report is written
    pipeline._write_first_files(job, run_id, run_dir, base_dir, prepared)
    store = pipeline._store_for(run_dir)
    record_start(store, job, run_id, run_dir, resume=False)
    try:
        deadline = started + budget - candidates.reserve_seconds(budget)
        pool = _pool(job, kind, prepared, run_dir / "candidates" / "_pool")
        rows = candidates.run_candidates(job, kind, base_dir, run_dir / "candidates", deadline, pool)
        scored = candidates.score_candidates(rows, prepared, job.task, pool)
        candidates.drop_row_copies(rows, pool)  # the run's own splits/ are the one copy erasure requests reach
        scored, targets = _common_rows(scored, prepared, pool)
        weights = package.choose(scored, targets, job.task, job.model.ensemble_size, job.model.prefer)
        for (row, _, _), w in zip(scored, weights, strict=True):
            row["weight"] = round(w, 4)
        combined = package.combine_splits(scored, weights)
        metrics, outputs = _metrics(job, prepared, combined, targets["validation"])
        summary = candidates.budget_status(started, budget)
        metrics["auto"] = {"kind": kind, "leaderboard": rows, **summary}
        extra = {"params": job.model.params(), "leaderboard": [_brief(r) for r in rows]}
        package.write_model(run_dir / "model", scored, weights, extra)
        metrics["auto"].update(candidates.budget_status(started, budget))
        atomic_write_json(run_dir / "metrics.json", metrics)
        section = package.leaderboard_section(rows, metrics["auto"])
        test = prepared.splits["test"]
        report = write_run_report(job, run_dir, metrics, prepared, [], outputs, test, [section])
        (run_dir / INCOMPLETE).unlink()  # last: only now may the run's model be loaded and served
        store.finish_run(run_id, status="finished", metrics=metrics, duration_s=time.monotonic() - started)
    except BaseException as exc:
        shutil.rmtree(run_dir / "candidates" / "_pool", ignore_errors=True)  # pooled rows: splits/ has them
        store.finish_run(
            run_id, status="failed", metrics={}, duration_s=time.monotonic() - started, error=str(exc)[:500]
        )
        raise
    log.info("auto: finished in %.1fs of a %.0fs budget", time.monotonic() - started, budget)
    return RunResult(run_id=run_id, run_dir=run_dir, metrics=metrics, report=report)


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in ("candidate", "status", "validation", "test", "weight")}
