"""`retrieval.split.held_out: given` (how `shipyard retrain` keeps a retrieval run's held-out queries): each row's
split comes from the source, and a row naming no split is an error naming the row and the column."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from shipyard.config.retrieval import RetrievalConfig
from shipyard.data.pairs import given_splits
from shipyard.errors import ShipyardError


def test_given_splits_are_taken_as_written() -> None:
    raw = pd.DataFrame({"split": ["train", " test", "validation", "train"]})
    assert given_splits(raw, "split", where="pairs.parquet").tolist() == ["train", "test", "validation", "train"]


def test_a_row_naming_no_split_is_refused_by_row() -> None:
    raw = pd.DataFrame({"_split": ["train", "test", "holdout", None]})
    with pytest.raises(ShipyardError, match="2 row\\(s\\) name no split \\(first: 'holdout' in data row 3\\)") as err:
        given_splits(raw, "_split", where="pairs.parquet")
    assert err.value.where == "pairs.parquet, row 3, column '_split'"
    with pytest.raises(ShipyardError, match="needs a 'split' column"):
        given_splits(raw, "split", where="pairs.parquet")


def test_the_split_column_cannot_be_a_pair_column() -> None:
    with pytest.raises(ValidationError, match="split_column must not be"):
        RetrievalConfig.model_validate({"query_column": "q", "split": {"held_out": "given", "split_column": "q"}})
