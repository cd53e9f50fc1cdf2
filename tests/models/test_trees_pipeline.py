"""A LightGBM job end to end: run folder, artifact (LightGBM text format), predict, explain, report, refusals."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import shipyard
from shipyard.artifact import Artifact
from shipyard.config.schema import Job
from shipyard.errors import ShipyardError


def _adult(data_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "task": "classification",
        "data": {
            "source": {
                "path": str(data_dir / "adult" / "adult.data"),
                "skip_initial_space": True,
                "na_values": ["?"],
                "limit": 3000,
            },
            "target": "Y",
            "split": {"validation": 0.15, "test": 0.15},
        },
        "model": {"type": "lightgbm", "n_estimators": 200, "early_stopping_rounds": 20, "class_weight": "balanced"},
        "training": {"seed": 0, "num_threads": 1},
        "evaluation": {"sensitive_features": ["sex"]},
        **extra,
    }


@pytest.fixture(scope="module")
def adult_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return shipyard.run(Job.model_validate(_adult(data_dir)), run_dir=tmp_path_factory.mktemp("runs") / "adult")


def test_run_folder_artifact_and_predictions(adult_run: Any) -> None:
    run_dir = adult_run.run_dir
    assert adult_run.metrics["test"]["accuracy"] > 0.78  # balanced class weights trade accuracy for recall
    assert "fairness" in adult_run.metrics
    meta = json.loads((run_dir / "model" / "shipyard.json").read_text())
    assert meta["backend"] == "lightgbm" and meta["native"]["trees"] == meta["native"]["best_iteration"]
    assert not (run_dir / "model" / "model.safetensors").exists() and (run_dir / "model" / "model.txt").is_file()
    art = Artifact.load(run_dir)
    rows = pd.read_parquet(run_dir / "splits" / "test.parquet").head(20)
    pred = art.predict_frame(rows)
    assert set(pred["label"]) <= {"<=50K", ">50K"} and pred["probabilities"].shape == (20, 2)
    html = (run_dir / "report.html").read_text()
    assert "Trees: feature importance and SHAP" in html and "Tree summary unavailable" not in html


def test_explain_uses_treeshap(adult_run: Any, tmp_path: Path) -> None:
    from shipyard.evaluation.explain import explain_run

    rows = pd.read_parquet(adult_run.run_dir / "splits" / "test.parquet").head(3)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    out = explain_run(adult_run.run_dir, tmp_path / "rows.csv", n=3)
    assert len(out) == 3 and "relationship" in out[0]["attributions"]


def test_differential_privacy_is_refused_before_any_folder(data_dir: Path, tmp_path: Path) -> None:
    raw = _adult(data_dir, privacy={"differential_privacy": {"target_epsilon": 3.0}})
    with pytest.raises(ShipyardError, match="DP-SGD") as exc:
        shipyard.run(Job.model_validate(raw), run_dir=tmp_path / "dp")
    assert "type: mlp" in str(exc.value.hint or exc.value)
    assert not (tmp_path / "dp").exists()


def test_regression_in_real_units(data_dir: Path, tmp_path: Path) -> None:
    names = ["longitude", "latitude", "age", "rooms", "bedrooms", "population", "households", "income", "value"]
    raw = {
        "task": "regression",
        "data": {
            "source": {
                "path": str(data_dir / "california_housing" / "cal_housing.data"),
                "format": "csv",
                "header": False,
                "column_names": names,
                "limit": 3000,
            },
            "target": "value",
            "split": {"method": "random", "validation": 0.15, "test": 0.15},
        },
        "model": {"type": "lightgbm", "n_estimators": 150, "early_stopping_rounds": 20},
        "training": {"seed": 0, "num_threads": 1},
    }
    result = shipyard.run(Job.model_validate(raw), run_dir=tmp_path / "cal")
    assert result.metrics["test"]["r2"] > 0.6
    meta = json.loads((tmp_path / "cal" / "model" / "shipyard.json").read_text())
    assert meta["target_scale"] is None  # trees split on the target in its own units


def test_optimize_exports_onnx_and_refuses_what_does_not_apply(adult_run: Any) -> None:
    from shipyard.optimize import optimize_run

    table = optimize_run(adult_run.run_dir, {"methods": ["onnx", "int8"]})
    rows = {r["method"]: r for r in table["rows"]}
    assert rows["onnx"]["status"] == "ok" and rows["onnx"]["exporter"] == "onnxmltools"
    assert rows["onnx"]["agreement"] == 1.0 and rows["onnx"]["delta"] == 0.0
    assert rows["int8"]["status"] == "failed" and "tree model" in rows["int8"]["error"]
    served = Artifact.load(adult_run.run_dir / "optimized" / "onnx")
    rows_in = pd.read_parquet(adult_run.run_dir / "splits" / "test.parquet").head(50)
    original = Artifact.load(adult_run.run_dir).predict_frame(rows_in)
    assert served.backend == "onnx" and served.predict_frame(rows_in)["label"] == original["label"]
