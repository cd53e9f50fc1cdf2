"""A bagged candidate of ``model: {type: auto}``: one model per fold, in one process, without a report.

The auto run pools its train and validation rows (``pool.parquet``) and deals them into k folds (``folds.npy``:
each pooled row's fold). For fold i this process trains the candidate's job on the other k-1 folds, early-stopping
on fold i, and saves the model as an artifact in ``fold<i>/model/``. The auto run then predicts each fold's rows
with the model that did not see them (out-of-fold predictions, the ensemble selection's rows) and the test rows
with the average of all k (AutoGluon's bagging). Each fold is the job's own training (``fitting``), but the run
folder's report, model card and SHAP summary are left out: they would cost more than the fit, k times, and the
auto run reports on the whole.

    python -m shipyard.auto.bag CANDIDATE.yaml POOL_FOLDER OUT_FOLDER   # POOL_FOLDER: pool.parquet, folds.npy

The fold files (``fold<i>/train.parquet``, ``validation.parquet``) are removed once the fold is trained, so the
rows live in the auto run's ``splits/`` (and the pool, removed when the run is scored).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.schema import Job
from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)

POOL, FOLDS, DONE = "pool.parquet", "folds.npy", "done"  # DONE: the fold's model folder is complete


@dataclass
class Pool:
    """The auto run's train + validation rows (train first), their targets and each row's fold."""

    folder: Path
    frame: pd.DataFrame
    target: np.ndarray
    folds: np.ndarray
    n_train: int  # the pool's first n_train rows are the run's train split, the rest its validation split

    @property
    def k(self) -> int:
        return int(self.folds.max()) + 1

    def covered(self, m: int) -> np.ndarray:
        """The pooled rows that have an out-of-fold prediction when only the first ``m`` fold models exist (a
        bag stopped at the time budget)."""
        return self.folds < m

    def targets(self, m: int) -> dict[str, np.ndarray]:
        """The targets of the covered pooled rows and of the covered validation rows."""
        mask = self.covered(m)
        return {"pool": self.target[mask], "validation": self.target[self.n_train :][mask[self.n_train :]]}


def folds_done(folder: Path, k: int) -> int:
    """How many fold models, from fold 0 on, were trained and saved (a bag stopped at the budget keeps these)."""
    m = 0
    while m < k and (folder / f"fold{m}" / DONE).exists():
        m += 1
    return m


def make_pool(prepared: Any, k: int, task: str, seed: int, folder: Path) -> Pool | None:
    """Pool the run's train and validation rows and deal them into ``k`` folds (stratified for classes); written
    for the bag processes. None when there are too few rows to bag (or a class has fewer than ``k``)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    from shipyard.data.split_files import write_split

    train, val = prepared.splits["train"], prepared.splits["validation"]
    if train.frame is None or val.frame is None or len(val.target) == 0:
        return None
    frame = pd.concat([train.frame, val.frame], ignore_index=True)
    target = np.concatenate([train.target, val.target])
    if len(frame) < 10 * k:
        return None
    folds = np.empty(len(frame), dtype=np.int64)
    stratify = task == "classification"
    if stratify:
        counts = np.bincount(target.astype(np.int64))
        if counts[counts > 0].min() < k:  # a fold would train without a class: the plain split instead
            log.info("auto: a class has fewer than %d rows; candidates are not bagged", k)
            return None
    splitter = (StratifiedKFold if stratify else KFold)(k, shuffle=True, random_state=seed)
    for i, (_, held) in enumerate(splitter.split(np.zeros(len(frame)), target if stratify else None)):
        folds[held] = i
    folder.mkdir(parents=True, exist_ok=True)
    write_split(folder / POOL, frame)
    np.save(folder / FOLDS, folds)
    return Pool(folder, frame, target, folds, len(train.target))


def bag_predictions(models: list[Any], pool: Pool, test: pd.DataFrame | None, align: Any) -> dict[str, np.ndarray]:
    """Out-of-fold predictions for the covered pooled rows (each from the fold model that did not see it: all
    rows once every fold model exists), the covered validation rows' share of them, and the test rows' average
    over the fold models. ``align`` turns an artifact's ``predict_frame`` output into probabilities in the run's
    label order (or values)."""
    oof: np.ndarray | None = None
    out: dict[str, np.ndarray] = {}
    for i, art in enumerate(models):
        rows = np.flatnonzero(pool.folds == i)
        pred = align(art.predict_frame(pool.frame.iloc[rows]), art)
        if oof is None:
            oof = np.zeros((len(pool.frame), *pred.shape[1:]), dtype=np.float64)
        oof[rows] = pred
        if test is not None and len(test):
            part = align(art.predict_frame(test), art) / len(models)
            out["test"] = part if "test" not in out else out["test"] + part
    assert oof is not None
    mask = pool.covered(len(models))
    out["pool"], out["validation"] = oof[mask], oof[pool.n_train :][mask[pool.n_train :]]
    return out


def fold_job(raw: dict[str, Any], folder: Path) -> Job:
    """The candidate's job reading one fold's files: train on the rest, early-stop on the fold, no test rows."""
    data = dict(raw["data"])
    data["source"] = {"path": str(folder / "train.parquet"), "format": "parquet"}
    data["validation_source"] = {"path": str(folder / "validation.parquet"), "format": "parquet"}
    data["test_source"] = None
    data["split"] = {**data.get("split", {}), "method": "random", "validation": 0.0, "test": 0.0}
    return Job.model_validate({**raw, "data": data})


def train_fold(job: Job, run_dir: Path) -> Path:
    """Train ``job`` into ``run_dir`` (its ``model/`` artifact and training log); returns the model folder."""
    from shipyard import fitting, pipeline
    from shipyard.data.prepare import prepare_data
    from shipyard.evaluation.metrics import compute_metrics
    from shipyard.training.distributed import DistContext
    from shipyard.training.engine import Engine, seed_everything

    prepared = prepare_data(
        fitting.data_job(job),
        base_dir=run_dir,
        text_encoder=fitting.text_encoder_for(job),
        input_kinds=fitting.family_of(job).input_kinds,
    )
    train, val = prepared.splits["train"], prepared.splits["validation"]
    target_scale = None
    if fitting.uses_target_scale(job):  # as run_job: torch regressors learn a standardised target
        y = train.target.astype(np.float64)
        target_scale = (float(y.mean()), float(y.std() or 1.0))
    seed_everything(job.training.seed)
    model, data_params = fitting.build(job, prepared, target_scale)
    ctx = DistContext.create(job.training.device, new_job=True)

    def make_engine(cfg: Any) -> Engine:
        return Engine(
            cfg, job.task, labels=prepared.labels, augmentation=job.data.augmentation, target_scale=target_scale,
            show_progress=False, privacy=None, ctx=ctx, metrics_fn=compute_metrics,
        )  # fmt: skip

    engine = make_engine(job.training)
    fit = fitting.fit(
        job, make_engine, engine, model, train, val, run_dir, False, labels=prepared.labels, show_progress=False
    )
    metrics = {"validation": compute_metrics(job.task, val.target, engine.predict(model, val.inputs), prepared.labels)}
    metrics["training"] = fit.summary()
    extra = {"artifact_params": data_params} if data_params else {}
    pipeline._save_artifact(job, run_dir, model, prepared, metrics, target_scale, None, extra)
    return run_dir / "model"


def run_bag(job_file: Path, pool_dir: Path, folder: Path) -> list[Path]:
    """Every fold's model folder (``folder/fold<i>/model``), trained in order."""
    import yaml

    from shipyard.data.split_files import write_split

    raw = yaml.safe_load(job_file.read_text(encoding="utf-8"))
    pool = pd.read_parquet(pool_dir / POOL)
    folds = np.load(pool_dir / FOLDS)
    if len(folds) != len(pool):
        raise ShipyardError(f"{FOLDS} has {len(folds)} entries for {len(pool)} pooled rows", where=str(pool_dir))
    models = []
    for i in range(int(folds.max()) + 1):
        started = time.monotonic()
        sub = folder / f"fold{i}"
        sub.mkdir(parents=True, exist_ok=True)
        write_split(sub / "train.parquet", pool[folds != i])
        write_split(sub / "validation.parquet", pool[folds == i])
        try:
            models.append(train_fold(fold_job(raw, sub), sub))
            (sub / DONE).touch()
        finally:
            for name in ("train.parquet", "validation.parquet"):
                (sub / name).unlink(missing_ok=True)
        log.info("bag: fold %d trained in %.1fs", i, time.monotonic() - started)
    return models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train a bagged auto candidate (one model per fold).")
    parser.add_argument("job", type=Path)
    parser.add_argument("pool", type=Path, help="the folder holding pool.parquet and folds.npy")
    parser.add_argument("folder", type=Path, help="where fold<i>/model/ go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        run_bag(args.job, args.pool, args.folder)
    except ShipyardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
