"""Bagged candidates of `model: {type: auto}` (tabular): folds of the pooled train + validation rows, out-of-fold
predictions for the ensemble selection, the fold models as members of the one artifact; and the targets auto
refuses or cannot bag (one class, classes too rare to fold)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard
from shipyard.artifact import Artifact
from shipyard.auto.bag import FOLDS, POOL, bag_predictions, make_pool
from shipyard.errors import ShipyardError


def _prepared(n_train: int, n_val: int, target: np.ndarray) -> SimpleNamespace:
    frame = pd.DataFrame({"x": np.arange(n_train + n_val, dtype=float), "y": target})
    return SimpleNamespace(
        splits={
            "train": SimpleNamespace(frame=frame.iloc[:n_train], target=target[:n_train]),
            "validation": SimpleNamespace(frame=frame.iloc[n_train:], target=target[n_train:]),
        }
    )


def test_pool_is_train_then_validation_in_stratified_folds(tmp_path: Path) -> None:
    y = np.array([0] * 60 + [1] * 40)
    pool = make_pool(_prepared(80, 20, y), 4, "classification", 0, tmp_path / "pool")
    assert pool is not None and pool.k == 4 and pool.n_train == 80
    assert pool.frame["x"].tolist() == list(range(100)) and (pool.target == y).all()
    for i in range(4):  # every fold holds a quarter of each class
        assert (pool.folds == i).sum() == 25 and (y[pool.folds == i] == 1).sum() == 10
    assert len(pd.read_parquet(tmp_path / "pool" / POOL)) == 100 and len(np.load(tmp_path / "pool" / FOLDS)) == 100
    # a class with fewer rows than folds, or too few rows: no bagging (the plain split instead)
    rare = np.array([0] * 97 + [1] * 3)
    assert make_pool(_prepared(80, 20, rare), 4, "classification", 0, tmp_path / "rare") is None
    assert make_pool(_prepared(20, 10, np.arange(30.0)), 5, "regression", 0, tmp_path / "few") is None
    values = make_pool(_prepared(80, 20, np.arange(100.0)), 5, "regression", 0, tmp_path / "reg")
    assert values is not None and np.bincount(values.folds).tolist() == [20] * 5


def test_out_of_fold_rows_come_from_the_model_that_did_not_see_them(tmp_path: Path) -> None:
    y = np.array([0, 1] * 30)
    pool = make_pool(_prepared(50, 10, y), 3, "classification", 0, tmp_path)
    assert pool is not None

    class FoldModel:  # predicts its own fold number for every row
        def __init__(self, i: int) -> None:
            self.i = i

        def predict_frame(self, frame: pd.DataFrame) -> dict[str, Any]:
            return {"probabilities": np.full((len(frame), 2), float(self.i))}

    test = pd.DataFrame({"x": [1.0, 2.0]})
    out = bag_predictions([FoldModel(i) for i in range(3)], pool, test, lambda o, _: o["probabilities"])
    assert (out["pool"][:, 0] == pool.folds).all()
    assert (out["validation"] == out["pool"][50:]).all()
    np.testing.assert_allclose(out["test"], np.full((2, 2), 1.0))  # the average of folds 0, 1 and 2


@pytest.fixture(scope="module")
def bagged_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("bagged")
    frame = pd.read_csv(data_dir / "adult" / "adult.data", skipinitialspace=True, na_values=["?"])
    sample = frame.sample(1200, random_state=1)
    sample.loc[sample.index[:5], "workclass"] = "Never-seen-before"  # categories only some folds have
    sample["empty"] = np.nan  # an all-missing column
    sample.to_csv(folder / "adult.csv", index=False)
    raw = {
        "task": "classification",
        "data": {"source": {"path": "adult.csv"}, "target": "Y", "split": {"validation": 0.2, "test": 0.2}},
        "model": {
            "type": "auto",
            "time_budget": "90s",
            "bag_folds": 3,
            "candidates": [{"type": "lightgbm", "n_estimators": 60, "learning_rate": 0.1, "early_stopping_rounds": 10}],
        },
        "training": {"seed": 0, "num_threads": 1},
    }
    (folder / "job.yaml").write_text(json.dumps(raw))
    return shipyard.train(folder / "job.yaml", run_dir=folder / "run")


def test_a_bagged_candidate_is_its_fold_models_in_one_artifact(bagged_run: Any) -> None:
    auto = bagged_run.metrics["auto"]
    (row,) = auto["leaderboard"]
    assert row["status"] == "finished" and row["folds"] == 3 and row["oof"] > 0.75 and row["test"] > 0.75
    assert bagged_run.metrics["test"]["accuracy"] == pytest.approx(row["test"])
    art = Artifact.load(bagged_run.run_dir)
    names = [m["name"] for m in art.meta["members"]]
    assert art.backend == "ensemble" and names == [f"0-lightgbm-fold{i}" for i in range(3)]
    assert [m["weight"] for m in art.meta["members"]] == pytest.approx([1 / 3] * 3)
    rows = pd.read_parquet(bagged_run.run_dir / "splits" / "test.parquet").head(20)
    rows.loc[rows.index[0], "workclass"] = "Unseen-at-serving"  # a category no fold model saw
    proba = art.predict_frame(rows)["probabilities"]
    want = np.mean([m.predict_frame(rows)["probabilities"] for m, _ in art.members or []], axis=0)
    np.testing.assert_allclose(proba, want, atol=1e-5)
    # the pooled rows and the fold files are gone: the run's splits/ are the one copy of the rows
    candidates = bagged_run.run_dir / "candidates"
    assert not (candidates / "_pool").exists() and not list(candidates.rglob("*.parquet"))


def test_a_single_class_target_is_refused_before_any_candidate(data_dir: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(data_dir / "adult" / "adult.data", skipinitialspace=True, na_values=["?"], nrows=200)
    frame["Y"] = "<=50K"
    frame.to_csv(tmp_path / "one.csv", index=False)
    raw = {
        "task": "classification",
        "data": {"source": {"path": "one.csv"}, "target": "Y"},
        "model": {"type": "auto", "time_budget": "60s"},
    }
    (tmp_path / "job.yaml").write_text(json.dumps(raw))
    with pytest.raises(ShipyardError, match="at least two classes"):
        shipyard.train(tmp_path / "job.yaml", run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_bag_stopped_at_the_budget_keeps_its_finished_folds(tmp_path: Path) -> None:
    from shipyard.auto import _common_rows
    from shipyard.auto.bag import DONE, folds_done

    for i in (0, 1, 3):  # fold 2 was killed mid-way: fold 3's marker does not count after the gap
        (tmp_path / "bag" / f"fold{i}").mkdir(parents=True)
        (tmp_path / "bag" / f"fold{i}" / DONE).touch()
    assert folds_done(tmp_path / "bag", 4) == 2 and folds_done(tmp_path / "none", 4) == 0
    y = np.array([0, 1] * 40)
    pool = make_pool(_prepared(60, 20, y), 4, "classification", 0, tmp_path / "pool")
    assert pool is not None
    scored = [({"candidate": "a", "folds": 2}, [], {}), ({"candidate": "b", "folds": 1}, [], {})]
    kept, targets = _common_rows(scored, SimpleNamespace(splits={"validation": SimpleNamespace(target=y[60:])}), pool)
    assert [r["candidate"] for r, _, _ in kept] == ["a"] and "1 of 4 folds" in scored[1][0]["reason"]
    assert len(targets["pool"]) == 40 and (targets["pool"] == y[pool.folds < 2]).all()  # folds 0 and 1's rows
    assert (targets["validation"] == y[60:][pool.folds[60:] < 2]).all()


def test_200_classes_too_rare_to_fold_run_unbagged(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(200), 5)  # four train + validation rows per class: fewer than the five folds
    frame = pd.DataFrame({"x": y + rng.normal(scale=0.1, size=len(y)), "label": [f"c{v}" for v in y]})
    frame.to_csv(tmp_path / "many.csv", index=False)
    raw = {
        "task": "classification",
        "data": {"source": {"path": "many.csv"}, "target": "label", "split": {"validation": 0.2, "test": 0.2}},
        "model": {
            "type": "auto",
            "time_budget": "60s",
            "candidates": [{"type": "lightgbm", "n_estimators": 3, "min_child_samples": 1, "early_stopping_rounds": 0}],
        },
        "training": {"seed": 0, "num_threads": 1},
    }
    (tmp_path / "job.yaml").write_text(json.dumps(raw))
    result = shipyard.train(tmp_path / "job.yaml", run_dir=tmp_path / "run")
    (row,) = result.metrics["auto"]["leaderboard"]
    assert row["status"] == "finished" and "folds" not in row  # one model on the train split, not a bag
    art = Artifact.load(result.run_dir)
    assert art.predict_frame(frame.head(3))["probabilities"].shape == (3, 200)
