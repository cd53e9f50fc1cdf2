"""`shipyard retrain RUN` for a recommender: the parent's training events plus the served events (events.jsonl)
train a challenger, validated and tested on the parent's own validation and test events."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.cli.root import app
from shipyard.errors import ShipyardError
from shipyard.loop.retrain import retrain
from shipyard.store.runs import RunStore

JOB = """task: recommendation
name: tiny-mf
recommend:
  data: {{format: csv, path: events.csv, items: items.csv}}
  model: {{type: mf, dim: 8}}
training: {{optimizer: adam, learning_rate: 0.02, batch_size: 1024, epochs: 1}}
output: {{runs_root: "{runs}"}}
"""


@pytest.fixture(scope="module")
def parent(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rec_retrain")
    raw = pd.read_csv(
        data_dir / "movielens-100k" / "u.data", sep="\t", names=["user_id", "item_id", "rating", "timestamp"]
    )
    raw[raw.user_id <= 30].to_csv(folder / "events.csv", index=False)
    items = pd.read_csv(data_dir / "movielens-100k" / "u.item", sep="|", encoding="latin-1", header=None)
    pd.DataFrame({"item_id": items[0], "title": items[1], "genres": "Drama"}).to_csv(folder / "items.csv", index=False)
    (folder / "job.yaml").write_text(JOB.format(runs=folder / "runs"))
    return shipyard.train(folder / "job.yaml").run_dir


def _served(parent: Path) -> None:
    """Events as the server writes them: a rating, a click without one, a new user's rating (id as a string)."""
    from fastapi.testclient import TestClient

    from shipyard.serve.app import create_app

    (parent / "events.jsonl").unlink(missing_ok=True)
    with TestClient(create_app({"ml": parent}, auth=False)) as client:
        for body in ({"user_id": 3, "item_id": 1000, "rating": 5, "timestamp": 2_000_000_000},
                     {"user_id": 3, "item_id": 1001, "timestamp": 2_000_000_001},
                     {"user_id": "977", "item_id": 50, "rating": 4, "timestamp": 2_000_000_002}):  # fmt: skip
            assert client.post("/v1/models/ml/events", json=body).json()["recorded"]


def test_retrain_reads_served_events(parent: Path) -> None:
    _served(parent)
    res = CliRunner().invoke(app, ["retrain", str(parent)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["parent"] == parent.name and out["feedback_rows"] == 2 and out["events"]["skipped_unrated"] == 1
    child = Path(out["run_dir"])
    train = pd.read_parquet(child / "splits" / "train.parquet")
    before = pd.read_parquet(parent / "splits" / "train.parquet")
    assert len(train) == len(before) + 2
    assert ((train.user_id == 977) & (train.item_id == 50) & (train.rating == 4)).sum() == 1  # the new user learnt
    assert not ((train.user_id == 3) & (train.item_id == 1001)).any()  # a click is no rating for MF
    for split in ("validation", "test"):  # the same fixed holdout as the parent
        name = f"{split}.parquet"
        kept = pd.read_parquet(parent / "splits" / name)
        pd.testing.assert_frame_equal(pd.read_parquet(child / "splits" / name), kept)
    assert json.loads((child / "metrics.json").read_text())["test"]["rmse"] > 0
    assert not list((parent.parent / ".retrain").glob("*"))  # staging removed
    flags = RunStore.for_root(parent.parent).get(out["run_id"]).flags
    assert flags["parent"] == parent.name and flags["feedback_rows"] == 2


def test_without_events_and_a_bad_line(parent: Path) -> None:
    _served(parent)
    out = retrain(parent, store=None, with_feedback=False)
    assert out["feedback_rows"] == 0 and out["events"]["left_out_by_options"] == 2
    with (parent / "events.jsonl").open("a") as f:
        f.write('{"user_id": "somebody", "item_id": 7, "rating": 3, "timestamp": 1}\n')
    with pytest.raises(ShipyardError, match="line 4"):
        retrain(parent, store=None)


def test_served_recommender_switches_to_the_retrained_version(parent: Path) -> None:
    """POST .../versions loads the retrained run, carries over events it has not learnt, then answers from it."""
    from fastapi.testclient import TestClient

    from shipyard.serve.app import create_app

    _served(parent)
    child = Path(retrain(parent, store=None)["run_dir"])
    with TestClient(create_app({"ml": parent}, auth=False)) as client:
        assert client.get("/v1/models/ml/recommend", params={"user_id": 3}).json()["version"] == 1
        assert client.post("/v1/models/ml/events", json={"user_id": 5, "item_id": 7, "timestamp": 2_100_000_000})
        bad = client.post("/v1/models/ml/versions", json={"path": str(parent / "nowhere")})
        assert bad.status_code == 422 and bad.json()["error"]["type"] == "load_failed"
        switched = client.post("/v1/models/ml/versions", json={"path": str(child)}).json()
        assert switched["version"] == 2 and switched["previous_version"] == 1
        assert switched["events_carried_over"] == 1  # the click after the retrain; the others were learnt
        body = client.get("/v1/models/ml/recommend", params={"user_id": 977, "k": 3}).json()
        assert body["version"] == 2 and body["fallback"] is None  # the new user, learnt by version 2
        five = client.get("/v1/models/ml/recommend", params={"user_id": 5}).json()["items"]
        assert 7 not in [it["item_id"] for it in five]  # the carried-over click counts as seen
    logged = [json.loads(ln) for ln in (child / "events.jsonl").read_text().splitlines()]
    assert [(e["user_id"], e["item_id"]) for e in logged] == [(5, 7)]
