"""Prediction with a saved model folder: what `shipyard predict` calls.

Where it sits: in the artifact layer, beside artifact.py (it reads an artifact and rows, nothing else). Input files
are read with the options the model was trained with, recorded in the artifact (format, encoding, missing-value
markers: data/rows.py), so the same rows give the same predictions as at training time, whatever the working
directory and wherever the training data has gone since. Metrics of a saved model (`shipyard evaluate`) are in
evaluation/saved.py; predicting through a running server (`predict --url`) is serve/client.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.artifact import Artifact
from shipyard.data.rows import read_rows, write_table

log = logging.getLogger(__name__)


def predict_file(run: Path, input_file: Path, output_file: Path | None) -> int:
    artifact = Artifact.load(run)
    frame = read_rows(input_file, artifact.read_options, artifact.text_features)
    frame = frame.drop(columns=[artifact.meta.get("target")], errors="ignore")
    pred = artifact.predict_frame(frame)
    # built in one go: inserting 150 probability columns one by one fragments the frame (PerformanceWarning)
    columns: dict[str, Any] = {}
    if artifact.task == "classification":
        columns["label"] = list(pred["label"])
        if "abstained" in pred:  # out-of-scope rejection: the label above is then the configured one
            columns["abstained"] = pred["abstained"]
        for i, name in enumerate(artifact.labels or []):
            columns[f"p_{name}"] = pred["probabilities"][:, i]
    else:
        columns["value"] = pred["value"]
    out = pd.DataFrame(columns, index=range(len(frame)))
    if output_file is not None:
        write_table(out, Path(output_file))
    return len(out)


def default_output_for(input_file: Path) -> Path:
    """Where `predict` writes when no --output is given: ``<input stem>.predictions.csv`` beside the input."""
    input_file = Path(input_file)
    return input_file.with_name(f"{input_file.stem}.predictions.csv")
