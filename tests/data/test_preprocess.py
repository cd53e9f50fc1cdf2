"""Preprocessor: fit on train only, encodings, images, targets, and identical output after save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.config.schema import CleaningConfig, OutlierClipping
from shipyard.data.preprocess import JSON_NAME, TENSORS_NAME, Preprocessor
from shipyard.errors import ShipyardError


def tab() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n": [1.0, 2.0, np.nan, 5.0],
            "c": ["red", "blue", "red", None],
            "y": ["yes", "no", "yes", "no"],
        }
    )


def make(cleaning: CleaningConfig | None = None, task: str = "classification") -> Preprocessor:
    return Preprocessor(
        features=["n", "c"],
        column_types={"n": "numeric", "c": "categorical", "y": "label"},
        target="y",
        task=task,
        cleaning=cleaning,
    )


def test_numeric_impute_scale_and_onehot() -> None:
    pre = make().fit(tab())
    x = pre.transform(tab())["x"]
    assert x.dtype == np.float32 and x.shape == (4, 1 + 3)
    assert pre.feature_names == ["n", "c=__missing__", "c=blue", "c=red"]
    filled = np.array([1.0, 2.0, 2.0, 5.0])  # median of train
    np.testing.assert_allclose(x[:, 0], (filled - filled.mean()) / filled.std(), rtol=1e-6)
    np.testing.assert_array_equal(x[:, 1:], [[0, 0, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    assert pre.labels == ["no", "yes"]
    assert pre.encode_target(tab()["y"]).tolist() == [1, 0, 1, 0]
    assert pre.decode_target(np.array([0, 1])) == ["no", "yes"]
    spec = pre.input_spec("classification")
    assert (spec.kind, spec.n_features, spec.n_outputs) == ("tabular", 4, 2)


def test_fit_uses_train_only() -> None:
    pre = make(CleaningConfig(scaling="minmax", missing="mean")).fit(tab())
    other = pd.DataFrame({"n": [100.0, np.nan], "c": ["red", "red"], "y": ["yes", "no"]})
    x = pre.transform(other)["x"]
    assert x[0, 0] == pytest.approx((100 - 1) / 4)  # train min 1, range 4; test values do not move them
    assert x[1, 0] == pytest.approx((8 / 3 - 1) / 4)  # train mean imputed


def test_unknown_category_ignore_and_error() -> None:
    new = pd.DataFrame({"n": [1.0], "c": ["green"]}, index=[7])
    x = make().fit(tab()).transform(new)["x"]
    assert x[0, 1:].tolist() == [0, 0, 0]  # all-zero one-hot
    ordinal = make(CleaningConfig(categorical_encoding="ordinal")).fit(tab())
    assert ordinal.transform(new)["x"][0, 1] == 0.0  # reserved index
    assert ordinal.transform(tab())["x"][:, 1].tolist() == [3.0, 2.0, 3.0, 1.0]
    strict = make(CleaningConfig(unknown_category="error")).fit(tab())
    new.attrs["source"] = "serve"
    with pytest.raises(ShipyardError, match=r"serve, row 7, column 'c'.*'green'"):
        strict.transform(new)


def test_max_categories_folds_rare_levels() -> None:
    df = pd.DataFrame({"n": range(7), "c": ["a", "a", "a", "b", "b", "c", "d"], "y": [0, 1] * 3 + [0]})
    pre = make(CleaningConfig(max_categories=3)).fit(df)
    assert pre.feature_names == ["n", "c=a", "c=b", "c=__other__"]
    x = pre.transform(df)["x"]
    assert x[5, 1:].tolist() == [0, 0, 1] and x[6, 1:].tolist() == [0, 0, 1]


def test_outlier_clipping_and_regression_target() -> None:
    df = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0, 1000.0], "c": ["a"] * 5, "y": [1.5, 2, 3, 4, 5]})
    pre = make(CleaningConfig(scaling="none", clip_outliers=OutlierClipping(factor=1.0)), "regression").fit(df)
    assert pre.transform(df)["x"][:, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 6.0]  # q3 + 1 * iqr
    t = pre.encode_target(df["y"])
    assert t.dtype == np.float32 and t.tolist() == [1.5, 2, 3, 4, 5]
    assert pre.input_spec().n_outputs == 1


def test_images_normalised_by_train_stats() -> None:
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (4, 5, 3), dtype=np.uint8) for _ in range(6)]
    df = pd.DataFrame({"image": pd.Series(imgs, dtype=object), "label": [0, 1, 2, 0, 1, 2]})
    pre = Preprocessor(features=["image"], column_types={"image": "image"}, target="label", task="classification").fit(
        df
    )
    x = pre.transform(df)["x"]
    assert x.shape == (6, 3, 4, 5) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1, atol=1e-4)
    assert pre.input_spec().image_shape == (3, 4, 5) and pre.labels == ["0", "1", "2"]
    bad = pd.DataFrame({"image": pd.Series([np.zeros((2, 2, 3), np.uint8)], dtype=object, index=[9])})
    with pytest.raises(ShipyardError, match=r"row 9.*shape \(2, 2, 3\)"):
        pre.transform(bad)


def test_text_feature_without_encoder_is_error() -> None:
    with pytest.raises(ShipyardError, match=r"column 'review' is text"):
        Preprocessor(features=["review"], column_types={"review": "text"}, target="y", task="classification")


@pytest.mark.parametrize("kind", ["tabular", "image"])
def test_save_load_identical(tmp_path: Path, kind: str) -> None:
    if kind == "tabular":
        df = tab()
        pre = make(CleaningConfig(clip_outliers=OutlierClipping())).fit(df)
    else:
        imgs = [np.full((3, 3), i * 20, np.uint8) for i in range(5)]
        df = pd.DataFrame({"image": pd.Series(imgs, dtype=object), "label": list("ababa")})
        pre = Preprocessor(
            features=["image"], column_types={"image": "image"}, target="label", task="classification"
        ).fit(df)
    pre.save(tmp_path)
    assert (tmp_path / JSON_NAME).is_file() and (tmp_path / TENSORS_NAME).is_file()
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob(".*.tmp"))
    loaded = Preprocessor.load(tmp_path)
    np.testing.assert_array_equal(loaded.transform(df)["x"], pre.transform(df)["x"])
    assert loaded.labels == pre.labels and loaded.feature_names == pre.feature_names
    assert loaded.input_spec() == pre.input_spec()


def test_load_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ShipyardError, match=r"preprocessor\.json.*missing"):
        Preprocessor.load(tmp_path)


class _CharEncoder:
    """A tiny TextEncoder for the plug-in test: character codes, padded to the longest text."""

    def fit(self, texts: list[str], **_: object) -> None:
        self.width = max(len(t) for t in texts)

    def transform(self, texts: list[str], **_: object) -> dict[str, np.ndarray]:
        ids = np.zeros((len(texts), self.width), np.int64)
        for i, t in enumerate(texts):
            codes = [ord(c) for c in t[: self.width]]
            ids[i, : len(codes)] = codes
        return {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)}

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "w.txt").write_text(str(self.width))

    @classmethod
    def load(cls, folder: Path) -> _CharEncoder:
        enc = cls()
        enc.width = int((folder / "w.txt").read_text())
        return enc


def test_text_encoder_plugin_round_trip(tmp_path: Path) -> None:
    from shipyard.data.preprocess import TextEncoder, register_text_encoder

    register_text_encoder("test-chars")(_CharEncoder)
    assert isinstance(_CharEncoder(), TextEncoder)
    df = pd.DataFrame({"t": ["Ab  c", "hello"], "y": ["p", "n"]})
    pre = Preprocessor(
        features=["t"], column_types={"t": "text"}, target="y", task="classification", text_encoder=_CharEncoder()
    ).fit(df)
    out = pre.transform(df)
    assert out["input_ids"][0].tolist() == [ord(c) for c in "Ab c"] + [0]  # whitespace collapsed first
    assert pre.input_spec().kind == "text"
    pre.save(tmp_path)
    again = Preprocessor.load(tmp_path).transform(df)
    np.testing.assert_array_equal(again["input_ids"], out["input_ids"])
