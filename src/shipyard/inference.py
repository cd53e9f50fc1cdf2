"""Prediction and evaluation with a saved model folder: what `shipyard predict` and `shipyard evaluate` call.

Input files are read with the options the model was trained with (format, encoding, missing-value markers), so
the same rows give the same predictions as at training time.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from shipyard.artifact import Artifact
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_text

log = logging.getLogger(__name__)


def _run_dir_of(path: Path) -> Path | None:
    path = Path(path)
    for candidate in (path, path.parent, path.parent.parent, path.parent.parent.parent):
        if (candidate / "config.yaml").is_file():
            return candidate
    return None


def _training_source(run_dir: Path | None) -> dict[str, Any]:
    if run_dir is None:
        return {}
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    data = config.get("data", {})
    return dict(data.get("test_source") or data.get("source") or {})


def read_rows(path: Path, run_dir: Path | None, text_columns: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV / TSV / JSONL / Parquet file with the training source's reading options; ``text_columns`` (the
    model's text features) stay strings even when a value is all digits."""
    from shipyard.config.schema import SourceConfig
    from shipyard.data.sources import load_source

    path = Path(path)
    options = _training_source(run_dir)
    keep = {"encoding", "na_values", "skip_initial_space", "strip_suffix", "delimiter"}
    fmt = options.get("format")
    suffix = path.suffix.lower()
    same_kind = (fmt in (None, "csv") and suffix == ".csv") or (fmt == "tsv" and suffix == ".tsv")
    cfg = {k: v for k, v in options.items() if k in keep and v not in (None, [], {})} if same_kind else {}
    if suffix == ".csv" and not options.get("header", True) and same_kind:
        cfg.update(header=False, column_names=options.get("column_names"))
    source = SourceConfig(path=str(path.resolve()), **cfg)
    return load_source(source, base_dir=Path.cwd(), field="--input", text_columns=text_columns or ())


def predict_file(run: Path, input_file: Path, output_file: Path | None) -> int:
    artifact = Artifact.load(run)
    frame = read_rows(input_file, _run_dir_of(artifact.path), _text_features(artifact))
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
def _text_features(artifact: Artifact) -> list[str]:
    return [f["name"] for f in artifact.features if f.get("type") == "text"]


def write_table(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(rec) + "\n" for rec in frame.to_dict(orient="records"))
    elif path.suffix.lower() in (".csv", ".tsv"):
        text = frame.to_csv(index=False, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    else:
        raise ShipyardError("output must end in .csv, .tsv or .jsonl", where=str(path))
    atomic_write_text(path, text, private=True)  # one prediction per person: private (0600)


def evaluate_artifact(artifact: Artifact, frame: pd.DataFrame) -> dict[str, Any]:
    from shipyard.evaluation.metrics import compute_metrics

    target = artifact.meta.get("target")
    if target not in frame.columns:
        raise ShipyardError(f"the data has no target column `{target}`", where="--data")
    y = artifact.preprocessor.encode_target(frame[target])
    outputs = artifact.raw_outputs(artifact.preprocessor.transform(frame.drop(columns=[target])))
    return compute_metrics(artifact.task, y, outputs, artifact.labels)


def evaluate_run(run: Path, data: Path | None = None) -> dict[str, Any]:
    """Metrics of a saved model on a labelled file, or on the run's own test split when no file is given."""
    artifact = Artifact.load(run)
    run_dir = _run_dir_of(artifact.path)
    if data is not None:
        return evaluate_artifact(artifact, read_rows(data, run_dir, _text_features(artifact)))
    if run_dir is None:
        raise ShipyardError("a bare model folder has no stored test split; pass --data", where=str(run))
    stored = run_dir / "splits" / "test.parquet"
    if stored.is_file():
        return evaluate_artifact(artifact, pd.read_parquet(stored))
    # image runs keep no copy of their rows: rebuild the split from the run's own config (it is seeded)
    from shipyard.config.loader import load_job
    from shipyard.data.prepare import prepare_data

    job = load_job(run_dir / "config.yaml")
    test = prepare_data(job, base_dir=run_dir).splits["test"]
    from shipyard.evaluation.metrics import compute_metrics

    outputs = artifact.raw_outputs(test.inputs)
    return compute_metrics(artifact.task, np.asarray(test.target), outputs, artifact.labels)


def predict_remote(url: str, model: str, input_file: Path, output_file: Path | None, api_key: str | None) -> int:
    from shipyard.serve.client import predict_remote as _remote

    return _remote(url, model, input_file, output_file, api_key)
