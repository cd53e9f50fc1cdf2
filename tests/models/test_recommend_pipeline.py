"""A recommendation run from a CSV of events: splits, engine training, metrics, report section, model folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from shipyard.artifact_recommend import load_recommender
from shipyard.config.recommend import RecommendConfig
from shipyard.errors import ShipyardError
from shipyard.evaluation.ranking_report import ranking_sections
from shipyard.pipeline_recommend import load_interactions, train_recommender
from shipyard.training.recommend import training_config


@pytest.fixture(scope="module")
def events_csv(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("events")
    raw = pd.read_csv(data_dir / "movielens-100k" / "u.data", sep="\t", names=["user", "movie", "stars", "ts"])
    raw[raw.user <= 60].to_csv(folder / "events.csv", index=False)
    items = pd.read_csv(data_dir / "movielens-100k" / "u.item", sep="|", encoding="latin-1", header=None)
    pd.DataFrame({"item_id": items[0], "title": items[1], "genres": "Drama"}).to_csv(folder / "items.csv", index=False)
    return folder / "events.csv"


def _cfg(path: Path, model: str = "bpr", **data: object) -> RecommendConfig:
    return RecommendConfig.model_validate(
        {
            "data": {"format": "csv", "path": str(path), "items": "items.csv",
                     "columns": {"user_id": "user", "item_id": "movie", "rating": "stars", "timestamp": "ts"}, **data},
            "model": {"type": model, "dim": 16},
        }
    )  # fmt: skip


def test_bpr_run_folder(events_csv: Path, tmp_path: Path) -> None:
    cfg = _cfg(events_csv, implicit=True, min_rating=4)
    out = train_recommender(cfg, training_config(optimizer="adam", learning_rate=0.02, batch_size=1024, epochs=2),
                            tmp_path, base_dir=events_csv.parent)  # fmt: skip
    test = out["metrics"]["test"]
    assert {"hr@10", "ndcg@10", "map@10", "recall@10", "sampled_hr@10", "beyond_accuracy"} <= set(test)
    assert test["protocol"] == "full catalogue" and test["users"] > 0
    assert set(test["beyond_accuracy"]["by_activity"]) == {"low", "mid", "high"}
    assert "popularity" in out["metrics"]["baseline"]
    for split in ("train", "validation", "test"):
        assert os.stat(tmp_path / "splits" / f"{split}.parquet").st_mode & 0o777 == 0o600
    assert (tmp_path / "train_log.jsonl").is_file() and any((tmp_path / "checkpoints").iterdir())
    summary = json.loads((tmp_path / "data_summary.json").read_text())
    assert summary["below_min_rating"] > 0 and summary["splits"]["test"] == test["users"]
    live, meta = load_recommender(tmp_path / "model")
    assert meta["task"] == "recommendation" and live.recommend(user_id=1, k=5)["items"][0]["title"]
    titles = [s.title for s in ranking_sections(out["metrics"], 10)]
    assert titles == ["Ranking", "Popularity bias and coverage"]


def test_mf_run_reports_rating_error(events_csv: Path, tmp_path: Path) -> None:
    out = train_recommender(_cfg(events_csv, "mf"), training_config(optimizer="adam", learning_rate=0.02,
                            batch_size=1024, epochs=2), tmp_path, base_dir=events_csv.parent)  # fmt: skip
    assert out["metrics"]["test"]["rmse"] < 1.5


def test_bad_inputs_are_named(events_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(ShipyardError, match="missing column"):
        load_interactions(_cfg(events_csv, columns={"user_id": "who"}).data, events_csv.parent)
    with pytest.raises(ValueError, match="implicit data needs bpr or two_tower"):
        _cfg(events_csv, "mf", implicit=True)
