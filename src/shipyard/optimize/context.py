"""What every optimisation method needs from a finished run, loaded once, from the run folder only.

The run's own artifact (``run_dir/model``) is the teacher / original: its torch module, its fitted preprocessor
and its metadata (``model/shipyard.json``: task, model family and parameters, input spec, labels, target scale).
The rows are the run's stored splits (``splits/*.parquet`` for tabular and text runs, ``splits/*.safetensors`` for
image runs: data/split_files.py) passed through that preprocessor, or taken from the caller (the pipeline that has
just prepared them), so every method sees exactly the rows the run was trained and tested on; no data source is
read and no preprocessor is refitted. A run folder without stored splits is an error that says so.

``config.yaml`` is read only for the run's training recipe (optimiser, batch size, seed, augmentation),
and only by the methods that train (a pruning fine-tune, distillation).
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from shipyard.artifact import META, Artifact
from shipyard.config.schema import Job
from shipyard.data.prepare import PreparedData, SplitArrays
from shipyard.data.split_files import SPLIT_NAMES, read_split, stored_splits
from shipyard.errors import ShipyardError
from shipyard.evaluation.metrics import compute_metrics
from shipyard.spec import InputSpec
from shipyard.training.engine import Engine

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"


@dataclass
class RunContext:
    """A finished run, ready to optimise."""

    run_dir: Path
    model_dir: Path
    artifact: Artifact  # torch backend
    prepared: PreparedData
    spec: InputSpec
    target_scale: tuple[float, float] | None
    _job: Job | None = field(default=None, repr=False)

    @property
    def job(self) -> Job:
        """The job the run trained with (its ``config.yaml``), read when a method first needs its recipe."""
        if self._job is None:
            self._job = read_job(self.run_dir, why="its training recipe")
        return self._job

    @property
    def task(self) -> str:
        return self.artifact.task

    @property
    def model_type(self) -> str:
        return str(self.artifact.meta["model"]["type"])

    @property
    def model_params(self) -> dict[str, Any]:
        params = dict(self.artifact.meta["model"]["params"])
        params.update(self.artifact.meta.get("artifact_params", {}))
        params.pop("artifact_dir", None)  # a loader detail, never part of the saved architecture
        return params

    @property
    def labels(self) -> list[str] | None:
        return self.artifact.labels

    @property
    def input_names(self) -> list[str]:
        return ["input_ids", "attention_mask"] if self.spec.kind == "text" else ["x"]

    def split(self, name: str) -> SplitArrays:
        return self.prepared.splits[name]

    def eval_split(self) -> SplitArrays:
        """The split that metrics are measured on: test, or validation when the run kept no test rows."""
        for name in ("test", "validation", "train"):
            split = self.prepared.splits.get(name)
            if split is not None and len(split.target):
                return split
        raise ShipyardError("the run has no rows to evaluate on", where=str(self.run_dir))

    def teacher(self) -> nn.Module:
        """A fresh copy of the run's torch model (methods change weights in place, the original must not)."""
        return copy.deepcopy(self.artifact.model).eval()


def load_run(run_dir: Path, *, prepared: PreparedData | None = None, allow_incomplete: bool = False) -> RunContext:
    """The run in ``run_dir``: its model, and its rows (``prepared`` when the caller already holds them)."""
    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    if not (model_dir / META).is_file():
        raise ShipyardError(
            "the run has no finished model (no model/shipyard.json)",
            where=str(run_dir),
            hint="optimise a run whose training finished, or train it first with `shipyard train`",
        )
    artifact = Artifact.load(model_dir, allow_incomplete=allow_incomplete)
    if artifact.backend not in ("torch", "lightgbm") or artifact.model is None:
        raise ShipyardError("the run's model is not a torch or tree model; nothing to optimise", where=str(model_dir))
    if prepared is None:
        # the rows the run stored: no data source is read again, so neither the working directory nor a moved
        # source file matters
        prepared = _prepared_from_splits(run_dir, artifact)
    scale = artifact.meta.get("target_scale")
    return RunContext(
        run_dir=run_dir,
        model_dir=model_dir,
        artifact=artifact,
        prepared=prepared,
        spec=InputSpec.from_meta(artifact.meta),
        target_scale=(float(scale[0]), float(scale[1])) if scale else None,
    )


def read_job(run_dir: Path, *, why: str) -> Job:
    """The run's ``config.yaml`` (the job as it trained), validated; ``why`` says what it is read for."""
    config = Path(run_dir) / CONFIG_FILE
    if not config.is_file():
        raise ShipyardError(f"the run folder has no {CONFIG_FILE}, which holds {why}", where=str(run_dir))
    return Job.from_yaml(config)


def _read_summary(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "data_summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _prepared_from_frames(frames: dict[str, pd.DataFrame], artifact: Artifact, summary: dict[str, Any]) -> PreparedData:
    """The rows of each split through the run's own fitted preprocessor (a split with no rows stays empty)."""
    pre = artifact.preprocessor
    target = artifact.meta.get("target") or pre.target
    empty = frames["train"].iloc[:0]
    splits = {}
    for name in SPLIT_NAMES:
        frame = frames.get(name, empty)
        splits[name] = SplitArrays(inputs=pre.transform(frame), target=pre.encode_target(frame[target]), frame=frame)
    return PreparedData(
        splits=splits,
        preprocessor=pre,
        summary=summary,
        input_spec=InputSpec.from_meta(artifact.meta),
        labels=artifact.labels,
        column_types=dict(pre.column_types),
    )


def _prepared_from_splits(run_dir: Path, artifact: Artifact) -> PreparedData:
    """The run's stored splits through its own fitted preprocessor."""
    paths = stored_splits(run_dir)
    if "train" not in paths:
        raise ShipyardError(
            "the run folder holds no stored training split (splits/train.parquet or splits/train.safetensors)",
            where=str(run_dir / "splits"),
            hint="train the run again: runs keep their splits (image runs from before they did kept none)",
        )
    # a split the run kept no rows of was not stored
    frames = {name: read_split(path) for name, path in paths.items()}
    prepared = _prepared_from_frames(frames, artifact, _read_summary(run_dir))
    log.info("optimising on the run's stored splits: %s", {k: len(v) for k, v in prepared.splits.items()})
    return prepared


def subsample(inputs: dict[str, np.ndarray], n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """At most ``n`` rows, chosen at random but reproducibly."""
    total = len(next(iter(inputs.values())))
    if total <= n:
        return inputs
    idx = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    return {k: v[idx] for k, v in inputs.items()}


def make_engine(
    ctx: RunContext,
    *,
    epochs: int,
    lr_scale: float = 1.0,
    loss_fn: Any = None,
    augment: bool = True,
    early_stopping: bool = False,
) -> Engine:
    """The run's own training engine, reconfigured for a short fine-tune or a student's training.

    Same optimiser, batch size, precision and seed as the run, so a change in quality comes from the method, not
    from a different training recipe. Progress bars stay off: this runs inside a larger command. ``ctx`` is a
    `RunContext` (anything with its ``job``, ``task``, ``labels`` and ``target_scale``).
    """
    train_cfg = ctx.job.training
    schedule = train_cfg.schedule.with_changes("training.schedule", warmup_steps=0, warmup_ratio=0.0)
    update: dict[str, Any] = {
        "epochs": max(1, int(epochs)),
        "learning_rate": float(train_cfg.learning_rate) * lr_scale,
        "schedule": schedule,
        "max_steps": None,
        "checkpoint_every_steps": 0,
        "keep_checkpoints": 1,
    }
    if not early_stopping:
        update["early_stopping"] = None
    cfg = train_cfg.with_changes("training", **update)
    return Engine(
        cfg,
        ctx.task,
        labels=ctx.labels,
        augmentation=ctx.job.data.augmentation if augment else None,
        target_scale=ctx.target_scale,
        loss_fn=loss_fn,
        show_progress=False,
        metrics_fn=compute_metrics,  # early stopping may judge on any metric the run's training could
    )


def validation_or_none(ctx: RunContext) -> SplitArrays | None:
    val = ctx.prepared.splits.get("validation")
    return val if val is not None and len(val.target) else None
