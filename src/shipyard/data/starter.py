"""``starter_config``: a commented starter job (YAML) inferred from a data file, for ``shipyard init``-style use.

It looks at a sample of the file (format, Adult-style ", " separators and "?" missing markers, column types, the
task the target suggests) and picks a sensible model: an MLP for tables, a small CNN for images, a fine-tuned
transformer when the only feature is free text. The text always validates as a ``Job``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from shipyard.config.loader import validate_dict
from shipyard.config.schema import SourceConfig
from shipyard.data.sources import infer_format, load_source
from shipyard.data.target import check_class_count, infer_task
from shipyard.data.types import UNSPACED_SCRIPT, infer_column_types, mean_word_count, require_columns
from shipyard.errors import ShipyardError
from shipyard.settings import DATA_DIR_ENV, find_data_dir

log = logging.getLogger(__name__)

SAMPLE_ROWS = 2000
MISSING_MARKERS = ("?", "NA", "N/A", "null")


def _portable_path(path: Path) -> str:
    """Write paths under the shared data folder as ${SHIPYARD_DATA_DIR}/..., so the job runs on other machines."""
    path = path.resolve()
    root = find_data_dir()
    if root is not None:
        try:
            return "${" + DATA_DIR_ENV + "}/" + path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


def _source_for(data_file: Path) -> dict[str, Any]:
    """The source section, with the options a first look at the file suggests."""
    if not data_file.exists():
        raise ShipyardError("data file does not exist", where=str(data_file))
    name = data_file.name.lower()
    if "idx" in name and "images" in name:
        labels = data_file.with_name(data_file.name.replace("images-idx3", "labels-idx1"))
        return {"format": "idx", "images": _portable_path(data_file), "labels": _portable_path(labels)}
    source: dict[str, Any] = {"path": _portable_path(data_file)}
    fmt = infer_format(SourceConfig(path=str(data_file)), data_file)
    if fmt != "csv" or data_file.suffix.lower() != ".csv":
        source["format"] = fmt
    if fmt in ("csv", "tsv"):
        with open(data_file, "rb") as fh:
            head = fh.read(64 * 1024)
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # a cut in the middle of a multi-byte character at the end of the sample is not an encoding problem
            if exc.start < len(head) - 4:
                source["encoding"] = "latin-1"
        first_line = head.split(b"\n", 1)[0]
        sep = b"\t" if fmt == "tsv" else b","
        if first_line.count(sep + b" ") >= max(1, first_line.count(sep) // 2):
            source["skip_initial_space"] = True
    return source


@dataclass(frozen=True)
class StarterJob:
    """The YAML text and what was decided on the way (the CLI prints ``notes``)."""

    text: str
    task: str
    notes: list[str]


def starter_config(data_file: Path, task: str | None, target: str) -> str:
    """A commented YAML job for ``data_file`` predicting ``target``; it validates as a ``Job``."""
    return starter_job(data_file, task, target).text


def _text_model_job(frame: pd.DataFrame, column: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Model, training section and comment lines for a job whose one feature is free text."""
    texts = frame[column].dropna().astype(str)
    unspaced = float(texts.str.count(UNSPACED_SCRIPT.pattern).sum()) / max(1, int(texts.str.len().sum()))
    model = {"type": "transformer", "pretrained": "minilm", "pooling": "mean", "mode": "full"}
    training = {
        "optimizer": "adamw",
        "learning_rate": 0.0001,
        "weight_decay": 0.01,
        "schedule": {"name": "linear", "warmup_ratio": 0.1},
        "batch_size": 32,
        "epochs": 2,
        "seed": 0,
    }
    comments = [f"# Model: fine-tune the installed all-MiniLM-L6-v2 transformer on the text column {column!r}."]
    if unspaced > 0.3:
        comments.append(
            "# The text is mostly Chinese/Japanese/Thai script: MiniLM's vocabulary is English-first (many characters"
        )
        comments.append("# become [UNK]); set `pretrained` to a local multilingual model folder if you have one.")
    return model, training, comments


def starter_job(  # long: the starter page is written top to bottom, each comment beside its block
    data_file: Path, task: str | None, target: str
) -> StarterJob:
    """The starter job for ``data_file``; ``task`` None infers it from the target column (see `infer_task`)."""
    data_file = Path(data_file)
    notes: list[str] = []
    if task is not None:
        task = task.lower()
        if task not in ("classification", "regression"):
            raise ShipyardError(f"task must be classification or regression, got {task!r}", where="task")
    source = _source_for(data_file)
    sample_cfg = SourceConfig.model_validate({**source, "limit": SAMPLE_ROWS})
    frame = load_source(sample_cfg, base_dir=data_file.parent, field="data.source")
    markers = [m for m in MISSING_MARKERS if frame.isin([m]).to_numpy().any()]
    if markers:
        source["na_values"] = markers
        sample_cfg = SourceConfig.model_validate({**source, "limit": SAMPLE_ROWS})
        frame = load_source(sample_cfg, base_dir=data_file.parent, field="data.source")
    require_columns(frame, [target], field="target", where=str(data_file))
    task_comment: list[str] = []
    if task is None:
        task, reason = infer_task(frame[target])
        task_comment = [f"# Task {task}, inferred from the data: {reason}."]
        notes.append(f"task: {task}, inferred: {reason} (pass --task to override)")
    if task == "classification":
        check_class_count(frame[target], where=f"{data_file} (target {target!r})")

    features = [str(c) for c in frame.columns if c != target]
    types = infer_column_types(frame, features, target)
    text_columns = [c for c in features if types[c] == "text"]
    # With nothing but free text there is nothing to drop it for: a transformer takes the (wordiest) text column.
    text_only = bool(text_columns) and len(text_columns) == len(features)
    text_feature: str | None = None
    if text_only:
        text_feature = max(text_columns, key=lambda c: mean_word_count(frame[c].dropna().astype(str)))
        text_columns = [c for c in text_columns if c != text_feature]
    is_image = any(types[c] == "image" for c in features)
    model: dict[str, Any] = (
        {"type": "cnn", "channels": [32, 64], "dropout": 0.25} if is_image else {"type": "mlp", "hidden": [128, 64]}
    )
    data: dict[str, Any] = {
        "source": source,
        "target": target,
        "features": [{"name": c, "type": types[c]} for c in features if c not in text_columns],
        "split": {"method": "stratified" if task == "classification" else "random", "validation": 0.1, "test": 0.1},
    }
    if text_columns:
        data["drop_columns"] = text_columns
    if is_image:
        data["augmentation"] = {"shift": 0.1, "rotation": 10.0, "scale": 0.1}
    training: dict[str, Any] = {
        "optimizer": "adamw",
        "learning_rate": 0.001,
        "batch_size": 64 if not is_image else 128,
        "epochs": 10,
        "seed": 0,
    }
    model_comments = ["# Model: " + ("a small CNN for images." if is_image else "an MLP for tabular features.")]
    if text_feature is not None:
        data["cleaning"] = {"text_missing": "drop"}
        data["text"] = {"max_length": 128}
        model, training, model_comments = _text_model_job(frame, text_feature)
        notes.append(f"model: transformer on the free-text column {text_feature!r}")
    job = {"task": task, "name": data_file.stem, "data": data, "model": model, "training": training}
    validate_dict(job, file=f"starter config for {data_file}")

    def block(key: str, value: Any) -> str:
        return yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True, default_flow_style=False)

    counts = ", ".join(
        f"{k}: {sum(1 for c in features if types[c] == k)}"
        for k in ("numeric", "categorical", "text", "image")
        if any(types[c] == k for c in features)
    )
    lines = [
        f"# Starter job for {data_file.name}, inferred from its first {len(frame)} rows.",
        f"# Column types found ({counts}); check them, then run it. Every key is documented in",
        "# shipyard/config/schema.py.",
        *task_comment,
        block("task", task) + block("name", data_file.stem).rstrip(),
        "",
        "# Data: where rows come from, the column to predict, the feature types and the split.",
    ]
    if markers:
        lines.append(f"# {', '.join(map(repr, markers))} in the file are read as missing values (na_values).")
    if text_columns:
        what = "other free-text columns" if text_feature else "Free-text columns"
        lines.append(
            f"# {what} {text_columns} are dropped: "
            + ("a text model takes one text column." if text_feature else "tabular models cannot use them.")
        )
    if text_feature is not None:
        lines.append("# Rows with an empty text are dropped (cleaning.text_missing) and counted in the data summary.")
    if is_image:
        lines.append("# Images: light augmentation (shift / rotation / scale) is on for training batches.")
    lines += [
        block("data", data).rstrip(),
        "",
        *model_comments,
        block("model", model).rstrip(),
        "",
        "# Training: the seed also fixes the split unless data.split.seed is set.",
        block("training", training).rstrip(),
        "",
    ]
    for note in notes:
        log.info("init: %s", note)
    return StarterJob(text="\n".join(lines), task=task, notes=notes)
