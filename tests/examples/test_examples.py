"""Every YAML job in examples/ validates; the quick ones run end to end here, the long ones in bench/examples.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import shipyard
from shipyard.artifact import Artifact
from shipyard.config import load_job
from shipyard.evaluation.saved import evaluate_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    job = load_job(path)
    assert job.task in ("classification", "regression", "recommendation", "retrieval")


def test_linear_regression_predicts_five(tmp_path: Path) -> None:
    job = load_job(EXAMPLES / "linear_regression.yaml")
    job._base_dir = EXAMPLES
    result = shipyard.run(job, run_dir=tmp_path / "line")
    art = Artifact.load(result.run_dir)
    value = art.predict_frame(pd.DataFrame({"x": [5.0]}))["value"][0]
    assert value == pytest.approx(5.0, abs=0.05)


def test_digits_cnn_reaches_target_and_predict_reproduces_metrics(tmp_path: Path) -> None:
    job = load_job(EXAMPLES / "digits_cnn.yaml")
    result = shipyard.run(job, run_dir=tmp_path / "digits")
    assert result.metrics["test"]["accuracy"] >= 0.98
    # the saved model and preprocessing, rebuilt from the run's own config, give the same test metrics exactly
    again = evaluate_run(result.run_dir)
    assert again["accuracy"] == result.metrics["test"]["accuracy"]
    assert again["log_loss"] == pytest.approx(result.metrics["test"]["log_loss"], abs=1e-6)
    report = (result.run_dir / "report.html").read_text()
    assert "data:image/png;base64" in report and "Confusion" in report
