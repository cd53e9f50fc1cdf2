"""Interactions: checks (unknown ids, duplicates, timestamps out of order), the MovieLens reader and splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.data.interaction_splits import cold_items, leave_last_out, random_split, time_cut
from shipyard.data.interactions import IdIndex, check_interactions, movielens_fold, read_movielens
from shipyard.errors import ShipyardError


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1, 1, 2, 1, 2, 3],
            "item_id": [10, 11, 10, 12, 13, 10],
            "rating": [4, 5, 3, 2, 5, 1],
            "timestamp": [5, 3, 1, 9, 2, 4],
        }
    )


def test_checks_sort_by_time_and_count_out_of_order() -> None:
    out, summary = check_interactions(_frame(), where="events.csv")
    assert out["timestamp"].is_monotonic_increasing
    assert summary["out_of_order"] == 3 and summary["events"] == 6
    assert out["rating"].dtype == np.float32


def test_unknown_item_is_named_with_its_row() -> None:
    items = pd.DataFrame({"title": ["a", "b", "c"]}, index=pd.Index([10, 11, 12], name="item_id"))
    with pytest.raises(ShipyardError, match=r"events.csv, row 4, column 'item_id'.*item 13"):
        check_interactions(_frame(), where="events.csv", items=items)


def test_bad_rating_and_missing_column() -> None:
    bad = _frame().astype({"rating": object})
    bad.loc[2, "rating"] = "five"
    with pytest.raises(ShipyardError, match=r"row 2, column 'rating'.*'five' is not a number"):
        check_interactions(bad, where="e")
    with pytest.raises(ShipyardError, match="missing column"):
        check_interactions(_frame().drop(columns="timestamp"), where="e")


def test_duplicates_kept_collapsed_or_refused() -> None:
    dup = pd.concat([_frame(), _frame().iloc[[0]].assign(timestamp=20, rating=1)], ignore_index=True)
    kept, s = check_interactions(dup, where="e")
    assert len(kept) == 7 and s["duplicates"]["count"] == 1
    last, s = check_interactions(dup, where="e", duplicates="last")
    assert len(last) == 6 and s["duplicates"]["removed"] == 1
    assert last.loc[(last.user_id == 1) & (last.item_id == 10), "rating"].item() == 1.0  # the latest won
    with pytest.raises(ShipyardError, match="duplicate event for user 1 and item 10"):
        check_interactions(dup, where="e", duplicates="error")


def test_implicit_events_get_unit_weight() -> None:
    out, _ = check_interactions(_frame().drop(columns="rating"), where="e", implicit=True)
    assert (out["rating"] == 1.0).all()


def test_id_index_unknown_names_value_and_row() -> None:
    idx = IdIndex([5, 7, 9])
    assert idx.encode([9, 5], where="x").tolist() == [2, 0]
    assert idx.decode([1]) == [7]
    with pytest.raises(ShipyardError, match=r"x, row 1: unknown item 8"):
        idx.encode([5, 8], where="x", what="item")


def test_leave_last_out_time_and_random_partition_rows() -> None:
    frame, _ = check_interactions(_frame(), where="e")
    s = leave_last_out(frame, min_events=3)
    assert s["test"][["user_id", "item_id"]].values.tolist() == [[1, 12]]
    assert s["validation"][["user_id", "item_id"]].values.tolist() == [[1, 10]]
    assert len(s["train"]) == 4  # users 2 and 3 (too few events) stay in train
    t = time_cut(frame, validation=0.2, test=0.3)
    assert t["train"]["timestamp"].max() <= t["validation"]["timestamp"].min()
    for split in (s, t, random_split(frame, validation=0.2, test=0.2)):
        assert sorted(pd.concat(split.values()).index) == list(range(6))
    train, held = cold_items(frame, share=0.3, seed=1)
    assert not set(train.item_id) & set(held.item_id) and len(train) + len(held) == 6


def test_movielens_reader_latin1_and_official_folds(data_dir: Path) -> None:
    folder = data_dir / "movielens-100k"
    ml = read_movielens(folder)
    assert ml.n_events == 100_000 and ml.summary["users"] == 943 and ml.summary["items"] == 1682
    assert ml.items is not None and ml.users is not None
    assert ml.items.loc[1633, "title"].startswith("Á köldum klaka")  # u.item is Latin-1
    assert ml.items.loc[1, "genres"] == ["Animation", "Children's", "Comedy"]
    assert ml.item_text([1]) == ["Toy Story (1995) | Animation, Children's, Comedy"]
    assert set(ml.users.columns) >= {"age", "gender", "occupation"}
    base, test = movielens_fold(folder, "u1")
    assert base.n_events == 80_000 and test.n_events == 20_000
    with pytest.raises(ShipyardError, match="unknown MovieLens fold"):
        movielens_fold(folder, "u9")
