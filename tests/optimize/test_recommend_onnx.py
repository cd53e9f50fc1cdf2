"""`shipyard optimize RUN --methods onnx,int8` on a two-tower recommender: the towers as ONNX files whose vectors
match torch's (fp32 to 1e-4, the same top-10 lists), an int8 variant with its measured agreement; MF refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from shipyard.artifact_recommend import load_recommender
from shipyard.cli.root import app
from shipyard.config.schema import Job
from shipyard.errors import ShipyardError
from shipyard.optimize.measure import ort_session
from shipyard.optimize.recommend_onnx import export_towers
from shipyard.pipeline_recommend import run_recommendation_job


def _run(folder: Path, model: dict) -> Path:
    job = {
        "task": "recommendation",
        "recommend": {"data": {"format": "csv", "path": "events.csv", "items": "items.csv", "users": "users.csv"},
                      "model": model},
        "training": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 256, "epochs": 1},
        "output": {"runs_root": str(folder / "runs")},
    }  # fmt: skip
    return run_recommendation_job(Job.model_validate(job), base_dir=folder).run_dir


@pytest.fixture(scope="module")
def folder(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rec_onnx")
    ml = data_dir / "movielens-100k"
    raw = pd.read_csv(ml / "u.data", sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
    raw[raw.user_id <= 30].to_csv(folder / "events.csv", index=False)
    items = pd.read_csv(ml / "u.item", sep="|", encoding="latin-1", header=None)
    genres = ["Drama" if i % 2 else "Comedy" for i in items[0]]
    pd.DataFrame({"item_id": items[0], "title": items[1], "genres": genres}).to_csv(folder / "items.csv", index=False)
    users = pd.read_csv(ml / "u.user", sep="|", header=None, names=["user_id", "age", "gender", "occupation", "zip"])
    users.to_csv(folder / "users.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def tt_run(folder: Path) -> Path:
    return _run(folder, {"type": "two_tower", "dim": 16, "hidden": 32, "history": 10, "text": False})


def test_two_tower_towers_match_torch(tt_run: Path) -> None:
    run = tt_run
    res = CliRunner().invoke(app, ["optimize", str(run), "--methods", "onnx,int8"])
    assert res.exit_code == 0, res.output
    report = json.loads((run / "optimized" / "towers" / "towers.json").read_text())
    fp32, int8 = report["files"]["fp32"], report["files"]["int8"]
    assert fp32["item_max_abs_diff"] < 1e-4 and fp32["user_max_abs_diff"] < 1e-4 and fp32["top10_agreement"] == 1.0
    assert int8["top10_agreement"] > 0.5 and int8["bytes"]["item_tower"] < fp32["bytes"]["item_tower"]
    assert report["users"] == 30 and isinstance(report["int8_agreement_ok"], bool)
    assert report["serve"] in ("fp32", "int8") and report["user_tower_ms"]["batch 1"]["fp32"] > 0
    # the user tower's file answers an anonymous session like the served model's fold-in
    live, _ = load_recommender(run / "model")
    hist = np.full((1, 10), -1, np.int64)
    hist[0, -3:] = [0, 5, 9]
    session = ort_session(run / "optimized" / "towers" / "user_tower.onnx", 1)
    feed = {"hist": hist, "uidx": np.array([-1], np.int64)}
    onnx_vec = session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})[0][0]
    with torch.no_grad():
        assert np.abs(onnx_vec - live.model.fold_in(np.array([0, 5, 9]))).max() < 1e-4


def test_served_recommendations_from_the_onnx_towers_match_torch(tt_run: Path, tmp_path: Path) -> None:
    """Serving loads the user tower optimize chose (towers.json ``serve``) and answers with torch's top-10."""
    run = tmp_path / "run"  # a copy: this test breaks its towers at the end
    shutil.copytree(tt_run / "model", run / "model")
    report = export_towers(run, int8=True)
    assert report["serve"] in ("fp32", "int8") and set(report["user_tower_ms"]) == {"batch 1", "batch 64"}
    assert report["serve"] == "fp32" or report["int8_agreement_ok"]
    onnx, _ = load_recommender(run / "model")
    ref, _ = load_recommender(run / "model", towers="torch")
    assert onnx.user_tower.kind == report["serve"] and ref.user_tower.kind == "torch"
    users = onnx.user_ids(30)
    queries = [{"user_id": u, "k": 10} for u in users] + [{"recent": [1 + u, 50 + u, 100 + 2 * u]} for u in range(20)]
    for event in [(users[0], 7), (users[1], 300)]:  # fold-ins after events, through the tower
        onnx.record_event(*event)
        ref.record_event(*event)
    got, want = onnx.recommend_many(queries), ref.recommend_many(queries)
    overlap = [len({i["item_id"] for i in g["items"]} & {i["item_id"] for i in w["items"]}) / 10
               for g, w in zip(got, want, strict=True)]  # fmt: skip
    if onnx.user_tower.kind == "fp32":  # within 1e-4 of torch: the same lists
        assert [[i["item_id"] for i in g["items"]] for g in got] == [[i["item_id"] for i in w["items"]] for w in want]
    else:
        assert np.mean(overlap) >= 0.9
    # explicit choices, and a file that is not this model's user tower: torch, with a warning
    assert load_recommender(run / "model", towers="fp32")[0].user_tower.kind == "fp32"
    towers = run / "optimized" / "towers"
    (towers / "user_tower.onnx").write_bytes((towers / "item_tower.onnx").read_bytes())
    (towers / "towers.json").write_text(json.dumps({**report, "serve": "fp32"}))
    assert load_recommender(run / "model")[0].user_tower.kind == "torch"
    with pytest.raises(ShipyardError, match="cannot serve the fp32 user tower"):
        load_recommender(run / "model", towers="fp32")


def test_mf_has_no_towers(folder: Path) -> None:
    run = _run(folder, {"type": "mf", "dim": 8})
    with pytest.raises(ShipyardError, match="no towers"):
        export_towers(run)
