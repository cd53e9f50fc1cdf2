"""JSON documents and per-class text folders as data sources: an array of records, a `records_path` into an
object (CLINC150's `{"train": [[text, intent], ...]}`), one text file per class; and every bad shape refused with
the file and the record named."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from shipyard.config.schema import SourceConfig
from shipyard.data import sources
from shipyard.data.sources import load_source
from shipyard.errors import ShipyardError


def load(tmp_path: Path, **kw: object) -> pd.DataFrame:
    return load_source(SourceConfig(**kw), base_dir=tmp_path)


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------- json


def test_json_array_of_objects_is_inferred_from_the_suffix(tmp_path: Path) -> None:
    write_json(tmp_path / "rows.json", [{"text": "hi", "label": "greet"}, {"text": "bye", "label": "leave", "x": 2}])
    df = load(tmp_path, path="rows.json")
    assert df["text"].tolist() == ["hi", "bye"] and df["label"].tolist() == ["greet", "leave"]
    assert df["x"].isna().tolist() == [True, False]
    assert df.index.tolist() == [1, 2]


def test_clinc150_shape_records_path_and_column_names(tmp_path: Path) -> None:
    clinc = {
        "train": [["what is my balance", "balance"], ["book a flight", "book_flight"], ["hello", "greeting"]],
        "val": [["how much money do i have", "balance"]],
    }
    write_json(tmp_path / "data_full.json", clinc)
    df = load(tmp_path, path="data_full.json", records_path="train", column_names=["text", "intent"], limit=2)
    assert list(df.columns) == ["text", "intent"]
    assert df["intent"].tolist() == ["balance", "book_flight"]
    val = load(tmp_path, path="data_full.json", format="json", records_path="val", column_names=["text", "intent"])
    assert val["text"].tolist() == ["how much money do i have"]


def test_dotted_records_path_and_default_column_names(tmp_path: Path) -> None:
    write_json(tmp_path / "d.json", {"data": {"train": [[1, "a"], [2, "b"]]}})
    df = load(tmp_path, path="d.json", records_path="data.train")
    assert list(df.columns) == ["column_0", "column_1"] and df["column_0"].tolist() == [1, 2]


def test_na_values_apply_to_json_strings(tmp_path: Path) -> None:
    write_json(tmp_path / "d.json", [{"a": "?", "b": 1}, {"a": "x", "b": 2}])
    df = load(tmp_path, path="d.json", na_values=["?"])
    assert df["a"].isna().tolist() == [True, False]


@pytest.mark.parametrize(
    ("value", "kw", "needles"),
    [
        ({"train": [], "val": []}, {}, ["records_path", "train", "val"]),
        ({"train": [["a", "b"]]}, {"records_path": "test"}, ["records_path", "'test'", "train"]),
        ({"train": {"x": 1}}, {"records_path": "train.x"}, ["records_path", "train.x"]),
        ([{"a": 1}, [1, 2]], {}, ["record 2", "object"]),
        ([["a", "b"], ["c"]], {"column_names": ["text", "label"]}, ["record 2", "1 value", "2"]),
        ([1, 2, 3], {}, ["record 1", "int"]),
        ([], {}, ["no records"]),
    ],
)
def test_bad_json_shapes_name_the_file_and_record(tmp_path: Path, value: object, kw: dict, needles: list) -> None:
    path = write_json(tmp_path / "d.json", value)
    with pytest.raises(ShipyardError) as info:
        load(tmp_path, path="d.json", **kw)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message, message


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text('[\n {"a": 1},\n {"a": 2,}\n]\n')
    with pytest.raises(ShipyardError, match="line 3"):
        load(tmp_path, path="d.json")


def test_json_document_read_as_jsonl_says_to_use_json(tmp_path: Path) -> None:
    write_json(tmp_path / "d.json", {"train": [["a", "b"]]})
    (tmp_path / "d.json").write_text(json.dumps({"train": [["a", "b"]]}, indent=2))
    with pytest.raises(ShipyardError, match="format: json"):
        load(tmp_path, path="d.json", format="jsonl")


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_deeply_nested_json_is_a_clear_error(tmp_path: Path, fmt: str) -> None:
    (tmp_path / "d.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ShipyardError, match="nested too deeply"):
        load(tmp_path, path="d.json", format=fmt)


def test_oversized_json_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(tmp_path / "d.json", [{"a": i} for i in range(100)])
    monkeypatch.setattr(sources, "MAX_JSON_BYTES", 200)
    with pytest.raises(ShipyardError, match="too large"):
        load(tmp_path, path="d.json")


# ------------------------------------------------------------------------------------------ text folders


def test_text_folder_one_file_per_class(tmp_path: Path) -> None:
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "pos.txt").write_text("a lovely film\n\nwarm and witty\n", encoding="utf-8")
    (folder / "neg.txt").write_text("dull\n", encoding="utf-8")
    (folder / "README").write_text("not a class\n")
    df = load(tmp_path, path="reviews")  # inferred: a folder of .txt files and no sub-folders
    assert list(df.columns) == ["text", "label"]
    assert sorted(zip(df["label"], df["text"], strict=True)) == [
        ("neg", "dull"),
        ("pos", "a lovely film"),
        ("pos", "warm and witty"),
    ]
    assert load(tmp_path, path="reviews", format="text_folder", limit=1)["text"].tolist() == ["dull"]


def test_text_folder_respects_encoding(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "pos.txt").write_bytes("très bien\n".encode("latin-1"))
    with pytest.raises(ShipyardError, match="line 1"):
        load(tmp_path, path="t", format="text_folder")
    assert load(tmp_path, path="t", format="text_folder", encoding="latin-1")["text"].tolist() == ["très bien"]


def test_text_folder_without_text_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShipyardError, match=r"\.txt"):
        load(tmp_path, path="empty", format="text_folder")
    (tmp_path / "file.txt").write_text("x\n")
    with pytest.raises(ShipyardError, match="folder"):
        load(tmp_path, path="file.txt", format="text_folder")
