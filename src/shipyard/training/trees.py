"""Training a tree family: LightGBM's own boosting loop, fitted into the run folder like the torch engine's.

What it shares with :class:`shipyard.training.engine.Engine`: the seed and ``num_threads`` of the ``training``
section, a ``train_log.jsonl`` (one ``step`` line per boosting round: training and validation loss), progress
lines, early stopping on the validation split, and a :class:`FitResult`. What does not apply, and is refused with
the alternative named: DP-SGD (``privacy.differential_privacy``), torchrun, model soups. ``epochs``,
``batch_size`` and the optimiser settings are the torch engine's and are ignored here (the model section has the
boosting settings). A resumed tree run trains again from the start: boosting is one pass, seeded and
deterministic, so the result is the same trees.

``deadline`` (a ``time.monotonic()`` value) stops boosting early and keeps the trees built so far: what
``model: {type: auto}`` uses to keep its time budget.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.config.schema import TrainingConfig
from shipyard.errors import ShipyardError
from shipyard.models.trees import TreeModel, _lightgbm, class_weights
from shipyard.training.engine import FitResult, SplitLike
from shipyard.training.progress import TrainProgress

log = logging.getLogger(__name__)

LOG_NAME = "train_log.jsonl"


def check_applicable(
    model_type: str, *, privacy: Any = None, world_size: int = 1, training: TrainingConfig | None = None
) -> None:
    """Refuse what a tree family cannot honour, before any folder exists."""
    if privacy is not None:
        raise ShipyardError(
            f"differential privacy (DP-SGD) trains by noisy gradient steps; `{model_type}` grows trees and has none",
            where="privacy.differential_privacy",
            hint="use `model: {type: linear}` or `{type: mlp}` with the privacy section, or drop the privacy section "
            "(`shipyard audit privacy RUN` still measures membership leakage)",
        )
    if world_size > 1:
        raise ShipyardError(
            f"torchrun data-parallel training does not apply to `{model_type}`",
            where="torchrun",
            hint="run `shipyard train JOB.yaml` as one process: LightGBM already uses every core "
            "(set training.num_threads to choose how many)",
        )
    if training is not None and training.soup is not None:
        raise ShipyardError(
            f"a model soup averages the weights of fine-tuned networks; `{model_type}` has no weights to average",
            where="training.soup",
            hint="drop training.soup, or use `model: {type: auto}` for an ensemble of several models",
        )


class _RoundLogger:
    """LightGBM callback: one ``step`` line per round in train_log.jsonl, progress, and the deadline."""

    order = 30  # after LightGBM's own early-stopping callback (order 30 too; ours only logs and stops at a deadline)

    def __init__(self, path: Path, progress: TrainProgress, n_rows: int, deadline: float | None) -> None:
        self.path = path
        self.progress = progress
        self.n_rows = n_rows
        self.deadline = deadline
        self.deadline_hit = False
        self.rounds = 0  # rounds boosted (LightGBM's booster is cut back to the best one when it returns)
        self.best_round, self.best_loss = 0, math.inf  # by validation loss, for a deadline stop

    def __call__(self, env: Any) -> None:
        import json

        self.rounds = env.iteration + 1
        entry: dict[str, Any] = {"event": "step", "epoch": 1, "step": self.rounds}
        for data_name, metric, value, _ in env.evaluation_result_list or []:
            key = "train_loss" if data_name == "train" else "val_loss"
            entry[key] = float(value)
            entry.setdefault("metric", metric)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        loss = entry.get("train_loss", entry.get("val_loss", math.nan))
        self.progress.step(float(loss), 1, self.n_rows)
        if "val_loss" in entry:
            self.progress.note({"loss": entry["val_loss"]})
            if entry["val_loss"] < self.best_loss:
                self.best_round, self.best_loss = self.rounds, entry["val_loss"]
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.deadline_hit = True
            best = self.best_round or self.rounds  # keep the best round so far (the last without validation)
            raise _lightgbm().callback.EarlyStopException(best - 1, env.evaluation_result_list or [])


def fit_trees(
    model: TreeModel,
    train: SplitLike,
    validation: SplitLike | None,
    run_dir: Path,
    *,
    cfg: TrainingConfig,
    labels: list[str] | None = None,
    show_progress: bool = True,
    deadline: float | None = None,
) -> FitResult:
    """Boost ``model`` on ``train`` (early stopping on ``validation`` when it has rows); writes the log only."""
    lgb = _lightgbm()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / LOG_NAME
    log_path.unlink(missing_ok=True)  # a resumed tree run trains again from the start, so its log does too
    x, y = _xy(train, "train")
    weight = class_weights(model.params, y.astype(np.int64), labels) if model.spec.task == "classification" else None
    params = model.lgb_params(seed=cfg.seed, num_threads=cfg.num_threads)
    cats = model.native_categorical
    dtrain = lgb.Dataset(x, y, weight=weight, categorical_feature=cats or "auto", free_raw_data=False)
    sets, names = [dtrain], ["train"]
    has_val = validation is not None and len(validation.target) > 0
    if has_val:
        assert validation is not None
        xv, yv = _xy(validation, "validation")
        sets.append(lgb.Dataset(xv, yv, reference=dtrain, categorical_feature=cats or "auto"))
        names.append("validation")
    rounds = model.params.n_estimators
    started = time.perf_counter()
    with TrainProgress(rounds, enabled=show_progress) as progress:
        logger = _RoundLogger(log_path, progress, len(y), deadline)
        callbacks: list[Any] = [logger]
        patience = model.params.early_stopping_rounds
        if has_val and patience:
            # first_metric_only: the objective's loss, what early stopping promises to watch
            callbacks.insert(0, lgb.early_stopping(patience, first_metric_only=True, verbose=False))
        try:
            booster = lgb.train(params, dtrain, num_boost_round=rounds, valid_sets=sets, valid_names=names,
                                callbacks=callbacks)  # fmt: skip
        except lgb.basic.LightGBMError as exc:
            raise ShipyardError(f"LightGBM refused the data or parameters: {exc}", where="model") from None
    seconds = time.perf_counter() - started
    run = logger.rounds
    best = int(booster.best_iteration) if has_val and patience and booster.best_iteration > 0 else run
    model.set_booster(booster, best)
    best_value = None
    if has_val and booster.best_score:
        scores = booster.best_score.get("validation", {})
        best_value = float(next(iter(scores.values()))) if scores else None
    if logger.deadline_hit:
        log.warning("time limit reached after %d boosting rounds; keeping the trees built so far", run)
    log.info("boosted %d rounds in %.1fs, kept %d trees' rounds (best %s)", run, seconds, best, best_value)
    return FitResult(
        epochs_run=1,
        global_step=run,
        best_epoch=best,  # for trees: the boosting round kept
        best_value=best_value,
        stopped_early=run < rounds,
        stopped_at_time=logger.deadline_hit,
        history=[],
        precision="fp64",
        seconds=seconds,
        examples_per_second=len(y) * run / max(seconds, 1e-9),
    )


def _xy(split: SplitLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    if "x" not in split.inputs:
        raise ShipyardError(f"a tree model takes tabular inputs `x`; the {name} split has {sorted(split.inputs)}")
    x = np.asarray(split.inputs["x"], dtype=np.float64)
    return x, np.asarray(split.target)


def predict(model: TreeModel, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Raw outputs in row order (what ``Engine.predict`` returns for a torch model)."""
    return model.raw_scores(inputs["x"])
