"""The loop inside the server: prediction ids, the log, feedback codes, shadow answers, the scheduled check."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shipyard.config.serve import ServeSettings
from shipyard.loop.predlog import load_predictions
from shipyard.loop.store import LoopStore
from shipyard.serve.app import create_app
from shipyard.store.keys import KeyStore

FEATURES = ["age", "workclass", "education", "education-num", "marital-status", "occupation", "relationship",
            "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country"]  # fmt: skip


def _rows(frame, n, seed):
    sample = frame.dropna(subset=FEATURES).sample(n=n, random_state=seed)  # the API refuses a missing category
    rows = [{k: (None if v != v else v) for k, v in r.items()} for r in sample[FEATURES].to_dict("records")]
    return rows, list(sample["Y"])


def _wait(predicate, seconds=30.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def served(tmp_path: Path, adult_young_run: Path):
    runs = tmp_path / "runs"
    key = KeyStore.for_root(runs).create("app", "predict")
    settings = ServeSettings.parse(
        {
            "key_store_path": runs / "shipyard.db",
            "rate_limit_per_s": 0,
            "log_predictions": {"adult": {"sample": 1.0, "flush_interval_s": 0.2}},
            "shadow": {"adult": str(adult_young_run)},
            "loop": {"monitor": {"interval_s": 1, "thresholds": {"min_rows": 20}}},
        }
    )
    app = create_app({"adult": adult_young_run, "plain": adult_young_run}, settings)
    with TestClient(app) as client:
        _wait(lambda: client.get("/readyz").status_code == 200, 120)
        yield client, {"Authorization": f"Bearer {key}"}, LoopStore.open(runs)


def test_ids_log_feedback_and_shadow(served, adult_frame):
    client, headers, store = served
    rows, truth = _rows(adult_frame, 30, 1)
    response = client.post("/v1/models/adult/predict", json={"instances": rows}, headers=headers)
    assert response.status_code == 200, response.text
    ids = [p["prediction_id"] for p in response.json()["predictions"]]
    assert len(set(ids)) == 30
    plain = client.post("/v1/models/plain/predict", json={"instance": rows[0]}, headers=headers).json()
    assert len(plain["prediction"]["prediction_id"]) == 32  # an id even where nothing is logged
    not_logged = client.post(
        "/v1/models/plain/feedback", json={"prediction_id": plain["prediction"]["prediction_id"], "label": ">50K"},
        headers=headers,
    )  # fmt: skip
    assert not_logged.status_code == 404 and not_logged.json()["error"]["type"] == "not_logged"
    ok = client.post("/v1/models/adult/feedback", json={"prediction_id": ids[0], "label": truth[0]}, headers=headers)
    assert ok.status_code == 201, ok.text
    cases = [
        ({"prediction_id": ids[0], "label": truth[0]}, 409, "duplicate_feedback"),
        ({"prediction_id": "f" * 32, "label": ">50K"}, 404, "unknown_prediction"),
        ({"prediction_id": ids[1], "label": "rich"}, 422, "invalid_feedback"),
        ({"prediction_id": ids[1], "thumbs": "down", "correction": "poor"}, 422, "invalid_feedback"),
    ]
    for body, status, kind in cases:
        answer = client.post("/v1/models/adult/feedback", json=body, headers=headers)
        assert answer.status_code == status and answer.json()["error"]["type"] == kind, answer.text
    assert client.post("/v1/models/adult/feedback", json={"prediction_id": ids[1], "thumbs": "up"},
                       headers=headers).status_code == 201  # fmt: skip
    _wait(lambda: len(load_predictions(store, "adult")) == 30)
    logged = load_predictions(store, "adult")
    assert set(logged["_id"]) == set(ids)
    shadowed = logged[[s is not None for s in logged["_shadow"]]]
    assert len(shadowed) == 30  # the challenger scored every request, and never answered
    assert all(s["label"] == o["label"] for s, o in zip(shadowed["_shadow"], shadowed["_outputs"], strict=True))


def test_the_server_checks_drift_on_a_schedule(served, adult_frame):
    client, headers, store = served
    rows, _ = _rows(adult_frame, 40, 2)
    assert client.post("/v1/models/adult/predict", json={"instances": rows}, headers=headers).status_code == 200
    checks = _wait(lambda: store.list_events("adult", ("drift_check",)), 30)
    assert checks[0]["actor"] == "scheduler"
    metrics = client.get("/metrics").text
    assert "shipyard_drift_detected" in metrics and "shipyard_drift_score" in metrics


def test_application_pages_sit_behind_the_dashboard_login(tmp_path: Path, adult_young_run: Path):
    from fastapi import APIRouter
    from fastapi.responses import HTMLResponse

    router = APIRouter()

    @router.get("/", response_class=HTMLResponse)
    def home() -> str:
        return "<h1>demo</h1>"

    runs = tmp_path / "runs"
    key = KeyStore.for_root(runs).create("viewer", "predict")
    settings = ServeSettings.parse({"key_store_path": runs / "shipyard.db"})
    app = create_app({"adult": adult_young_run}, settings, extra_routers=[("/ui/apps/demo", router)])
    with TestClient(app) as client:
        anonymous = client.get("/ui/apps/demo/", follow_redirects=False)
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/ui/login"
        client.post("/ui/login", data={"key": key})
        page = client.get("/ui/apps/demo/")
        assert page.status_code == 200 and "<h1>demo</h1>" in page.text
        assert "form-action 'self'" in page.headers["content-security-policy"]
