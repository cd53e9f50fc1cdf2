"""First contact through the command line (issue #12 items 12, 13, 16): `init` says which task it picked and why,
`validate` and `train` refuse a classification target with thousands of classes, a classifier stuck at the
majority class is flagged loudly, and digit-only text trains and predicts when declared text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from shipyard.cli import app

runner = CliRunner()

HOUSING_COLUMNS = (
    "longitude,latitude,housing_median_age,total_rooms,total_bedrooms,population,households,median_income,"
    "median_house_value"
)


@pytest.fixture
def housing(data_dir: Path, tmp_path: Path) -> Path:
    lines = (data_dir / "california_housing" / "cal_housing.data").read_text().splitlines()[:400]
    path = tmp_path / "housing.csv"
    path.write_text(HOUSING_COLUMNS + "\n" + "\n".join(lines) + "\n")
    return path


def test_init_picks_regression_and_says_why(housing: Path, tmp_path: Path) -> None:
    out = tmp_path / "job.yaml"
    res = runner.invoke(app, ["init", "--data", str(housing), "--target", "median_house_value", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "task: regression" in res.output and "distinct values" in res.output
    assert yaml.safe_load(out.read_text())["task"] == "regression"
    assert "default: classification" not in runner.invoke(app, ["init", "--help"]).output


def test_validate_and_train_refuse_a_price_as_classes(housing: Path, tmp_path: Path) -> None:
    out = tmp_path / "job.yaml"
    assert runner.invoke(app, ["init", "--data", str(housing), "--target", "median_house_value", "--output", str(out)])
    out.write_text(out.read_text().replace("task: regression", "task: classification"))
    checked = runner.invoke(app, ["validate", str(out)])
    assert checked.exit_code == 2
    assert "classes" in checked.output and "task: regression" in checked.output
    run_dir = tmp_path / "run"
    trained = runner.invoke(app, ["train", str(out), "--run-dir", str(run_dir), "--quiet"])
    assert trained.exit_code == 2 and "too many to learn as classes" in trained.output
    assert not run_dir.exists()


def test_classifier_at_the_majority_baseline_is_flagged(tmp_path: Path) -> None:
    # the only feature carries no signal, as ChnSentiCorp's reviews did when typed categorical
    rows = "".join(f"x,{'pos' if i % 3 else 'neg'}\n" for i in range(90))
    (tmp_path / "d.csv").write_text("review,label\n" + rows)
    (tmp_path / "job.yaml").write_text(
        "task: classification\n"
        "data: {source: {path: d.csv}, target: label, features: [{name: review, type: categorical}],\n"
        "       cleaning: {drop_duplicates: false}, split: {method: stratified, validation: 0.2, test: 0.3}}\n"
        "model: {type: mlp, hidden: [4]}\n"
        "training: {epochs: 2, batch_size: 16, seed: 0}\n"
    )
    run_dir = tmp_path / "run"
    res = runner.invoke(app, ["train", str(tmp_path / "job.yaml"), "--run-dir", str(run_dir), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "WARNING" in res.output and "majority class" in res.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert any(w.startswith("test:") and "majority share 0.667" in w for w in metrics["warnings"])
    assert "majority class" in (run_dir / "report.html").read_text()


DIGITS_JOB = """task: classification
data:
  source: {{path: d.csv}}
  target: label
  features: [{features}]
  split: {{method: stratified, validation: 0.2, test: 0.2}}
  text: {{max_length: 16}}
model: {{type: transformer, pretrained: minilm, mode: frozen}}
training: {{batch_size: 16, epochs: 1, learning_rate: 0.001, seed: 0, num_threads: 1}}
"""


def digits_csv(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("code,label\n" + "".join(f"{1000 + 7 * i},{i % 2}\n" for i in range(40)))


def test_digit_only_text_inferred_numeric_names_the_declaration(tmp_path: Path) -> None:
    digits_csv(tmp_path)
    inferred = tmp_path / "inferred.yaml"
    inferred.write_text(DIGITS_JOB.format(features="code"))
    res = runner.invoke(app, ["train", str(inferred), "--run-dir", str(tmp_path / "r0"), "--quiet"])
    assert res.exit_code == 2 and "{name: code, type: text}" in res.output, res.output
    assert not (tmp_path / "r0").exists()


def test_digit_only_text_trains_and_predicts_when_declared(tmp_path: Path) -> None:
    digits_csv(tmp_path)
    declared = tmp_path / "declared.yaml"
    declared.write_text(DIGITS_JOB.format(features="{name: code, type: text}"))
    run_dir = tmp_path / "r1"
    res = runner.invoke(app, ["train", str(declared), "--run-dir", str(run_dir), "--quiet"])
    assert res.exit_code == 0, res.output
    (tmp_path / "rows.csv").write_text("code\n12345\n007\n")
    out = tmp_path / "pred.csv"
    pred = runner.invoke(app, ["predict", str(run_dir), "--input", str(tmp_path / "rows.csv"), "--output", str(out)])
    assert pred.exit_code == 0, pred.output
    assert len(out.read_text().splitlines()) == 3


def test_init_text_job_trains_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "sst2.tsv"
    data.write_text("\n".join((data_dir / "sst2" / "train.tsv").read_text().splitlines()[:61]) + "\n")
    out = tmp_path / "job.yaml"
    res = runner.invoke(app, ["init", "--data", str(data), "--target", "label", "--output", str(out)])
    assert res.exit_code == 0, res.output
    job = yaml.safe_load(out.read_text())
    assert job["model"]["type"] == "transformer"
    job["training"].update(epochs=1, num_threads=1)  # the generated job, only shorter
    job["data"]["text"]["max_length"] = 32
    out.write_text(yaml.safe_dump(job))
    run_dir = tmp_path / "run"
    trained = runner.invoke(app, ["train", str(out), "--run-dir", str(run_dir), "--quiet"])
    assert trained.exit_code == 0, trained.output
    assert "accuracy" in json.loads((run_dir / "metrics.json").read_text())["test"]
