"""The LightGBM family on its own: training on real Adult rows, save/load, TreeSHAP, ONNX parity, edge cases."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from shipyard.config.models import LightGBMParams
from shipyard.config.schema import Job, TrainingConfig
from shipyard.data.prepare import prepare_data
from shipyard.errors import ShipyardError
from shipyard.models.registry import build_for_task
from shipyard.models.trees import TREE_CLEANING, TreeModel, categorical_indices, class_weights
from shipyard.optimize.tree_onnx import export_tree
from shipyard.spec import InputSpec
from shipyard.training.trees import check_applicable, fit_trees

FAST = {"early_stopping_rounds": 20, "bagging_freq": 0, "bagging_fraction": 1.0, "feature_fraction": 1.0}


def _adult_job(data_dir: Path, **model: object) -> Job:
    return Job.model_validate(
        {
            "task": "classification",
            "data": {
                "source": {
                    "path": str(data_dir / "adult" / "adult.data"),
                    "skip_initial_space": True,
                    "na_values": ["?"],
                    "limit": 4000,
                },
                "target": "Y",
                "split": {"validation": 0.2, "test": 0.2},
                "cleaning": TREE_CLEANING,
            },
            # a small, fast fit: few rounds, a short patience, no subsampling (the settings before the defaults changed)
            "model": {
                "type": "lightgbm",
                "n_estimators": 300,
                "learning_rate": 0.1,
                "early_stopping_rounds": 20,
                **model,
            },
            "training": {"seed": 0, "num_threads": 1},
        }
    )


@pytest.fixture(scope="module")
def adult(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    job = _adult_job(data_dir)
    prepared = prepare_data(job, base_dir=data_dir)
    model = build_for_task("lightgbm", job.model.params(), prepared.input_spec)
    assert isinstance(model, TreeModel)
    model.categorical = categorical_indices(prepared.preprocessor.feature_names, prepared.column_types)
    run_dir = tmp_path_factory.mktemp("trees")
    splits = prepared.splits
    train, val = splits["train"], splits["validation"]
    fit = fit_trees(model, train, val, run_dir, cfg=job.training, labels=prepared.labels, show_progress=False)
    return SimpleNamespace(job=job, prepared=prepared, model=model, fit=fit, run_dir=run_dir)


def test_adult_trains_with_native_categories_and_stops_early(adult: SimpleNamespace) -> None:
    model, test = adult.model, adult.prepared.splits["test"]
    assert len(model.categorical) == 8  # workclass, education, marital-status, ... native-country
    assert adult.fit.stopped_early and adult.fit.best_epoch < adult.fit.global_step <= 300
    logits = model(x=__import__("torch").from_numpy(test.inputs["x"])).numpy()
    assert logits.shape == (len(test.target), 2)
    accuracy = float((logits.argmax(1) == test.target).mean())
    assert accuracy > 0.82, accuracy  # 800 test rows of 4,000; the majority class alone gives about 0.76
    lines = (adult.run_dir / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == adult.fit.global_step and '"val_loss"' in lines[0]


def test_save_load_round_trip_is_exact(adult: SimpleNamespace, tmp_path: Path) -> None:
    meta = adult.model.save(tmp_path)
    assert (tmp_path / "model.txt").read_text().startswith("tree")
    loaded = TreeModel.load(tmp_path, adult.job.model.params(), adult.model.spec, meta)
    x = adult.prepared.splits["test"].inputs["x"]
    np.testing.assert_array_equal(loaded.raw_scores(x), adult.model.raw_scores(x))
    assert loaded.n_trees == adult.fit.best_epoch  # the booster was cut at the best round


def test_treeshap_values_sum_to_the_logit(adult: SimpleNamespace) -> None:
    x = adult.prepared.splits["test"].inputs["x"][:50]
    contrib = adult.model.contributions(x)
    assert contrib.shape == (50, 2, x.shape[1] + 1)
    margin = adult.model.booster.predict(x.astype(np.float64), raw_score=True)
    np.testing.assert_allclose(contrib[:, 1].sum(axis=1), margin, atol=1e-6)
    assert (contrib[:, 0] == 0).all()
    gain = adult.model.importance()["gain"]
    names = adult.prepared.preprocessor.feature_names
    top = {names[i] for i in np.argsort(-gain)[:4]}
    assert top & {"relationship", "marital-status", "capital-gain", "education-num"}


def test_onnx_export_matches_lightgbm_including_categorical_splits(adult: SimpleNamespace, tmp_path: Path) -> None:
    import onnxruntime as ort

    x = adult.prepared.splits["test"].inputs["x"]
    info = export_tree(adult.model, tmp_path / "model.onnx", x)
    assert info["top1_agreement"] == 1.0 and info["max_abs_diff"] < 1e-4
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"] and [o.name for o in session.get_outputs()] == ["logits"]


def test_unseen_category_is_the_reserved_code(adult: SimpleNamespace) -> None:
    frame = adult.prepared.splits["test"].frame.head(3).copy()
    frame["workclass"] = "Space-agency"  # never seen in training
    x = adult.prepared.preprocessor.transform(frame)["x"]
    col = adult.prepared.preprocessor.feature_names.index("workclass")
    assert (x[:, col] == 0).all()
    assert np.isfinite(adult.model.raw_scores(x)).all()


def test_class_weights() -> None:
    params = LightGBMParams(class_weight="balanced")
    w = class_weights(params, np.array([0, 0, 0, 1]), ["a", "b"])
    np.testing.assert_allclose(w, [4 / 6, 4 / 6, 4 / 6, 2.0])
    w = class_weights(LightGBMParams(class_weight={"b": 3.0}), np.array([0, 1]), ["a", "b"])
    np.testing.assert_allclose(w, [1.0, 3.0])
    with pytest.raises(ShipyardError, match="not classes"):
        class_weights(LightGBMParams(class_weight={"c": 3.0}), np.array([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="> 0"):
        LightGBMParams(class_weight={"a": 0.0})


def test_dp_torchrun_and_soups_are_refused_with_the_alternative() -> None:
    with pytest.raises(ShipyardError, match="DP-SGD") as exc:
        check_applicable("lightgbm", privacy=object())
    assert "type: mlp" in str(exc.value)
    with pytest.raises(ShipyardError, match="torchrun") as exc:
        check_applicable("lightgbm", world_size=2)
    assert "num_threads" in str(exc.value)
    with pytest.raises(ShipyardError, match="soup"):
        check_applicable("lightgbm", training=TrainingConfig(soup={"ingredients": 2}))


def _split(x: np.ndarray, y: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(inputs={"x": x.astype(np.float32)}, target=y)


def test_regression_all_missing_column_and_200_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cfg = TrainingConfig(seed=0, num_threads=1)
    # regression with a constant (all-missing, imputed) column: real-unit values, the column never used
    x = np.column_stack([rng.normal(size=600), np.zeros(600)])
    y = (3 * x[:, 0] + 100).astype(np.float32)
    spec = InputSpec(kind="tabular", n_features=2, n_outputs=1, task="regression")
    reg = TreeModel(LightGBMParams(n_estimators=200, early_stopping_rounds=10), spec)
    fit_trees(reg, _split(x[:500], y[:500]), _split(x[500:], y[500:]), tmp_path / "reg", cfg=cfg, show_progress=False)
    pred = reg.raw_scores(x[500:])
    assert pred.shape == (100, 1) and np.corrcoef(pred[:, 0], y[500:])[0, 1] > 0.95
    assert reg.importance()["split"][1] == 0
    # 200 classes, 4 rows each: one tree per class per round, probabilities over all 200
    k = 200
    y = np.repeat(np.arange(k), 4)
    x = (y[:, None] + rng.normal(scale=0.1, size=(len(y), 1))).astype(np.float32)
    spec = InputSpec(kind="tabular", n_features=1, n_outputs=k, task="classification")
    clf = TreeModel(LightGBMParams(n_estimators=3, min_child_samples=1), spec)
    fit = fit_trees(clf, _split(x, y), None, tmp_path / "many", cfg=cfg, show_progress=False)
    assert fit.global_step == 3 and clf.n_trees == 3 * k
    assert clf.raw_scores(x[:5]).shape == (5, k)


def test_deadline_keeps_the_trees_built_so_far(tmp_path: Path) -> None:
    import time

    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] > 0).astype(np.int64)
    spec = InputSpec(kind="tabular", n_features=3, n_outputs=2, task="classification")
    model = TreeModel(LightGBMParams(n_estimators=100_000, early_stopping_rounds=0), spec)
    started = time.monotonic()
    fit = fit_trees(
        model, _split(x, y), None, tmp_path, cfg=TrainingConfig(num_threads=1), show_progress=False,
        deadline=started + 1.0,
    )  # fmt: skip
    assert time.monotonic() - started < 5 and 0 < fit.global_step < 100_000
    assert model.raw_scores(x).shape == (400, 2)


def test_load_refuses_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "model.txt").write_text("import os; os.system('echo hi')\n")
    spec = InputSpec(kind="tabular", n_features=2, n_outputs=2, task="classification")
    with pytest.raises(ShipyardError, match="LightGBM"):
        TreeModel.load(tmp_path, {}, spec, {"model_file": "model.txt"})
