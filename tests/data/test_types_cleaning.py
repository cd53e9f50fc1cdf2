"""Column type inference / checks and the cleaning steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.config.schema import CleaningConfig, OutlierClipping, TextCleaning
from shipyard.data.cleaning import clean_frame, clip_bounds, normalise_text
from shipyard.data.types import check_column_types, infer_column_types, infer_type, require_columns
from shipyard.errors import ShipyardError


def frame(data: dict) -> pd.DataFrame:
    df = pd.DataFrame(data)
    df.index = pd.RangeIndex(1, len(df) + 1, name="row")
    return df


def test_infer_types() -> None:
    df = frame(
        {
            "n": [1.0, 2.0, 3.0, 4.0],
            "c": ["a", "b", "a", "b"],
            "t": ["the quick brown fox jumps", "over the lazy dog today", "a b c d e", "one two three four five"],
            "img": [np.zeros((2, 2), np.uint8)] * 4,
            "y": [0, 1, 0, 1],
        }
    )
    assert infer_type(df["n"]) == "numeric"
    types = infer_column_types(df, ["n", "c", "t", "img"], "y", {"c": "text"})
    assert types == {"n": "numeric", "c": "text", "t": "text", "img": "image", "y": "label"}
    assert infer_type(frame({"x": ["a", "b", "c"]})["x"]) == "categorical"


def test_numeric_column_with_bad_value_names_column_row_value() -> None:
    values = [str(i) for i in range(20)]
    values[16] = "abc"
    df = frame({"age": values, "y": [0] * 20})
    assert infer_type(df["age"]) == "numeric"  # mostly numbers: a typo, not a categorical column
    with pytest.raises(ShipyardError, match=r"adult\.csv, row 17, column 'age'.*got 'abc'"):
        check_column_types(df, {"age": "numeric", "y": "label"}, where="adult.csv")
    ok = check_column_types(frame({"age": ["1", " 2"]}), {"age": "numeric"}, where="f")
    assert ok["age"].tolist() == [1.0, 2.0]


def test_missing_target_lists_close_matches() -> None:
    df = frame({"income": [1], "age": [2]})
    with pytest.raises(ShipyardError, match=r"data.target.*'incme' not found.*did you mean 'income'.*columns are"):
        require_columns(df, ["incme"], field="data.target")


def test_normalise_text() -> None:
    cfg = TextCleaning(nfkc=True, whitespace=True, lowercase=True, strip_html=True)
    assert normalise_text("<b>Ｈｅｌｌｏ</b>\n  World&amp;co ", cfg) == "hello world&co"
    assert normalise_text("A  b", TextCleaning()) == "A b"


def test_clean_counts_duplicates_missing_and_text() -> None:
    df = frame(
        {
            "n": [1.0, 1.0, np.nan, 4.0, 5.0],
            "c": ["a", "a", "b", None, "c"],
            "t": ["hi  there", "hi there", "x", "y", "z"],
            "y": ["p", "p", "q", None, "q"],
        }
    )
    types = {"n": "numeric", "c": "categorical", "t": "text", "y": "label"}
    out, counts = clean_frame(df, CleaningConfig(), types, target="y", where="f.csv")
    # row 2 equals row 1 once text is normalised; row 4 has no target
    assert out.index.tolist() == [1, 3, 5]
    assert counts["duplicates_found"] == 1 and counts["duplicates_dropped"] == 1
    assert counts["missing_target_dropped"] == 1
    assert counts["text_normalised"] == {"t": 1}
    assert counts["missing_before"]["n"] == 1
    assert counts["rows_in"] == 5 and counts["rows_out"] == 3
    out, counts = clean_frame(df, CleaningConfig(missing="drop"), types, target="y", where="f.csv")
    assert counts["missing_rows_dropped"] == {"n": 1} and 3 not in out.index


def test_clean_missing_error_names_row() -> None:
    df = frame({"n": [1.0, np.nan], "y": [0, 1]})
    with pytest.raises(ShipyardError, match=r"f\.csv, row 2, column 'n'"):
        clean_frame(df, CleaningConfig(missing="error"), {"n": "numeric", "y": "label"}, target="y", where="f.csv")


def test_clip_bounds() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan])
    lo, hi = clip_bounds(values, OutlierClipping(method="iqr", factor=1.5))
    assert lo == pytest.approx(2 - 1.5 * 2) and hi == pytest.approx(4 + 1.5 * 2)
    lo, hi = clip_bounds(np.arange(101.0), OutlierClipping(method="quantile", lower=0.1, upper=0.9))
    assert (lo, hi) == (10.0, 90.0)
