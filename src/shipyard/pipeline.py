"""One job, one direction of flow: config -> data -> model -> engine -> evaluation -> artifact -> report.

`run_job` is what `shipyard train` and `shipyard.run(job)` call. Bad input surfaces before the run folder is created,
so a rejected job leaves nothing behind.

Under ``torchrun`` every process runs this function on the same data and trains its shard of each batch
(training/distributed.py); rank 0 picks the run folder and is the only one to write in it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from shipyard import fitting  # what each model family asks of the data and which trainer fits it
from shipyard.artifact import save_torch_artifact
from shipyard.config.compare import config_differences
from shipyard.config.loader import ConfigError, load_job, parse_yaml, validate_dict
from shipyard.config.schema import Job, TrainingConfig
from shipyard.data.prepare import prepare_data
from shipyard.data.rows import read_options
from shipyard.data.split_files import image_split_frame, write_split
from shipyard.errors import ShipyardError
from shipyard.evaluation.abstain import abstain_metrics, calibrate, report_section
from shipyard.evaluation.baseline import baseline_check
from shipyard.evaluation.fairness import fairness_metrics
from shipyard.evaluation.metrics import compute_metrics
from shipyard.evaluation.run_report import write_run_report
from shipyard.io import (
    INCOMPLETE,
    RUN_INFO,
    atomic_write_json,
    atomic_write_text,
    recorded_base_dir,
    storage_error,
)
from shipyard.models.registry import get_family
from shipyard.run_folder import (  # re-exported: the run-folder helpers callers import from here
    RunResult,
    config_hash,
    dump_config,
    new_run_id,
    record_start,
    resolve_run_dir,
)
from shipyard.store.runs import RunStore
from shipyard.training.distributed import DistContext
from shipyard.training.engine import Engine, read_log, seed_everything
from shipyard.training.privacy import check_model, check_training_config, parse_privacy

log = logging.getLogger(__name__)

__all__ = ["RunResult", "config_hash", "dump_config", "load_run_job", "new_run_id", "resolve_run_dir", "run_job"]


def load_run_job(run_dir: Path) -> tuple[Job, Path]:
    """The job a run was started with (its own config.yaml) and the folder its relative data paths start from
    (recorded in run.json), so `train --resume RUN` rebuilds the same data without the original job file."""

    config = Path(run_dir) / "config.yaml"
    if not config.is_file():
        raise ShipyardError("the run folder has no config.yaml", where=str(run_dir), hint="pass the job's config file")
    return load_job(config), recorded_base_dir(run_dir)


def _check_resume_config(job: Job, run_dir: Path) -> None:
    """Resuming trains on from the run's checkpoint: a different split, seed, rate or model would silently mix
    two jobs (or fail on the weights' shapes), so any difference in what is learnt is refused."""

    config = run_dir / "config.yaml"
    if not config.is_file():
        return  # written before the first checkpoint; without it there is nothing to compare
    written, _ = parse_yaml(config.read_text(encoding="utf-8"), str(config))  # bounded, like any job file
    try:
        original = validate_dict(written, str(config)).model_dump(mode="json")
    except ConfigError:  # written by an older schema: compare what it says, as written
        original = written
    differences = config_differences(original, job.model_dump(mode="json"))
    if differences:
        raise ShipyardError(
            f"the config differs from the one the run started with ({'; '.join(differences)})",
            where=str(config),
            hint="resume with the run's own config (`shipyard train --resume RUN` alone uses it), or start a new run",
        )


def _store_for(run_dir: Path) -> RunStore:
    return RunStore.for_root(run_dir.parent)


def text_encoder_for(job: Job) -> Any:
    """Text families bring their own tokenizer (or a vocabulary to learn); the data layer plugs it into the
    preprocessor (fitting.py)."""
    return fitting.text_encoder_for(job)


def run_job(  # long: one job's steps in the order they run, read top to bottom
    job: Job,
    *,
    base_dir: Path | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
    callbacks: Any = (),
) -> RunResult:
    """Train, evaluate and package one job. With ``resume`` the run folder must hold a checkpoint.
    ``callbacks`` are extra training callbacks for the torch engine (a search's pruning, shipyard.tune)."""
    base_dir = Path(base_dir or Path.cwd())
    deadline = fitting.deadline_for(job)  # training.max_time counts from here
    if job.model is not None and job.model.type == "auto":  # candidates + an ensemble: shipyard/auto, above us
        raise ShipyardError(
            "a `model: {type: auto}` job runs through `shipyard train` or shipyard.run(job), not run_job",
            where="model.type",
            hint="or call shipyard.auto.run_auto(job, base_dir=..., run_dir=...)",
        )
    # responsible AI (training/privacy.py): the `privacy` section is validated before anything is read or written
    privacy = parse_privacy(job.privacy)
    dp_config = privacy.differential_privacy if privacy is not None else None
    ctx = DistContext.create(job.training.device, new_job=True)
    run_id, run_dir = _pick_run_dir(job, base_dir, run_dir, resume, ctx)

    if job.task == "retrieval":  # pairs, a bi-encoder and a passage index (pipeline_retrieval.py)
        return _run_retrieval(job, base_dir, run_id, run_dir, resume, show_progress)
    fitting.check_family(job, dp_config=dp_config, world_size=ctx.world_size)  # e.g. DP or torchrun on trees
    prepared = prepare_data(
        fitting.data_job(job),  # with the cleaning the family needs (trees: categories as codes)
        base_dir=base_dir,
        text_encoder=text_encoder_for(job),
        input_kinds=get_family(job.model.type).input_kinds,  # the data layer knows no model family
    )
    # every data error has surfaced by now, before any folder exists
    train, val = prepared.splits["train"], prepared.splits["validation"]
    target_scale = None
    if fitting.uses_target_scale(job):  # torch regressors learn a standardised target; trees its own units
        y = train.target.astype(np.float64)
        target_scale = (float(y.mean()), float(y.std() or 1.0))

    seed_everything(job.training.seed)  # weight initialisation is part of what the seed fixes
    model, data_params = fitting.build(job, prepared, target_scale)  # data_params: e.g. a vocabulary's size
    if dp_config is not None:  # DP-SGD: refuse BatchNorm etc. before the run folder exists
        check_training_config(job.training, dp_config, ctx.world_size)
        check_model(model, job.model.type)

    def make_engine(cfg: TrainingConfig) -> Engine:
        return Engine(
            cfg,
            job.task,
            labels=prepared.labels,
            augmentation=job.data.augmentation,
            target_scale=target_scale,
            show_progress=show_progress,
            privacy=dp_config,
            ctx=ctx,
            metrics_fn=compute_metrics,  # the full set: early stopping and soups may judge on any of them
            callbacks=callbacks,
        )

    engine = make_engine(job.training)
    ctx.barrier()  # every rank has checked the folder before rank 0 writes in it
    if not ctx.is_main:  # torchrun: train this rank's shards and leave the rest of the run to rank 0
        ctx.barrier()  # rank 0 has written the run folder's first files
        fit = fitting.fit(
            job, make_engine, engine, model, train, val, run_dir, resume, show_progress=show_progress,
            deadline=deadline,
        )  # fmt: skip
        ctx.close()
        return RunResult(run_id=run_id, run_dir=run_dir, metrics={}, fit=fit)

    _claim(run_dir, resume)
    store = _store_for(run_dir)
    chash = config_hash(job)
    if not resume:
        _write_first_files(job, run_id, run_dir, base_dir, prepared)
    ctx.barrier()
    record_start(store, job, run_id, run_dir, resume=resume)
    started = time.perf_counter()
    try:
        fit = fitting.fit(
            job, make_engine, engine, model, train, val, run_dir, resume, labels=prepared.labels,
            show_progress=show_progress, deadline=deadline,
        )  # fmt: skip
        ctx.close()  # the other ranks stop here; evaluation and packaging run once
        metrics, predictions, abstain = _measure(job, engine, model, prepared, fit)
        atomic_write_json(run_dir / "metrics.json", metrics)
        extra = {"run_id": run_id, "config_hash": chash} | ({"artifact_params": data_params} if data_params else {})
        _save_artifact(job, run_dir, model, prepared, metrics, target_scale, abstain, extra)
        report, optimized = _optimize_and_report(job, run_dir, prepared, metrics, predictions, abstain)
        (run_dir / INCOMPLETE).unlink()  # last: only now may the run's model be loaded and served
        store.finish_run(run_id, status="finished", metrics=metrics, duration_s=time.perf_counter() - started)
    except BaseException as exc:
        _record_failure(store, run_id, exc, started)
        raise
    result = RunResult(run_id=run_id, run_dir=run_dir, metrics=metrics, report=report, fit=fit)
    if optimized is not None:
        result.extras["optimize"] = {k: v for k, v in optimized.items() if k != "section"}
    return result


def _write_first_files(job: Job, run_id: str, run_dir: Path, base_dir: Path, prepared: Any) -> None:
    """What a new run folder holds before training: config.yaml, run.json, data_summary.json, splits/."""
    atomic_write_text(run_dir / "config.yaml", dump_config(job))
    # relative data paths resolve against the job file's folder, wherever a later command runs from
    atomic_write_json(run_dir / RUN_INFO, {"run_id": run_id, "base_dir": str(base_dir.resolve())})
    atomic_write_json(run_dir / "data_summary.json", prepared.summary)
    _save_splits(run_dir, prepared, job.data)


def _optimize_and_report(
    job: Job,
    run_dir: Path,
    prepared: Any,
    metrics: dict[str, Any],
    predictions: dict[str, Any],
    abstain: dict[str, Any] | None,
) -> tuple[Path, dict[str, Any] | None]:
    """The job's optimisations (if any) on the finished artifact, then report.html and model_card.md."""
    sections = []
    if abstain is not None:
        sections.append(report_section(abstain))
    optimized: dict[str, Any] | None = None
    if job.optimize:  # compression runs on the finished artifact; its table becomes a report section
        from shipyard.optimize import optimize_run  # imports onnx and onnxruntime: only for a job that asks

        optimized = optimize_run(run_dir, job.optimize, prepared=prepared, allow_incomplete=True)
        if optimized.get("section") is not None:
            sections.append(optimized["section"])
    train_log = read_log(run_dir / "train_log.jsonl")
    test = prepared.splits["test"]
    report = write_run_report(job, run_dir, metrics, prepared, train_log, predictions, test, sections)
    return report, optimized


def _pick_run_dir(job: Job, base_dir: Path, run_dir: Path | None, resume: bool, ctx: DistContext) -> tuple[str, Path]:
    """The run's id and folder: the given one to resume (its config must match), else a new, empty one."""
    if resume:
        if run_dir is None or not any((Path(run_dir) / d).is_dir() for d in ("checkpoints", "soup")):
            raise ShipyardError("nothing to resume: the folder has no checkpoints/ (or soup/)", where=str(run_dir))
        run_id, run_dir = Path(run_dir).name, Path(run_dir)
        _check_resume_config(job, run_dir)
    else:
        run_id, run_dir = ctx.broadcast(resolve_run_dir(job, base_dir, run_dir))  # one time stamp for all ranks
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ShipyardError(
                "run folder already exists and is not empty",
                where=str(run_dir),
                hint="pass --resume to continue it, or another --run-dir",
            )
    return run_id, run_dir


def _measure(
    job: Job, engine: Engine, model: Any, prepared: Any, fit: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """metrics.json's content (validation / test metrics, abstention, warnings, privacy spent, fairness, training
    figures), the raw outputs of each evaluated split, and the abstention result."""
    val, test = prepared.splits["validation"], prepared.splits["test"]
    metrics: dict[str, Any] = {}
    predictions: dict[str, Any] = {}
    for name, split in (("validation", val), ("test", test)):
        if len(split.target) == 0:
            continue
        outputs = engine.predict(model, split.inputs)
        metrics[name] = compute_metrics(job.task, split.target, outputs, prepared.labels)
        predictions[name] = outputs
    abstain = _abstain(job, prepared.labels, val, test, predictions)  # out-of-scope rejection (#12)
    if abstain is not None:
        metrics["abstain"] = abstain
    metrics.update(baseline_check(job.task, metrics))  # "warnings": a classifier stuck at the majority class
    if fit.privacy is not None:  # DP-SGD accounting: epsilon / delta spent (training/privacy.py)
        metrics["privacy"] = fit.privacy
    if job.evaluation.sensitive_features:  # group fairness + post-processing (evaluation/fairness.py)
        fairness = fairness_metrics(job, prepared, predictions)
        if fairness:
            metrics["fairness"] = fairness
    metrics["training"] = fit.summary()
    return metrics, predictions, abstain


def _save_artifact(
    job: Job,
    run_dir: Path,
    model: Any,
    prepared: Any,
    metrics: dict[str, Any],
    target_scale: tuple[float, float] | None,
    abstain: dict[str, Any] | None,
    extra: dict[str, Any],
) -> None:
    save_torch_artifact(
        run_dir / "model",
        model=model,
        preprocessor=prepared.preprocessor,
        task=job.task,
        model_type=job.model.type,
        model_params=job.model.params(),
        input_spec=prepared.input_spec,
        features=[{"name": k, "type": v} for k, v in prepared.column_types.items() if k != job.data.target],
        target=job.data.target,
        labels=prepared.labels,
        target_scale=target_scale,
        metrics={k: v for k, v in metrics.items() if k in ("validation", "test")},
        extra=extra
        | {"read_options": read_options(job.data)}
        | ({"abstain": {k: abstain[k] for k in ("threshold", "label")}} if abstain else {}),
    )


def _record_failure(store: RunStore, run_id: str, exc: BaseException, started: float) -> None:
    """Mark the run failed (or killed) in the store; a full disk or read-only folder is raised as the error it is
    (the caller re-raises anything else)."""
    status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
    reported = storage_error(exc)  # a full disk or a read-only folder is an error to report, not a bug
    try:
        store.finish_run(
            run_id,
            status=status,
            metrics={},
            duration_s=time.perf_counter() - started,
            error=str(reported or exc)[:500],
        )
    except ShipyardError:  # never let book-keeping hide the real failure (the store may be on the full disk)
        log.warning("could not record the failed run in the store")
    if reported is not None:
        raise reported from exc


def _run_retrieval(
    job: Job, base_dir: Path, run_id: str, run_dir: Path, resume: bool, show_progress: bool
) -> RunResult:
    from shipyard.pipeline_retrieval import run_retrieval_job

    metrics, report, fit = run_retrieval_job(
        job,
        base_dir=base_dir,
        run_id=run_id,
        run_dir=run_dir,
        resume=resume,
        show_progress=show_progress,
        claim=_claim,
        store=_store_for,
        config_text=dump_config(job),
    )
    return RunResult(run_id=run_id, run_dir=run_dir, metrics=metrics, report=report, fit=fit)


def _claim(run_dir: Path, resume: bool) -> None:
    """Create the run folder and its ``.incomplete`` marker (removed once report and model card are written).

    The marker is created exclusively, so a second job aimed at the same folder fails here instead of writing
    into the first one's run; loaders refuse a run that still has it (artifact.refuse_incomplete).
    """
    marker = run_dir / INCOMPLETE
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            marker.touch()
        else:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        raise ShipyardError(
            "another job is already writing in this run folder",
            where=str(run_dir),
            hint="give each job its own --run-dir",
        ) from None
    except OSError as exc:
        raise (storage_error(exc, run_dir) or exc) from exc


def _abstain(job: Job, labels: Any, val: Any, test: Any, predictions: dict[str, Any]) -> dict[str, Any] | None:
    """Calibrate the rejection threshold on validation and score it on both splits (evaluation/abstain.py)."""
    cfg = job.evaluation.abstain
    if cfg is None:
        return None
    validation = (val.target, predictions["validation"]) if "validation" in predictions else None
    threshold = calibrate(cfg, labels, validation)
    result: dict[str, Any] = {
        "threshold": threshold,
        "label": cfg.label,
        "fixed": cfg.threshold is not None,
        "target_precision": cfg.target_precision,
    }
    for name, split in (("validation", val), ("test", test)):
        if name in predictions:
            result[name] = abstain_metrics(split.target, predictions[name], labels, threshold, cfg.label)
    return result


def _save_splits(run_dir: Path, prepared: Any, data: Any) -> None:
    """Every split is kept (tabular and text as Parquet, images as safetensors: data/split_files.py), so
    `evaluate`, `optimize`, `audit` and erasure requests read the run folder, never the job's sources again."""
    images = "image" in prepared.column_types.values()
    for name, split in prepared.splits.items():
        frame = split.frame
        if frame is None or len(frame) == 0:
            continue
        if images:  # image rows get keys (their position in their source) so an erasure request can reach them
            given = {"validation": data.validation_source, "test": data.test_source}.get(name)
            stored = image_split_frame(frame, f"{name}_source" if given is not None else "source")
            write_split(run_dir / "splits" / f"{name}.safetensors", stored)
        else:
            write_split(run_dir / "splits" / f"{name}.parquet", frame)  # raw rows: 0600
