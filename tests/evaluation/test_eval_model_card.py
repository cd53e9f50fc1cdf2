"""The model card: sections, config hash, privacy/fairness from ``extra``, escaping, atomic write."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from shipyard.evaluation.model_card import config_hash, library_versions, write_model_card

CONFIG = {
    "task": "classification",
    "name": "adult income",
    "data": {"source": {"path": "${SHIPYARD_DATA_DIR}/adult.csv"}, "target": "income"},
    "model": {"type": "mlp", "hidden": [64, 32]},
    "training": {"seed": 42, "learning_rate": 0.001, "epochs": 5},
    "evaluation": {"sensitive_features": ["sex"]},
}
METRICS = {
    "validation": {"n": 500, "accuracy": 0.84, "f1_macro": 0.76},
    "test": {
        "n": 500,
        "accuracy": 0.83,
        "f1_macro": 0.75,
        "ece": 0.09,
        "per_class": {"<=50K": {"f1": 0.9, "support": 380}, ">50K": {"f1": 0.45, "support": 120}},
    },
}
SUMMARY = {"rows": 5000, "columns": {"age": {"type": "numeric"}}, "pii": {"dropped_columns": ["email"]}}


def test_model_card_contents(tmp_path: Path) -> None:
    path = write_model_card(tmp_path, job_config=CONFIG, metrics=METRICS, summary=SUMMARY)
    assert path == tmp_path / "model_card.md"
    text = path.read_text(encoding="utf-8")
    for heading in (
        "## Intended use",
        "## Data",
        "## Metrics",
        "## Privacy",
        "## Personal data",
        "## Fairness",
        "## Known limitations",
        "## How it was trained",
    ):
        assert heading in text, heading
    canonical = json.dumps(CONFIG, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == config_hash(CONFIG)
    assert config_hash(CONFIG) in text
    assert "**Seed**: 42" in text
    assert "| accuracy | 0.84 | 0.83 |" in text
    assert "Guarantee: none" in text
    assert "email" in text  # personal-data handling from the summary
    assert "sex" in text and "no fairness results" in text
    assert "&gt;50K" in text  # weak class named, escaped
    assert "not well calibrated" in text and "only 500 rows" in text
    for lib in ("python", "torch", "numpy", "scikit-learn", "transformers"):
        assert lib in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_card.md"]


def test_privacy_and_fairness_from_extra(tmp_path: Path) -> None:
    extra = {
        "privacy": {"epsilon": 3.0, "delta": 1e-5, "noise_multiplier": 1.1},
        "fairness": {"sex": {"demographic_parity_difference": 0.12}},
        "limitations": ["Not tested on <script>x</script> inputs"],
    }
    text = write_model_card(tmp_path, job_config=CONFIG, metrics=METRICS, summary={}, extra=extra).read_text()
    assert "ε = 3.0" in text and "δ = 1.000e-05" in text and "noise_multiplier" in text
    assert "demographic_parity_difference" in text
    assert "No fairness assessment" not in text
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_config_hash_is_order_independent() -> None:
    reordered = dict(reversed(list(CONFIG.items())))
    assert config_hash(reordered) == config_hash(CONFIG)
    assert config_hash({**CONFIG, "name": "other"}) != config_hash(CONFIG)
    assert config_hash({"betas": (0.9, 0.99)}) == config_hash({"betas": [0.9, 0.99]})


def test_library_versions_keys() -> None:
    assert set(library_versions()) == {"python", "torch", "numpy", "scikit-learn", "transformers"}


def test_metrics_table_has_only_split_columns(tmp_path: Path) -> None:
    metrics = {**METRICS, "training": {"epochs": 3, "seconds": 12.5}, "privacy": {"epsilon": 1.0, "delta": 1e-5}}
    text = write_model_card(tmp_path, job_config=CONFIG, metrics=metrics, summary=SUMMARY).read_text()
    header = next(line for line in text.splitlines() if line.startswith("| metric |"))
    assert "training" not in header and "privacy" not in header
