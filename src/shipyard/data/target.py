"""The target column: which task it suggests (``infer_task``) and whether it can be a classification target at all
(``check_class_count``).

A float column such as a house price read as classification gives one class per price (thousands of classes, most
seen once), a model that cannot learn and a split that cannot stratify; both ``shipyard init`` and the data stage
catch it before a run starts.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shipyard.config.schema import Job
from shipyard.data.sources import infer_format, load_source
from shipyard.data.types import require_columns
from shipyard.errors import ShipyardError
from shipyard.settings import expand_path

# a numeric target with more distinct values than this is a quantity, not a set of class ids
MAX_NUMERIC_CLASSES = 20
# a classification target is refused above this many classes when it is numeric or its values are mostly unique
MAX_CLASSES = 100
# "mostly unique": distinct values per row above this share
MOSTLY_UNIQUE_SHARE = 0.5
# `shipyard validate` reads this many rows of a table source; image sources are not read
SAMPLE_ROWS = 5000
IMAGE_FORMATS = ("idx", "images", "sklearn_digits")


def _as_numbers(series: pd.Series) -> pd.Series | None:
    """The present values as numbers, or None when the column is not (entirely) numeric."""
    present = series.dropna()
    if present.empty or pd.api.types.is_bool_dtype(present):
        return None
    if pd.api.types.is_numeric_dtype(present):
        return present.astype("float64")
    parsed = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    return parsed if parsed.notna().all() else None


def infer_task(series: pd.Series) -> tuple[str, str]:
    """``(task, reason)`` for a target column: numeric with many distinct values (or fractions) is regression,
    anything else classification. ``reason`` is one sentence for the user."""
    name = series.name
    numbers = _as_numbers(series)
    if numbers is None:
        distinct = series.dropna().nunique()
        return "classification", f"target {name!r} holds {distinct} distinct label(s) that are not numbers"
    distinct = int(numbers.nunique())
    if distinct > MAX_NUMERIC_CLASSES:
        return "regression", f"target {name!r} is numeric with {distinct} distinct values (> {MAX_NUMERIC_CLASSES})"
    if not (numbers == numbers.round()).all():
        return "regression", f"target {name!r} is numeric with fractional values"
    return "classification", f"target {name!r} holds {distinct} distinct whole number(s), read as class ids"


def check_class_count(series: pd.Series, *, where: str) -> None:
    """Refuse a classification target with more than ``MAX_CLASSES`` classes when it is numeric or its values are
    mostly unique: that is a quantity or an identifier, not a label. Many string labels (say 150 intents, each
    seen often) stay allowed."""
    present = series.dropna()
    distinct = int(present.nunique())
    if distinct <= MAX_CLASSES:
        return
    numeric = _as_numbers(present) is not None
    unique_share = distinct / len(present)
    if not numeric and unique_share <= MOSTLY_UNIQUE_SHARE:
        return
    why = "numeric values" if numeric else f"{unique_share:.0%} of its values distinct"
    raise ShipyardError(
        f"classification target {series.name!r} has {distinct} classes in {len(present)} rows ({why}): "
        "too many to learn as classes",
        where=where,
        hint="set `task: regression` if it is a quantity (`shipyard init` without --task picks it), "
        "or point `data.target` at a label column",
    )


def check_target_sample(job: Job, *, base_dir: Path, rows: int = SAMPLE_ROWS) -> str | None:
    """What ``shipyard validate`` checks in the data: the first ``rows`` rows of a table source have the target
    column, and a classification target is learnable as classes. Returns a one-line note of what was checked, or
    None for image sources (too costly to read just to validate)."""
    source = job.data.source
    path = expand_path(source.path, base_dir) if source.path else None
    if source.images or infer_format(source, path) in IMAGE_FORMATS:
        return None
    limit = rows if source.limit is None else min(rows, source.limit)
    frame = load_source(source.model_copy(update={"limit": limit}), base_dir=base_dir, field="data.source")
    where = frame.attrs.get("source")
    require_columns(frame, [job.data.target], field="data.target", where=where)
    if job.task == "classification":
        check_class_count(frame[job.data.target], where=f"{where} (data.target)")
    return f"data: target {job.data.target!r} checked on the first {len(frame)} rows of {where}"
