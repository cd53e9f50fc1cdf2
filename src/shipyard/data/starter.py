"""``starter_config``: a commented starter job (YAML) inferred from a data file, for ``shipyard init``-style use.

It looks at a sample of the file (format, Adult-style ", " separators and "?" missing markers, column types) and
picks a sensible model: an MLP for tables, a small CNN for images. The text always validates as a ``Job``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from shipyard.config.schema import SourceConfig
from shipyard.data.sources import infer_format, load_source
from shipyard.data.types import infer_column_types, require_columns
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


def starter_config(data_file: Path, task: str, target: str) -> str:
    """A commented YAML job for ``data_file`` predicting ``target``; it validates as a ``Job``."""
    from shipyard.config.loader import validate_dict

    data_file = Path(data_file)
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

    features = [str(c) for c in frame.columns if c != target]
    types = infer_column_types(frame, features, target)
    text_columns = [c for c in features if types[c] == "text"]
    # With nothing but free text there is nothing to drop it for: keep it and say it needs a text model.
    text_only = bool(text_columns) and len(text_columns) == len(features)
    if text_only:
        text_columns = []
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
    training = {
        "optimizer": "adamw",
        "learning_rate": 0.001,
        "batch_size": 64 if not is_image else 128,
        "epochs": 10,
        "seed": 0,
    }
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
        block("task", task) + block("name", data_file.stem).rstrip(),
        "",
        "# Data: where rows come from, the column to predict, the feature types and the split.",
    ]
    if markers:
        lines.append(f"# {', '.join(map(repr, markers))} in the file are read as missing values (na_values).")
    if text_columns:
        lines.append(f"# Free-text columns {text_columns} are dropped: tabular models cannot use them.")
    if text_only:
        lines.append("# Every feature is free text: this needs a text model (a transformer family); an MLP")
        lines.append("# cannot take raw text, so change `model.type` once a text model is available.")
    if is_image:
        lines.append("# Images: light augmentation (shift / rotation / scale) is on for training batches.")
    lines += [
        block("data", data).rstrip(),
        "",
        "# Model: " + ("a small CNN for images." if is_image else "an MLP for tabular features."),
        block("model", model).rstrip(),
        "",
        "# Training: the seed also fixes the split unless data.split.seed is set.",
        block("training", training).rstrip(),
        "",
    ]
    return "\n".join(lines)
