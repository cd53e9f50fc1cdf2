"""load_source: every format, the real data sets' quirks, and one test per bad-input case."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shipyard.config.schema import SourceConfig
from shipyard.data.sources import load_source
from shipyard.errors import ShipyardError


def load(tmp_path: Path, **kw) -> object:
    return load_source(SourceConfig(**kw), base_dir=tmp_path)


# ------------------------------------------------------------------------------------------- formats


def test_csv_types_na_and_row_index(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b,c\n1,x,2.5\n2,?,\n3,y,1\n")
    df = load(tmp_path, path="t.csv", na_values=["?"])
    assert list(df.columns) == ["a", "b", "c"]
    assert df["a"].tolist() == [1, 2, 3]
    assert df["b"].isna().tolist() == [False, True, False]
    assert df["c"].dtype == np.float64 and np.isnan(df["c"].iloc[1])
    assert df.index.tolist() == [1, 2, 3]  # 1-based data row numbers, used in error messages


def test_tsv_keeps_quotes_and_jsonl_and_parquet(tmp_path: Path) -> None:
    (tmp_path / "t.tsv").write_text('sentence\tlabel\nsay "hi" \t1\nbye\t0\n')
    df = load(tmp_path, path="t.tsv")
    assert df["sentence"].tolist() == ['say "hi" ', "bye"]
    (tmp_path / "t.jsonl").write_text('{"x": 1, "y": "a"}\n\n{"x": 2, "y": "b"}\n')
    df = load(tmp_path, path="t.jsonl")
    assert df["x"].tolist() == [1, 2] and df["y"].tolist() == ["a", "b"]
    import pandas as pd

    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "c"]}).to_parquet(tmp_path / "t.parquet")
    df = load(tmp_path, path="t.parquet", limit=2)
    assert df["y"].tolist() == ["a", "b"]


def test_headerless_with_column_names_and_limit(tmp_path: Path) -> None:
    (tmp_path / "h.data").write_text("1,2\n3,4\n5,6\n")
    df = load(tmp_path, path="h.data", header=False, column_names=["p", "q"], limit=2)
    assert df.to_dict("list") == {"p": [1, 3], "q": [2, 4]}


def test_delimited_lines_splits_on_last_separator(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_bytes("a@b caf\xe9@positive\r\nplain@neutral\r\n".encode("latin-1"))
    df = load(tmp_path, path="s.txt", format="delimited_lines", line_separator="@", encoding="latin-1")
    assert df["text"].tolist() == ["a@b café", "plain"]
    assert df["label"].tolist() == ["positive", "neutral"]


def test_image_folder_grayscale_resize(tmp_path: Path) -> None:
    for label, value in (("cat", 10), ("dog", 200)):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (6, 4), (value, value, value)).save(tmp_path / "imgs" / label / f"{i}.png")
    df = load(tmp_path, path="imgs")
    assert df["label"].tolist() == ["cat", "cat", "dog", "dog"]
    assert df["image"].iloc[0].shape == (4, 6) and df["image"].iloc[0].dtype == np.uint8
    assert int(df["image"].iloc[3][0, 0]) == 200
    df = load(tmp_path, path="imgs", grayscale=False, image_size=(3, 5))
    assert df["image"].iloc[0].shape == (3, 5, 3)


def test_sklearn_digits_scaled_to_uint8() -> None:
    df = load_source(SourceConfig(format="sklearn_digits", limit=50), base_dir=Path("."))
    assert len(df) == 50 and list(df.columns) == ["image", "label"]
    img = df["image"].iloc[0]
    assert img.shape == (8, 8) and img.dtype == np.uint8
    assert max(int(i.max()) for i in df["image"]) == 255  # 16 (sklearn's top intensity) -> 255
    assert df["label"].tolist()[:3] == [0, 1, 2]


# ---------------------------------------------------------------------------------------- real data


def test_adult_quirks(data_dir: Path) -> None:
    cfg = SourceConfig(
        path="${SHIPYARD_DATA_DIR}/adult/adult.test",
        skip_initial_space=True,
        na_values=["?"],
        strip_suffix={"Y": "."},
        limit=500,
    )
    df = load_source(cfg, base_dir=Path("."))
    assert len(df) == 500 and df.shape[1] == 15
    assert set(df["Y"]) == {"<=50K", ">50K"}
    assert df["age"].dtype.kind == "i"
    assert df["workclass"].isna().sum() > 0  # '?' became missing
    assert not df["workclass"].dropna().str.startswith(" ").any()


def test_california_housing_headerless(data_dir: Path) -> None:
    names = [
        "longitude",
        "latitude",
        "housing_median_age",
        "total_rooms",
        "total_bedrooms",
        "population",
        "households",
        "median_income",
        "median_house_value",
    ]
    cfg = SourceConfig(
        path=str(data_dir / "california_housing/cal_housing.data"), header=False, column_names=names, limit=100
    )
    df = load_source(cfg, base_dir=Path("."))
    assert list(df.columns) == names and len(df) == 100
    assert df["median_house_value"].iloc[0] == 452600.0


def test_financial_phrasebank_latin1(data_dir: Path) -> None:
    path = str(data_dir / "financial_phrasebank/Sentences_50Agree.txt")
    df = load_source(
        SourceConfig(path=path, format="delimited_lines", line_separator="@", encoding="latin-1"), base_dir=Path(".")
    )
    assert len(df) == 4846
    assert set(df["label"]) == {"negative", "neutral", "positive"}
    with pytest.raises(ShipyardError, match=r"Sentences_50Agree\.txt, line \d+.*not valid UTF-8"):
        load_source(SourceConfig(path=path, format="delimited_lines", line_separator="@"), base_dir=Path("."))


def test_mnist_idx(data_dir: Path) -> None:
    cfg = SourceConfig(
        format="idx",
        images=str(data_dir / "mnist/t10k-images-idx3-ubyte.gz"),
        labels=str(data_dir / "mnist/t10k-labels-idx1-ubyte.gz"),
        limit=100,
    )
    df = load_source(cfg, base_dir=Path("."))
    assert len(df) == 100
    assert df["image"].iloc[0].shape == (28, 28) and df["image"].iloc[0].dtype == np.uint8
    assert df["label"].iloc[0] == 7  # the first t10k digit is a 7


# --------------------------------------------------------------------------------------- bad inputs


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ShipyardError, match=r"nope\.csv.*does not exist"):
        load(tmp_path, path="nope.csv")


def test_empty_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ShipyardError, match=r"e\.csv.*empty"):
        load(tmp_path, path="e.csv")
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(ShipyardError, match=r"h\.csv.*no data rows"):
        load(tmp_path, path="h.csv")


@pytest.mark.parametrize("bad_row", ["1,2,3", "1"])
def test_ragged_csv_names_row_and_line(tmp_path: Path, bad_row: str) -> None:
    (tmp_path / "r.csv").write_text(f"a,b\n1,2\n3,4\n{bad_row}\n5,6\n")
    with pytest.raises(ShipyardError, match=r"r\.csv, line 4: row 3 has \d fields, expected 2"):
        load(tmp_path, path="r.csv")


def test_non_utf8_without_encoding_names_line(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_bytes("a,b\nx,1\ncaf\xe9,2\n".encode("latin-1"))
    with pytest.raises(ShipyardError, match=r"l\.csv, line 3: byte .* not valid UTF-8.*encoding"):
        load(tmp_path, path="l.csv")
    df = load(tmp_path, path="l.csv", encoding="latin-1")
    assert df["a"].tolist() == ["x", "café"]


def test_truncated_image_names_file(tmp_path: Path) -> None:
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    Image.new("L", (8, 8), 5).save(tmp_path / "imgs" / "a" / "good.png")
    data = (tmp_path / "imgs" / "a" / "good.png").read_bytes()
    (tmp_path / "imgs" / "a" / "zbad.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ShipyardError, match=r"zbad\.png: cannot read image"):
        load(tmp_path, path="imgs")


def _idx(path: Path, magic: int, dims: list[int], body: bytes, gz: bool = True) -> Path:
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + body
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def test_idx_wrong_magic_names_file_and_numbers(tmp_path: Path) -> None:
    images = _idx(tmp_path / "img.gz", 0x00000801, [2], b"\x00\x01")
    labels = _idx(tmp_path / "lab.gz", 0x00000801, [2], b"\x00\x01")
    with pytest.raises(ShipyardError, match=r"img\.gz: wrong IDX magic number 0x00000801.*expected 0x00000803"):
        load(tmp_path, format="idx", images=str(images), labels=str(labels))


def test_idx_count_mismatch(tmp_path: Path) -> None:
    images = _idx(tmp_path / "img", 0x00000803, [3, 2, 2], bytes(12), gz=False)
    labels = _idx(tmp_path / "lab", 0x00000801, [2], b"\x00\x01", gz=False)
    with pytest.raises(ShipyardError, match=r"img / .*lab: 3 images but 2 labels"):
        load(tmp_path, format="idx", images=str(images), labels=str(labels))
    ok = _idx(tmp_path / "lab3", 0x00000801, [3], b"\x00\x01\x02", gz=False)
    df = load(tmp_path, format="idx", images=str(images), labels=str(ok))
    assert df["label"].tolist() == [0, 1, 2] and df["image"].iloc[0].shape == (2, 2)


def test_idx_truncated_body(tmp_path: Path) -> None:
    images = _idx(tmp_path / "img", 0x00000803, [3, 2, 2], bytes(10))
    labels = _idx(tmp_path / "lab", 0x00000801, [3], b"\x00\x01\x02")
    with pytest.raises(ShipyardError, match=r"img: .*10 data bytes.*needs 12"):
        load(tmp_path, format="idx", images=str(images), labels=str(labels))


def test_unknown_suffix_and_bad_strip_suffix_column(tmp_path: Path) -> None:
    (tmp_path / "x.weird").write_text("a\n1\n")
    with pytest.raises(ShipyardError, match=r"x\.weird.*cannot infer the format"):
        load(tmp_path, path="x.weird")
    (tmp_path / "t.csv").write_text("a\n1\n")
    with pytest.raises(ShipyardError, match=r"strip_suffix.*'Y'"):
        load(tmp_path, path="t.csv", strip_suffix={"Y": "."})
