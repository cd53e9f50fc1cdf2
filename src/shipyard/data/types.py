"""Column types: infer numeric / categorical / text / image for each feature, check the declared ones, and find
required columns (with close-match suggestions when one is missing).

A column of strings that are nearly all numbers is taken as numeric, so that one stray value ("abc" in an `age`
column) is reported with its row instead of quietly turning the whole column into a categorical.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)

COLUMN_TYPES = ("numeric", "categorical", "text", "image", "label")
# share of present values that must parse as numbers for a string column to count as numeric (with typos)
NUMERIC_SHARE = 0.9
# text: free-form sentences, told apart from categorical levels by word count and variety
TEXT_MIN_MEAN_WORDS = 4.0
TEXT_MIN_UNIQUE_SHARE = 0.5
# Scripts written without spaces between words (Chinese, Japanese kana, Thai, Lao, Khmer, Myanmar): a
# whitespace split sees a whole review as one word, so each of their characters counts as half a word instead
# (a Chinese word is about two characters long).
UNSPACED_SCRIPT = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
)
CHARS_PER_UNSPACED_WORD = 2.0


def require_columns(frame: pd.DataFrame, names: Iterable[str], *, field: str, where: str | None = None) -> None:
    """Raise naming the first missing column, with close matches and the columns the data does have."""
    available = [str(c) for c in frame.columns]
    for name in names:
        if name in frame.columns:
            continue
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        columns = f"columns are: {', '.join(available)}"
        raise ShipyardError(
            f"column {name!r} not found in the data",
            where=f"{where} ({field})" if where else field,
            hint=f"{hint} {columns}".strip(),
        )


def _is_image(series: pd.Series) -> bool:
    first = series.dropna()
    return not first.empty and isinstance(first.iloc[0], np.ndarray)


def infer_type(series: pd.Series) -> str:
    """The type a feature column most likely is."""
    if _is_image(series):
        return "image"
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numeric"
    present = series.dropna()
    if present.empty:
        return "categorical"
    parsed = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    if parsed.notna().mean() >= NUMERIC_SHARE:
        return "numeric"
    as_text = present.astype(str)
    mean_words = float(mean_word_count(as_text))
    unique_share = as_text.nunique() / len(as_text)
    if mean_words >= TEXT_MIN_MEAN_WORDS or (unique_share >= TEXT_MIN_UNIQUE_SHARE and mean_words >= 2.5):
        return "text"
    return "categorical"


def mean_word_count(texts: pd.Series) -> float:
    """Mean words per value in any script: whitespace-separated words, plus half a word per character of a script
    written without spaces (so a 100-character Chinese review counts as about 50 words, not one)."""
    if texts.empty:
        return 0.0
    spaced = texts.str.replace(UNSPACED_SCRIPT, " ", regex=True).str.split().str.len()
    unspaced = texts.str.count(UNSPACED_SCRIPT.pattern) / CHARS_PER_UNSPACED_WORD
    return float((spaced + unspaced).mean())


def infer_column_types(
    frame: pd.DataFrame, features: list[str], target: str, declared: dict[str, str | None] | None = None
) -> dict[str, str]:
    """Types for every feature (declared ones win) plus ``label`` for the target."""
    declared = declared or {}
    types: dict[str, str] = {}
    for name in features:
        kind = declared.get(name) or infer_type(frame[name])
        types[name] = kind
        if not declared.get(name) and kind in ("categorical", "text"):
            warn_mixed_types(frame[name], name, kind)
    types[target] = "label"
    log.info("column types: %s", types)
    return types


# a string column with at least this share of numbers (but under NUMERIC_SHARE) is mixed: say so, never silently
MIXED_NUMERIC_SHARE = 0.2


def warn_mixed_types(series: pd.Series, name: str, kind: str) -> None:
    """Warn when a column taken as categorical/text holds many numbers too (e.g. ages with `unknown`, `40+`)."""
    present = series.dropna()
    if present.empty:
        return
    parsed = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    share = float(parsed.notna().mean())
    if MIXED_NUMERIC_SHARE <= share < NUMERIC_SHARE:
        examples = ", ".join(repr(v) for v in present[parsed.isna()].astype(str).unique()[:3])
        log.warning(
            "column %r mixes numbers (%.0f%% of values) and text (e.g. %s); it is treated as %s. Declare its type "
            "in data.features (`type: numeric` reports each non-number with its row) or fix the values",
            name,
            100 * share,
            examples,
            kind,
        )


def check_column_types(frame: pd.DataFrame, types: dict[str, str], *, where: str) -> pd.DataFrame:
    """Convert numeric columns to float64, raising on the first value that is not a number.

    ``where`` names the source (file) for the message; rows are named by the frame's index (1-based data row).
    """
    out = frame.copy()
    for name, kind in types.items():
        if name not in out.columns:
            continue
        series = out[name]
        if kind == "numeric":
            out[name] = _as_numeric(series, name, where)
        elif kind == "image":
            bad = series.map(lambda v: not isinstance(v, np.ndarray))
            if bad.any():
                row = bad.idxmax()
                raise ShipyardError(
                    f"column {name!r} is declared image but holds {type(series.loc[row]).__name__}",
                    where=f"{where}, row {row}, column {name!r}",
                )
        elif kind in ("categorical", "text"):
            # keep values as strings (numbers become their text) so categories compare the same after reload
            out[name] = series.map(_to_text, na_action="ignore").astype("object")
    return out


def _to_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_numeric(series: pd.Series, name: str, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    if pd.api.types.is_numeric_dtype(series):
        return series.astype("float64")
    stripped = series.map(lambda v: v.strip() if isinstance(v, str) else v)
    parsed = pd.to_numeric(stripped, errors="coerce")
    bad = parsed.isna() & series.notna()
    if bad.any():
        row = bad.idxmax()
        raise ShipyardError(
            f"expected a number in numeric column {name!r}, got {series.loc[row]!r}",
            where=f"{where}, row {row}, column {name!r}",
            hint=f"{int(bad.sum())} value(s) in the column are not numbers; fix them, add them to `na_values`, "
            "or declare the column categorical",
        )
    return parsed.astype("float64")


def present(value: object) -> bool:
    """Not a missing value (None, NaN, pd.NA); scalars only, as a text column holds."""
    return isinstance(value, str) or not (
        value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
    )
