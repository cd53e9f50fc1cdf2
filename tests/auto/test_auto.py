"""`model: {type: auto}`: greedy ensemble selection, and a whole run that keeps its time budget although one
candidate is invalid and one would train for hours."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import shipyard
from shipyard.artifact import Artifact
from shipyard.evaluation.ensemble import combine, greedy_selection

BUDGET = 60.0  # the run takes about this long whatever the machine: the slow candidate is stopped at it


def test_greedy_selection_mixes_complementary_models() -> None:
    y = np.array([0, 1, 0, 1, 0, 1])
    a = np.array([[0.9, 0.1], [0.6, 0.4], [0.9, 0.1], [0.2, 0.8], [0.9, 0.1], [0.2, 0.8]])  # wrong on row 1
    b = np.array([[0.6, 0.4], [0.1, 0.9], [0.4, 0.6], [0.1, 0.9], [0.8, 0.2], [0.1, 0.9]])  # wrong on row 2
    bad = np.full((6, 2), 0.5)
    sel = greedy_selection([a, b, bad], y, "classification", rounds=10)
    assert sel.weights[2] == 0 and sel.weights[0] > 0 and sel.weights[1] > 0
    assert sel.history[-1] <= sel.history[0]
    mixed = combine([a, b, bad], sel.weights)
    assert (mixed.argmax(1) == y).all()
    values = greedy_selection([np.array([1.0, 2.0]), np.array([3.0, 4.0])], np.array([2.0, 3.0]), "regression", 4)
    assert values.weights == [0.5, 0.5]


@pytest.fixture(scope="module")
def auto_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("auto")
    frame = pd.read_csv(data_dir / "adult" / "adult.data", skipinitialspace=True, na_values=["?"])
    frame.sample(2500, random_state=0).to_csv(folder / "adult.csv", index=False)
    raw = {
        "task": "classification",
        "data": {"source": {"path": "adult.csv"}, "target": "Y", "split": {"validation": 0.2, "test": 0.2}},
        "model": {
            "type": "auto",
            "time_budget": f"{BUDGET:.0f}s",
            "bag_folds": 0,  # one model per candidate (the bagged run is below)
            "candidates": [
                {"type": "lightgbm", "num_leaves": 1},  # invalid: recorded as failed, with its reason
                {"type": "lightgbm", "n_estimators": 200, "early_stopping_rounds": 20},
                {"type": "lightgbm", "n_estimators": 200, "num_leaves": 7, "learning_rate": 0.1},
                {"type": "mlp", "hidden": [2048, 2048, 2048]},  # far too slow for the budget: stopped at it
            ],
        },
        "training": {"seed": 0, "num_threads": 1, "epochs": 100000, "batch_size": 8},
    }
    (folder / "job.yaml").write_text(json.dumps(raw))
    return shipyard.train(folder / "job.yaml", run_dir=folder / "run")


def test_budget_kept_and_every_candidate_accounted_for(auto_run: Any) -> None:
    auto = auto_run.metrics["auto"]
    assert auto["seconds"] <= 1.1 * BUDGET
    rows = {r["candidate"]: r for r in auto["leaderboard"]}
    assert rows["0-lightgbm"]["status"] == "failed" and "num_leaves" in rows["0-lightgbm"]["reason"]
    assert rows["1-lightgbm"]["status"] == "finished" and rows["1-lightgbm"]["validation"] > 0.75
    # far too slow to finish: its training.max_time stops it with the weights it has (no time left to start, on a
    # very slow machine)
    assert rows["3-mlp"]["status"] in ("finished", "skipped")
    if rows["3-mlp"]["status"] == "finished":
        assert "stopped at the time budget" in rows["3-mlp"]["reason"] and rows["3-mlp"]["validation"] > 0.5
        job = yaml.safe_load((Path(rows["3-mlp"]["run_dir"]).parent / "3-mlp.yaml").read_text())
        assert 0 < job["training"]["max_time"] < BUDGET
    assert auto_run.metrics["test"]["accuracy"] > 0.78
    html = (auto_run.run_dir / "report.html").read_text()
    assert "Leaderboard (model: auto)" in html


def test_the_run_model_predicts_and_an_ensemble_of_members_averages(auto_run: Any, tmp_path: Path) -> None:
    from shipyard.auto.package import write_model

    rows = pd.read_parquet(auto_run.run_dir / "splits" / "test.parquet").head(30)
    art = Artifact.load(auto_run.run_dir)
    assert art.predict_frame(rows)["probabilities"].shape == (30, 2)
    finished = [r for r in auto_run.metrics["auto"]["leaderboard"] if r["status"] == "finished"][:2]
    members = [(r, [Artifact.load(Path(r["run_dir"]) / "model")], {}) for r in finished]
    if len(members) == 1:  # the second candidate did not finish on a slow machine: the mechanics still hold
        members = members * 2
        members[1] = ({**members[1][0], "candidate": "copy"}, members[1][1], {})
    write_model(tmp_path / "model", members, [0.5, 0.5], {"params": {}})
    ensemble = Artifact.load(tmp_path / "model")
    assert ensemble.backend == "ensemble" and len(ensemble.members or []) == 2
    want = np.mean([m[0].predict_frame(rows)["probabilities"] for _, m, _ in members], axis=0)
    np.testing.assert_allclose(ensemble.predict_frame(rows)["probabilities"], want, atol=1e-5)


def test_a_candidate_carries_its_own_training_settings() -> None:
    from shipyard.auto.candidates import candidate_job, candidate_plan
    from shipyard.config.schema import Job

    raw = {
        "task": "classification",
        "data": {
            "source": {"path": "/data/reviews.csv"},
            "target": "label",
            "features": [{"name": "t", "type": "text"}],
        },
        "model": {
            "type": "auto",
            "candidates": [
                {"type": "text_linear", "training": {"epochs": 6, "learning_rate": 0.01}},
                {"type": "transformer", "training": {"epochs": 2, "learning_rate": 1e-4, "label_smoothing": 0.1}},
                {"type": "text_bag"},
                {"type": "text_bag", "training": {"seed": 7}},
            ],
        },
        "training": {"seed": 3, "weight_decay": 0.01},
    }
    job = Job.model_validate(raw)
    plan = candidate_plan(job, "text")
    assert [name for name, _, _ in plan] == ["0-text_linear", "1-transformer", "2-text_bag", "3-text_bag"]
    assert all("training" not in model for _, model, _ in plan)
    jobs = [candidate_job(job, model, training, Path("/")) for _, model, training in plan]
    assert [j["training"]["learning_rate"] for j in jobs] == [0.01, 1e-4, 1e-3, 1e-3]  # the last two: the job's
    assert [j["training"]["label_smoothing"] for j in jobs] == [0.0, 0.1, 0.0, 0.0]  # one candidate's alone
    assert [j["training"]["seed"] for j in jobs] == [3, 3, 3, 7] and {j["training"]["weight_decay"] for j in jobs} == {
        0.01
    }
    assert {j["data"]["split"]["seed"] for j in jobs} == {3}  # a candidate's own seed never moves the split
    raw["model"]["candidates"] = [{"type": "text_linear", "training": 5}]
    with pytest.raises(ValueError, match="training"):
        Job.model_validate(raw)
