"""Applications mount their routers on the server (behind the same key check), and answers match their schemas."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends
from serve_helpers import auth

from shipyard.config.serve import ServeSettings
from shipyard.errors import ShipyardError
from shipyard.serve.dependencies import caller, require_scope
from shipyard.serve.security import Principal

ROW = {"a": 0.3, "b": 2.5, "color": "red"}


def _demo_router() -> APIRouter:
    router = APIRouter()

    @router.get("/hello")
    async def hello(principal: Principal = Depends(caller)) -> dict[str, str]:
        return {"hello": principal.name}

    @router.post("/reset")
    async def reset(_: Principal = Depends(require_scope("admin"))) -> dict[str, bool]:
        return {"reset": True}

    return router


def test_an_application_router_is_mounted_behind_a_key(make_client: Any, keys: dict[str, Any]) -> None:
    client = make_client(extra_routers=[("/v1/apps/demo", _demo_router())])
    assert client.get("/v1/apps/demo/hello").status_code == 401
    assert client.get("/v1/apps/demo/hello", headers=auth("sk_wrong" + "x" * 27)).status_code == 401
    answer = client.get("/v1/apps/demo/hello", headers=auth(keys["predict"]))
    assert answer.status_code == 200 and answer.json() == {"hello": "tester"}
    assert client.post("/v1/apps/demo/reset", headers=auth(keys["predict"]), json={}).status_code == 403
    assert client.post("/v1/apps/demo/reset", headers=auth(keys["admin"]), json={}).status_code == 200
    assert "/v1/apps/demo/hello" in client.get("/openapi.json").json()["paths"]


def test_an_application_outside_v1_is_refused(runs: dict, keys: dict[str, Any]) -> None:
    from shipyard.serve.app import create_app

    with pytest.raises(ShipyardError, match="under /v1/"):
        create_app({"clf": runs["clf"]}, key_store_path=keys["db"], extra_routers=[("/demo", _demo_router())])


def test_answers_match_their_response_models(make_client: Any, keys: dict[str, Any]) -> None:
    """predict returns raw JSON for speed: check it against the response model its route declares."""
    from shipyard.serve.models import response_model

    client = make_client()
    paths = client.get("/openapi.json").json()["paths"]
    for model, task in (("clf", "classification"), ("reg", "regression")):
        ok = paths[f"/v1/models/{model}/predict"]["post"]["responses"]["200"]["content"]["application/json"]
        assert ok["schema"]["$ref"].endswith(f"PredictResponse_{model}")  # the schema the docs promise...
        declared = response_model(model, task)  # ...is this model's
        for body in ({"instance": ROW}, {"instances": [ROW, ROW]}):
            response = client.post(f"/v1/models/{model}/predict", json=body, headers=auth(keys["predict"]))
            assert response.status_code == 200, response.text
            declared.model_validate(response.json())
    listed = client.get("/v1/models", headers=auth(keys["predict"])).json()
    assert [m["max_instances"] for m in listed["models"]] == [64, 64]


def test_request_limit_is_separate_from_the_batch_size(make_client: Any, keys: dict[str, Any]) -> None:
    client = make_client(max_batch_size=64, max_instances_per_request=2)
    assert client.get("/v1/models/clf", headers=auth(keys["predict"])).json()["max_instances"] == 2
    over = client.post("/v1/models/clf/predict", json={"instances": [ROW] * 3}, headers=auth(keys["predict"]))
    assert over.status_code == 422 and over.json()["error"]["type"] == "too_many_instances"
    assert client.app.state.serve.slots["clf"].batcher.max_batch_size == 64


def test_workers_rebuild_the_app_from_one_json_variable(
    runs: dict, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.serve import workers

    settings = ServeSettings(key_store_path=keys["db"], max_batch_size=8, apps=("demo",))
    plan = workers.WorkerPlan(models={"clf": str(runs["clf"])}, settings=settings)
    monkeypatch.setitem(os.environ, workers.WORKER_PLAN_ENV, plan.model_dump_json())
    with pytest.raises(ShipyardError, match="nothing resolves application names"):
        workers.app_from_env()  # serve's own factory knows no applications

    def resolve(names: Any) -> list[tuple[str, APIRouter]]:  # what the layer above serve passes in
        return [(f"/v1/apps/{name}", _demo_router()) for name in names]

    app = workers.app_from_env(resolve_apps=resolve)
    assert app.state.serve.settings == settings
    assert "/v1/apps/demo/hello" in app.openapi()["paths"]
    bad = plan.model_dump(mode="json")
    bad["settings"]["max_wait_ms"] = -1
    monkeypatch.setitem(os.environ, workers.WORKER_PLAN_ENV, json.dumps(bad))
    with pytest.raises(ShipyardError, match=r"settings\.max_wait_ms"):  # validated again in the worker
        workers.app_from_env(resolve_apps=resolve)


def test_cli_options_map_onto_serve_settings(runs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shipyard.cli.serve as serve_cli
    from shipyard.serve import workers

    seen: list[ServeSettings] = []
    monkeypatch.setattr(workers, "serve", lambda models, settings, **kw: seen.append(settings))
    serve_cli.serve_command([f"clf={runs['clf']}"], store=tmp_path / "k.db", rate_limit=0, client_timeout=2.0)
    (settings,) = seen
    assert settings.rate_limit_per_s == 0 and settings.client_timeout_s == 2.0
    assert settings.key_store_path == tmp_path / "k.db" and settings.public_endpoints == ("docs", "metrics")
    assert settings.max_batch_size == ServeSettings().max_batch_size
