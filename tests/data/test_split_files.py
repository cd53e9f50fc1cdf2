"""Stored splits of image runs (data/split_files.py): the safetensors round trip, damaged files, and erasure by
the ``row`` / ``source`` keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from shipyard.data.forget import forget
from shipyard.data.split_files import (
    image_split_frame,
    read_split,
    split_path,
    stored_splits,
    write_split,
)
from shipyard.errors import ShipyardError
from shipyard.store.audit import AuditLog


def _images(n: int, shape: tuple[int, ...], seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    column = np.empty(n, dtype=object)
    for i in range(n):
        column[i] = rng.integers(0, 256, size=shape, dtype=np.uint8)
    return pd.Series(column, dtype="object")


def _digits_frame(rows: int = 40) -> pd.DataFrame:
    digits = load_digits()
    images = np.rint(digits.images[:rows] * (255.0 / 16.0)).astype(np.uint8)
    column = np.empty(rows, dtype=object)
    for i in range(rows):
        column[i] = images[i]
    # a split keeps the source positions as its index (here: every other row of the source)
    return pd.DataFrame({"image": column, "label": digits.target[:rows].astype(np.int64)}, index=np.arange(rows) * 2)


def test_an_image_split_round_trips_with_its_keys_and_is_private(tmp_path: Path) -> None:
    frame = _digits_frame()
    stored = image_split_frame(frame, "source")
    path = write_split(tmp_path / "splits" / "train.safetensors", stored)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    back = read_split(path)
    assert list(back.columns) == ["image", "label", "row", "source"]
    assert back["row"].tolist() == (np.arange(40) * 2).tolist()
    assert set(back["source"]) == {"source"}
    assert back["label"].dtype == np.int64 and back["label"].tolist() == frame["label"].tolist()
    for got, want in zip(back["image"], frame["image"], strict=True):
        assert got.dtype == np.uint8 and np.array_equal(got, want)
    assert split_path(tmp_path, "train") == path and stored_splits(tmp_path) == {"train": path}


def test_colour_images_and_string_labels_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame({"image": _images(5, (6, 4, 3)), "label": ["cat", "dog", "cat", None, "émeu"]})
    back = read_split(write_split(tmp_path / "test.safetensors", image_split_frame(frame, "test_source")))
    assert back["label"].tolist() == ["cat", "dog", "cat", None, "émeu"]
    assert back["image"].iloc[4].shape == (6, 4, 3) and np.array_equal(back["image"].iloc[4], frame["image"].iloc[4])
    assert back["source"].tolist() == ["test_source"] * 5


def test_other_columns_keep_their_values(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "image": _images(3, (2, 2)),
            "label": [0.5, float("nan"), 2.0],
            "flag": [True, False, True],
            "count": pd.array([1, None, 3], dtype="Int64"),
        }
    )
    back = read_split(write_split(tmp_path / "x.safetensors", frame))
    assert back["label"].tolist()[0] == 0.5 and np.isnan(back["label"].iloc[1])
    assert back["flag"].tolist() == [True, False, True]
    assert back["count"].iloc[0] == 1 and np.isnan(back["count"].iloc[1])


def test_an_emptied_split_keeps_its_image_shape(tmp_path: Path) -> None:
    path = write_split(tmp_path / "test.safetensors", image_split_frame(_digits_frame(3), "source"))
    empty = read_split(path).iloc[:0]  # every row erased
    back = read_split(write_split(path, empty))
    assert len(back) == 0 and back.attrs["image_shapes"] == {"image": (8, 8)}
    assert list(back.columns) == ["image", "label", "row", "source"]


def test_images_that_do_not_stack_are_refused_naming_the_file(tmp_path: Path) -> None:
    frame = pd.DataFrame({"image": _images(3, (8, 8)), "label": [0, 1, 2]})
    frame.at[2, "image"] = np.zeros((8, 9), dtype=np.uint8)
    with pytest.raises(ShipyardError, match="row 2") as err:
        write_split(tmp_path / "x.safetensors", frame)
    assert err.value.where == str(tmp_path / "x.safetensors") and not (tmp_path / "x.safetensors").exists()
    frame.at[2, "image"] = np.zeros((8, 8), dtype=np.float32)
    with pytest.raises(ShipyardError, match="uint8"):
        write_split(tmp_path / "x.safetensors", frame)


def test_a_source_column_named_like_a_key_is_refused() -> None:
    with pytest.raises(ShipyardError, match="`row`"):
        image_split_frame(pd.DataFrame({"image": _images(1, (2, 2)), "row": [1]}), "source")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "cannot be read"),  # truncated
        (lambda p: p.write_bytes(b"\x00" * 64), "cannot be read"),  # not a safetensors file at all
        (lambda p: p.unlink(), "missing"),
    ],
)
def test_a_damaged_or_missing_split_names_the_file(tmp_path: Path, damage, message: str) -> None:
    path = write_split(tmp_path / "splits" / "test.safetensors", image_split_frame(_digits_frame(4), "source"))
    damage(path)
    with pytest.raises(ShipyardError, match=message) as err:
        read_split(path)
    assert err.value.where == str(path) and "train the run again" in (err.value.hint or "")


def test_a_split_of_another_format_is_refused(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "test.safetensors"
    save_file({"image": np.zeros((1, 2, 2), np.uint8)}, str(path), metadata={"shipyard": json.dumps({"format": "x"})})
    with pytest.raises(ShipyardError, match="unknown format"):
        read_split(path)


def test_forget_removes_image_rows_by_source_and_row(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    digits = _digits_frame(40)
    train = write_split(run / "splits" / "train.safetensors", image_split_frame(digits.iloc[:30], "source"))
    test = write_split(run / "splits" / "test.safetensors", image_split_frame(digits.iloc[30:], "test_source"))
    # rows 4 and 62 of the training source; row 62 of the test source is another image and must stay
    result = forget(run, "source == 'source' and row in [4, 62]")
    assert result["rows_removed"] == 1 and result["by_split"] == {"train": 1, "test": 0}
    kept = read_split(train)
    assert 4 not in kept["row"].tolist() and len(kept) == 29
    expected = digits.iloc[:30].drop(index=4)
    assert all(np.array_equal(a, b) for a, b in zip(kept["image"], expected["image"], strict=True))
    assert stat.S_IMODE(train.stat().st_mode) == 0o600
    # the same key in the test source: now erased there, the training split untouched
    result = forget(run, "source == 'test_source' and row == 62")
    assert result["by_split"] == {"train": 0, "test": 1} and len(read_split(test)) == 9 and len(read_split(train)) == 29
    entries = AuditLog.for_root(run.parent).entries(action="data.forget")
    assert [sorted(e.details["columns"]) for e in entries] == [["row", "source"]] * 2  # never the values
