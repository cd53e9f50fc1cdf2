"""`--where` of erasure requests is a small parsed language, never code (issue #12, item 3)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.data.forget import forget
from shipyard.data.where import MAX_LENGTH, parse_where
from shipyard.errors import ShipyardError


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1001, 1002, 1003, 1004, 1005],
            "age": [20.0, 35.5, np.nan, 61.0, 44.0],
            "city": ["north", "south", None, "north", "atlantis"],
            "customer id": [1, 2, 3, 4, 5],
        }
    )


@pytest.fixture
def splits_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "splits").mkdir(parents=True)
    _frame().to_parquet(run / "splits" / "train.parquet", index=False)
    _frame().iloc[:2].to_parquet(run / "splits" / "test.parquet", index=False)
    return run


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("user_id == 1005", [1005]),
        ("user_id in [1001, 1003]", [1001, 1003]),
        ("user_id not in (1001, 1003)", [1002, 1004, 1005]),
        ("age > 30 and city == 'north'", [1004]),
        ("not (age > 30) or city == 'atlantis'", [1001, 1003, 1005]),
        ("age is None", [1003]),
        ("city != None", [1001, 1002, 1004, 1005]),
        ("30 < age <= 61", [1002, 1004, 1005]),
        ("`customer id` == 2", [1002]),
        ("age > -1.5 and user_id >= +1004", [1004, 1005]),
        ("city in ['south', None]", [1002, 1003]),
    ],
)
def test_where_language_selects_rows(where: str, expected: list[int]) -> None:
    frame = _frame()
    mask = parse_where(where).mask(frame)
    assert frame.loc[mask.to_numpy(), "user_id"].tolist() == expected


def test_columns_used_are_reported() -> None:
    assert parse_where("`customer id` == 1 and user_id in [1] or age is None").columns == [
        "age",
        "customer id",
        "user_id",
    ]


def test_hostile_to_csv_writes_nothing(splits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = pd.read_parquet(splits_dir / "splits" / "train.parquet")
    with pytest.raises(ShipyardError) as err:
        forget(splits_dir, "user_id.to_csv('x.csv') == 1")
    assert not (tmp_path / "x.csv").exists() and not os.path.exists("x.csv")
    assert err.value.where == "--where" and "Call" in str(err.value) and "to_csv" in str(err.value)
    assert "and / or / not" in str(err.value)  # the grammar is named
    pd.testing.assert_frame_equal(pd.read_parquet(splits_dir / "splits" / "train.parquet"), before)


@pytest.mark.parametrize(
    "where",
    [
        "user_id.__class__.__init__.__globals__ == 1",
        "__import__('os').system('touch pwned') == 0",
        "user_id == __builtins__",
        "user_id[0] == 1",
        "len(city) == 3",
        "user_id + 1 == 3",
        "(lambda: 1)() == 1",
        "user_id == f'{city}'",
        "user_id in city",
        "1 == 1",
        "user_id",
        "user_id == [1, 2]",
        "user_id is 3",
        "@secret == 1",
        "user_id ==",
        "city > 3",
        "   ",
    ],
)
def test_hostile_or_bad_expressions_are_refused(splits_dir: Path, where: str, tmp_path: Path) -> None:
    before = pd.read_parquet(splits_dir / "splits" / "train.parquet")
    with pytest.raises(ShipyardError) as err:
        forget(splits_dir, where)
    assert err.value.where == "--where"
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    pd.testing.assert_frame_equal(pd.read_parquet(splits_dir / "splits" / "train.parquet"), before)


def test_dunder_chain_names_the_offending_part() -> None:
    with pytest.raises(ShipyardError) as err:
        parse_where("user_id.__class__.__init__.__globals__ == 1")
    assert "Attribute" in str(err.value) and "__globals__" in str(err.value)


def test_expression_size_is_bounded() -> None:
    with pytest.raises(ShipyardError, match="limit is"):
        parse_where("user_id == 1 or " * (MAX_LENGTH // 10) + "user_id == 2")
    with pytest.raises(ShipyardError, match="parts; the limit"):
        parse_where("user_id in [" + ", ".join(str(i) for i in range(410)) + "]")


def test_unknown_column_names_the_available_ones(splits_dir: Path) -> None:
    with pytest.raises(ShipyardError) as err:
        forget(splits_dir, "userid == 1")
    assert "unknown column 'userid'" in str(err.value) and "user_id" in str(err.value)


def test_forget_with_the_language_removes_rows(splits_dir: Path) -> None:
    result = forget(splits_dir, "user_id in [1001, 1005]")
    assert result["by_split"] == {"train": 2, "test": 1} and result["columns"] == ["user_id"]
    assert pd.read_parquet(splits_dir / "splits" / "train.parquet")["user_id"].tolist() == [1002, 1003, 1004]
