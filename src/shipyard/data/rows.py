"""Rows in and out of a trained model: reading a user's file the way the training data was read, and writing a
table of predictions.

The reading options of the training source (format, encoding, delimiter, header and column names, missing-value
markers...) are recorded in the artifact's ``shipyard.json`` at training time (:func:`read_options`), so later
commands (`predict`, `evaluate --data`, `explain`) read the same kind of file the same way without the job file.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.config.schema import DataConfig, SourceConfig
from shipyard.data.sources import load_source
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_text

# what of a training source says how to read a file of the same kind (never where it is)
READ_OPTION_KEYS = (
    "format",
    "encoding",
    "delimiter",
    "header",
    "column_names",
    "na_values",
    "skip_initial_space",
    "strip_suffix",
)
# applied to a user's file of the same kind as the training file
_SAME_KIND_KEYS = {"encoding", "na_values", "skip_initial_space", "strip_suffix", "delimiter"}


def read_options(data: DataConfig) -> dict[str, Any]:
    """The reading options of the training data (its test source when it has one: labelled rows like a user's)."""
    source = data.test_source or data.source
    dumped = source.model_dump(mode="json")
    return {key: dumped[key] for key in READ_OPTION_KEYS}


def read_rows(path: Path, options: dict[str, Any], text_columns: Collection[str] = ()) -> pd.DataFrame:
    """Read a CSV / TSV / JSONL / Parquet file; a file of the training file's kind is read with its ``options``
    (see :func:`read_options`). ``text_columns`` (the model's text features) stay strings even when a value is all
    digits. A relative ``path`` is relative to the working directory (it comes from the command line)."""
    path = Path(path)
    fmt = options.get("format")
    suffix = path.suffix.lower()
    same_kind = (fmt in (None, "csv") and suffix == ".csv") or (fmt == "tsv" and suffix == ".tsv")
    cfg = {k: v for k, v in options.items() if k in _SAME_KIND_KEYS and v not in (None, [], {})} if same_kind else {}
    if suffix == ".csv" and not options.get("header", True) and same_kind:
        cfg.update(header=False, column_names=options.get("column_names"))
    source = SourceConfig(path=str(path.resolve()), **cfg)
    return load_source(source, base_dir=Path.cwd(), field="--input", text_columns=text_columns)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as CSV, TSV or JSONL (by the file's suffix), private (0600): one prediction per person."""
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(rec) + "\n" for rec in frame.to_dict(orient="records"))
    elif path.suffix.lower() in (".csv", ".tsv"):
        text = frame.to_csv(index=False, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    else:
        raise ShipyardError("output must end in .csv, .tsv or .jsonl", where=str(path))
    atomic_write_text(path, text, private=True)
