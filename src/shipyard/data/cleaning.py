"""Row-level cleaning before the split: exact duplicates, missing values (drop or count), text normalisation; and
the outlier-clipping bounds the preprocessor fits on the training split.

Imputation values are not chosen here: they are fitted on the training split by the preprocessor, so nothing
about validation or test rows leaks into them. Cleaning only drops rows (and says how many) or counts.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.schema import CleaningConfig, OutlierClipping, TextCleaning
from shipyard.data.text import clean_text, cleaning_options
from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)


def normalise_text(value: str, cfg: TextCleaning) -> str:
    """One string through the configured text steps (the same function serves training and serving)."""
    return clean_text(value, **cleaning_options(cfg))


def row_keys(frame: pd.DataFrame) -> pd.Series:
    """A hash per row (same values -> same key); image arrays are hashed by shape and bytes."""
    if frame.empty:
        return pd.Series([], dtype="object", index=frame.index)
    image_cols = [c for c in frame.columns if frame[c].dtype == object and _holds_arrays(frame[c])]
    plain = [c for c in frame.columns if c not in image_cols]
    if plain:
        keys = pd.util.hash_pandas_object(frame[plain], index=False).astype("uint64").astype(str)
    else:
        keys = pd.Series("", index=frame.index)
    for name in image_cols:
        keys = keys + "|" + frame[name].map(_array_digest).fillna("")
    return keys.astype("object")


def _holds_arrays(series: pd.Series) -> bool:
    present = series.dropna()
    return not present.empty and isinstance(present.iloc[0], np.ndarray)


def _array_digest(value: Any) -> str | None:
    if not isinstance(value, np.ndarray):
        return None
    digest = hashlib.blake2b(np.ascontiguousarray(value).tobytes(), digest_size=16)
    digest.update(repr((value.shape, value.dtype.str)).encode())
    return digest.hexdigest()


def clean_frame(
    frame: pd.DataFrame,
    cfg: CleaningConfig,
    column_types: dict[str, str],
    *,
    target: str,
    where: str,
    id_column: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Clean one source's rows. Returns the cleaned frame and the counts of what each step did.

    ``id_column`` (``data.id_column``) is left out of the duplicate check: ids are unique per record, so counting
    them would keep every repeated example and let copies leak across the train / test split."""
    counts: dict[str, Any] = {"rows_in": len(frame)}
    out = frame

    # Text first, so duplicates that differ only in spacing or Unicode form are caught as duplicates.
    text_changed: dict[str, int] = {}
    for name, kind in column_types.items():
        if kind == "text" and name in out.columns:
            before = out[name]
            after = before.map(lambda v: normalise_text(v, cfg.text) if isinstance(v, str) else v)
            changed = int((after.fillna("") != before.fillna("")).sum())
            if changed:
                out = out.copy() if out is frame else out
                out[name] = after
            text_changed[name] = changed
    counts["text_normalised"] = text_changed

    missing = {str(c): int(out[c].isna().sum()) for c in out.columns if c in column_types}
    counts["missing_before"] = missing

    target_missing = out[target].isna()
    counts["missing_target_dropped"] = int(target_missing.sum())
    if target_missing.any():
        log.warning("%s: dropping %d rows with no target value", where, int(target_missing.sum()))
        out = out[~target_missing]

    out, dropped_missing = _apply_missing_rules(out, cfg, column_types, where)
    counts["missing_rows_dropped"] = dropped_missing

    keyed = out.drop(columns=[id_column]) if id_column is not None and id_column in out.columns else out
    if cfg.drop_duplicates and len(out):
        keys = row_keys(keyed)
        duplicated = keys.duplicated(keep="first")
        counts["duplicates_found"] = int(duplicated.sum())
        counts["duplicates_dropped"] = int(duplicated.sum())
        if duplicated.any():
            log.info("%s: dropping %d exact duplicate rows", where, int(duplicated.sum()))
            out = out[~duplicated.to_numpy()]
    else:
        counts["duplicates_found"] = int(row_keys(keyed).duplicated().sum()) if len(out) else 0
        counts["duplicates_dropped"] = 0

    if out is frame:
        out = frame.copy()
    counts["rows_out"] = len(out)
    if out.empty:
        raise ShipyardError(
            f"no rows left after cleaning ({counts['rows_in']} rows in)",
            where=where,
            hint=f"cleaning counts: {counts}",
        )
    return out, counts


def _apply_missing_rules(
    out: pd.DataFrame, cfg: CleaningConfig, column_types: dict[str, str], where: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Each feature column's missing-value rule (``cleaning.missing`` / ``categorical_missing`` / ``text_missing``):
    keep, drop the rows (counted per column) or refuse naming the first row."""
    dropped_missing: dict[str, int] = {}
    for name, kind in column_types.items():
        if kind in ("label", "image") or name not in out.columns:
            continue
        na = out[name].isna()
        if kind == "text":  # an empty or blank text carries nothing to learn from: missing too
            na |= out[name].astype(str).str.strip().eq("")
        if not na.any():
            continue
        key = {"numeric": "missing", "categorical": "categorical_missing", "text": "text_missing"}.get(kind)
        rule = getattr(cfg, key) if key else "keep"
        if rule == "error":
            row = na.idxmax()
            what = "empty text" if kind == "text" else "missing value"
            raise ShipyardError(
                f"{what} in column {name!r} (cleaning.{key} is 'error'; set it to 'drop' to drop such rows)",
                where=f"{where}, row {row}, column {name!r}",
                hint=f"{int(na.sum())} missing value(s) in the column",
            )
        if rule == "drop":
            dropped_missing[name] = int(na.sum())
            out = out[~na]
    return out, dropped_missing


def clip_bounds(values: np.ndarray, cfg: OutlierClipping) -> tuple[float, float]:
    """Lower/upper clip bounds for one numeric column, from training values only (NaNs ignored)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return -np.inf, np.inf
    if cfg.method == "quantile":
        lo, hi = np.quantile(finite, [cfg.lower, cfg.upper])
        return float(lo), float(hi)
    q1, q3 = np.quantile(finite, [0.25, 0.75])
    spread = q3 - q1
    return float(q1 - cfg.factor * spread), float(q3 + cfg.factor * spread)


def count_clipped(values: np.ndarray, lo: float, hi: float) -> int:
    finite = values[np.isfinite(values)]
    return int(((finite < lo) | (finite > hi)).sum())


def numeric_fill(value: float | str | None) -> float:
    if value is None:
        return 0.0
    try:
        return float(value)
    except ValueError:
        raise ShipyardError(
            f"cleaning.fill_value {value!r} is not a number, but numeric columns need one",
            where="data.cleaning.fill_value",
        ) from None
