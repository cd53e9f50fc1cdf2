"""Fairness metrics against a hand computation; ThresholdOptimizer; the run's fairness block."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from shipyard.evaluation.fairness import group_report, mitigate_threshold


def test_group_metrics_match_hand_computation() -> None:
    #               group a (4 rows)     group b (4 rows)
    y_true = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    y_pred = np.array([1, 0, 1, 0, 1, 1, 1, 0])
    groups = np.array(["a"] * 4 + ["b"] * 4)
    r = group_report(y_true, y_pred, groups)
    a, b = r["groups"]["a"], r["groups"]["b"]
    assert a["n"] == 4 and b["n"] == 4
    assert a["accuracy"] == pytest.approx(2 / 4) and b["accuracy"] == pytest.approx(2 / 4)
    assert a["selection_rate"] == pytest.approx(2 / 4) and b["selection_rate"] == pytest.approx(3 / 4)
    assert a["tpr"] == pytest.approx(1 / 2) and b["tpr"] == pytest.approx(1 / 1)
    assert a["fpr"] == pytest.approx(1 / 2) and b["fpr"] == pytest.approx(2 / 3)
    assert r["demographic_parity_difference"] == pytest.approx(0.25)
    assert r["demographic_parity_ratio"] == pytest.approx(0.5 / 0.75)
    assert r["equalized_odds_difference"] == pytest.approx(max(0.5, 2 / 3 - 0.5))
    assert r["equalized_odds_ratio"] == pytest.approx(min(0.5 / 1.0, 0.5 / (2 / 3)))
    assert r["overall"]["accuracy"] == pytest.approx(0.5)
    assert r["small_groups"] == ["a", "b"]  # below min_group_size: reported, not flagged
    assert r["flags"]  # DP difference 0.25 > 0.1


def test_threshold_optimizer_reduces_demographic_parity_difference() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    groups = rng.choice(["a", "b"], size=n)
    y = (rng.random(n) < np.where(groups == "a", 0.5, 0.3)).astype(int)
    # biased scores: group b is scored lower for the same label
    scores = np.clip(0.35 * y + 0.45 + rng.normal(0, 0.15, n) - 0.15 * (groups == "b"), 0, 1)
    half = n // 2
    res = mitigate_threshold(scores[:half], y[:half], groups[:half], scores[half:], y[half:], groups[half:])
    before = res["before"]["demographic_parity_difference"]
    after = res["after"]["demographic_parity_difference"]
    assert before > 0.15 and after < before / 2


def test_run_fairness_block_report_and_card(plain_run: Any) -> None:
    fairness = plain_run.metrics["fairness"]
    assert fairness["used_as_model_inputs"] == []  # `group` is dropped from the inputs, still audited
    rep = fairness["by_feature"]["group"]
    assert set(rep["groups"]) == {"a", "b"}
    for key in ("demographic_parity_difference", "equalized_odds_difference", "equalized_odds_ratio"):
        assert 0 <= rep[key] <= 1
    assert "after" in fairness["mitigation"]
    html = (plain_run.run_dir / "report.html").read_text()
    assert "Fairness" in html and "ThresholdOptimizer" in html and "per-group rates" in html
    card = (plain_run.run_dir / "model_card.md").read_text()
    assert "demographic parity difference" in card and "Not assessed" not in card.split("## Fairness")[1][:200]
