"""A recommendation job end to end: YAML -> run folder -> served recommendations and events -> erasure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import shipyard
from shipyard.erasure import forget_run

JOB = """task: recommendation
name: tiny-bpr
recommend:
  data:
    format: csv
    path: events.csv
    items: items.csv
    columns: {{user_id: user_id, item_id: item_id, rating: rating, timestamp: timestamp}}
  model: {{type: bpr, dim: 16}}
training: {{optimizer: adam, learning_rate: 0.02, batch_size: 1024, epochs: 2}}
output: {{runs_root: "{runs}"}}
"""


@pytest.fixture(scope="module")
def run_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rec_e2e")
    raw = pd.read_csv(
        data_dir / "movielens-100k" / "u.data", sep="\t", names=["user_id", "item_id", "rating", "timestamp"]
    )
    raw[raw.user_id <= 50].to_csv(folder / "events.csv", index=False)
    items = pd.read_csv(data_dir / "movielens-100k" / "u.item", sep="|", encoding="latin-1", header=None)
    genres = ["Drama" if i % 2 else "Comedy" for i in items[0]]
    pd.DataFrame({"item_id": items[0], "title": items[1], "genres": genres}).to_csv(folder / "items.csv", index=False)
    (folder / "job.yaml").write_text(JOB.format(runs=folder / "runs"))
    result = shipyard.train(folder / "job.yaml")
    assert result.metrics["test"]["hr@10"] >= 0 and (result.run_dir / "report.html").is_file()
    assert "Popularity bias and coverage" in (result.run_dir / "report.html").read_text()
    return result.run_dir


@pytest.fixture
def client(run_dir: Path) -> Any:
    from fastapi.testclient import TestClient

    from shipyard.serve.app import create_app

    with TestClient(create_app({"ml": run_dir}, auth=False), raise_server_exceptions=False) as c:
        yield c


def _ids(resp: Any) -> list[int]:
    assert resp.status_code == 200, resp.text
    return [it["item_id"] for it in resp.json()["items"]]


def test_recommend_events_and_fallbacks(client: Any, run_dir: Path) -> None:
    body = client.get("/v1/models/ml/recommend", params={"user_id": 3, "k": 5}).json()
    assert body["fallback"] is None and len(body["items"]) == 5 and body["items"][0]["reason"]
    unknown = client.get("/v1/models/ml/recommend", params={"user_id": 999999, "k": 3}).json()
    assert unknown["fallback"] == "popularity"
    bad = client.post("/v1/models/ml/events", json={"user_id": 3, "item_id": 777777})
    assert bad.status_code == 404 and "777777" in bad.json()["error"]["message"]
    before = _ids(client.get("/v1/models/ml/recommend", params={"user_id": 3, "k": 5}))
    assert client.post("/v1/models/ml/events", json={"user_id": 3, "item_id": before[0], "rating": 5}).json()[
        "recorded"
    ]
    after = _ids(client.get("/v1/models/ml/recommend", params={"user_id": 3, "k": 5}))
    assert before[0] not in after and after != before  # the next answer reflects the event at once
    anon = _ids(client.post("/v1/models/ml/recommend", json={"recent": [1, 50], "k": 4}))
    assert len(anon) == 4 and {1, 50}.isdisjoint(anon)
    drama = client.post("/v1/models/ml/recommend", json={"user_id": 3, "k": 3, "category": "Drama"}).json()
    assert all("Drama" in it["genres"] for it in drama["items"])
    assert client.get("/v1/models/ml/items/1").json()["title"].startswith("Toy Story")
    log = (run_dir / "events.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["user_id"] == 3


def test_forget_removes_user_everywhere(client: Any, run_dir: Path) -> None:
    before = json.loads((run_dir / "metrics.json").read_text())
    client.post("/v1/models/ml/events", json={"user_id": 7, "item_id": 1, "rating": 4})
    assert client.delete("/v1/models/ml/users/7").json()["forgotten"]
    assert client.get("/v1/models/ml/recommend", params={"user_id": 7}).json()["fallback"] == "popularity"
    result = forget_run(run_dir, "user_id == 7")
    assert result["rows_removed"] > 0
    for split in ("train", "validation", "test"):
        assert not (pd.read_parquet(run_dir / "splits" / f"{split}.parquet").user_id == 7).any()
    assert not (pd.read_parquet(run_dir / "model" / "interactions.parquet").user_id == 7).any()
    assert all(json.loads(ln)["user_id"] != 7 for ln in (run_dir / "events.jsonl").read_text().splitlines())
    meta = json.loads((run_dir / "model" / "shipyard.json").read_text())
    assert meta["erasure"]["needs_retraining"]
    # metrics, summary, report and card are regenerated from the remaining events (user 7 had a test event)
    assert {"metrics.json", "report.html", "model_card.md"} <= set(result["regenerated"])
    after = json.loads((run_dir / "metrics.json").read_text())
    assert after["test"]["users"] == before["test"]["users"] - 1 and after["training"] == before["training"]
    assert meta["metrics"] == after["test"] and "popularity" in after["baseline"]
    summary = json.loads((run_dir / "data_summary.json").read_text())
    assert summary["erasure"]["rows_removed"] > 0 and summary["splits"]["test"] == after["test"]["users"]
    assert "Events were erased" in (run_dir / "report.html").read_text()
    assert "Events were erased" in (run_dir / "model_card.md").read_text()
    from shipyard.store.runs import RunStore

    stored = RunStore.for_root(run_dir.parent).get(run_dir.name)
    assert stored.metrics["test"]["users"] == after["test"]["users"]
    from fastapi.testclient import TestClient

    from shipyard.serve.app import create_app

    with TestClient(create_app({"ml": run_dir}, auth=False)) as fresh:  # a restarted server: user 7 is unknown
        assert fresh.get("/v1/models/ml/recommend", params={"user_id": 7}).json()["fallback"] == "popularity"


def test_serve_start_up_check_after_erasure(run_dir: Path) -> None:
    from shipyard.errors import ShipyardError
    from shipyard.serve.recommend import recommender_warning

    forget_run(run_dir, "user_id == 8")
    assert "needs retraining" in (recommender_warning("ml", run_dir, strict=False) or "")
    with pytest.raises(ShipyardError, match="needs retraining"):
        recommender_warning("ml", run_dir, strict=True)
