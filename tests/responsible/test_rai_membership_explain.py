"""Membership-inference audit (overfit vs DP), explanations (faithfulness, CLI function, report)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard
from shipyard.config.schema import Job
from shipyard.evaluation.membership import attack_metrics, audit_privacy


def test_attack_metrics_bounds() -> None:
    rng = np.random.default_rng(0)
    same = attack_metrics(rng.normal(size=500), rng.normal(size=500))
    assert 0.4 < same["auc"] < 0.6 and 0 <= same["advantage"] < 0.15
    split = attack_metrics(rng.normal(3, 1, 500), rng.normal(size=500))
    assert split["auc"] > 0.95 and split["advantage"] > 0.8


@pytest.fixture(scope="module")
def noisy_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny noisy-label problem: a wide MLP trained long memorises it; DP-SGD (eps=1) cannot."""
    tmp = tmp_path_factory.mktemp("mia")
    rng = np.random.default_rng(1)
    n = 600
    x = rng.normal(size=(n, 8))
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-0.7 * x[:, 0])), "p", "q")
    frame = pd.DataFrame({f"f{i}": x[:, i] for i in range(8)})
    frame["label"] = y
    frame.to_csv(tmp / "noisy.csv", index=False)
    out = {}
    for name, privacy in (("overfit", None), ("dp", {"differential_privacy": {"target_epsilon": 1.0}})):
        raw: dict[str, Any] = {
            "task": "classification",
            "data": {"source": {"path": str(tmp / "noisy.csv")}, "split": {"validation": 0.1, "test": 0.4}},
            "model": {"type": "mlp", "hidden": [128, 128]},
            "training": {
                "epochs": 60,
                "batch_size": 32,
                "learning_rate": 0.003,
                "num_threads": 1,
                "log_every_steps": 1000,
            },
            "privacy": privacy,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[name] = shipyard.run(Job.model_validate(raw), run_dir=tmp / name)
    return out


def test_overfit_model_leaks_more_than_dp(noisy_runs: dict[str, Any]) -> None:
    over = audit_privacy(noisy_runs["overfit"].run_dir)
    dp = audit_privacy(noisy_runs["dp"].run_dir)
    for res in (over, dp):
        for attack in res["attacks"].values():
            assert 0.0 <= attack["auc"] <= 1.0 and 0.0 <= attack["advantage"] <= 1.0
    assert set(over["attacks"]) == {"loss_threshold", "calibrated_lira_offline"}
    assert over["max_advantage"] > 0.3  # memorised noisy labels
    assert over["max_advantage"] > dp["max_advantage"] + 0.15
    saved = json.loads((noisy_runs["dp"].run_dir / "privacy_audit.json").read_text())
    assert saved["dp_guarantee"]["epsilon"] <= 1.0 and over["dp_guarantee"] == "none"


def test_faithfulness_top_k_beats_random(plain_run: Any) -> None:
    from shipyard.artifact import Artifact
    from shipyard.evaluation.explain import column_groups, faithfulness

    art = Artifact.load(plain_run.run_dir)
    test = pd.read_parquet(plain_run.run_dir / "splits" / "test.parquet").head(150)
    x = art.preprocessor.transform(test)["x"]
    res = faithfulness(art.model, x, column_groups(art.preprocessor), k=2, seed=0)
    assert res["top_k_drop"] > res["random_drop"] + 0.05


def test_explain_run_and_report(plain_run: Any, synth_csv: Path, tmp_path: Path) -> None:
    from shipyard.evaluation.explain import explain_run

    rows = pd.read_csv(synth_csv).head(4)
    rows.to_csv(tmp_path / "in.csv", index=False)
    out = explain_run(plain_run.run_dir, tmp_path / "in.csv", n=3)
    assert len(out) == 3
    # one attribution per original column (one-hot `c` aggregated), strongest first
    assert set(out[0]["attributions"]) == {"x1", "x2", "x3", "x4", "x5", "x6", "c"}
    assert {"x1", "x2"} & set(list(out[0]["attributions"])[:2])
    html = (plain_run.run_dir / "report.html").read_text()
    assert "Permutation importance" in html and "Sampled explanations" in html
