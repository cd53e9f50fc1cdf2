"""`task: retrieval` end to end on a small Bitext slice: run folder, metrics, index, resume, search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from retrieval_helpers import retrieval_job

from shipyard.config.schema import Job
from shipyard.errors import ShipyardError
from shipyard.models.searcher import Searcher
from shipyard.pipeline import run_job


def test_retrieval_job_trains_indexes_and_reports(retrieval_run: Path) -> None:
    run = retrieval_run
    assert not (run / ".incomplete").exists()
    for name in (
        "config.yaml",
        "metrics.json",
        "report.html",
        "model_card.md",
        "train_log.jsonl",
        "model/index/dense.faiss",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    assert test["ranking"] == "hybrid" and test["queries"] == 24  # 20 % of 20 queries x 6 intents
    for key in ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"):
        assert 0.0 <= test[key] <= 1.0
    assert set(metrics["retrieval"]["test"]) == {"dense", "bm25", "hybrid"}
    assert test["recall@10"] >= test["recall@1"]
    assert "Retrieval" in (run / "report.html").read_text()
    searcher = Searcher.load(run)
    hits = searcher.search(["where is my package, I want to track order 123"], k=3)[0]
    assert len(hits) == 3 and hits[0]["group"] in ("track_order", "delivery_options")
    assert metrics["training"]["steps"] == 3


def test_resume_continues_from_the_checkpoint(bitext_small: Path, tmp_path: Path) -> None:
    raw = retrieval_job(bitext_small, tmp_path / "run")
    raw["training"]["max_steps"] = 2
    raw["model"]["passage_max_length"] = 16  # a quick run: resume is what is tested
    first = run_job(Job.model_validate(raw), base_dir=tmp_path, show_progress=False)
    assert first.metrics["training"]["steps"] == 2
    raw["training"]["max_steps"] = 2  # same job: resume finds the finished checkpoint and packages again
    again = run_job(Job.model_validate(raw), base_dir=tmp_path, run_dir=first.run_dir, resume=True, show_progress=False)
    assert again.metrics["training"]["steps"] == 2


def test_unseen_intents_split_holds_whole_groups_out(bitext_small: Path, tmp_path: Path) -> None:
    from shipyard.data.pairs import load_pairs

    job = Job.model_validate(
        retrieval_job(bitext_small, tmp_path / "r", split={"held_out": "groups", "test_fraction": 0.34})
    )
    data = load_pairs(job, base_dir=tmp_path)
    train, test = set(data.split("train")["group"]), set(data.split("test")["group"])
    assert len(test) == 2 and not (train & test)


def test_bad_columns_and_empty_rows_are_named(bitext_small: Path, tmp_path: Path) -> None:
    from shipyard.data.pairs import load_pairs

    job = Job.model_validate(retrieval_job(bitext_small, tmp_path / "r", query_column="question"))
    with pytest.raises(ShipyardError, match="'question'"):
        load_pairs(job, base_dir=tmp_path)
    broken = tmp_path / "broken.csv"
    broken.write_text("instruction,intent,response\nhello,a,x\n,b,y\n")
    job = Job.model_validate(retrieval_job(broken, tmp_path / "r"))
    with pytest.raises(ShipyardError, match="row 2"):
        load_pairs(job, base_dir=tmp_path)


def test_config_refuses_a_classifier_for_retrieval(bitext_small: Path, tmp_path: Path) -> None:
    raw = retrieval_job(bitext_small, tmp_path / "r")
    raw["model"] = {"type": "transformer"}
    with pytest.raises(ValueError, match="biencoder"):
        Job.model_validate(raw)
