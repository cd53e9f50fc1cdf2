"""Splits (random, stratified, k-fold, given files) and the data-quality summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shipyard.config.schema import SplitConfig
from shipyard.data.checks import summarize
from shipyard.data.splits import split_frame
from shipyard.errors import ShipyardError


def frame(n: int = 100) -> pd.DataFrame:
    df = pd.DataFrame({"x": np.arange(n, dtype=float), "y": ["a"] * (n * 7 // 10) + ["b"] * (n - n * 7 // 10)})
    df.index = pd.RangeIndex(1, n + 1, name="row")
    return df


def test_stratified_fractions_balance_and_seed() -> None:
    df = frame(100)
    parts = split_frame(df, SplitConfig(validation=0.1, test=0.2), seed=3, task="classification", target="y")
    assert {k: len(v) for k, v in parts.items()} == {"train": 70, "validation": 10, "test": 20}
    assert (parts["test"]["y"] == "b").sum() == 6  # 30% of 20: class balance kept
    all_rows = sorted(np.concatenate([p.index.to_numpy() for p in parts.values()]))
    assert all_rows == list(range(1, 101))  # every row in exactly one split
    again = split_frame(df, SplitConfig(validation=0.1, test=0.2), seed=3, task="classification", target="y")
    other = split_frame(df, SplitConfig(validation=0.1, test=0.2), seed=4, task="classification", target="y")
    assert parts["test"].index.equals(again["test"].index)
    assert not parts["test"].index.equals(other["test"].index)


def test_random_split_for_regression() -> None:
    df = frame(50).assign(y=np.linspace(0, 1, 50))
    parts = split_frame(
        df, SplitConfig(method="random", validation=0.2, test=0.2), seed=0, task="regression", target="y"
    )
    assert [len(parts[k]) for k in ("train", "validation", "test")] == [30, 10, 10]


def test_given_test_source_only_carves_validation() -> None:
    df, test = frame(100), frame(10)
    parts = split_frame(df, SplitConfig(validation=0.1, test=0.3), seed=0, task="classification", target="y", test=test)
    assert len(parts["train"]) == 90 and len(parts["validation"]) == 10 and parts["test"] is test


def test_kfold_partitions() -> None:
    df = frame(50)
    seen = []
    for fold in range(5):
        cfg = SplitConfig(method="kfold", folds=5, fold=fold, test=0.0, validation=0.0)
        parts = split_frame(df, cfg, seed=1, task="classification", target="y")
        assert len(parts["validation"]) == 10 and len(parts["train"]) == 40 and parts["test"].empty
        seen.extend(parts["validation"].index)
    assert sorted(seen) == list(range(1, 51))  # each row is held out exactly once


def test_label_only_in_test_is_error() -> None:
    df = frame(20)
    test = pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "zebra"]}, index=pd.RangeIndex(1, 3))
    test.attrs["source"] = "t.csv"
    with pytest.raises(ShipyardError, match=r"t\.csv, row 2, column 'y'.*label 'zebra' appears in the test split"):
        split_frame(df, SplitConfig(), seed=0, task="classification", target="y", test=test)


def test_rare_class_stays_in_train() -> None:
    df = frame(30)
    df.loc[30, "y"] = "rare"
    parts = split_frame(df, SplitConfig(validation=0.3, test=0.3), seed=0, task="classification", target="y")
    assert "rare" in set(parts["train"]["y"])


def test_summary_leakage_balance_constant() -> None:
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "k": [5, 5, 5], "y": ["a", "b", "a"]})
    test = pd.DataFrame({"x": [2.0, 9.0], "k": [5, 5], "y": ["b", "a"]})
    imgs = [np.arange(4, dtype=np.uint8).reshape(2, 2), np.ones((2, 2), np.uint8)]
    splits = {"train": train, "validation": train.iloc[:0], "test": test}
    summary = summarize(
        splits,
        target="y",
        task="classification",
        features=["x", "k"],
        column_types={"x": "numeric", "k": "numeric", "y": "label"},
        cleaning={"source": {}},
    )
    assert summary["rows"] == {"train": 3, "validation": 0, "test": 2}
    assert summary["leakage"]["train_test_shared_rows"] == 1
    assert summary["class_balance"]["train"] == {"a": 2, "b": 1}
    assert summary["constant_columns"] == ["k"]
    json.dumps(summary)  # JSON-able
    itrain = pd.DataFrame({"image": pd.Series(imgs, dtype=object), "label": [0, 1]})
    itest = pd.DataFrame({"image": pd.Series([imgs[1].copy()], dtype=object), "label": [1]})
    s = summarize(
        {"train": itrain, "validation": itrain.iloc[:0], "test": itest},
        target="label",
        task="classification",
        features=["image"],
        column_types={"image": "image"},
        cleaning={},
    )
    assert s["leakage"]["train_test_shared_rows"] == 1  # same bytes -> same image
