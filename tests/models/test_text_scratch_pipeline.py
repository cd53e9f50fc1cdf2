"""A from-scratch text job end to end: the vocabulary is learnt on the training split and travels in the artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import shipyard
from shipyard.artifact import Artifact
from shipyard.config.schema import Job


@pytest.fixture(scope="module")
def text_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("runs")
    # the file is sorted by label: a seeded sample of both classes
    frame = pd.read_csv(data_dir / "chnsenticorp" / "ChnSentiCorp_htl_all.csv").sample(1200, random_state=0)
    frame.to_csv(folder / "reviews.csv", index=False)
    raw = {
        "task": "classification",
        "data": {
            "source": {"path": str(folder / "reviews.csv")},
            "target": "label",
            "features": [{"name": "review", "type": "text"}],
            "split": {"method": "stratified", "validation": 0.15, "test": 0.15},
            "cleaning": {"text_missing": "drop"},
            "text": {"max_length": 96},
        },
        "model": {"type": "text_linear", "ngram_range": [1, 2], "max_features": 30000},
        "training": {"seed": 0, "epochs": 4, "batch_size": 32, "learning_rate": 0.05, "num_threads": 1},
    }
    return shipyard.run(Job.model_validate(raw), run_dir=folder / "text")


def test_vocabulary_model_trains_and_serves_raw_text(text_run: Any) -> None:
    assert text_run.metrics["test"]["accuracy"] > 0.75
    model_dir = text_run.run_dir / "model"
    meta = json.loads((model_dir / "shipyard.json").read_text())
    assert meta["artifact_params"]["n_vocab"] > 1000
    assert (model_dir / "text_encoder" / "tokenizer.json").is_file()
    summary = json.loads((text_run.run_dir / "data_summary.json").read_text())
    assert summary["unknown_tokens"]["train_rate"] < 0.05  # its own vocabulary reads the Chinese text
    art = Artifact.load(text_run.run_dir)
    good, bad = "房间很干净，服务很好，下次还会再来", "太差了，房间又脏又吵，再也不来了"
    out = art.predict_records([{"review": good}, {"review": bad}])
    assert [o["label"] for o in out] == ["1", "0"]


def test_stored_splits_predict_like_training(text_run: Any) -> None:
    art = Artifact.load(text_run.run_dir)
    rows = pd.read_parquet(text_run.run_dir / "splits" / "test.parquet")
    pred = art.predict_frame(rows)
    accuracy = float((pd.Series(pred["label"]).astype(str).to_numpy() == rows["label"].astype(str).to_numpy()).mean())
    assert abs(accuracy - text_run.metrics["test"]["accuracy"]) < 1e-9


def test_token_attributions_name_ngrams(text_run: Any, tmp_path: Path) -> None:
    from shipyard.evaluation.explain import explain_run

    pd.DataFrame({"review": ["房间很干净，服务很好"]}).to_csv(tmp_path / "rows.csv", index=False)
    (row,) = explain_run(text_run.run_dir, tmp_path / "rows.csv", n=1)
    tokens = dict(row["tokens"])
    assert "干净" in tokens or "很好" in tokens  # bigrams of the learnt vocabulary, with their attributions
    assert row["prediction"] == "1"
