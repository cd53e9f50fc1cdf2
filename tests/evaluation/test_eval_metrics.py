"""Metrics: hand-computed values, agreement with scikit-learn, logits vs probabilities, calibration bins."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from shipyard.errors import ShipyardError
from shipyard.evaluation.metrics import (
    classification_metrics,
    compute_metrics,
    expected_calibration_error,
    looks_like_probabilities,
    regression_metrics,
    reliability_bins,
    to_probabilities,
)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def three_class() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2, 1, 0])
    logits = rng.normal(size=(len(y), 3))
    logits[np.arange(len(y)), y] += 1.0  # mostly right, some mistakes
    return y, logits


def test_binary_hand_computed() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2]])
    m = classification_metrics(y, proba, ["neg", "pos"])
    # predictions 0, 1, 1, 0: one of each class right
    assert m["n"] == 4
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]
    assert m["per_class"]["pos"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    expected_ll = -(math.log(0.9) + math.log(0.4) + math.log(0.7) + math.log(0.2)) / 4
    assert m["log_loss"] == pytest.approx(expected_ll)
    # positives score 0.7, 0.2; negatives 0.1, 0.6: pairs won = (0.7>0.1, 0.7>0.6, 0.2>0.1) = 3 of 4
    assert m["roc_auc"] == pytest.approx(0.75)
    # confidences 0.9, 0.6, 0.7, 0.8 fall in four different bins; ECE = mean |correct - confidence|
    expected_ece = (abs(1 - 0.9) + abs(0 - 0.6) + abs(1 - 0.7) + abs(0 - 0.8)) / 4
    assert m["ece"] == pytest.approx(expected_ece)


def test_matches_sklearn(three_class: tuple[np.ndarray, np.ndarray]) -> None:
    y, logits = three_class
    proba = _softmax(logits)
    pred = proba.argmax(axis=1)
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    for avg in ("macro", "weighted"):
        assert m[f"f1_{avg}"] == pytest.approx(skm.f1_score(y, pred, average=avg, zero_division=0))
        assert m[f"precision_{avg}"] == pytest.approx(skm.precision_score(y, pred, average=avg, zero_division=0))
        assert m[f"recall_{avg}"] == pytest.approx(skm.recall_score(y, pred, average=avg, zero_division=0))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert list(m["per_class"]) == ["a", "b", "c"]
    assert sum(v["support"] for v in m["per_class"].values()) == len(y)


def test_json_able_plain_types(three_class: tuple[np.ndarray, np.ndarray]) -> None:
    y, logits = three_class
    m = compute_metrics("classification", y, logits, ["a", "b", "c"])
    r = compute_metrics("regression", np.arange(5.0), np.arange(5.0) + 0.5, None)
    for result in (m, r):
        json.dumps(result, allow_nan=False)  # raises on numpy scalars or NaN

    def walk(v: object) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        else:
            assert type(v) in (int, float, str, bool, type(None)), type(v)

    walk(m)
    walk(r)


def test_logits_and_probabilities_agree(three_class: tuple[np.ndarray, np.ndarray]) -> None:
    y, logits = three_class
    from_logits = compute_metrics("classification", y, logits, ["a", "b", "c"])
    from_proba = compute_metrics("classification", y, _softmax(logits), ["a", "b", "c"])
    assert from_logits.keys() == from_proba.keys()
    for key, value in from_logits.items():
        if isinstance(value, float):
            assert value == pytest.approx(from_proba[key], abs=1e-9), key
        else:
            assert value == from_proba[key], key


def test_probability_detection() -> None:
    proba = np.array([[0.2, 0.8], [0.5, 0.5]], dtype=np.float32)
    assert looks_like_probabilities(proba)
    np.testing.assert_allclose(to_probabilities(proba), proba, atol=1e-6)
    logits = np.array([[2.0, -1.0], [0.3, 0.1]])
    assert not looks_like_probabilities(logits)
    np.testing.assert_allclose(to_probabilities(logits), _softmax(logits))
    # non-negative but not summing to one: still logits
    assert not looks_like_probabilities(np.array([[0.2, 0.3]]))
    # a single column is the positive class of a binary problem
    np.testing.assert_allclose(to_probabilities(np.array([0.25, 1.0])), [[0.75, 0.25], [0.0, 1.0]])
    # ... and outside [0, 1] it is a logit, through the sigmoid
    sig = 1 / (1 + np.exp(-2.0))
    np.testing.assert_allclose(to_probabilities(np.array([[2.0], [-2.0]])), [[1 - sig, sig], [sig, 1 - sig]])


def test_roc_auc_omitted_when_a_class_is_missing() -> None:
    y = np.array([0, 1, 0, 1])
    proba = _softmax(np.random.default_rng(1).normal(size=(4, 3)))
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert "roc_auc" not in m
    # log loss still normalises over all three labels
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=[0, 1, 2]))
    assert m["per_class"]["c"]["support"] == 0
    assert m["confusion_matrix"][2] == [0, 0, 0]


def test_single_class_binary_has_no_auc() -> None:
    m = classification_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]), ["n", "y"])
    assert "roc_auc" not in m
    assert m["accuracy"] == 0.5


def test_ece_perfectly_calibrated_is_zero() -> None:
    # in each bin the fraction correct equals the confidence exactly: 10 rows at 0.7 with 7 right, etc.
    rows, ys = [], []
    for conf, n, right in ((0.7, 10, 7), (0.9, 20, 18), (0.6, 5, 3), (1.0, 4, 4)):
        for i in range(n):
            rows.append([conf, 1 - conf])
            ys.append(0 if i < right else 1)
    proba = np.array(rows)
    y = np.array(ys)
    assert expected_calibration_error(y, proba) == pytest.approx(0.0, abs=1e-12)
    assert classification_metrics(y, proba, ["a", "b"])["ece"] == pytest.approx(0.0, abs=1e-12)


def test_ece_large_sample_calibrated_is_small() -> None:
    rng = np.random.default_rng(3)
    p1 = rng.uniform(size=20000)
    y = (rng.uniform(size=20000) < p1).astype(int)
    proba = np.stack([1 - p1, p1], axis=1)
    assert expected_calibration_error(y, proba) < 0.02


def test_reliability_bins_edges_and_counts() -> None:
    proba = np.array([[1.0, 0.0], [0.5, 0.5], [0.55, 0.45]])
    y = np.array([0, 1, 0])
    bins = reliability_bins(y, proba, n_bins=10)
    assert len(bins) == 10
    assert sum(b["count"] for b in bins) == 3
    assert bins[-1]["count"] == 1 and bins[-1]["confidence"] == 1.0  # 1.0 lands in the last bin
    assert bins[4]["count"] == 1  # 0.5 is the right edge of (0.4, 0.5]
    assert bins[5]["count"] == 1
    assert bins[0]["accuracy"] is None
    assert bins[0]["lower"] == 0.0 and bins[-1]["upper"] == 1.0


def test_regression_hand_computed() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([[1.5], [2.0], [2.0], [5.0]])  # (N, 1) accepted
    m = regression_metrics(y, pred)
    residuals = np.array([-0.5, 0.0, 1.0, -1.0])
    assert m["n"] == 4
    assert m["mse"] == pytest.approx(np.mean(residuals**2))
    assert m["rmse"] == pytest.approx(math.sqrt(2.25 / 4))
    assert m["mae"] == pytest.approx(2.5 / 4)
    assert m["r2"] == pytest.approx(1 - 2.25 / 5.0)
    assert m["residuals"]["mean"] == pytest.approx(-0.125)
    assert m["residuals"]["q50"] == pytest.approx(np.median(residuals))
    assert m["residuals"]["min"] == -1.0 and m["residuals"]["max"] == 1.0
    assert set(m["residuals"]) >= {"std", "q05", "q25", "q75", "q95"}


def test_regression_matches_sklearn() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=50)
    pred = y + rng.normal(scale=0.3, size=50)
    m = compute_metrics("regression", y, pred, None)
    assert m["mse"] == pytest.approx(skm.mean_squared_error(y, pred))
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred))


def test_regression_single_row_r2_is_none() -> None:
    assert regression_metrics([1.0], [2.0])["r2"] is None


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: compute_metrics("clustering", [0], [[1.0]], None), "unknown task"),
        (lambda: classification_metrics([0, 3], np.full((2, 2), 0.5), None), "out of range"),
        (lambda: classification_metrics([0, 1], np.full((3, 2), 0.5), None), "3 prediction rows"),
        (lambda: classification_metrics([0, 1], np.full((2, 2), 0.5), ["only"]), "1 labels"),
        (lambda: classification_metrics([0.5, 1], np.full((2, 2), 0.5), None), "whole numbers"),
        (lambda: compute_metrics("classification", [0], [[np.nan, 1.0]], None), "NaN"),
        (lambda: regression_metrics([1.0, 2.0], [1.0]), "predictions"),
        (lambda: regression_metrics([], []), "zero rows"),
    ],
)
def test_bad_input_raises_shipyard_error(call, match: str) -> None:
    with pytest.raises(ShipyardError, match=match):
        call()
