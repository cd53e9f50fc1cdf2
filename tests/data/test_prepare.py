"""prepare_data end to end on small real and synthetic data, and the starter config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from shipyard.config import validate_dict
from shipyard.data.prepare import PreparedData, prepare_data
from shipyard.data.starter import starter_config
from shipyard.errors import ShipyardError

ADULT = {"skip_initial_space": True, "na_values": ["?"]}


def job(data: dict, task: str = "classification", model: str = "mlp", **extra) -> object:
    return validate_dict({"task": task, "data": data, "model": {"type": model}, **extra})


def test_adult_with_test_file(data_dir: Path) -> None:
    j = job(
        {
            "source": {"path": "${SHIPYARD_DATA_DIR}/adult/adult.data", "limit": 2000, **ADULT},
            "test_source": {
                "path": "${SHIPYARD_DATA_DIR}/adult/adult.test",
                "limit": 500,
                "strip_suffix": {"Y": "."},
                **ADULT,
            },
            "target": "Y",
            "drop_columns": ["fnlwgt"],
            "split": {"validation": 0.2},
        },
        evaluation={"sensitive_features": ["sex"]},
    )
    p = prepare_data(j, base_dir=Path("."))
    assert isinstance(p, PreparedData)
    assert p.labels == ["<=50K", ">50K"]
    assert p.column_types["age"] == "numeric" and p.column_types["sex"] == "categorical"
    assert "fnlwgt" not in p.column_types
    rows = {k: len(v) for k, v in p.splits.items()}
    assert rows["test"] == 500 and rows["validation"] == pytest.approx(
        0.2 * (rows["train"] + rows["validation"]), abs=2
    )
    x = p.splits["train"].inputs["x"]
    assert x.dtype == np.float32 and x.shape[1] == p.input_spec.n_features and not np.isnan(x).any()
    assert p.splits["test"].target.dtype == np.int64
    assert p.input_spec.kind == "tabular" and p.input_spec.n_outputs == 2
    s = json.loads(json.dumps(p.summary))
    assert s["rows"] == rows and s["missing"]["train"]["workclass"] > 0
    assert set(s["class_balance"]["test"]) == {"<=50K", ">50K"}
    assert "train_test_shared_rows" in s["leakage"]
    assert s["cleaning"]["source"]["rows_in"] == 2000


def test_mnist_images(data_dir: Path) -> None:
    j = job(
        {
            "source": {
                "format": "idx",
                "limit": 600,
                "images": "${SHIPYARD_DATA_DIR}/mnist/t10k-images-idx3-ubyte.gz",
                "labels": "${SHIPYARD_DATA_DIR}/mnist/t10k-labels-idx1-ubyte.gz",
            }
        },
        model="cnn",
    )
    p = prepare_data(j, base_dir=Path("."))
    assert p.input_spec.kind == "image" and p.input_spec.image_shape == (1, 28, 28)
    assert p.labels == [str(i) for i in range(10)]
    x = p.splits["train"].inputs["x"]
    assert x.shape[1:] == (1, 28, 28) and abs(float(x.mean())) < 1e-3


def test_sklearn_digits_kfold_seed_from_training() -> None:
    data = {
        "source": {"format": "sklearn_digits", "limit": 300},
        "split": {"method": "kfold", "folds": 3, "fold": 1, "test": 0.1},
    }
    a = prepare_data(job(data, training={"seed": 5}), base_dir=Path("."))
    b = prepare_data(job(data, training={"seed": 5}), base_dir=Path("."))
    assert len(a.splits["test"]) == 30 and len(a.splits["validation"]) == 90
    assert a.splits["validation"].frame.index.equals(b.splits["validation"].frame.index)
    assert a.summary["split"]["seed"] == 5


def test_regression_and_missing_target_suggestion(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["size,rooms,price"] + [f"{rng.uniform(20, 200):.1f},{i % 5},{i * 1.5}" for i in range(60)]
    (tmp_path / "h.csv").write_text("\n".join(lines) + "\n")
    p = prepare_data(job({"source": {"path": "h.csv"}, "target": "price"}, task="regression"), base_dir=tmp_path)
    assert p.labels is None and p.splits["train"].target.dtype == np.float32
    assert p.input_spec.n_outputs == 1 and p.input_spec.n_features == 2
    with pytest.raises(ShipyardError, match=r"h\.csv \(data\.target\): column 'prise' not found.*'price'"):
        prepare_data(job({"source": {"path": "h.csv"}, "target": "prise"}, task="regression"), base_dir=tmp_path)


def test_text_feature_for_tabular_model_is_error(tmp_path: Path) -> None:
    rows = ["review,label"] + [f"this hotel room number {i} was quite nice overall,{i % 2}" for i in range(20)]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ShipyardError, match=r"column 'review' is free text.*`mlp`"):
        prepare_data(job({"source": {"path": "r.csv"}}), base_dir=tmp_path)


def test_bad_numeric_value_is_reported_with_row(tmp_path: Path) -> None:
    rows = ["age,label"] + [f"{20 + i},{i % 2}" for i in range(30)]
    rows[17] = "abc,1"  # data row 17 (rows[0] is the header)
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ShipyardError, match=r"a\.csv, row 17, column 'age'.*'abc'"):
        prepare_data(job({"source": {"path": "a.csv"}}), base_dir=tmp_path)


def test_starter_config_validates(data_dir: Path, tmp_path: Path) -> None:
    text = starter_config(data_dir / "adult" / "adult.data", "classification", "Y")
    assert text.startswith("#")
    parsed = yaml.safe_load(text)
    j = validate_dict(parsed)
    assert j.model.type == "mlp" and j.data.source.skip_initial_space and j.data.source.na_values == ["?"]
    assert j.data.source.path == "${SHIPYARD_DATA_DIR}/adult/adult.data"
    types = {f.name: f.type for f in j.data.feature_specs() or []}
    assert types["age"] == "numeric" and types["workclass"] == "categorical"
    img = starter_config(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz", "classification", "label")
    assert validate_dict(yaml.safe_load(img)).model.type == "cnn"
    with pytest.raises(ShipyardError, match=r"'Z' not found"):
        starter_config(data_dir / "adult" / "adult.data", "classification", "Z")
