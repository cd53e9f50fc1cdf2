"""`shipyard init`'s inference (issue #12 items 12, 13, 16): the task from the target, free text in any script,
class-count refusal, declared text columns read as strings, and the majority-class baseline warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from shipyard.config.loader import validate_dict
from shipyard.config.schema import SourceConfig
from shipyard.data.sources import load_source
from shipyard.data.starter import starter_job
from shipyard.data.target import check_class_count, infer_task
from shipyard.data.types import infer_type
from shipyard.errors import ShipyardError
from shipyard.evaluation.baseline import baseline_check
from shipyard.evaluation.metrics import compute_metrics

HOUSING_COLUMNS = (
    "longitude,latitude,housing_median_age,total_rooms,total_bedrooms,population,households,median_income,"
    "median_house_value"
)


def housing_csv(data_dir: Path, tmp_path: Path, rows: int = 400) -> Path:
    """The first rows of California housing with its documented header (the published file has none)."""
    lines = (data_dir / "california_housing" / "cal_housing.data").read_text().splitlines()[:rows]
    path = tmp_path / "housing.csv"
    path.write_text(HOUSING_COLUMNS + "\n" + "\n".join(lines) + "\n")
    return path


def test_infer_task_from_the_target() -> None:
    prices = pd.Series([452600.0, 358500.0, 352100.0, 341300.0] * 10 + [float(i) for i in range(30)], name="price")
    task, reason = infer_task(prices)
    assert task == "regression" and "34 distinct values" in reason
    assert infer_task(pd.Series([0.5, 1.0, 1.5, 2.0], name="y"))[0] == "regression"  # fractions are not class ids
    assert infer_task(pd.Series([0, 1, 1, 0, 2], name="y"))[0] == "classification"
    assert infer_task(pd.Series(["yes", "no"] * 40, name="y"))[0] == "classification"


def test_init_infers_regression_for_a_house_price(data_dir: Path, tmp_path: Path) -> None:
    starter = starter_job(housing_csv(data_dir, tmp_path), None, "median_house_value")
    assert starter.task == "regression"
    assert any("median_house_value" in n and "distinct values" in n for n in starter.notes)
    job = validate_dict(yaml.safe_load(starter.text))
    assert job.task == "regression" and job.data.split.method == "random"
    assert "inferred from the data" in starter.text  # the reason is in the YAML too


def test_classification_with_thousands_of_classes_is_refused(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ShipyardError, match=r"has \d+ classes.*numeric values") as err:
        starter_job(housing_csv(data_dir, tmp_path), "classification", "median_house_value")
    assert "task: regression" in (err.value.hint or "")
    # many string labels, each seen often (150 intents), stay allowed; mostly-unique strings do not
    check_class_count(pd.Series([f"intent{i % 150}" for i in range(3000)], name="y"), where="f")
    with pytest.raises(ShipyardError, match="too many"):
        check_class_count(pd.Series([f"user{i}" for i in range(300)], name="y"), where="f")
    check_class_count(pd.Series([f"c{i}" for i in range(50)], name="y"), where="f")  # tiny data: fine


def test_chinese_reviews_are_text(data_dir: Path) -> None:
    frame = load_source(
        SourceConfig(path=str(data_dir / "chnsenticorp" / "ChnSentiCorp_htl_all.csv"), limit=300), base_dir=data_dir
    )
    assert infer_type(frame["review"]) == "text"
    # short Chinese category names stay categorical
    assert infer_type(pd.Series(["电子产品", "服装", "食品", "电子产品"] * 20)) == "categorical"


def test_init_writes_a_transformer_job_for_chinese_and_english_text(data_dir: Path) -> None:
    for path, column in (
        (data_dir / "chnsenticorp" / "ChnSentiCorp_htl_all.csv", "review"),
        (data_dir / "sst2" / "train.tsv", "sentence"),
    ):
        starter = starter_job(path, None, "label")
        job = validate_dict(yaml.safe_load(starter.text))
        assert job.task == "classification"
        assert job.model.type == "transformer", starter.text
        assert [(f.name, f.type) for f in job.data.feature_specs() or []] == [(column, "text")]
        assert job.data.cleaning.text_missing == "drop"  # ChnSentiCorp's one empty review
        assert "once a text model is available" not in starter.text


def test_declared_text_column_keeps_digit_strings(tmp_path: Path) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("code,label\n007,a\n12345,b\n42,a\n")
    cfg = SourceConfig(path=str(path))
    assert load_source(cfg, base_dir=tmp_path, text_columns=["code"])["code"].tolist() == ["007", "12345", "42"]
    assert load_source(cfg, base_dir=tmp_path)["code"].tolist() == [7, 12345, 42]  # undeclared: numbers


def _metrics(y: list[int], proba: list[list[float]]) -> dict:
    return {"test": compute_metrics("classification", np.array(y), np.array(proba), ["0", "1"])}


def test_majority_baseline_warning() -> None:
    y = [1, 1, 0] * 30  # majority share 2/3
    stuck = _metrics(y, [[0.4, 0.6]] * len(y))  # one class for every row, AUC 0.5
    warnings = baseline_check("classification", stuck)["warnings"]
    assert len(warnings) == 1 and "majority share 0.667" in warnings[0] and "ROC AUC 0.500" in warnings[0]
    good = _metrics(y, [[0.1, 0.9] if t else [0.8, 0.2] for t in y])
    assert baseline_check("classification", good) == {}
    # imbalanced data: accuracy at the majority share but a ranking with signal is not flagged
    y2 = [0] * 90 + [1] * 10
    ranked = _metrics(y2, [[0.7, 0.3] if t else [0.9, 0.1] for t in y2])
    assert baseline_check("classification", ranked) == {}
    assert baseline_check("regression", {"test": {"r2": 0.0}}) == {}
