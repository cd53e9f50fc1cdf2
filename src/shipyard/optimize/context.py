"""What every optimisation method needs from a finished run, loaded once.

The run's own artifact (``run_dir/model``) is the teacher / original: its torch module, its preprocessor and its
metadata. The splits are the run's stored ``splits/*.parquet`` (tabular and text runs) passed through the run's own
preprocessor, or rebuilt from its ``config.yaml`` through the normal data layer (image runs, which store none:
relative paths resolve against the job file's folder recorded in ``run.json``), or taken from the caller (the
pipeline that has just prepared them), so every method sees exactly the rows the run was trained and tested on.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from shipyard.errors import ShipyardError
from shipyard.io import recorded_base_dir
from shipyard.models.registry import get_family
from shipyard.spec import InputSpec

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """A finished run, ready to optimise."""

    run_dir: Path
    model_dir: Path
    artifact: Any  # shipyard.artifact.Artifact (torch backend)
    job: Any  # shipyard.config.schema.Job
    prepared: Any  # shipyard.data.prepare.PreparedData
    spec: InputSpec
    target_scale: tuple[float, float] | None

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

    def split(self, name: str) -> Any:
        return self.prepared.splits[name]

    def eval_split(self) -> Any:
        """The split that metrics are measured on: test, or validation when the run kept no test rows."""
        for name in ("test", "validation", "train"):
            split = self.prepared.splits.get(name)
            if split is not None and len(split.target):
                return split
        raise ShipyardError("the run has no rows to evaluate on", where=str(self.run_dir))

    def teacher(self) -> nn.Module:
        """A fresh copy of the run's torch model (methods change weights in place, the original must not)."""
        return copy.deepcopy(self.artifact.model).eval()


def load_run(
    run_dir: Path, *, base_dir: Path | None = None, prepared: Any = None, allow_incomplete: bool = False
) -> RunContext:
    from shipyard.artifact import META, Artifact

    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    if not (model_dir / META).is_file():
        raise ShipyardError(
            "the run has no finished model (no model/shipyard.json)",
            where=str(run_dir),
            hint="optimise a run whose training finished, or train it first with `shipyard train`",
        )
    artifact = Artifact.load(model_dir, allow_incomplete=allow_incomplete)
    if artifact.backend != "torch" or artifact.model is None:
        raise ShipyardError("the run's model is not a torch model; nothing to optimise", where=str(model_dir))
    from shipyard.config.schema import Job

    config = run_dir / "config.yaml"
    if not config.is_file():
        raise ShipyardError("the run folder has no config.yaml to rebuild its data from", where=str(run_dir))
    job = Job.from_yaml(config)
    if prepared is None:
        # the rows the run stored (tabular and text): no data source is read again, so neither the working
        # directory nor a moved source file matters
        prepared = _prepared_from_splits(run_dir, artifact)
    if prepared is None:  # image runs keep no splits: rebuild them from the sources, relative to the job's folder
        from shipyard.data.prepare import prepare_data

        # text runs tokenise with the run's own saved encoder, so the rows match what the model was trained on
        encoder = getattr(artifact.preprocessor, "text_encoder", None)
        prepared = prepare_data(
            job,
            base_dir=Path(base_dir) if base_dir else recorded_base_dir(run_dir),
            input_kinds=get_family(str(artifact.meta["model"]["type"])).input_kinds,
            **({"text_encoder": encoder} if encoder else {}),
        )
    spec = InputSpec.from_meta(artifact.meta)
    scale = artifact.meta.get("target_scale")
    return RunContext(
        run_dir=run_dir,
        model_dir=model_dir,
        artifact=artifact,
        job=job,
        prepared=prepared,
        spec=spec,
        target_scale=(float(scale[0]), float(scale[1])) if scale else None,
    )


def _prepared_from_splits(run_dir: Path, artifact: Any) -> Any:
    """The run's stored ``splits/*.parquet`` through its own fitted preprocessor, or None if it stored none."""
    from shipyard.data.prepare import PreparedData, SplitArrays
    from shipyard.data.splits import SPLIT_NAMES

    folder = run_dir / "splits"
    if not (folder / "train.parquet").is_file():
        return None
    pre = artifact.preprocessor
    target = artifact.meta.get("target") or pre.target
    frames = {n: pd.read_parquet(folder / f"{n}.parquet") for n in SPLIT_NAMES if (folder / f"{n}.parquet").is_file()}
    empty = frames["train"].iloc[:0]  # a split the run kept no rows of was not stored
    splits = {}
    for name in SPLIT_NAMES:
        frame = frames.get(name, empty)
        splits[name] = SplitArrays(inputs=pre.transform(frame), target=pre.encode_target(frame[target]), frame=frame)
    try:
        summary = json.loads((run_dir / "data_summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    log.info("optimising on the run's stored splits: %s", {k: len(v) for k, v in splits.items()})
    return PreparedData(
        splits=splits,
        preprocessor=pre,
        summary=summary,
        input_spec=InputSpec.from_meta(artifact.meta),
        labels=artifact.labels,
        column_types=dict(pre.column_types),
    )


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
) -> Any:
    """The run's own training engine, reconfigured for a short fine-tune or a student's training.

    Same optimiser, batch size, precision and seed as the run, so a change in quality comes from the method, not
    from a different training recipe. Progress bars stay off: this runs inside a larger command.
    """
    from shipyard.training.engine import Engine

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
    )


def validation_or_none(ctx: RunContext) -> Any:
    val = ctx.prepared.splits.get("validation")
    return val if val is not None and len(val.target) else None
