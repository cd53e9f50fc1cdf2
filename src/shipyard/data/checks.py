"""The data-quality summary written to ``data_summary.json``: rows per split, missing values, duplicates, class
balance, constant columns, train/test leakage (rows present in both, by hash; images by bytes), column types and
what cleaning did. Everything in it is plain JSON (str, int, float, list, dict).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from shipyard.data.cleaning import row_keys
from shipyard.data.splits import label_key

log = logging.getLogger(__name__)


def class_balance(series: pd.Series) -> dict[str, int]:
    counts = series.map(label_key).value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: kv[0])}


def constant_columns(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """Columns with at most one distinct value (missing counts as a value)."""
    out = []
    for name in columns:
        series = frame[name]
        if series.dtype == object and not series.dropna().empty and isinstance(series.dropna().iloc[0], np.ndarray):
            keys = row_keys(frame[[name]])
            if keys.nunique() <= 1:
                out.append(name)
        elif series.nunique(dropna=False) <= 1:
            out.append(name)
    return out


def leakage(splits: dict[str, pd.DataFrame], columns: list[str]) -> dict[str, int]:
    """How many validation/test rows also occur in train (same values in ``columns``)."""
    train = splits.get("train")
    result: dict[str, int] = {}
    if train is None or train.empty:
        return result
    train_keys = set(row_keys(train[columns]))
    for name in ("validation", "test"):
        frame = splits.get(name)
        if frame is None or frame.empty:
            result[f"train_{name}_shared_rows"] = 0
            continue
        shared = int(row_keys(frame[columns]).isin(train_keys).sum())
        result[f"train_{name}_shared_rows"] = shared
        if shared:
            log.warning("%d %s rows also occur in train (possible leakage)", shared, name)
    return result


def summarize(
    splits: dict[str, pd.DataFrame],
    *,
    target: str,
    task: str,
    features: list[str],
    column_types: dict[str, str],
    cleaning: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-able summary of the prepared data."""
    columns = [*features, target]
    summary: dict[str, Any] = {
        "task": task,
        "target": target,
        "rows": {name: len(frame) for name, frame in splits.items()},
        "column_types": dict(column_types),
        "missing": {
            name: {str(c): int(frame[c].isna().sum()) for c in columns if c in frame.columns}
            for name, frame in splits.items()
        },
        "cleaning": cleaning,
        "duplicates": {
            "found": int(sum(c.get("duplicates_found", 0) for c in cleaning.values() if isinstance(c, dict))),
            "dropped": int(sum(c.get("duplicates_dropped", 0) for c in cleaning.values() if isinstance(c, dict))),
        },
        "constant_columns": constant_columns(splits["train"], features),
        "leakage": leakage(splits, columns),
    }
    if task == "classification":
        summary["class_balance"] = {name: class_balance(frame[target]) for name, frame in splits.items()}
    else:
        summary["target_stats"] = {name: _stats(frame[target]) for name, frame in splits.items() if not frame.empty}
    if extra:
        summary.update(extra)
    return summary


def _stats(series: pd.Series) -> dict[str, float]:
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=0)),
        "min": float(values.min()),
        "max": float(values.max()),
    }
