"""The dashboard's pages on a plain FastAPI app: login cookie, scopes, labelling, monitoring, promotion, try it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shipyard.artifact import Artifact
from shipyard.config.loop import LogPredictionsConfig, LoopSettings
from shipyard.loop.predlog import PredictionLog
from shipyard.loop.store import LoopStore
from shipyard.serve.security import ANONYMOUS, Principal
from shipyard.serve.ui import ModelView, UIContext, exception_handlers, mount_static, ui_router
from shipyard.serve.ui.session import COOKIE
from shipyard.store.keys import KeyStore

FEATURES = ["age", "workclass", "education", "education-num", "marital-status", "occupation", "relationship",
            "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country"]  # fmt: skip


@pytest.fixture
def dashboard(tmp_path: Path, adult_young_run: Path, adult_frame):
    keys = KeyStore.for_root(tmp_path)
    admin, viewer = keys.create("ops", "admin"), keys.create("viewer", "predict")
    store = LoopStore.open(tmp_path / "loop")
    artifact = Artifact.load(adult_young_run)
    serving = {"path": str(adult_young_run / "model"), "version": 1}
    plog = PredictionLog(store, model="adult", version=1, model_path=serving["path"], config=LogPredictionsConfig())

    async def verify(key: str):
        record = keys.verify(key)
        return Principal(record.name, record.scope) if record else None

    async def predict(name: str, record: dict):
        out = artifact.predict_records([record])
        ids = plog.log([record], out)
        plog.flush()
        return {**out[0], "prediction_id": ids[0]}

    async def switch(name: str, path: str):
        serving.update(path=path, version=serving["version"] + 1)
        return {"version": serving["version"], "path": path}

    def models():
        meta = artifact.meta
        return [ModelView("adult", serving["version"], serving["path"], meta["task"], meta["features"], meta["labels"])]

    settings = LoopSettings.parse({"monitor": {"thresholds": {"min_rows": 50}}})
    ctx = UIContext(
        store=store,
        models=models,
        verify=verify,
        anonymous=ANONYMOUS,
        runs_root=adult_young_run.parent,
        predict=predict,
        switch=switch,
        settings=settings,
    )
    app = FastAPI(exception_handlers=exception_handlers())
    app.include_router(ui_router(ctx))
    mount_static(app)
    rows = adult_frame.sample(n=120, random_state=0)[FEATURES].to_dict("records")
    plog.log(rows, artifact.predict_records(rows))
    plog.flush()
    return TestClient(app), admin, viewer, store, serving


def _login(client: TestClient, key: str) -> None:
    response = client.post("/ui/login", data={"key": key}, follow_redirects=False)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie


def test_pages_need_a_valid_key(dashboard):
    client, admin, _, _, _ = dashboard
    assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/login"
    bad = client.post("/ui/login", data={"key": "sk_nope"})
    assert bad.status_code == 401 and "invalid or revoked" in bad.text
    _login(client, admin)
    home = client.get("/ui")
    assert home.status_code == 200 and "adult" in home.text
    assert client.get("/ui/static/label.js").status_code == 200
    client.post("/ui/logout")
    client.cookies.delete(COOKIE, path="/ui")
    assert client.get("/ui/runs", follow_redirects=False).status_code == 303


def test_runs_list_detail_and_report(dashboard, adult_young_run):
    client, admin, _, _, _ = dashboard
    _login(client, admin)
    run_id = json.loads((adult_young_run / "run.json").read_text())["run_id"]
    assert run_id in client.get("/ui/runs").text
    detail = client.get(f"/ui/runs/{run_id}")
    assert detail.status_code == 200 and "accuracy" in detail.text
    report = client.get(f"/ui/runs/{run_id}/report")
    assert report.status_code == 200 and report.headers["content-security-policy"] == "script-src 'none'"
    assert client.get(f"/ui/runs/compare?a={run_id}&b={run_id}").status_code == 200


def test_labelling_with_answers_skip_and_undo(dashboard):
    client, _, viewer, _, _ = dashboard
    _login(client, viewer)
    client.post("/ui/label/adult/build", data={"n": 5})
    first = client.get("/ui/label/adult/next").json()
    assert first["remaining"] == 5 and first["item"]["rank"] == 1
    pid = first["item"]["id"]
    assert client.post(
        "/ui/label/adult/answer", json={"action": "label", "prediction_id": pid, "label": ">50K"}
    ).json()["ok"]
    again = client.post("/ui/label/adult/answer", json={"action": "label", "prediction_id": pid, "label": ">50K"})
    assert again.status_code == 409
    wrong = client.get("/ui/label/adult/next").json()["item"]["id"]
    outside = client.post("/ui/label/adult/answer", json={"action": "label", "prediction_id": wrong, "label": "rich"})
    assert outside.status_code == 422 and "not one of" in outside.json()["error"]
    client.post("/ui/label/adult/answer", json={"action": "skip", "prediction_id": wrong})
    client.post("/ui/label/adult/answer", json={"action": "undo", "prediction_id": pid})
    assert client.get("/ui/label/adult/next").json()["remaining"] == 4  # undone back in, skipped out


def test_monitor_try_and_promotion_rules(dashboard, adult_young_run):
    client, admin, viewer, _, serving = dashboard
    _login(client, viewer)
    assert client.post("/ui/monitor/adult/check", follow_redirects=True).status_code == 200
    page = client.get("/ui/monitor/adult")
    assert "<svg" in page.text and "Last check" in page.text
    answer = client.post("/ui/try/adult", data={"age": "52", "workclass": "Private", "education": "Masters",
                                                 "education-num": "14", "marital-status": "Married-civ-spouse",
                                                 "occupation": "Exec-managerial", "relationship": "Husband",
                                                 "race": "White", "sex": "Male", "capital-gain": "0",
                                                 "capital-loss": "0", "hours-per-week": "50",
                                                 "native-country": "United-States"})  # fmt: skip
    assert answer.status_code == 200 and "prediction_id" in answer.text
    forbidden = client.post("/ui/models/adult/promote", data={"challenger": str(adult_young_run)})
    assert forbidden.status_code == 403  # a predict key may not promote
    client.cookies.delete(COOKIE, path="/ui")
    _login(client, admin)
    same = client.post("/ui/models/adult/promote", data={"challenger": str(adult_young_run), "why": "test"})
    assert "kept the champion" in same.text and serving["version"] == 1  # not better: never switched
    assert "decision" in same.text
    rollback = client.post("/ui/models/adult/rollback", data={"why": "nothing to undo"})
    assert "no promotion" in rollback.text
