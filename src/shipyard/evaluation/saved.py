"""Metrics of a saved model: what `shipyard evaluate` calls.

Everything comes from the run folder: the artifact (its preprocessing, labels, target and the reading options of
the training data) and the run's stored test split (``splits/test.parquet``, or ``splits/test.safetensors`` for
an image run: data/split_files.py); the job file and the data sources are not read again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.artifact import Artifact
from shipyard.data.rows import read_rows
from shipyard.data.split_files import read_split, split_path, stored_splits
from shipyard.errors import ShipyardError
from shipyard.evaluation.metrics import compute_metrics


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
    stored = split_path(run_dir, "test")
    if stored is not None:
        return evaluate_artifact(artifact, read_split(stored))
    if stored_splits(run_dir):  # the run stored its rows, and kept none for testing (split.test: 0)
        raise ShipyardError("the run kept no test rows (data.split.test is 0); pass --data", where=str(run))
    raise ShipyardError(
        "the run folder holds no stored splits (splits/ is missing or empty)",
        where=str(run_dir / "splits"),
        hint="pass --data with labelled rows, or train the run again: runs keep their splits since image runs "
        "store theirs too (older image runs kept none)",
    )
