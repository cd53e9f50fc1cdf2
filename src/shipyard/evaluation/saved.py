"""Metrics of a saved model: what `shipyard evaluate` calls.

Everything comes from the run folder: the artifact (its preprocessing, labels, target and the reading options of
the training data) and the run's stored ``splits/test.parquet``; the job file and the data sources are not read
again. Image runs store no rows: their test split is rebuilt from the run's own config.yaml (the split is seeded),
relative paths resolving against the job file's folder recorded in run.json, as `shipyard optimize` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.artifact import Artifact
from shipyard.config.loader import load_job
from shipyard.data.prepare import prepare_data
from shipyard.data.rows import read_rows
from shipyard.errors import ShipyardError
from shipyard.evaluation.metrics import compute_metrics
from shipyard.io import recorded_base_dir
from shipyard.models.registry import get_family


def evaluate_artifact(artifact: Artifact, frame: pd.DataFrame) -> dict[str, Any]:
    target = artifact.meta.get("target")
    if target not in frame.columns:
        raise ShipyardError(f"the data has no target column `{target}`", where="--data")
    y = artifact.preprocessor.encode_target(frame[target])
    outputs = artifact.frame_outputs(frame.drop(columns=[target]))
    return compute_metrics(artifact.task, y, outputs, artifact.labels)


def _run_dir_of(model_dir: Path) -> Path | None:
    """The run folder a model folder belongs to (``run/model`` or ``run/optimized/<method>``), if any."""
    for candidate in (model_dir, model_dir.parent, model_dir.parent.parent):
        if (candidate / "config.yaml").is_file():
            return candidate
    return None


def evaluate_run(run: Path, data: Path | None = None) -> dict[str, Any]:
    """Metrics of a saved model on a labelled file, or on the run's own test split when no file is given."""
    artifact = Artifact.load(run)
    if data is not None:
        return evaluate_artifact(artifact, read_rows(data, artifact.read_options, artifact.text_features))
    run_dir = _run_dir_of(artifact.path)
    if run_dir is None:
        raise ShipyardError("a bare model folder has no stored test split; pass --data", where=str(run))
    stored = run_dir / "splits" / "test.parquet"
    if stored.is_file():
        return evaluate_artifact(artifact, pd.read_parquet(stored))
    if (run_dir / "splits").is_dir():  # the run stored its rows, and kept none for testing (split.test: 0)
        raise ShipyardError("the run kept no test rows (data.split.test is 0); pass --data", where=str(run))
    # image runs keep no copy of their rows: rebuild the split from the run's own config (it is seeded)
    job = load_job(run_dir / "config.yaml")
    kinds = get_family(job.model.type).input_kinds
    test = prepare_data(job, base_dir=recorded_base_dir(run_dir), input_kinds=kinds).splits["test"]
    outputs = artifact.raw_outputs(test.inputs)
    return compute_metrics(artifact.task, np.asarray(test.target), outputs, artifact.labels)
